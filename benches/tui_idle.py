#!/usr/bin/env python3
"""CPU used by tern's terminal UI while idle (stdlib only).

  tui_idle.py --tern BIN --port P [--seconds 10] [--settle 1] [--download-dir D]
              [--log FILE] [--pidfile FILE]

Runs `tern listen --bind 127.0.0.1 --port P` in a pseudo-terminal (pty.fork: the slave is its
controlling terminal, stdin, stdout and stderr; TERM=xterm-256color; 120x40), drains the
master in a thread (answering cursor-position queries), waits until the port listens, lets it
settle, then reads utime+stime of the process from /proc/PID/stat over the measuring window.
Then types Ctrl-C and waits for tern to exit.

Prints key=value lines: cpu_ms (CPU time used during the window), window_s, tty_bytes (bytes
tern wrote to the terminal during the window), exit (tern's exit code after Ctrl-C, or
"killed"), status. Exits 0 when tern started, was measured and quit on Ctrl-C with 0.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import signal
import struct
import termios
import threading
import time

from benchutil import register_pid, report, run_main, wait_listen

ROWS, COLS = 40, 120


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After "(comm)": state is field 3, utime 14, stime 15 (1-based over the whole line).
    return int(fields[11]) + int(fields[12])


class Drain(threading.Thread):
    def __init__(self, fd: int, log_path: str | None):
        super().__init__(daemon=True)
        self.fd = fd
        self.total = 0
        self.log = open(log_path, "wb") if log_path else None

    def run(self) -> None:
        tail = b""
        while True:
            try:
                data = os.read(self.fd, 65536)
            except OSError:
                break
            if not data:
                break
            self.total += len(data)
            if self.log:
                self.log.write(data)
            # A terminal answers "where is the cursor?"; do so in case the UI ever asks.
            window = tail + data
            for _ in range(window.count(b"\x1b[6n")):
                try:
                    os.write(self.fd, b"\x1b[1;1R")
                except OSError:
                    pass
            tail = window[-3:]
        if self.log:
            self.log.close()


def wait_exit(pid: int, timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    return None


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tern", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--settle", type=float, default=1.0)
    ap.add_argument("--download-dir")
    ap.add_argument("--log")
    ap.add_argument("--pidfile")
    a = ap.parse_args()
    cmd = [a.tern, "listen", "--bind", "127.0.0.1", "--port", str(a.port)]
    if a.download_dir:
        cmd += ["--download-dir", a.download_dir]
    env = dict(os.environ, TERM="xterm-256color", COLUMNS=str(COLS), LINES=str(ROWS))
    env.pop("NO_COLOR", None)

    pid, master = pty.fork()
    if pid == 0:  # child: the pty slave is already stdin/stdout/stderr and controlling tty
        try:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
            os.execvpe(cmd[0], cmd, env)
        finally:
            os._exit(127)
    register_pid(a.pidfile, pid)
    result: dict[str, object] = {"status": "ok"}
    exited: int | None = None
    drain = Drain(master, a.log)
    drain.start()
    try:
        if not wait_listen(a.port, 60.0, pid=pid):
            result["status"] = "not-listening"
        else:
            time.sleep(a.settle)
            b0, c0, t0 = drain.total, cpu_ticks(pid), time.monotonic()
            time.sleep(a.seconds)
            c1, t1, b1 = cpu_ticks(pid), time.monotonic(), drain.total
            hz = os.sysconf("SC_CLK_TCK")
            result["cpu_ms"] = round((c1 - c0) * 1000 / hz)
            result["window_s"] = f"{t1 - t0:.2f}"
            result["tty_bytes"] = b1 - b0
        os.write(master, b"\x03")
        exited = wait_exit(pid, 10.0)
        if exited is None:
            result["status"] = result["status"] if result["status"] != "ok" else "no-exit-on-ctrl-c"
            os.kill(pid, signal.SIGTERM)
            if wait_exit(pid, 5.0) is None:
                os.kill(pid, signal.SIGKILL)
                wait_exit(pid, 5.0)
            result["exit"] = "killed"
        else:
            result["exit"] = exited
            if exited != 0 and result["status"] == "ok":
                result["status"] = "bad-exit"
    finally:
        if exited is None and result.get("exit") != "killed":  # interrupted: leave nothing behind
            try:
                os.kill(pid, signal.SIGKILL)
                wait_exit(pid, 5.0)
            except (ProcessLookupError, ChildProcessError):
                pass
        drain.join(2.0)
        try:
            os.close(master)
        except OSError:
            pass
    return report(result)


if __name__ == "__main__":
    run_main(main)
