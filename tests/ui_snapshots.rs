//! The view at fixed sizes, drawn into ratatui's TestBackend and compared with reviewed
//! snapshots (tests/snapshots). The clock is fixed; no paths from the machine appear.

use std::net::SocketAddr;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tern::crypto::Fingerprint;
use tern::crypto::known::Verdict;
use tern::net::{PeerReport, Report};
use tern::session::PeerId;
use tern::session::{PeerInfo, PeerKey, SessionEvent};
use tern::text::Encoding;
use tern::transfer::{Progress, TransferId, TransferState};
use tern::tui::app::{App, Listening, Msg, Row, RowKey};
use tern::tui::keymap::Focus;
use tern::tui::transcript::MessageKind;
use tern::tui::view;

fn clock() -> String {
    "12:00".into()
}

fn listening() -> App {
    App::new(
        "me@laptop".into(),
        Encoding::Utf8,
        Some(Listening {
            addresses: vec!["192.168.1.5".into(), "127.0.0.1".into()],
            port: 8989,
        }),
        clock,
    )
}

/// The peer of a test's session (each test runs on a thread of its own).
fn peer() -> PeerId {
    thread_local! {
        static PEER: PeerId = PeerId::next();
    }
    PEER.with(|p| *p)
}

fn session(event: SessionEvent) -> Msg {
    Msg::Peer(Report {
        peer: peer(),
        what: PeerReport::Event(event),
    })
}

/// A peer's proven key, always the same for `seed`, standing as `standing` here.
fn key(seed: u8, standing: Verdict) -> Option<PeerKey> {
    Some(PeerKey {
        key: [seed; 32],
        fingerprint: Fingerprint::of(&[seed; 32]),
        authentication: "123 456".into(),
        standing,
    })
}

fn connected() -> App {
    let mut app = listening();
    app.conv_mut().transcript = Default::default();
    app.update(session(SessionEvent::Connected(PeerInfo {
        name: "ana@desk".into(),
        addr: Some(SocketAddr::from(([192, 168, 1, 20], 50123))),
        raw: false,
        key: key(1, Verdict::Known { verified: true }),
    })));
    app
}

/// Draw like the real loop: first tell the app its pane sizes, then render.
fn render(app: &mut App, width: u16, height: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("terminal");
    if let Some(areas) = view::areas(
        ratatui::layout::Rect::new(0, 0, width, height),
        app.conv().queue.len(),
    ) {
        let (w, h) = view::inner(areas.messages);
        app.set_viewport(w, h);
    }
    terminal.draw(|frame| view::draw(app, frame)).expect("draw");
    terminal
}

fn chat(app: &mut App) {
    app.push(MessageKind::Peer, "ana@desk", "你好！我刚把照片整理好了，马上发给你。这一行很长，需要在窄的窗口里正确换行，每个汉字占两格。");
    app.push(
        MessageKind::Mine,
        "me@laptop",
        "Great, thanks! Send the whole folder, and the spreadsheet too if you have it handy.",
    );
    app.push(
        MessageKind::Peer,
        "ana@desk",
        "好的 👍 mixed 中文 and English in one line, wrapping at spaces where it can.",
    );
    app.push(MessageKind::System, "", "outgoing encoding switched to gbk");
    app.push(
        MessageKind::Error,
        "",
        "photos/raw.cr2 failed: the receiver says: BLAKE3 mismatch",
    );
}

#[test]
fn empty_screen_shows_how_to_connect() {
    let mut app = listening();
    insta::assert_snapshot!(render(&mut app, 100, 24).backend());
}

#[test]
fn chatting_in_chinese_and_english_wraps_by_cells() {
    let mut app = connected();
    chat(&mut app);
    insta::assert_snapshot!(render(&mut app, 80, 24).backend());
}

fn row(id: TransferId, path: &str, state: TransferState, done: u64, total: u64) -> Row {
    Row::new(RowKey::Transfer(id), path, state, Progress { done, total })
}

#[test]
fn the_queue_shows_every_state() {
    let mut app = connected();
    let out = TransferId::outgoing;
    let inc = TransferId::incoming;
    app.conv_mut().queue = vec![
        Row::new(
            RowKey::Local(1),
            "later/notes.txt",
            TransferState::Queued,
            Progress {
                done: 0,
                total: 2048,
            },
        ),
        row(
            out(1),
            "photos/beach.jpg",
            TransferState::Offered,
            0,
            4_100_000,
        ),
        row(
            inc(1),
            "报告 2024.pdf",
            TransferState::AwaitingDecision,
            0,
            1_300_000,
        ),
        row(
            out(2),
            "videos/holiday.mp4",
            TransferState::Transferring,
            700 << 20,
            1 << 30,
        )
        .with_speed(112.0 * 1024.0 * 1024.0),
        row(
            out(3),
            "photos/山.jpg",
            TransferState::Verifying,
            4 << 20,
            4 << 20,
        ),
        row(
            inc(2),
            "song.flac",
            TransferState::Verified,
            30 << 20,
            30 << 20,
        ),
        row(
            out(4),
            "secret.key",
            TransferState::Rejected("declined by the receiver".into()),
            0,
            3,
        ),
        row(
            inc(3),
            "raw.cr2",
            TransferState::Failed("BLAKE3 mismatch: the data is corrupt".into()),
            9 << 20,
            9 << 20,
        ),
        row(
            out(5),
            "old.iso",
            TransferState::Cancelled("by the peer".into()),
            1 << 20,
            700 << 20,
        ),
    ];
    app.focus = Focus::Queue;
    app.conv_mut().selected = 2;
    insta::assert_snapshot!(render(&mut app, 120, 24).backend());
}

#[test]
fn help_overlay_lists_keys_and_commands() {
    let mut app = connected();
    chat(&mut app);
    app.help_open = true;
    insta::assert_snapshot!(render(&mut app, 100, 32).backend());
}

#[test]
fn a_narrow_terminal_stacks_the_panes() {
    let mut app = connected();
    chat(&mut app);
    app.conv_mut().queue = vec![row(
        TransferId::incoming(1),
        "报告 2024.pdf",
        TransferState::AwaitingDecision,
        0,
        1_300_000,
    )];
    insta::assert_snapshot!(render(&mut app, 44, 20).backend());
}

#[test]
fn a_too_small_terminal_says_so() {
    let mut app = connected();
    insta::assert_snapshot!(render(&mut app, 30, 8).backend());
}

#[test]
fn scrolled_up_the_view_holds_and_counts_new_messages() {
    let mut app = connected();
    for i in 0..40 {
        app.push(MessageKind::Peer, "ana@desk", format!("message number {i}"));
    }
    render(&mut app, 120, 24);
    app.update(Msg::Key(crossterm::event::KeyEvent::new(
        crossterm::event::KeyCode::PageUp,
        crossterm::event::KeyModifiers::NONE,
    )));
    let before = render(&mut app, 120, 24).backend().to_string();
    app.push(MessageKind::Peer, "ana@desk", "new while scrolled");
    app.push(MessageKind::Peer, "ana@desk", "another new one");
    let after = render(&mut app, 120, 24);
    assert!(after.backend().to_string().contains("2 new messages"));
    assert!(!after.backend().to_string().contains("new while scrolled"));
    // Same lines in view, only the marker is new.
    let strip = |s: &str| s.lines().take(20).map(str::to_string).collect::<Vec<_>>();
    assert_eq!(
        strip(&before)[1..19],
        strip(&after.backend().to_string())[1..19]
    );
    insta::assert_snapshot!(after.backend());
}

#[test]
fn the_cursor_sits_after_wide_characters() {
    let mut app = connected();
    for c in "你好ab".chars() {
        app.update(Msg::Key(crossterm::event::KeyEvent::new(
            crossterm::event::KeyCode::Char(c),
            crossterm::event::KeyModifiers::NONE,
        )));
    }
    let mut terminal = render(&mut app, 100, 24);
    let pos = terminal.get_cursor_position().expect("cursor");
    // Input box starts at column 0 with a border: text at column 1; 你好ab is 6 cells.
    assert_eq!(pos.x, 1 + 6);
    assert_eq!(pos.y, 24 - 1 - 2);
}

#[test]
fn declining_a_file_asks_in_the_status_line() {
    let mut app = connected();
    app.update(session(SessionEvent::Transfer(
        tern::transfer::TransferUpdate {
            id: TransferId::incoming(1),
            path: "报告 2024.pdf".into(),
            saved_as: None,
            hash: None,
            state: TransferState::AwaitingDecision,
            progress: Progress {
                done: 0,
                total: 1_300_000,
            },
        },
    )));
    app.focus = Focus::Queue;
    app.update(Msg::Key(crossterm::event::KeyEvent::new(
        crossterm::event::KeyCode::Char('d'),
        crossterm::event::KeyModifiers::NONE,
    )));
    insta::assert_snapshot!(render(&mut app, 100, 16).backend());
}

#[test]
fn a_file_you_declined_says_you_did() {
    let mut app = connected();
    let song = TransferId::incoming(1);
    let offer = |state| {
        session(SessionEvent::Transfer(tern::transfer::TransferUpdate {
            id: song,
            path: "song.flac".into(),
            saved_as: None,
            hash: None,
            state,
            progress: Progress {
                done: 0,
                total: 30 << 20,
            },
        }))
    };
    app.update(offer(TransferState::AwaitingDecision));
    app.focus = Focus::Queue;
    let mut actions = Vec::new();
    for c in ['d', 'y'] {
        actions.extend(app.update(Msg::Key(crossterm::event::KeyEvent::new(
            crossterm::event::KeyCode::Char(c),
            crossterm::event::KeyModifiers::NONE,
        ))));
    }
    // The session answers a decline with the offer, rejected for the reason it sent the peer.
    let reason = match &actions[..] {
        [tern::tui::app::Action::Session(_, tern::session::Command::Reject(id, reason))]
            if *id == song =>
        {
            reason.clone()
        }
        other => panic!("d, y should decline offer 1, got {other:?}"),
    };
    app.update(offer(TransferState::rejected(reason)));

    let screen = render(&mut app, 100, 16).backend().to_string();
    assert!(screen.contains("declined by you"), "{screen}");
    assert!(!screen.contains("by the receiver"), "{screen}");
}

/// The key a key name on screen stands for.
fn parse_key(name: &str) -> crossterm::event::KeyEvent {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    let (mods, rest) = match (name.strip_prefix("Ctrl-"), name.strip_prefix("Alt-")) {
        (Some(rest), _) => (KeyModifiers::CONTROL, rest),
        (_, Some(rest)) => (KeyModifiers::ALT, rest),
        _ => (KeyModifiers::NONE, name),
    };
    let code = match rest {
        "Enter" => KeyCode::Enter,
        "End" => KeyCode::End,
        "Home" => KeyCode::Home,
        "PgDn" => KeyCode::PageDown,
        "Esc" => KeyCode::Esc,
        digit if digit.len() == 1 && digit.chars().all(|c| c.is_ascii_digit()) => {
            KeyCode::Char(digit.chars().next().unwrap_or('0'))
        }
        other => panic!("no key named {other:?}"),
    };
    KeyEvent::new(code, mods)
}

#[test]
fn the_scrolled_up_marker_names_a_key_that_jumps_down_from_every_pane() {
    for focus in [Focus::Input, Focus::Messages, Focus::Queue] {
        let mut app = connected();
        for i in 0..40 {
            app.push(MessageKind::Peer, "ana@desk", format!("message number {i}"));
        }
        render(&mut app, 100, 24);
        app.update(Msg::Wheel {
            up: true,
            over_queue: false,
        });
        app.focus = focus;
        let screen = render(&mut app, 100, 24).backend().to_string();
        let marker = screen
            .lines()
            .find(|l| l.contains("more below"))
            .unwrap_or_else(|| panic!("no marker while scrolled up\n{screen}"));
        let name = marker
            .split_once('(')
            .and_then(|(_, rest)| rest.split_once(')'))
            .map(|(name, _)| name)
            .unwrap_or_else(|| panic!("the marker names no key: {marker}"));

        app.update(Msg::Key(parse_key(name)));

        assert_eq!(
            app.conv().transcript.offset(),
            0,
            "{focus:?}: {name}, as the marker says, should show the newest message"
        );
    }
}

#[test]
fn the_help_overlay_border_shows_over_wide_characters() {
    let mut app = connected();
    // At 108 columns the overlay's left border is at column 18. Peer text starts at column 16,
    // so on one of these two lines a double-width character covers columns 17 and 18.
    let wide = "你好世界".repeat(20);
    for prefix in ["", "a"] {
        app.push(MessageKind::Peer, "ana@desk", format!("{prefix}{wide}"));
    }
    app.help_open = true;
    let terminal = render(&mut app, 108, 32);
    // What the terminal was sent, not what ratatui meant: a border cell hidden behind the second
    // half of a wide character is never sent.
    let shown = terminal.backend().buffer();
    let area = shown.area;
    let top = (0..area.height)
        .find(|&y| shown[(18, y)].symbol() == "┌")
        .expect("the overlay's top-left corner at column 18");
    let bottom = (top..area.height)
        .find(|&y| shown[(18, y)].symbol() == "└")
        .unwrap_or_else(|| panic!("no bottom-left corner:\n{}", terminal.backend()));
    for y in top + 1..bottom {
        assert_eq!(
            shown[(18, y)].symbol(),
            "│",
            "row {y} lost the border:\n{}",
            terminal.backend()
        );
    }
}

fn joins(app: &mut App, peer: PeerId, name: &str, port: u16) {
    joins_with(app, peer, name, port, key(2, Verdict::FirstContact));
}

fn joins_with(app: &mut App, peer: PeerId, name: &str, port: u16, key: Option<PeerKey>) {
    app.update(Msg::Peer(Report {
        peer,
        what: PeerReport::Event(SessionEvent::Connected(PeerInfo {
            name: name.into(),
            addr: Some(SocketAddr::from(([192, 168, 1, 20], port))),
            raw: false,
            key,
        })),
    }));
}

fn says(app: &mut App, peer: PeerId, text: &str) {
    app.update(Msg::Peer(Report {
        peer,
        what: PeerReport::Event(SessionEvent::Text {
            text: tern::text::PeerText::new(text.to_string()),
            encoding: Encoding::Utf8,
            lossy: false,
        }),
    }));
}

#[test]
fn the_peer_list_shows_each_peer_its_state_and_unread_count() {
    let mut app = listening();
    let (ana, bo, cy) = (PeerId::next(), PeerId::next(), PeerId::next());
    let (eve, old) = (PeerId::next(), PeerId::next());
    joins_with(
        &mut app,
        ana,
        "ana@desk",
        50001,
        key(1, Verdict::Known { verified: true }),
    );
    joins(&mut app, bo, "bo", 50002);
    joins(&mut app, cy, "陈静", 50003);
    let changed = Verdict::KeyChanged {
        previous: Fingerprint::of(&[9; 32]),
    };
    joins_with(&mut app, eve, "eve", 50004, key(4, changed));
    joins_with(&mut app, old, "old-laptop", 50005, None);
    says(&mut app, bo, "lunch?");
    says(&mut app, bo, "at 12");
    says(&mut app, cy, "文件收到了");
    says(&mut app, ana, "hi");
    app.update(Msg::Peer(Report {
        peer: cy,
        what: PeerReport::Event(SessionEvent::Closed { error: None }),
    }));
    insta::assert_snapshot!(render(&mut app, 100, 20).backend());
    assert_eq!(app.title(), "(3) tern");
}

#[test]
fn peers_found_on_the_lan_are_listed_with_their_address_and_say_how_to_connect() {
    use tern::net::discovery::{Found, Sighting};
    let found = |instance: u64, name: &str, last: u8, port: u16| Found {
        instance,
        name: name.into(),
        addr: std::net::Ipv4Addr::new(192, 168, 1, last),
        port,
        fingerprint: Fingerprint::of(&[last; 32]).to_string(),
        version: 2,
        caps: 0,
    };
    let mut app = listening();
    app.discovering = true;
    // Connected, and announcing the same key: one entry.
    let ana = PeerId::next();
    let verified = Verdict::Known { verified: true };
    joins_with(&mut app, ana, "ana@desk", 50001, key(20, verified));
    app.update(Msg::Lan(Sighting::Found(found(1, "ana@desk", 20, 8989))));
    app.update(Msg::Lan(Sighting::Found(found(2, "bo", 31, 9000))));
    app.update(Msg::Lan(Sighting::Found(found(
        3,
        "陈静的笔记本电脑",
        42,
        8989,
    ))));
    app.update(Msg::Key(crossterm::event::KeyEvent::new(
        crossterm::event::KeyCode::Char('2'),
        crossterm::event::KeyModifiers::ALT,
    )));
    insta::assert_snapshot!(render(&mut app, 100, 20).backend());
}

#[test]
fn everyone_shows_every_conversation_labelled_by_peer() {
    let mut app = listening();
    let (ana, bo) = (PeerId::next(), PeerId::next());
    joins(&mut app, ana, "ana", 50001);
    joins(&mut app, bo, "bo", 50002);
    says(&mut app, ana, "from ana");
    says(&mut app, bo, "from bo");
    app.update(Msg::Key(parse_key("Alt-0")));
    for c in "to both".chars() {
        app.update(Msg::Key(crossterm::event::KeyEvent::new(
            crossterm::event::KeyCode::Char(c),
            crossterm::event::KeyModifiers::NONE,
        )));
    }
    let actions = app.update(Msg::Key(parse_key("Enter")));
    let to: Vec<PeerId> = actions
        .iter()
        .filter_map(|a| match a {
            tern::tui::app::Action::Session(p, tern::session::Command::Text(t))
                if t == "to both" =>
            {
                Some(*p)
            }
            _ => None,
        })
        .collect();
    assert_eq!(to, [ana, bo]);
    insta::assert_snapshot!(render(&mut app, 90, 16).backend());
}

#[test]
fn a_folder_is_one_item_in_the_files_pane_and_opens_to_its_files() {
    let mut app = connected();
    let transfer = |id: u32, path: &str, state: TransferState, done: u64| {
        session(SessionEvent::Transfer(tern::transfer::TransferUpdate {
            id: TransferId::incoming(id),
            path: path.into(),
            saved_as: None,
            hash: None,
            state,
            progress: Progress {
                done,
                total: 4 << 20,
            },
        }))
    };
    app.update(transfer(
        1,
        "photos/beach.jpg",
        TransferState::Verified,
        4 << 20,
    ));
    app.update(transfer(
        2,
        "photos/2024/city.jpg",
        TransferState::Transferring,
        1 << 20,
    ));
    app.update(transfer(
        3,
        "photos/dog.jpg",
        TransferState::Transferring,
        0,
    ));
    app.update(transfer(4, "报告.pdf", TransferState::AwaitingDecision, 0));
    app.update(transfer(
        5,
        "music/a.flac",
        TransferState::AwaitingDecision,
        0,
    ));
    app.update(transfer(
        6,
        "music/b.flac",
        TransferState::AwaitingDecision,
        0,
    ));
    app.focus = Focus::Queue;
    insta::assert_snapshot!("folder_closed", render(&mut app, 120, 18).backend());
    app.update(Msg::Key(crossterm::event::KeyEvent::new(
        crossterm::event::KeyCode::Right,
        crossterm::event::KeyModifiers::NONE,
    )));
    insta::assert_snapshot!("folder_open", render(&mut app, 120, 18).backend());
}
