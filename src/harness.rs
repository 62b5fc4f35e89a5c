//! Entry points that feed untrusted bytes to tern: the frame decoder, the handshake, and a
//! whole session over an in-memory pipe. Used by the fuzz targets (`fuzz/`) and the property
//! tests (`tests/robustness.rs`). Whatever the bytes, each returns; a panic or a hang is a bug.

use std::path::Path;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;

use crate::protocol::codec::encode_frame;
use crate::protocol::{Frame, FrameCodec, PLAIN_VERSION, caps, preamble};
use crate::session::{OfferPolicy, Role, Security, Session, SessionConfig, SessionEvent};

/// A new identity for a test's or a fuzz run's session (a system without randomness cannot
/// run them at all).
pub fn identity() -> std::sync::Arc<crate::crypto::Identity> {
    std::sync::Arc::new(
        crate::crypto::Identity::generate().expect("a key pair from the system's randomness"),
    )
}

/// Decode frames from `data` until it runs out or is found corrupt; the number decoded.
pub fn decode_all(data: &[u8]) -> usize {
    let mut codec = FrameCodec;
    let mut buf = BytesMut::from(data);
    let mut frames = 0;
    while let Ok(Some(_)) = codec.decode(&mut buf) {
        frames += 1;
    }
    frames
}

/// What a valid connecting tern sends first, followed by `rest`.
pub fn hello_then(rest: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    out.extend_from_slice(&preamble(PLAIN_VERSION));
    let hello = Frame::Hello {
        capabilities: caps::OURS,
        name: "fuzz".into(),
    };
    // A fixed, small frame: encoding cannot fail.
    let _ = encode_frame(&hello, &mut out);
    out.extend_from_slice(rest);
    out.to_vec()
}

/// How a fed session ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// It closed, with this error if any.
    Closed(Option<String>),
    /// It did not end within the deadline after its input ended: a hang.
    Hung,
}

/// What the fed bytes are to the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    /// The peer's whole byte stream, to a session speaking version 2 as by default: every
    /// handshake path (the preamble, Noise messages, refusals, raw detection) is reachable.
    Bytes,
    /// The peer's whole byte stream, to an `--insecure` session (version 1, frames in clear):
    /// with [`hello_then`], the frames are what is fed.
    Plain,
    /// The peer's frames inside the encrypted channel: the harness runs an honest handshake
    /// (as the connector: use [`Role::Listener`]), then seals the peer's `Hello` and the input
    /// into records.
    Sealed,
}

/// Run a session in `role` whose peer sends `input` (as `wire` says) and then closes. Offers
/// are accepted into `download_dir`. Everything the session writes is read and dropped.
pub async fn feed_session(role: Role, wire: Wire, input: Vec<u8>, download_dir: &Path) -> Ended {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let mut config = SessionConfig::new("harness", download_dir.to_path_buf(), identity());
    if wire == Wire::Plain {
        config.security = Security::Insecure;
    }
    config.offers = OfferPolicy::AcceptAll;
    config.raw_silence = Duration::from_millis(50);
    config.handshake_timeout = Duration::from_secs(2);
    let cancel = CancellationToken::new();
    let mut session = Session::start_with(ours, None, role, config, &cancel);
    let (writer, drain) = if wire == Wire::Sealed {
        let Ok((channel, _)) = encrypted_connector(theirs, &identity()).await else {
            cancel.cancel();
            let _ = session.task.await;
            return Ended::Closed(Some("the honest handshake failed".into()));
        };
        let mut stream = BytesMut::new();
        let _ = encode_frame(
            &Frame::Hello {
                capabilities: caps::OURS,
                name: "fuzz".into(),
            },
            &mut stream,
        );
        stream.extend_from_slice(&input);
        pump(tokio::io::split(channel), stream.to_vec())
    } else {
        pump(tokio::io::split(theirs), input)
    };
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(event) = session.events.recv().await {
            if let SessionEvent::Closed { error } = event {
                return Ended::Closed(error.map(|e| e.to_string()));
            }
        }
        Ended::Closed(None)
    })
    .await
    .unwrap_or(Ended::Hung);
    cancel.cancel();
    let _ = session.task.await;
    writer.abort();
    drain.abort();
    ended
}

/// Write `input` then close our side; read and drop whatever comes back.
fn pump<R, W>(
    (mut read, mut write): (R, W),
    input: Vec<u8>,
) -> (tokio::task::JoinHandle<()>, tokio::task::JoinHandle<()>)
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
    W: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let writer = tokio::spawn(async move {
        let _ = write.write_all(&input).await;
        let _ = write.shutdown().await;
    });
    let drain = tokio::spawn(async move {
        let mut sink = vec![0u8; 64 * 1024];
        while let Ok(n) = read.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    });
    (writer, drain)
}

/// Run `future` to completion on one shared single-threaded runtime (fuzz targets call this
/// once per input; building a runtime each time would dominate the run).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            // No runtime means no harness at all: nothing sensible to return instead.
            .expect("a tokio runtime for the harness")
    })
    .block_on(future)
}

/// A version 2 handshake run to its end between `connector` and `listener`, each with its
/// own prologue (equal, unless a test wants them to differ).
pub fn handshake(
    connector: &crate::crypto::Identity,
    listener: &crate::crypto::Identity,
    prologues: (&[u8], &[u8]),
) -> Result<
    (crate::crypto::noise::Secured, crate::crypto::noise::Secured),
    crate::crypto::noise::NoiseError,
> {
    use crate::crypto::noise::Handshake;
    let mut a = Handshake::initiator(connector, prologues.0)?;
    let mut b = Handshake::responder(listener, prologues.1)?;
    b.read(&a.write()?)?;
    a.read(&b.write()?)?;
    b.read(&a.write()?)?;
    Ok((a.finish()?, b.finish()?))
}

/// Two ends of a finished version 2 handshake between two new identities.
pub fn secured_pair() -> (crate::crypto::noise::Secured, crate::crypto::noise::Secured) {
    use crate::crypto::Identity;
    let key = || Identity::generate().expect("a key pair from the system's randomness");
    let p = crate::crypto::noise::prologue(b"connector", b"listener");
    handshake(&key(), &key(), (&p, &p)).expect("a handshake between two honest sides")
}

/// Untrusted bytes into a record opener, in pieces whose sizes the bytes choose: whatever comes
/// in, no panic, and no more plaintext than came in. With `sealed`, the input is first sealed
/// by the honest side and then bits of it are flipped where the input says, so the fuzzer works
/// past the tag check's front door. Returns the plaintext length.
pub fn open_records(data: &[u8], sealed: bool) -> usize {
    let (mut a, mut b) = secured_pair();
    let mut wire = BytesMut::new();
    if sealed {
        let (flips, payload) = data.split_at(data.len().min(4));
        if a.sealer.seal(payload, &mut wire).is_err() {
            return 0;
        }
        for &f in flips {
            if !wire.is_empty() {
                let at = usize::from(f) * 7919 % wire.len();
                wire[at] ^= f | 1;
            }
        }
    } else {
        wire.extend_from_slice(data);
    }
    let all = wire.split();
    let mut input = BytesMut::new();
    let mut plain = BytesMut::new();
    let mut at = 0;
    let mut step = 1;
    while at < all.len() {
        let end = (at + step).min(all.len());
        input.extend_from_slice(&all[at..end]);
        at = end;
        step = step * 3 % 4099 + 1;
        loop {
            match b.opener.open(&mut input, &mut plain) {
                Ok(true) => {}
                Ok(false) => break,
                Err(_) => return plain.len(),
            }
        }
    }
    assert!(plain.len() <= all.len(), "more plaintext than bytes in");
    plain.len()
}

/// Untrusted handshake messages (each a 2-byte length and its bytes, as on the wire) into a
/// responder, then, if it got that far, into an initiator's second step: errors, never panics.
pub fn handshake_messages(data: &[u8]) {
    use crate::crypto::Identity;
    use crate::crypto::noise::{Handshake, prologue};
    let Ok(identity) = Identity::generate() else {
        return;
    };
    let p = prologue(b"c", b"l");
    let (Ok(mut responder), Ok(mut initiator)) = (
        Handshake::responder(&identity, &p),
        Handshake::initiator(&identity, &p),
    ) else {
        return;
    };
    let _ = initiator.write();
    let mut rest = data;
    let mut turn = 0;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let message = &rest[2..2 + len];
        rest = &rest[2 + len..];
        let side = if turn % 2 == 0 {
            &mut responder
        } else {
            &mut initiator
        };
        if side.read(message).is_err() {
            return;
        }
        if side.is_my_turn() {
            let _ = side.write();
        }
        turn += 1;
    }
}

/// A hand-driven peer's end of an encrypted session: frames written here are sealed into
/// records, frames read are opened from them.
pub type Encrypted<S> = tokio::io::Join<
    crate::crypto::stream::EncryptedReader<tokio::io::ReadHalf<S>>,
    crate::crypto::stream::EncryptedWriter<tokio::io::WriteHalf<S>>,
>;

/// Run the version 2 handshake by hand as the connector over `stream`, up to (not including)
/// the `Hello`s, which the caller exchanges as frames on the returned stream. Tests use this
/// to speak the protocol frame by frame, and to lie, inside the encrypted channel. Also the
/// peer's key.
pub async fn encrypted_connector<S>(
    mut stream: S,
    identity: &crate::crypto::Identity,
) -> std::io::Result<(Encrypted<S>, [u8; 32])>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use crate::crypto::noise::{Handshake, prologue};
    use crate::protocol::{PREAMBLE_LEN, VERSION};
    let ours = preamble(VERSION);
    let mut handshake =
        Handshake::initiator(identity, &prologue(&ours, &ours)).map_err(std::io::Error::other)?;
    let mut out = ours.to_vec();
    put_message(&handshake.write().map_err(std::io::Error::other)?, &mut out);
    stream.write_all(&out).await?;
    let mut theirs = [0u8; PREAMBLE_LEN];
    stream.read_exact(&mut theirs).await?;
    if theirs != ours {
        return Err(std::io::Error::other(format!(
            "the listener answered with the preamble {theirs:02x?}"
        )));
    }
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut message).await?;
    handshake.read(&message).map_err(std::io::Error::other)?;
    let mut out = Vec::new();
    put_message(&handshake.write().map_err(std::io::Error::other)?, &mut out);
    stream.write_all(&out).await?;
    let secured = handshake.finish().map_err(std::io::Error::other)?;
    let (reader, writer) =
        crate::crypto::stream::split(stream, secured.sealer, secured.opener, BytesMut::new());
    Ok((tokio::io::join(reader, writer), secured.peer_key))
}

fn put_message(message: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(message.len() as u16).to_be_bytes());
    out.extend_from_slice(message);
}
