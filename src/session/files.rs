//! The file side of a framed session: every transfer in both directions, and what each frame
//! or command does to them. Synchronous: it writes frames into the actor's output buffer and
//! events into its queue, and touches the disk for the chunk at hand only.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::outbox::EventQueue;
use super::{OfferPolicy, SessionConfig, SessionEvent};
use crate::protocol::Frame;
use crate::protocol::codec::encode_frame;
use crate::transfer::incoming::{PartFile, SafePath};
use crate::transfer::outgoing::{FileReader, OutgoingFile, ReadStep};
use crate::transfer::{Progress, TransferId, TransferState, TransferUpdate, human_size};

/// Progress events per transfer are at most this frequent.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);
/// Files streamed at once: a small one is not stuck behind a big one, and thousands of
/// accepted offers do not hold thousands of open files.
const MAX_STREAMING: usize = 4;

struct Outgoing {
    file: OutgoingFile,
    state: TransferState,
    reader: Option<FileReader>,
    last_event: Instant,
}

struct Incoming {
    path: String,
    safe: Option<SafePath>,
    size: u64,
    state: TransferState,
    part: Option<PartFile>,
    saved_as: Option<PathBuf>,
    last_event: Instant,
}

impl Incoming {
    fn received(&self) -> u64 {
        self.part.as_ref().map_or(0, PartFile::received)
    }
}

/// Append a control frame. Only frames whose strings we bound ourselves come here, so an
/// encoding error is a bug worth logging, not one to stop the session for.
pub(super) fn push_frame(out: &mut BytesMut, frame: &Frame) {
    if let Err(e) = encode_frame(frame, out) {
        tracing::error!(error = %e, frame = frame.kind(), "could not encode frame");
    }
}

/// Keep reasons and messages well inside a `str16`.
fn short(text: impl Into<String>) -> String {
    let mut s: String = text.into();
    if s.len() > 1000 {
        let mut cut = 1000;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

pub(super) struct Transfers {
    download_dir: PathBuf,
    offers: OfferPolicy,
    chunk_len: usize,
    next_id: u32,
    outgoing: HashMap<u32, Outgoing>,
    /// Accepted outgoing ids, in the order they get their next chunk.
    streaming: VecDeque<u32>,
    /// Accepted outgoing ids waiting for a place in `streaming`.
    waiting: VecDeque<u32>,
    incoming: HashMap<u32, Incoming>,
    max_file_size: Option<u64>,
    max_total: Option<u64>,
    /// Both sides can resume from an offset.
    resume: bool,
    /// Bytes of every incoming offer accepted so far.
    accepted_total: u64,
}

impl Transfers {
    pub(super) fn new(config: &SessionConfig, capabilities: u32) -> Self {
        Self {
            download_dir: config.download_dir.clone(),
            offers: config.offers.clone(),
            chunk_len: config.chunk_len.clamp(1024, crate::protocol::MAX_CHUNK_LEN),
            next_id: 1,
            outgoing: HashMap::new(),
            streaming: VecDeque::new(),
            waiting: VecDeque::new(),
            incoming: HashMap::new(),
            max_file_size: config.max_file_size,
            max_total: config.max_total,
            resume: capabilities & crate::protocol::caps::RESUME != 0,
            accepted_total: 0,
        }
    }

    /// Why an offer of `size` bytes must be refused, if it must.
    fn over_limit(&self, size: u64) -> Option<String> {
        if let Some(max) = self.max_file_size
            && size > max
        {
            return Some(format!(
                "the file ({}) is over the receiver's limit of {} per file",
                human_size(size),
                human_size(max)
            ));
        }
        if let Some(max) = self.max_total
            && self.accepted_total.saturating_add(size) > max
        {
            return Some(format!(
                "the receiver's limit of {} per session would be exceeded",
                human_size(max)
            ));
        }
        None
    }

    /// Some file still has data to send.
    pub(super) fn has_data(&self) -> bool {
        !self.streaming.is_empty()
    }

    /// Transfers not yet in a final state.
    pub(super) fn unfinished(&self) -> usize {
        let out = self.outgoing.values().filter(|t| !t.state.is_final());
        let inc = self.incoming.values().filter(|t| !t.state.is_final());
        out.count() + inc.count()
    }

    fn emit_out(&mut self, id: u32, events: &mut EventQueue) {
        if let Some(t) = self.outgoing.get_mut(&id) {
            t.last_event = Instant::now();
            let done = t.reader.as_ref().map_or(0, FileReader::sent);
            let done = if t.state.is_success() {
                t.file.size
            } else {
                done
            };
            events.push(SessionEvent::Transfer(TransferUpdate {
                id: TransferId::outgoing(id),
                path: t.file.rel_path.clone(),
                saved_as: None,
                state: t.state.clone(),
                progress: Progress {
                    done,
                    total: t.file.size,
                },
            }));
        }
    }

    fn emit_in(&mut self, id: u32, events: &mut EventQueue) {
        if let Some(t) = self.incoming.get_mut(&id) {
            t.last_event = Instant::now();
            let done = if t.state.is_success() {
                t.size
            } else {
                t.received()
            };
            events.push(SessionEvent::Transfer(TransferUpdate {
                id: TransferId::incoming(id),
                path: t.path.clone(),
                saved_as: t.saved_as.clone(),
                state: t.state.clone(),
                progress: Progress {
                    done,
                    total: t.size,
                },
            }));
        }
    }

    // ---- commands -------------------------------------------------------------------------

    pub(super) fn offer(
        &mut self,
        files: Vec<OutgoingFile>,
        out: &mut BytesMut,
        events: &mut EventQueue,
    ) {
        for file in files {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1).max(1);
            let frame = Frame::Offer {
                id,
                size: file.size,
                path: file.rel_path.clone(),
            };
            let state = match encode_frame(&frame, out) {
                Ok(()) => TransferState::Offered,
                Err(e) => TransferState::Failed(e.to_string()),
            };
            self.outgoing.insert(
                id,
                Outgoing {
                    file,
                    state,
                    reader: None,
                    last_event: Instant::now(),
                },
            );
            self.emit_out(id, events);
        }
    }

    pub(super) fn accept(&mut self, id: u32, out: &mut BytesMut, events: &mut EventQueue) {
        let Some(size) = self
            .incoming
            .get(&id)
            .filter(|t| t.state == TransferState::AwaitingDecision)
            .map(|t| t.size)
        else {
            events.push(SessionEvent::Notice(format!("no offer #{id} is waiting")));
            return;
        };
        if let Some(reason) = self.over_limit(size) {
            return self.reject(id, reason, out, events);
        }
        self.accepted_total = self.accepted_total.saturating_add(size);
        let part = self.resumable_part(id, size);
        let Some(t) = self.incoming.get_mut(&id) else {
            return;
        };
        let offset = part.as_ref().map_or(0, PartFile::received);
        if offset > 0 {
            events.push(SessionEvent::Notice(format!(
                "{}: {} already here from an earlier attempt; resuming",
                t.path,
                human_size(offset)
            )));
        }
        t.part = part;
        t.state = TransferState::Transferring;
        push_frame(out, &Frame::Accept { id, offset });
        self.emit_in(id, events);
    }

    /// A `.part` from an earlier attempt at this offer's path, unless resuming is off or another
    /// transfer of this session writes to it.
    fn resumable_part(&self, id: u32, size: u64) -> Option<PartFile> {
        if !self.resume {
            return None;
        }
        let safe = self.incoming.get(&id)?.safe.as_ref()?;
        let part = match PartFile::resume(&self.download_dir, safe, size) {
            Ok(part) => part?,
            Err(e) => {
                tracing::warn!(error = %e, "cannot resume; starting over");
                return None;
            }
        };
        let busy = self.incoming.values().any(|other| {
            other
                .part
                .as_ref()
                .is_some_and(|p| p.part_path() == part.part_path())
        });
        (!busy).then_some(part)
    }

    pub(super) fn reject(
        &mut self,
        id: u32,
        reason: String,
        out: &mut BytesMut,
        events: &mut EventQueue,
    ) {
        let Some(t) = self.incoming.get_mut(&id) else {
            return;
        };
        if t.state != TransferState::AwaitingDecision {
            return;
        }
        let reason = short(reason);
        t.state = TransferState::Rejected(reason.clone());
        push_frame(out, &Frame::Reject { id, reason });
        self.emit_in(id, events);
    }

    pub(super) fn cancel(
        &mut self,
        tid: TransferId,
        reason: &str,
        out: &mut BytesMut,
        events: &mut EventQueue,
    ) {
        use crate::transfer::Direction;
        let reason = short(reason);
        match tid.direction {
            Direction::Outgoing => {
                let Some(t) = self.outgoing.get_mut(&tid.id) else {
                    return;
                };
                if t.state.is_final() {
                    return;
                }
                t.state = TransferState::Cancelled(reason.clone());
                t.reader = None;
                self.unschedule(tid.id);
                push_frame(
                    out,
                    &Frame::Cancel {
                        id: tid.id,
                        by_sender: true,
                        reason,
                    },
                );
                self.emit_out(tid.id, events);
            }
            Direction::Incoming => {
                let Some(t) = self.incoming.get_mut(&tid.id) else {
                    return;
                };
                if t.state.is_final() {
                    return;
                }
                t.state = TransferState::Cancelled(reason.clone());
                if let Some(part) = t.part.take() {
                    part.discard();
                }
                push_frame(
                    out,
                    &Frame::Cancel {
                        id: tid.id,
                        by_sender: false,
                        reason,
                    },
                );
                self.emit_in(tid.id, events);
            }
        }
    }

    /// Every transfer not yet settled, outgoing first, each in id order.
    fn unsettled(&self) -> Vec<TransferId> {
        let mut out: Vec<TransferId> = self
            .outgoing
            .iter()
            .filter(|(_, t)| !t.state.is_final())
            .map(|(&id, _)| TransferId::outgoing(id))
            .collect();
        out.extend(
            self.incoming
                .iter()
                .filter(|(_, t)| !t.state.is_final())
                .map(|(&id, _)| TransferId::incoming(id)),
        );
        out.sort();
        out
    }

    /// Cancel everything still moving (we are closing).
    pub(super) fn cancel_all(&mut self, reason: &str, out: &mut BytesMut, events: &mut EventQueue) {
        for tid in self.unsettled() {
            self.cancel(tid, reason, out, events);
        }
    }

    /// The connection is gone: whatever is unfinished has failed. `.part` files stay.
    pub(super) fn fail_all(&mut self, reason: &str, events: &mut EventQueue) {
        use crate::transfer::Direction;
        for tid in self.unsettled() {
            let failed = TransferState::Failed(reason.to_string());
            match tid.direction {
                Direction::Outgoing => {
                    if let Some(t) = self.outgoing.get_mut(&tid.id) {
                        t.state = failed;
                    }
                    self.emit_out(tid.id, events);
                }
                Direction::Incoming => {
                    if let Some(t) = self.incoming.get_mut(&tid.id) {
                        t.state = failed;
                        t.part = None;
                    }
                    self.emit_in(tid.id, events);
                }
            }
        }
        self.streaming.clear();
        self.waiting.clear();
    }

    fn unschedule(&mut self, id: u32) {
        self.streaming.retain(|&x| x != id);
        self.waiting.retain(|&x| x != id);
        self.promote_waiting();
    }

    fn promote_waiting(&mut self) {
        while self.streaming.len() < MAX_STREAMING {
            match self.waiting.pop_front() {
                Some(id) => self.streaming.push_back(id),
                None => break,
            }
        }
    }

    // ---- sending data ---------------------------------------------------------------------

    /// Append the next chunk of the next streaming file to `out`.
    pub(super) fn write_next_chunk(&mut self, out: &mut BytesMut, events: &mut EventQueue) {
        let Some(id) = self.streaming.pop_front() else {
            return;
        };
        let chunk_len = self.chunk_len;
        let Some(t) = self.outgoing.get_mut(&id) else {
            self.promote_waiting();
            return;
        };
        let Some(reader) = t.reader.as_mut() else {
            self.promote_waiting();
            return;
        };
        match reader.write_next(id, chunk_len, out) {
            Ok(ReadStep::Chunk) => {
                self.streaming.push_back(id);
                if t.last_event.elapsed() >= PROGRESS_EVERY {
                    self.emit_out(id, events);
                }
            }
            Ok(ReadStep::Finished) => {
                t.state = TransferState::Verifying;
                self.promote_waiting();
                self.emit_out(id, events);
            }
            Err(e) => {
                let reason = short(format!("reading {}: {e}", t.file.local.display()));
                t.state = TransferState::Failed(reason.clone());
                t.reader = None;
                push_frame(
                    out,
                    &Frame::Cancel {
                        id,
                        by_sender: true,
                        reason,
                    },
                );
                self.promote_waiting();
                self.emit_out(id, events);
            }
        }
    }

    // ---- frames from the peer -------------------------------------------------------------

    pub(super) fn on_offer(
        &mut self,
        id: u32,
        size: u64,
        path: String,
        out: &mut BytesMut,
        events: &mut EventQueue,
    ) {
        if let Some(existing) = self.incoming.get(&id)
            && !existing.state.is_final()
        {
            events.push(SessionEvent::Notice(format!(
                "the peer offered #{id} twice; the second offer ({path}) was refused"
            )));
            push_frame(
                out,
                &Frame::Reject {
                    id,
                    reason: "an offer with this id is already open".into(),
                },
            );
            return;
        }
        let (safe, state) = match SafePath::parse(&path) {
            Ok(safe) => match self.over_limit(size) {
                None => (Some(safe), TransferState::AwaitingDecision),
                Some(reason) => (Some(safe), TransferState::Rejected(reason)),
            },
            Err(e) => (
                None,
                TransferState::Rejected(format!("unsafe file name: {e}")),
            ),
        };
        // Shown on screen: keep a hostile name from carrying escape sequences there.
        let shown: String = path
            .chars()
            .map(|c| if c.is_control() { '\u{fffd}' } else { c })
            .take(300)
            .collect();
        self.incoming.insert(
            id,
            Incoming {
                path: shown,
                safe,
                size,
                state,
                part: None,
                saved_as: None,
                last_event: Instant::now(),
            },
        );
        if let Some(TransferState::Rejected(reason)) = self.incoming.get(&id).map(|t| &t.state) {
            let reason = reason.clone();
            push_frame(out, &Frame::Reject { id, reason });
            self.emit_in(id, events);
            return;
        }
        // Announced as waiting only when someone will decide; otherwise the decision is the news.
        match self.offers.clone() {
            OfferPolicy::Ask => self.emit_in(id, events),
            OfferPolicy::AcceptAll => self.accept(id, out, events),
            OfferPolicy::DeclineAll(reason) => self.reject(id, reason, out, events),
        }
    }

    /// Fail an incoming transfer and tell the sender to stop.
    fn fail_incoming(
        &mut self,
        id: u32,
        reason: String,
        out: &mut BytesMut,
        events: &mut EventQueue,
    ) {
        if let Some(t) = self.incoming.get_mut(&id) {
            t.state = TransferState::Failed(reason.clone());
            // The `.part` stays on disk: it holds what arrived, for a later resume.
            t.part = None;
        }
        push_frame(
            out,
            &Frame::Cancel {
                id,
                by_sender: false,
                reason,
            },
        );
        self.emit_in(id, events);
    }

    pub(super) fn on_chunk(
        &mut self,
        id: u32,
        offset: u64,
        data: Bytes,
        out: &mut BytesMut,
        events: &mut EventQueue,
    ) {
        let Some(t) = self.incoming.get_mut(&id) else {
            events.push(SessionEvent::Notice(format!(
                "the peer sent data for unknown transfer #{id}; ignored"
            )));
            push_frame(
                out,
                &Frame::Cancel {
                    id,
                    by_sender: false,
                    reason: "data for a transfer that was never offered".into(),
                },
            );
            return;
        };
        match t.state {
            TransferState::Transferring => {}
            // Chunks already in flight when we cancelled or failed it.
            _ if t.state.is_final() => return,
            _ => {
                let reason = "data arrived before the offer was accepted".to_string();
                return self.fail_incoming(id, reason, out, events);
            }
        }
        let received = t.received();
        if offset != received {
            let reason = format!("chunk at offset {offset}, expected {received}");
            return self.fail_incoming(id, reason, out, events);
        }
        if received + data.len() as u64 > t.size {
            let reason = format!(
                "the peer sent more than the {} it offered",
                human_size(t.size)
            );
            return self.fail_incoming(id, reason, out, events);
        }
        if let Err(e) = self.write_part(id, &data) {
            return self.fail_incoming(id, short(e), out, events);
        }
        if let Some(t) = self.incoming.get(&id)
            && t.last_event.elapsed() >= PROGRESS_EVERY
        {
            self.emit_in(id, events);
        }
    }

    fn write_part(&mut self, id: u32, data: &[u8]) -> Result<(), String> {
        let Some(t) = self.incoming.get_mut(&id) else {
            return Ok(());
        };
        let part = match &mut t.part {
            Some(part) => part,
            None => {
                let Some(safe) = &t.safe else {
                    return Err("no safe name".into());
                };
                let part = PartFile::create(&self.download_dir, safe).map_err(|e| {
                    format!("cannot create file in {}: {e}", self.download_dir.display())
                })?;
                t.part.insert(part)
            }
        };
        part.write(data)
            .map_err(|e| format!("writing {}: {e}", part.part_path().display()))
    }

    pub(super) fn on_file_end(
        &mut self,
        id: u32,
        hash: [u8; 32],
        out: &mut BytesMut,
        events: &mut EventQueue,
    ) {
        let Some(t) = self.incoming.get_mut(&id) else {
            return;
        };
        if t.state != TransferState::Transferring {
            return;
        }
        if t.size == 0
            && t.part.is_none()
            && let Err(e) = self.write_part(id, &[])
        {
            return self.verdict_fail(id, e, out, events);
        }
        let Some(t) = self.incoming.get_mut(&id) else {
            return;
        };
        let received = t.received();
        if received != t.size {
            let reason = format!("truncated: the peer sent {received} of {} bytes", t.size);
            return self.verdict_fail(id, reason, out, events);
        }
        let Some(part) = t.part.take() else {
            return self.verdict_fail(id, "nothing was written".into(), out, events);
        };
        if part.hash() != hash {
            let reason = if part.resumed() {
                // The kept prefix was not this file: start from zero next time.
                part.discard();
                "BLAKE3 mismatch: the data kept from an earlier attempt did not match; \
                 it was removed, so a retry starts over"
                    .to_string()
            } else {
                let where_ = part.part_path().display().to_string();
                format!("BLAKE3 mismatch: the data is corrupt (kept as {where_})")
            };
            return self.verdict_fail(id, reason, out, events);
        }
        match part.promote() {
            Ok(path) => {
                let message = path
                    .strip_prefix(&self.download_dir)
                    .unwrap_or(&path)
                    .display()
                    .to_string();
                t.state = TransferState::Verified;
                t.saved_as = Some(path);
                push_frame(
                    out,
                    &Frame::Verdict {
                        id,
                        ok: true,
                        message: short(message),
                    },
                );
                self.emit_in(id, events);
            }
            Err(e) => self.verdict_fail(
                id,
                format!("cannot rename the finished file: {e}"),
                out,
                events,
            ),
        }
    }

    fn verdict_fail(
        &mut self,
        id: u32,
        reason: String,
        out: &mut BytesMut,
        events: &mut EventQueue,
    ) {
        let reason = short(reason);
        if let Some(t) = self.incoming.get_mut(&id) {
            t.state = TransferState::Failed(reason.clone());
            t.part = None;
        }
        push_frame(
            out,
            &Frame::Verdict {
                id,
                ok: false,
                message: reason,
            },
        );
        self.emit_in(id, events);
    }

    pub(super) fn on_accept(
        &mut self,
        id: u32,
        offset: u64,
        out: &mut BytesMut,
        events: &mut EventQueue,
    ) {
        let Some(t) = self.outgoing.get_mut(&id) else {
            events.push(SessionEvent::Notice(format!(
                "the peer accepted #{id}, which we never offered"
            )));
            return;
        };
        if t.state != TransferState::Offered {
            return;
        }
        if offset > t.file.size || (offset != 0 && !self.resume) {
            let reason = format!(
                "the peer asked to resume at byte {offset}, which {}",
                if self.resume {
                    "is past the end of the file"
                } else {
                    "was not negotiated"
                }
            );
            t.state = TransferState::Failed(reason.clone());
            push_frame(
                out,
                &Frame::Cancel {
                    id,
                    by_sender: true,
                    reason,
                },
            );
            return self.emit_out(id, events);
        }
        if offset > 0 {
            events.push(SessionEvent::Notice(format!(
                "{}: the receiver already has {}; resuming",
                t.file.rel_path,
                human_size(offset)
            )));
        }
        t.state = TransferState::Transferring;
        t.reader = Some(FileReader::starting_at(
            t.file.local.clone(),
            t.file.size,
            offset,
        ));
        self.waiting.push_back(id);
        self.promote_waiting();
        self.emit_out(id, events);
    }

    pub(super) fn on_reject(&mut self, id: u32, reason: String, events: &mut EventQueue) {
        if let Some(t) = self.outgoing.get_mut(&id)
            && t.state == TransferState::Offered
        {
            t.state = TransferState::Rejected(short(reason));
            self.emit_out(id, events);
        }
    }

    pub(super) fn on_verdict(
        &mut self,
        id: u32,
        ok: bool,
        message: String,
        events: &mut EventQueue,
    ) {
        if let Some(t) = self.outgoing.get_mut(&id)
            && t.state == TransferState::Verifying
        {
            t.state = if ok {
                TransferState::Verified
            } else {
                TransferState::Failed(format!("the receiver says: {}", short(message)))
            };
            self.emit_out(id, events);
        }
    }

    pub(super) fn on_cancel(
        &mut self,
        id: u32,
        by_sender: bool,
        reason: String,
        events: &mut EventQueue,
    ) {
        let reason = if reason.is_empty() {
            "by the peer".to_string()
        } else {
            format!("by the peer ({})", short(reason))
        };
        if by_sender {
            if let Some(t) = self.incoming.get_mut(&id)
                && !t.state.is_final()
            {
                t.state = TransferState::Cancelled(reason);
                if let Some(part) = t.part.take() {
                    part.discard();
                }
                self.emit_in(id, events);
            }
        } else if let Some(t) = self.outgoing.get_mut(&id)
            && !t.state.is_final()
        {
            t.state = TransferState::Cancelled(reason);
            t.reader = None;
            self.unschedule(id);
            self.emit_out(id, events);
        }
    }
}
