//! Our offers: what we offered, what the peer accepted, and reading the accepted files out
//! chunk by chunk within the credit the receiver granted.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use bytes::BytesMut;

use super::SessionEvent;
use super::files::{PROGRESS_EVERY, push_frame, short};
use super::outbox::EventQueue;
use crate::protocol::Frame;
use crate::protocol::codec::encode_frame;
use crate::transfer::outgoing::{FileReader, OutgoingFile, ReadStep};
use crate::transfer::{Progress, TransferId, TransferState, TransferUpdate, human_size};

/// Files streamed at once: a small one is not stuck behind a big one, and thousands of
/// accepted offers do not hold thousands of open files.
const MAX_STREAMING: usize = 4;

struct Outgoing {
    file: OutgoingFile,
    state: TransferState,
    reader: Option<FileReader>,
    /// Chunk data may be sent below this offset (the receiver's credit).
    allowed: u64,
    last_event: Instant,
}

impl Outgoing {
    /// Something can go out now: data within credit, or the closing `FileEnd`.
    fn sendable(&self) -> bool {
        self.reader.as_ref().is_some_and(|r| {
            r.sent() < self.allowed.min(self.file.size) || r.sent() == self.file.size
        })
    }
}

pub(super) struct Sending {
    chunk_len: usize,
    resume: bool,
    flow: bool,
    next_id: u32,
    outgoing: HashMap<u32, Outgoing>,
    /// Accepted ids, in the order they get their next chunk.
    streaming: VecDeque<u32>,
    /// Accepted ids waiting for a place in `streaming`.
    waiting: VecDeque<u32>,
}

impl Sending {
    pub(super) fn new(chunk_len: usize, resume: bool, flow: bool) -> Self {
        Self {
            chunk_len,
            resume,
            flow,
            next_id: 1,
            outgoing: HashMap::new(),
            streaming: VecDeque::new(),
            waiting: VecDeque::new(),
        }
    }

    /// Some file has data (or its end) to send now.
    pub(super) fn has_data(&self) -> bool {
        self.streaming
            .iter()
            .any(|id| self.outgoing.get(id).is_some_and(Outgoing::sendable))
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

    fn emit(&mut self, id: u32, events: &mut EventQueue) {
        if let Some(t) = self.outgoing.get_mut(&id) {
            t.last_event = Instant::now();
            let done = match (&t.state, &t.reader) {
                (TransferState::Verified, _) => t.file.size,
                (_, Some(reader)) => reader.sent(),
                (_, None) => 0,
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
                    allowed: 0,
                    last_event: Instant::now(),
                },
            );
            self.emit(id, events);
        }
    }

    /// Stop one of our transfers (we cancel, or the session closes).
    pub(super) fn cancel(
        &mut self,
        id: u32,
        reason: &str,
        out: &mut BytesMut,
        events: &mut EventQueue,
    ) {
        let Some(t) = self.outgoing.get_mut(&id).filter(|t| !t.state.is_final()) else {
            return;
        };
        let reason = short(reason);
        t.state = TransferState::Cancelled(reason.clone());
        t.reader = None;
        self.unschedule(id);
        push_frame(
            out,
            &Frame::Cancel {
                id,
                by_sender: true,
                reason,
            },
        );
        self.emit(id, events);
    }

    /// The connection is gone.
    pub(super) fn fail(&mut self, id: u32, reason: &str, events: &mut EventQueue) {
        if let Some(t) = self.outgoing.get_mut(&id) {
            t.state = TransferState::Failed(reason.to_string());
            t.reader = None;
        }
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

    /// Append the next chunk of the next file that may send to `out`.
    pub(super) fn write_next_chunk(&mut self, out: &mut BytesMut, events: &mut EventQueue) {
        // Round robin over the streaming files, skipping those waiting for credit.
        let Some(pos) = self
            .streaming
            .iter()
            .position(|id| self.outgoing.get(id).is_some_and(Outgoing::sendable))
        else {
            return;
        };
        let Some(id) = self.streaming.remove(pos) else {
            return;
        };
        let chunk_len = self.chunk_len;
        let Some(t) = self.outgoing.get_mut(&id) else {
            return self.promote_waiting();
        };
        let Some(reader) = t.reader.as_mut() else {
            return self.promote_waiting();
        };
        let room = t.allowed.min(t.file.size).saturating_sub(reader.sent());
        let max = (chunk_len as u64).min(room.max(1)) as usize;
        match reader.write_next(id, max, out) {
            Ok(ReadStep::Chunk) => {
                self.streaming.push_back(id);
                if t.last_event.elapsed() >= PROGRESS_EVERY {
                    self.emit(id, events);
                }
            }
            Ok(ReadStep::Finished) => {
                t.state = TransferState::Verifying;
                self.promote_waiting();
                self.emit(id, events);
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
                self.emit(id, events);
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
            events.push(SessionEvent::Notice(format!(
                "the peer accepted #{id}, which we never offered"
            )));
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
            t.state = TransferState::Failed(reason.clone());
            push_frame(
                out,
                &Frame::Cancel {
                    id,
                    by_sender: true,
                    reason,
                },
            );
            return self.emit(id, events);
        }
        if offset > 0 {
            events.push(SessionEvent::Notice(format!(
                "{}: the receiver already has {}; resuming",
                t.file.rel_path,
                human_size(offset)
            )));
        }
        t.state = TransferState::Transferring;
        t.allowed = if self.flow { offset } else { u64::MAX };
        t.reader = Some(FileReader::starting_at(
            t.file.local.clone(),
            t.file.size,
            offset,
        ));
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
            t.state = TransferState::Rejected(short(reason));
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
                TransferState::Failed(format!("the receiver says: {}", short(message)))
            };
            self.emit(id, events);
        }
    }

    /// The receiver stopped our transfer.
    pub(super) fn on_cancel(&mut self, id: u32, reason: String, events: &mut EventQueue) {
        if let Some(t) = self.outgoing.get_mut(&id)
            && !t.state.is_final()
        {
            t.state = TransferState::Cancelled(reason);
            t.reader = None;
            self.unschedule(id);
            self.emit(id, events);
        }
    }
}
