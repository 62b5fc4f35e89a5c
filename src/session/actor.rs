//! The session actor: the only owner of the socket. One `select!` loop serves, in order of
//! priority: cancellation, events to the UI, commands, frames from the peer, writing out, and
//! the keepalive timer. Control frames are written before the next file chunk, and a chunk is
//! read from disk only when the output buffer is nearly empty, so chat never waits behind more
//! than one chunk and memory does not grow with file size.

use std::time::Duration;

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};
use futures::{FutureExt, StreamExt};
use tokio::io::WriteHalf;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::files::{Transfers, push_frame};
use super::handshake::{self, Channel, Identified, Role};
use super::inbound::Inbound;
use super::outbox::EventQueue;
use super::socket::UnsentLimit;
use super::{
    Command, Failure, FailureKind, PeerInfo, PeerKey, SessionConfig, SessionError, SessionEvent,
    Transport, raw, trust,
};
use crate::crypto::known::Verdict;
use crate::crypto::stream::EncryptedWriter;
use crate::protocol::{Frame, ProtocolError, caps};
use crate::text::{self, Encoding, PeerText, Shown};
use crate::transfer::pool::BufferPool;

/// Below this many unwritten bytes, the next file chunk is read in.
const LOW_WATER: usize = 64 * 1024;
/// Above this many unwritten bytes (control frames a peer provoked without reading them), stop
/// reading from the peer until it drains.
const HIGH_WATER: usize = 8 * 1024 * 1024;
/// Longest text message, in bytes once encoded.
pub(super) const MAX_TEXT_LEN: usize = 1024 * 1024;
/// Most frames handled in one turn of the loop before others get theirs.
const BURST: usize = 64;
/// How long a closing session waits for the peer to close its side.
const CLOSE_GRACE: Duration = Duration::from_secs(3);

/// The connection an actor runs over: the byte stream, where it leads, and the socket knob
/// for the unsent queue (none for a stream that is not a socket).
pub(super) struct Link<S> {
    pub stream: S,
    pub addr: Option<std::net::SocketAddr>,
    pub unsent: UnsentLimit,
}

pub(super) async fn run<S: Transport>(
    link: Link<S>,
    role: Role,
    config: SessionConfig,
    commands: mpsc::Receiver<Command>,
    mut queue: EventQueue,
    cancel: CancellationToken,
) {
    let Link {
        mut stream,
        addr,
        unsent,
    } = link;
    let identified = tokio::select! {
        r = handshake::identify(&mut stream, role, &config) => r,
        () = cancel.cancelled() => Err(SessionError::Io(std::io::Error::new(
            std::io::ErrorKind::Interrupted, "cancelled before the peer was identified"))),
    };
    match identified {
        Err(e) => {
            tracing::warn!(error = %e, "handshake failed");
            let kind = match e {
                SessionError::Untrusted(_) => FailureKind::Untrusted,
                _ => FailureKind::Handshake,
            };
            queue.push(SessionEvent::Closed {
                error: Some(Failure::new(kind, e.to_string())),
            });
        }
        Ok(Identified::Tern {
            name,
            capabilities,
            channel,
        }) => {
            let parts = Parts {
                config,
                capabilities,
                commands,
                events: queue,
                cancel,
                unsent,
            };
            queue = serve_tern(stream, addr, name, channel, parts).await;
        }
        Ok(Identified::Raw { first }) => {
            tracing::info!(?addr, "raw peer");
            queue.push(SessionEvent::Connected(PeerInfo {
                name: Shown::new(addr.map_or_else(|| "raw peer".to_string(), |a| a.to_string())),
                addr,
                raw: true,
                key: None,
            }));
            let error = raw::run(stream, first, &config, commands, &mut queue, cancel).await;
            queue.push(SessionEvent::Closed {
                error: error.map(|e| Failure::new(FailureKind::Lost, e)),
            });
        }
    }
    queue.drain().await;
}

/// A tern peer, identified: its frames in clear or inside records, and what its key means.
async fn serve_tern<S: Transport>(
    stream: S,
    addr: Option<std::net::SocketAddr>,
    name: Shown,
    channel: Channel,
    parts: Parts,
) -> EventQueue {
    match channel {
        Channel::Plain { leftover } => {
            tracing::info!(peer = %name, ?addr, capabilities = parts.capabilities, "tern peer identified (plaintext)");
            let info = PeerInfo {
                name,
                addr,
                raw: false,
                key: None,
            };
            let (read, write) = tokio::io::split(stream);
            let reader = Inbound::new(read, leftover, BufferPool::default());
            FramedActor::new(parts, reader, write).serve(info).await
        }
        Channel::Encrypted {
            secured,
            sealed,
            leftover,
        } => {
            let trust = &parts.config.trust;
            let key = trust::judge(trust, &name, addr, &secured);
            tracing::info!(peer = %name, ?addr, capabilities = parts.capabilities, fingerprint = %key.fingerprint, "tern peer identified (encrypted)");
            trust::remember(trust, &name, addr, &key);
            let info = PeerInfo {
                name,
                addr,
                raw: false,
                key: Some(key),
            };
            let (read, write) =
                crate::crypto::stream::split(stream, secured.sealer, secured.opener, sealed);
            let reader = Inbound::new(read, leftover, BufferPool::default());
            FramedActor::new(parts, reader, write).serve(info).await
        }
    }
}

/// What a framed actor is made of besides its two ends of the connection.
struct Parts {
    config: SessionConfig,
    capabilities: u32,
    commands: mpsc::Receiver<Command>,
    events: EventQueue,
    cancel: CancellationToken,
    unsent: UnsentLimit,
}

/// The sending end of a framed session: the socket's write half, or the records over it.
trait Outgoing: AsyncWrite + Unpin {
    /// Bytes accepted but not yet handed to the socket (they go out on a flush).
    fn has_pending(&self) -> bool;
}

impl<S: Transport> Outgoing for WriteHalf<S> {
    fn has_pending(&self) -> bool {
        false
    }
}

impl<S: Transport> Outgoing for EncryptedWriter<WriteHalf<S>> {
    fn has_pending(&self) -> bool {
        EncryptedWriter::has_pending(self)
    }
}

/// Write as much of the wire as the socket takes, in one vectored call; with the wire empty,
/// flush what the writer still holds (`None`).
async fn write_some<W: Outgoing>(
    writer: &mut W,
    wire: &VecDeque<Bytes>,
) -> std::io::Result<Option<usize>> {
    if wire.is_empty() {
        writer.flush().await?;
        return Ok(None);
    }
    let slices: Vec<IoSlice<'_>> = wire.iter().take(64).map(|b| IoSlice::new(b)).collect();
    writer.write_vectored(&slices).await.map(Some)
}

/// Why reading from the peer stopped, for the user: a broken connection is not bad data.
fn read_failed(e: ProtocolError) -> Stop {
    match e {
        ProtocolError::Io(e) => Stop::Error(Failure::new(
            FailureKind::Lost,
            format!("connection lost: {e}"),
        )),
        e => Stop::Error(Failure::new(
            FailureKind::Protocol,
            format!("bad data from the peer: {e}"),
        )),
    }
}

struct FramedActor<R, W> {
    config: SessionConfig,
    /// What both sides support.
    capabilities: u32,
    encoding: Encoding,
    transfers: Transfers,
    reader: Inbound<R>,
    writer: W,
    unsent: UnsentLimit,
    /// Control frames being encoded; sealed onto the wire each turn.
    out: BytesMut,
    /// Frames waiting for the socket, in order: sealed control frames and file data from the
    /// reader thread, written with one vectored call (no copy of the data into one buffer).
    wire: VecDeque<Bytes>,
    wire_len: usize,
    events: EventQueue,
    commands: mpsc::Receiver<Command>,
    cancel: CancellationToken,
    last_heard: Instant,
    pinged: bool,
    nonce: u64,
    /// The peer's key changed since it was last met: what we would send waits here (and
    /// files are not accepted by themselves) until the user trusts the new key.
    held: Option<VecDeque<Command>>,
}

/// Commands held back for a peer whose key changed, at most; past this they are refused.
const MAX_HELD: usize = 256;

/// Why the main loop stopped.
enum Stop {
    /// We asked to close: say goodbye.
    Close,
    /// The peer said goodbye.
    PeerBye(String),
    /// The peer closed the connection.
    Eof,
    /// Something broke; the string is for the user.
    Error(Failure),
}

impl<R, W> FramedActor<R, W>
where
    R: tokio::io::AsyncRead + Unpin,
    W: Outgoing,
{
    fn new(parts: Parts, reader: Inbound<R>, writer: W) -> Self {
        let Parts {
            config,
            capabilities,
            commands,
            events,
            cancel,
            unsent,
        } = parts;
        Self {
            capabilities,
            encoding: config.encoding.unwrap_or_default(),
            transfers: Transfers::new(&config, capabilities),
            config,
            reader,
            writer,
            unsent,
            out: BytesMut::with_capacity(64 * 1024),
            wire: VecDeque::new(),
            wire_len: 0,
            events,
            commands,
            cancel,
            last_heard: Instant::now(),
            pinged: false,
            nonce: 0,
            held: None,
        }
    }

    /// Tell the UI who the peer is and run the session. The event queue comes back for
    /// draining.
    async fn serve(mut self, info: PeerInfo) -> EventQueue {
        if let Some(PeerKey {
            standing: Verdict::KeyChanged { .. },
            ..
        }) = &info.key
        {
            self.held = Some(VecDeque::new());
            self.transfers.receiving.hold(true);
        }
        self.events.push(SessionEvent::Connected(info));
        let error = self.run().await;
        self.events.push(SessionEvent::Closed { error });
        self.events
    }

    /// Run until the session ends; the result is the error to report, if any.
    async fn run(&mut self) -> Option<Failure> {
        match self.main_loop().await {
            Stop::Close => {
                self.transfers.cancel_all(&mut self.out, &mut self.events);
                push_frame(
                    &mut self.out,
                    &Frame::Bye {
                        reason: String::new(),
                    },
                );
                self.finish().await;
                None
            }
            Stop::PeerBye(reason) => {
                self.settle_disk().await;
                let unfinished = self.transfers.unfinished() > 0;
                self.transfers
                    .fail_all("the peer left before it finished", &mut self.events);
                self.finish().await;
                if !reason.is_empty() {
                    Some(Failure::new(
                        FailureKind::PeerLeft,
                        format!("the peer closed the session: {reason}"),
                    ))
                } else if unfinished {
                    Some(Failure::new(
                        FailureKind::PeerLeft,
                        "the peer left while transfers were unfinished",
                    ))
                } else {
                    None
                }
            }
            Stop::Eof => {
                self.settle_disk().await;
                let unfinished = self.transfers.unfinished();
                self.transfers.fail_all("connection lost", &mut self.events);
                self.transfers
                    .receiving
                    .flush_disk(&mut self.out, &mut self.events);
                if unfinished > 0 {
                    Some(Failure::new(
                        FailureKind::Lost,
                        "connection lost: the peer closed the connection mid-transfer",
                    ))
                } else {
                    self.events.push(SessionEvent::Notice(Shown::new(
                        "the peer closed the connection without saying goodbye",
                    )));
                    None
                }
            }
            Stop::Error(error) => {
                self.settle_disk().await;
                self.transfers.fail_all(&error.text, &mut self.events);
                push_frame(
                    &mut self.out,
                    &Frame::Bye {
                        reason: error.text.to_string(),
                    },
                );
                self.finish().await;
                Some(error)
            }
        }
    }

    /// Move the control frames written so far onto the wire, behind what is already there.
    fn seal(&mut self) {
        if !self.out.is_empty() {
            let frames = self.out.split().freeze();
            self.wire_len += frames.len();
            self.wire.push_back(frames);
        }
    }

    /// `n` bytes of the wire went out.
    fn consume(&mut self, mut n: usize) {
        self.wire_len -= n;
        while n > 0 {
            let Some(front) = self.wire.front_mut() else {
                break;
            };
            if front.len() <= n {
                n -= front.len();
                self.wire.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
    }

    /// Files whose every byte arrived are being checked and renamed by the disk thread: let it
    /// finish (briefly), so they end verified rather than failed with the connection.
    async fn settle_disk(&mut self) {
        let deadline = Instant::now() + CLOSE_GRACE;
        self.transfers
            .receiving
            .flush_disk(&mut self.out, &mut self.events);
        while self.transfers.receiving.finishing() > 0 {
            let event =
                tokio::time::timeout_at(deadline, self.transfers.receiving.disk_events.recv())
                    .await;
            match event {
                Ok(Some(event)) => {
                    self.transfers
                        .receiving
                        .on_disk(event, &mut self.out, &mut self.events);
                }
                _ => break,
            }
        }
    }

    async fn main_loop(&mut self) -> Stop {
        loop {
            self.transfers
                .sending
                .send_offers(&mut self.out, &mut self.events);
            self.transfers
                .receiving
                .flush_disk(&mut self.out, &mut self.events);
            self.transfers.receiving.refill_credit(&mut self.out);
            self.unsent.follow(self.transfers.receiving.chatting());
            // Control frames first, then file data up to the low-water mark.
            self.seal();
            if self.wire_len < LOW_WATER {
                let frames = self
                    .transfers
                    .sending
                    .take_frames(LOW_WATER - self.wire_len, &mut self.events);
                for frame in frames {
                    self.wire_len += frame.len();
                    self.wire.push_back(frame);
                }
            }
            self.transfers
                .sending
                .request_reads(&mut self.out, &mut self.events);
            self.seal();
            let backed_up = self.events.is_backed_up();
            let can_read = !backed_up
                && self.wire_len < HIGH_WATER
                && !self.transfers.receiving.disk_backed_up();
            let deadline = self.last_heard
                + if self.pinged {
                    self.config.dead_after
                } else {
                    self.config.ping_after
                };
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => return Stop::Error(Failure::new(FailureKind::Cancelled, "cancelled")),
                alive = self.events.send_one(), if self.events.has_pending() => {
                    if !alive {
                        // Nobody listens any more: close politely.
                        return Stop::Close;
                    }
                }
                command = self.commands.recv(), if !backed_up => match command {
                    Some(Command::Close) | None => return Stop::Close,
                    Some(command) => self.on_command(command),
                },
                Some(event) = self.transfers.receiving.disk_events.recv() => {
                    self.transfers
                        .receiving
                        .on_disk(event, &mut self.out, &mut self.events);
                }
                frame = self.reader.next(), if can_read => match frame {
                    Some(Ok(frame)) => {
                        self.last_heard = Instant::now();
                        self.pinged = false;
                        if let Some(stop) = self.on_frame(frame) {
                            return stop;
                        }
                        // Frames already buffered are handled in the same turn, so their disk
                        // jobs and answers go out together.
                        for _ in 0..BURST {
                            if self.events.is_backed_up()
                                || self.wire_len + self.out.len() >= HIGH_WATER
                                || self.transfers.receiving.disk_backed_up()
                            {
                                break;
                            }
                            match self.reader.next().now_or_never() {
                                Some(Some(Ok(frame))) => {
                                    if let Some(stop) = self.on_frame(frame) {
                                        return stop;
                                    }
                                }
                                Some(Some(Err(e))) => {
                                    return read_failed(e);
                                }
                                Some(None) => return Stop::Eof,
                                None => break,
                            }
                        }
                    }
                    Some(Err(e)) => return read_failed(e),
                    None => return Stop::Eof,
                },
                Some(batch) = self.transfers.sending.read_events.recv() => {
                    self.transfers
                        .sending
                        .on_read(batch, &mut self.out, &mut self.events);
                }
                written = write_some(&mut self.writer, &self.wire), if !self.wire.is_empty() || self.writer.has_pending() => match written {
                    Ok(Some(0)) => return Stop::Eof,
                    Ok(Some(n)) => self.consume(n),
                    Ok(None) => {}
                    Err(e) => return Stop::Error(Failure::new(FailureKind::Lost, format!("connection error: {e}"))),
                },
                () = sleep_until(deadline) => {
                    if self.pinged {
                        let e = SessionError::PeerNotResponding(self.config.dead_after);
                        return Stop::Error(Failure::new(FailureKind::Lost, e.to_string()));
                    }
                    self.nonce += 1;
                    push_frame(&mut self.out, &Frame::Ping { nonce: self.nonce });
                    self.pinged = true;
                }
            }
        }
    }

    /// Write what is queued, shut our side down, and give the peer a moment to close its own,
    /// so nothing it sent last is lost to a reset.
    async fn finish(&mut self) {
        // Cancels and failures just queued jobs (removing a `.part`, closing a file).
        self.transfers
            .receiving
            .flush_disk(&mut self.out, &mut self.events);
        let deadline = Instant::now() + CLOSE_GRACE;
        self.seal();
        let flushed = tokio::time::timeout_at(deadline, async {
            while let Some(n) = write_some(&mut self.writer, &self.wire).await? {
                if n == 0 {
                    break;
                }
                self.consume(n);
            }
            self.writer.shutdown().await
        })
        .await;
        if !matches!(flushed, Ok(Ok(()))) {
            return;
        }
        let _ = tokio::time::timeout_at(deadline, async {
            while let Some(Ok(frame)) = self.reader.next().await {
                // Late verdicts still count; anything else is moot now.
                if let Frame::Verdict { id, ok, message } = frame {
                    self.transfers
                        .sending
                        .on_verdict(id, ok, message, &mut self.events);
                }
            }
        })
        .await;
    }

    fn on_command(&mut self, command: Command) {
        if let Some(held) = &mut self.held
            && matches!(
                command,
                Command::Text(_) | Command::Offer(_) | Command::Accept(_)
            )
        {
            if held.len() >= MAX_HELD {
                self.events.push(SessionEvent::Notice(Shown::new(
                    "not sent: too much is waiting for the peer's changed key to be trusted",
                )));
            } else {
                if held.is_empty() {
                    self.events.push(SessionEvent::Notice(Shown::new(
                        "held back: the peer's key changed; it goes out once you trust the new key (/trust)",
                    )));
                }
                held.push_back(command);
            }
            return;
        }
        let (out, events) = (&mut self.out, &mut self.events);
        match command {
            Command::Text(text) => {
                let bytes = text::encode(&text, self.encoding);
                if bytes.len() > MAX_TEXT_LEN {
                    events.push(SessionEvent::Notice(Shown::new(format!(
                        "message not sent: {} bytes is over the {} byte limit",
                        bytes.len(),
                        MAX_TEXT_LEN
                    ))));
                    return;
                }
                push_frame(
                    out,
                    &Frame::Text {
                        encoding: self.encoding,
                        bytes: bytes.into(),
                    },
                );
                self.transfers.receiving.note_chat();
            }
            Command::Offer(files) => self.transfers.sending.offer(files, out, events),
            Command::Accept(id) => self.transfers.receiving.accept(id, out, events),
            Command::Reject(id, reason) => {
                self.transfers.receiving.reject(id, reason, out, events);
            }
            Command::Cancel(tid) => self.transfers.cancel(tid, out, events),
            Command::SetEncoding(encoding) => {
                self.encoding = encoding;
                events.push(SessionEvent::EncodingChanged(encoding));
            }
            Command::SetName(name) => {
                if self.capabilities & caps::RENAME != 0 {
                    let name = handshake::our_name(&name);
                    push_frame(out, &Frame::Rename { name });
                } else {
                    events.push(SessionEvent::Notice(Shown::new(
                        "the peer's tern is older: it sees the new name from the next connection",
                    )));
                }
                self.config.name = name;
            }
            Command::Trust => {
                if let Some(held) = self.held.take() {
                    self.transfers.receiving.hold(false);
                    for command in held {
                        self.on_command(command);
                    }
                }
            }
            // Handled by the loop.
            Command::Close => {}
        }
    }

    fn on_frame(&mut self, frame: Frame) -> Option<Stop> {
        let (out, events) = (&mut self.out, &mut self.events);
        match frame {
            Frame::Text { encoding, bytes } => {
                self.transfers.receiving.note_chat();
                let decoded = text::decode(&bytes, encoding);
                events.push(SessionEvent::Text {
                    text: PeerText::new(decoded.text),
                    encoding,
                    lossy: decoded.lossy,
                });
            }
            Frame::Offer { id, size, path } => {
                self.transfers
                    .receiving
                    .on_offer(id, size, path, out, events);
            }
            Frame::Accept { id, offset } => {
                self.transfers.sending.on_accept(id, offset, out, events);
            }
            Frame::Credit { id, upto } => self.transfers.sending.on_credit(id, upto),
            Frame::Reject { id, reason } => self.transfers.sending.on_reject(id, reason, events),
            Frame::Chunk { id, offset, data } => {
                self.transfers
                    .receiving
                    .on_chunk(id, offset, data, out, events);
            }
            Frame::FileEnd { id, hash } => {
                self.transfers.receiving.on_file_end(id, hash, out, events);
            }
            Frame::Verdict { id, ok, message } => {
                self.transfers.sending.on_verdict(id, ok, message, events);
            }
            Frame::Cancel {
                id,
                by_sender,
                reason,
            } => self.transfers.on_cancel(id, by_sender, reason, events),
            Frame::Rename { name } => {
                events.push(SessionEvent::PeerRenamed(handshake::clean_name(&name)));
            }
            Frame::Ping { nonce } => push_frame(out, &Frame::Pong { nonce }),
            Frame::Pong { .. } => {}
            Frame::Bye { reason } => return Some(Stop::PeerBye(reason)),
            Frame::Hello { .. } => {
                return Some(Stop::Error(Failure::new(
                    FailureKind::Protocol,
                    "protocol violation: a second Hello from the peer",
                )));
            }
        }
        None
    }
}
