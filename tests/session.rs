//! Sessions over real loopback sockets: two real sessions, or a real session and a scripted
//! fake peer that speaks the wire protocol frame by frame (to lie, truncate and corrupt).

use std::path::Path;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tern::harness::encrypted_connector;
use tern::protocol::codec::encode_frame;
use tern::protocol::{Frame, FrameCodec, MAGIC, PLAIN_VERSION, PREAMBLE_LEN, VERSION, preamble};
use tern::session::{Command, OfferPolicy, Role, Session, SessionEvent};
use tern::transfer::incoming::partial_name;
use tern::transfer::outgoing::collect_files;
use tern::transfer::{Direction, TransferState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

#[path = "support/fake_peer.rs"]
mod fake_peer;
use fake_peer::*;

#[tokio::test]
async fn chat_and_a_big_file_share_the_connection_between_real_sessions() {
    let rx_dir = tempfile::tempdir().expect("tmp");
    let tx_dir = tempfile::tempdir().expect("tmp");
    let big = tx_dir.path().join("big.bin");
    let content = pseudo_random(64 << 20, 1);
    std::fs::write(&big, &content).expect("write");
    let (mut rx, mut tx) = pair(
        config("rx", rx_dir.path(), OfferPolicy::AcceptAll),
        config("tx", tx_dir.path(), OfferPolicy::Ask),
    )
    .await;
    let files = collect_files(&[big]).expect("collect");
    tx.handle.send(Command::Offer(files)).await.expect("offer");
    tx.handle
        .send(Command::Text("来自发送方".into()))
        .await
        .expect("text");
    rx.handle
        .send(Command::Text("from receiver".into()))
        .await
        .expect("text");
    let mut got_text = false;
    let saved = wait_for(&mut rx, |e| match e {
        SessionEvent::Text { text, .. } => {
            assert_eq!(text.raw(), "来自发送方");
            got_text = true;
            None
        }
        SessionEvent::Transfer(u) if u.state.is_final() => Some(u.saved_as.clone()),
        _ => None,
    })
    .await
    .expect("saved path");
    assert!(
        got_text
            || wait_for(&mut rx, |e| matches!(e, SessionEvent::Text { .. })
                .then_some(true))
            .await
    );
    assert_eq!(std::fs::read(saved).expect("read"), content);
    let mut got_text = false;
    let state = wait_for(&mut tx, |e| match e {
        SessionEvent::Text { text, .. } => {
            assert_eq!(text.raw(), "from receiver");
            got_text = true;
            None
        }
        SessionEvent::Transfer(u) if u.state.is_final() => Some(u.state.clone()),
        _ => None,
    })
    .await;
    assert_eq!(state, TransferState::Verified);
    assert!(
        got_text
            || wait_for(&mut tx, |e| matches!(e, SessionEvent::Text { .. })
                .then_some(true))
            .await
    );
}

/// The fake receiver sets the pace, so "during the transfer" is not a matter of timing.
#[tokio::test]
async fn a_message_sent_mid_transfer_overtakes_the_queued_file_data() {
    let (mut fake, mut real, dir) = fake_connector(OfferPolicy::Ask).await;
    let big = dir.path().join("outgoing.bin");
    std::fs::write(&big, pseudo_random(64 << 20, 5)).expect("write");
    real.handle
        .send(Command::Offer(collect_files(&[big]).expect("collect")))
        .await
        .expect("offer");
    let Frame::Offer { id, .. } = next_frame(&mut fake).await else {
        panic!("expected an offer");
    };
    fake.send(Frame::Accept { id, offset: 0 })
        .await
        .expect("accept");
    // Take 1 MiB, then talk both ways while the rest is still waiting.
    let mut taken = 0usize;
    while taken < 1 << 20 {
        match next_frame(&mut fake).await {
            Frame::Chunk { data, .. } => taken += data.len(),
            other => panic!("unexpected {other:?}"),
        }
    }
    fake.send(Frame::Text {
        encoding: tern::text::Encoding::Utf8,
        bytes: Bytes::from_static("收到 mid-transfer".as_bytes()),
    })
    .await
    .expect("text");
    let text = wait_for(&mut real, |e| match e {
        SessionEvent::Text { text, .. } => Some(text.raw().to_string()),
        SessionEvent::Transfer(u) if u.state.is_final() => panic!("transfer ended first: {u:?}"),
        _ => None,
    })
    .await;
    assert_eq!(text, "收到 mid-transfer");
    real.handle
        .send(Command::Text("reply".into()))
        .await
        .expect("text");
    // Data already in kernel buffers may come first, but not the rest of the file.
    let mut behind = 0usize;
    loop {
        match next_frame(&mut fake).await {
            Frame::Chunk { data, .. } => behind += data.len(),
            Frame::Text { bytes, .. } => {
                assert_eq!(&bytes[..], b"reply");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        behind < 16 << 20,
        "the message waited behind {behind} bytes of file data"
    );
}

#[tokio::test]
async fn both_sides_can_send_files_at_once_without_deadlock() {
    let a_dir = tempfile::tempdir().expect("tmp");
    let b_dir = tempfile::tempdir().expect("tmp");
    let a_file = a_dir.path().join("from_a.bin");
    let b_file = b_dir.path().join("from_b.bin");
    std::fs::write(&a_file, pseudo_random(16 << 20, 2)).expect("write");
    std::fs::write(&b_file, pseudo_random(16 << 20, 3)).expect("write");
    let (mut a, mut b) = pair(
        config("a", a_dir.path(), OfferPolicy::AcceptAll),
        config("b", b_dir.path(), OfferPolicy::AcceptAll),
    )
    .await;
    a.handle
        .send(Command::Offer(collect_files(&[a_file]).expect("collect")))
        .await
        .expect("offer");
    b.handle
        .send(Command::Offer(collect_files(&[b_file]).expect("collect")))
        .await
        .expect("offer");
    for s in [&mut a, &mut b] {
        let mut verified = 0;
        wait_for(s, |e| match e {
            SessionEvent::Transfer(u) if u.state == TransferState::Verified => {
                verified += 1;
                (verified == 2).then_some(())
            }
            SessionEvent::Transfer(u) if u.state.is_final() => panic!("{u:?}"),
            _ => None,
        })
        .await;
    }
    assert!(a_dir.path().join("from_b.bin").exists());
    assert!(b_dir.path().join("from_a.bin").exists());
}

/// Two sessions that ask before accepting; the connector has offered `a.txt` from `tx`.
async fn one_file_offered(rx: &Path, tx: &Path) -> (Session, Session) {
    let f = tx.join("a.txt");
    std::fs::write(&f, b"hello").expect("write");
    let (rx, tx) = pair(
        config("rx", rx, OfferPolicy::Ask),
        config("tx", tx, OfferPolicy::Ask),
    )
    .await;
    tx.handle
        .send(Command::Offer(collect_files(&[f]).expect("collect")))
        .await
        .expect("offer");
    (rx, tx)
}

#[tokio::test]
async fn a_rejected_offer_tells_the_sender_why_and_writes_nothing() {
    let rx_dir = tempfile::tempdir().expect("tmp");
    let tx_dir = tempfile::tempdir().expect("tmp");
    let (mut rx, mut tx) = one_file_offered(rx_dir.path(), tx_dir.path()).await;
    let id = wait_for(&mut rx, |e| match e {
        SessionEvent::Transfer(u) if u.state == TransferState::AwaitingDecision => Some(u.id),
        _ => None,
    })
    .await;
    rx.handle
        .send(Command::Reject(id, "not today".into()))
        .await
        .expect("reject");
    let state = wait_for(&mut tx, |e| match e {
        SessionEvent::Transfer(u) if u.state.is_final() => Some(u.state.clone()),
        _ => None,
    })
    .await;
    assert_eq!(state, TransferState::rejected("not today"));
    assert_eq!(std::fs::read_dir(rx_dir.path()).expect("ls").count(), 0);
}

#[tokio::test]
async fn a_listener_calls_a_silent_peer_raw_after_about_a_second() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut client, mut s) = listening_session(config("l", dir.path(), OfferPolicy::Ask)).await;
    s.handle
        .send(Command::Text("typed early".into()))
        .await
        .expect("text");
    let raw = wait_for(&mut s, |e| match e {
        SessionEvent::Connected(p) => Some(p.raw),
        _ => None,
    })
    .await;
    assert!(raw);
    let mut buf = [0u8; 64];
    let n = timeout(WAIT, client.read(&mut buf))
        .await
        .expect("in time")
        .expect("read");
    assert_eq!(&buf[..n], b"typed early\n");
}

#[tokio::test]
async fn a_corrupted_chunk_fails_the_hash_and_is_never_promoted() {
    let (mut fake, mut real, dir) = fake_connector(OfferPolicy::AcceptAll).await;
    let data = pseudo_random(100_000, 4);
    offer_and_get_accepted(&mut fake, data.len() as u64).await;
    let mut corrupted = data.clone();
    corrupted[50_000] ^= 1;
    fake.send(Frame::Chunk {
        id: 1,
        offset: 0,
        data: Bytes::from(corrupted),
    })
    .await
    .expect("chunk");
    fake.send(Frame::FileEnd {
        id: 1,
        hash: *blake3::hash(&data).as_bytes(),
    })
    .await
    .expect("end");
    match next_frame(&mut fake).await {
        Frame::Verdict { id: 1, ok, message } => {
            assert!(!ok);
            assert!(message.contains("BLAKE3"), "{message}");
        }
        other => panic!("expected a verdict, got {other:?}"),
    }
    let state = final_state(&mut real).await;
    assert!(
        matches!(&state, TransferState::Failed(m) if m.contains("BLAKE3")),
        "{state:?}"
    );
    assert!(!dir.path().join("data.bin").exists());
    let part = partial_name("data.bin", data.len() as u64, 0);
    assert!(dir.path().join(part).exists(), "the partial file is kept");
}

#[tokio::test]
async fn a_connection_cut_inside_a_chunk_is_a_lost_connection_not_bad_data() {
    let (mut fake, mut real, dir) = fake_connector(OfferPolicy::AcceptAll).await;
    offer_and_get_accepted(&mut fake, 200_000).await;
    let mut wire = BytesMut::new();
    encode_frame(
        &Frame::Chunk {
            id: 1,
            offset: 0,
            data: Bytes::from(vec![7u8; 200_000]),
        },
        &mut wire,
    )
    .expect("encodes");
    // The header and part of the data: the reader is inside the chunk when the line goes.
    let mut stream = fake.into_inner();
    stream.write_all(&wire[..90_000]).await.expect("write");
    drop(stream);
    let error = lost_mid_transfer(&mut real, dir.path()).await;
    assert!(
        error.contains("connection lost") && !error.contains("bad data"),
        "{error}"
    );
}

#[tokio::test]
async fn a_truncated_stream_is_reported_and_never_promoted() {
    let (mut fake, mut real, dir) = fake_connector(OfferPolicy::AcceptAll).await;
    offer_and_get_accepted(&mut fake, 1000).await;
    fake.send(Frame::Chunk {
        id: 1,
        offset: 0,
        data: Bytes::from(vec![7u8; 400]),
    })
    .await
    .expect("chunk");
    drop(fake);
    lost_mid_transfer(&mut real, dir.path()).await;
}

/// The peer vanished during transfer #1 of `data.bin`: the transfer failed as a lost
/// connection, nothing was promoted, and the session closed with an error, which is returned.
async fn lost_mid_transfer(real: &mut Session, dir: &Path) -> String {
    let state = final_state(real).await;
    assert!(
        matches!(&state, TransferState::Failed(m) if m.contains("connection lost")),
        "{state:?}"
    );
    let error = closed_error(real)
        .await
        .expect("a cut mid-transfer is an error");
    assert!(!dir.join("data.bin").exists());
    error
}

#[tokio::test]
async fn fewer_bytes_then_file_end_is_reported_as_truncated() {
    let (mut fake, mut real, dir) = fake_connector(OfferPolicy::AcceptAll).await;
    offer_and_get_accepted(&mut fake, 1000).await;
    let part = vec![1u8; 600];
    fake.send(Frame::Chunk {
        id: 1,
        offset: 0,
        data: Bytes::from(part.clone()),
    })
    .await
    .expect("chunk");
    fake.send(Frame::FileEnd {
        id: 1,
        hash: *blake3::hash(&part).as_bytes(),
    })
    .await
    .expect("end");
    assert!(matches!(
        next_frame(&mut fake).await,
        Frame::Verdict { ok: false, .. }
    ));
    let state = final_state(&mut real).await;
    assert!(
        matches!(&state, TransferState::Failed(m) if m.contains("truncated")),
        "{state:?}"
    );
    assert!(!dir.path().join("data.bin").exists());
}

#[tokio::test]
async fn more_bytes_than_offered_fail_the_transfer() {
    let (mut fake, mut real, dir) = fake_connector(OfferPolicy::AcceptAll).await;
    offer_and_get_accepted(&mut fake, 10).await;
    fake.send(Frame::Chunk {
        id: 1,
        offset: 0,
        data: Bytes::from(vec![1u8; 11]),
    })
    .await
    .expect("chunk");
    assert!(matches!(
        next_frame(&mut fake).await,
        Frame::Cancel {
            id: 1,
            by_sender: false,
            ..
        }
    ));
    let state = final_state(&mut real).await;
    assert!(
        matches!(&state, TransferState::Failed(m) if m.contains("more than")),
        "{state:?}"
    );
    assert!(!dir.path().join("data.bin").exists());
}

#[tokio::test]
async fn hostile_names_are_refused_and_nothing_lands_outside() {
    let (mut fake, mut real, dir) = fake_connector(OfferPolicy::AcceptAll).await;
    let hostile = [
        "../x",
        "../../etc/passwd",
        "/etc/passwd",
        "a/../../b",
        "C:\\x",
        "..\\..\\x",
        "a\0b",
        "bell\u{7}",
        ".",
        "..",
        "",
        "ok/../../../escape",
        "nul",
    ];
    let long = "n".repeat(1000);
    let names: Vec<&str> = hostile.iter().copied().chain([long.as_str()]).collect();
    for (i, name) in names.iter().enumerate() {
        let id = i as u32 + 1;
        fake.send(Frame::Offer {
            id,
            size: 3,
            path: (*name).to_string(),
        })
        .await
        .expect("offer");
        match next_frame(&mut fake).await {
            Frame::Reject { id: got, reason } => {
                assert_eq!(got, id);
                assert!(reason.contains("unsafe"), "{name:?}: {reason}");
            }
            other => panic!("{name:?} was not refused: {other:?}"),
        }
        // Even if the peer pushes data anyway, nothing is written.
        fake.send(Frame::Chunk {
            id,
            offset: 0,
            data: Bytes::from_static(b"bad"),
        })
        .await
        .expect("chunk");
    }
    fake.send(Frame::Bye {
        reason: String::new(),
    })
    .await
    .expect("bye");
    let mut rejected = 0;
    wait_for(&mut real, |e| match e {
        SessionEvent::Transfer(u) if matches!(u.state, TransferState::Rejected(_)) => {
            rejected += 1;
            None
        }
        SessionEvent::Closed { .. } => Some(()),
        _ => None,
    })
    .await;
    assert_eq!(rejected, names.len());
    assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 0);
    let parent = dir.path().parent().expect("parent");
    assert!(!parent.join("x").exists() && !parent.join("b").exists());
}

#[tokio::test]
async fn a_newer_protocol_version_gets_a_clear_error_on_both_sides() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut client, mut real) =
        listening_session(config("real", dir.path(), OfferPolicy::Ask)).await;
    client
        .write_all(&preamble(VERSION + 1))
        .await
        .expect("write");
    // Refusals come in the one form every version reads: version 1, in clear.
    let mut pre = [0u8; PREAMBLE_LEN];
    client.read_exact(&mut pre).await.expect("preamble");
    assert_eq!(pre, preamble(PLAIN_VERSION));
    let mut framed = Framed::new(client, FrameCodec);
    match timeout(WAIT, framed.next()).await.expect("in time") {
        Some(Ok(Frame::Bye { reason })) => assert!(reason.contains("version"), "{reason}"),
        other => panic!("expected Bye, got {other:?}"),
    }
    let error = wait_for(&mut real, |e| match e {
        SessionEvent::Closed { error } => Some(error.as_ref().map(|e| e.to_string())),
        _ => None,
    })
    .await
    .expect("an error");
    assert!(error.contains("version"), "{error}");
}

#[tokio::test]
async fn a_connector_reports_a_listener_of_another_version() {
    let dir = tempfile::tempdir().expect("tmp");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.expect("accept");
        let mut pre = [0u8; PREAMBLE_LEN];
        s.read_exact(&mut pre).await.expect("preamble");
        s.write_all(&preamble(VERSION + 1)).await.expect("write");
        s
    });
    let client = TcpStream::connect(addr).await.expect("connect");
    let mut real = Session::start(
        client,
        Role::Connector,
        config("real", dir.path(), OfferPolicy::Ask),
        &CancellationToken::new(),
    );
    let error = wait_for(&mut real, |e| match e {
        SessionEvent::Closed { error } => Some(error.as_ref().map(|e| e.to_string())),
        _ => None,
    })
    .await
    .expect("an error");
    assert!(error.contains("version"), "{error}");
    drop(server.await);
}

#[tokio::test]
async fn garbage_after_the_magic_is_a_malformed_handshake() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut client, mut real) =
        listening_session(config("real", dir.path(), OfferPolicy::Ask)).await;
    let mut bytes = preamble(VERSION).to_vec();
    bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x01, 0x02]);
    client.write_all(&bytes).await.expect("write");
    let error = wait_for(&mut real, |e| match e {
        SessionEvent::Closed { error } => Some(error.as_ref().map(|e| e.to_string())),
        _ => None,
    })
    .await
    .expect("an error");
    assert!(error.contains("malformed handshake"), "{error}");
    // Nothing but the closed connection comes back: no preamble for a peer that failed.
    let mut rest = Vec::new();
    let _ = timeout(WAIT, client.read_to_end(&mut rest)).await;
    assert!(!rest.starts_with(&MAGIC), "answered a malformed handshake");
}

#[tokio::test]
async fn a_peer_that_goes_silent_is_declared_not_responding() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = config("real", dir.path(), OfferPolicy::Ask);
    cfg.ping_after = Duration::from_millis(200);
    cfg.dead_after = Duration::from_millis(600);
    let (client, mut real) = listening_session(cfg).await;
    let (channel, _) = encrypted_connector(client, &tern::harness::identity())
        .await
        .expect("handshake");
    let mut framed = Framed::new(channel, FrameCodec);
    framed
        .send(Frame::Hello {
            capabilities: 1,
            name: "mute".into(),
        })
        .await
        .expect("hello");
    // Read nothing, answer nothing.
    let error = wait_for(&mut real, |e| match e {
        SessionEvent::Closed { error } => Some(error.as_ref().map(|e| e.to_string())),
        _ => None,
    })
    .await
    .expect("an error");
    assert!(error.contains("not responding"), "{error}");
}

#[tokio::test]
async fn offers_over_the_receivers_limits_are_refused_up_front() {
    let rx_dir = tempfile::tempdir().expect("tmp");
    let tx_dir = tempfile::tempdir().expect("tmp");
    let mut rx_cfg = config("rx", rx_dir.path(), OfferPolicy::AcceptAll);
    rx_cfg.max_file_size = Some(1000);
    rx_cfg.max_total = Some(1500);
    let mut files = Vec::new();
    for (name, size) in [("big.bin", 2000), ("a.bin", 800), ("b.bin", 800)] {
        let p = tx_dir.path().join(name);
        std::fs::write(&p, vec![1u8; size]).expect("write");
        files.push(p);
    }
    let (rx, mut tx) = pair(rx_cfg, config("tx", tx_dir.path(), OfferPolicy::Ask)).await;
    tx.handle
        .send(Command::Offer(collect_files(&files).expect("collect")))
        .await
        .expect("offer");
    let mut finals = std::collections::BTreeMap::new();
    wait_for(&mut tx, |e| match e {
        SessionEvent::Transfer(u) if u.state.is_final() => {
            finals.insert(u.path.to_string(), u.state.clone());
            (finals.len() == 3).then_some(())
        }
        _ => None,
    })
    .await;
    assert!(
        matches!(&finals["big.bin"], TransferState::Rejected(why) if why.contains("limit")),
        "{finals:?}"
    );
    assert_eq!(finals["a.bin"], TransferState::Verified);
    assert!(
        matches!(&finals["b.bin"], TransferState::Rejected(why) if why.contains("per session")),
        "{finals:?}"
    );
    drop(rx.handle.send(Command::Close).await);
    assert!(!rx_dir.path().join("big.bin").exists());
    assert!(!rx_dir.path().join("b.bin").exists());
    let _ = timeout(WAIT, rx.task).await;
}

async fn closed_error(session: &mut Session) -> Option<String> {
    wait_for(session, |e| match e {
        SessionEvent::Closed { error } => Some(error.as_ref().map(|e| e.to_string())),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn a_chunk_for_a_transfer_never_offered_is_refused_and_the_session_goes_on() {
    let (mut fake, mut real, dir) = fake_connector(OfferPolicy::AcceptAll).await;
    fake.send(Frame::Chunk {
        id: 99,
        offset: 0,
        data: Bytes::from_static(b"sneaky"),
    })
    .await
    .expect("chunk");
    assert!(matches!(
        next_frame(&mut fake).await,
        Frame::Cancel {
            id: 99,
            by_sender: false,
            ..
        }
    ));
    let notice = wait_for(&mut real, |e| match e {
        SessionEvent::Notice(n) => Some(n.clone()),
        _ => None,
    })
    .await;
    assert!(notice.contains("unknown transfer"), "{notice}");
    // Still talking.
    fake.send(Frame::Text {
        encoding: tern::text::Encoding::Utf8,
        bytes: Bytes::from_static(b"ok?"),
    })
    .await
    .expect("text");
    let text = wait_for(&mut real, |e| match e {
        SessionEvent::Text { text, .. } => Some(text.raw().to_string()),
        _ => None,
    })
    .await;
    assert_eq!(text, "ok?");
    assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 0);
}

#[tokio::test]
async fn data_before_the_offer_is_accepted_fails_that_transfer() {
    let (mut fake, mut real, dir) = fake_connector(OfferPolicy::Ask).await;
    fake.send(Frame::Offer {
        id: 1,
        size: 10,
        path: "early.bin".into(),
    })
    .await
    .expect("offer");
    wait_for(&mut real, |e| match e {
        SessionEvent::Transfer(u) if u.state == TransferState::AwaitingDecision => Some(()),
        _ => None,
    })
    .await;
    fake.send(Frame::Chunk {
        id: 1,
        offset: 0,
        data: Bytes::from_static(b"0123456789"),
    })
    .await
    .expect("chunk");
    let state = final_state(&mut real).await;
    assert!(
        matches!(&state, TransferState::Failed(m) if m.contains("before the offer was accepted")),
        "{state:?}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 0);
}

#[tokio::test]
async fn a_second_offer_with_an_open_id_is_refused_and_the_first_completes() {
    let (mut fake, mut real, dir) = fake_connector(OfferPolicy::AcceptAll).await;
    offer_and_get_accepted(&mut fake, 3).await;
    fake.send(Frame::Offer {
        id: 1,
        size: 5,
        path: "impostor.bin".into(),
    })
    .await
    .expect("offer");
    match next_frame(&mut fake).await {
        Frame::Reject { id: 1, reason } => assert!(reason.contains("already open"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    send_body(&mut fake, 1, b"abc").await;
    assert!(matches!(
        next_frame(&mut fake).await,
        Frame::Verdict {
            id: 1,
            ok: true,
            ..
        }
    ));
    assert_eq!(final_state(&mut real).await, TransferState::Verified);
    assert_eq!(
        std::fs::read(dir.path().join("data.bin")).expect("read"),
        b"abc"
    );
    assert!(!dir.path().join("impostor.bin").exists());
}

#[tokio::test]
async fn a_frame_over_the_size_limit_closes_the_session_with_a_clear_error() {
    let (fake, mut real, _dir) = fake_connector(OfferPolicy::AcceptAll).await;
    let mut stream = fake.into_inner();
    // A header claiming 2 GiB; no body follows.
    stream
        .write_all(&[0x80, 0, 0, 0, 0x13])
        .await
        .expect("write");
    let error = closed_error(&mut real).await.expect("an error");
    assert!(
        error.contains("over the") && error.contains("limit"),
        "{error}"
    );
}

#[tokio::test]
async fn an_unknown_frame_type_closes_the_session_with_a_clear_error() {
    let (fake, mut real, _dir) = fake_connector(OfferPolicy::AcceptAll).await;
    let mut stream = fake.into_inner();
    stream
        .write_all(&[0, 0, 0, 2, 0x77, 0])
        .await
        .expect("write");
    let error = closed_error(&mut real).await.expect("an error");
    assert!(error.contains("unknown frame type 0x77"), "{error}");
}

#[tokio::test]
async fn a_flood_of_text_is_pushed_back_not_buffered() {
    let (fake, mut real, _dir) = fake_connector(OfferPolicy::AcceptAll).await;
    let (mut sink, mut source) = {
        let (r, w) = tokio::io::split(fake.into_inner());
        (w, r)
    };
    // Keep reading what the session writes, so only its reading side is under test.
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = source.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    });
    const MESSAGES: usize = 200_000;
    let frame = {
        let mut b = bytes::BytesMut::new();
        tern::protocol::codec::encode_frame(
            &Frame::Text {
                encoding: tern::text::Encoding::Utf8,
                bytes: Bytes::from(vec![b'x'; 1000]),
            },
            &mut b,
        )
        .expect("encode");
        b.freeze()
    };
    let writer = tokio::spawn(async move {
        for _ in 0..MESSAGES {
            if sink.write_all(&frame).await.is_err() {
                return false;
            }
        }
        // Records sealed last may still wait in the writer.
        sink.flush().await.is_ok()
    });
    // Nobody reads the events: the session must stop reading, so the writer cannot finish
    // 200 MB of text.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !writer.is_finished(),
        "200 MB of text went into an unbounded queue"
    );
    // Reading the events again lets everything through, none lost.
    let mut texts = 0;
    wait_for(&mut real, |e| match e {
        SessionEvent::Text { .. } => {
            texts += 1;
            (texts == MESSAGES).then_some(())
        }
        _ => None,
    })
    .await;
    assert!(writer.await.expect("join"));
}

#[tokio::test]
async fn a_folder_of_thousands_of_files_arrives_whole() {
    let rx_dir = tempfile::tempdir().expect("tmp");
    let tx_dir = tempfile::tempdir().expect("tmp");
    let root = tx_dir.path().join("many");
    for i in 0..3000 {
        let dir = root.join(format!("d{}", i % 30));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join(format!("f{i}.txt")), format!("file {i}")).expect("write");
    }
    let (rx, mut tx) = pair(
        config("rx", rx_dir.path(), OfferPolicy::AcceptAll),
        config("tx", tx_dir.path(), OfferPolicy::Ask),
    )
    .await;
    let files = collect_files(&[root]).expect("collect");
    assert_eq!(files.len(), 3000);
    tx.handle.send(Command::Offer(files)).await.expect("offer");
    // The receiver's events must be read too: an unread session stops reading its socket.
    let rx_handle = rx.handle.clone();
    let rx_task = rx.task;
    let mut rx_events = rx.events;
    let drain = tokio::spawn(async move { while rx_events.recv().await.is_some() {} });
    let mut verified = 0;
    wait_for(&mut tx, |e| match e {
        SessionEvent::Transfer(u) if u.state == TransferState::Verified => {
            verified += 1;
            (verified == 3000).then_some(())
        }
        SessionEvent::Transfer(u) if u.state.is_final() => panic!("{u:?}"),
        _ => None,
    })
    .await;
    drop(rx_handle.send(Command::Close).await);
    let _ = timeout(WAIT, rx_task).await;
    let _ = timeout(WAIT, drain).await;
    let got = std::fs::read_to_string(rx_dir.path().join("many/d7/f2977.txt")).expect("read");
    assert_eq!(got, "file 2977");
}

#[cfg(unix)]
#[tokio::test]
async fn a_symlink_in_the_download_dir_is_never_followed_out() {
    let outside = tempfile::tempdir().expect("tmp");
    let (mut fake, mut real, dir) = fake_connector(OfferPolicy::AcceptAll).await;
    std::os::unix::fs::symlink(outside.path(), dir.path().join("evil")).expect("symlink");
    std::os::unix::fs::symlink(
        outside.path().join("target.txt"),
        dir.path().join("link.txt"),
    )
    .expect("symlink");
    for (id, path) in [(1u32, "evil/x.txt"), (2, "link.txt")] {
        fake.send(Frame::Offer {
            id,
            size: 3,
            path: path.into(),
        })
        .await
        .expect("offer");
        assert_eq!(next_frame(&mut fake).await, Frame::Accept { id, offset: 0 });
        send_body(&mut fake, id, b"bad").await;
        // Either way the transfer is settled before the next offer.
        match next_frame(&mut fake).await {
            Frame::Cancel { id: got, .. } | Frame::Verdict { id: got, .. } => assert_eq!(got, id),
            other => panic!("unexpected {other:?}"),
        }
    }
    fake.send(Frame::Bye {
        reason: String::new(),
    })
    .await
    .expect("bye");
    let mut finals = Vec::new();
    wait_for(&mut real, |e| match e {
        SessionEvent::Transfer(u) if u.state.is_final() => {
            finals.push((u.path.clone(), u.state.clone(), u.saved_as.clone()));
            None
        }
        SessionEvent::Closed { .. } => Some(()),
        _ => None,
    })
    .await;
    assert_eq!(
        std::fs::read_dir(outside.path()).expect("ls").count(),
        0,
        "{finals:?}"
    );
    // The plain name next to a link is still delivered, under a new name beside it.
    let link = finals
        .iter()
        .find(|f| f.0.as_str() == "link.txt")
        .expect("link.txt settled");
    assert_eq!(link.1, TransferState::Verified);
    assert_eq!(
        link.2.as_deref(),
        Some(dir.path().join("link (1).txt").as_path())
    );
    let evil = finals
        .iter()
        .find(|f| f.0.as_str() == "evil/x.txt")
        .expect("evil settled");
    assert!(matches!(evil.1, TransferState::Failed(_)), "{evil:?}");
}

#[tokio::test]
async fn names_differing_by_case_or_normalisation_never_overwrite() {
    let (mut fake, mut real, dir) = fake_connector(OfferPolicy::AcceptAll).await;
    std::fs::write(dir.path().join("Café.txt"), b"original").expect("write");
    let names = ["Café.txt", "Cafe\u{301}.txt", "café.txt", "CAFÉ.TXT"];
    for (i, name) in names.iter().enumerate() {
        let id = i as u32 + 1;
        let body = format!("copy {id}");
        fake.send(Frame::Offer {
            id,
            size: body.len() as u64,
            path: (*name).into(),
        })
        .await
        .expect("offer");
        assert_eq!(next_frame(&mut fake).await, Frame::Accept { id, offset: 0 });
        fake.send(Frame::Chunk {
            id,
            offset: 0,
            data: Bytes::from(body.clone()),
        })
        .await
        .expect("chunk");
        fake.send(Frame::FileEnd {
            id,
            hash: *blake3::hash(body.as_bytes()).as_bytes(),
        })
        .await
        .expect("end");
        assert!(matches!(
            next_frame(&mut fake).await,
            Frame::Verdict { ok: true, .. }
        ));
    }
    let mut verified = 0;
    wait_for(&mut real, |e| match e {
        SessionEvent::Transfer(u) if u.state == TransferState::Verified => {
            verified += 1;
            (verified == names.len()).then_some(())
        }
        _ => None,
    })
    .await;
    assert_eq!(
        std::fs::read(dir.path().join("Café.txt")).expect("read"),
        b"original"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("ls").count(),
        names.len() + 1
    );
}

/// Offer a file of `size` as the fake sender with FLOW, and return the credit granted with the
/// acceptance.
async fn first_credit(framed: &mut Wire, size: u64) -> u64 {
    offer_and_get_accepted(framed, size).await;
    match next_frame(framed).await {
        Frame::Credit { id: 1, upto } => upto,
        other => panic!("expected Credit, got {other:?}"),
    }
}

const MIB: u64 = 1024 * 1024;

#[tokio::test]
async fn a_quiet_connection_grants_file_data_the_bulk_window() {
    let (mut fake, _real, _dir) =
        fake_connector_with(OfferPolicy::AcceptAll, tern::protocol::caps::OURS).await;
    assert_eq!(first_credit(&mut fake, 64 * MIB).await, 4 * MIB);
}

#[tokio::test]
async fn while_messages_flow_file_data_gets_the_small_window() {
    let (mut fake, mut real, _dir) =
        fake_connector_with(OfferPolicy::AcceptAll, tern::protocol::caps::OURS).await;
    fake.send(Frame::Text {
        encoding: tern::text::Encoding::Utf8,
        bytes: Bytes::from_static(b"hi"),
    })
    .await
    .expect("text");
    wait_for(&mut real, |e| {
        matches!(e, SessionEvent::Text { .. }).then_some(())
    })
    .await;
    assert_eq!(first_credit(&mut fake, 64 * MIB).await, MIB);
}

#[tokio::test]
async fn a_message_we_send_also_counts_as_a_conversation() {
    let (mut fake, real, _dir) =
        fake_connector_with(OfferPolicy::AcceptAll, tern::protocol::caps::OURS).await;
    real.handle
        .send(Command::Text("hello".into()))
        .await
        .expect("command");
    match next_frame(&mut fake).await {
        Frame::Text { bytes, .. } => assert_eq!(&bytes[..], b"hello"),
        other => panic!("expected Text, got {other:?}"),
    }
    assert_eq!(first_credit(&mut fake, 64 * MIB).await, MIB);
}

/// Offer files 1..=`count` (`f1.bin`, ...), each of `size` bytes.
async fn offer_files(framed: &mut Wire, count: u32, size: u64) {
    for id in 1..=count {
        framed
            .send(Frame::Offer {
                id,
                size,
                path: format!("f{id}.bin"),
            })
            .await
            .expect("offer");
    }
}

/// Credit granted, per transfer, by the `Credit` frames among `frames`.
fn credit_by_id(frames: &[Frame]) -> std::collections::HashMap<u32, u64> {
    let mut credit = std::collections::HashMap::new();
    for frame in frames {
        if let Frame::Credit { id, upto } = frame {
            let seen = credit.entry(*id).or_insert(0);
            *seen = (*seen).max(*upto);
        }
    }
    credit
}

#[tokio::test]
async fn many_accepted_offers_share_one_credit_window() {
    let (mut fake, _real, _dir) =
        fake_connector_with(OfferPolicy::AcceptAll, tern::protocol::caps::OURS).await;
    offer_files(&mut fake, 100, 64 * MIB).await;
    let frames = frames_until_quiet(&mut fake, Duration::from_millis(500)).await;
    let accepted = frames
        .iter()
        .filter(|f| matches!(f, Frame::Accept { .. }))
        .count();
    assert_eq!(accepted, 100);
    // Not 100 windows: one, shared, or a lying peer could fill our memory.
    let credit = credit_by_id(&frames);
    assert_eq!(credit.values().sum::<u64>(), 4 * MIB, "{credit:?}");

    // What a transfer uses comes back once it is on disk, and goes to the next in line.
    let (&id, &upto) = credit
        .iter()
        .min_by_key(|(id, _)| **id)
        .expect("some credit");
    for offset in (0..upto).step_by(MIB as usize) {
        let len = (upto - offset).min(MIB) as usize;
        fake.send(Frame::Chunk {
            id,
            offset,
            data: Bytes::from(vec![7u8; len]),
        })
        .await
        .expect("chunk");
    }
    let later = credit_by_id(&frames_until_quiet(&mut fake, Duration::from_millis(500)).await);
    let more: u64 = later
        .iter()
        .map(|(id, upto)| upto - credit.get(id).copied().unwrap_or(0))
        .sum();
    assert_eq!(more, upto, "exactly what was written comes back: {later:?}");
    assert!(
        later.keys().any(|other| !credit.contains_key(other)),
        "a transfer that had none gets some: {later:?}"
    );
}

#[tokio::test]
async fn a_cancelled_transfer_hands_its_credit_to_the_next() {
    let (mut fake, _real, _dir) =
        fake_connector_with(OfferPolicy::AcceptAll, tern::protocol::caps::OURS).await;
    offer_files(&mut fake, 2, 64 * MIB).await;
    let credit = credit_by_id(&frames_until_quiet(&mut fake, Duration::from_millis(500)).await);
    assert_eq!(credit.values().sum::<u64>(), 4 * MIB, "{credit:?}");
    let (&holder, _) = credit
        .iter()
        .max_by_key(|(_, upto)| **upto)
        .expect("credit");
    let other = 3 - holder;
    fake.send(Frame::Cancel {
        id: holder,
        by_sender: true,
        reason: "changed my mind".into(),
    })
    .await
    .expect("cancel");
    let later = credit_by_id(&frames_until_quiet(&mut fake, Duration::from_millis(500)).await);
    assert_eq!(
        later.get(&holder),
        None,
        "nothing more for the cancelled one"
    );
    assert_eq!(
        later.get(&other).copied(),
        Some(credit.get(&other).copied().unwrap_or(0) + credit[&holder]),
        "what it held went to the other: {later:?}"
    );
}

/// A peer that keeps offering without ever sending is refused past a limit, and nothing of
/// the refused offers is kept; once an open offer ends, offers are taken again.
#[tokio::test]
async fn offers_past_the_open_limit_are_refused_until_some_end() {
    use tern::session::MAX_OPEN_OFFERS;
    let (mut fake, mut real, _dir) = fake_connector(OfferPolicy::Ask).await;
    let over = 10;
    let total = (MAX_OPEN_OFFERS + over) as u32;
    // Written from a task: the session stops reading while its events are not taken.
    let writer = tokio::spawn(async move {
        offer_files(&mut fake, total, 5).await;
        fake
    });
    let mut waiting = 0;
    wait_for(&mut real, |e| match e {
        SessionEvent::Transfer(u) if u.state == TransferState::AwaitingDecision => {
            assert!(u.id.id as usize <= MAX_OPEN_OFFERS, "{u:?} was taken");
            waiting += 1;
            None
        }
        SessionEvent::Notice(n) if n.contains("offers open") => Some(()),
        _ => None,
    })
    .await;
    assert_eq!(waiting, MAX_OPEN_OFFERS);
    let mut fake = writer.await.expect("writer");
    let frames = frames_until_quiet(&mut fake, Duration::from_millis(500)).await;
    let refused: Vec<u32> = frames
        .iter()
        .filter_map(|f| match f {
            Frame::Reject { id, reason } if reason.contains("too many offers open") => Some(*id),
            _ => None,
        })
        .collect();
    let expected: Vec<u32> = (MAX_OPEN_OFFERS as u32 + 1..=total).collect();
    assert_eq!(refused, expected, "other frames: {frames:?}");

    // One open offer ends: the next one is taken.
    fake.send(Frame::Cancel {
        id: 1,
        by_sender: true,
        reason: String::new(),
    })
    .await
    .expect("cancel");
    let next = total + 1;
    fake.send(Frame::Offer {
        id: next,
        size: 5,
        path: "late.bin".into(),
    })
    .await
    .expect("offer");
    let id = wait_for(&mut real, |e| match e {
        SessionEvent::Transfer(u) if u.state == TransferState::AwaitingDecision => Some(u.id),
        _ => None,
    })
    .await;
    assert_eq!(id.id, next);
    let frames = frames_until_quiet(&mut fake, Duration::from_millis(300)).await;
    assert!(
        !frames.iter().any(|f| matches!(f, Frame::Reject { .. })),
        "{frames:?}"
    );
}

/// However many files are sent, only a window of offers is open at once; the rest follow as
/// the receiver settles them.
#[tokio::test]
async fn a_sender_keeps_a_window_of_open_offers() {
    use tern::session::OFFER_WINDOW;
    let (mut fake, real, _dir) = fake_connector(OfferPolicy::Ask).await;
    let src = tempfile::tempdir().expect("tmp");
    let extra = 100;
    let total = OFFER_WINDOW + extra;
    for i in 0..total {
        std::fs::write(src.path().join(format!("f{i}.txt")), b"abc").expect("write");
    }
    let files = collect_files(&[src.path().to_path_buf()]).expect("collect");
    assert_eq!(files.len(), total);
    real.handle
        .send(Command::Offer(files))
        .await
        .expect("offer");
    // Every transfer must end refused, as the peer refused it: count them off the session.
    let mut real = real;
    let settled = tokio::spawn(async move {
        let mut rejected = 0;
        while let Some(event) = real.events.recv().await {
            if let SessionEvent::Transfer(u) = event
                && u.id.direction == Direction::Outgoing
                && matches!(u.state, TransferState::Rejected(_))
            {
                rejected += 1;
                if rejected == total {
                    break;
                }
            }
        }
        (rejected, real)
    });
    let offered = |frames: &[Frame]| -> Vec<u32> {
        frames
            .iter()
            .filter_map(|f| match f {
                Frame::Offer { id, .. } => Some(*id),
                _ => None,
            })
            .collect()
    };
    let first = offered(&frames_until_quiet(&mut fake, Duration::from_millis(500)).await);
    assert_eq!(first.len(), OFFER_WINDOW);
    // Ten settle: ten more come.
    for &id in &first[..10] {
        fake.send(Frame::Reject {
            id,
            reason: "no".into(),
        })
        .await
        .expect("reject");
    }
    let second = offered(&frames_until_quiet(&mut fake, Duration::from_millis(500)).await);
    assert_eq!(second.len(), 10);
    assert!(second.iter().all(|id| !first.contains(id)), "{second:?}");
    // The rest settle: every file is offered once, in all.
    let mut all: Vec<u32> = first.iter().chain(&second).copied().collect();
    let mut pending: Vec<u32> = first[10..].iter().chain(&second).copied().collect();
    while !pending.is_empty() {
        for id in pending.drain(..) {
            fake.send(Frame::Reject {
                id,
                reason: "no".into(),
            })
            .await
            .expect("reject");
        }
        pending = offered(&frames_until_quiet(&mut fake, Duration::from_millis(300)).await);
        all.extend(&pending);
    }
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), total);
    let (rejected, _real) = timeout(WAIT, settled)
        .await
        .expect("in time")
        .expect("join");
    assert_eq!(rejected, total);
}

#[tokio::test]
async fn a_cancel_reads_by_you_on_one_side_and_by_the_peer_on_the_other() {
    let rx_dir = tempfile::tempdir().expect("tmp");
    let tx_dir = tempfile::tempdir().expect("tmp");
    let (mut rx, mut tx) = one_file_offered(rx_dir.path(), tx_dir.path()).await;
    let ours = wait_for(&mut tx, |e| match e {
        SessionEvent::Transfer(u) if u.state == TransferState::Offered => Some(u.id),
        _ => None,
    })
    .await;
    tx.handle.send(Command::Cancel(ours)).await.expect("cancel");
    let final_of = |e: &SessionEvent| match e {
        SessionEvent::Transfer(u) if u.state.is_final() => Some(u.state.to_string()),
        _ => None,
    };
    assert_eq!(wait_for(&mut tx, final_of).await, "cancelled by you");
    assert_eq!(wait_for(&mut rx, final_of).await, "cancelled by the peer");
}

#[tokio::test]
async fn a_new_name_reaches_the_peer_at_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut rx, tx) = pair(
        config("rx", dir.path(), OfferPolicy::Ask),
        config("tx", dir.path(), OfferPolicy::Ask),
    )
    .await;
    wait_for(&mut rx, |e| {
        matches!(e, SessionEvent::Connected(_)).then_some(())
    })
    .await;
    tx.handle
        .send(Command::SetName("小黑\u{1b}[2J".into()))
        .await
        .expect("rename");
    let name = wait_for(&mut rx, |e| match e {
        SessionEvent::PeerRenamed(name) => Some(name.to_string()),
        _ => None,
    })
    .await;
    assert_eq!(name, "小黑[2J");
}
