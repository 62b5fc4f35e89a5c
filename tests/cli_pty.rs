//! The real `tern` binary with a terminal on its standard streams: lines typed at the
//! terminal are chat for `tern send` and `tern recv` (until Ctrl-D, as with nc), and what the
//! UI says when it cannot connect.
//!
//! Every wait polls what the terminal has shown against a deadline (`common::pty`); dropping
//! a `Tui` kills its child, so a failing test leaves nothing running.
#![cfg(unix)] // a pseudo-terminal (portable-pty, nix): Unix only

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use anyhow::{Context, Result, bail, ensure};

use common::pty::Tui;
use common::{TIMEOUT, free_port, spawn_recv};

/// What the terminal sends for Ctrl-D: at the start of a line, the end of input.
const CTRL_D: &str = "\x04";

/// `tern ARGS` in a 200×40 pseudo-terminal of its own: stdin, stdout and stderr are all the
/// terminal.
fn spawn(args: &[&str]) -> Result<Tui> {
    Tui::spawn("tern", args, 200, 40)
}

/// Wait until the terminal shows `needle`.
fn shows(tui: &mut Tui, needle: &str) -> Result<String> {
    tui.wait_for(needle, |s| s.contains(needle))
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
    let mut send = spawn(&["send", &format!("127.0.0.1:{port}")])?;
    shows(&mut send, "connected to")?;
    send.write("typed at a terminal\n")?;
    send.write("第二行\n")?;
    send.write(CTRL_D)?;
    let status = send.wait_exit()?;
    let recv = recv.finish(TIMEOUT)?;
    ensure!(
        status.success(),
        "tern send exited with {status:?}; the terminal shows:\n{}",
        send.screen_text()
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
    let mut send = spawn(&["send", "--raw", &format!("127.0.0.1:{port}")])?;
    let (mut peer, _) = listener.accept()?;
    send.write("plain words\n")?;
    send.write(CTRL_D)?;
    let got = read_to_eof(&mut peer).with_context(|| send.screen_text())?;
    ensure!(
        got == b"plain words\n",
        "the raw peer got {:?}\n{}",
        String::from_utf8_lossy(&got),
        send.screen_text()
    );
    // The peer still has the floor after our end of input, then closes.
    peer.write_all(b"the last word\n")?;
    drop(peer);
    let status = send.wait_exit()?;
    ensure!(
        status.success(),
        "tern send --raw exited with {status:?}; the terminal shows:\n{}",
        send.screen_text()
    );
    shows(&mut send, "the last word")?;
    Ok(())
}

#[test]
fn recv_chats_lines_typed_at_the_terminal() -> Result<()> {
    let mut last = None;
    for _ in 0..5 {
        let port = free_port()?;
        let mut recv = spawn(&[
            "recv",
            "--once",
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])?;
        if let Err(e) = shows(&mut recv, "listening on") {
            // The port was taken between picking and binding: another one.
            last = Some(e);
            continue;
        }
        let mut peer = TcpStream::connect(("127.0.0.1", port))?;
        // Not tern's magic: a raw peer, answered at once.
        peer.write_all(b"anyone there?\n")?;
        shows(&mut recv, "anyone there?")?;
        recv.write("yes, typed here\n")?;
        let got = read_line(&mut peer).with_context(|| recv.screen_text())?;
        ensure!(
            got == b"yes, typed here\n",
            "the peer got {:?}\n{}",
            String::from_utf8_lossy(&got),
            recv.screen_text()
        );
        drop(peer);
        let status = recv.wait_exit()?;
        ensure!(
            status.success(),
            "tern recv --once exited with {status:?}:\n{}",
            recv.screen_text()
        );
        return Ok(());
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no free port found")))
}

#[test]
fn the_ui_says_once_that_it_cannot_connect() -> Result<()> {
    let port = free_port()?;
    let target = format!("127.0.0.1:{port}");
    let mut ui = spawn(&["connect", &target])?;
    let screen = shows(&mut ui, "refused")?;
    let said = screen.matches("cannot connect to").count();
    let named = screen.contains(&format!("cannot connect to {target}: "));
    ensure!(
        said == 1 && named,
        "the connection error is not said exactly once, naming the target:\n{screen}"
    );
    Ok(())
}
