//! End-to-end tests of the terminal UI: the real `tern` binary runs in a pseudo-terminal, its
//! output is parsed by a terminal emulator (`vt100`), and the tests type, paste and resize as a
//! user would, then read the screen.
//!
//! Nothing sleeps to wait for readiness: every wait polls the parsed screen (or the file system)
//! against a deadline, and a failure reports what the screen showed. Dropping a `Tui` kills its
//! child, so a failing test leaves nothing running.
#![cfg(unix)] // a pseudo-terminal (portable-pty, nix): Unix only
#![cfg(unix)]

mod common;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::termios::{LocalFlags, Termios};
use portable_pty::{Child, CommandBuilder, ExitStatus, MasterPty, PtySize, native_pty_system};

use common::{ensure_same_file, free_port, tern_bin, write_random_file};

/// How long any one wait may last.
const TIMEOUT: Duration = Duration::from_secs(30);
/// How often the screen (or the file system) is looked at while waiting.
const POLL: Duration = Duration::from_millis(50);

/// Bracketed paste, as a terminal sends it when files are dropped on it.
const PASTE_START: &str = "\x1b[200~";
const PASTE_END: &str = "\x1b[201~";
const CTRL_C: &str = "\x03";
const F1: &str = "\x1bOP";
const ESC: &str = "\x1b";

/// `tern` running in a pseudo-terminal of its own, with the terminal's screen kept up to date
/// by a reader thread.
struct Tui {
    name: String,
    master: Box<dyn MasterPty + Send>,
    writer: Box<dyn Write + Send>,
    child: Box<dyn Child + Send + Sync>,
    parser: Arc<Mutex<vt100::Parser>>,
    reader: Option<JoinHandle<()>>,
    /// HOME (and the log folder) of the child; removed when the `Tui` is dropped.
    home: tempfile::TempDir,
}

fn lock(parser: &Mutex<vt100::Parser>) -> MutexGuard<'_, vt100::Parser> {
    // A panic elsewhere must not hide the screen from the failure report.
    parser.lock().unwrap_or_else(|e| e.into_inner())
}

fn vt_size(cols: u16, rows: u16) -> Result<(std::num::NonZeroU16, std::num::NonZeroU16)> {
    let rows = std::num::NonZeroU16::new(rows).context("zero rows")?;
    let cols = std::num::NonZeroU16::new(cols).context("zero columns")?;
    Ok((rows, cols))
}

impl Tui {
    /// Start `tern ARGS` in a fresh `cols`×`rows` pseudo-terminal, with its own HOME and log
    /// folder.
    fn spawn<S: Into<OsString>>(
        name: &str,
        args: impl IntoIterator<Item = S>,
        cols: u16,
        rows: u16,
    ) -> Result<Self> {
        Self::spawn_with(name, args, cols, rows, None)
    }

    /// [`Tui::spawn`], its history in `data` when given (else in its own HOME).
    fn spawn_with<S: Into<OsString>>(
        name: &str,
        args: impl IntoIterator<Item = S>,
        cols: u16,
        rows: u16,
        data: Option<&Path>,
    ) -> Result<Self> {
        let home = tempfile::tempdir().context("creating a HOME for the child")?;
        let pair = native_pty_system()
            .openpty(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .context("opening a pseudo-terminal")?;
        let mut cmd = CommandBuilder::new(tern_bin());
        for arg in args {
            cmd.arg(arg.into());
        }
        cmd.cwd(home.path());
        cmd.env("HOME", home.path());
        cmd.env("TERN_LOG_DIR", home.path().join("logs"));
        cmd.env(
            "TERN_DATA_DIR",
            data.map_or_else(|| home.path().join("data"), Path::to_path_buf),
        );
        cmd.env("TERM", "xterm-256color");
        cmd.env_remove("TERN_LOG");
        cmd.env_remove("NO_COLOR");
        let child = pair
            .slave
            .spawn_command(cmd)
            .with_context(|| format!("spawning {name} in a pseudo-terminal"))?;
        // Only the child holds the terminal's slave side now, so the reader sees the end of
        // output when the child exits.
        drop(pair.slave);
        let master = pair.master;
        let mut reader = master
            .try_clone_reader()
            .context("cloning the pty reader")?;
        let writer = master.take_writer().context("taking the pty writer")?;
        let (vt_rows, vt_cols) = vt_size(cols, rows)?;
        let parser = Arc::new(Mutex::new(vt100::Parser::new(vt_rows, vt_cols, 0)));
        let screen = Arc::clone(&parser);
        let reader = thread::Builder::new()
            .name(format!("{name}-pty-reader"))
            .spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                loop {
                    match reader.read(&mut buf) {
                        // EIO once the child (the last holder of the slave side) is gone.
                        Ok(0) => break,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                        Ok(n) => lock(&screen).process(&buf[..n]),
                    }
                }
            })
            .context("starting the pty reader thread")?;
        Ok(Self {
            name: name.to_string(),
            master,
            writer,
            child,
            parser,
            reader: Some(reader),
            home,
        })
    }

    /// `tern listen --bind 127.0.0.1 --port P EXTRA...` on a free port, waited for until its
    /// screen says it listens. A port taken between picking and binding is retried.
    fn listen(name: &str, extra: &[&str]) -> Result<(Self, u16)> {
        let mut last_error = None;
        for _ in 0..5 {
            let port = free_port()?;
            let mut args = vec![
                "listen".to_string(),
                "--bind".into(),
                "127.0.0.1".into(),
                "--port".into(),
                port.to_string(),
                "--name".into(),
                name.into(),
            ];
            args.extend(extra.iter().map(|s| s.to_string()));
            let mut tui = Self::spawn(name, args, 120, 36)?;
            let listening = format!("listening on 127.0.0.1:{port}");
            match tui.wait_for(&listening, |s| s.contains(&listening)) {
                Ok(_) => return Ok((tui, port)),
                // Exited before listening: most likely the port was taken meanwhile.
                Err(e) if tui.exit_status().is_some() => last_error = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no free port found")))
    }

    /// The text on the screen now.
    fn screen_text(&self) -> String {
        lock(&self.parser).screen().contents()
    }

    /// Run `f` on the emulated terminal's state.
    fn with_screen<T>(&self, f: impl FnOnce(&vt100::Screen) -> T) -> T {
        f(lock(&self.parser).screen())
    }

    /// Type (or paste) raw bytes into the terminal.
    fn write(&mut self, text: &str) -> Result<()> {
        self.writer
            .write_all(text.as_bytes())
            .and_then(|()| self.writer.flush())
            .with_context(|| format!("{}: writing to the terminal", self.name))
    }

    /// Resize the terminal, as a user dragging the window's corner would.
    fn resize(&mut self, cols: u16, rows: u16) -> Result<()> {
        let (vt_rows, vt_cols) = vt_size(cols, rows)?;
        // The emulator first, so the redraw the child makes for the new size lands in it.
        lock(&self.parser).set_size(vt_rows, vt_cols);
        self.master
            .resize(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .with_context(|| format!("{}: resizing the terminal", self.name))
    }

    /// The terminal's line settings (raw mode or not).
    fn termios(&self) -> Result<Termios> {
        self.master
            .get_termios()
            .with_context(|| format!("{}: reading the terminal's termios", self.name))
    }

    fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Wait until the reader thread has taken everything the (exited) child wrote.
    fn drain_output(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while let Some(reader) = &self.reader {
            if reader.is_finished() {
                if let Some(reader) = self.reader.take() {
                    let _ = reader.join();
                }
                break;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(POLL);
        }
        true
    }

    /// Wait until the screen text satisfies `pred`; returns that text. Fails (with the screen)
    /// after `TIMEOUT`, or as soon as the child has exited without the screen satisfying it.
    fn wait_for(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> Result<String> {
        let start = Instant::now();
        loop {
            let text = self.screen_text();
            if pred(&text) {
                return Ok(text);
            }
            if let Some(status) = self.exit_status() {
                self.drain_output(Duration::from_secs(5));
                let text = self.screen_text();
                if pred(&text) {
                    return Ok(text);
                }
                bail!(
                    "{}: waiting for {what}: tern exited ({status:?}) first\n{}",
                    self.name,
                    self.report()
                );
            }
            if start.elapsed() >= TIMEOUT {
                bail!(
                    "{}: waiting for {what}: not within {TIMEOUT:?}\n{}",
                    self.name,
                    self.report()
                );
            }
            thread::sleep(POLL);
        }
    }

    fn pid(&self) -> Option<u32> {
        self.child.process_id()
    }

    /// Wait for the child to exit by itself.
    fn wait_exit(&mut self) -> Result<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.exit_status() {
                if !self.drain_output(Duration::from_secs(5)) {
                    bail!(
                        "{}: terminal output still open after exit\n{}",
                        self.name,
                        self.report()
                    );
                }
                return Ok(status);
            }
            if start.elapsed() >= TIMEOUT {
                bail!(
                    "{}: did not exit within {TIMEOUT:?}\n{}",
                    self.name,
                    self.report()
                );
            }
            thread::sleep(POLL);
        }
    }

    /// The screen and the end of the log, for failure messages.
    fn report(&self) -> String {
        let (rows, cols) = self.with_screen(|s| s.size());
        let log = std::fs::read_to_string(self.home.path().join("logs").join("tern.log"))
            .unwrap_or_default();
        let log_tail: Vec<&str> = log.lines().rev().take(20).collect();
        let log_tail: Vec<&str> = log_tail.into_iter().rev().collect();
        format!(
            "--- {name} screen ({cols}x{rows}) ---\n{screen}\n--- {name} tern.log (last lines) ---\n{log}",
            name = self.name,
            screen = self.screen_text(),
            log = log_tail.join("\n"),
        )
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        if self.exit_status().is_none() {
            // SIGHUP, then SIGKILL if it is still there.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `tern connect 127.0.0.1:PORT --name NAME`, in a 120×36 terminal.
fn connect(name: &str, port: u16) -> Result<Tui> {
    let target = format!("127.0.0.1:{port}");
    Tui::spawn(name, ["connect", &target, "--name", name], 120, 36)
}

/// A listening `alice` (accepting every offer into `downloads`) and a `bob` connected to her,
/// both showing the connection.
fn connected_pair(downloads: &Path) -> Result<(Tui, Tui)> {
    let dir = downloads.to_string_lossy().into_owned();
    let (mut alice, port) = Tui::listen("alice", &["--yes", "--download-dir", &dir])?;
    let mut bob = connect("bob", port)?;
    bob.wait_for("bob to show he is connected to alice", |s| {
        s.contains("connected: alice")
    })?;
    alice.wait_for("alice to show she is connected to bob", |s| {
        s.contains("connected: bob")
    })?;
    Ok((alice, bob))
}

/// Poll `check` until it returns true, failing after `TIMEOUT` with `describe()`.
fn wait_until(
    what: &str,
    mut check: impl FnMut() -> Result<bool>,
    describe: impl Fn() -> String,
) -> Result<()> {
    let start = Instant::now();
    loop {
        if check()? {
            return Ok(());
        }
        if start.elapsed() >= TIMEOUT {
            bail!("waiting for {what}: not within {TIMEOUT:?}\n{}", describe());
        }
        thread::sleep(POLL);
    }
}

fn list_dir(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        names.push(entry?.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

#[test]
fn chinese_message_typed_in_one_tui_appears_in_the_other() -> Result<()> {
    let downloads = tempfile::tempdir()?;
    let (mut alice, mut bob) = connected_pair(downloads.path())?;

    bob.write("你好，世界 hello\r")?;

    alice.wait_for("bob's message on alice's screen", |s| {
        s.contains("bob 你好，世界 hello")
    })?;
    Ok(())
}

#[test]
fn a_pasted_file_path_is_sent_and_verified_in_the_download_dir() -> Result<()> {
    let downloads = tempfile::tempdir()?;
    let outbox = tempfile::tempdir()?;
    let file_name = "报告 1.bin";
    let source: PathBuf = outbox.path().join(file_name);
    write_random_file(&source, 3 << 20, 0x7e57_0f11e)?;
    let (mut alice, mut bob) = connected_pair(downloads.path())?;

    // What a file manager's drop produces: the path, shell-quoted, as a bracketed paste.
    bob.write(&format!("{PASTE_START}'{}'{PASTE_END}", source.display()))?;

    alice.wait_for("alice to report the file received and verified", |s| {
        s.contains(&format!("received {file_name}")) && s.contains("verified, saved")
    })?;
    bob.wait_for("bob to report the file sent and verified", |s| {
        s.contains(&format!("sent {file_name}")) && s.contains("verified by alice")
    })?;
    let received = downloads.path().join(file_name);
    wait_until(
        "the file, complete and alone, in the download folder",
        || Ok(list_dir(downloads.path())? == [file_name]),
        || {
            format!(
                "download folder: {:?}\n{}",
                list_dir(downloads.path()),
                alice.report()
            )
        },
    )?;
    ensure_same_file(&source, &received)?;
    Ok(())
}

#[test]
fn quitting_restores_the_terminal() -> Result<()> {
    let (mut tui, _port) = Tui::listen("solo", &[])?;
    tui.wait_for("the message pane", |s| s.contains("Messages"))?;
    let (alternate, paste, mouse) = tui.with_screen(|s| {
        (
            s.alternate_screen(),
            s.bracketed_paste(),
            s.mouse_protocol_mode(),
        )
    });
    assert!(alternate, "the UI runs on the alternate screen");
    assert!(paste, "the UI enables bracketed paste");
    assert_ne!(
        mouse,
        vt100::MouseProtocolMode::None,
        "the UI captures the mouse"
    );
    let running = tui.termios()?.local_flags;
    assert!(
        !running.contains(LocalFlags::ICANON),
        "the UI puts the terminal in raw mode (ICANON off), flags: {running:?}"
    );

    tui.write(CTRL_C)?;
    let status = tui.wait_exit()?;
    assert!(
        status.success(),
        "Ctrl-C exits with success, got {status:?}\n{}",
        tui.report()
    );
    assert_restored(&mut tui)
}

/// Every mode the UI set is undone: screen, paste, mouse, cursor, termios.
fn assert_restored(tui: &mut Tui) -> Result<()> {
    let (alternate, paste, mouse, hidden) = tui.with_screen(|s| {
        (
            s.alternate_screen(),
            s.bracketed_paste(),
            s.mouse_protocol_mode(),
            s.hide_cursor(),
        )
    });
    assert!(!alternate, "the alternate screen is left");
    assert!(!paste, "bracketed paste is disabled");
    assert_eq!(
        mouse,
        vt100::MouseProtocolMode::None,
        "mouse capture is off"
    );
    assert!(!hidden, "the cursor is visible again");
    let after = tui.termios()?.local_flags;
    assert!(
        after.contains(LocalFlags::ICANON) && after.contains(LocalFlags::ECHO),
        "the terminal is back in cooked mode with echo, flags: {after:?}"
    );
    Ok(())
}

#[test]
fn sigterm_restores_the_terminal() -> Result<()> {
    let (mut tui, _port) = Tui::listen("terminated", &[])?;
    tui.wait_for("the message pane", |s| s.contains("Messages"))?;
    let pid = tui.pid().context("the child's pid")?;
    // SAFETY: sending a signal to our own child process.
    let rc = unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0, "kill failed");
    let status = tui.wait_exit()?;
    assert!(
        status.success(),
        "SIGTERM ends the UI cleanly, got {status:?}\n{}",
        tui.report()
    );
    assert_restored(&mut tui)
}

#[test]
fn a_too_small_terminal_says_so_instead_of_panicking() -> Result<()> {
    let port = free_port()?.to_string();
    let mut tui = Tui::spawn(
        "tiny",
        ["listen", "--bind", "127.0.0.1", "--port", &port],
        30,
        8,
    )?;
    tui.wait_for("the too-small notice", |s| s.contains("too small"))?;

    tui.resize(100, 30)?;

    tui.wait_for("the normal layout after enlarging", |s| {
        s.contains("Messages") && s.contains("Files") && !s.contains("too small")
    })?;
    assert!(
        tui.exit_status().is_none(),
        "tern still runs\n{}",
        tui.report()
    );
    Ok(())
}

#[test]
fn help_overlay_opens_with_f1_and_closes_with_esc() -> Result<()> {
    let (mut tui, _port) = Tui::listen("helped", &[])?;
    tui.wait_for("the message pane", |s| s.contains("Messages"))?;
    let is_open = |s: &str| s.contains("Help (Esc closes)") && s.contains("/encoding utf-8|gbk");

    tui.write(F1)?;
    tui.wait_for("the help overlay", is_open)?;

    // A lone ESC may be held back briefly while the terminal decides it is not a sequence.
    tui.write(ESC)?;
    tui.wait_for("the help overlay to close", |s| {
        !s.contains("Help (Esc closes)") && !s.contains("/encoding") && s.contains("Messages")
    })?;
    Ok(())
}

#[test]
fn a_long_burst_of_typing_arrives_whole_without_another_key() -> Result<()> {
    let downloads = tempfile::tempdir()?;
    let (mut alice, mut bob) = connected_pair(downloads.path())?;
    // An unbracketed paste, or fast typing over ssh: the terminal hands over several KiB at
    // once, more than one read of the input takes. Nothing follows the Enter, so the UI must
    // read all of it by itself.
    // The last word is short, so wrapping never splits it on screen.
    let line = format!("{} TAILWORD", "x".repeat(3000));

    bob.write(&format!("{line}\r"))?;

    bob.wait_for("bob's long line sent and the input line empty again", |s| {
        s.contains("TAILWORD") && s.contains("Type a message")
    })?;
    alice.wait_for("the end of bob's long line on alice's screen", |s| {
        s.contains("bob") && s.contains("TAILWORD")
    })?;
    Ok(())
}

#[test]
fn a_peer_met_before_brings_back_its_earlier_messages() -> Result<()> {
    let data = tempfile::tempdir()?;
    for (round, line) in [(1, "hello from the first visit"), (2, "and again")] {
        let (mut inbox, port) = common::spawn_recv(
            "inbox",
            &[
                std::ffi::OsStr::new("--name"),
                std::ffi::OsStr::new("inbox"),
            ],
        )?;
        inbox.write_stdin(format!("{line}\n").as_bytes())?;
        let target = format!("127.0.0.1:{port}");
        let mut bob = Tui::spawn_with(
            "bob",
            ["connect", &target, "--name", "bob"],
            120,
            36,
            Some(data.path()),
        )?;
        bob.wait_for("the inbox's line", |s| s.contains(line))?;
        if round == 2 {
            // The first visit's line, shown as history above this one.
            let screen = bob.wait_for("the earlier message", |s| {
                s.contains("earlier with inbox") && s.contains("hello from the first visit")
            })?;
            let (earlier, now) = (
                screen.find("hello from the first visit"),
                screen.find("and again"),
            );
            assert!(earlier < now, "the history comes first:\n{screen}");
            bob.write("/search first\r")?;
            bob.wait_for("the search's answer", |s| {
                s.contains("1 message(s) match first") && s.contains("from inbox: hello from")
            })?;
        }
        bob.write(CTRL_C)?;
        bob.wait_exit()?;
        inbox.finish(common::TIMEOUT)?;
    }
    Ok(())
}
