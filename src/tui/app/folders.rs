//! A folder is one item in the files pane: its files are grouped under their top folder
//! (`photos/`), accepted, declined or cancelled together, expandable to the files; and when
//! all of them are settled, one line says how the folder went instead of one line per file.
//!
//! A peer offers a folder's files a window at a time, with no count up front, so a folder is
//! settled only once its files have all ended and no new one has come for [`QUIET`].

use std::time::{Duration, Instant};

use super::conversation::Conversation;
use crate::transfer::{Direction, TransferState, human_size};

/// How long a folder's files must all have been settled before it is summed up.
pub const QUIET: Duration = Duration::from_secs(1);

#[derive(Clone, Debug, PartialEq)]
pub struct Folder {
    pub id: u32,
    pub direction: Direction,
    /// The top folder, with its slash: `photos/`.
    pub name: String,
    /// Its files are shown under it.
    pub expanded: bool,
    /// Summed up: its files are settled, and new files of the same name start a new folder.
    pub closed: bool,
    /// When its files were last all settled (none when some still move or wait).
    settled_at: Option<Instant>,
}

/// What a folder's files add up to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub files: usize,
    pub bytes: u64,
    pub done_bytes: u64,
    pub verified: usize,
    pub waiting: usize,
    pub failed: usize,
    /// Declined or cancelled.
    pub dropped: usize,
    pub settled: usize,
}

/// One line pair in the files pane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Item {
    /// A file of no folder (an index into the queue).
    File(usize),
    /// A folder (an index into `folders`).
    Folder(usize),
    /// A file shown under its expanded folder.
    Member(usize),
}

/// `photos/` for `photos/2024/a.jpg`; none for a file at the top.
pub fn top_folder(path: &str) -> Option<String> {
    let (top, rest) = path.split_once('/')?;
    (!top.is_empty() && !rest.is_empty()).then(|| format!("{top}/"))
}

/// `2,000`.
pub fn count(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Conversation {
    /// The folder a new row of `path` joins (made when it is the first of its folder).
    pub(super) fn folder_for(&mut self, path: &str, direction: Direction) -> Option<u32> {
        let name = top_folder(path)?;
        if let Some(folder) = self
            .folders
            .iter_mut()
            .find(|f| !f.closed && f.direction == direction && f.name == name)
        {
            folder.settled_at = None;
            return Some(folder.id);
        }
        let id = self.next_folder;
        self.next_folder += 1;
        self.folders.push(Folder {
            id,
            direction,
            name,
            expanded: false,
            closed: false,
            settled_at: None,
        });
        Some(id)
    }

    pub fn tally(&self, folder: u32) -> Tally {
        let mut tally = Tally::default();
        for row in self.queue.iter().filter(|r| r.folder == Some(folder)) {
            tally.files += 1;
            tally.bytes += row.progress.total;
            tally.done_bytes += if row.state == TransferState::Verified {
                row.progress.total
            } else {
                row.progress.done.min(row.progress.total)
            };
            match &row.state {
                TransferState::Verified => tally.verified += 1,
                TransferState::AwaitingDecision => tally.waiting += 1,
                TransferState::Failed(_) => tally.failed += 1,
                TransferState::Rejected(_) | TransferState::Cancelled(_) => tally.dropped += 1,
                _ => {}
            }
            tally.settled += usize::from(row.state.is_final());
        }
        tally
    }

    /// A row of `folder` changed to `state`: note whether all its files are settled now. Only
    /// a file that settles can settle its folder, so only then are the others counted.
    pub(super) fn folder_changed(&mut self, folder: u32, state: &TransferState, now: Instant) {
        let settled = state.is_final() && {
            let tally = self.tally(folder);
            tally.settled == tally.files
        };
        if let Some(f) = self.folders.iter_mut().find(|f| f.id == folder) {
            f.settled_at = settled.then_some(now);
        }
    }

    /// Folders settled and quiet for [`QUIET`]: closed, and their summaries returned.
    pub(super) fn sum_up_folders(&mut self, now: Instant, peer: &str) -> Vec<(bool, String)> {
        let mut lines = Vec::new();
        for i in 0..self.folders.len() {
            let f = &self.folders[i];
            let due = !f.closed
                && f.settled_at
                    .is_some_and(|at| now.duration_since(at) >= QUIET);
            if !due {
                continue;
            }
            let tally = self.tally(f.id);
            lines.push(summary(&self.folders[i], &tally, peer));
            let f = &mut self.folders[i];
            f.closed = true;
        }
        // Folders whose rows have all gone (forgotten, or offered again) go too.
        let queue = &self.queue;
        self.folders
            .retain(|f| queue.iter().any(|r| r.folder == Some(f.id)));
        lines
    }

    /// Some folder is settled and waits to be summed up.
    pub(super) fn folders_due(&self) -> bool {
        self.folders
            .iter()
            .any(|f| !f.closed && f.settled_at.is_some())
    }

    /// The files pane's items, in queue order: a folder where its first file is, its files
    /// under it when expanded.
    pub fn items(&self) -> Vec<Item> {
        let mut items = Vec::with_capacity(self.queue.len());
        let mut shown: Vec<u32> = Vec::new();
        for (i, row) in self.queue.iter().enumerate() {
            let Some(id) = row.folder else {
                items.push(Item::File(i));
                continue;
            };
            if shown.contains(&id) {
                continue;
            }
            shown.push(id);
            let Some(f) = self.folders.iter().position(|f| f.id == id) else {
                items.push(Item::File(i));
                continue;
            };
            items.push(Item::Folder(f));
            if self.folders[f].expanded {
                items.extend(
                    self.queue
                        .iter()
                        .enumerate()
                        .filter(|(_, r)| r.folder == Some(id))
                        .map(|(j, _)| Item::Member(j)),
                );
            }
        }
        items
    }

    /// The row the selected item is, if it is a file.
    pub(super) fn selected_item(&self) -> Option<Item> {
        self.items().get(self.selected).copied()
    }

    /// Show (or hide) the selected folder's files; from one of its files, hiding selects
    /// the folder.
    pub(super) fn expand(&mut self, open: bool) {
        let folder = match self.selected_item() {
            Some(Item::Folder(f)) => f,
            Some(Item::Member(i)) if !open => {
                let Some(f) = self
                    .folders
                    .iter()
                    .position(|f| Some(f.id) == self.queue[i].folder)
                else {
                    return;
                };
                f
            }
            _ => return,
        };
        self.folders[folder].expanded = open;
        let at = self
            .items()
            .iter()
            .position(|item| *item == Item::Folder(folder));
        self.select(at.unwrap_or(0));
    }
}

fn summary(folder: &Folder, tally: &Tally, peer: &str) -> (bool, String) {
    let files = match tally.files {
        1 => "1 file".to_string(),
        n => format!("{} files", count(n)),
    };
    let size = human_size(tally.bytes);
    let name = &folder.name;
    let all = tally.verified == tally.files;
    let text = match (folder.direction, all) {
        (Direction::Incoming, true) => format!("received {name}: {files}, {size}, all verified"),
        (Direction::Outgoing, true) => {
            format!("sent {name}: {files}, {size}, all verified by {peer}")
        }
        (direction, false) => {
            let verb = if direction == Direction::Incoming {
                "received and verified"
            } else {
                "sent and verified"
            };
            let mut parts = vec![format!("{} of {files} {verb}", count(tally.verified))];
            if tally.failed > 0 {
                parts.push(format!("{} failed", count(tally.failed)));
            }
            if tally.dropped > 0 {
                parts.push(format!("{} declined or cancelled", count(tally.dropped)));
            }
            format!("{name} ({size}): {}", parts.join(", "))
        }
    };
    (!all && tally.failed > 0, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_top_folder_is_the_first_component_of_a_nested_path() {
        assert_eq!(top_folder("photos/2024/a.jpg").as_deref(), Some("photos/"));
        assert_eq!(top_folder("a.jpg"), None);
        assert_eq!(top_folder("/a.jpg"), None);
        assert_eq!(top_folder("dir/"), None);
    }

    #[test]
    fn counts_have_thousands_separators() {
        assert_eq!(count(7), "7");
        assert_eq!(count(2000), "2,000");
        assert_eq!(count(1_234_567), "1,234,567");
    }
}
