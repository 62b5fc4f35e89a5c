//! What a hostile peer tried (issue 18), against real sessions over loopback and against the
//! real binary: terminal injection through tern's own messages, partial files tern did not
//! write, one partial file taken up twice, reused ids, floods that would grow memory, and a
//! handshake sent a byte at a time.

mod common;

#[path = "support/fake_peer.rs"]
mod fake_peer;

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use fake_peer::*;
use futures::{SinkExt, StreamExt};
use tern::protocol::codec::encode_frame;
use tern::protocol::{Frame, FrameCodec, PREAMBLE_LEN, VERSION, caps, preamble};
use tern::session::{OfferPolicy, SessionEvent};
use tern::text::Encoding;
use tern::transfer::TransferState;
use tern::transfer::incoming::partial_name;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

const RESUMING: u32 = caps::FILES | caps::RESUME;

fn offer(id: u32, size: u64, path: &str) -> Frame {
    Frame::Offer {
        id,
        size,
        path: path.into(),
    }
}

fn chunk(id: u32, offset: u64, data: &[u8]) -> Frame {
    Frame::Chunk {
        id,
        offset,
        data: Bytes::copy_from_slice(data),
    }
}

fn file_end(id: u32, whole: &[u8]) -> Frame {
    Frame::FileEnd {
        id,
        hash: *blake3::hash(whole).as_bytes(),
    }
}

/// The sender's own `Cancel` of its offer `id`.
fn sender_cancel(id: u32, reason: impl Into<String>) -> Frame {
    Frame::Cancel {
        id,
        by_sender: true,
        reason: reason.into(),
    }
}

async fn send_all(fake: &mut Wire, frames: Vec<Frame>) {
    for frame in frames {
        fake.send(frame).await.expect("send");
    }
}

// ---- item 2: partial files tern did not write ----------------------------------------------

#[tokio::test]
async fn a_part_file_another_program_left_is_never_resumed_changed_or_removed() {
    let (mut fake, mut real, dir) = fake_connector_with(OfferPolicy::AcceptAll, RESUMING).await;
    // What a browser leaves in ~/Downloads.
    let browsers = dir.path().join("report.pdf.part");
    std::fs::write(&browsers, b"half a download").expect("write");
    send_all(&mut fake, vec![offer(1, 100, "report.pdf")]).await;
    // Its size is not told: the offer starts from nothing.
    assert_eq!(
        next_frame(&mut fake).await,
        Frame::Accept { id: 1, offset: 0 }
    );
    send_all(&mut fake, vec![chunk(1, 0, &[7; 40]), sender_cancel(1, "")]).await;
    assert!(matches!(
        final_state(&mut real).await,
        TransferState::Cancelled(_)
    ));
    let body = b"the whole report";
    send_all(&mut fake, vec![offer(2, body.len() as u64, "report.pdf")]).await;
    assert_eq!(
        next_frame(&mut fake).await,
        Frame::Accept { id: 2, offset: 0 }
    );
    send_all(&mut fake, vec![chunk(2, 0, body), file_end(2, body)]).await;
    assert_eq!(final_state(&mut real).await, TransferState::Verified);
    assert_eq!(
        std::fs::read(&browsers).expect("still there"),
        b"half a download"
    );
    assert_eq!(
        std::fs::read(dir.path().join("report.pdf")).expect("saved"),
        body
    );
}

// ---- item 3: one partial file, two transfers -------------------------------------------------

#[tokio::test]
async fn one_partial_file_is_never_taken_up_by_two_transfers_at_once() {
    let (mut fake, mut real, dir) = fake_connector_with(OfferPolicy::AcceptAll, RESUMING).await;
    let whole = b"abcdefghij";
    // Left by an earlier attempt at the same file.
    let left = dir.path().join(partial_name("twice.bin", 10, 0));
    std::fs::write(&left, &whole[..4]).expect("write");
    send_all(
        &mut fake,
        vec![offer(1, 10, "twice.bin"), offer(2, 10, "twice.bin")],
    )
    .await;
    let mut offsets = std::collections::BTreeMap::new();
    while offsets.len() < 2 {
        match next_frame(&mut fake).await {
            Frame::Accept { id, offset } => {
                offsets.insert(id, offset);
            }
            Frame::Credit { .. } => {}
            other => panic!("expected accepts, got {other:?}"),
        }
    }
    let resumed: Vec<u32> = offsets
        .iter()
        .filter(|(_, offset)| **offset == 4)
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(resumed.len(), 1, "exactly one resumes: {offsets:?}");
    let (first, second) = (resumed[0], 3 - resumed[0]);
    assert_eq!(offsets[&second], 0, "{offsets:?}");
    // The resumed one is finished first; the other then writes its own bytes in full.
    send_all(
        &mut fake,
        vec![chunk(first, 4, &whole[4..]), file_end(first, whole)],
    )
    .await;
    assert_eq!(final_state(&mut real).await, TransferState::Verified);
    let other = b"0123456789";
    send_all(
        &mut fake,
        vec![chunk(second, 0, other), file_end(second, other)],
    )
    .await;
    assert_eq!(final_state(&mut real).await, TransferState::Verified);
    let mut saved: Vec<Vec<u8>> = ["twice.bin", "twice (1).bin"]
        .iter()
        .map(|name| std::fs::read(dir.path().join(name)).expect("saved"))
        .collect();
    saved.sort();
    assert_eq!(saved, [other.to_vec(), whole.to_vec()]);
}

// ---- item 4: ids a peer uses again -----------------------------------------------------------

#[tokio::test]
async fn an_id_used_again_is_never_taken_for_the_transfer_that_had_it() {
    let (mut fake, mut real, dir) = fake_connector(OfferPolicy::AcceptAll).await;
    let first = b"first file";
    send_all(&mut fake, vec![offer(1, first.len() as u64, "first.bin")]).await;
    assert_eq!(
        next_frame(&mut fake).await,
        Frame::Accept { id: 1, offset: 0 }
    );
    send_all(
        &mut fake,
        vec![
            chunk(1, 0, first),
            file_end(1, first),
            sender_cancel(1, "changed my mind"),
            offer(1, 5, "second.bin"),
            chunk(1, 0, b"12345"),
            file_end(1, b"12345"),
        ],
    )
    .await;
    let frames = frames_until_quiet(&mut fake, Duration::from_millis(1500)).await;
    assert!(
        frames.iter().any(
            |f| matches!(f, Frame::Reject { id: 1, reason } if reason.contains("earlier offer"))
        ),
        "the second offer #1 is refused: {frames:?}"
    );
    let verdicts: Vec<bool> = frames
        .iter()
        .filter_map(|f| match f {
            Frame::Verdict { id: 1, ok, .. } => Some(*ok),
            _ => None,
        })
        .collect();
    assert!(verdicts.len() <= 1, "one verdict at most: {frames:?}");
    // What the UI was told of `first.bin` matches the disk, and `second.bin` is no file.
    let mut states = Vec::new();
    while let Ok(event) = real.events.try_recv() {
        if let SessionEvent::Transfer(u) = event {
            assert_ne!(u.path.as_str(), "second.bin", "{u:?}");
            states.push(u.state);
        }
    }
    let last = states.last().expect("first.bin was reported");
    let saved = dir.path().join("first.bin");
    match last {
        TransferState::Verified => {
            assert_eq!(std::fs::read(&saved).expect("saved"), first);
            assert_eq!(verdicts, [true]);
        }
        TransferState::Cancelled(_) => {
            assert!(!saved.exists(), "a cancelled file has no name");
            assert!(verdicts.is_empty(), "{frames:?}");
        }
        other => panic!("first.bin ended as {other:?}"),
    }
    assert!(!dir.path().join("second.bin").exists());
}

// ---- item 6: memory bounded whatever the peer sends -----------------------------------------

#[tokio::test]
async fn big_messages_nobody_reads_are_bounded_in_bytes_not_count() {
    let (fake, _real, _dir) = fake_connector(OfferPolicy::AcceptAll).await;
    let (mut source, mut sink) = tokio::io::split(fake.into_inner());
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = source.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    });
    let mut frame = BytesMut::new();
    let text = Frame::Text {
        encoding: Encoding::Utf8,
        bytes: Bytes::from(vec![b'x'; 1024 * 1024 - 16]),
    };
    encode_frame(&text, &mut frame).expect("encode");
    let frame = frame.freeze();
    let written = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&written);
    tokio::spawn(async move {
        while sink.write_all(&frame).await.is_ok() {
            counter.fetch_add(frame.len(), std::sync::atomic::Ordering::Relaxed);
        }
    });
    // Nobody takes the events: after a moment, only what the bound and the kernel's socket
    // buffers hold has left the writer (256 queued messages of 1 MiB got through before).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let written = written.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        written < 24 * 1024 * 1024,
        "{} MiB of messages taken in while nobody read them",
        written >> 20
    );
}

// ---- item 7: a handshake a byte at a time ----------------------------------------------------

#[tokio::test]
async fn a_handshake_sent_a_byte_at_a_time_runs_into_one_deadline() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = config("real", dir.path(), OfferPolicy::AcceptAll);
    cfg.handshake_timeout = Duration::from_secs(1);
    let (mut client, mut real) = listening_session(cfg).await;
    // The preamble and a first handshake message (an ephemeral key: any 32 bytes will do).
    let mut hello = preamble(VERSION).to_vec();
    hello.extend_from_slice(&[0, 32]);
    hello.extend_from_slice(&[7u8; 32]);
    let started = Instant::now();
    let trickle = tokio::spawn(async move {
        // Each byte well within any per-read timeout; all of them well past the deadline.
        for byte in hello {
            if client.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        let mut rest = [0u8; PREAMBLE_LEN];
        let _ = client.read(&mut rest).await;
    });
    let error = wait_for(&mut real, |e| match e {
        SessionEvent::Closed { error } => Some(error.clone()),
        SessionEvent::Connected(peer) => panic!("the slow peer was let in: {peer:?}"),
        _ => None,
    })
    .await;
    let error = error.expect("an error");
    assert_eq!(error.kind, tern::session::FailureKind::Handshake, "{error}");
    assert!(error.text.contains("handshake"), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    trickle.abort();
}

// ---- item 1: nothing a peer says reaches a terminal uncleaned --------------------------------

/// Connect to a real `tern recv` and do the handshake by hand, as `name`.
async fn handshake(port: u16, name: &str) -> Wire {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (channel, _) = tern::harness::encrypted_connector(stream, &tern::harness::identity())
        .await
        .expect("the encrypted handshake");
    let mut framed = Framed::new(channel, FrameCodec);
    framed
        .send(Frame::Hello {
            capabilities: caps::FILES,
            name: name.into(),
        })
        .await
        .expect("hello");
    match framed.next().await {
        Some(Ok(Frame::Hello { .. })) => framed,
        other => panic!("expected Hello, got {other:?}"),
    }
}

#[tokio::test]
async fn a_peers_strings_reach_stderr_cleaned_and_stdout_pipes_byte_for_byte() {
    let inbox = tempfile::tempdir().expect("tmp");
    let (mut recv, port) = common::spawn_recv_into("recv", inbox.path()).expect("recv");
    let forge = "\ntern: forged line\r\u{1b}[2J\u{1b}]0;owned\u{7}\u{202e}gpj.exe\u{9b}";
    let mut fake = handshake(port, &format!("mallory{forge}")).await;
    send_all(
        &mut fake,
        vec![
            Frame::Text {
                encoding: Encoding::Utf8,
                bytes: Bytes::from(format!("hello{forge}")),
            },
            offer(1, 5, "a.bin"),
            offer(1, 5, &format!("b{forge}")),
            offer(2, 5, &format!("c{forge}")),
            sender_cancel(1, format!("cancel{forge}")),
            Frame::Bye {
                reason: format!("bye{forge}"),
            },
        ],
    )
    .await;
    let finished = recv.finish(Duration::from_secs(30)).expect("recv ends");
    let stderr = &finished.stderr;
    for bad in ['\u{1b}', '\u{7}', '\r', '\u{202e}', '\u{9b}'] {
        assert!(
            !stderr.contains(bad),
            "U+{:04X} on stderr:\n{stderr}",
            bad as u32
        );
    }
    assert!(
        !stderr.lines().any(|l| l.starts_with("tern: forged")),
        "a forged line on stderr:\n{stderr}"
    );
    assert!(
        stderr.contains("bye"),
        "the peer's reason is shown:\n{stderr}"
    );
    // A pipe is promised the message as sent.
    let stdout = finished.stdout_text().expect("utf-8");
    assert!(
        stdout.contains(&format!("hello{forge}")),
        "stdout: {stdout:?}"
    );
}
