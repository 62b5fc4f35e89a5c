//! The TUI with several peers, end to end: a listening `tern` in a pseudo-terminal with two
//! other `tern`s connected to it, each in its own pseudo-terminal. The peer list, a
//! conversation per peer, unread counts, the bell and title, switching, Everyone and `/msg`
//! are read off the emulated screens.
#![cfg(unix)] // a pseudo-terminal (portable-pty, nix): Unix only

mod common;

use anyhow::{Result, bail};

use common::pty::{Tui, connect, list_row};

const ALT_0: &str = "\x1b0";
const ALT_2: &str = "\x1b2";
const ALT_A: &str = "\x1ba";
const CTRL_N: &str = "\x0e";

/// The number after `peer`'s name in the list (its unread count), 0 when there is none.
fn unread(screen: &str, peer: &str) -> Option<usize> {
    let row = list_row(screen, peer)?;
    let words: Vec<&str> = row.split(' ').collect();
    Some(words.get(3).and_then(|n| n.parse().ok()).unwrap_or(0))
}

/// A listening alice with bob and then cy connected to her, bob's conversation open at alice.
fn three() -> Result<(Tui, Tui, Tui)> {
    let (mut alice, port) = Tui::listen("alice", &[])?;
    let mut bob = connect("bob", port)?;
    bob.wait_for("bob connected to alice", |s| s.contains("connected: alice"))?;
    alice.wait_for("bob in alice's list, his conversation open", |s| {
        list_row(s, "bob").is_some_and(|r| r.starts_with("1 ●")) && s.contains("Messages · bob")
    })?;
    let mut cy = connect("cy", port)?;
    cy.wait_for("cy connected to alice", |s| s.contains("connected: alice"))?;
    alice.wait_for("cy in alice's list", |s| {
        list_row(s, "cy").is_some_and(|r| r.starts_with("2 ●"))
    })?;
    Ok((alice, bob, cy))
}

#[test]
fn a_listener_keeps_a_conversation_for_each_of_two_peers() -> Result<()> {
    let (mut alice, mut bob, mut cy) = three()?;
    let screen = alice.wait_for("the status bar counting two peers", |s| {
        s.contains("2 peers")
    })?;
    assert!(
        screen.contains("Messages · bob"),
        "a second peer does not take the open conversation away:\n{screen}"
    );
    let (bells, _) = alice.chrome();
    assert!(
        bells >= 1,
        "cy arriving while bob's conversation is open rings the bell"
    );

    bob.write("from bob\r")?;
    cy.write("from cy\r")?;
    let screen = alice.wait_for("bob's line in his conversation, cy's counted unread", |s| {
        s.contains("bob from bob") && unread(s, "cy") == Some(1)
    })?;
    assert!(
        !screen.contains("from cy"),
        "cy's line is not in bob's conversation:\n{screen}"
    );
    assert_eq!(unread(&screen, "bob"), Some(0));
    alice.wait_for_title("the unread count in the title", |t| t == "(1) tern")?;

    // Alt-2: cy's conversation, read.
    alice.write(ALT_2)?;
    let screen = alice.wait_for("cy's conversation", |s| {
        s.contains("Messages · cy") && s.contains("cy from cy")
    })?;
    assert!(
        !screen.contains("from bob"),
        "bob's line is not in cy's conversation:\n{screen}"
    );
    assert_eq!(unread(&screen, "cy"), Some(0));
    alice.wait_for_title("no unread count in the title", |t| t == "tern")?;

    // Replies go to the open conversation's peer only.
    alice.write("just for cy\r")?;
    cy.wait_for("alice's reply at cy", |s| s.contains("alice just for cy"))?;

    // Everyone: both conversations, labelled; a line there goes to both.
    alice.write(ALT_0)?;
    alice.wait_for("Everyone with both lines", |s| {
        s.contains("Messages · Everyone") && s.contains("bob from bob") && s.contains("cy from cy")
    })?;
    alice.write("to both of you\r")?;
    bob.wait_for("the Everyone line at bob", |s| {
        s.contains("alice to both of you")
    })?;
    cy.wait_for("the Everyone line at cy", |s| {
        s.contains("alice to both of you")
    })?;

    // /msg from Everyone: one peer, no switch.
    alice.write("/msg bob only bob\r")?;
    bob.wait_for("the /msg at bob", |s| s.contains("alice only bob"))?;
    let screen = alice.wait_for("the /msg labelled in Everyone", |s| {
        s.contains("alice → bob only bob")
    })?;
    assert!(screen.contains("Messages · Everyone"), "{screen}");
    let cy_screen = cy.screen_text();
    if cy_screen.contains("only bob") {
        bail!("cy got bob's /msg:\n{cy_screen}");
    }
    if bob.screen_text().contains("just for cy") {
        bail!("bob got cy's reply:\n{}", bob.screen_text());
    }

    // Ctrl-N from Everyone opens bob's; Alt-A goes to the one with unread lines.
    alice.write(CTRL_N)?;
    alice.wait_for("bob's conversation after Ctrl-N", |s| {
        s.contains("Messages · bob")
    })?;
    cy.write("unread again\r")?;
    alice.wait_for("cy unread again", |s| unread(s, "cy") == Some(1))?;
    alice.write(ALT_A)?;
    alice.wait_for("Alt-A to cy's conversation", |s| {
        s.contains("Messages · cy") && s.contains("cy unread again")
    })?;

    // /close ends cy's session; bob's goes on.
    alice.write("/close\r")?;
    cy.wait_for("cy told alice closed", |s| s.contains("disconnected"))?;
    alice.wait_for("cy shown as left", |s| {
        list_row(s, "cy").is_some_and(|r| r.starts_with("2 ○")) && s.contains("1 peer")
    })?;
    bob.write("still here\r")?;
    alice.wait_for("bob still heard", |s| unread(s, "bob") == Some(1))?;
    Ok(())
}

#[test]
fn connect_adds_a_peer_beside_the_one_already_there() -> Result<()> {
    let (mut bob, bob_port) = Tui::listen("bob", &[])?;
    let (mut cy, cy_port) = Tui::listen("cy", &[])?;
    let mut alice = connect("alice", bob_port)?;
    alice.wait_for("alice connected to bob", |s| s.contains("connected: bob"))?;
    alice.write(&format!("/connect 127.0.0.1:{cy_port}\r"))?;
    let screen = alice.wait_for("alice connected to cy too", |s| {
        s.contains("connected: cy")
            && list_row(s, "bob").is_some_and(|r| r.starts_with("1 ●"))
            && list_row(s, "cy").is_some_and(|r| r.starts_with("2 ●"))
    })?;
    assert!(screen.contains("2 peers"), "{screen}");
    alice.write("hello cy\r")?;
    cy.wait_for("the line at cy", |s| s.contains("alice hello cy"))?;
    bob.wait_for("bob still connected", |s| s.contains("connected: alice"))?;
    if bob.screen_text().contains("hello cy") {
        bail!("bob got cy's line:\n{}", bob.screen_text());
    }
    Ok(())
}
