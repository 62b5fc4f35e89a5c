//! Helpers shared by the integration tests: spawn `tern` (and Python peers) with every output
//! stream read in a background thread, wait for lines with a timeout, pick free ports, make
//! pseudo-random files and compare folder trees. `netns` makes network namespaces (Linux),
//! `pty` runs tern in a pseudo-terminal.
//!
//! Nothing here sleeps to wait for readiness: readiness is a line on a stream, and every wait
//! has a deadline after which the child is killed and the test fails with everything it printed.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

#[cfg(target_os = "linux")]
pub mod netns;
#[cfg(unix)]
pub mod pty;
pub mod tutorial;

/// How long any one child may run, or any one wait may last, unless a test says otherwise.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// The `tern` binary cargo built for these tests.
pub fn tern_bin() -> &'static str {
    env!("CARGO_BIN_EXE_tern")
}

/// The folder holding the Python peers (`tests/peers`).
pub fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("peers")
}

/// One output stream of a child, read line by line in a background thread.
pub struct LineStream {
    rx: Receiver<Vec<u8>>,
    /// Every chunk read so far, each one line including its `\n` (the last may lack it).
    lines: Vec<Vec<u8>>,
    /// Index of the first line no `wait_line` has looked at yet.
    cursor: usize,
    /// The writer closed its end (the reader thread saw EOF or an error).
    closed: bool,
}

impl LineStream {
    fn start<R: Read + Send + 'static>(reader: R) -> Self {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(reader);
            loop {
                let mut line = Vec::new();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Self {
            rx,
            lines: Vec::new(),
            cursor: 0,
            closed: false,
        }
    }

    /// Take whatever has arrived, without waiting.
    fn poll(&mut self) {
        loop {
            match self.rx.try_recv() {
                Ok(line) => self.lines.push(line),
                Err(mpsc::TryRecvError::Empty) => return,
                Err(mpsc::TryRecvError::Disconnected) => {
                    self.closed = true;
                    return;
                }
            }
        }
    }

    /// Wait for the next line (after the previous match) that `pred` accepts; the line is given
    /// to `pred` and returned without its line ending, decoded as UTF-8 (lossily).
    fn wait_line(
        &mut self,
        deadline: Instant,
        pred: &mut dyn FnMut(&str) -> bool,
    ) -> Result<String, WaitError> {
        loop {
            while self.cursor < self.lines.len() {
                let line = trim_eol(&self.lines[self.cursor]);
                self.cursor += 1;
                if pred(&line) {
                    return Ok(line);
                }
            }
            if self.closed {
                return Err(WaitError::Closed);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(WaitError::TimedOut);
            }
            match self.rx.recv_timeout(deadline - now) {
                Ok(line) => self.lines.push(line),
                Err(RecvTimeoutError::Timeout) => return Err(WaitError::TimedOut),
                Err(RecvTimeoutError::Disconnected) => self.closed = true,
            }
        }
    }

    /// Read until the writer closes or `deadline` passes; true if it closed.
    fn drain(&mut self, deadline: Instant) -> bool {
        while !self.closed {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            match self.rx.recv_timeout(deadline - now) {
                Ok(line) => self.lines.push(line),
                Err(RecvTimeoutError::Timeout) => return false,
                Err(RecvTimeoutError::Disconnected) => self.closed = true,
            }
        }
        true
    }

    /// Every byte read so far.
    pub fn bytes(&self) -> Vec<u8> {
        self.lines.concat()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }
}

#[derive(Debug)]
enum WaitError {
    TimedOut,
    Closed,
}

fn trim_eol(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    String::from_utf8_lossy(line).into_owned()
}

/// A running child with its stdin (piped) and its stdout and stderr read in the background.
/// Dropping it kills the child, so a failing test never leaves a process behind.
pub struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    pub stdout: LineStream,
    pub stderr: LineStream,
    started: Instant,
    /// Started as `wine PROGRAM`.
    under_wine: bool,
    /// Kept alive as long as the child (tern's log folder).
    _log_dir: Option<tempfile::TempDir>,
}

/// A child that has exited, with everything it printed.
pub struct Finished {
    pub name: String,
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
    /// Run as `wine PROGRAM` (see [`Finished::exit_code_lost`]).
    under_wine: bool,
}

impl Finished {
    pub fn stdout_text(&self) -> anyhow::Result<String> {
        String::from_utf8(self.stdout.clone())
            .with_context(|| format!("{}: stdout is not valid UTF-8\n{}", self.name, self))
    }

    /// Fail unless the child exited with status 0, or ran under wine and its exit code was
    /// lost (said on stderr; the test's checks of what it did then decide).
    pub fn ensure_success(&self) -> anyhow::Result<()> {
        if self.exit_code_lost() {
            eprintln!(
                "{}: exit code lost: wineserver SIGKILLed it after its Windows side had ended",
                self.name
            );
            return Ok(());
        }
        if !self.status.success() {
            bail!(
                "{} exited with {}, expected success\n{}",
                self.name,
                self.status,
                self
            );
        }
        Ok(())
    }

    /// wineserver SIGKILLs a process whose Windows threads have all ended but whose Unix side
    /// has not exited soon after (within half a second to a second, by wine version; a loaded
    /// machine can miss that), and then the Windows exit code is lost. A harness deadline is an
    /// error, never a `Finished`, so under wine that signal can only have come from there.
    #[cfg(unix)]
    fn exit_code_lost(&self) -> bool {
        use std::os::unix::process::ExitStatusExt;
        self.under_wine && self.status.signal() == Some(9)
    }

    #[cfg(not(unix))]
    fn exit_code_lost(&self) -> bool {
        false
    }

    /// Fail unless the child exited with a non-zero status (not killed by a signal).
    pub fn ensure_failure(&self) -> anyhow::Result<()> {
        match self.status.code() {
            Some(code) if code != 0 => Ok(()),
            _ => bail!(
                "{} exited with {}, expected failure\n{}",
                self.name,
                self.status,
                self
            ),
        }
    }
}

impl std::fmt::Display for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "--- {} stdout ---\n{}\n--- {} stderr ---\n{}",
            self.name,
            String::from_utf8_lossy(&self.stdout),
            self.name,
            self.stderr
        )
    }
}

/// Wine's CreateProcess now and then fails with ERROR_INTERNAL_ERROR (1359) while its server is
/// busy starting other processes; that says nothing about tern, so the Windows build's tests try
/// again, saying so, rather than fail on the emulator's hiccup.
fn spawn_retrying_emulator_hiccups(cmd: &mut Command) -> std::io::Result<Child> {
    const ERROR_INTERNAL_ERROR: i32 = 1359;
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Err(e)
                if cfg!(windows) && e.raw_os_error() == Some(ERROR_INTERNAL_ERROR) && tries < 5 =>
            {
                tries += 1;
                eprintln!("spawn failed with {e}; trying again ({tries} of 5)");
                std::thread::sleep(Duration::from_millis(200 * tries));
            }
            result => return result,
        }
    }
}

impl Proc {
    /// Start `cmd` with all three standard streams piped.
    pub fn spawn(name: impl Into<String>, mut cmd: Command) -> anyhow::Result<Self> {
        let name = name.into();
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let under_wine = cmd.get_program() == "wine";
        let mut child = spawn_retrying_emulator_hiccups(&mut cmd)
            .with_context(|| format!("spawning {name}: {cmd:?}"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("child stdout")?;
        let stderr = child.stderr.take().context("child stderr")?;
        Ok(Self {
            name,
            child,
            stdin,
            stdout: LineStream::start(stdout),
            stderr: LineStream::start(stderr),
            started: Instant::now(),
            under_wine,
            _log_dir: None,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The child's process id (the program itself when started through `ip netns exec`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything printed so far, for failure messages.
    pub fn describe(&mut self) -> String {
        self.stdout.poll();
        self.stderr.poll();
        format!(
            "--- {} stdout so far ---\n{}\n--- {} stderr so far ---\n{}",
            self.name,
            self.stdout.text(),
            self.name,
            self.stderr.text()
        )
    }

    /// Write to the child's stdin (which stays open).
    pub fn write_stdin(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .with_context(|| format!("{}: stdin already closed", self.name))?;
        stdin
            .write_all(bytes)
            .and_then(|()| stdin.flush())
            .with_context(|| format!("{}: writing stdin", self.name))
    }

    /// Close the child's stdin (EOF).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    fn wait_on(
        &mut self,
        stderr: bool,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&str) -> bool,
    ) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        let stream = if stderr {
            &mut self.stderr
        } else {
            &mut self.stdout
        };
        match stream.wait_line(deadline, &mut pred) {
            Ok(line) => Ok(line),
            Err(e) => {
                let which = if stderr { "stderr" } else { "stdout" };
                let why = match e {
                    WaitError::TimedOut => format!("not within {timeout:?}"),
                    WaitError::Closed => "the stream ended first".to_string(),
                };
                let exited = self.child.try_wait().ok().flatten();
                let seen = self.describe();
                bail!(
                    "{}: waiting for {what} on {which}: {why} (exit status: {exited:?})\n{seen}",
                    self.name
                )
            }
        }
    }

    /// Wait for a stderr line that `pred` accepts.
    pub fn wait_stderr(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl FnMut(&str) -> bool,
    ) -> anyhow::Result<String> {
        self.wait_on(true, what, timeout, pred)
    }

    /// Wait for a stdout line that `pred` accepts.
    pub fn wait_stdout(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl FnMut(&str) -> bool,
    ) -> anyhow::Result<String> {
        self.wait_on(false, what, timeout, pred)
    }

    /// Kill the child at once (SIGKILL on Unix: no handler runs, nothing is flushed) and
    /// reap it.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        self.child.kill().context("killing a child")?;
        self.child.wait().context("reaping a child")?;
        Ok(())
    }

    /// Close stdin, wait for the child to exit (killing it after `timeout`), and collect the
    /// rest of its output.
    pub fn finish(&mut self, timeout: Duration) -> anyhow::Result<Finished> {
        self.close_stdin();
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().context("waiting for a child")? {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let seen = self.describe();
                bail!(
                    "{} did not exit within {timeout:?} (killed after {:?})\n{seen}",
                    self.name,
                    self.started.elapsed()
                );
            }
            // Polling the exit status; readiness is never waited for this way.
            thread::sleep(Duration::from_millis(10));
        };
        // The pipes close with the process; allow a little time for the readers to finish.
        let drain_deadline = Instant::now() + Duration::from_secs(10);
        let closed = self.stdout.drain(drain_deadline) & self.stderr.drain(drain_deadline);
        if !closed {
            let seen = self.describe();
            bail!("{}: output still open after exit\n{seen}", self.name);
        }
        Ok(Finished {
            name: self.name.clone(),
            under_wine: self.under_wine,
            status,
            stdout: self.stdout.bytes(),
            stderr: self.stderr.text(),
        })
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Say that `test` did not run, and why, in one `SKIPPED: TEST: WHY` line for CI to find (CI
/// fails a run that has one). Written on the process's own stderr: `eprintln!` in a test is
/// captured by the harness and shown only for a failure.
pub fn skip(test: &str, why: &str) {
    let line = format!("SKIPPED: {test}: {why}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// A `tern` command whose log, history, identity and known peers go to `log_dir` (never the
/// home folder): each process is a machine of its own. A test that reads the history sets
/// `TERN_DATA_DIR` itself, one that keeps an identity across runs `TERN_CONFIG_DIR`.
pub fn tern_command<I, S>(log_dir: &Path, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(tern_bin());
    cmd.args(args)
        .env("TERN_LOG_DIR", log_dir)
        .env("TERN_DATA_DIR", log_dir)
        .env("TERN_CONFIG_DIR", log_dir)
        .env(DISCOVERY_PORT_VAR, lonely_discovery_port())
        .env_remove("TERN_LOG");
    cmd
}

/// Where tern's discovery port may be moved.
pub const DISCOVERY_PORT_VAR: &str = "TERN_DISCOVERY_PORT";

/// A discovery port for one tern alone: tests run side by side on one host, and a TUI that
/// listed the listeners of other tests would number its peers differently. The discovery
/// tests, in namespaces of their own, use the real port.
pub fn lonely_discovery_port() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    (20_000 + (std::process::id().wrapping_mul(97).wrapping_add(n)) % 40_000).to_string()
}

/// Start the command `make` builds for a fresh log folder (a tern, however it is run: this
/// build, or another one under an emulator); the folder lives as long as the child.
pub fn spawn_logged(name: &str, make: impl FnOnce(&Path) -> Command) -> anyhow::Result<Proc> {
    let log_dir = tempfile::tempdir().context("creating a log folder")?;
    let mut proc = Proc::spawn(name, make(log_dir.path()))?;
    proc._log_dir = Some(log_dir);
    Ok(proc)
}

/// Start `tern ARGS` with a fresh log folder.
pub fn spawn_tern<I, S>(name: &str, args: I) -> anyhow::Result<Proc>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    spawn_logged(name, |log_dir| tern_command(log_dir, args))
}

/// Run `tern ARGS` with `stdin` as its whole input, until it exits (at most `timeout`).
pub fn run_tern<I, S>(args: I, stdin: &[u8], timeout: Duration) -> anyhow::Result<Finished>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut proc = spawn_tern("tern", args)?;
    if !stdin.is_empty() {
        proc.write_stdin(stdin)?;
    }
    proc.finish(timeout)
}

/// A port on 127.0.0.1 that was free a moment ago (the OS picked it for a listener we dropped).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// True for tern's "listening" line.
pub fn is_listening_line(line: &str) -> bool {
    line.starts_with("tern: listening on")
}

/// Start `tern recv --once --bind 127.0.0.1 --port P EXTRA...` on a free port and wait until it
/// listens. A port taken between picking and binding is retried with another one.
pub fn spawn_recv(name: &str, extra: &[&OsStr]) -> anyhow::Result<(Proc, u16)> {
    spawn_recv_with(name, extra, |name, args| spawn_tern(name, args))
}

/// [`spawn_recv`] with the tern started by `spawn(name, ARGS)`.
pub fn spawn_recv_with(
    name: &str,
    extra: &[&OsStr],
    spawn: impl Fn(&str, &[&OsStr]) -> anyhow::Result<Proc>,
) -> anyhow::Result<(Proc, u16)> {
    let mut last_error = None;
    for _ in 0..5 {
        let port = free_port()?;
        let port_arg = port.to_string();
        let mut args: Vec<&OsStr> = vec![
            OsStr::new("recv"),
            OsStr::new("--once"),
            OsStr::new("--bind"),
            OsStr::new("127.0.0.1"),
            OsStr::new("--port"),
            OsStr::new(&port_arg),
        ];
        args.extend_from_slice(extra);
        let mut proc = spawn(name, &args)?;
        match proc.wait_stderr("the listening line", TIMEOUT, is_listening_line) {
            Ok(line) => {
                if !line.contains(&format!(":{port}")) {
                    bail!("{name}: listening line does not name port {port}: {line}");
                }
                return Ok((proc, port));
            }
            Err(e) => {
                let bind_failed = proc.stderr.text().contains("cannot listen on");
                if !bind_failed {
                    return Err(e);
                }
                last_error = Some(e);
            }
        }
    }
    Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no free port found")))
}

/// [`spawn_recv`] accepting every offer (`--yes`) into `inbox`.
pub fn spawn_recv_into(name: &str, inbox: &Path) -> anyhow::Result<(Proc, u16)> {
    spawn_recv(
        name,
        &[
            OsStr::new("--yes"),
            OsStr::new("--download-dir"),
            inbox.as_os_str(),
        ],
    )
}

/// Start `python3 ARGS` with UTF-8 standard streams and no output buffering.
pub fn spawn_python<I, S>(name: &str, args: I) -> anyhow::Result<Proc>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new("python3");
    cmd.arg("-u")
        .args(args)
        .env("PYTHONIOENCODING", "utf-8")
        .env("PYTHONUNBUFFERED", "1");
    Proc::spawn(name, cmd)
}

/// Deterministic pseudo-random bytes (xorshift64*).
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        // Zero is the one state xorshift never leaves.
        Self(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// Write `len` pseudo-random bytes from `seed` to `path` (parents created).
pub fn write_random_file(path: &Path, len: usize, seed: u64) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    let mut rng = XorShift::new(seed);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len());
        rng.fill(&mut buf[..n]);
        file.write_all(&buf[..n])?;
        left -= n;
    }
    file.flush()?;
    Ok(())
}

/// Write `bytes` to `path` (parents created).
pub fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// Every regular file below `root`, by `/`-separated path relative to `root`.
pub fn list_files(root: &Path) -> anyhow::Result<BTreeMap<String, PathBuf>> {
    fn walk(dir: &Path, rel: &str, out: &mut BTreeMap<String, PathBuf>) -> anyhow::Result<()> {
        for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let child_rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let file_type = entry.file_type()?;
            if file_type.is_dir() {
                walk(&entry.path(), &child_rel, out)?;
            } else {
                out.insert(child_rel, entry.path());
            }
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    walk(root, "", &mut out)?;
    Ok(out)
}

/// Every entry below `root`, files and folders alike, by `/`-separated path relative to
/// `root`; a folder's ends in `/`, so an empty folder left behind shows too.
pub fn list_tree(root: &Path) -> anyhow::Result<BTreeSet<String>> {
    fn walk(dir: &Path, rel: &str, out: &mut BTreeSet<String>) -> anyhow::Result<()> {
        for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let child_rel = format!("{rel}{name}");
            if entry.file_type()?.is_dir() {
                out.insert(format!("{child_rel}/"));
                walk(&entry.path(), &format!("{child_rel}/"), out)?;
            } else {
                out.insert(child_rel);
            }
        }
        Ok(())
    }
    let mut out = BTreeSet::new();
    walk(root, "", &mut out)?;
    Ok(out)
}

/// Fail unless the two files have the same bytes (without printing them).
pub fn ensure_same_file(expected: &Path, actual: &Path) -> anyhow::Result<()> {
    let a = std::fs::read(expected).with_context(|| format!("reading {}", expected.display()))?;
    let b = std::fs::read(actual).with_context(|| format!("reading {}", actual.display()))?;
    if a != b {
        let first_diff = a.iter().zip(&b).position(|(x, y)| x != y);
        bail!(
            "{} ({} bytes) differs from {} ({} bytes); first differing byte: {first_diff:?}",
            actual.display(),
            b.len(),
            expected.display(),
            a.len()
        );
    }
    Ok(())
}

/// The fingerprint on the first line of a finished `tern id`.
pub fn fingerprint_printed(id: &Finished) -> anyhow::Result<String> {
    id.ensure_success()?;
    let line = id
        .stdout_text()?
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    anyhow::ensure!(
        line.len() == 24,
        "tern id's first line is not a fingerprint\n{id}"
    );
    Ok(line)
}
