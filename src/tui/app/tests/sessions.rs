//! What the app keeps across connections and over a long session: rows that stay their own
//! when a new connection numbers its transfers from 1 again, a files pane of bounded length,
//! and names changed while connected.

use super::*;

fn update(id: TransferId, path: &str, state: TransferState) -> Msg {
    Msg::Session(SessionEvent::Transfer(TransferUpdate {
        id,
        path: path.into(),
        saved_as: None,
        hash: None,
        state,
        progress: Progress {
            done: 0,
            total: 2 << 30,
        },
    }))
}

#[test]
fn a_new_connection_numbering_from_one_again_never_takes_over_an_old_row() {
    let mut app = connected();
    let pdf = TransferId::incoming(1);
    app.update(update(pdf, "report.pdf", TransferState::Verified));
    app.update(Msg::Session(SessionEvent::Closed { error: None }));
    app.update(Msg::Session(SessionEvent::Connected(PeerInfo {
        name: "ana".into(),
        addr: None,
        raw: false,
    })));
    // The new session's first offer has the same number on the wire.
    let video = TransferId::incoming(1);
    app.update(update(video, "video.mkv", TransferState::AwaitingDecision));
    let rows: Vec<(&str, &TransferState)> = app
        .queue
        .iter()
        .map(|r| (r.path.as_str(), &r.state))
        .collect();
    assert_eq!(
        rows,
        [
            ("report.pdf", &TransferState::Verified),
            ("video.mkv", &TransferState::AwaitingDecision)
        ]
    );
    app.focus = Focus::Queue;
    app.selected = 1;
    app.update(key(KeyCode::Char('a')));
    let actions = app.update(key(KeyCode::Char('y')));
    assert!(
        matches!(&actions[..], [Action::Session(Command::Accept(id))] if *id == video),
        "{actions:?}"
    );
}

#[test]
fn finished_rows_beyond_the_limit_go_and_open_ones_stay() {
    let mut app = connected();
    let waiting = TransferId::incoming(0);
    app.update(update(
        waiting,
        "waiting.bin",
        TransferState::AwaitingDecision,
    ));
    for i in 1..=3 * MAX_ROWS as u32 {
        let id = TransferId::incoming(i);
        app.update(update(id, &format!("f{i}"), TransferState::rejected("no")));
    }
    assert!(app.queue.len() <= MAX_ROWS, "{} rows", app.queue.len());
    assert_eq!(app.queue[0].key, RowKey::Transfer(waiting));
    let last = format!("f{}", 3 * MAX_ROWS);
    assert_eq!(
        app.queue.last().map(|r| r.path.as_str()),
        Some(last.as_str())
    );
}

#[test]
fn a_new_name_goes_to_the_peer_at_once_and_theirs_shows_at_once() {
    let mut app = connected();
    let actions = type_line(&mut app, "/name 小黑");
    assert!(
        matches!(&actions[..], [Action::Session(Command::SetName(n))] if n == "小黑"),
        "{actions:?}"
    );
    app.update(Msg::Session(SessionEvent::PeerRenamed("ana2".into())));
    assert!(last_text(&app).contains("ana is now called ana2"));
    assert_eq!(app.peer_name(), "ana2");
}
