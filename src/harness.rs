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
use crate::protocol::{Frame, FrameCodec, VERSION, caps, preamble};
use crate::session::{OfferPolicy, Role, Session, SessionConfig, SessionEvent};

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
    out.extend_from_slice(&preamble(VERSION));
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

/// Run a session in `role` whose peer sends `input` and then closes. Offers are accepted into
/// `download_dir`. Everything the session writes is read and dropped.
pub async fn feed_session(role: Role, input: Vec<u8>, download_dir: &Path) -> Ended {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let mut config = SessionConfig::new("harness", download_dir.to_path_buf());
    config.offers = OfferPolicy::AcceptAll;
    config.raw_silence = Duration::from_millis(50);
    config.handshake_timeout = Duration::from_secs(2);
    let cancel = CancellationToken::new();
    let mut session = Session::start_with(ours, None, role, config, &cancel);
    let (mut read, mut write) = tokio::io::split(theirs);
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
