//! Identifying the peer: a tern (protocol version 2, encrypted; or version 1 with
//! `--insecure`), or a raw peer.
//!
//! The connector speaks first; the listener sends nothing until it knows what the peer is, so a
//! raw peer (nc, a Python socket) never sees tern's binary preamble. Detecting a raw peer never
//! yields tern frames in clear: a listener's silence only ever makes a raw text session, and a
//! connector never falls back from the version it asked for.
//!
//! - [`secure`]: version 2, the Noise handshake and `Hello` inside records.
//! - [`plain`]: version 1, `Hello` in clear (`--insecure`).

mod plain;
mod secure;

use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, timeout, timeout_at};
use tokio_util::codec::Decoder;

use super::{SessionConfig, SessionError, Transport};
use crate::crypto::noise::Secured;
use crate::crypto::record::Opener;
use crate::protocol::codec::encode_frame;
use crate::protocol::{
    Frame, FrameCodec, PLAIN_VERSION, PREAMBLE_LEN, PreambleCheck, VERSION, check_preamble,
    preamble,
};
use crate::text::Shown;

/// Which side of the connection we are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// We dialled: we speak first.
    Connector,
    /// We accepted: we listen first.
    Listener,
}

/// Longest display name kept from a peer, in characters.
const MAX_NAME_CHARS: usize = 64;

pub(super) enum Identified {
    Tern {
        name: Shown,
        capabilities: u32,
        channel: Channel,
    },
    Raw {
        /// Bytes the peer sent before we knew it was raw: its first text.
        first: BytesMut,
    },
}

/// What the frames after `Hello` travel in.
pub(super) enum Channel {
    /// Version 1: frames in clear. `leftover`: bytes read past the peer's `Hello`.
    Plain { leftover: BytesMut },
    /// Version 2: frames inside records.
    Encrypted {
        /// Boxed: the two halves' AES key schedules are large.
        secured: Box<Secured>,
        /// Records read past the one that held the peer's `Hello`, not opened yet.
        sealed: BytesMut,
        /// Opened past the peer's `Hello`: the start of its first frames.
        leftover: BytesMut,
    },
}

pub(super) async fn identify<S: Transport>(
    stream: &mut S,
    role: Role,
    config: &SessionConfig,
) -> Result<Identified, SessionError> {
    if config.raw {
        return Ok(Identified::Raw {
            first: BytesMut::new(),
        });
    }
    // One deadline for the whole handshake, not one per read: a peer sending a byte a second
    // must not hold a listener as long as it likes.
    let deadline = Deadline(
        Instant::now() + config.handshake_timeout,
        config.handshake_timeout,
    );
    match role {
        Role::Listener => listen_side(stream, config, deadline).await,
        Role::Connector => match config.security.identity() {
            Some(identity) => secure::connect(stream, config, identity, deadline).await,
            None => plain::connect(stream, config, deadline).await,
        },
    }
}

/// When the handshake must be over, and how long it was given.
#[derive(Clone, Copy)]
pub(super) struct Deadline(Instant, Duration);

impl Deadline {
    fn passed(self) -> SessionError {
        SessionError::HandshakeTimeout(self.1)
    }

    /// `io`, or the handshake's timeout error once the deadline passes.
    async fn bound<T>(
        self,
        io: impl Future<Output = std::io::Result<T>>,
    ) -> Result<T, SessionError> {
        Ok(timeout_at(self.0, io).await.map_err(|_| self.passed())??)
    }
}

async fn listen_side<S: Transport>(
    stream: &mut S,
    config: &SessionConfig,
    deadline: Deadline,
) -> Result<Identified, SessionError> {
    let mut buf = BytesMut::with_capacity(4096);
    // A connecting tern speaks at once; silence means someone waiting to read (nc).
    match timeout(config.raw_silence, stream.read_buf(&mut buf)).await {
        Err(_) | Ok(Ok(0)) => return Ok(Identified::Raw { first: buf }),
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(e.into()),
    }
    let version = loop {
        match check_preamble(&buf) {
            PreambleCheck::NotTern => return Ok(Identified::Raw { first: buf }),
            PreambleCheck::Tern { version } => break version,
            PreambleCheck::NeedMore => {
                match timeout_at(deadline.0, stream.read_buf(&mut buf)).await {
                    // No text peer starts with these bytes: a tern too slow to finish.
                    Err(_) => return Err(deadline.passed()),
                    // A prefix of the magic and then the end: still just bytes.
                    Ok(Ok(0)) => return Ok(Identified::Raw { first: buf }),
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(e.into()),
                }
            }
        }
    };
    let theirs = buf.split_to(PREAMBLE_LEN);
    match (version, config.security.identity()) {
        (VERSION, Some(identity)) => {
            secure::listen(stream, buf, &theirs, config, identity, deadline).await
        }
        (PLAIN_VERSION, None) => plain::listen(stream, buf, config, deadline).await,
        (PLAIN_VERSION, Some(_)) => {
            refuse(
                stream,
                "this tern encrypts every session and does not speak plaintext: start yours \
                 without --insecure (or both with it)",
                deadline,
            )
            .await;
            Err(SessionError::Refusing(
                "refused a tern that connected without encryption (--insecure): start this one \
                 with --insecure to talk to it"
                    .into(),
            ))
        }
        (VERSION, None) => {
            refuse(
                stream,
                "this tern runs with --insecure and speaks plaintext only: start yours with \
                 --insecure too (or neither)",
                deadline,
            )
            .await;
            Err(SessionError::Refusing(
                "refused a tern that connected with encryption, as this one runs with \
                 --insecure: start it without --insecure to talk to it"
                    .into(),
            ))
        }
        (theirs, identity) => {
            let ours = if identity.is_some() {
                VERSION
            } else {
                PLAIN_VERSION
            };
            refuse(
                stream,
                &format!(
                    "protocol version mismatch: this tern speaks version {ours}, you speak \
                     version {theirs}"
                ),
                deadline,
            )
            .await;
            Err(SessionError::VersionMismatch { ours, theirs })
        }
    }
}

/// Tell a connecting tern why it is turned away, in the one form every version reads: a
/// version 1 preamble and a `Bye`, in clear (there is no channel yet). Best effort: the error
/// on this side is what matters.
async fn refuse<S: Transport>(stream: &mut S, reason: &str, deadline: Deadline) {
    let mut out = BytesMut::new();
    out.extend_from_slice(&preamble(PLAIN_VERSION));
    if encode_frame(
        &Frame::Bye {
            reason: reason.to_string(),
        },
        &mut out,
    )
    .is_ok()
    {
        let _ = deadline.bound(stream.write_all(&out)).await;
    }
    let _ = deadline.bound(stream.shutdown()).await;
}

/// The connector's read of the listener's preamble: its version, with the bytes after it
/// left in `buf`.
async fn read_answer<S: Transport>(
    stream: &mut S,
    buf: &mut BytesMut,
    deadline: Deadline,
) -> Result<u16, SessionError> {
    let version = loop {
        match check_preamble(buf) {
            PreambleCheck::NotTern => return Err(SessionError::NotTern),
            PreambleCheck::Tern { version } => break version,
            PreambleCheck::NeedMore => match deadline.bound(stream.read_buf(buf)).await? {
                0 if buf.is_empty() => {
                    return Err(SessionError::MalformedHandshake(
                        "the peer closed the connection without answering".into(),
                    ));
                }
                0 => return Err(SessionError::NotTern),
                _ => {}
            },
        }
    };
    buf.advance(PREAMBLE_LEN);
    Ok(version)
}

/// The listener answered with a version we did not ask for. A refusal (a version 1 `Bye`) is
/// passed on; anything else is a mismatch. Never a fallback: a connector that asked for
/// version 2 does not go on in plaintext.
async fn unwanted_answer<S: Transport>(
    stream: &mut S,
    mut buf: BytesMut,
    ours: u16,
    theirs: u16,
    deadline: Deadline,
) -> SessionError {
    if theirs == PLAIN_VERSION
        && let Ok(Frame::Bye { reason }) = read_frame(stream, &mut buf, deadline).await
    {
        return SessionError::Refused(reason);
    }
    SessionError::VersionMismatch { ours, theirs }
}

/// One plaintext frame from `buf`, reading more as needed.
async fn read_frame<S: Transport>(
    stream: &mut S,
    buf: &mut BytesMut,
    deadline: Deadline,
) -> Result<Frame, SessionError> {
    next_frame(stream, buf, None, deadline).await
}

/// The next frame from `plain`. With `sealed` (the records read and their opener), what is
/// read goes there and is opened into `plain`; without, it is read into `plain` itself.
async fn next_frame<S: Transport>(
    stream: &mut S,
    plain: &mut BytesMut,
    mut sealed: Option<(&mut Opener, &mut BytesMut)>,
    deadline: Deadline,
) -> Result<Frame, SessionError> {
    let mut codec = FrameCodec;
    loop {
        match codec.decode(plain) {
            Ok(Some(frame)) => return Ok(frame),
            Ok(None) => {}
            Err(e) => return Err(SessionError::MalformedHandshake(e.to_string())),
        }
        let into = match &mut sealed {
            Some((opener, input)) => {
                let opened = opener
                    .open(input, plain)
                    .map_err(|e| SessionError::MalformedHandshake(e.to_string()))?;
                if opened {
                    continue;
                }
                &mut **input
            }
            None => &mut *plain,
        };
        if deadline.bound(stream.read_buf(into)).await? == 0 {
            return Err(closed_during_handshake());
        }
    }
}

fn closed_during_handshake() -> SessionError {
    SessionError::MalformedHandshake("connection closed during the handshake".into())
}

/// The peer's first frame must be its `Hello`: its name and capabilities.
fn expect_hello(frame: Frame) -> Result<(Shown, u32), SessionError> {
    match frame {
        Frame::Hello { capabilities, name } => Ok((clean_name(&name), capabilities)),
        Frame::Bye { reason } => Err(SessionError::Refused(reason)),
        other => Err(SessionError::MalformedHandshake(format!(
            "expected Hello, got {}",
            other.kind()
        ))),
    }
}

/// Our `Hello`, encoded.
fn hello(config: &SessionConfig) -> Result<BytesMut, SessionError> {
    let mut out = BytesMut::with_capacity(64);
    encode_frame(
        &Frame::Hello {
            capabilities: crate::protocol::caps::OURS,
            name: our_name(&config.name),
        },
        &mut out,
    )?;
    Ok(out)
}

/// Our name as it goes on the wire: bounded, like the peer's.
pub(super) fn our_name(name: &str) -> String {
    name.chars().take(MAX_NAME_CHARS).collect()
}

/// A peer's name is shown on screen: cleaned for a terminal, bounded, never blank.
pub(super) fn clean_name(name: &str) -> Shown {
    let cleaned = Shown::new(name).truncated(MAX_NAME_CHARS);
    let trimmed = cleaned.trim();
    Shown::new(if trimmed.is_empty() { "peer" } else { trimmed })
}

#[cfg(test)]
mod tests {
    use super::clean_name;

    #[test]
    fn peer_names_lose_escape_sequences() {
        assert_eq!(clean_name("bob\u{1b}[2J").as_str(), "bob[2J");
        assert_eq!(clean_name("   ").as_str(), "peer");
        assert_eq!(clean_name(" ana\n").as_str(), "ana");
        assert_eq!(clean_name(&"x".repeat(500)).len(), 64);
    }
}
