//! The real `tern` binary with a terminal on its standard streams: lines typed at the
//! terminal are chat for `tern send` and `tern recv` (until Ctrl-D, as with nc), and what the
//! UI says when it cannot connect.
//!
//! Every wait polls what the terminal has shown against a deadline; dropping a `Pty` kills its
//! child, so a failing test leaves nothing running.
#![cfg(unix)] // a pseudo-terminal (portable-pty, nix): Unix only
#![cfg(unix)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use portable_pty::{Child, CommandBuilder, ExitStatus, PtySize, native_pty_system};

use common::{TIMEOUT, free_port, spawn_recv, tern_bin};

const POLL: Duration = Duration::from_millis(20);
/// What the terminal sends for Ctrl-D: at the start of a line, the end of input.
const CTRL_D: &str = "\x04";

/// `tern ARGS` in a pseudo-terminal of its own: stdin, stdout and stderr are all the terminal.
struct Pty {
    writer: Box<dyn Write + Send>,
    child: Box<dyn Child + Send + Sync>,
    /// The screen, as a terminal would show it.
    screen: Arc<Mutex<vt100::Parser>>,
    /// The child's HOME and log folder.
    _home: tempfile::TempDir,
}

fn lock(screen: &Mutex<vt100::Parser>) -> MutexGuard<'_, vt100::Parser> {
    // A panic elsewhere must not hide the screen from the failure report.
    screen.lock().unwrap_or_else(|e| e.into_inner())
}

impl Pty {
    fn spawn(args: &[&str]) -> Result<Self> {
        let (cols, rows) = (200, 40);
        let home = tempfile::tempdir()?;
        let pair = native_pty_system()
            .openpty(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .context("opening a pseudo-terminal")?;
        let mut cmd = CommandBuilder::new(tern_bin());
        cmd.args(args);
        cmd.cwd(home.path());
        cmd.env("HOME", home.path());
        cmd.env("TERN_LOG_DIR", home.path().join("logs"));
        cmd.env("TERM", "xterm-256color");
        cmd.env_remove("TERN_LOG");
        let child = pair.slave.spawn_command(cmd).context("spawning tern")?;
        // Only the child holds the slave side now: the reader sees the end when it exits.
        drop(pair.slave);
        let mut reader = pair.master.try_clone_reader()?;
        let writer = pair.master.take_writer()?;
        let size = |n| std::num::NonZeroU16::new(n).context("an empty terminal");
        let screen = Arc::new(Mutex::new(vt100::Parser::new(size(rows)?, size(cols)?, 0)));
        let shown = Arc::clone(&screen);
        thread::spawn(move || {
            // Keeps the master open as long as there is output to read.
            let _master = pair.master;
            let mut buf = [0u8; 4096];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                    Ok(n) => lock(&shown).process(&buf[..n]),
                }
            }
        });
        Ok(Self {
            writer,
            child,
            screen,
            _home: home,
        })
    }

    fn text(&self) -> String {
        lock(&self.screen).screen().contents()
    }

    /// Type at the terminal.
    fn type_text(&mut self, text: &str) -> Result<()> {
        self.writer
            .write_all(text.as_bytes())
            .and_then(|()| self.writer.flush())
            .context("typing at the terminal")
    }

    /// Wait until the terminal shows `needle`.
    fn wait_for(&mut self, needle: &str) -> Result<String> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let text = self.text();
            if text.contains(needle) {
                return Ok(text);
            }
            if Instant::now() >= deadline {
                bail!("{needle:?} not shown within {TIMEOUT:?}; the terminal shows:\n{text}");
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // The last output may still be on its way to the screen.
                thread::sleep(Duration::from_millis(200));
                let text = self.text();
                if text.contains(needle) {
                    return Ok(text);
                }
                bail!("tern exited ({status:?}) before showing {needle:?}:\n{text}");
            }
            thread::sleep(POLL);
        }
    }

    /// Wait for the child to exit by itself.
    fn wait_exit(&mut self) -> Result<ExitStatus> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!(
                    "tern did not exit within {TIMEOUT:?}; the terminal shows:\n{}",
                    self.text()
                );
            }
            thread::sleep(POLL);
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Read from `stream` until the peer closes its sending side, failing after `TIMEOUT`.
fn read_to_eof(stream: &mut TcpStream) -> Result<Vec<u8>> {
    stream.set_read_timeout(Some(TIMEOUT))?;
    let mut got = Vec::new();
    stream
        .read_to_end(&mut got)
        .with_context(|| format!("no end of stream; got {:?}", String::from_utf8_lossy(&got)))?;
    Ok(got)
}

/// Read one `\n`-terminated line from `stream`, failing after `TIMEOUT`.
fn read_line(stream: &mut TcpStream) -> Result<Vec<u8>> {
    stream.set_read_timeout(Some(TIMEOUT))?;
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\n") {
        match stream.read(&mut byte) {
            Ok(0) => bail!("end of stream; got {:?}", String::from_utf8_lossy(&got)),
            Ok(_) => got.push(byte[0]),
            Err(e) => return Err(e).context(format!("got {got:02x?}")),
        }
    }
    Ok(got)
}

#[test]
fn send_chats_lines_typed_at_the_terminal_until_ctrl_d() -> Result<()> {
    let inbox = tempfile::tempdir()?;
    let (mut recv, port) = spawn_recv(
        "recv",
        &["--download-dir".as_ref(), inbox.path().as_os_str()],
    )?;
    recv.close_stdin();
    let mut send = Pty::spawn(&["send", &format!("127.0.0.1:{port}")])?;
    send.wait_for("connected to")?;
    send.type_text("typed at a terminal\n")?;
    send.type_text("第二行\n")?;
    send.type_text(CTRL_D)?;
    let status = send.wait_exit()?;
    let recv = recv.finish(TIMEOUT)?;
    ensure!(
        status.success(),
        "tern send exited with {status:?}; the terminal shows:\n{}",
        send.text()
    );
    recv.ensure_success()?;
    ensure!(
        recv.stdout_text()? == "typed at a terminal\n第二行\n",
        "the receiver did not print exactly the typed lines\n{recv}"
    );
    Ok(())
}

#[test]
fn send_raw_chats_typed_lines_and_half_closes_at_ctrl_d() -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let mut send = Pty::spawn(&["send", "--raw", &format!("127.0.0.1:{port}")])?;
    let (mut peer, _) = listener.accept()?;
    send.type_text("plain words\n")?;
    send.type_text(CTRL_D)?;
    let got = read_to_eof(&mut peer).with_context(|| send.text())?;
    ensure!(
        got == b"plain words\n",
        "the raw peer got {:?}\n{}",
        String::from_utf8_lossy(&got),
        send.text()
    );
    // The peer still has the floor after our end of input, then closes.
    peer.write_all(b"the last word\n")?;
    drop(peer);
    let status = send.wait_exit()?;
    ensure!(
        status.success(),
        "tern send --raw exited with {status:?}; the terminal shows:\n{}",
        send.text()
    );
    send.wait_for("the last word")?;
    Ok(())
}

#[test]
fn recv_chats_lines_typed_at_the_terminal() -> Result<()> {
    let mut last = None;
    for _ in 0..5 {
        let port = free_port()?;
        let mut recv = Pty::spawn(&[
            "recv",
            "--once",
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])?;
        if let Err(e) = recv.wait_for("listening on") {
            // The port was taken between picking and binding: another one.
            last = Some(e);
            continue;
        }
        let mut peer = TcpStream::connect(("127.0.0.1", port))?;
        // Not tern's magic: a raw peer, answered at once.
        peer.write_all(b"anyone there?\n")?;
        recv.wait_for("anyone there?")?;
        recv.type_text("yes, typed here\n")?;
        let got = read_line(&mut peer).with_context(|| recv.text())?;
        ensure!(
            got == b"yes, typed here\n",
            "the peer got {:?}\n{}",
            String::from_utf8_lossy(&got),
            recv.text()
        );
        drop(peer);
        let status = recv.wait_exit()?;
        ensure!(
            status.success(),
            "tern recv --once exited with {status:?}:\n{}",
            recv.text()
        );
        return Ok(());
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no free port found")))
}

#[test]
fn the_ui_says_once_that_it_cannot_connect() -> Result<()> {
    let port = free_port()?;
    let target = format!("127.0.0.1:{port}");
    let mut ui = Pty::spawn(&["connect", &target])?;
    let screen = ui.wait_for("refused")?;
    let said = screen.matches("cannot connect to").count();
    let named = screen.contains(&format!("cannot connect to {target}: "));
    ensure!(
        said == 1 && named,
        "the connection error is not said exactly once, naming the target:\n{screen}"
    );
    Ok(())
}
