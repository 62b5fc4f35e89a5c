//! Events waiting for the UI. The actor never blocks on a slow UI: events queue here and go out
//! as the channel has room, and the actor stops reading the socket while too many wait, or
//! too many bytes of them (here and in the channel together), so a flooding peer is pushed
//! back by TCP instead of growing memory.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;

use super::SessionEvent;

/// Events queued beyond the channel before the actor stops taking in more work.
const MAX_PENDING: usize = 256;
/// Bytes of events queued here and in the channel before the actor stops taking in more work:
/// a message may be 1 MiB, and 256 of them would be a lot of memory.
const MAX_PENDING_BYTES: usize = 2 * 1024 * 1024;

/// Roughly the memory an event holds beyond its own size: the strings it carries.
fn weight(event: &SessionEvent) -> usize {
    64 + match event {
        SessionEvent::Text { text, .. } => text.raw().len(),
        SessionEvent::Notice(text) => text.len(),
        SessionEvent::Transfer(update) => update.path.len(),
        SessionEvent::Connected(peer) => peer.name.len(),
        SessionEvent::PeerRenamed(name) => name.len(),
        SessionEvent::Closed { error } => error.as_ref().map_or(0, |e| e.text.len()),
        SessionEvent::EncodingChanged(_) => 0,
    }
}

pub(super) struct EventQueue {
    pending: VecDeque<SessionEvent>,
    /// Bytes of the events in `pending` and in the channel (the receiver takes off its share).
    bytes: Arc<AtomicUsize>,
    tx: mpsc::Sender<SessionEvent>,
}

impl EventQueue {
    pub(super) fn new(tx: mpsc::Sender<SessionEvent>, bytes: Arc<AtomicUsize>) -> Self {
        Self {
            pending: VecDeque::new(),
            bytes,
            tx,
        }
    }

    pub(super) fn push(&mut self, event: SessionEvent) {
        self.bytes.fetch_add(weight(&event), Ordering::AcqRel);
        self.pending.push_back(event);
    }

    /// Too many events wait: take no new input until the UI catches up.
    pub(super) fn is_backed_up(&self) -> bool {
        self.pending.len() >= MAX_PENDING || self.bytes.load(Ordering::Acquire) >= MAX_PENDING_BYTES
    }

    pub(super) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Wait for room in the channel, then send the oldest events. Cancel-safe: nothing is taken
    /// from the queue until there is room. Returns false once the UI is gone.
    pub(super) async fn send_one(&mut self) -> bool {
        match self.tx.reserve().await {
            Ok(permit) => {
                if let Some(event) = self.pending.pop_front() {
                    permit.send(event);
                }
                // And as many more as fit now: one turn of the actor's loop per event would
                // cost more than the events for ten thousand small files.
                while !self.pending.is_empty() {
                    match self.tx.try_reserve() {
                        Ok(permit) => {
                            if let Some(event) = self.pending.pop_front() {
                                permit.send(event);
                            }
                        }
                        Err(_) => break,
                    }
                }
                true
            }
            Err(_) => {
                self.pending.clear();
                self.bytes.store(0, Ordering::Release);
                false
            }
        }
    }

    /// Deliver everything still queued (the session is ending).
    pub(super) async fn drain(&mut self) {
        while let Some(event) = self.pending.pop_front() {
            if self.tx.send(event).await.is_err() {
                break;
            }
        }
    }
}

/// The receiving end of a session's events. Taking an event off gives its bytes back to the
/// session's bound (see `MAX_PENDING_BYTES`).
#[derive(Debug)]
pub struct Events {
    rx: mpsc::Receiver<SessionEvent>,
    bytes: Arc<AtomicUsize>,
}

impl Events {
    pub(super) fn new(rx: mpsc::Receiver<SessionEvent>, bytes: Arc<AtomicUsize>) -> Self {
        Self { rx, bytes }
    }

    /// The next event; `None` once the session has ended and every event was taken.
    pub async fn recv(&mut self) -> Option<SessionEvent> {
        let event = self.rx.recv().await?;
        self.bytes.fetch_sub(weight(&event), Ordering::AcqRel);
        Some(event)
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Result<SessionEvent, mpsc::error::TryRecvError> {
        let event = self.rx.try_recv()?;
        self.bytes.fetch_sub(weight(&event), Ordering::AcqRel);
        Ok(event)
    }
}
