//! Peers found on the LAN: listed, merged with the conversation they belong to, dialled by
//! Enter, gone when discovery says so (unless something happened with them).

use super::*;
use crate::net::discovery::{Found, Sighting};

fn found(instance: u64, name: &str, last: u8) -> Found {
    Found {
        instance,
        name: name.into(),
        addr: std::net::Ipv4Addr::new(10, 0, 0, last),
        port: 9000,
        fingerprint: "ABCD-EFGH-IJKL-MNOP-QRST".into(),
        version: 2,
        caps: 0,
    }
}

fn lan(app: &mut App, sighting: Sighting) -> Vec<Action> {
    app.update(Msg::Lan(sighting))
}

#[test]
fn a_found_peer_is_listed_and_enter_in_the_list_dials_its_address() {
    let mut app = listening();
    app.discovering = true;
    lan(&mut app, Sighting::Found(found(1, "ana", 2)));
    lan(&mut app, Sighting::Found(found(2, "bo\u{1b}[31m", 3)));
    assert_eq!(names(&app), ["Everyone", "ana", "bo[31m"]);
    // Nothing opens by itself and nothing rings: being on the LAN is not a message.
    assert_eq!(app.open, 0);
    assert!(!app.bell);
    app.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('1'),
        KeyModifiers::ALT,
    )));
    assert_eq!(app.open, 1);
    app.focus = Focus::Peers;
    let actions = app.update(key(KeyCode::Enter));
    assert!(
        matches!(&actions[..], [Action::Dial { target, .. }] if target == "10.0.0.2:9000"),
        "{actions:?}"
    );
    assert!(matches!(app.conv().link, Link::Connecting(_)));
    // Enter on an empty input line connects too.
    app.open_at(2);
    app.focus = Focus::Input;
    let actions = app.update(key(KeyCode::Enter));
    assert!(
        matches!(&actions[..], [Action::Dial { target, .. }] if target == "10.0.0.3:9000"),
        "{actions:?}"
    );
}

#[test]
fn a_peer_that_leaves_goes_unless_something_was_said_with_it() {
    let mut app = listening();
    lan(&mut app, Sighting::Found(found(1, "ana", 2)));
    lan(&mut app, Sighting::Found(found(2, "bo", 3)));
    let said = app.message(MessageKind::System, "", "hello".into());
    app.conversations[2].push(said);
    lan(&mut app, Sighting::Gone(1));
    lan(&mut app, Sighting::Gone(2));
    assert_eq!(names(&app), ["Everyone", "bo"]);
    assert!(app.conversations[1].lan.is_none());
    // Unknown instances change nothing.
    lan(&mut app, Sighting::Gone(77));
    assert_eq!(names(&app), ["Everyone", "bo"]);
}

#[test]
fn the_open_entry_stays_when_its_peer_leaves_the_lan() {
    let mut app = listening();
    lan(&mut app, Sighting::Found(found(1, "ana", 2)));
    app.open_at(1);
    lan(&mut app, Sighting::Gone(1));
    assert_eq!(names(&app), ["Everyone", "ana"]);
    assert_eq!(app.open, 1);
}

#[test]
fn a_found_peer_joins_the_conversation_under_its_name_or_its_key() {
    let mut app = listening();
    app.update(Msg::Known(vec![(
        "ana".into(),
        Some("10.0.0.99:8989".into()),
    )]));
    lan(&mut app, Sighting::Found(found(1, "ana", 2)));
    assert_eq!(names(&app), ["Everyone", "ana"]);
    assert_eq!(
        app.conversations[1].target.as_deref(),
        Some("10.0.0.2:9000")
    );
    // Known from the history before: listed still when she leaves the LAN.
    lan(&mut app, Sighting::Gone(1));
    assert_eq!(names(&app), ["Everyone", "ana"]);
    // A connected peer whose key the announce names: the same entry, its session untouched.
    let mut app = connected();
    let key = [7u8; 32];
    let fingerprint = crate::crypto::Fingerprint::of(&key);
    let mut laptop = found(5, "ana on the laptop", 7);
    laptop.fingerprint = fingerprint.to_string();
    if let Link::Connected(info) = &mut app.conversations[1].link {
        info.key = Some(crate::session::PeerKey {
            key,
            fingerprint,
            authentication: "000000".into(),
            standing: crate::crypto::known::Verdict::FirstContact,
        });
    }
    lan(&mut app, Sighting::Found(laptop));
    assert_eq!(names(&app), ["Everyone", "ana"]);
    assert!(matches!(app.conversations[1].link, Link::Connected(_)));
    assert!(app.conversations[1].lan.is_some());
}

#[test]
fn a_renamed_peer_is_renamed_in_the_list_until_something_is_said() {
    let mut app = listening();
    lan(&mut app, Sighting::Found(found(1, "ana", 2)));
    lan(&mut app, Sighting::Changed(found(1, "ana b", 2)));
    assert_eq!(names(&app), ["Everyone", "ana b"]);
}

#[test]
fn peers_lists_what_was_found_and_asks_again_unless_discovery_is_off() {
    let mut app = listening();
    assert!(type_line(&mut app, "/peers").is_empty());
    assert!(
        last_text(&app).contains("discovery is off"),
        "{}",
        last_text(&app)
    );
    app.discovering = true;
    lan(&mut app, Sighting::Found(found(1, "ana", 2)));
    let actions = type_line(&mut app, "/peers");
    assert!(matches!(&actions[..], [Action::Refresh]), "{actions:?}");
    assert!(
        last_text(&app).contains("ana at 10.0.0.2:9000 (Enter connects)"),
        "{}",
        last_text(&app)
    );
}

#[test]
fn a_quiet_look_is_explained_only_when_nobody_was_found() {
    let why = "  interfaces tried: eth0 192.168.1.5/24, broadcast 192.168.1.255\n\
               Usual causes:\n  \
               - the Wi-Fi access point isolates clients from each other;\n\
               Discovery is only a convenience: /connect HOST[:PORT] reaches a peer.";
    let mut app = listening();
    app.discovering = true;
    type_line(&mut app, "/peers");
    let before = system_lines(&app).len();
    assert!(app.update(Msg::LanQuiet(why.into())).is_empty());
    let said = system_lines(&app)[before..].to_vec();
    assert_eq!(
        said,
        [
            "no tern answered within 2 s:",
            "interfaces tried: eth0 192.168.1.5/24, broadcast 192.168.1.255",
            "Usual causes:",
            "- the Wi-Fi access point isolates clients from each other;",
            "Discovery is only a convenience: /connect HOST[:PORT] reaches a peer.",
        ]
    );
    // Someone answered: nothing to explain.
    lan(&mut app, Sighting::Found(found(1, "ana", 2)));
    let before = system_lines(&app).len();
    app.update(Msg::LanQuiet(why.into()));
    assert_eq!(system_lines(&app).len(), before);
}
