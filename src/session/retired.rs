//! Transfers that ended, kept a while and then forgotten. A session may move millions of files
//! (or be sent millions of offers by a hostile peer): its tables must not keep them all. An
//! ended transfer is still needed for frames that were in flight when it ended (chunks after a
//! cancel, a late accept), which arrive within moments; only the most recent ones are kept.

use std::collections::{HashMap, VecDeque};

/// Ended transfers remembered per direction. Frames in flight for an ended transfer are at
/// most a credit window's worth, so this is far more than a well-behaved peer needs.
const KEEP: usize = 1024;

#[derive(Debug, Default)]
pub(super) struct Retired {
    /// Ended ids, oldest first. An id may appear twice if it was offered again after it
    /// ended; removal checks that the entry is still ended.
    order: VecDeque<u32>,
}

impl Retired {
    /// `id` ended: forget the oldest ended transfers beyond what is kept. `ended` tells
    /// whether an entry is still an ended one (an id offered again is live, and stays).
    pub(super) fn retire<T>(
        &mut self,
        id: u32,
        table: &mut HashMap<u32, T>,
        ended: impl Fn(&T) -> bool,
    ) {
        self.order.push_back(id);
        while self.order.len() > KEEP {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if table.get(&old).is_some_and(&ended) {
                table.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_most_recent_ended_entries_are_kept() {
        let mut table: HashMap<u32, bool> = HashMap::new();
        let mut retired = Retired::default();
        let total = KEEP as u32 + 10;
        for id in 0..total {
            table.insert(id, true);
            retired.retire(id, &mut table, |&ended| ended);
        }
        assert_eq!(table.len(), KEEP);
        assert!(!table.contains_key(&9));
        assert!(table.contains_key(&10));
        assert!(table.contains_key(&(total - 1)));
    }

    #[test]
    fn an_id_that_lives_again_is_not_forgotten() {
        let mut table: HashMap<u32, bool> = HashMap::new();
        let mut retired = Retired::default();
        table.insert(0, true);
        retired.retire(0, &mut table, |&ended| ended);
        // Offered again: live.
        table.insert(0, false);
        for id in 1..=KEEP as u32 {
            table.insert(id, true);
            retired.retire(id, &mut table, |&ended| ended);
        }
        assert_eq!(table.get(&0), Some(&false));
    }
}
