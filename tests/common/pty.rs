//! A real `tern` in a pseudo-terminal, its output parsed by a terminal emulator (`vt100`): tests
//! type, paste and resize as a user would, then read the screen. Nothing sleeps to wait for
//! readiness: every wait polls the parsed screen against a deadline, and a failure reports
//! what the screen showed. Dropping a `Tui` kills its child.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::termios::Termios;
use portable_pty::{Child, CommandBuilder, ExitStatus, MasterPty, PtySize, native_pty_system};

use super::{free_port, tern_bin};

/// What the terminal did beyond its screen: bells rung, and the window title last set.
#[derive(Debug, Default)]
pub struct Chrome {
    pub bells: usize,
    pub title: String,
}

impl vt100::Callbacks for Chrome {
    fn audible_bell(&mut self, _: &mut vt100::Screen) {
        self.bells += 1;
    }

    fn set_window_title(&mut self, _: &mut vt100::Screen, title: &[u8]) {
        self.title = String::from_utf8_lossy(title).into_owned();
    }
}

pub type Parser = vt100::Parser<Chrome>;

/// How long any one wait may last.
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// How often the screen (or the file system) is looked at while waiting.
pub const POLL: Duration = Duration::from_millis(50);

/// Bracketed paste, as a terminal sends it when files are dropped on it.
pub const PASTE_START: &str = "\x1b[200~";
pub const PASTE_END: &str = "\x1b[201~";
pub const CTRL_C: &str = "\x03";
pub const F1: &str = "\x1bOP";
pub const ESC: &str = "\x1b";

/// How a `Tui`'s child is started beyond its arguments; the default is `tern` itself with a
/// fresh HOME (and log, history and config folders in it).
#[derive(Debug, Default)]
pub struct Launch {
    /// A command that runs the program given after it, as `ip netns exec NS`.
    pub wrapper: Vec<OsString>,
    /// Environment set after the defaults (so it may replace `TERN_CONFIG_DIR`, say).
    pub env: Vec<(OsString, OsString)>,
    /// Where the history goes (else in the child's HOME).
    pub data: Option<std::path::PathBuf>,
}

/// `tern` running in a pseudo-terminal of its own, with the terminal's screen kept up to date
/// by a reader thread.
pub struct Tui {
    pub name: String,
    master: Box<dyn MasterPty + Send>,
    writer: Box<dyn Write + Send>,
    child: Box<dyn Child + Send + Sync>,
    parser: Arc<Mutex<Parser>>,
    reader: Option<JoinHandle<()>>,
    /// HOME (and the log folder) of the child; removed when the `Tui` is dropped.
    pub home: tempfile::TempDir,
}

pub fn lock(parser: &Mutex<Parser>) -> MutexGuard<'_, Parser> {
    // A panic elsewhere must not hide the screen from the failure report.
    parser.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn vt_size(cols: u16, rows: u16) -> Result<(std::num::NonZeroU16, std::num::NonZeroU16)> {
    let rows = std::num::NonZeroU16::new(rows).context("zero rows")?;
    let cols = std::num::NonZeroU16::new(cols).context("zero columns")?;
    Ok((rows, cols))
}

impl Tui {
    /// Start `tern ARGS` in a fresh `cols`×`rows` pseudo-terminal, with its own HOME and log
    /// folder.
    pub fn spawn<S: Into<OsString>>(
        name: &str,
        args: impl IntoIterator<Item = S>,
        cols: u16,
        rows: u16,
    ) -> Result<Self> {
        Self::spawn_with(name, args, cols, rows, None)
    }

    /// [`Tui::spawn`], its history in `data` when given (else in its own HOME).
    pub fn spawn_with<S: Into<OsString>>(
        name: &str,
        args: impl IntoIterator<Item = S>,
        cols: u16,
        rows: u16,
        data: Option<&Path>,
    ) -> Result<Self> {
        let launch = Launch {
            data: data.map(Path::to_path_buf),
            ..Launch::default()
        };
        Self::launch(name, args, cols, rows, &launch)
    }

    /// [`Tui::spawn`], started as `launch` says.
    pub fn launch<S: Into<OsString>>(
        name: &str,
        args: impl IntoIterator<Item = S>,
        cols: u16,
        rows: u16,
        launch: &Launch,
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
        let mut cmd = match launch.wrapper.split_first() {
            Some((program, wrapper_args)) => {
                let mut cmd = CommandBuilder::new(program);
                cmd.args(wrapper_args);
                cmd.arg(tern_bin());
                cmd
            }
            None => CommandBuilder::new(tern_bin()),
        };
        for arg in args {
            cmd.arg(arg.into());
        }
        cmd.cwd(home.path());
        cmd.env("HOME", home.path());
        cmd.env("TERN_LOG_DIR", home.path().join("logs"));
        cmd.env(
            "TERN_DATA_DIR",
            launch
                .data
                .clone()
                .unwrap_or_else(|| home.path().join("data")),
        );
        cmd.env("TERN_CONFIG_DIR", home.path().join("config"));
        cmd.env(super::DISCOVERY_PORT_VAR, super::lonely_discovery_port());
        cmd.env("TERM", "xterm-256color");
        cmd.env_remove("TERN_LOG");
        cmd.env_remove("NO_COLOR");
        for (key, value) in &launch.env {
            cmd.env(key, value);
        }
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
        let parser = Arc::new(Mutex::new(vt100::Parser::new_with_callbacks(
            vt_rows,
            vt_cols,
            0,
            Chrome::default(),
        )));
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
    pub fn listen(name: &str, extra: &[&str]) -> Result<(Self, u16)> {
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
    pub fn screen_text(&self) -> String {
        lock(&self.parser).screen().contents()
    }

    /// Bells rung so far, and the window's title.
    pub fn chrome(&self) -> (usize, String) {
        let parser = lock(&self.parser);
        let chrome = parser.callbacks();
        (chrome.bells, chrome.title.clone())
    }

    /// Wait until the window's title satisfies `pred`.
    pub fn wait_for_title(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> Result<String> {
        let start = Instant::now();
        loop {
            let (_, title) = self.chrome();
            if pred(&title) {
                return Ok(title);
            }
            if start.elapsed() >= TIMEOUT {
                bail!(
                    "{}: waiting for {what}: the title is {title:?} after {TIMEOUT:?}\n{}",
                    self.name,
                    self.report()
                );
            }
            thread::sleep(POLL);
        }
    }

    /// Run `f` on the emulated terminal's state.
    pub fn with_screen<T>(&self, f: impl FnOnce(&vt100::Screen) -> T) -> T {
        f(lock(&self.parser).screen())
    }

    /// Type (or paste) raw bytes into the terminal.
    pub fn write(&mut self, text: &str) -> Result<()> {
        self.writer
            .write_all(text.as_bytes())
            .and_then(|()| self.writer.flush())
            .with_context(|| format!("{}: writing to the terminal", self.name))
    }

    /// Resize the terminal, as a user dragging the window's corner would.
    pub fn resize(&mut self, cols: u16, rows: u16) -> Result<()> {
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
    pub fn termios(&self) -> Result<Termios> {
        self.master
            .get_termios()
            .with_context(|| format!("{}: reading the terminal's termios", self.name))
    }

    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Wait until the reader thread has taken everything the (exited) child wrote.
    pub fn drain_output(&mut self, timeout: Duration) -> bool {
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
    pub fn wait_for(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> Result<String> {
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

    pub fn pid(&self) -> Option<u32> {
        self.child.process_id()
    }

    /// Wait for the child to exit by itself.
    pub fn wait_exit(&mut self) -> Result<ExitStatus> {
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
    pub fn report(&self) -> String {
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
pub fn connect(name: &str, port: u16) -> Result<Tui> {
    let target = format!("127.0.0.1:{port}");
    Tui::spawn(name, ["connect", &target, "--name", name], 120, 36)
}

/// A listening `alice` (accepting every offer into `downloads`) and a `bob` connected to her,
/// both showing the connection.
pub fn connected_pair(downloads: &Path) -> Result<(Tui, Tui)> {
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
pub fn wait_until(
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

/// The peer list's row naming `peer` (the list is the leftmost pane: `│2 ● cy    1│`), its
/// words joined by single spaces, if it is on screen.
pub fn list_row(screen: &str, peer: &str) -> Option<String> {
    screen.lines().find_map(|line| {
        let inner = line.strip_prefix('│')?;
        let cell = &inner[..inner.find('│')?];
        let words: Vec<&str> = cell.split_whitespace().collect();
        (words.get(2) == Some(&peer)).then(|| words.join(" "))
    })
}
