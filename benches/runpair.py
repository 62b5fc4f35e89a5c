#!/usr/bin/env python3
"""Time a waiting process and a connecting process, for benches/compare.sh (stdlib only).

  runpair.py [--ready stderr:REGEX | port:N | none] [--ready-timeout S] [--timeout S]
             --log PREFIX [--pidfile FILE] -- FIRST_CMD... :: SECOND_CMD...
  runpair.py --single [--timeout S] --log PREFIX [--pidfile FILE] -- CMD...

FIRST (the listener) is started and waited for until it is ready: a line of its stderr matches
REGEX (stderr goes to a file that is polled, so no pipe of ours is in the data path), or
something listens on port N (read from /proc/net/tcp, no probe connection). Then SECOND (the
connector) is started; the clock runs from SECOND's start until both have exited. Both get
/dev/null as stdin; their stdout and stderr go to PREFIX.{first,second}.{out,err}.
With --single, CMD alone is timed.

Prints one line, "ELAPSED_S FIRST_RC SECOND_RC STATUS", STATUS being ok, failed (a non-zero
exit; the other process is given 15 s to end by itself, then ended), not-ready, or timeout
(both were killed; their rc reads 124). Exits 0 only for ok.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time

from benchutil import exit_on_sigterm, kill_group, rc_of, spawn, wait_listen


GRACE_S = 15.0


def parse(argv: list[str]):
    opts = {"ready": "none", "ready_timeout": 60.0, "timeout": 600.0, "log": None,
            "pidfile": None, "single": False}
    i = 0
    while i < len(argv) and argv[i] != "--":
        a = argv[i]
        if a == "--single":
            opts["single"] = True
            i += 1
            continue
        if i + 1 >= len(argv):
            raise SystemExit(f"runpair: {a} needs a value")
        key = a.lstrip("-").replace("-", "_")
        if key not in opts:
            raise SystemExit(f"runpair: unknown option {a}")
        val = argv[i + 1]
        opts[key] = float(val) if key in ("ready_timeout", "timeout") else val
        i += 2
    rest = argv[i + 1:]
    if opts["single"]:
        return opts, [], rest
    if "::" not in rest:
        raise SystemExit("runpair: expected FIRST_CMD... :: SECOND_CMD...")
    k = rest.index("::")
    return opts, rest[:k], rest[k + 1:]


def wait_file_line(path: str, rx: re.Pattern, timeout: float, proc: subprocess.Popen) -> bool:
    """Poll the file `path` (a child's stderr) until a line matches `rx`; False on timeout
    or when the child exited without printing it."""
    deadline = time.monotonic() + timeout
    buf = b""
    with open(path, "rb") as f:
        while time.monotonic() < deadline:
            exited = proc.poll() is not None
            buf += f.read()
            lines = buf.split(b"\n")
            buf = lines.pop()  # an unfinished line waits for its end
            if any(rx.search(x.decode("utf-8", "replace")) for x in lines):
                return True
            if exited:
                return bool(buf) and rx.search(buf.decode("utf-8", "replace")) is not None
            time.sleep(0.001)
    return False


def main(argv: list[str]) -> int:
    opts, first_cmd, second_cmd = parse(argv)
    if not second_cmd or (not opts["single"] and not first_cmd):
        raise SystemExit("runpair: empty command")
    log, pidfile, timeout = opts["log"], opts["pidfile"], opts["timeout"]
    if not log:
        raise SystemExit("runpair: --log PREFIX is required")
    first = second = None
    status = "ok"
    elapsed = 0.0
    try:
        if not opts["single"]:
            mode, _, arg = opts["ready"].partition(":")
            err_path = f"{log}.first.err"
            # stderr goes to a file, polled for the readiness line: nothing of ours sits in the
            # data path once the run is under way.
            with open(f"{log}.first.out", "wb") as out, open(err_path, "wb") as err:
                first = spawn(first_cmd, pidfile, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
            if mode == "stderr":
                ready = wait_file_line(err_path, re.compile(arg), opts["ready_timeout"], first)
            elif mode == "port":
                ready = wait_listen(int(arg), opts["ready_timeout"], proc=first)
            elif mode == "none":
                ready = True
            else:
                raise SystemExit(f"runpair: bad --ready {opts['ready']}")
            if not ready:
                status = "not-ready"
                kill_group(first)
                first.wait()
                print(f"0 {rc_of(first)} 999 {status}")
                return 1
        t0 = time.perf_counter()
        with open(f"{log}.second.out", "wb") as out, open(f"{log}.second.err", "wb") as err:
            second = spawn(second_cmd, pidfile, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        procs = [p for p in (first, second) if p is not None]
        ended: dict[int, float] = {}
        changed = threading.Event()

        def reap(p: subprocess.Popen) -> None:
            p.wait()
            ended[p.pid] = time.perf_counter()
            changed.set()

        for p in procs:
            threading.Thread(target=reap, args=(p,), daemon=True).start()
        deadline = t0 + timeout
        while len(ended) < len(procs):
            now = time.perf_counter()
            # Once one side failed, the other may wait forever for it (a listener for its
            # peer): give it GRACE_S to finish on its own, then end it.
            failed_at = [ended[p.pid] for p in procs if p.pid in ended and p.returncode != 0]
            limit = min(deadline, failed_at[0] + GRACE_S) if failed_at else deadline
            if now >= limit:
                status = "timeout" if limit == deadline else "failed"
                for p in procs:
                    kill_group(p)
                break
            changed.wait(min(limit - now, 1.0))
            changed.clear()
        elapsed = (max(ended.values()) if len(ended) == len(procs) else time.perf_counter()) - t0
        rcs = [rc_of(p) if p is not None else 0 for p in (first, second)]
        if status == "timeout":
            rcs = [124 if rc in (999, -15, -9) else rc for rc in rcs]
        elif any(rcs):
            status = "failed"
        print(f"{elapsed:.6f} {rcs[0]} {rcs[1]} {status}")
        return 0 if status == "ok" else 1
    finally:
        for p in (second, first):
            kill_group(p, grace=1.0)


if __name__ == "__main__":
    exit_on_sigterm()
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
