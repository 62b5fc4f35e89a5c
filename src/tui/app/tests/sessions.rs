//! What the app keeps across connections and over a long session: rows that stay their own
//! when a new connection numbers its transfers from 1 again, a files pane of bounded length,
//! and names changed while connected.

use super::*;
use crate::tui::app::conversation::MAX_ROWS;

fn update(id: TransferId, path: &str, state: TransferState) -> Msg {
    session(transfer(id, path, state, 0, 2 << 30))
}

#[test]
fn a_new_connection_numbering_from_one_again_never_takes_over_an_old_row() {
    let mut app = connected();
    let pdf = TransferId::incoming(1);
    app.update(update(pdf, "report.pdf", TransferState::Verified));
    app.update(session(SessionEvent::Closed { error: None }));
    app.update(session(SessionEvent::Connected(PeerInfo {
        name: "ana".into(),
        addr: None,
        raw: false,
        key: None,
    })));
    // The new session's first offer has the same number on the wire.
    let video = TransferId::incoming(1);
    app.update(update(video, "video.mkv", TransferState::AwaitingDecision));
    let rows: Vec<(&str, &TransferState)> = app
        .conv()
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
    app.conv_mut().selected = 1;
    app.update(key(KeyCode::Char('a')));
    let actions = app.update(key(KeyCode::Char('y')));
    assert!(
        matches!(&actions[..], [Action::Session(_, Command::Accept(id))] if *id == video),
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
    assert!(
        app.conv().queue.len() <= MAX_ROWS,
        "{} rows",
        app.conv().queue.len()
    );
    assert_eq!(app.conv().queue[0].key, RowKey::Transfer(waiting));
    let last = format!("f{}", 3 * MAX_ROWS);
    assert_eq!(
        app.conv().queue.last().map(|r| r.path.as_str()),
        Some(last.as_str())
    );
}

#[test]
fn a_new_name_goes_to_the_peer_at_once_and_theirs_shows_at_once() {
    let mut app = connected();
    let actions = type_line(&mut app, "/name 小黑");
    assert!(
        matches!(&actions[..], [Action::Session(_, Command::SetName(n)), Action::Defaults { name: Some(name), encoding: None }] if n == "小黑" && name == "小黑"),
        "{actions:?}"
    );
    app.update(session(SessionEvent::PeerRenamed("ana2".into())));
    assert!(last_text(&app).contains("ana is now called ana2"));
    assert_eq!(app.conv().name, "ana2");
}
