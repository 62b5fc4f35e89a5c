//! File transfers: identities, states and progress, as plain data with pure transitions.
//!
//! `outgoing` reads files chunk by chunk; `names` checks a peer's names against the receiving
//! system's rules; `incoming` writes partial files and names them without overwriting.
//! Depends on `protocol` (for chunk framing) and `text` only.

pub mod disk;
pub mod folder;
pub mod incoming;
pub mod names;
pub mod outgoing;
pub mod parts;
pub mod pool;
pub mod reader;
pub mod walk;
pub mod worker;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::text::Shown;

/// Which side of a transfer this is, seen from here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    Outgoing,
    Incoming,
}

/// A transfer's identity. `id` is the number on the wire, chosen by the sending side and
/// unique only among that side's offers in one connection: an outgoing and an incoming
/// transfer may share it, and a new connection starts again from 1. `key` is unique for the
/// life of the program, so a row, a command or a disk job for one transfer can never be taken
/// for another's after a reconnect, or after a peer reuses an id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransferId {
    pub direction: Direction,
    pub id: u32,
    pub key: TransferKey,
}

/// Unique for the life of the program (see [`TransferId`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransferKey(u64);

impl TransferKey {
    /// A key no transfer has had before.
    pub fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

impl TransferId {
    /// A new outgoing transfer with wire id `id`.
    pub fn outgoing(id: u32) -> Self {
        Self {
            direction: Direction::Outgoing,
            id,
            key: TransferKey::next(),
        }
    }

    /// A new incoming transfer with wire id `id`.
    pub fn incoming(id: u32) -> Self {
        Self {
            direction: Direction::Incoming,
            id,
            key: TransferKey::next(),
        }
    }
}

impl fmt::Display for TransferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let arrow = match self.direction {
            Direction::Outgoing => "out",
            Direction::Incoming => "in",
        };
        write!(f, "{arrow}#{}", self.id)
    }
}

/// Where a transfer stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransferState {
    /// Outgoing: waiting for a peer to offer it to.
    Queued,
    /// Outgoing: offered, waiting for the peer's answer.
    Offered,
    /// Incoming: offered to us, waiting for our answer.
    AwaitingDecision,
    /// Accepted; bytes are moving.
    Transferring,
    /// Outgoing: every byte sent, waiting for the receiver's verdict.
    Verifying,
    /// The receiver's hash matched; incoming: the file has its final name.
    Verified,
    /// Reasons are shown on terminals, and a peer may have written them.
    Rejected(Shown),
    Failed(Shown),
    Cancelled(Shown),
}

impl TransferState {
    pub fn rejected(reason: impl AsRef<str>) -> Self {
        Self::Rejected(Shown::new(reason))
    }

    pub fn failed(reason: impl AsRef<str>) -> Self {
        Self::Failed(Shown::new(reason))
    }

    pub fn cancelled(reason: impl AsRef<str>) -> Self {
        Self::Cancelled(Shown::new(reason))
    }

    /// Nothing more will happen to this transfer.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            TransferState::Verified
                | TransferState::Rejected(_)
                | TransferState::Failed(_)
                | TransferState::Cancelled(_)
        )
    }

    pub fn is_success(&self) -> bool {
        matches!(self, TransferState::Verified)
    }

    /// A short word for status lines and logs.
    pub fn label(&self) -> &'static str {
        match self {
            TransferState::Queued => "queued",
            TransferState::Offered => "waiting for peer",
            TransferState::AwaitingDecision => "offered",
            TransferState::Transferring => "transferring",
            TransferState::Verifying => "verifying",
            TransferState::Verified => "verified",
            TransferState::Rejected(_) => "rejected",
            TransferState::Failed(_) => "failed",
            TransferState::Cancelled(_) => "cancelled",
        }
    }
}

impl fmt::Display for TransferState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransferState::Rejected(why) | TransferState::Failed(why) if !why.is_empty() => {
                write!(f, "{}: {why}", self.label())
            }
            // Cancel reasons read on from the word: "cancelled by the peer".
            TransferState::Cancelled(why) if !why.is_empty() => write!(f, "cancelled {why}"),
            _ => f.write_str(self.label()),
        }
    }
}

/// Bytes moved so far out of the total.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
}

impl Progress {
    pub fn fraction(self) -> f64 {
        if self.total == 0 {
            1.0
        } else {
            self.done as f64 / self.total as f64
        }
    }
}

/// What the session reports about a transfer whenever it changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferUpdate {
    pub id: TransferId,
    /// Relative path as offered (`folder/file.txt`).
    pub path: Shown,
    /// Incoming and verified: where the file now is.
    pub saved_as: Option<std::path::PathBuf>,
    /// Verified: the BLAKE3 both sides agreed on.
    pub hash: Option<[u8; 32]>,
    pub state: TransferState,
    pub progress: Progress,
}

/// Human-readable byte counts (binary units).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let (mut unit, mut scale) = (0, 1u128);
    while unit + 1 < UNITS.len() && u128::from(bytes) >= scale * 1024 {
        unit += 1;
        scale *= 1024;
    }
    if unit == 0 {
        return format!("{bytes} B");
    }
    // In whole numbers: formatting an f64 was a few percent of sending 10,000 small files (one
    // size per file reported). Rounded half to even, as `{:.1}` rounds the exact quotient.
    let x = u128::from(bytes) * 10;
    let (mut tenths, rest) = (x / scale, x % scale);
    if 2 * rest > scale || (2 * rest == scale && tenths % 2 == 1) {
        tenths += 1;
    }
    format!("{}.{} {}", tenths / 10, tenths % 10, UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What `human_size` printed when it divided in floating point.
    fn human_size_f64(bytes: u64) -> String {
        const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
        let mut value = bytes as f64;
        let mut unit = 0;
        while value >= 1024.0 && unit + 1 < UNITS.len() {
            value /= 1024.0;
            unit += 1;
        }
        if unit == 0 {
            format!("{bytes} B")
        } else {
            format!("{value:.1} {}", UNITS[unit])
        }
    }

    proptest! {
        #[test]
        fn human_size_reads_as_the_float_division_did(
            bytes in prop_oneof![0u64..(1 << 22), 0u64..(1 << 53)]
        ) {
            prop_assert_eq!(human_size(bytes), human_size_f64(bytes));
        }
    }

    #[test]
    fn human_sizes_at_the_edges() {
        for bytes in [
            0,
            1023,
            1024,
            1280,
            1331,
            1535,
            1536,
            1048575,
            1048576,
            5 << 30,
            u64::MAX,
        ] {
            if bytes < 1 << 53 {
                assert_eq!(human_size(bytes), human_size_f64(bytes), "{bytes}");
            }
        }
        assert_eq!(human_size(1280), "1.2 KiB");
        assert_eq!(human_size(4096), "4.0 KiB");
        assert_eq!(human_size(1048575), "1024.0 KiB");
        assert_eq!(human_size(u64::MAX), "16777216.0 TiB");
    }

    #[test]
    fn final_states_are_final() {
        assert!(TransferState::Verified.is_final());
        assert!(TransferState::failed("x").is_final());
        assert!(!TransferState::Transferring.is_final());
        assert!(!TransferState::Offered.is_final());
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(64 * 1024 * 1024), "64.0 MiB");
    }

    #[test]
    fn empty_file_progress_is_complete() {
        assert_eq!(Progress { done: 0, total: 0 }.fraction(), 1.0);
    }
}
