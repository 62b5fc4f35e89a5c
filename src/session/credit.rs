//! The receiver's credit (FLOW): how much file data the sender may have in flight or queued
//! for our disk, all transfers together.
//!
//! One pool for the connection, not a window per transfer: with a window each, a peer whose
//! thousand offers were accepted could have a thousand windows of data in our memory at once.
//! The pool is handed out in steps, round robin, so a small file is not kept waiting behind a
//! big one. It comes back as the disk thread writes, or when a transfer ends. Counting from
//! what is written rather than what was read keeps less file data in the connection: measured
//! (benches/), that halved chat latency under load, for no loss of throughput.

use std::collections::{HashMap, VecDeque};

/// The pool is handed out in steps of at most a quarter of it: a lone transfer still gets all
/// of it, several share it in turn.
const STEPS_PER_POOL: u64 = 4;

/// One transfer's account with the pool.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Account {
    size: u64,
    /// The sender may send data below this offset.
    granted: u64,
    /// Granted and not yet written: this transfer's part of the pool.
    held: u64,
    closed: bool,
}

impl Account {
    pub(super) fn granted(&self) -> u64 {
        self.granted
    }
}

#[derive(Debug, Default)]
pub(super) struct Credit {
    /// Granted and not yet written, all transfers together.
    outstanding: u64,
    /// Transfers that want more, in the order they get it.
    wanting: VecDeque<u32>,
}

impl Credit {
    /// A transfer of `size` bytes starts at `offset` (what is already here) and wants credit.
    pub(super) fn open(&mut self, id: u32, offset: u64, size: u64) -> Account {
        if offset < size {
            self.wanting.push_back(id);
        }
        Account {
            size,
            granted: offset.min(size),
            held: 0,
            closed: false,
        }
    }

    /// `bytes` more of the transfer are on disk: that much of the pool comes back.
    pub(super) fn written(&mut self, account: &mut Account, bytes: u64) {
        let back = bytes.min(account.held);
        account.held -= back;
        self.outstanding -= back;
    }

    /// The transfer ended, one way or another: all it held comes back. Idempotent.
    pub(super) fn close(&mut self, account: &mut Account) {
        self.outstanding -= account.held;
        account.held = 0;
        account.closed = true;
    }

    /// Hand out what the pool of `pool` bytes has free, in turn; `grant(id, upto)` once per
    /// transfer that got more. A pool that shrank below what is out waits for it to come back.
    pub(super) fn refill<T: AsMut<Account>>(
        &mut self,
        pool: u64,
        transfers: &mut HashMap<u32, T>,
        mut grant: impl FnMut(u32, u64),
    ) {
        let step_max = (pool / STEPS_PER_POOL).max(1);
        // Consecutive steps to the same transfer go out as one grant.
        let mut pending: Option<(u32, u64)> = None;
        while let Some(&id) = self.wanting.front() {
            let Some(account) = transfers
                .get_mut(&id)
                .map(AsMut::as_mut)
                .filter(|a| !a.closed && a.granted < a.size)
            else {
                self.wanting.pop_front();
                continue;
            };
            let step = (account.size - account.granted).min(step_max);
            if pool.saturating_sub(self.outstanding) < step {
                break;
            }
            account.granted += step;
            account.held += step;
            self.outstanding += step;
            self.wanting.pop_front();
            if account.granted < account.size {
                self.wanting.push_back(id);
            }
            match pending {
                Some((last, _)) if last == id => {}
                Some((last, upto)) => grant(last, upto),
                None => {}
            }
            pending = Some((id, account.granted));
        }
        if let Some((id, upto)) = pending {
            grant(id, upto);
        }
    }

    #[cfg(test)]
    fn outstanding(&self) -> u64 {
        self.outstanding
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    struct T(Account);

    impl AsMut<Account> for T {
        fn as_mut(&mut self) -> &mut Account {
            &mut self.0
        }
    }

    fn account(map: &mut HashMap<u32, T>, id: u32) -> &mut Account {
        &mut map.get_mut(&id).expect("a transfer with that id").0
    }

    fn refill(credit: &mut Credit, pool: u64, map: &mut HashMap<u32, T>) -> Vec<(u32, u64)> {
        let mut grants = Vec::new();
        credit.refill(pool, map, |id, upto| grants.push((id, upto)));
        grants
    }

    #[test]
    fn a_lone_transfer_gets_the_whole_pool_in_one_grant() {
        let mut credit = Credit::default();
        let mut map = HashMap::from([(1, T(credit.open(1, 0, 100 * MIB)))]);
        assert_eq!(refill(&mut credit, 4 * MIB, &mut map), vec![(1, 4 * MIB)]);
        assert_eq!(credit.outstanding(), 4 * MIB);
        // Nothing more until the disk catches up.
        assert_eq!(refill(&mut credit, 4 * MIB, &mut map), vec![]);
        credit.written(account(&mut map, 1), MIB);
        assert_eq!(refill(&mut credit, 4 * MIB, &mut map), vec![(1, 5 * MIB)]);
    }

    #[test]
    fn many_transfers_share_one_pool_in_turn() {
        let mut credit = Credit::default();
        let mut map: HashMap<u32, T> = (1..=1000)
            .map(|id| (id, T(credit.open(id, 0, 10 * MIB))))
            .collect();
        let grants = refill(&mut credit, 4 * MIB, &mut map);
        // Four steps of 1 MiB, to the first four in order, and not a byte more.
        assert_eq!(grants, vec![(1, MIB), (2, MIB), (3, MIB), (4, MIB)]);
        assert_eq!(credit.outstanding(), 4 * MIB);
        // What comes back goes to the next in line, not to the one that freed it.
        credit.written(account(&mut map, 1), MIB);
        assert_eq!(refill(&mut credit, 4 * MIB, &mut map), vec![(5, MIB)]);
    }

    #[test]
    fn small_files_get_just_their_size_and_many_fit_at_once() {
        let mut credit = Credit::default();
        let mut map: HashMap<u32, T> = (1..=2000)
            .map(|id| (id, T(credit.open(id, 0, 4096))))
            .collect();
        let grants = refill(&mut credit, 4 * MIB, &mut map);
        assert_eq!(grants.len(), 1024, "4 MiB of 4 KiB files");
        assert!(grants.iter().all(|&(_, upto)| upto == 4096));
    }

    #[test]
    fn an_ended_transfer_gives_back_what_it_held_once() {
        let mut credit = Credit::default();
        let mut map = HashMap::from([
            (1, T(credit.open(1, 0, 100 * MIB))),
            (2, T(credit.open(2, 0, 100 * MIB))),
        ]);
        refill(&mut credit, 2 * MIB, &mut map);
        assert_eq!(credit.outstanding(), 2 * MIB);
        let account = account(&mut map, 1);
        credit.close(account);
        credit.close(account);
        assert_eq!(credit.outstanding(), MIB);
        // The closed transfer is skipped from now on.
        let grants = refill(&mut credit, 2 * MIB, &mut map);
        assert_eq!(grants, vec![(2, 2 * MIB)]);
    }

    #[test]
    fn a_resumed_transfer_is_granted_from_its_offset_and_a_complete_one_not_at_all() {
        let mut credit = Credit::default();
        let mut map = HashMap::from([
            (1, T(credit.open(1, 10 * MIB, 11 * MIB))),
            (2, T(credit.open(2, 5, 5))),
        ]);
        assert_eq!(refill(&mut credit, 4 * MIB, &mut map), vec![(1, 11 * MIB)]);
        assert_eq!(map[&2].0.granted(), 5);
    }

    #[test]
    fn a_shrunken_pool_waits_for_what_is_out_to_come_back() {
        let mut credit = Credit::default();
        let mut map = HashMap::from([(1, T(credit.open(1, 0, 100 * MIB)))]);
        refill(&mut credit, 4 * MIB, &mut map);
        assert_eq!(refill(&mut credit, MIB, &mut map), vec![]);
        let account = account(&mut map, 1);
        credit.written(account, 3 * MIB + MIB / 2);
        // Half a MiB out now: the 1 MiB pool has room for two steps of a quarter, one grant.
        assert_eq!(
            refill(&mut credit, MIB, &mut map),
            vec![(1, 4 * MIB + MIB / 2)]
        );
        assert_eq!(credit.outstanding(), MIB);
    }
}
