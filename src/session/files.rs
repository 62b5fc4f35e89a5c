//! The file side of a framed session: our offers (`sending`) and the peer's (`receiving`),
//! and what they share. Synchronous: frames go into the actor's output buffer and events into
//! its queue; disk writes go to the receiving side's disk thread.

use std::time::Duration;

use bytes::BytesMut;

use super::SessionConfig;
use super::outbox::EventQueue;
use super::receiving::Receiving;
use super::sending::Sending;
use crate::protocol::Frame;
use crate::protocol::caps;
use crate::protocol::codec::encode_frame;
use crate::transfer::{Direction, TransferId};

/// Progress events per transfer are at most this frequent.
pub(super) const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// Append a control frame. Only frames whose strings we bound ourselves come here, so an
/// encoding error is a bug worth logging, not one to stop the session for.
pub(super) fn push_frame(out: &mut BytesMut, frame: &Frame) {
    if let Err(e) = encode_frame(frame, out) {
        tracing::error!(error = %e, frame = frame.kind(), "could not encode frame");
    }
}

/// Keep reasons and messages well inside a `str16`.
pub(super) fn short(text: impl Into<String>) -> String {
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
    pub(super) sending: Sending,
    pub(super) receiving: Receiving,
}

impl Transfers {
    /// `capabilities`: what both sides support.
    pub(super) fn new(config: &SessionConfig, capabilities: u32) -> Self {
        let resume = capabilities & caps::RESUME != 0;
        let flow = capabilities & caps::FLOW != 0;
        let chunk_len = config.chunk_len.clamp(1024, crate::protocol::MAX_CHUNK_LEN);
        Self {
            sending: Sending::new(chunk_len, resume, flow),
            receiving: Receiving::new(config, resume, flow),
        }
    }

    /// Every transfer not yet settled, outgoing first, each in id order.
    fn unsettled(&self) -> Vec<(Direction, u32)> {
        let out = self.sending.unsettled().into_iter();
        let inc = self.receiving.unsettled().into_iter();
        out.map(|id| (Direction::Outgoing, id))
            .chain(inc.map(|id| (Direction::Incoming, id)))
            .collect()
    }

    pub(super) fn unfinished(&self) -> usize {
        self.unsettled().len()
    }

    /// The user stops a transfer: the peer is told it was cancelled, and that is all.
    pub(super) fn cancel(&mut self, tid: TransferId, out: &mut BytesMut, events: &mut EventQueue) {
        let (shown, told) = ("by you", "");
        match tid.direction {
            Direction::Outgoing => self.sending.cancel(tid, shown, told, out, events),
            Direction::Incoming => self.receiving.cancel(tid, shown, told, out, events),
        }
    }

    /// Cancel everything still moving (we are closing).
    pub(super) fn cancel_all(&mut self, out: &mut BytesMut, events: &mut EventQueue) {
        let (shown, told) = ("because the session was closed", "the session was closed");
        for (direction, id) in self.unsettled() {
            match direction {
                Direction::Outgoing => self.sending.cancel_id(id, shown, told, out, events),
                Direction::Incoming => self.receiving.cancel_id(id, shown, told, out, events),
            }
        }
    }

    /// The connection is gone: whatever is unfinished has failed. `.part` files stay.
    pub(super) fn fail_all(&mut self, reason: &str, events: &mut EventQueue) {
        for (direction, id) in self.unsettled() {
            match direction {
                Direction::Outgoing => self.sending.fail(id, reason, events),
                Direction::Incoming => self.receiving.fail(id, reason, events),
            }
        }
    }

    /// A `Cancel` from the peer; `by_sender` says whose offer it names.
    pub(super) fn on_cancel(
        &mut self,
        id: u32,
        by_sender: bool,
        reason: String,
        events: &mut EventQueue,
    ) {
        // The peer's own words, if any, after ours: "cancelled by the peer (disk full)".
        let reason = if reason.is_empty() {
            "by the peer".to_string()
        } else {
            format!("by the peer ({})", short(reason))
        };
        if by_sender {
            self.receiving.on_cancel(id, reason, events);
        } else {
            self.sending.on_cancel(id, reason, events);
        }
    }
}
