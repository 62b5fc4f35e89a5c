//! Events waiting for the UI. The actor never blocks on a slow UI: events queue here and go out
//! as the channel has room, and the actor stops reading the socket while too many wait, so a
//! flooding peer is pushed back by TCP instead of growing memory.

use std::collections::VecDeque;

use tokio::sync::mpsc;

use super::SessionEvent;

/// Events queued beyond the channel before the actor stops taking in more work.
const MAX_PENDING: usize = 256;

pub(super) struct EventQueue {
    pending: VecDeque<SessionEvent>,
    tx: mpsc::Sender<SessionEvent>,
}

impl EventQueue {
    pub(super) fn new(tx: mpsc::Sender<SessionEvent>) -> Self {
        Self {
            pending: VecDeque::new(),
            tx,
        }
    }

    pub(super) fn push(&mut self, event: SessionEvent) {
        self.pending.push_back(event);
    }

    /// Too many events wait: take no new input until the UI catches up.
    pub(super) fn is_backed_up(&self) -> bool {
        self.pending.len() >= MAX_PENDING
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
