//! A raw peer: no framing, plain bytes both ways (nc, a Python socket script).
//!
//! Incoming bytes become one message per line, or whatever arrived before the peer paused or
//! closed. Each is shown as UTF-8 if it is valid UTF-8, else GBK, unless an encoding is forced;
//! without a forced encoding we answer in the encoding last detected from the peer.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::actor::MAX_TEXT_LEN;
use super::outbox::EventQueue;
use super::{Command, SessionConfig, SessionEvent, Transport};
use crate::text::{self, Encoding, PeerText, Shown};
use crate::transfer::{Progress, TransferId, TransferState, TransferUpdate};

/// A partial line is shown once the peer has paused this long.
const PAUSE: Duration = Duration::from_millis(100);
/// A partial line this long is shown without waiting for its end.
const MAX_LINE: usize = 64 * 1024;

struct RawText {
    forced: Option<Encoding>,
    /// What we answer in: forced, else detected, else UTF-8.
    reply: Encoding,
    pending: BytesMut,
}

impl RawText {
    /// Learn the peer's encoding from bytes just read, before any line is complete, so a reply
    /// already waiting goes out in the right encoding.
    fn detect(&mut self, events: &mut EventQueue) {
        if self.forced.is_some() {
            return;
        }
        if let Some(found) = text::detect_prefix(&self.pending)
            && found != self.reply
        {
            self.reply = found;
            events.push(SessionEvent::EncodingChanged(found));
        }
    }

    fn emit(&self, bytes: &[u8], events: &mut EventQueue) {
        let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        let encoding = self
            .forced
            .unwrap_or_else(|| text::detect(bytes).unwrap_or(Encoding::Utf8));
        let decoded = text::decode(bytes, encoding);
        events.push(SessionEvent::Text {
            text: PeerText::new(decoded.text),
            encoding,
            lossy: decoded.lossy,
        });
    }

    /// Emit every complete line; with `all`, the partial rest too.
    fn emit_lines(&mut self, all: bool, events: &mut EventQueue) {
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line = self.pending.split_to(end + 1);
            self.emit(&line, events);
        }
        if (all || self.pending.len() >= MAX_LINE) && !self.pending.is_empty() {
            let rest = self.pending.split();
            self.emit(&rest, events);
        }
    }
}

pub(super) async fn run<S: Transport>(
    stream: S,
    first: BytesMut,
    config: &SessionConfig,
    mut commands: mpsc::Receiver<Command>,
    events: &mut EventQueue,
    cancel: CancellationToken,
) -> Option<String> {
    let (mut read, mut write) = tokio::io::split(stream);
    let mut text = RawText {
        forced: config.encoding,
        reply: config.encoding.unwrap_or_default(),
        pending: first,
    };
    text.detect(events);
    text.emit_lines(false, events);
    let mut out = BytesMut::new();
    let mut last_read = tokio::time::Instant::now();
    // Every handle to the session is gone: nothing more will be sent. Like nc at the end of its
    // input, the write side is shut once `out` is written (a peer reading until EOF needs
    // that), and the peer is read until it closes.
    let mut input_ended = false;
    let mut write_shut = false;
    let result = loop {
        if input_ended && !write_shut && out.is_empty() {
            write_shut = true;
            if let Err(e) = write.shutdown().await {
                break Some(format!("connection error: {e}"));
            }
        }
        let backed_up = events.is_backed_up();
        tokio::select! {
            biased;
            () = cancel.cancelled() => break Some("cancelled".to_string()),
            alive = events.send_one(), if events.has_pending() => {
                if !alive {
                    break None;
                }
            }
            command = commands.recv(), if !backed_up && !input_ended => match command {
                None => input_ended = true,
                Some(Command::Close) => break None,
                Some(command) => on_command(command, &mut text, &mut out, events),
            },
            n = read.read_buf(&mut text.pending), if !backed_up => match n {
                Ok(0) => {
                    text.emit_lines(true, events);
                    break None;
                }
                Ok(_) => {
                    last_read = tokio::time::Instant::now();
                    text.detect(events);
                    text.emit_lines(false, events);
                }
                Err(e) => {
                    text.emit_lines(true, events);
                    break Some(format!("connection error: {e}"));
                }
            },
            written = write.write(&out), if !out.is_empty() => match written {
                Ok(n) => out.advance(n),
                Err(e) => break Some(format!("connection error: {e}")),
            },
            () = tokio::time::sleep_until(last_read + PAUSE), if !text.pending.is_empty() => {
                text.emit_lines(true, events);
            }
        }
    };
    // Best effort: the peer may already be gone.
    let flush = async {
        if write_shut {
            return Ok(());
        }
        write.write_all(&out).await?;
        write.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(3), flush).await;
    result
}

fn on_command(command: Command, text: &mut RawText, out: &mut BytesMut, events: &mut EventQueue) {
    match command {
        Command::Text(line) => {
            let bytes = text::encode(&line, text.reply);
            if bytes.len() > MAX_TEXT_LEN {
                events.push(SessionEvent::Notice(Shown::new(format!(
                    "message not sent: {} bytes is over the {MAX_TEXT_LEN} byte limit",
                    bytes.len()
                ))));
                return;
            }
            out.extend_from_slice(&bytes);
            out.extend_from_slice(b"\n");
        }
        Command::Offer(files) => {
            let reason = "files cannot be sent to a raw peer (it speaks no tern protocol)";
            events.push(SessionEvent::Notice(Shown::new(reason)));
            for (i, file) in files.into_iter().enumerate() {
                events.push(SessionEvent::Transfer(TransferUpdate {
                    id: TransferId::outgoing(u32::try_from(i + 1).unwrap_or(u32::MAX)),
                    path: Shown::new(file.rel_path),
                    saved_as: None,
                    hash: None,
                    state: TransferState::failed(reason),
                    progress: Progress {
                        done: 0,
                        total: file.size,
                    },
                }));
            }
        }
        Command::SetEncoding(encoding) => {
            text.forced = Some(encoding);
            text.reply = encoding;
            events.push(SessionEvent::EncodingChanged(encoding));
        }
        Command::Accept(_) | Command::Reject(..) | Command::Cancel(_) => {
            events.push(SessionEvent::Notice(Shown::new(
                "a raw peer has no file transfers",
            )));
        }
        // A raw peer is known by its address; there is no name to tell it.
        Command::SetName(_) | Command::Trust | Command::Close => {}
    }
}
