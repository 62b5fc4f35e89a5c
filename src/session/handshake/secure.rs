//! Version 2: the preambles, the Noise XX handshake (each message behind a 2-byte length),
//! then `Hello` both ways inside records. docs/PROTOCOL.md, section 5.

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{
    Channel, Deadline, Identified, closed_during_handshake, expect_hello, hello, next_frame,
    read_answer, unwanted_answer,
};
use crate::crypto::Identity;
use crate::crypto::noise::{Handshake, MAX_HANDSHAKE_MESSAGE, Secured, prologue};
use crate::protocol::{Frame, VERSION, caps, preamble};
use crate::session::{SessionConfig, SessionError, Transport};

fn framed(message: &[u8], out: &mut BytesMut) {
    // Handshake messages are at most MAX_HANDSHAKE_MESSAGE bytes: the length fits.
    out.put_u16(message.len() as u16);
    out.extend_from_slice(message);
}

/// The connector's side: preamble and `e` in one write; then `e, ee, s, es` back; then `s, se`
/// and our sealed `Hello` in one write; then the listener's sealed `Hello`.
pub(super) async fn connect<S: Transport>(
    stream: &mut S,
    config: &SessionConfig,
    identity: &Identity,
    deadline: Deadline,
) -> Result<Identified, SessionError> {
    let ours = preamble(VERSION);
    // The listener answers a version 2 preamble with its own, or refuses: what it will send is
    // known before it sends it.
    let mut handshake = Handshake::initiator(identity, &prologue(&ours, &preamble(VERSION)))?;
    let mut out = BytesMut::from(&ours[..]);
    framed(&handshake.write()?, &mut out);
    deadline.bound(stream.write_all(&out)).await?;

    let mut buf = BytesMut::with_capacity(4096);
    let version = read_answer(stream, &mut buf, deadline).await?;
    if version != VERSION {
        return Err(unwanted_answer(stream, buf, VERSION, version, deadline).await);
    }
    handshake.read(&read_message(stream, &mut buf, deadline).await?)?;
    let mut out = BytesMut::new();
    framed(&handshake.write()?, &mut out);
    let mut secured = handshake.finish()?;
    let admitted = admit(config, &mut secured, &mut out)?;
    deadline.bound(stream.write_all(&out)).await?;
    admitted?;
    finish(stream, secured, buf, deadline).await
}

/// The listener's side, its version 2 preamble read (`theirs`); `buf` holds what came after.
pub(super) async fn listen<S: Transport>(
    stream: &mut S,
    mut buf: BytesMut,
    theirs: &[u8],
    config: &SessionConfig,
    identity: &Identity,
    deadline: Deadline,
) -> Result<Identified, SessionError> {
    let ours = preamble(VERSION);
    let mut handshake = Handshake::responder(identity, &prologue(theirs, &ours))?;
    handshake.read(&read_message(stream, &mut buf, deadline).await?)?;
    let mut out = BytesMut::from(&ours[..]);
    framed(&handshake.write()?, &mut out);
    deadline.bound(stream.write_all(&out)).await?;
    handshake.read(&read_message(stream, &mut buf, deadline).await?)?;
    let mut secured = handshake.finish()?;
    let mut out = BytesMut::new();
    let admitted = admit(config, &mut secured, &mut out)?;
    deadline.bound(stream.write_all(&out)).await?;
    admitted?;
    finish(stream, secured, buf, deadline).await
}

/// The peer's key is proven: our sealed `Hello` if it is the one required
/// (`--peer-fingerprint`), else a sealed `Bye` instead, and the error for this side. Either way
/// `out` is what to send: the refused peer learns nothing of us, not even our name, and takes
/// the refusal for what it is (a failed handshake, not worth trying again).
fn admit(
    config: &SessionConfig,
    secured: &mut Secured,
    out: &mut BytesMut,
) -> Result<Result<(), SessionError>, SessionError> {
    let fingerprint = secured.peer_fingerprint();
    let (frame, admitted) = match &config.trust.only {
        Some(only) if !only.matches(&fingerprint) => (
            encoded(&Frame::Bye {
                reason: "this tern was told to expect another key than yours".into(),
            })?,
            Err(SessionError::Untrusted(format!(
                "the peer's key is {fingerprint}, not {only} as --peer-fingerprint requires: \
                 nothing was sent"
            ))),
        ),
        _ => (hello(config)?, Ok(())),
    };
    secured
        .sealer
        .seal(&frame, out)
        .map_err(|e| SessionError::MalformedHandshake(e.to_string()))?;
    Ok(admitted)
}

fn encoded(frame: &Frame) -> Result<BytesMut, SessionError> {
    let mut out = BytesMut::new();
    crate::protocol::codec::encode_frame(frame, &mut out)?;
    Ok(out)
}

/// The peer's sealed `Hello`; what follows it is the session's.
async fn finish<S: Transport>(
    stream: &mut S,
    mut secured: Secured,
    mut sealed: BytesMut,
    deadline: Deadline,
) -> Result<Identified, SessionError> {
    let mut leftover = BytesMut::new();
    let frame = next_frame(
        stream,
        &mut leftover,
        Some((&mut secured.opener, &mut sealed)),
        deadline,
    )
    .await?;
    let (name, capabilities) = expect_hello(frame)?;
    Ok(Identified::Tern {
        name,
        capabilities: capabilities & caps::OURS,
        channel: Channel::Encrypted {
            secured: Box::new(secured),
            sealed,
            leftover,
        },
    })
}

/// One handshake message: a 2-byte length, then at most [`MAX_HANDSHAKE_MESSAGE`] bytes.
async fn read_message<S: Transport>(
    stream: &mut S,
    buf: &mut BytesMut,
    deadline: Deadline,
) -> Result<Vec<u8>, SessionError> {
    loop {
        if buf.len() >= 2 {
            let len = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
            if len > MAX_HANDSHAKE_MESSAGE {
                return Err(SessionError::MalformedHandshake(format!(
                    "a handshake message of {len} bytes (at most {MAX_HANDSHAKE_MESSAGE})"
                )));
            }
            if buf.len() >= 2 + len {
                buf.advance(2);
                return Ok(buf.split_to(len).to_vec());
            }
        }
        if deadline.bound(stream.read_buf(buf)).await? == 0 {
            return Err(closed_during_handshake());
        }
    }
}
