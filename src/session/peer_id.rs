//! Which connection an event or a command is about: unique for the life of the program, so a
//! peer that leaves and comes back is a new one, and nothing meant for the old reaches it.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(u64);

impl PeerId {
    /// A new id, never handed out before in this process.
    pub fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

impl std::fmt::Display for PeerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "peer #{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_is_new() {
        let ids: std::collections::BTreeSet<PeerId> = (0..1000).map(|_| PeerId::next()).collect();
        assert_eq!(ids.len(), 1000);
    }
}
