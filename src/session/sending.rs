//! Our offers: what we offered, what the peer accepted, and the accepted files' frames, read
//! and hashed ahead by the reader thread within the credit the receiver granted.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use super::SessionEvent;
use super::files::{PROGRESS_EVERY, push_frame, short};
use super::outbox::EventQueue;
use super::retired::Retired;
use crate::protocol::Frame;
use crate::protocol::codec::encode_frame;
use crate::text::Shown;
use crate::transfer::outgoing::OutgoingFile;
use crate::transfer::reader::{ReadEvent, ReadJob, ReadWorker};
use crate::transfer::{Progress, TransferId, TransferState, TransferUpdate, human_size};

/// Files streamed at once: a small one is not stuck behind a big one, and thousands of
/// accepted offers do not hold thousands of open files.
const MAX_STREAMING: usize = 16;
/// Chunks asked of the reader thread ahead of the wire, per file.
const PREFETCH: usize = 8;
/// A file's read-ahead is topped up once it is down to this many chunks, not after every
/// chunk: the reader thread then wakes once for several chunks, and the session once for
/// their frames.
const REFILL_AT: usize = PREFETCH / 2;
/// Data asked of the reader thread and not yet on the wire, all files together: bounds memory
/// however many files stream at once.
const READ_AHEAD: u64 = 4 * 1024 * 1024;
/// Offers open at once (sent, not yet settled); more files wait, queued, until some settle.
/// Keeps both sides' tables small however many files are sent, and stays well under what a
/// receiver accepts open (4096 for tern, docs/PROTOCOL.md), yet far ahead of the files in
/// flight, so small files still stream without a round trip each.
pub const OFFER_WINDOW: usize = 1024;

struct Outgoing {
    tid: TransferId,
    file: OutgoingFile,
    /// `file.rel_path` for the screen, made once: every update of the transfer carries it.
    shown: Shown,
    state: TransferState,
    /// Its `Offer` went out: the peer knows the id.
    offered: bool,
    /// Its end was counted (it left the open offers and went to `retired`).
    ended: bool,
    /// Chunk data may be sent below this offset (the receiver's credit).
    allowed: u64,
    /// Data bytes asked of the reader thread so far (from the accepted offset).
    requested: u64,
    /// The request that produces the `FileEnd` has been made.
    end_requested: bool,
    /// Chunks asked for and not yet delivered.
    in_flight: usize,
    /// Frames read and hashed, waiting for the wire: bytes, data length, and the file's
    /// BLAKE3 if they end it.
    ready: VecDeque<(Bytes, usize, Option<[u8; 32]>)>,
    /// The file's BLAKE3, once its `FileEnd` went to the wire.
    hash: Option<[u8; 32]>,
    /// Data bytes handed to the wire.
    sent: u64,
    last_event: Instant,
}

impl Outgoing {
    fn new(id: u32, file: OutgoingFile, state: TransferState) -> Self {
        Self {
            tid: TransferId::outgoing(id),
            shown: Shown::new(&file.rel_path),
            file,
            state,
            offered: false,
            ended: false,
            allowed: 0,
            requested: 0,
            end_requested: false,
            in_flight: 0,
            ready: VecDeque::new(),
            hash: None,
            sent: 0,
            last_event: Instant::now(),
        }
    }

    /// Stop reading: what was read is dropped.
    fn stop(&mut self) {
        self.ready.clear();
        self.in_flight = 0;
        self.end_requested = true;
    }
}

pub(super) struct Sending {
    chunk_len: usize,
    resume: bool,
    flow: bool,
    next_id: u32,
    outgoing: HashMap<u32, Outgoing>,
    /// Queued ids, in order, waiting for room among the open offers.
    unoffered: VecDeque<u32>,
    /// Offers sent and not yet settled.
    open: usize,
    retired: Retired,
    /// Accepted ids, in the order they get their next chunk.
    streaming: VecDeque<u32>,
    /// Accepted ids waiting for a place in `streaming`.
    waiting: VecDeque<u32>,
    reader: Option<ReadWorker>,
    read_jobs: Vec<ReadJob>,
    read_tx: mpsc::UnboundedSender<Vec<ReadEvent>>,
    /// What the reader thread produced; the actor selects on it.
    pub(super) read_events: mpsc::UnboundedReceiver<Vec<ReadEvent>>,
}

impl Sending {
    pub(super) fn new(chunk_len: usize, resume: bool, flow: bool) -> Self {
        let (read_tx, read_events) = mpsc::unbounded_channel();
        Self {
            chunk_len,
            resume,
            flow,
            next_id: 1,
            outgoing: HashMap::new(),
            unoffered: VecDeque::new(),
            open: 0,
            retired: Retired::default(),
            streaming: VecDeque::new(),
            waiting: VecDeque::new(),
            reader: None,
            read_jobs: Vec::new(),
            read_tx,
            read_events,
        }
    }

    /// Ask the reader thread for the next chunks, within credit and the prefetch depth, and
    /// send the requests gathered. A reader that cannot start fails the transfers it had.
    pub(super) fn request_reads(&mut self, out: &mut BytesMut, events: &mut EventQueue) {
        let chunk_len = self.chunk_len as u64;
        let mut ahead: u64 = self
            .streaming
            .iter()
            .filter_map(|id| self.outgoing.get(id))
            .map(|t| t.requested - t.sent)
            .sum();
        for id in self.streaming.iter().copied() {
            let Some(t) = self.outgoing.get_mut(&id) else {
                continue;
            };
            if t.in_flight + t.ready.len() > REFILL_AT {
                continue;
            }
            while t.in_flight + t.ready.len() < PREFETCH && !t.end_requested && ahead < READ_AHEAD {
                let limit = t.allowed.min(t.file.size);
                let room = limit.saturating_sub(t.requested);
                let max = room.min(chunk_len);
                let ends = t.requested + max == t.file.size;
                if max == 0 && !ends {
                    break;
                }
                self.read_jobs.push(ReadJob::Next {
                    id,
                    max: max as usize,
                });
                t.requested += max;
                ahead += max;
                t.in_flight += 1;
                t.end_requested = ends;
            }
        }
        if self.read_jobs.is_empty() {
            return;
        }
        if self.reader.is_none() {
            match crate::transfer::reader::start(self.read_tx.clone()) {
                Ok(worker) => self.reader = Some(worker),
                Err(e) => tracing::error!(error = %e, "cannot start the reader thread"),
            }
        }
        let jobs = std::mem::take(&mut self.read_jobs);
        if !self.reader.as_ref().is_some_and(|w| w.send(jobs)) {
            let ids: Vec<u32> = self.streaming.iter().copied().collect();
            for id in ids {
                let reason = "the reader thread stopped";
                self.stop_with(id, TransferState::failed(reason), reason, out, events);
            }
        }
    }

    /// Frames ready for the wire, round robin over the streaming files, about `budget` bytes.
    pub(super) fn take_frames(&mut self, budget: usize, events: &mut EventQueue) -> Vec<Bytes> {
        let mut frames = Vec::new();
        let mut taken = 0;
        let mut idle_rounds = 0;
        while taken < budget && idle_rounds < self.streaming.len() {
            let Some(id) = self.streaming.pop_front() else {
                break;
            };
            let Some(t) = self.outgoing.get_mut(&id) else {
                continue;
            };
            let Some((bytes, data_len, end)) = t.ready.pop_front() else {
                self.streaming.push_back(id);
                idle_rounds += 1;
                continue;
            };
            idle_rounds = 0;
            taken += bytes.len();
            t.sent += data_len as u64;
            frames.push(bytes);
            if let Some(hash) = end {
                t.hash = Some(hash);
                t.state = TransferState::Verifying;
                self.promote_waiting();
                self.emit(id, events);
            } else {
                self.streaming.push_back(id);
                if t.last_event.elapsed() >= PROGRESS_EVERY {
                    self.emit(id, events);
                }
            }
        }
        frames
    }

    /// What the reader thread produced.
    pub(super) fn on_read(
        &mut self,
        batch: Vec<ReadEvent>,
        out: &mut BytesMut,
        events: &mut EventQueue,
    ) {
        for event in batch {
            match event {
                ReadEvent::Frames {
                    id,
                    bytes,
                    data_len,
                    end,
                } => {
                    if let Some(t) = self.outgoing.get_mut(&id)
                        && t.state == TransferState::Transferring
                    {
                        t.in_flight = t.in_flight.saturating_sub(1);
                        t.ready.push_back((bytes, data_len, end));
                    }
                }
                ReadEvent::Failed { id, reason } => {
                    let Some(t) = self.outgoing.get(&id) else {
                        continue;
                    };
                    // The peer hears the offered name and why, never our local path.
                    let local = t.file.local.display().to_string();
                    let shown = TransferState::failed(format!("reading {local}: {reason}"));
                    let told = format!("the sender cannot read {}: {reason}", t.file.rel_path);
                    self.stop_with(id, shown, &told, out, events);
                }
            }
        }
    }

    /// End an unsettled transfer in state `end`, and tell the receiver, with `told` as the
    /// reason.
    fn stop_with(
        &mut self,
        id: u32,
        end: TransferState,
        told: &str,
        out: &mut BytesMut,
        events: &mut EventQueue,
    ) {
        let Some(t) = self.outgoing.get_mut(&id).filter(|t| !t.state.is_final()) else {
            return;
        };
        let reason = short(told);
        t.state = end;
        t.stop();
        let offered = t.offered;
        self.drop_reader(id);
        self.unschedule(id);
        if offered {
            push_frame(
                out,
                &Frame::Cancel {
                    id,
                    by_sender: true,
                    reason,
                },
            );
        }
        self.emit(id, events);
    }

    fn drop_reader(&mut self, id: u32) {
        if self.reader.is_some() {
            self.read_jobs.push(ReadJob::Drop { id });
        }
    }

    pub(super) fn unsettled(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self
            .outgoing
            .iter()
            .filter(|(_, t)| !t.state.is_final())
            .map(|(&id, _)| id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Report a transfer's state. Every change of state ends here, so this is also where an
    /// ended transfer leaves the open offers.
    fn emit(&mut self, id: u32, events: &mut EventQueue) {
        let mut ended = false;
        if let Some(t) = self.outgoing.get_mut(&id) {
            if t.state.is_final() && !t.ended {
                t.ended = true;
                ended = true;
                self.open -= usize::from(t.offered);
            }
            t.last_event = Instant::now();
            let done = if t.state == TransferState::Verified {
                t.file.size
            } else {
                t.sent
            };
            events.push(SessionEvent::Transfer(TransferUpdate {
                id: t.tid,
                path: t.shown.clone(),
                saved_as: None,
                hash: t.hash.filter(|_| t.state == TransferState::Verified),
                state: t.state.clone(),
                progress: Progress {
                    done,
                    total: t.file.size,
                },
            }));
        }
        if ended {
            self.retired
                .retire(id, &mut self.outgoing, |t: &Outgoing| t.ended);
        }
    }

    /// Offer `files`: as many as the window has room for now, the rest as offers settle.
    pub(super) fn offer(
        &mut self,
        files: Vec<OutgoingFile>,
        out: &mut BytesMut,
        events: &mut EventQueue,
    ) {
        for file in files {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1).max(1);
            self.outgoing
                .insert(id, Outgoing::new(id, file, TransferState::Queued));
            if self.open < OFFER_WINDOW && self.unoffered.is_empty() {
                self.send_offer(id, out, events);
            } else {
                self.unoffered.push_back(id);
                self.emit(id, events);
            }
        }
    }

    /// Offer queued files while the window has room (once per turn of the actor, after the
    /// frames that settled some).
    pub(super) fn send_offers(&mut self, out: &mut BytesMut, events: &mut EventQueue) {
        while self.open < OFFER_WINDOW {
            let Some(id) = self.unoffered.pop_front() else {
                break;
            };
            self.send_offer(id, out, events);
        }
    }

    fn send_offer(&mut self, id: u32, out: &mut BytesMut, events: &mut EventQueue) {
        let Some(t) = self
            .outgoing
            .get_mut(&id)
            .filter(|t| t.state == TransferState::Queued)
        else {
            // Cancelled while it waited.
            return;
        };
        let frame = Frame::Offer {
            id,
            size: t.file.size,
            path: t.file.rel_path.clone(),
        };
        t.state = match encode_frame(&frame, out) {
            Ok(()) => {
                t.offered = true;
                self.open += 1;
                TransferState::Offered
            }
            Err(e) => TransferState::failed(e.to_string()),
        };
        self.emit(id, events);
    }

    /// Stop our transfer `tid` (the user cancels): `shown` is for our user, `told` for the
    /// peer.
    pub(super) fn cancel(
        &mut self,
        tid: TransferId,
        shown: &str,
        told: &str,
        out: &mut BytesMut,
        events: &mut EventQueue,
    ) {
        if self.outgoing.get(&tid.id).is_some_and(|t| t.tid == tid) {
            self.cancel_id(tid.id, shown, told, out, events);
        }
    }

    /// Stop one of our transfers (the user cancels, or the session closes).
    pub(super) fn cancel_id(
        &mut self,
        id: u32,
        shown: &str,
        told: &str,
        out: &mut BytesMut,
        events: &mut EventQueue,
    ) {
        self.stop_with(id, TransferState::cancelled(shown), told, out, events);
    }

    /// The connection is gone.
    pub(super) fn fail(&mut self, id: u32, reason: &str, events: &mut EventQueue) {
        if let Some(t) = self.outgoing.get_mut(&id) {
            t.state = TransferState::failed(reason);
            t.stop();
        }
        self.drop_reader(id);
        self.unschedule(id);
        self.emit(id, events);
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

    pub(super) fn on_accept(
        &mut self,
        id: u32,
        offset: u64,
        out: &mut BytesMut,
        events: &mut EventQueue,
    ) {
        let Some(t) = self.outgoing.get_mut(&id) else {
            events.push(SessionEvent::Notice(Shown::new(format!(
                "the peer accepted #{id}, which we never offered"
            ))));
            return;
        };
        if t.state != TransferState::Offered {
            return;
        }
        if offset > t.file.size || (offset != 0 && !self.resume) {
            let why = if self.resume {
                "is past the end of the file"
            } else {
                "was not negotiated"
            };
            let reason = format!("the peer asked to resume at byte {offset}, which {why}");
            return self.stop_with(id, TransferState::failed(&reason), &reason, out, events);
        }
        if offset > 0 {
            events.push(SessionEvent::Notice(Shown::new(format!(
                "{}: the receiver already has {}; resuming",
                t.file.rel_path,
                human_size(offset)
            ))));
        }
        t.state = TransferState::Transferring;
        t.allowed = if self.flow { offset } else { u64::MAX };
        t.requested = offset;
        t.sent = offset;
        self.read_jobs.push(ReadJob::Start {
            id,
            local: t.file.local.clone(),
            size: t.file.size,
            offset,
        });
        self.waiting.push_back(id);
        self.promote_waiting();
        self.emit(id, events);
    }

    pub(super) fn on_credit(&mut self, id: u32, upto: u64) {
        if let Some(t) = self.outgoing.get_mut(&id) {
            t.allowed = t.allowed.max(upto);
        }
    }

    pub(super) fn on_reject(&mut self, id: u32, reason: String, events: &mut EventQueue) {
        if let Some(t) = self.outgoing.get_mut(&id)
            && t.state == TransferState::Offered
        {
            t.state = TransferState::rejected(short(reason));
            self.emit(id, events);
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
                TransferState::failed(format!("the receiver says: {}", short(message)))
            };
            self.emit(id, events);
        }
    }

    /// The receiver stopped our transfer.
    pub(super) fn on_cancel(&mut self, id: u32, reason: String, events: &mut EventQueue) {
        if let Some(t) = self.outgoing.get_mut(&id)
            && !t.state.is_final()
        {
            t.state = TransferState::cancelled(reason);
            t.stop();
            self.drop_reader(id);
            self.unschedule(id);
            self.emit(id, events);
        }
    }
}
