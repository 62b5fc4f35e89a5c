#!/usr/bin/env python3
"""Shared helpers for benches/compare.sh (stdlib only).

As a library: listening-port checks, child-process bookkeeping, stderr watchers.
As a command:
  benchutil.py free-port USED_FILE            print a free 127.0.0.1 TCP port not in USED_FILE
                                              (and append it there)
  benchutil.py wait-listen PORT TIMEOUT [PID] wait until something LISTENs on PORT (read from
                                              /proc/net/tcp: no probe connection is made, so a
                                              one-shot listener such as socat is not disturbed);
                                              exit 1 on timeout or if PID died first
  benchutil.py gen-tree DIR COUNT SIZE PER_DIR  COUNT random files of SIZE bytes under DIR,
                                              PER_DIR files per folder, folders nested two deep
  benchutil.py verify-tree SRC DST            DST holds exactly SRC's files, byte for byte
"""

from __future__ import annotations

import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

# --------------------------------------------------------------------------------------------
# ports


def listening_ports() -> set[int]:
    """Local ports in LISTEN state (TCP over IPv4 and IPv6), from /proc/net/tcp{,6}."""
    ports: set[int] = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name, encoding="ascii") as f:
                next(f, None)
                for line in f:
                    fields = line.split()
                    if len(fields) > 3 and fields[3] == "0A":
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except OSError:
            continue
    return ports


def pid_alive(pid: int) -> bool:
    try:
        pid_done, _ = os.waitpid(pid, os.WNOHANG)
        if pid_done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return False


def wait_listen(port: int, timeout: float, proc=None, pid: int | None = None) -> bool:
    """Poll until `port` is listening. False on timeout or if the process died first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port in listening_ports():
            return True
        if proc is not None and proc.poll() is not None:
            return False
        if pid is not None and not pid_alive(pid):
            return False
        time.sleep(0.002)
    return False


def free_port(used_file: str | None) -> int:
    used: set[int] = set()
    if used_file and os.path.exists(used_file):
        with open(used_file, encoding="ascii") as f:
            used = {int(x) for x in f.read().split()}
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in used and port not in listening_ports():
            if used_file:
                with open(used_file, "a", encoding="ascii") as f:
                    f.write(f"{port}\n")
            return port
    raise SystemExit("benchutil: no free port found")


# --------------------------------------------------------------------------------------------
# children


def register_pid(pidfile: str | None, pid: int) -> None:
    """Note a child's pid (it leads its own process group) so compare.sh's trap can end it."""
    if pidfile:
        with open(pidfile, "a", encoding="ascii") as f:
            f.write(f"{pid}\n")


def spawn(cmd: list[str], pidfile: str | None, **kw) -> subprocess.Popen:
    """Start `cmd` in its own session (so the whole group can be ended) and register it."""
    proc = subprocess.Popen(cmd, start_new_session=True, **kw)
    register_pid(pidfile, proc.pid)
    return proc


def kill_group(proc: subprocess.Popen | None, grace: float = 3.0) -> None:
    """SIGTERM the child's process group, SIGKILL after `grace` seconds if still there."""
    if proc is None or proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so `finally` blocks end this helper's children."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def report(result: dict) -> int:
    """Print a helper's results as key=value lines for compare.sh; 0 if it went fine."""
    for k, v in result.items():
        print(f"{k}={v}")
    return 0 if result["status"] == "ok" else 1


def run_main(main) -> None:
    """Run a helper's main(): ends on SIGTERM like on Ctrl-C, exit status from main()."""
    exit_on_sigterm()
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)


def rc_of(proc: subprocess.Popen) -> int:
    rc = proc.returncode
    return 999 if rc is None else rc


class PipeLines(threading.Thread):
    """Reads a child's pipe line by line on a thread of its own and copies each line to an
    optional log file; a subclass's `take` says what a line means and how it is logged."""

    def __init__(self, pipe, log_path: str | None):
        super().__init__(daemon=True)
        self.pipe = pipe
        self.log_path = log_path

    def take(self, raw: bytes) -> str:
        raise NotImplementedError

    def run(self) -> None:
        log = None
        if self.log_path:
            log = open(self.log_path, "w", encoding="utf-8", errors="replace")
        try:
            for raw in iter(self.pipe.readline, b""):
                logged = self.take(raw)
                if log:
                    log.write(logged + "\n")
                    log.flush()
        except (OSError, ValueError):
            pass
        finally:
            if log:
                log.close()


class LineWatcher(PipeLines):
    """Records when lines matching given patterns were first seen (time.perf_counter())."""

    def __init__(self, pipe, log_path: str | None, patterns: dict[str, str]):
        super().__init__(pipe, log_path)
        self.patterns = {k: re.compile(v) for k, v in patterns.items()}
        self.events = {k: threading.Event() for k in patterns}
        self.seen_at: dict[str, float] = {}
        self.lines: list[str] = []

    def take(self, raw: bytes) -> str:
        now = time.perf_counter()
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        self.lines.append(line)
        for key, rx in self.patterns.items():
            if key not in self.seen_at and rx.search(line):
                self.seen_at[key] = now
                self.events[key].set()
        return line

    def wait_for(self, key: str, timeout: float, procs=()) -> bool:
        """Wait for `key`'s pattern; give up early when any of `procs` has exited (and the
        pattern still did not come once its output was drained)."""
        deadline = time.monotonic() + timeout
        ev = self.events[key]
        while time.monotonic() < deadline:
            if ev.wait(0.005):
                return True
            if any(p.poll() is not None for p in procs):
                self.join(2.0)
                return ev.is_set()
        return ev.is_set()


# --------------------------------------------------------------------------------------------
# chat lines


def percentile(sorted_vals: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_vals:
        return float("nan")
    k = max(0, math.ceil(p / 100.0 * len(sorted_vals)) - 1)
    return sorted_vals[min(k, len(sorted_vals) - 1)]


class StampedLines(PipeLines):
    """Reads the receiving end's stdout, where each line is "SEQ NS" (NS = time.time_ns() when
    it was written at the sending end); records one latency per sequence number."""

    def __init__(self, pipe, log_path: str | None):
        super().__init__(pipe, log_path)
        self.got: dict[int, int] = {}
        self.other = 0

    def take(self, raw: bytes) -> str:
        now = time.time_ns()
        text = raw.decode("utf-8", errors="replace").rstrip()
        parts = text.split()
        try:
            seq, ns = int(parts[-2]), int(parts[-1])
        except (IndexError, ValueError):
            self.other += 1
            return f"{now} {text}"
        if seq in self.got:
            self.other += 1
        else:
            self.got[seq] = now - ns
        return f"{now} {text}"


def latency_summary(reader: "StampedLines | None", sent: int) -> dict[str, object]:
    """What became of lines 1..=`sent`: how many arrived, and their latency percentiles."""
    got = reader.got if reader is not None else {}
    other = reader.other if reader is not None else 0
    lat = sorted(v / 1e6 for s, v in got.items() if 1 <= s <= sent)
    # Which line was slowest tells a start-up or end effect from a stall midway.
    worst = max((s for s in got if 1 <= s <= sent), key=lambda s: got[s], default=0)
    return {
        "sent": sent,
        "received": len(lat),
        "lost": sent - len(lat),
        "unexpected_lines": other + sum(1 for s in got if not 0 <= s <= sent),
        "p50_ms": f"{percentile(lat, 50):.3f}",
        "p99_ms": f"{percentile(lat, 99):.3f}",
        "max_ms": f"{lat[-1]:.3f}" if lat else "nan",
        "max_seq": worst,
    }


def add_chat_args(ap) -> None:
    """The options both chat-latency helpers take."""
    ap.add_argument("--file", required=True)
    ap.add_argument("--interval-ms", type=float, default=10.0)
    ap.add_argument("--timeout", type=float, default=3600.0)
    ap.add_argument("--log")
    ap.add_argument("--pidfile")


def write_paced_lines(pipe, interval_ms: float, done, procs, deadline: float,
                      first_seq: int = 1) -> tuple[int, str]:
    """Write "SEQ NS" lines to `pipe` every `interval_ms` until `done()`. Returns the last
    sequence number written and "ok", or why it stopped early: one of `procs` exited, the
    monotonic `deadline` passed, or the pipe broke."""
    interval_ns = int(interval_ms * 1e6)
    seq = first_seq - 1
    next_at = time.monotonic_ns()
    while not done():
        if any(p.poll() is not None for p in procs):
            return seq, "exited-early"
        if time.monotonic() > deadline:
            return seq, "timeout"
        try:
            pipe.write(f"{seq + 1} {time.time_ns()}\n".encode())
        except (BrokenPipeError, OSError):
            return seq, "stdin-broken"
        seq += 1
        next_at += interval_ns
        now = time.monotonic_ns()
        if next_at < now - interval_ns:  # fell behind (the write blocked): no burst
            next_at = now
        # Sleep in small slices so that the end is noticed promptly.
        while (left := next_at - time.monotonic_ns()) > 0 and not done():
            time.sleep(min(left, 2_000_000) / 1e9)
    return seq, "ok"

# --------------------------------------------------------------------------------------------
# file trees


def gen_tree(root: str, count: int, size: int, per_dir: int) -> None:
    for i in range(count):
        leaf = i // per_dir
        d = os.path.join(root, f"d{leaf // per_dir:03d}", f"d{leaf:05d}")
        if i % per_dir == 0:
            os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"f{i:06d}.bin"), "wb") as f:
            f.write(os.urandom(size))


def tree_files(root: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = os.path.join(dirpath, name)
            out[os.path.relpath(p, root)] = os.path.getsize(p)
    return out


def verify_tree(src: str, dst: str) -> int:
    a, b = tree_files(src), tree_files(dst)
    missing = sorted(set(a) - set(b))
    extra = sorted(set(b) - set(a))
    problems: list[str] = []
    if missing:
        problems.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if extra:
        problems.append(f"{len(extra)} unexpected (e.g. {extra[0]})")
    differ = 0
    first_diff = ""
    for rel in sorted(set(a) & set(b)):
        same = a[rel] == b[rel]
        if same:
            with open(os.path.join(src, rel), "rb") as f1, open(os.path.join(dst, rel), "rb") as f2:
                same = f1.read() == f2.read()
        if not same:
            differ += 1
            first_diff = first_diff or rel
    if differ:
        problems.append(f"{differ} differ (e.g. {first_diff})")
    if problems:
        print(f"verify-tree: {dst}: " + "; ".join(problems), file=sys.stderr)
        return 1
    print(f"ok {len(b)} files")
    return 0


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[0], argv[1:]
    if cmd == "free-port":
        print(free_port(args[0] if args else None))
        return 0
    if cmd == "wait-listen":
        pid = int(args[2]) if len(args) > 2 else None
        return 0 if wait_listen(int(args[0]), float(args[1]), pid=pid) else 1
    if cmd == "gen-tree":
        gen_tree(args[0], int(args[1]), int(args[2]), int(args[3]))
        return 0
    if cmd == "verify-tree":
        return verify_tree(args[0], args[1])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
