//! A peer's key in the UI: the warning for a changed one, `/trust`, and `/verify`.

use super::*;
use crate::crypto::Fingerprint;
use crate::crypto::known::Verdict;
use crate::session::PeerKey;
use crate::tui::app::Standing;

fn joins_with(app: &mut App, standing: Verdict) -> Vec<Action> {
    app.update(session(SessionEvent::Connected(PeerInfo {
        name: "ana".into(),
        addr: Some(SocketAddr::from(([192, 168, 1, 20], 50000))),
        raw: false,
        key: Some(PeerKey {
            key: [7; 32],
            fingerprint: Fingerprint::of(&[7; 32]),
            authentication: "482 015".into(),
            standing,
        }),
    })))
}

fn standing(app: &App) -> Option<Standing> {
    match &app.conv().link {
        Link::Connected(info) => Some(Standing::of(info)),
        _ => None,
    }
}

fn messages(app: &App) -> Vec<(MessageKind, String)> {
    app.conv()
        .transcript
        .messages()
        .iter()
        .map(|m| (m.kind, m.text.clone()))
        .collect()
}

fn changed() -> Verdict {
    Verdict::KeyChanged {
        previous: Fingerprint::of(&[1; 32]),
    }
}

#[test]
fn a_changed_key_is_warned_about_and_rings() {
    let mut app = listening();
    joins_with(&mut app, changed());
    assert_eq!(standing(&app), Some(Standing::KeyChanged));
    let warning = messages(&app)
        .into_iter()
        .find(|(kind, _)| *kind == MessageKind::Error)
        .map(|(_, text)| text)
        .unwrap_or_default();
    assert!(warning.contains("WARNING"), "{warning}");
    assert!(
        warning.contains(&Fingerprint::of(&[1; 32]).to_string()),
        "{warning}"
    );
    assert!(warning.contains("/trust"), "{warning}");
    assert!(app.bell);
}

#[test]
fn trust_writes_the_key_and_lets_the_session_send() {
    let mut app = listening();
    joins_with(&mut app, changed());
    let actions = type_line(&mut app, "/trust");
    assert!(
        actions.iter().any(|a| matches!(
            a,
            Action::Trust { key, name, ip: Some(_) } if *key == [7; 32] && name == "ana"
        )),
        "{actions:?}"
    );
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Session(p, Command::Trust) if *p == peer())),
        "{actions:?}"
    );
    assert_eq!(standing(&app), Some(Standing::Known));
    // Once trusted, there is nothing more to trust.
    let again = type_line(&mut app, "/trust");
    assert!(again.is_empty(), "{again:?}");
}

#[test]
fn verify_shows_the_digits_and_only_matching_ones_verify() {
    let mut app = listening();
    joins_with(&mut app, Verdict::FirstContact);
    assert!(type_line(&mut app, "/verify").is_empty());
    assert!(last_text(&app).contains("482 015"), "{}", last_text(&app));

    let wrong = type_line(&mut app, "/verify 482 016");
    assert!(wrong.is_empty(), "{wrong:?}");
    assert!(
        last_text(&app).contains("do NOT match"),
        "{}",
        last_text(&app)
    );
    assert_eq!(standing(&app), Some(Standing::FirstContact));

    let right = type_line(&mut app, "/verify 482015");
    assert!(
        right
            .iter()
            .any(|a| matches!(a, Action::Verified { key } if *key == [7; 32])),
        "{right:?}"
    );
    assert_eq!(standing(&app), Some(Standing::Verified));
}

#[test]
fn matching_digits_for_a_changed_key_trust_it_too() {
    let mut app = listening();
    joins_with(&mut app, changed());
    let actions = type_line(&mut app, "/verify 482 015");
    assert!(actions.iter().any(|a| matches!(a, Action::Trust { .. })));
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Session(_, Command::Trust)))
    );
    assert!(actions.iter().any(|a| matches!(a, Action::Verified { .. })));
    assert_eq!(standing(&app), Some(Standing::Verified));
}

#[test]
fn a_peer_without_encryption_has_no_key_to_trust_or_verify() {
    let mut app = connected();
    assert_eq!(standing(&app), Some(Standing::NotEncrypted));
    for command in ["/trust", "/verify", "/verify 123456"] {
        assert!(type_line(&mut app, command).is_empty(), "{command}");
        assert!(
            last_text(&app).contains("not encrypted"),
            "{command}: {}",
            last_text(&app)
        );
    }
}
