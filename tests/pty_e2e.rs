//! End-to-end tests of the terminal UI: the real `tern` binary runs in a pseudo-terminal, its
//! output is parsed by a terminal emulator (`vt100`), and the tests type, paste and resize as a
//! user would, then read the screen.
//!
//! Nothing sleeps to wait for readiness: every wait polls the parsed screen (or the file system)
//! against a deadline, and a failure reports what the screen showed. Dropping a `Tui` kills its
//! child, so a failing test leaves nothing running.
#![cfg(unix)] // a pseudo-terminal (portable-pty, nix): Unix only

mod common;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::sys::termios::LocalFlags;

use common::pty::{CTRL_C, ESC, F1, PASTE_END, PASTE_START, Tui, connected_pair, wait_until};
use common::{ensure_same_file, free_port, write_random_file};

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
