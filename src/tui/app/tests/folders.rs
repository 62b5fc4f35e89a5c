//! A folder is one item: offered, answered and summed up as one, its files shown on demand.

use super::*;
use crate::tui::app::folders::QUIET;

/// An offer of `path` from the test's peer, as transfer `id`, in `state`.
fn file(app: &mut App, id: u32, path: &str, state: TransferState) {
    app.update(session(transfer(incoming(id), path, state, 0, 1024)));
}

fn photos(app: &mut App) {
    for (id, name) in [
        (1, "photos/a.jpg"),
        (2, "photos/2024/b.jpg"),
        (3, "photos/c.jpg"),
    ] {
        file(app, id, name, TransferState::AwaitingDecision);
    }
    file(app, 4, "notes.txt", TransferState::AwaitingDecision);
}

#[test]
fn a_folders_files_are_one_item_offered_in_one_line() {
    let mut app = connected();
    photos(&mut app);
    assert_eq!(app.conv().items().len(), 2, "the folder and notes.txt");
    let offers: Vec<String> = system_lines(&app)
        .into_iter()
        .filter(|l| l.contains("offers"))
        .collect();
    assert_eq!(offers.len(), 2, "{offers:?}");
    assert!(offers[0].contains("the folder photos/"), "{offers:?}");
}

#[test]
fn one_key_accepts_every_file_of_a_folder() {
    let mut app = connected();
    photos(&mut app);
    app.focus = Focus::Queue;
    app.conv_mut().selected = 0;
    app.update(key(KeyCode::Char('a')));
    assert!(
        app.prompt
            .as_ref()
            .is_some_and(|p| p.path.contains("photos/ (3 files)")),
        "{:?}",
        app.prompt
    );
    let actions = app.update(key(KeyCode::Char('y')));
    let accepted: Vec<TransferId> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Session(_, Command::Accept(id)) => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(accepted, [incoming(1), incoming(2), incoming(3)]);
}

#[test]
fn declining_a_folder_declines_only_what_still_waits() {
    let mut app = connected();
    photos(&mut app);
    file(
        &mut app,
        2,
        "photos/2024/b.jpg",
        TransferState::Transferring,
    );
    app.focus = Focus::Queue;
    app.conv_mut().selected = 0;
    app.update(key(KeyCode::Char('d')));
    let actions = app.update(key(KeyCode::Char('y')));
    let declined: Vec<TransferId> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Session(_, Command::Reject(id, _)) => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(declined, [incoming(1), incoming(3)]);
}

#[test]
fn right_shows_a_folders_files_and_left_hides_them() {
    let mut app = connected();
    photos(&mut app);
    app.focus = Focus::Queue;
    app.conv_mut().selected = 0;
    app.update(key(KeyCode::Right));
    assert_eq!(app.conv().items().len(), 5);
    // One of its files is selected and acted on alone.
    app.update(key(KeyCode::Down));
    app.update(key(KeyCode::Down));
    app.update(key(KeyCode::Char('a')));
    let actions = app.update(key(KeyCode::Char('y')));
    assert!(
        matches!(&actions[..], [Action::Session(_, Command::Accept(id))] if *id == incoming(2)),
        "{actions:?}"
    );
    app.update(key(KeyCode::Left));
    assert_eq!(app.conv().items().len(), 2);
    assert_eq!(app.conv().selected, 0, "the folder is selected again");
}

#[test]
fn a_settled_folder_is_summed_up_in_one_line_once_quiet() {
    let mut app = connected();
    photos(&mut app);
    for (id, name) in [
        (1, "photos/a.jpg"),
        (2, "photos/2024/b.jpg"),
        (3, "photos/c.jpg"),
    ] {
        file(&mut app, id, name, TransferState::Verified);
    }
    let per_file = system_lines(&app)
        .into_iter()
        .filter(|l| l.starts_with("received photos/"))
        .count();
    assert_eq!(per_file, 0, "no line per file");
    assert!(app.has_active_transfers(), "the summary is waited for");
    app.update(Msg::Tick(Instant::now()));
    assert!(
        !system_lines(&app).iter().any(|l| l.contains("3 files")),
        "not before it has been quiet"
    );
    app.update(Msg::Tick(Instant::now() + QUIET * 2));
    let lines = system_lines(&app);
    assert!(
        lines.contains(&"received photos/: 3 files, 3.0 KiB, all verified".to_string()),
        "{lines:?}"
    );
    // Said once.
    app.update(Msg::Tick(Instant::now() + QUIET * 4));
    assert_eq!(
        system_lines(&app)
            .iter()
            .filter(|l| l.contains("3 files"))
            .count(),
        1
    );
}

#[test]
fn a_folder_with_a_failure_says_so_and_each_failure_is_shown() {
    let mut app = connected();
    photos(&mut app);
    file(&mut app, 1, "photos/a.jpg", TransferState::Verified);
    file(
        &mut app,
        2,
        "photos/2024/b.jpg",
        TransferState::failed("disk full"),
    );
    file(&mut app, 3, "photos/c.jpg", TransferState::Verified);
    let lines = system_lines(&app);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("photos/2024/b.jpg failed: disk full")),
        "{lines:?}"
    );
    app.update(Msg::Tick(Instant::now() + QUIET * 2));
    let lines = system_lines(&app);
    assert!(
        lines
            .iter()
            .any(|l| l
                .starts_with("photos/ (3.0 KiB): 2 of 3 files received and verified, 1 failed")),
        "{lines:?}"
    );
}
