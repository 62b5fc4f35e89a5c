use std::net::SocketAddr;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::*;
use crate::net::PeerReport;
use crate::session::{PeerInfo, SessionEvent};
use crate::text::PeerText;
use crate::transfer::{Progress, TransferId, TransferState, TransferUpdate};

/// The peer of a test's session (each test runs on a thread of its own).
fn peer() -> PeerId {
    thread_local! {
        static PEER: PeerId = PeerId::next();
    }
    PEER.with(|p| *p)
}

/// An event of the test's peer's session.
fn session(event: SessionEvent) -> Msg {
    from(peer(), event)
}

/// An event of `peer`'s session.
fn from(peer: PeerId, event: SessionEvent) -> Msg {
    Msg::Peer(Report {
        peer,
        what: PeerReport::Event(event),
    })
}

fn clock() -> String {
    "12:00".into()
}

fn listening() -> App {
    App::new(
        "me".into(),
        Encoding::Utf8,
        Some(Listening {
            addresses: vec!["192.168.1.5".into()],
            port: 8989,
        }),
        clock,
    )
}

fn connected() -> App {
    let mut app = listening();
    app.update(session(SessionEvent::Connected(PeerInfo {
        name: "ana".into(),
        addr: Some(SocketAddr::from(([192, 168, 1, 20], 50000))),
        raw: false,
        key: None,
    })));
    app
}

fn key(code: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn type_line(app: &mut App, text: &str) -> Vec<Action> {
    for c in text.chars() {
        app.update(key(KeyCode::Char(c)));
    }
    app.update(key(KeyCode::Enter))
}

/// The same transfer for the same number, within a test (each runs on a thread of its own).
fn incoming(id: u32) -> TransferId {
    thread_local! {
        static IDS: std::cell::RefCell<std::collections::HashMap<u32, TransferId>> =
            Default::default();
    }
    IDS.with(|ids| {
        *ids.borrow_mut()
            .entry(id)
            .or_insert_with(|| TransferId::incoming(id))
    })
}

/// An update of transfer `id` (of `path`, `done` of `total` bytes) in `state`.
fn transfer(
    id: TransferId,
    path: &str,
    state: TransferState,
    done: u64,
    total: u64,
) -> SessionEvent {
    SessionEvent::Transfer(TransferUpdate {
        id,
        path: path.into(),
        saved_as: None,
        hash: None,
        state,
        progress: Progress { done, total },
    })
}

fn offer(app: &mut App, id: u32, state: TransferState) {
    let path = format!("file{id}.bin");
    app.update(session(transfer(incoming(id), &path, state, 0, 1000)));
}

/// The list's names, Everyone first.
fn names(app: &App) -> Vec<&str> {
    app.conversations.iter().map(|c| c.name.as_str()).collect()
}

/// The open conversation's system and error lines, oldest first.
fn system_lines(app: &App) -> Vec<String> {
    app.conv()
        .transcript
        .messages()
        .iter()
        .filter(|m| matches!(m.kind, MessageKind::System | MessageKind::Error))
        .map(|m| m.text.clone())
        .collect()
}

fn last_text(app: &App) -> String {
    app.conv()
        .transcript
        .messages()
        .last()
        .map(|m| m.text.clone())
        .unwrap_or_default()
}

#[test]
fn enter_sends_the_line_and_shows_it_as_mine() {
    let mut app = connected();
    let actions = type_line(&mut app, "你好 ana");
    assert!(matches!(&actions[..], [Action::Session(_, Command::Text(t))] if t == "你好 ana"));
    let last = app.conv().transcript.messages().last().cloned();
    assert_eq!(
        last.map(|m| (m.kind, m.text)),
        Some((MessageKind::Mine, "你好 ana".into()))
    );
    assert!(app.input.is_empty());
}

#[test]
fn text_typed_with_no_peer_stays_in_the_input_line() {
    let mut app = listening();
    let actions = type_line(&mut app, "hello?");
    assert!(actions.is_empty());
    assert_eq!(app.input.text(), "hello?");
    assert!(last_text(&app).contains("nobody is connected"));
}

#[test]
fn unknown_commands_get_a_clear_message() {
    let mut app = connected();
    let actions = type_line(&mut app, "/frobnicate now");
    assert!(actions.is_empty());
    assert!(last_text(&app).contains("unknown command /frobnicate"));
}

#[test]
fn double_slash_sends_a_literal_slash_message() {
    let mut app = connected();
    let actions = type_line(&mut app, "//shrug");
    assert!(matches!(&actions[..], [Action::Session(_, Command::Text(t))] if t == "/shrug"));
}

#[test]
fn encoding_command_switches_and_tells_the_session() {
    let mut app = connected();
    let actions = type_line(&mut app, "/encoding gbk");
    assert_eq!(app.conv().encoding, Encoding::Gbk);
    assert!(matches!(
        &actions[..],
        [Action::Session(_, Command::SetEncoding(Encoding::Gbk))]
    ));
    type_line(&mut app, "/encoding latin1");
    assert!(last_text(&app).contains("usage"));
}

#[test]
fn send_command_parses_quoted_paths() {
    let mut app = connected();
    // Double quotes: both Unix shells' and Windows consoles' way.
    let actions = type_line(&mut app, "/send \"/tmp/a b.txt\" /tmp/c");
    match &actions[..] {
        [Action::Collect { paths, .. }] => assert_eq!(
            paths,
            &[PathBuf::from("/tmp/a b.txt"), PathBuf::from("/tmp/c")]
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn connect_command_adds_a_peer_and_opens_it() {
    let mut app = listening();
    let actions = type_line(&mut app, "/connect 10.0.0.2");
    assert!(matches!(&actions[..], [Action::Dial { target: t, .. }] if t == "10.0.0.2"));
    let mut app = connected();
    let actions = type_line(&mut app, "/connect 10.0.0.3:9000");
    assert!(matches!(&actions[..], [Action::Dial { target: t, .. }] if t == "10.0.0.3:9000"));
    assert_eq!(app.conversations.len(), 3, "Everyone, ana, and the new one");
    assert_eq!(app.conv().name, "10.0.0.3:9000");
    assert!(matches!(app.conv().link, Link::Connecting(_)));
    assert!(
        matches!(app.conversations[1].link, Link::Connected(_)),
        "ana's session is left alone"
    );
}

#[test]
fn a_paste_of_existing_paths_queues_files_and_other_text_goes_to_the_input() {
    let tmp = tempfile::tempdir().expect("tmp");
    let file = tmp.path().join("My File.txt");
    std::fs::write(&file, b"x").expect("write");
    let mut app = connected();
    let actions = app.update(Msg::Paste(format!("\"{}\"", file.display())));
    assert!(
        matches!(&actions[..], [Action::Collect { paths: p, .. }] if p == std::slice::from_ref(&file))
    );
    assert!(app.input.is_empty());
    let actions = app.update(Msg::Paste("just some words\n".into()));
    assert!(actions.is_empty());
    assert_eq!(app.input.text(), "just some words");
}

#[test]
fn files_queued_before_a_peer_are_offered_when_it_connects() {
    let mut app = listening();
    let file = OutgoingFile {
        local: PathBuf::from("/tmp/a.txt"),
        rel_path: "a.txt".into(),
        size: 3,
    };
    assert!(
        app.update(Msg::Collected {
            to: app.conv().id,
            result: Ok(vec![file.clone()])
        })
        .is_empty()
    );
    assert_eq!(app.conv().queue.len(), 1);
    assert_eq!(app.conv().queue[0].state, TransferState::Queued);
    let actions = app.update(session(SessionEvent::Connected(PeerInfo {
        name: "ana".into(),
        addr: None,
        raw: false,
        key: None,
    })));
    assert!(
        matches!(&actions[..], [Action::ReadPast { peer, .. }, Action::Session(_, Command::Offer(f))] if peer == "ana" && f == std::slice::from_ref(&file)),
        "{actions:?}"
    );
    assert!(
        app.conv().queue.is_empty(),
        "the local row gives way to the real offer"
    );
}

#[test]
fn files_for_a_raw_peer_are_refused_with_a_reason() {
    let mut app = listening();
    app.update(session(SessionEvent::Connected(PeerInfo {
        name: "nc".into(),
        addr: None,
        raw: true,
        key: None,
    })));
    let file = OutgoingFile {
        local: PathBuf::from("/tmp/a.txt"),
        rel_path: "a.txt".into(),
        size: 3,
    };
    assert!(
        app.update(Msg::Collected {
            to: app.conv().id,
            result: Ok(vec![file])
        })
        .is_empty()
    );
    assert!(last_text(&app).contains("raw peer"));
}

#[test]
fn queue_keys_accept_and_decline_the_selected_offer() {
    let mut app = connected();
    offer(&mut app, 1, TransferState::AwaitingDecision);
    offer(&mut app, 2, TransferState::AwaitingDecision);
    app.update(key(KeyCode::Tab));
    app.update(key(KeyCode::Tab));
    assert_eq!(app.focus, Focus::Queue);
    assert!(app.update(key(KeyCode::Char('a'))).is_empty());
    let actions = app.update(key(KeyCode::Char('y')));
    assert!(matches!(
        &actions[..],
        [Action::Session(_, Command::Accept(id))] if *id == incoming(1)
    ));
    app.update(key(KeyCode::Down));
    assert!(app.update(key(KeyCode::Char('d'))).is_empty());
    let actions = app.update(key(KeyCode::Char('y')));
    assert!(matches!(
        &actions[..],
        [Action::Session(_, Command::Reject(id, _))] if *id == incoming(2)
    ));
}

#[test]
fn accept_command_accepts_every_waiting_offer() {
    let mut app = connected();
    offer(&mut app, 1, TransferState::AwaitingDecision);
    offer(&mut app, 2, TransferState::AwaitingDecision);
    offer(&mut app, 3, TransferState::Verified);
    let actions = type_line(&mut app, "/accept");
    assert_eq!(actions.len(), 2);
}

#[test]
fn quitting_while_a_transfer_runs_asks_first() {
    let mut app = connected();
    offer(&mut app, 1, TransferState::Transferring);
    let ctrl_c = Msg::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    assert!(app.update(ctrl_c).is_empty());
    assert!(app.confirm_quit);
    assert!(app.update(key(KeyCode::Char('n'))).is_empty());
    assert!(!app.confirm_quit);
    let actions = type_line(&mut app, "/quit");
    assert!(actions.is_empty() && app.confirm_quit);
    assert!(matches!(
        &app.update(key(KeyCode::Char('y')))[..],
        [Action::Quit]
    ));
}

#[test]
fn quitting_when_idle_is_immediate() {
    let mut app = connected();
    let ctrl_c = Msg::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    assert!(matches!(&app.update(ctrl_c)[..], [Action::Quit]));
}

#[test]
fn help_opens_with_f1_and_question_mark_and_closes_with_esc() {
    let mut app = connected();
    app.update(key(KeyCode::F(1)));
    assert!(app.help_open);
    app.update(key(KeyCode::Esc));
    assert!(!app.help_open);
    app.update(key(KeyCode::Char('?')));
    assert!(app.help_open);
}

#[test]
fn a_failed_outgoing_file_can_be_retried() {
    let tmp = tempfile::tempdir().expect("tmp");
    let path = tmp.path().join("a.txt");
    std::fs::write(&path, b"abc").expect("write");
    let mut app = connected();
    let file = OutgoingFile {
        local: path,
        rel_path: "a.txt".into(),
        size: 3,
    };
    app.update(Msg::Collected {
        to: app.conv().id,
        result: Ok(vec![file.clone()]),
    });
    app.update(session(transfer(
        TransferId::outgoing(1),
        "a.txt",
        TransferState::failed("connection lost"),
        1,
        3,
    )));
    app.focus = Focus::Queue;
    let actions = app.update(key(KeyCode::Char('r')));
    assert!(
        matches!(&actions[..], [Action::Session(_, Command::Offer(f))] if f == std::slice::from_ref(&file))
    );
    assert!(
        app.conv().queue.is_empty(),
        "the failed row is replaced by the new offer"
    );
}

#[test]
fn session_news_becomes_system_lines() {
    let mut app = connected();
    offer(&mut app, 1, TransferState::AwaitingDecision);
    assert!(last_text(&app).contains("offers file1.bin"));
    app.update(session(SessionEvent::Text {
        text: PeerText::new("a\u{fffd}b".into()),
        encoding: Encoding::Gbk,
        lossy: true,
    }));
    assert!(last_text(&app).contains("not valid gbk"));
    app.update(session(SessionEvent::Closed { error: None }));
    assert!(matches!(app.conv().link, Link::Disconnected(_)));
    assert!(last_text(&app).contains("ana left"));
}

#[test]
fn progress_updates_measure_speed() {
    let mut app = connected();
    offer(&mut app, 1, TransferState::Transferring);
    std::thread::sleep(std::time::Duration::from_millis(20));
    app.update(session(transfer(
        incoming(1),
        "file1.bin",
        TransferState::Transferring,
        500,
        1000,
    )));
    assert!(app.conv().queue[0].speed > 0.0);
    assert!(app.conv().queue[0].eta_secs().is_some());
    assert!(app.throughput().1 > 0.0);
}

#[test]
fn retry_after_a_lost_connection_dials_the_peer_again() {
    let tmp = tempfile::tempdir().expect("tmp");
    let path = tmp.path().join("a.txt");
    std::fs::write(&path, b"abc").expect("write");
    let mut app = listening();
    let dialled = |actions: &[Action]| match actions {
        [Action::Dial { peer, target }] if target == "10.0.0.2:8989" => *peer,
        other => panic!("expected a dial of 10.0.0.2:8989, got {other:?}"),
    };
    let first = dialled(&app.connect("10.0.0.2:8989".into()));
    let ana = || {
        SessionEvent::Connected(PeerInfo {
            name: "ana".into(),
            addr: None,
            raw: false,
            key: None,
        })
    };
    app.update(from(first, ana()));
    let file = OutgoingFile {
        local: path,
        rel_path: "a.txt".into(),
        size: 3,
    };
    app.update(Msg::Collected {
        to: app.conv().id,
        result: Ok(vec![file.clone()]),
    });
    app.update(from(
        first,
        transfer(
            TransferId::outgoing(1),
            "a.txt",
            TransferState::failed("connection lost"),
            1,
            3,
        ),
    ));
    app.update(from(
        first,
        SessionEvent::Closed {
            error: Some(crate::session::Failure::new(
                crate::session::FailureKind::Lost,
                "connection lost",
            )),
        },
    ));
    app.focus = Focus::Queue;
    let again = dialled(&app.update(key(KeyCode::Char('r'))));
    assert_ne!(again, first, "a new session is a new peer id");
    assert_eq!(app.conv().queue.len(), 1);
    assert_eq!(app.conv().queue[0].state, TransferState::Queued);
    // Once connected again, the file is offered to the new session.
    let actions = app.update(from(again, ana()));
    assert!(
        matches!(&actions[..], [Action::Session(p, Command::Offer(f))] if *p == again && f == std::slice::from_ref(&file)),
        "{actions:?}"
    );
    assert_eq!(app.conversations.len(), 2, "Everyone and ana, nothing more");
}

mod file_keys;
mod folders;
mod lan;
mod peers;
mod sessions;
mod trust;
