#!/usr/bin/env python3
"""Chat latency while a file streams over the same tern connection (stdlib only).

  chat_latency.py --tern BIN --port P --download-dir D --file F [--interval-ms 10]
                  [--timeout S] [--log PREFIX] [--pidfile FILE]

Starts `tern recv --once --yes` (stdout piped), waits for "tern: listening on" on its stderr,
starts `tern send 127.0.0.1:P F` with stdin piped. Once the receiver's stderr says it is
receiving the file, a line "SEQ NS" (NS = time.time_ns() just before the write) is written to
send's stdin every interval; a thread reads recv's stdout and records the one-way latency
time.time_ns() - NS of each line. Writing stops when the receiver reports the file received
(or the sender reports it verified); then stdin is closed and both must exit 0.

Prints key=value lines: sent, received, lost, p50_ms, p99_ms, max_ms, mbps (the file's
transfer rate while chatting, from "receiving" to "received" on recv's stderr, 1 MB = 10^6 B),
recv_rc, send_rc, status. Exits 0 only when both exited 0 and no line was lost.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import threading
import time

from benchutil import LineWatcher, kill_group, rc_of, report, run_main, spawn


GRACE_S = 15.0


def percentile(sorted_vals: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_vals:
        return float("nan")
    k = max(0, math.ceil(p / 100.0 * len(sorted_vals)) - 1)
    return sorted_vals[min(k, len(sorted_vals) - 1)]


class Reader(threading.Thread):
    """Reads recv's stdout; one (seq, latency_ns) per well-formed line."""

    def __init__(self, pipe, log_path: str | None):
        super().__init__(daemon=True)
        self.pipe = pipe
        self.log_path = log_path
        self.got: dict[int, int] = {}
        self.other = 0

    def run(self) -> None:
        log = None
        if self.log_path:
            log = open(self.log_path, "w", encoding="utf-8", errors="replace")
        try:
            for raw in iter(self.pipe.readline, b""):
                now = time.time_ns()
                parts = raw.decode("utf-8", errors="replace").split()
                if log:
                    log.write(f"{now} {raw.decode('utf-8', errors='replace').rstrip()}\n")
                try:
                    seq, ns = int(parts[-2]), int(parts[-1])
                except (IndexError, ValueError):
                    self.other += 1
                    continue
                if seq in self.got:
                    self.other += 1
                else:
                    self.got[seq] = now - ns
        except (OSError, ValueError):
            pass
        finally:
            if log:
                log.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tern", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--download-dir", required=True)
    ap.add_argument("--file", required=True)
    ap.add_argument("--interval-ms", type=float, default=10.0)
    ap.add_argument("--timeout", type=float, default=3600.0)
    ap.add_argument("--log")
    ap.add_argument("--pidfile")
    a = ap.parse_args()
    log = a.log
    size = os.path.getsize(a.file)
    recv = send = None
    result: dict[str, object] = {"status": "ok"}
    seq = 0
    try:
        recv = spawn([a.tern, "recv", "--once", "--yes", "--bind", "127.0.0.1",
                      "--port", str(a.port), "--download-dir", a.download_dir],
                     a.pidfile, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE)
        rerr = LineWatcher(recv.stderr, f"{log}.recv.err" if log else None, {
            "ready": r"^tern: listening on",
            "receiving": r"^tern: receiving ",
            "done": r"^tern: received .*verified",
        })
        rerr.start()
        reader = Reader(recv.stdout, f"{log}.recv.out" if log else None)
        reader.start()
        if not rerr.wait_for("ready", 60.0, procs=(recv,)):
            result["status"] = "recv-not-ready"
            return finish(result, recv, send, reader, 0, size, rerr)
        send = spawn([a.tern, "send", f"127.0.0.1:{a.port}", a.file], a.pidfile,
                     stdin=subprocess.PIPE, bufsize=0,
                     stdout=open(f"{log}.send.out", "wb") if log else subprocess.DEVNULL,
                     stderr=subprocess.PIPE)
        serr = LineWatcher(send.stderr, f"{log}.send.err" if log else None,
                           {"done": r"^tern: sent .*verified"})
        serr.start()
        deadline = time.monotonic() + a.timeout
        # Start the clock once the file is streaming.
        if not rerr.wait_for("receiving", a.timeout, procs=(recv, send)):
            result["status"] = "never-receiving"
        else:
            interval_ns = int(a.interval_ms * 1e6)
            next_at = time.monotonic_ns()
            while not (rerr.events["done"].is_set() or serr.events["done"].is_set()):
                if send.poll() is not None or recv.poll() is not None:
                    result["status"] = "exited-early"
                    break
                if time.monotonic() > deadline:
                    result["status"] = "timeout"
                    break
                seq += 1
                try:
                    send.stdin.write(f"{seq} {time.time_ns()}\n".encode())
                except (BrokenPipeError, OSError):
                    seq -= 1
                    result["status"] = "stdin-broken"
                    break
                next_at += interval_ns
                now = time.monotonic_ns()
                if next_at < now - interval_ns:  # fell behind (write blocked): no burst
                    next_at = now
                # Sleep in small slices so the end of the transfer is noticed promptly.
                while (left := next_at - time.monotonic_ns()) > 0:
                    if rerr.events["done"].is_set() or serr.events["done"].is_set():
                        break
                    time.sleep(min(left, 2_000_000) / 1e9)
        try:
            send.stdin.close()
        except OSError:
            pass
        for p in (send, recv):
            limit = deadline
            if p is recv and send.returncode not in (0, None):
                # The sender failed: the receiver may wait for it forever; give it GRACE_S.
                limit = min(deadline, time.monotonic() + GRACE_S)
            try:
                p.wait(timeout=max(1.0, limit - time.monotonic()))
            except subprocess.TimeoutExpired:
                if result["status"] == "ok":
                    result["status"] = ("timeout" if limit == deadline
                                        else "recv-hung-after-send-failed")
                kill_group(p)
        serr.join(5.0)
        return finish(result, recv, send, reader, seq, size, rerr)
    finally:
        for p in (send, recv):
            kill_group(p, grace=1.0)


def finish(result, recv, send, reader, sent, size, rerr) -> int:
    if recv is not None and recv.poll() is None:
        kill_group(recv)
    reader.join(5.0)
    lat = sorted(v / 1e6 for s, v in reader.got.items() if 1 <= s <= sent)
    received = len(lat)
    result.update(
        sent=sent,
        received=received,
        lost=sent - received,
        unexpected_lines=reader.other + sum(1 for s in reader.got if not 1 <= s <= sent),
        p50_ms=f"{percentile(lat, 50):.3f}",
        p99_ms=f"{percentile(lat, 99):.3f}",
        max_ms=f"{lat[-1]:.3f}" if lat else "nan",
        recv_rc=rc_of(recv) if recv is not None else 999,
        send_rc=rc_of(send) if send is not None else 999,
    )
    t0, t1 = rerr.seen_at.get("receiving"), rerr.seen_at.get("done")
    result["mbps"] = f"{size / (t1 - t0) / 1e6:.1f}" if t0 and t1 and t1 > t0 else "nan"
    if result["status"] == "ok":
        if result["recv_rc"] != 0 or result["send_rc"] != 0:
            result["status"] = "failed"
        elif result["lost"] != 0:
            result["status"] = "lost-lines"
    return report(result)


if __name__ == "__main__":
    run_main(main)
