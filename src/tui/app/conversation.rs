//! One conversation: a peer's messages and files, and where its link stands. The peer list is
//! a list of these, with Everyone at the top.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Instant;

use crate::session::{PeerId, PeerInfo};
use crate::text::Encoding;
use crate::transfer::outgoing::OutgoingFile;
use crate::transfer::{Direction, Progress, TransferId, TransferState};
use crate::tui::transcript::{Message, Transcript};

use super::folders::{Folder, Item};

/// Where a conversation's link stands, for the peer list, the status bar and what input may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    /// No session this run: a peer known from the history, or Everyone.
    Idle,
    /// Dialling a peer.
    Connecting(String),
    /// TCP is up; the session is identifying the peer.
    Handshaking(String),
    Connected(PeerInfo),
    /// The last session ended, with this reason.
    Disconnected(String),
}

impl Link {
    /// A session exists that will take commands (now or once identified).
    pub fn has_session(&self) -> bool {
        matches!(self, Link::Handshaking(_) | Link::Connected(_))
    }

    /// A session exists or is being dialled.
    pub fn is_live(&self) -> bool {
        self.has_session() || matches!(self, Link::Connecting(_))
    }
}

/// Identity of a queue row: a real transfer, or a file queued before any peer was there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowKey {
    Local(u32),
    Transfer(TransferId),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub key: RowKey,
    pub path: String,
    /// Outgoing: the file here, for retry.
    pub local: Option<OutgoingFile>,
    pub saved_as: Option<PathBuf>,
    pub state: TransferState,
    /// Declined here, by the user. The reason the session keeps is the one sent to the peer
    /// ("declined by the receiver"), which is the wrong way round on this side.
    pub declined_by_you: bool,
    pub progress: Progress,
    /// Smoothed bytes per second while transferring.
    pub speed: f64,
    pub(super) sample: Option<(Instant, u64)>,
    /// The folder it is shown under (see `folders`).
    pub folder: Option<u32>,
}

impl Row {
    pub fn direction(&self) -> Direction {
        match self.key {
            RowKey::Local(_) => Direction::Outgoing,
            RowKey::Transfer(id) => id.direction,
        }
    }

    /// Seconds left at the current speed.
    pub fn eta_secs(&self) -> Option<u64> {
        let left = self.progress.total.saturating_sub(self.progress.done);
        (self.speed > 1.0).then(|| (left as f64 / self.speed).ceil() as u64)
    }

    pub(super) fn is_active(&self) -> bool {
        matches!(
            self.state,
            TransferState::Transferring | TransferState::Verifying | TransferState::Offered
        )
    }

    /// A row as the view sees it in tests and in the demo.
    pub fn new(key: RowKey, path: &str, state: TransferState, progress: Progress) -> Self {
        Self {
            key,
            path: path.to_string(),
            local: None,
            saved_as: None,
            state,
            declined_by_you: false,
            progress,
            speed: 0.0,
            sample: None,
            folder: None,
        }
    }

    pub fn with_speed(mut self, speed: f64) -> Self {
        self.speed = speed;
        self
    }
}

/// Which conversation, for as long as the program runs (a list position may be reused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvId(u64);

impl ConvId {
    fn next() -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// Rows the files pane keeps before the oldest finished ones go.
pub(super) const MAX_ROWS: usize = 2_000;

#[derive(Debug)]
pub struct Conversation {
    pub id: ConvId,
    /// The entry at the top of the list: every conversation at once.
    pub everyone: bool,
    /// As the list shows it: the peer's name, or the address dialled or heard from.
    pub name: String,
    /// Where to dial this peer again.
    pub target: Option<String>,
    /// `target` was dialled this run (and answered), not guessed from where the peer came from.
    pub dialled: bool,
    /// The session behind this conversation now, or the last one.
    pub peer: Option<PeerId>,
    pub link: Link,
    pub transcript: Transcript,
    /// Where the peer's earlier messages go when the history has been read.
    pub(super) past_mark: Option<usize>,
    /// The history has been asked for (it is shown once).
    pub(super) past_asked: bool,
    pub queue: Vec<Row>,
    pub selected: usize,
    /// Files queued while no tern peer was connected, offered when one is.
    pub(super) pending: Vec<OutgoingFile>,
    /// Files offered, in order, waiting for their first event (to learn their ids).
    pub(super) offered: VecDeque<OutgoingFile>,
    /// Messages from the peer not seen yet.
    pub unread: usize,
    /// How our text to this peer is encoded.
    pub encoding: Encoding,
    /// Folders in the files pane (see `folders`).
    pub folders: Vec<Folder>,
    /// What discovery last heard of this peer on the LAN (none: not heard, or gone).
    pub lan: Option<crate::net::discovery::Found>,
    /// Listed only because discovery heard it (not from the history nor a session): it goes
    /// when the peer leaves the LAN, if nothing happened with it.
    pub(super) from_lan: bool,
    pub(super) next_folder: u32,
}

impl Conversation {
    pub fn new(name: impl Into<String>, link: Link) -> Self {
        Self {
            id: ConvId::next(),
            everyone: false,
            name: name.into(),
            target: None,
            dialled: false,
            peer: None,
            link,
            transcript: Transcript::default(),
            past_mark: None,
            past_asked: false,
            queue: Vec::new(),
            selected: 0,
            pending: Vec::new(),
            offered: VecDeque::new(),
            unread: 0,
            encoding: Encoding::default(),
            folders: Vec::new(),
            next_folder: 0,
            lan: None,
            from_lan: false,
        }
    }

    /// Nothing was said or sent here: an entry only.
    pub fn is_blank(&self) -> bool {
        self.transcript.messages().is_empty() && self.queue.is_empty() && self.pending.is_empty()
    }

    pub fn everyone() -> Self {
        Self {
            everyone: true,
            ..Self::new("Everyone", Link::Idle)
        }
    }

    /// The peer's session, if it takes commands.
    pub fn session(&self) -> Option<PeerId> {
        self.peer.filter(|_| self.link.has_session())
    }

    /// Identified as a raw peer (no framing: no files).
    pub fn is_raw(&self) -> bool {
        matches!(&self.link, Link::Connected(peer) if peer.raw)
    }

    pub fn push(&mut self, message: Message) {
        self.transcript.push(message);
    }

    pub(super) fn select(&mut self, index: usize) {
        self.selected = index.min(self.items().len().saturating_sub(1));
    }

    /// The selected file (none when a folder is selected).
    pub(super) fn selected_row(&self) -> Option<&Row> {
        match self.selected_item()? {
            Item::File(i) | Item::Member(i) => self.queue.get(i),
            Item::Folder(_) => None,
        }
    }

    pub(super) fn has_active_transfers(&self) -> bool {
        self.queue.iter().any(Row::is_active)
    }

    /// Transfers whose bytes are moving (quitting would cut them).
    pub(super) fn running_transfers(&self) -> usize {
        self.queue
            .iter()
            .filter(|r| {
                matches!(
                    r.state,
                    TransferState::Transferring | TransferState::Verifying
                )
            })
            .count()
    }

    /// Bytes per second in `direction`.
    pub(super) fn rate(&self, direction: Direction) -> f64 {
        self.queue
            .iter()
            .filter(|r| r.direction() == direction && r.state == TransferState::Transferring)
            .map(|r| r.speed)
            .sum()
    }

    /// Speeds decay while nothing is heard.
    pub(super) fn tick(&mut self, now: Instant) {
        for row in &mut self.queue {
            if let Some((at, _)) = row.sample
                && row.state == TransferState::Transferring
                && now.duration_since(at).as_secs_f64() > 2.0
            {
                row.speed *= 0.5;
            }
        }
    }

    /// Past `MAX_ROWS`, the oldest finished rows go (those still moving or waiting stay, and
    /// a peer may have at most `MAX_OPEN_OFFERS` open): the queue must not keep every file
    /// of a long session. In batches, so a full queue does not shift for every new row.
    pub(super) fn forget_finished_rows(&mut self) {
        if self.queue.len() < MAX_ROWS {
            return;
        }
        let mut excess = self.queue.len() - MAX_ROWS * 7 / 8;
        let selected = self.queue.get(self.selected).map(|r| r.key);
        self.queue.retain(|row| {
            let forget = excess > 0 && row.state.is_final();
            excess -= usize::from(forget);
            !forget
        });
        let index = selected.and_then(|key| self.queue.iter().position(|r| r.key == key));
        let item = index.and_then(|i| {
            self.items()
                .iter()
                .position(|item| matches!(item, Item::File(j) | Item::Member(j) if *j == i))
        });
        self.select(item.unwrap_or(0));
    }

    /// Queue `files` as local rows, waiting for a peer.
    pub(super) fn hold(&mut self, files: Vec<OutgoingFile>, next_local: &mut u32) {
        for file in files {
            let key = RowKey::Local(*next_local);
            *next_local += 1;
            let mut row = Row::new(
                key,
                &file.rel_path,
                TransferState::Queued,
                Progress {
                    done: 0,
                    total: file.size,
                },
            );
            row.local = Some(file.clone());
            row.folder = self.folder_for(&file.rel_path, Direction::Outgoing);
            self.queue.push(row);
            self.pending.push(file);
        }
    }

    /// The files held for a peer, their rows gone (they come back as offers).
    pub(super) fn take_pending(&mut self) -> Vec<OutgoingFile> {
        self.queue
            .retain(|r| !matches!(r.key, RowKey::Local(_)) || r.state.is_final());
        std::mem::take(&mut self.pending)
    }

    /// The row for `update`, made when new; and whether it is new.
    pub(super) fn row_for(
        &mut self,
        id: TransferId,
        path: &str,
        state: &TransferState,
        progress: Progress,
    ) -> (usize, bool) {
        let key = RowKey::Transfer(id);
        if let Some(i) = self.queue.iter().position(|r| r.key == key) {
            return (i, false);
        }
        let mut row = Row::new(key, path, state.clone(), progress);
        if id.direction == Direction::Outgoing {
            row.local = self.offered.pop_front();
        }
        row.folder = self.folder_for(path, id.direction);
        self.forget_finished_rows();
        self.queue.push(row);
        (self.queue.len() - 1, true)
    }
}
