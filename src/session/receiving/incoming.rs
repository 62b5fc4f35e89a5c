//! One offer from the peer, from the offer to its end.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::session::credit::Account;
use crate::text::Shown;
use crate::transfer::disk::SaveGate;
use crate::transfer::names::SafePath;
use crate::transfer::{TransferId, TransferState};

pub(super) struct Incoming {
    pub(super) tid: TransferId,
    /// As shown on a terminal.
    pub(super) path: Shown,
    pub(super) safe: Option<SafePath>,
    pub(super) size: u64,
    pub(super) state: TransferState,
    /// Bytes handed to the disk thread (the next chunk's offset).
    pub(super) received: u64,
    /// Bytes the disk thread has written.
    pub(super) written: u64,
    /// Its share of the credit (with FLOW).
    pub(super) credit: Account,
    /// Accepted, waiting for the disk thread to say where to resume.
    pub(super) awaiting_offset: bool,
    /// `FileEnd` arrived; the disk thread is checking the hash.
    pub(super) finishing: bool,
    /// The BLAKE3 the peer's `FileEnd` gave.
    pub(super) hash: Option<[u8; 32]>,
    pub(super) saved_as: Option<PathBuf>,
    pub(super) last_event: Instant,
    /// Its end was counted (it left the open offers and went to `retired`).
    pub(super) ended: bool,
    /// Once every byte arrived: whether a stop still comes in time to keep the file unnamed.
    pub(super) gate: Arc<SaveGate>,
}

impl Incoming {
    /// Every byte arrived and the disk thread is already naming the file: the transfer can no
    /// longer be stopped. Otherwise it is withdrawn from the disk thread, which will not name
    /// it.
    pub(super) fn too_late_to_stop(&self) -> bool {
        self.finishing && !self.gate.withdraw()
    }
}

impl AsMut<Account> for Incoming {
    fn as_mut(&mut self) -> &mut Account {
        &mut self.credit
    }
}
