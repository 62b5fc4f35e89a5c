//! Version 1 (`--insecure`): the preambles, then `Hello` both ways, all in clear.

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

use super::{Channel, Deadline, Identified, expect_hello, hello, read_answer, read_frame};
use crate::protocol::{PLAIN_VERSION, preamble};
use crate::session::{SessionConfig, SessionError, Transport};

/// Our preamble and `Hello`, in one write.
fn opening(config: &SessionConfig) -> Result<BytesMut, SessionError> {
    let mut out = BytesMut::from(&preamble(PLAIN_VERSION)[..]);
    out.extend_from_slice(&hello(config)?);
    Ok(out)
}

/// The connector's version 1 preamble is read; `buf` holds what came after it.
pub(super) async fn listen<S: Transport>(
    stream: &mut S,
    mut buf: BytesMut,
    config: &SessionConfig,
    deadline: Deadline,
) -> Result<Identified, SessionError> {
    let (name, capabilities) = expect_hello(read_frame(stream, &mut buf, deadline).await?)?;
    deadline.bound(stream.write_all(&opening(config)?)).await?;
    Ok(Identified::Tern {
        name,
        capabilities: capabilities & crate::protocol::caps::OURS,
        channel: Channel::Plain { leftover: buf },
    })
}

pub(super) async fn connect<S: Transport>(
    stream: &mut S,
    config: &SessionConfig,
    deadline: Deadline,
) -> Result<Identified, SessionError> {
    deadline.bound(stream.write_all(&opening(config)?)).await?;
    let mut buf = BytesMut::with_capacity(4096);
    let version = read_answer(stream, &mut buf, deadline).await?;
    if version != PLAIN_VERSION {
        return Err(SessionError::VersionMismatch {
            ours: PLAIN_VERSION,
            theirs: version,
        });
    }
    let (name, capabilities) = expect_hello(read_frame(stream, &mut buf, deadline).await?)?;
    Ok(Identified::Tern {
        name,
        capabilities: capabilities & crate::protocol::caps::OURS,
        channel: Channel::Plain { leftover: buf },
    })
}
