#!/usr/bin/env python3
"""Chat latency while a file streams over the same tern connection (stdlib only).

  chat_latency.py --tern BIN --port P --download-dir D --file F [--interval-ms 10]
                  [--timeout S] [--log PREFIX] [--pidfile FILE] [--extra-file F2]

Starts `tern recv --once --yes` (stdout piped), waits for "tern: listening on" on its stderr,
starts `tern send 127.0.0.1:P F` with stdin piped. Once the receiver's stderr says it is
receiving the file, a line "SEQ NS" (NS = time.time_ns() just before the write) is written to
send's stdin every interval; a thread reads recv's stdout and records the one-way latency
time.time_ns() - NS of each line. Writing stops when the receiver reports the file received
(or the sender reports it verified); then stdin is closed and both must exit 0.

With --extra-file, a second peer (`tern send 127.0.0.1:P F2`, no chat) starts right after the
first: the lines are timed while two peers each stream a file into the one receiver, and the
run waits for both files.

Prints key=value lines: sent, received, lost, p50_ms, p99_ms, max_ms, max_seq, mbps (the file's
transfer rate while chatting, from "receiving" to "received" on recv's stderr, 1 MB = 10^6 B),
recv_rc, send_rc, status. Exits 0 only when both exited 0 and no line was lost.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import time

from benchutil import (LineWatcher, StampedLines, add_chat_args, kill_group, latency_summary,
                       rc_of, report, run_main, spawn, write_paced_lines)


GRACE_S = 15.0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tern", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--download-dir", required=True)
    ap.add_argument("--extra-file", help="a second peer streams this file at the same time")
    add_chat_args(ap)
    a = ap.parse_args()
    log = a.log
    size = os.path.getsize(a.file)
    name = re.escape(os.path.basename(a.file))
    recv = send = extra = None
    result: dict[str, object] = {"status": "ok"}
    seq = 0
    try:
        recv = spawn([a.tern, "recv", "--once", "--yes", "--bind", "127.0.0.1",
                      "--port", str(a.port), "--download-dir", a.download_dir],
                     a.pidfile, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE)
        # With two peers connected, recv's notes start with the peer's name: the file names
        # tell them apart.
        patterns = {
            "ready": r"^tern: listening on",
            "receiving": rf"receiving {name} ",
            "done": rf"received {name} .*verified",
        }
        if a.extra_file:
            extra_name = re.escape(os.path.basename(a.extra_file))
            patterns["extra_receiving"] = rf"receiving {extra_name} "
            patterns["extra_done"] = rf"received {extra_name} .*verified"
        rerr = LineWatcher(recv.stderr, f"{log}.recv.err" if log else None, patterns)
        rerr.start()
        reader = StampedLines(recv.stdout, f"{log}.recv.out" if log else None)
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
        if a.extra_file:
            extra = spawn([a.tern, "send", "--name", "second-peer", f"127.0.0.1:{a.port}",
                           a.extra_file], a.pidfile, stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL,
                          stderr=open(f"{log}.extra.err", "wb") if log else subprocess.DEVNULL)
        # Start the clock once the file (both files) is streaming.
        streaming = rerr.wait_for("receiving", a.timeout, procs=(recv, send))
        if streaming and extra is not None:
            streaming = rerr.wait_for("extra_receiving", a.timeout, procs=(recv, extra))
        if not streaming:
            result["status"] = "never-receiving"
        else:
            def done() -> bool:
                return rerr.events["done"].is_set() or serr.events["done"].is_set()

            seq, status = write_paced_lines(send.stdin, a.interval_ms, done, (send, recv),
                                            deadline)
            if status != "ok":
                result["status"] = status
        try:
            send.stdin.close()
        except OSError:
            pass
        if extra is not None:
            try:
                extra.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                if result["status"] == "ok":
                    result["status"] = "timeout"
                kill_group(extra)
            result["extra_rc"] = rc_of(extra)
            if result["status"] == "ok" and result["extra_rc"] != 0:
                result["status"] = "extra-send-failed"
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
        for p in (send, extra, recv):
            kill_group(p, grace=1.0)


def finish(result, recv, send, reader, sent, size, rerr) -> int:
    if recv is not None and recv.poll() is None:
        kill_group(recv)
    reader.join(5.0)
    result.update(latency_summary(reader, sent))
    result.update(
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
