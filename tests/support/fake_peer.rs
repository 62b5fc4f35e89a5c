//! A scripted fake peer for tests of real sessions over loopback sockets: it speaks the wire
//! protocol frame by frame, so it can lie, truncate, reuse ids and stall.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tern::harness::{Encrypted, encrypted_connector};
use tern::protocol::{Frame, FrameCodec};
use tern::session::{OfferPolicy, Role, Session, SessionConfig, SessionEvent};
use tern::transfer::{Direction, TransferState};

use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use bytes::Bytes;

pub const WAIT: Duration = Duration::from_secs(30);

/// The frames of a hand-driven peer, inside the encrypted channel.
pub type Wire = Framed<Encrypted<TcpStream>, FrameCodec>;

/// An encrypted session's settings, with a new identity.
pub fn config(name: &str, dir: &Path, offers: OfferPolicy) -> SessionConfig {
    let mut c = SessionConfig::new(name, dir.to_path_buf(), tern::harness::identity());
    c.offers = offers;
    c
}

/// A listening session and a connecting session on 127.0.0.1.
pub async fn pair(listener_cfg: SessionConfig, connector_cfg: SessionConfig) -> (Session, Session) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let root = CancellationToken::new();
    let accept = tokio::spawn(async move { listener.accept().await.map(|(s, _)| s) });
    let client = TcpStream::connect(addr).await.expect("connect");
    let server = accept.await.expect("join").expect("accept");
    let a = Session::start(server, Role::Listener, listener_cfg, &root);
    let b = Session::start(client, Role::Connector, connector_cfg, &root);
    (a, b)
}

/// Wait for the first event `pick` maps to `Some`, failing on timeout or session end.
pub async fn wait_for<T>(
    session: &mut Session,
    mut pick: impl FnMut(&SessionEvent) -> Option<T>,
) -> T {
    let found = timeout(WAIT, async {
        while let Some(event) = session.events.recv().await {
            if std::env::var_os("TRACE_EVENTS").is_some() {
                eprintln!("{event:?}");
            }
            if let Some(found) = pick(&event) {
                return Some(found);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(found)) => found,
        Ok(None) => panic!("session ended before the expected event"),
        Err(_) => panic!("timed out waiting for an event"),
    }
}

/// A real session listening on a loopback socket, and the raw client end connected to it,
/// for tests that speak (or garble) the protocol by hand.
pub async fn listening_session(cfg: SessionConfig) -> (TcpStream, Session) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let client = TcpStream::connect(addr).await.expect("connect");
    let (server, _) = listener.accept().await.expect("accept");
    let session = Session::start(server, Role::Listener, cfg, &CancellationToken::new());
    (client, session)
}

// ---- a scripted fake peer ------------------------------------------------------------------

/// Connect to a real listening session and do the handshake by hand.
pub async fn fake_connector(offers: OfferPolicy) -> (Wire, Session, tempfile::TempDir) {
    fake_connector_with(offers, tern::protocol::caps::FILES).await
}

/// As `fake_connector`, announcing `capabilities`.
pub async fn fake_connector_with(
    offers: OfferPolicy,
    capabilities: u32,
) -> (Wire, Session, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tmp");
    let (client, session) = listening_session(config("real", dir.path(), offers)).await;
    let (channel, _) = encrypted_connector(client, &tern::harness::identity())
        .await
        .expect("the encrypted handshake");
    let mut framed = Framed::new(channel, FrameCodec);
    framed
        .send(Frame::Hello {
            capabilities,
            name: "fake".into(),
        })
        .await
        .expect("hello");
    match framed.next().await {
        Some(Ok(Frame::Hello { name, .. })) => assert_eq!(name, "real"),
        other => panic!("expected Hello, got {other:?}"),
    }
    (framed, session, dir)
}

pub async fn next_frame(framed: &mut Wire) -> Frame {
    loop {
        match timeout(WAIT, framed.next()).await.expect("frame in time") {
            Some(Ok(Frame::Ping { nonce })) => {
                framed.send(Frame::Pong { nonce }).await.expect("pong");
            }
            Some(Ok(frame)) => return frame,
            other => panic!("expected a frame, got {other:?}"),
        }
    }
}

pub async fn offer_and_get_accepted(framed: &mut Wire, size: u64) {
    framed
        .send(Frame::Offer {
            id: 1,
            size,
            path: "data.bin".into(),
        })
        .await
        .expect("offer");
    assert_eq!(next_frame(framed).await, Frame::Accept { id: 1, offset: 0 });
}

/// Send `body` as the whole of file `id`: one chunk and a matching `FileEnd`.
pub async fn send_body(framed: &mut Wire, id: u32, body: &[u8]) {
    framed
        .send(Frame::Chunk {
            id,
            offset: 0,
            data: Bytes::copy_from_slice(body),
        })
        .await
        .expect("chunk");
    framed
        .send(Frame::FileEnd {
            id,
            hash: *blake3::hash(body).as_bytes(),
        })
        .await
        .expect("end");
}

pub async fn final_state(session: &mut Session) -> TransferState {
    wait_for(session, |e| match e {
        SessionEvent::Transfer(u)
            if u.id.direction == Direction::Incoming && u.state.is_final() =>
        {
            Some(u.state.clone())
        }
        _ => None,
    })
    .await
}

/// Frames that arrive within `quiet` of each other, until a pause that long.
pub async fn frames_until_quiet(framed: &mut Wire, quiet: Duration) -> Vec<Frame> {
    let mut frames = Vec::new();
    while let Ok(Some(Ok(frame))) = timeout(quiet, framed.next()).await {
        frames.push(frame);
    }
    frames
}

/// `len` bytes of xorshift noise from `seed`: files whose content differs per test.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
