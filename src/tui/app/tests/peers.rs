//! Several peers at once: which conversation a report lands in, what opens by itself and
//! what only rings, the list fed by the history, and the commands that name a peer.

use super::*;

fn joins(app: &mut App, peer: PeerId, name: &str) -> Vec<Action> {
    app.update(from(
        peer,
        SessionEvent::Connected(PeerInfo {
            name: name.into(),
            addr: Some(SocketAddr::from(([10, 0, 0, 9], 40000))),
            raw: false,
            key: None,
        }),
    ))
}

fn says(app: &mut App, peer: PeerId, text: &str) {
    app.update(from(
        peer,
        SessionEvent::Text {
            text: PeerText::new(text.to_string()),
            encoding: Encoding::Utf8,
            lossy: false,
        },
    ));
}

fn texts(conv: &Conversation) -> Vec<String> {
    conv.transcript
        .messages()
        .iter()
        .map(|m| format!("{}: {}", m.sender, m.text))
        .collect()
}

#[test]
fn the_first_peer_opens_and_the_next_rings_without_taking_the_screen() {
    let mut app = listening();
    let (ana, bo) = (PeerId::next(), PeerId::next());
    joins(&mut app, ana, "ana");
    assert_eq!(
        app.conv().name,
        "ana",
        "alone, the first peer's conversation opens"
    );
    assert!(!app.bell);
    joins(&mut app, bo, "bo");
    assert_eq!(
        app.conv().name,
        "ana",
        "a second peer does not take the screen"
    );
    assert!(app.bell, "it rings instead");
    assert_eq!(app.connected(), 2);
}

#[test]
fn each_line_lands_in_its_peers_conversation_and_counts_unread_elsewhere() {
    let mut app = listening();
    let (ana, bo) = (PeerId::next(), PeerId::next());
    joins(&mut app, ana, "ana");
    joins(&mut app, bo, "bo");
    app.bell = false;
    says(&mut app, ana, "from ana");
    says(&mut app, bo, "from bo");
    says(&mut app, bo, "again bo");
    let ana_conv = &app.conversations[1];
    let bo_conv = &app.conversations[2];
    assert!(texts(ana_conv).contains(&"ana: from ana".to_string()));
    assert!(!texts(ana_conv).iter().any(|t| t.contains("bo")));
    assert!(texts(bo_conv).contains(&"bo: again bo".to_string()));
    assert_eq!((ana_conv.unread, bo_conv.unread), (0, 2));
    assert!(app.bell, "the first unread line rings");
    assert_eq!(app.title(), "(2) tern");
    // Everyone has all of it, in order.
    let everyone = texts(&app.conversations[0]);
    let order: Vec<&String> = everyone.iter().filter(|t| t.contains("from")).collect();
    assert_eq!(order, ["ana: from ana", "bo: from bo"]);
    // Alt-A opens bo and clears the count.
    app.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('a'),
        KeyModifiers::ALT,
    )));
    assert_eq!(app.conv().name, "bo");
    assert_eq!(app.unread(), 0);
    assert_eq!(app.title(), "tern");
}

#[test]
fn a_line_typed_in_everyone_goes_to_every_connected_peer() {
    let mut app = listening();
    let (ana, bo, cy) = (PeerId::next(), PeerId::next(), PeerId::next());
    joins(&mut app, ana, "ana");
    joins(&mut app, bo, "bo");
    joins(&mut app, cy, "cy");
    app.update(from(cy, SessionEvent::Closed { error: None }));
    app.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('0'),
        KeyModifiers::ALT,
    )));
    assert!(app.conv().everyone);
    let actions = type_line(&mut app, "hello all");
    let to: Vec<PeerId> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Session(p, Command::Text(t)) if t == "hello all" => Some(*p),
            _ => None,
        })
        .collect();
    assert_eq!(to, [ana, bo], "cy has left");
    assert!(texts(&app.conversations[1]).contains(&"me: hello all".to_string()));
}

#[test]
fn msg_sends_to_one_peer_by_name_or_unique_prefix_without_switching() {
    let mut app = listening();
    let (ana, anabel) = (PeerId::next(), PeerId::next());
    joins(&mut app, ana, "ana");
    joins(&mut app, anabel, "Anabel");
    app.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('0'),
        KeyModifiers::ALT,
    )));
    let actions = type_line(&mut app, "/msg ana exact");
    assert!(
        matches!(&actions[..], [Action::Session(p, Command::Text(t))] if *p == ana && t == "exact"),
        "{actions:?}"
    );
    let actions = type_line(&mut app, "/msg anab by prefix");
    assert!(
        matches!(&actions[..], [Action::Session(p, Command::Text(t))] if *p == anabel && t == "by prefix"),
        "{actions:?}"
    );
    assert!(app.conv().everyone, "no switch");
    let actions = type_line(&mut app, "/msg zed hi");
    assert!(actions.is_empty());
    assert!(last_text(&app).contains("no peer is called zed"));
}

#[test]
fn a_known_peer_from_the_history_is_listed_and_enter_dials_it() {
    let mut app = listening();
    app.update(Msg::Known(vec![
        ("ana".into(), Some("10.0.0.7:51234".into())),
        ("bo".into(), None),
    ]));
    assert_eq!(app.conversations.len(), 3);
    app.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('1'),
        KeyModifiers::ALT,
    )));
    app.focus = Focus::Peers;
    let actions = app.update(key(KeyCode::Enter));
    let peer = match &actions[..] {
        [Action::Dial { peer, target }] if target == "10.0.0.7" => *peer,
        other => panic!("{other:?}"),
    };
    assert!(matches!(app.conv().link, Link::Connecting(_)));
    // bo has no address to dial.
    app.update(key(KeyCode::Down));
    assert_eq!(app.conv().name, "bo");
    assert!(app.update(key(KeyCode::Enter)).is_empty());
    assert!(last_text(&app).contains("no address"));
    // ana answers: the same conversation, not a new one.
    joins(&mut app, peer, "ana");
    assert_eq!(app.conversations.len(), 3);
    assert!(matches!(app.conversations[1].link, Link::Connected(_)));
}

#[test]
fn a_peer_met_again_gets_its_old_conversation_back_and_a_shell_from_the_history_goes() {
    let mut app = listening();
    app.update(Msg::Known(vec![(
        "bo".into(),
        Some("10.0.0.8:4000".into()),
    )]));
    let first = PeerId::next();
    joins(&mut app, first, "ana");
    says(&mut app, first, "before");
    app.update(from(first, SessionEvent::Closed { error: None }));
    let again = PeerId::next();
    joins(&mut app, again, "ana");
    assert_eq!(names(&app), ["Everyone", "bo", "ana"]);
    assert!(texts(&app.conversations[2]).contains(&"ana: before".to_string()));
    // bo connecting replaces the shell listed from the history.
    joins(&mut app, PeerId::next(), "bo");
    assert_eq!(app.conversations.len(), 3);
}

#[test]
fn files_dropped_in_everyone_are_offered_to_every_peer() {
    let mut app = listening();
    let (ana, bo) = (PeerId::next(), PeerId::next());
    joins(&mut app, ana, "ana");
    joins(&mut app, bo, "bo");
    app.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('0'),
        KeyModifiers::ALT,
    )));
    let file = OutgoingFile {
        local: "/tmp/x".into(),
        rel_path: "x".into(),
        size: 1,
    };
    let actions = app.update(Msg::Collected {
        to: app.conv().id,
        result: Ok(vec![file]),
    });
    let to: Vec<PeerId> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Session(p, Command::Offer(_)) => Some(*p),
            _ => None,
        })
        .collect();
    assert_eq!(to, [ana, bo]);
}

#[test]
fn a_report_for_a_peer_never_seen_changes_nothing() {
    let mut app = listening();
    joins(&mut app, PeerId::next(), "ana");
    let before = app.conversations.len();
    says(&mut app, PeerId::next(), "who?");
    offer(&mut app, 9, TransferState::AwaitingDecision);
    assert_eq!(app.conversations.len(), before);
    assert!(!texts(app.conv()).iter().any(|t| t.contains("who?")));
}

#[test]
fn the_list_stays_bounded_however_many_peers_come_and_go() {
    let mut app = listening();
    for i in 0..3 * MAX_CONVERSATIONS {
        let peer = PeerId::next();
        joins(&mut app, peer, &format!("p{i}"));
        app.update(from(peer, SessionEvent::Closed { error: None }));
    }
    assert!(app.conversations.len() <= MAX_CONVERSATIONS);
    assert!(app.conversations[0].everyone);
}

#[test]
fn the_history_is_read_once_per_conversation_on_connect_or_on_opening_a_known_peer() {
    let mut app = listening();
    app.update(Msg::Known(vec![(
        "bo".into(),
        Some("10.0.0.8:4000".into()),
    )]));
    // Opening bo, known from the history, asks for its past once.
    let actions = app.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('1'),
        KeyModifiers::ALT,
    )));
    let to = match &actions[..] {
        [Action::ReadPast { to, peer }] if peer == "bo" => *to,
        other => panic!("{other:?}"),
    };
    app.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('0'),
        KeyModifiers::ALT,
    )));
    let again = app.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('1'),
        KeyModifiers::ALT,
    )));
    assert!(again.is_empty(), "{again:?}");
    let entry = crate::history::Entry {
        time: "2026-12-01T10:00:00.000Z".into(),
        peer: "bo".into(),
        direction: crate::history::Direction::In,
        kind: crate::history::EntryKind::Message {
            text: "from last week".into(),
            encoding: "utf-8".into(),
        },
    };
    app.update(Msg::Past {
        to,
        entries: vec![entry],
    });
    assert!(texts(app.conv()).iter().any(|t| t == "bo: from last week"));
    // bo connecting later does not read it again.
    let actions = joins(&mut app, PeerId::next(), "bo");
    assert!(
        !actions.iter().any(|a| matches!(a, Action::ReadPast { .. })),
        "{actions:?}"
    );
    // A new peer's history is asked for when it connects.
    let actions = joins(&mut app, PeerId::next(), "cy");
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::ReadPast { peer, .. } if peer == "cy")),
        "{actions:?}"
    );
}
