//! The connection layer (`tern::net`) over real loopback sockets, with plain sessions as its
//! peers: several peers served at once with every report naming the right one, dialling out,
//! closing one peer without disturbing another, dials and commands that fail with a report,
//! and a shutdown that says goodbye to everyone.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

#[path = "support/fake_peer.rs"]
mod fake_peer;

use fake_peer::pseudo_random;
use tern::net::{Net, Order, PeerReport, Report};
use tern::session::{
    Command, Failure, OfferPolicy, PeerId, Role, Session, SessionConfig, SessionEvent,
};

use tern::transfer::outgoing::collect_files;
use tern::transfer::{Direction, TransferState, TransferUpdate};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

/// How long any one wait may last: generous, for a slow CI machine.
const WAIT: Duration = Duration::from_secs(30);

fn config(name: &str, dir: &Path, offers: OfferPolicy) -> SessionConfig {
    let mut c = SessionConfig::new(name, dir.to_path_buf(), tern::harness::identity());
    c.offers = offers;
    c
}

/// The next report from the layer, failing the test if none comes in time.
async fn next_report(net: &mut Net) -> Report {
    timeout(WAIT, net.reports.recv())
        .await
        .expect("a report in time")
        .expect("the layer is still running")
}

/// Every event of a plain session until its `Closed` (the last one), failing on timeout.
async fn until_closed(session: &mut Session, who: &str) -> Vec<SessionEvent> {
    let mut events = Vec::new();
    let ended = timeout(WAIT, async {
        while let Some(event) = session.events.recv().await {
            let last = matches!(event, SessionEvent::Closed { .. });
            events.push(event);
            if last {
                return true;
            }
        }
        false
    })
    .await;
    match ended {
        Ok(true) => events,
        Ok(false) => panic!("{who}: events ended without Closed: {events:?}"),
        Err(_) => panic!("{who}: no Closed in time: {events:?}"),
    }
}

/// The first event of a plain session that `pick` maps to `Some`, failing on timeout or end.
async fn wait_for<T>(
    session: &mut Session,
    who: &str,
    mut pick: impl FnMut(&SessionEvent) -> Option<T>,
) -> T {
    let found = timeout(WAIT, async {
        while let Some(event) = session.events.recv().await {
            if let Some(found) = pick(&event) {
                return Some(found);
            }
            if matches!(event, SessionEvent::Closed { .. }) {
                panic!("{who}: the session ended first: {event:?}");
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(found)) => found,
        Ok(None) => panic!("{who}: events ended before the expected one"),
        Err(_) => panic!("{who}: timed out waiting for an event"),
    }
}

fn texts(events: &[SessionEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Text { text, .. } => Some(text.raw().to_string()),
            _ => None,
        })
        .collect()
}

fn is_goodbye(event: Option<&SessionEvent>) -> bool {
    matches!(event, Some(SessionEvent::Closed { error: None }))
}

/// A plain session connected to the layer's listener at `addr`, and its local address.
async fn connect_plain(addr: SocketAddr, name: &str, dir: &Path) -> (Session, SocketAddr) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let local = stream.local_addr().expect("local addr");
    let session = Session::start(
        stream,
        Role::Connector,
        config(name, dir, OfferPolicy::Ask),
        &CancellationToken::new(),
    );
    (session, local)
}

/// A plain session that will listen for one connection: its address, and the session once
/// somebody has connected.
async fn listening_plain(name: &str, dir: &Path) -> (SocketAddr, JoinHandle<Session>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let config = config(name, dir, OfferPolicy::Ask);
    let session = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        Session::start(stream, Role::Listener, config, &CancellationToken::new())
    });
    (addr, session)
}

/// Read reports until `peers` peers are identified, checking that each one's reports so far
/// were exactly one `Accepted` or `Reached`, then `Connected`. Returns each peer's first
/// report and the name it gave.
async fn until_connected(
    net: &mut Net,
    peers: usize,
) -> HashMap<PeerId, (PeerReport, Option<String>)> {
    let mut seen: HashMap<PeerId, (PeerReport, Option<String>)> = HashMap::new();
    while seen.values().filter(|(_, name)| name.is_some()).count() < peers {
        let Report { peer, what } = next_report(net).await;
        match (seen.get_mut(&peer), what) {
            (None, what @ (PeerReport::Accepted(_) | PeerReport::Reached(_))) => {
                seen.insert(peer, (what, None));
            }
            (Some((_, name @ None)), PeerReport::Event(SessionEvent::Connected(info))) => {
                *name = Some(info.name.as_str().to_string());
            }
            (first, what) => panic!("{peer}: unexpected {what:?} after {first:?}"),
        }
    }
    seen
}

/// A connection layer listening on a free port of 127.0.0.1, and that address.
async fn listening_net(config: SessionConfig) -> (Net, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    (Net::start(Some(listener), config, None), addr)
}

/// What the layer reported about one peer in the first test.
#[derive(Default)]
struct Heard {
    /// The name of the plain session whose socket the `Accepted` address is.
    expected: Option<&'static str>,
    /// As `Connected` named it.
    name: Option<String>,
    texts: Vec<String>,
    verified: Vec<TransferUpdate>,
    closed: Option<Option<Failure>>,
}

#[tokio::test]
async fn three_peers_chat_and_send_files_at_once_and_every_report_names_the_right_peer() {
    let inbox = tempfile::tempdir().expect("tmp");
    let src = tempfile::tempdir().expect("tmp");
    let (mut net, addr) = listening_net(config("hub", inbox.path(), OfferPolicy::AcceptAll)).await;

    let names = ["ana", "bo", "cy"];
    let lines = |name: &str| [format!("{name}: first line"), format!("{name}: 第二行")];
    let mut contents = HashMap::new();
    let mut files = HashMap::new();
    for (i, name) in names.into_iter().enumerate() {
        let file = src.path().join(format!("from-{name}.bin"));
        let content = pseudo_random((2 << 20) + (i << 20) + 12_345 * i, 11 + i as u64);
        std::fs::write(&file, &content).expect("write");
        contents.insert(name, content);
        files.insert(name, file);
    }

    // All three connect at once, then each says a line, offers its file and says another,
    // without waiting for anything.
    let src_dir = src.path();
    let connected = futures::future::join_all(
        names.map(|name| async move { (name, connect_plain(addr, name, src_dir).await) }),
    )
    .await;
    let mut local_addrs = HashMap::new();
    let mut plain = Vec::new();
    for (name, (mut session, local)) in connected {
        local_addrs.insert(local, name);
        let [one, two] = lines(name);
        let offer = collect_files(&[files[name].clone()]).expect("collect");
        plain.push((
            name,
            tokio::spawn(async move {
                session.handle.send(Command::Text(one)).await.expect("text");
                session
                    .handle
                    .send(Command::Offer(offer))
                    .await
                    .expect("offer");
                session.handle.send(Command::Text(two)).await.expect("text");
                until_closed(&mut session, name).await
            }),
        ));
    }

    let mut heard: HashMap<PeerId, Heard> = HashMap::new();
    let mut closing = false;
    loop {
        let done = heard.len() == names.len()
            && heard
                .values()
                .all(|h| h.verified.len() == 1 && h.texts.len() == 2);
        if done && !closing {
            // Everything arrived: end each session, after its reply.
            for &peer in heard.keys() {
                net.orders.send(Order::Close(peer)).await.expect("order");
            }
            closing = true;
        }
        if closing && heard.values().all(|h| h.closed.is_some()) {
            break;
        }
        let Report { peer, what } = next_report(&mut net).await;
        if let PeerReport::Accepted(from) = what {
            let expected = local_addrs.get(&from).copied();
            assert!(expected.is_some(), "{peer}: accepted from unknown {from}");
            assert!(
                heard
                    .insert(
                        peer,
                        Heard {
                            expected,
                            ..Heard::default()
                        }
                    )
                    .is_none(),
                "{peer}: a second Accepted"
            );
            continue;
        }
        let Some(h) = heard.get_mut(&peer) else {
            panic!("{peer}: {what:?} before Accepted");
        };
        assert!(h.closed.is_none(), "{peer}: {what:?} after Closed");
        let PeerReport::Event(event) = what else {
            panic!("{peer}: unexpected {what:?}");
        };
        if !matches!(event, SessionEvent::Connected(_)) {
            assert!(h.name.is_some(), "{peer}: {event:?} before Connected");
        }
        match event {
            SessionEvent::Connected(info) => {
                assert!(h.name.is_none(), "{peer}: a second Connected");
                let name = info.name.as_str().to_string();
                assert_eq!(Some(name.as_str()), h.expected, "{peer}'s name");
                net.orders
                    .send(Order::To(peer, Command::Text(format!("hi {name}"))))
                    .await
                    .expect("order");
                h.name = Some(name);
            }
            SessionEvent::Text { text, .. } => h.texts.push(text.raw().to_string()),
            SessionEvent::Transfer(u) => {
                assert_eq!(u.id.direction, Direction::Incoming, "{peer}: {u:?}");
                match u.state {
                    TransferState::Verified => h.verified.push(u),
                    ref state => assert!(!state.is_final(), "{peer}: {u:?}"),
                }
            }
            SessionEvent::Closed { error } => {
                assert!(closing, "{peer} closed early: {error:?}");
                h.closed = Some(error);
            }
            SessionEvent::Notice(_) => {}
            other => panic!("{peer}: unexpected {other:?}"),
        }
    }

    let mut names_seen = HashSet::new();
    for (peer, h) in &heard {
        let name = h.expected.expect("a name");
        assert!(names_seen.insert(name), "two peer ids for {name}");
        assert_eq!(h.texts, lines(name), "{peer} ({name})'s texts");
        let [u] = h.verified.as_slice() else {
            panic!("{peer} ({name}): one file expected");
        };
        assert_eq!(u.path.as_str(), format!("from-{name}.bin"));
        let saved = u.saved_as.as_ref().expect("a saved path");
        assert!(saved.starts_with(inbox.path()), "{saved:?}");
        let got = std::fs::read(saved).expect("read the saved file");
        assert!(got == contents[name], "{name}'s file differs when saved");
        assert_eq!(u.hash, Some(*blake3::hash(&contents[name]).as_bytes()));
        assert_eq!(h.closed, Some(None), "{peer} ({name}): a normal goodbye");
    }
    assert_eq!(names_seen.len(), names.len());

    for (name, task) in plain {
        let events = task.await.expect("join");
        assert_eq!(texts(&events), [format!("hi {name}")], "{name}'s replies");
        let verified = events
            .iter()
            .filter(|e| {
                matches!(e, SessionEvent::Transfer(u)
                    if u.id.direction == Direction::Outgoing && u.state == TransferState::Verified)
            })
            .count();
        assert_eq!(verified, 1, "{name}: its file verified: {events:?}");
        assert!(is_goodbye(events.last()), "{name}: {events:?}");
    }
    net.shut_down().await;
}

#[tokio::test]
async fn a_dial_order_reaches_a_listener_and_close_ends_only_that_session() {
    let dir = tempfile::tempdir().expect("tmp");
    let (lee_addr, lee) = listening_plain("lee", dir.path()).await;
    let (max_addr, max) = listening_plain("max", dir.path()).await;
    let mut net = Net::start(None, config("net", dir.path(), OfferPolicy::Ask), None);
    let (first, second) = (PeerId::next(), PeerId::next());
    for (peer, addr) in [(first, lee_addr), (second, max_addr)] {
        net.orders
            .send(Order::Dial {
                peer,
                target: addr.to_string(),
            })
            .await
            .expect("order");
    }
    let seen = until_connected(&mut net, 2).await;
    for (peer, addr, name) in [(first, lee_addr, "lee"), (second, max_addr, "max")] {
        match &seen.get(&peer) {
            Some((PeerReport::Reached(reached), Some(got))) => {
                assert_eq!(*reached, addr, "{peer}");
                assert_eq!(got, name, "{peer}");
            }
            other => panic!("{peer}: expected Reached then Connected, got {other:?}"),
        }
    }
    let mut lee = lee.await.expect("join");
    let mut max = max.await.expect("join");
    wait_for(&mut lee, "lee", |e| {
        matches!(e, SessionEvent::Connected(_)).then_some(())
    })
    .await;
    wait_for(&mut max, "max", |e| {
        matches!(e, SessionEvent::Connected(_)).then_some(())
    })
    .await;

    net.orders.send(Order::Close(first)).await.expect("order");
    loop {
        let Report { peer, what } = next_report(&mut net).await;
        assert_eq!(peer, first, "only the closed peer has news: {what:?}");
        match what {
            PeerReport::Event(SessionEvent::Closed { error }) => {
                assert_eq!(error, None, "a normal goodbye");
                break;
            }
            PeerReport::Event(SessionEvent::Notice(_)) => {}
            other => panic!("{peer}: unexpected {other:?} while closing"),
        }
    }
    let events = until_closed(&mut lee, "lee").await;
    assert!(is_goodbye(events.last()), "lee: {events:?}");

    // The other session is untouched: a round trip after the close.
    net.orders
        .send(Order::To(second, Command::Text("still there, max?".into())))
        .await
        .expect("order");
    let text = wait_for(&mut max, "max", |e| match e {
        SessionEvent::Text { text, .. } => Some(text.raw().to_string()),
        _ => None,
    })
    .await;
    assert_eq!(text, "still there, max?");
    max.handle
        .send(Command::Text("yes".into()))
        .await
        .expect("text");
    loop {
        let Report { peer, what } = next_report(&mut net).await;
        assert_eq!(peer, second, "nothing more about the closed peer: {what:?}");
        match what {
            PeerReport::Event(SessionEvent::Text { text, .. }) => {
                assert_eq!(text.raw(), "yes");
                break;
            }
            PeerReport::Event(SessionEvent::Notice(_)) => {}
            other => panic!("{peer}: unexpected {other:?}"),
        }
    }
    net.shut_down().await;
}

#[tokio::test]
async fn a_dial_that_nobody_answers_fails_with_a_reason() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let mut net = Net::start(None, config("net", dir.path(), OfferPolicy::Ask), None);
    let peer = PeerId::next();
    net.orders
        .send(Order::Dial {
            peer,
            target: format!("127.0.0.1:{port}"),
        })
        .await
        .expect("order");
    let report = next_report(&mut net).await;
    assert_eq!(report.peer, peer);
    match report.what {
        PeerReport::DialFailed(reason) => {
            assert!(
                reason.contains(&format!("127.0.0.1:{port}")),
                "the reason names the target: {reason:?}"
            );
        }
        other => panic!("expected DialFailed, got {other:?}"),
    }
    // The failed dial left no session behind to take commands.
    expect_refused(&mut net, peer, "anyone?").await;
    net.shut_down().await;
}

/// Say `text` to `peer`, which has no session: it comes back refused.
async fn expect_refused(net: &mut Net, peer: PeerId, text: &str) {
    net.orders
        .send(Order::To(peer, Command::Text(text.into())))
        .await
        .expect("order");
    let report = next_report(net).await;
    assert_eq!(report.peer, peer);
    assert!(
        matches!(&report.what, PeerReport::Refused(Command::Text(t)) if t == text),
        "{report:?}"
    );
}

#[tokio::test]
async fn a_command_for_a_peer_that_is_gone_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut net = Net::start(None, config("net", dir.path(), OfferPolicy::Ask), None);
    let nobody = PeerId::next();
    expect_refused(&mut net, nobody, "hello?").await;
    net.shut_down().await;
}

#[tokio::test]
async fn shut_down_says_goodbye_to_every_peer() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut net, addr) = listening_net(config("net", dir.path(), OfferPolicy::Ask)).await;
    let (mut one, _) = connect_plain(addr, "one", dir.path()).await;
    let (mut two, _) = connect_plain(addr, "two", dir.path()).await;
    let seen = until_connected(&mut net, 2).await;
    let mut names: Vec<_> = seen.values().filter_map(|(_, n)| n.clone()).collect();
    names.sort();
    assert_eq!(names, ["one", "two"]);

    timeout(Duration::from_secs(5), net.shut_down())
        .await
        .expect("the layer shuts down within a few seconds");
    for (session, who) in [(&mut one, "one"), (&mut two, "two")] {
        let events = until_closed(session, who).await;
        assert!(is_goodbye(events.last()), "{who}: {events:?}");
    }
}

#[tokio::test]
async fn commands_after_a_close_are_refused_not_lost() {
    let dir = tempfile::tempdir().expect("tmp");
    let (addr, lee) = listening_plain("lee", dir.path()).await;
    let mut net = Net::start(None, config("net", dir.path(), OfferPolicy::Ask), None);
    let peer = PeerId::next();
    net.orders
        .send(Order::Dial {
            peer,
            target: addr.to_string(),
        })
        .await
        .expect("order");
    until_connected(&mut net, 1).await;
    let mut lee = lee.await.expect("join");
    net.orders.send(Order::Close(peer)).await.expect("order");
    for i in 0..5 {
        net.orders
            .send(Order::To(peer, Command::Text(format!("late {i}"))))
            .await
            .expect("order");
    }
    let mut refused = Vec::new();
    let mut closed = false;
    while refused.len() < 5 {
        let Report { peer: about, what } = next_report(&mut net).await;
        assert_eq!(about, peer);
        match what {
            PeerReport::Refused(Command::Text(t)) => refused.push(t),
            PeerReport::Event(SessionEvent::Closed { .. }) => closed = true,
            PeerReport::Event(SessionEvent::Notice(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        refused,
        (0..5).map(|i| format!("late {i}")).collect::<Vec<_>>()
    );
    let events = until_closed(&mut lee, "lee").await;
    assert!(
        texts(&events).iter().all(|t| !t.starts_with("late")),
        "a refused line reached the peer: {:?}",
        texts(&events)
    );
    if !closed {
        let Report { what, .. } = next_report(&mut net).await;
        assert!(
            matches!(what, PeerReport::Event(SessionEvent::Closed { .. })),
            "{what:?}"
        );
    }
    net.shut_down().await;
}
