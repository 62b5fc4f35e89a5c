#!/usr/bin/env python3
"""The floor for chat latency during a transfer on this host (stdlib only; needs socat).

  chat_floor.py --bulk-port P --chat-port Q --out FILE --file F [--interval-ms 10]
                [--timeout S] [--log PREFIX] [--pidfile FILE]

The same measurement as chat_latency.py, without tern and without sharing anything: the chat
lines travel over a connection of their own (socat STDIN -> socat STDOUT) while a second socat
pair streams F into OUT on disk. Nothing is multiplexed, nothing queues ahead of a line, so
what is left is what this machine's scheduler, kernel and writeback cost a line. The chat
processes get the scheduling hint tern's session thread asks for (a 0.1 ms EEVDF slice); the
bulk processes, like tern's disk threads, run as they are. The two runs differ only in tern.

Prints the key=value lines chat_latency.py prints (sent, received, lost, p50_ms, p99_ms,
max_ms, max_seq, mbps, status). Exits 0 only when the file arrived whole and no line was lost.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import struct
import subprocess
import time

from benchutil import (StampedLines, add_chat_args, kill_group, latency_summary, rc_of,
                       report, run_main, spawn, wait_listen, write_paced_lines)

BUF = "131072"
# sched_setattr's number: x86_64, then the generic table (aarch64, riscv64).
SCHED_SETATTR = {"x86_64": 314, "aarch64": 274, "riscv64": 274}.get(platform.machine())
SHORT_SLICE_NS = 100_000


def short_slice() -> None:
    """In the child before exec: ask for tern's session-thread slice; best effort."""
    if SCHED_SETATTR is None:
        return
    # struct sched_attr: size, policy, flags, nice, priority, runtime (the slice), deadline,
    # period.
    attr = struct.pack("IIQiIQQQ", 48, 0, 0, 0, 0, SHORT_SLICE_NS, 0, 0)
    buf = ctypes.create_string_buffer(attr, len(attr))
    ctypes.CDLL(None, use_errno=True).syscall(SCHED_SETATTR, 0, buf, 0)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bulk-port", type=int, required=True)
    ap.add_argument("--chat-port", type=int, required=True)
    ap.add_argument("--out", required=True)
    add_chat_args(ap)
    a = ap.parse_args()
    size = os.path.getsize(a.file)
    result: dict[str, object] = {"status": "ok"}
    procs: list[subprocess.Popen] = []
    seq = 0
    reader = None
    started = ended = None
    deadline = time.monotonic() + a.timeout
    try:
        # All children that need a hook start before any thread does (preexec_fn and threads
        # do not mix).
        chat_rx = spawn(["socat", "-u", f"TCP-LISTEN:{a.chat_port},bind=127.0.0.1,reuseaddr",
                         "STDOUT"], a.pidfile, stdout=subprocess.PIPE,
                        stdin=subprocess.DEVNULL, preexec_fn=short_slice)
        procs.append(chat_rx)
        bulk_rx = spawn(["socat", "-u", "-b", BUF,
                         f"TCP-LISTEN:{a.bulk_port},bind=127.0.0.1,reuseaddr",
                         f"CREATE:{a.out}"], a.pidfile, stdin=subprocess.DEVNULL)
        procs.append(bulk_rx)
        if not (wait_listen(a.chat_port, 30.0, chat_rx)
                and wait_listen(a.bulk_port, 30.0, bulk_rx)):
            result["status"] = "listeners-not-ready"
            return finish(result, reader, 0, size, None, None, procs)
        chat_tx = spawn(["socat", "-u", "STDIN", f"TCP:127.0.0.1:{a.chat_port}"], a.pidfile,
                        stdin=subprocess.PIPE, bufsize=0, stdout=subprocess.DEVNULL,
                        preexec_fn=short_slice)
        procs.append(chat_tx)
        reader = StampedLines(chat_rx.stdout, f"{a.log}.chat.out" if a.log else None)
        reader.start()
        # Line 0 proves the chat path is connected; it is not counted.
        chat_tx.stdin.write(f"0 {time.time_ns()}\n".encode())
        while 0 not in reader.got:
            if time.monotonic() > deadline or chat_tx.poll() is not None:
                result["status"] = "chat-not-connected"
                return finish(result, reader, 0, size, None, None, procs)
            time.sleep(0.002)
        started = time.perf_counter()
        bulk_tx = spawn(["socat", "-u", "-b", BUF, f"OPEN:{a.file}",
                         f"TCP:127.0.0.1:{a.bulk_port}"], a.pidfile, stdin=subprocess.DEVNULL)
        procs.append(bulk_tx)

        def done() -> bool:
            # The receiving socat exits once the file is written (or the sending one failed).
            return bulk_rx.poll() is not None or bulk_tx.poll() not in (None, 0)

        seq, status = write_paced_lines(chat_tx.stdin, a.interval_ms, done, (chat_tx, chat_rx),
                                        deadline)
        ended = time.perf_counter()
        if status != "ok":
            result["status"] = status
        chat_tx.stdin.close()
        for p in procs:
            try:
                p.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                result["status"] = "timeout"
        return finish(result, reader, seq, size, started, ended, procs, a.out)
    finally:
        for p in procs:
            kill_group(p, grace=1.0)


def finish(result, reader, sent, size, started, ended, procs, out=None) -> int:
    for p in procs:
        kill_group(p)
    if reader is not None:
        reader.join(5.0)
    result.update(latency_summary(reader, sent))
    result.update(
        mbps=f"{size / (ended - started) / 1e6:.1f}" if started and ended else "nan",
        rcs=",".join(str(rc_of(p)) for p in procs),
    )
    if result["status"] == "ok":
        if any(rc_of(p) != 0 for p in procs):
            result["status"] = "failed"
        elif out is None or os.path.getsize(out) != size:
            result["status"] = "file-incomplete"
        elif result["lost"] != 0:
            result["status"] = "lost-lines"
    return report(result)


if __name__ == "__main__":
    run_main(main)
