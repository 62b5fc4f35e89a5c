//! Whom you are talking to, end to end: two real `tern`s in pseudo-terminals, each with a key of
//! its own (its own `TERN_CONFIG_DIR`). First contact, `/verify` with the six digits read off
//! the other screen, and a peer that comes back under the same name and address with another
//! key: the warning, the bell, nothing sent to it nor accepted from it, until `/trust`.
#![cfg(unix)] // a pseudo-terminal (portable-pty, nix): Unix only

mod common;

use std::ffi::OsString;
use std::path::Path;

use anyhow::{Context, Result, bail};

use common::pty::{Launch, Tui, list_row, wait_until};

/// `tern connect 127.0.0.1:PORT --name NAME` in a 120×36 terminal, its key kept in `keys`.
fn connect_with_keys(name: &str, port: u16, keys: &Path) -> Result<Tui> {
    let target = format!("127.0.0.1:{port}");
    let launch = Launch {
        env: vec![(
            OsString::from("TERN_CONFIG_DIR"),
            keys.as_os_str().to_owned(),
        )],
        ..Launch::default()
    };
    Tui::launch(name, ["connect", &target, "--name", name], 120, 36, &launch)
}

/// The mark before `peer`'s name in the list: ✓ verified, ● encrypted, ! key changed.
fn list_mark(screen: &str, peer: &str) -> Option<String> {
    list_row(screen, peer)?
        .split(' ')
        .nth(1)
        .map(str::to_string)
}

/// The message pane's text as one line: its rows (the middle pane) joined, so a sentence the
/// pane wrapped reads whole.
fn messages(screen: &str) -> String {
    let rows: Vec<&str> = screen
        .lines()
        // The panes' rows start with a border; the status bar below them does not.
        .filter(|line| line.starts_with('│'))
        .filter_map(|line| line.split('│').nth(3))
        .map(str::trim)
        .filter(|row| !row.is_empty())
        .collect();
    rows.join(" ")
}

/// The six digits `/verify` showed (`482 015`): the first `DDD DDD` after "read theirs:"
/// with no digit either side. (Should the first be broken by a wrapped line, the second, in
/// "type /verify DDD DDD", is taken.)
fn shown_digits(screen: &str) -> Option<String> {
    let marker = "read theirs:";
    let after = &screen[screen.find(marker)? + marker.len()..];
    let chars: Vec<char> = after.chars().collect();
    let digit = |i: usize| chars.get(i).is_some_and(char::is_ascii_digit);
    (1..chars.len().saturating_sub(6)).find_map(|at| {
        let shape = (0..7).all(|k| {
            if k == 3 {
                chars[at + k] == ' '
            } else {
                digit(at + k)
            }
        });
        (shape && !digit(at - 1) && !digit(at + 7)).then(|| chars[at..at + 7].iter().collect())
    })
}

/// `/verify` in the open conversation; the digits it shows.
fn ask_digits(tui: &mut Tui) -> Result<String> {
    tui.write("/verify\r")?;
    let screen = tui.wait_for("the digits /verify shows", |s| {
        shown_digits(&messages(s)).is_some()
    })?;
    shown_digits(&messages(&screen)).context("the digits went away")
}

/// Both screens, for a failure that concerns both.
fn both(a: &Tui, b: &Tui) -> String {
    format!("{}\n{}", a.report(), b.report())
}

/// A listening ana (`--no-history`, plus `extra`) and a bo connected to her with his key in
/// `bo_keys`, each showing the other's pane as a first contact.
fn first_contact(extra: &[&str], bo_keys: &Path) -> Result<(Tui, Tui, u16)> {
    let mut args = vec!["--no-history"];
    args.extend_from_slice(extra);
    let (mut ana, port) = Tui::listen("ana", &args)?;
    let mut bo = connect_with_keys("bo", port, bo_keys)?;
    bo.wait_for("ana as a first contact at bo", |s| {
        s.contains("Messages · ana · first contact") && list_mark(s, "ana").as_deref() == Some("●")
    })?;
    ana.wait_for("bo as a first contact at ana", |s| {
        s.contains("Messages · bo · first contact") && list_mark(s, "bo").as_deref() == Some("●")
    })?;
    Ok((ana, bo, port))
}

#[test]
fn first_contact_shows_the_same_digits_on_both_screens_and_verify_marks_the_peer() -> Result<()> {
    let bo_keys = tempfile::tempdir()?;
    let (mut ana, mut bo, _) = first_contact(&[], bo_keys.path())?;
    for (tui, peer) in [(&mut ana, "bo"), (&mut bo, "ana")] {
        let said = format!("{peer} (127.0.0.1:");
        tui.wait_for("the connection line naming a first contact", |s| {
            let m = messages(s);
            m.contains(&said) && m.contains("first contact: /verify to be sure it is them")
        })?;
    }

    let at_ana = ask_digits(&mut ana)?;
    let at_bo = ask_digits(&mut bo)?;
    if at_ana != at_bo {
        bail!(
            "the two ends show different digits ({at_ana} at ana, {at_bo} at bo)\n{}",
            both(&ana, &bo)
        );
    }

    // Digits that are not the ones shown are refused, and nothing changes.
    let wrong = wrong_digits(&at_bo);
    ana.write(&format!("/verify {wrong}\r"))?;
    let screen = ana.wait_for("wrong digits refused", |s| {
        messages(s).contains("the digits do NOT match")
    })?;
    assert!(
        screen.contains("Messages · bo · first contact")
            && list_mark(&screen, "bo").as_deref() == Some("●"),
        "wrong digits leave bo a first contact:\n{}",
        ana.report()
    );

    // Each types the digits read off the other's screen.
    ana.write(&format!("/verify {at_bo}\r"))?;
    ana.wait_for("bo verified at ana", |s| {
        messages(s).contains("verified: bo's key")
            && s.contains("Messages · bo · verified")
            && list_mark(s, "bo").as_deref() == Some("✓")
    })?;
    // Typed without the space, as someone reading them aloud might.
    bo.write(&format!("/verify {}\r", at_ana.replace(' ', "")))?;
    bo.wait_for("ana verified at bo", |s| {
        messages(s).contains("verified: ana's key")
            && s.contains("Messages · ana · verified")
            && list_mark(s, "ana").as_deref() == Some("✓")
    })?;
    Ok(())
}

/// Six digits other than `digits` (`DDD DDD`), in the same shape.
fn wrong_digits(digits: &str) -> String {
    digits
        .chars()
        .enumerate()
        .map(|(i, c)| match (i, c.to_digit(10)) {
            (6, Some(d)) => char::from_digit((d + 1) % 10, 10).unwrap_or('0'),
            _ => c,
        })
        .collect()
}

#[test]
fn a_changed_key_is_warned_about_and_nothing_passes_until_trust() -> Result<()> {
    let downloads = tempfile::tempdir()?;
    let dir = downloads.path().to_string_lossy().into_owned();
    let first_keys = tempfile::tempdir()?;
    let (mut ana, mut bo, port) =
        first_contact(&["--yes", "--download-dir", &dir], first_keys.path())?;
    // Ana has written bo's first key down before he goes.
    let known = ana.home.path().join("config").join("known_peers");
    wait_until(
        "bo in ana's known peers",
        || Ok(std::fs::read_to_string(&known).is_ok_and(|t| t.contains("\"bo\""))),
        || ana.report(),
    )?;
    bo.write("/quit\r")?;
    bo.wait_exit()?;
    ana.wait_for("bo gone at ana", |s| {
        list_mark(s, "bo").as_deref() == Some("○")
    })?;
    let (bells_before, _) = ana.chrome();

    // Same name, same address, another key.
    let second_keys = tempfile::tempdir()?;
    let mut bo = connect_with_keys("bo", port, second_keys.path())?;
    bo.wait_for("bo connected again", |s| s.contains("connected: ana"))?;
    let screen = ana.wait_for("the warning at ana", |s| {
        messages(s).contains("WARNING: bo presents a different key than before")
            && s.contains("Messages · bo · KEY CHANGED")
            && list_mark(s, "bo").as_deref() == Some("!")
    })?;
    assert!(
        messages(&screen).contains("until you /trust the new key"),
        "the warning says what to do:\n{}",
        ana.report()
    );
    // bo's conversation is open and he is ana's only peer: the warning is what rings.
    wait_until(
        "the bell at ana",
        || Ok(ana.chrome().0 > bells_before),
        || ana.report(),
    )?;

    // What ana says is held back.
    ana.write("said while in doubt\r")?;
    ana.wait_for("ana told her line is held", |s| {
        messages(s).contains("held back: the peer's key changed")
    })?;
    // bo offers a file; ana accepts every offer (--yes) but not this one.
    let offered = bo.home.path().join("doubtful.txt");
    std::fs::write(&offered, b"from a key ana has not trusted\n")?;
    bo.write(&format!("/send {}\r", offered.display()))?;
    bo.wait_for("the offer declined at bo", |s| {
        messages(s).contains(
            "ana declined doubtful.txt: not accepted: the receiver has not trusted your new key",
        )
    })?;
    // Ana's line was taken (and held) before bo offered; her decline went out after it on the
    // same connection, so had the line been sent, bo would show it above the decline.
    if messages(&bo.screen_text()).contains("said while in doubt") {
        bail!("ana's line reached an untrusted key:\n{}", both(&ana, &bo));
    }
    let saved: Vec<_> = std::fs::read_dir(downloads.path())?.collect();
    assert!(
        saved.is_empty(),
        "nothing is saved from an untrusted key: {saved:?}\n{}",
        ana.report()
    );

    ana.write("/trust\r")?;
    ana.wait_for("bo trusted at ana", |s| {
        messages(s).contains("trusted bo's new key")
            && s.contains("Messages · bo · known")
            && list_mark(s, "bo").as_deref() == Some("●")
    })?;
    bo.wait_for("the held line at bo", |s| {
        messages(s).contains("ana said while in doubt")
    })?;

    // Trusted, the same offer is accepted by itself.
    bo.write(&format!("/send {}\r", offered.display()))?;
    bo.wait_for("the file sent", |s| {
        messages(s).contains("sent doubtful.txt")
    })?;
    let copy = downloads.path().join("doubtful.txt");
    let sent = std::fs::read(&offered)?;
    wait_until(
        "the file saved whole in ana's download folder",
        || Ok(std::fs::read(&copy).is_ok_and(|got| got == sent)),
        || both(&ana, &bo),
    )?;
    Ok(())
}
