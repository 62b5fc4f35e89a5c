//! Keys in the files pane: the letters that act on a file, the ones that are typed, and the
//! question asked before a file is thrown away.

use super::*;

fn files_pane(app: &mut App) {
    app.focus = Focus::Queue;
    app.conv_mut().selected = 0;
}

/// Every key of `text` (a `\r` is Enter), and all the actions they led to.
fn keys(app: &mut App, text: &str) -> Vec<Action> {
    let mut actions = Vec::new();
    for c in text.chars() {
        let code = match c {
            '\r' => KeyCode::Enter,
            c => KeyCode::Char(c),
        };
        actions.extend(app.update(key(code)));
    }
    actions
}

#[test]
fn a_message_typed_over_an_offer_is_sent_and_accepts_nothing() {
    let mut app = connected();
    offer(&mut app, 1, TransferState::AwaitingDecision);
    files_pane(&mut app);

    let actions = keys(&mut app, "are you there?\r");

    assert!(
        matches!(&actions[..], [Action::Session(_, Command::Text(t))] if t == "are you there?"),
        "{actions:?}"
    );
    assert_eq!(app.conv().queue[0].state, TransferState::AwaitingDecision);
}

#[test]
fn a_message_typed_into_the_files_pane_is_sent_and_declines_nothing() {
    let mut app = connected();
    offer(&mut app, 1, TransferState::AwaitingDecision);
    files_pane(&mut app);

    let actions = keys(&mut app, "do you have it?\r");

    assert!(
        matches!(&actions[..], [Action::Session(_, Command::Text(t))] if t == "do you have it?"),
        "{actions:?}"
    );
    assert_eq!(app.conv().queue[0].state, TransferState::AwaitingDecision);
}

#[test]
fn a_message_typed_over_a_running_transfer_is_sent_and_cancels_nothing() {
    let mut app = connected();
    offer(&mut app, 1, TransferState::Transferring);
    files_pane(&mut app);

    let actions = keys(&mut app, "xmas list\r");

    assert!(
        matches!(&actions[..], [Action::Session(_, Command::Text(t))] if t == "xmas list"),
        "{actions:?}"
    );
}

#[test]
fn other_letters_in_the_files_pane_go_to_the_input_line() {
    let mut app = connected();
    offer(&mut app, 1, TransferState::Verified);
    files_pane(&mut app);

    // Nothing to accept or retry in a finished file: those letters are typed too.
    let actions = keys(&mut app, "are");

    assert!(actions.is_empty(), "{actions:?}");
    assert_eq!(app.focus, Focus::Input);
    assert_eq!(app.input.text(), "are");
}

#[test]
fn decline_asks_first_and_only_yes_declines() {
    let mut app = connected();
    offer(&mut app, 1, TransferState::AwaitingDecision);
    files_pane(&mut app);

    assert!(keys(&mut app, "d").is_empty(), "d alone declines nothing");
    assert!(keys(&mut app, "n").is_empty(), "n keeps the offer");
    let actions = keys(&mut app, "dy");

    assert!(
        matches!(&actions[..], [Action::Session(_, Command::Reject(id, _))] if *id == incoming(1)),
        "{actions:?}"
    );
}

#[test]
fn cancel_asks_first_and_any_other_key_keeps_the_transfer() {
    let mut app = connected();
    offer(&mut app, 1, TransferState::Transferring);
    offer(&mut app, 2, TransferState::Transferring);
    files_pane(&mut app);

    assert!(app.update(key(KeyCode::Delete)).is_empty());
    // Not an answer: the question goes and the key does its own job.
    assert!(app.update(key(KeyCode::Down)).is_empty());
    assert_eq!(app.conv().selected, 1);
    assert!(keys(&mut app, "x").is_empty());
    let actions = app.update(key(KeyCode::Enter));

    assert!(
        matches!(&actions[..], [Action::Session(_, Command::Cancel(id))] if *id == incoming(2)),
        "{actions:?}"
    );
}

#[test]
fn a_yes_for_an_offer_withdrawn_meanwhile_declines_nothing() {
    let mut app = connected();
    offer(&mut app, 1, TransferState::AwaitingDecision);
    files_pane(&mut app);
    assert!(keys(&mut app, "d").is_empty());

    offer(&mut app, 1, TransferState::Cancelled("by the peer".into()));
    let actions = keys(&mut app, "y");

    assert!(actions.is_empty(), "{actions:?}");
}

#[test]
fn a_paste_withdraws_the_question() {
    let mut app = connected();
    offer(&mut app, 1, TransferState::AwaitingDecision);
    files_pane(&mut app);
    assert!(keys(&mut app, "d").is_empty());

    app.update(Msg::Paste("see below".into()));
    let actions = keys(&mut app, "y");

    assert!(actions.is_empty(), "{actions:?}");
    assert_eq!(app.input.text(), "see belowy");
}

/// What a console types into the input line when a file is dropped on its window: on Windows
/// (no bracketed paste there) Enter queues the file; elsewhere a drop is a paste, and a typed
/// path is a message like any other.
#[test]
fn enter_on_a_typed_path_queues_it_on_windows_only() -> std::io::Result<()> {
    let tmp = tempfile::tempdir()?;
    let file = tmp.path().join("My File.txt");
    std::fs::write(&file, b"x")?;
    let mut app = connected();
    let typed = format!("\"{}\"\r", file.display());

    let actions = keys(&mut app, &typed);

    if cfg!(windows) {
        assert!(
            matches!(&actions[..], [Action::Collect { paths, .. }] if paths[..] == [file.clone()]),
            "{actions:?}"
        );
        assert_eq!(app.input.text(), "");
    } else {
        assert!(
            matches!(&actions[..], [Action::Session(_, Command::Text(_))]),
            "{actions:?}"
        );
    }
    Ok(())
}
