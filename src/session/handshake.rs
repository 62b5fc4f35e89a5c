//! Identifying the peer: tern preamble + `Hello` both ways, or a raw peer.
//!
//! The connector speaks first; the listener sends nothing until it knows what the peer is, so a
//! raw peer (nc, a Python socket) never sees tern's binary preamble.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, timeout, timeout_at};
use tokio_util::codec::Decoder;

use super::{SessionConfig, SessionError, Transport};
use crate::protocol::codec::encode_frame;
use crate::protocol::{
    Frame, FrameCodec, PREAMBLE_LEN, PreambleCheck, VERSION, caps, check_preamble, preamble,
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
        /// Bytes read past the peer's `Hello`: the start of its first frames.
        leftover: BytesMut,
    },
    Raw {
        /// Bytes the peer sent before we knew it was raw: its first text.
        first: BytesMut,
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
        Role::Connector => connect_side(stream, config, deadline).await,
    }
}

/// When the handshake must be over, and how long it was given.
#[derive(Clone, Copy)]
struct Deadline(Instant, Duration);

impl Deadline {
    fn passed(self) -> SessionError {
        SessionError::HandshakeTimeout(self.1)
    }
}

/// Our name as it goes on the wire: bounded, like the peer's.
pub(super) fn our_name(name: &str) -> String {
    name.chars().take(MAX_NAME_CHARS).collect()
}

fn hello_bytes(config: &SessionConfig) -> Result<BytesMut, SessionError> {
    let mut out = BytesMut::with_capacity(PREAMBLE_LEN + 64);
    out.extend_from_slice(&preamble(VERSION));
    let name = our_name(&config.name);
    encode_frame(
        &Frame::Hello {
            capabilities: caps::OURS,
            name,
        },
        &mut out,
    )?;
    Ok(out)
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
    if version != VERSION {
        let reason = format!(
            "protocol version mismatch: this tern speaks version {VERSION}, you speak version {version}"
        );
        let mut out = BytesMut::new();
        out.extend_from_slice(&preamble(VERSION));
        encode_frame(&Frame::Bye { reason }, &mut out)?;
        // Best effort: the error below is what matters on this side.
        let _ = stream.write_all(&out).await;
        let _ = stream.shutdown().await;
        return Err(SessionError::VersionMismatch {
            ours: VERSION,
            theirs: version,
        });
    }
    buf.advance(PREAMBLE_LEN);
    let (name, capabilities) = match read_frame(stream, &mut buf, deadline).await? {
        Frame::Hello { capabilities, name } => (name, capabilities),
        other => {
            return Err(SessionError::MalformedHandshake(format!(
                "expected Hello, got {}",
                other.kind()
            )));
        }
    };
    timeout_at(deadline.0, stream.write_all(&hello_bytes(config)?))
        .await
        .map_err(|_| deadline.passed())??;
    Ok(Identified::Tern {
        name: clean_name(&name),
        capabilities: capabilities & caps::OURS,
        leftover: buf,
    })
}

async fn connect_side<S: Transport>(
    stream: &mut S,
    config: &SessionConfig,
    deadline: Deadline,
) -> Result<Identified, SessionError> {
    timeout_at(deadline.0, stream.write_all(&hello_bytes(config)?))
        .await
        .map_err(|_| deadline.passed())??;
    let mut buf = BytesMut::with_capacity(4096);
    let version = loop {
        match check_preamble(&buf) {
            PreambleCheck::NotTern => return Err(SessionError::NotTern),
            PreambleCheck::Tern { version } => break version,
            PreambleCheck::NeedMore => {
                match timeout_at(deadline.0, stream.read_buf(&mut buf)).await {
                    Err(_) => return Err(deadline.passed()),
                    Ok(Ok(0)) if buf.is_empty() => {
                        return Err(SessionError::MalformedHandshake(
                            "the peer closed the connection without answering".into(),
                        ));
                    }
                    Ok(Ok(0)) => return Err(SessionError::NotTern),
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(e.into()),
                }
            }
        }
    };
    if version != VERSION {
        return Err(SessionError::VersionMismatch {
            ours: VERSION,
            theirs: version,
        });
    }
    buf.advance(PREAMBLE_LEN);
    match read_frame(stream, &mut buf, deadline).await? {
        Frame::Hello { capabilities, name } => Ok(Identified::Tern {
            name: clean_name(&name),
            capabilities: capabilities & caps::OURS,
            leftover: buf,
        }),
        Frame::Bye { reason } => Err(SessionError::Refused(reason)),
        other => Err(SessionError::MalformedHandshake(format!(
            "expected Hello, got {}",
            other.kind()
        ))),
    }
}

async fn read_frame<S: Transport>(
    stream: &mut S,
    buf: &mut BytesMut,
    deadline: Deadline,
) -> Result<Frame, SessionError> {
    let mut codec = FrameCodec;
    loop {
        match codec.decode(buf) {
            Ok(Some(frame)) => return Ok(frame),
            Ok(None) => {}
            Err(e) => return Err(SessionError::MalformedHandshake(e.to_string())),
        }
        match timeout_at(deadline.0, stream.read_buf(buf)).await {
            Err(_) => return Err(deadline.passed()),
            Ok(Ok(0)) => {
                return Err(SessionError::MalformedHandshake(
                    "connection closed during the handshake".into(),
                ));
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.into()),
        }
    }
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
