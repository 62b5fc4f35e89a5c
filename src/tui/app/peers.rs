//! The peer list: what each peer's reports do to its conversation, and moving between
//! conversations. Everything a peer says also shows in Everyone, labelled with its name.

use super::conversation::{Conversation, Link, RowKey};
use super::{Action, App, ConvId, MAX_CONVERSATIONS};
use crate::crypto::known::Verdict;
use crate::net::{PeerReport, Report};
use crate::session::{Command, PeerId, PeerInfo, SessionEvent};
use crate::text::Shown;
use crate::transfer::{Direction, TransferState, TransferUpdate, human_size};
use crate::tui::transcript::MessageKind;

impl App {
    pub(super) fn index_of(&self, id: ConvId) -> Option<usize> {
        self.conversations.iter().position(|c| c.id == id)
    }

    fn index_of_peer(&self, peer: PeerId) -> Option<usize> {
        self.conversations
            .iter()
            .position(|c| !c.everyone && c.peer == Some(peer))
    }

    /// A line in conversation `i`, and in Everyone labelled with the peer's name.
    pub(super) fn post(&mut self, i: usize, kind: MessageKind, sender: &str, text: String) {
        let message = self.message(kind, sender, text);
        if i != 0 {
            let name = Shown::new(self.conversations[i].name.as_str()).to_string();
            let mut copy = message.clone();
            match kind {
                MessageKind::Peer => {}
                MessageKind::Mine => copy.sender = format!("{} → {name}", copy.sender),
                _ => copy.text = format!("[{name}] {}", copy.text),
            }
            self.conversations[0].push(copy);
        }
        self.conversations[i].push(message);
    }

    /// Take conversation `j` (not the open one) out of the list.
    pub(super) fn remove_at(&mut self, j: usize) {
        self.conversations.remove(j);
        if self.open > j {
            self.open -= 1;
        }
    }

    fn post_system(&mut self, i: usize, text: String) {
        self.post(i, MessageKind::System, "", text);
    }

    fn post_error(&mut self, i: usize, text: String) {
        self.post(i, MessageKind::Error, "", text);
    }

    /// A place in the list for a new conversation: at the end, or, when the list is full, in
    /// place of the one that has gone longest without a session (the open one stays).
    fn make_room(&mut self, conversation: Conversation) -> usize {
        if self.conversations.len() < MAX_CONVERSATIONS {
            self.conversations.push(conversation);
            return self.conversations.len() - 1;
        }
        let victim = (1..self.conversations.len())
            .find(|&i| i != self.open && !self.conversations[i].link.is_live());
        match victim {
            Some(i) => {
                self.conversations[i] = conversation;
                i
            }
            // Every place holds a live session: the list grows by one past its bound, which
            // the connection layer's own bound on sessions keeps small.
            None => {
                self.conversations.push(conversation);
                self.conversations.len() - 1
            }
        }
    }

    // ---- reports --------------------------------------------------------------------------

    pub(super) fn on_report(&mut self, report: Report) -> Vec<Action> {
        let Report { peer, what } = report;
        match what {
            PeerReport::Accepted(addr) => {
                self.arriving.push((peer, addr.to_string()));
                Vec::new()
            }
            PeerReport::Reached(addr) => {
                if let Some(i) = self.index_of_peer(peer) {
                    self.conversations[i].link = Link::Handshaking(addr.to_string());
                }
                Vec::new()
            }
            PeerReport::DialFailed(why) => {
                if let Some(i) = self.index_of_peer(peer) {
                    self.conversations[i].offered.clear();
                    self.conversations[i].link = Link::Disconnected(why.clone());
                    self.post_error(
                        i,
                        format!("{why}; Enter on it in the peer list, or /connect, to try again"),
                    );
                }
                Vec::new()
            }
            PeerReport::Refused(command) => {
                if let Some(i) = self.index_of_peer(peer) {
                    let what = match command {
                        Command::Text(_) => "a message was not sent",
                        Command::Offer(_) => "files were not offered",
                        _ => "a command was not carried out",
                    };
                    self.post_error(
                        i,
                        format!("{what}: the session takes no more (its link is stalled or it has ended)"),
                    );
                }
                Vec::new()
            }
            PeerReport::Event(event) => self.on_session(peer, event),
        }
    }

    fn on_session(&mut self, peer: PeerId, event: SessionEvent) -> Vec<Action> {
        if let SessionEvent::Connected(info) = event {
            return self.on_connected(peer, info);
        }
        let Some(i) = self.index_of_peer(peer) else {
            // Not identified yet: an accepted connection that failed its handshake.
            if let SessionEvent::Closed { error } = event {
                let addr = self
                    .arriving
                    .iter()
                    .find(|(p, _)| *p == peer)
                    .map(|(_, a)| a.clone())
                    .unwrap_or_default();
                self.arriving.retain(|(p, _)| *p != peer);
                if let Some(e) = error {
                    self.post_error(0, format!("{addr} could not be identified: {e}"));
                }
            }
            return Vec::new();
        };
        match event {
            SessionEvent::Connected(_) => {}
            SessionEvent::Text {
                text,
                encoding,
                lossy,
            } => {
                let name = self.conversations[i].name.clone();
                // Cleaned line by line: the message pane keeps a message's own line breaks.
                let lines: Vec<String> = text.shown_lines().map(|l| l.to_string()).collect();
                self.post(i, MessageKind::Peer, &name, lines.join("\n"));
                if lossy {
                    self.post_error(
                        i,
                        format!(
                            "that message had bytes that are not valid {encoding}; they show as \u{fffd}"
                        ),
                    );
                }
                if i != self.open && self.open != 0 {
                    let conv = &mut self.conversations[i];
                    conv.unread += 1;
                    self.bell |= conv.unread == 1;
                }
            }
            SessionEvent::EncodingChanged(encoding) => {
                if self.conversations[i].encoding == encoding {
                    return Vec::new();
                }
                self.conversations[i].encoding = encoding;
                self.post_system(i, format!("outgoing encoding switched to {encoding}"));
            }
            SessionEvent::PeerRenamed(name) => {
                let conv = &mut self.conversations[i];
                if let Link::Connected(info) = &mut conv.link {
                    info.name = name.clone();
                }
                let old = std::mem::replace(&mut conv.name, name.to_string());
                self.post_system(i, format!("{old} is now called {name}"));
            }
            SessionEvent::Transfer(update) => self.on_transfer(i, update),
            SessionEvent::Notice(text) => self.post_system(i, text.to_string()),
            SessionEvent::Closed { error } => {
                let conv = &mut self.conversations[i];
                let reason = match error {
                    Some(e) => e.to_string(),
                    None => format!("{} left", conv.name),
                };
                conv.offered.clear();
                conv.link = Link::Disconnected(reason.clone());
                self.post_error(i, format!("disconnected: {reason}"));
            }
        }
        Vec::new()
    }

    /// A session identified its peer: its conversation is the one dialled for it, or the
    /// one already kept under that name, or a new one.
    fn on_connected(&mut self, peer: PeerId, info: PeerInfo) -> Vec<Action> {
        let addr = info.addr.map(|a| a.to_string()).unwrap_or_default();
        let name = if info.raw {
            addr.clone()
        } else {
            info.name.to_string()
        };
        self.arriving.retain(|(p, _)| *p != peer);
        let i = match self.index_of_peer(peer) {
            Some(i) => i,
            None => {
                let known = (1..self.conversations.len()).find(|&j| {
                    let c = &self.conversations[j];
                    c.name == name && !c.link.is_live()
                });
                match known {
                    Some(j) => j,
                    None => self.make_room(Conversation::new(name.clone(), Link::Idle)),
                }
            }
        };
        // A shell kept from the history under the same name is this peer: it goes.
        let shell = (1..self.conversations.len()).find(|&j| {
            let c = &self.conversations[j];
            j != i && c.name == name && c.link == Link::Idle && c.transcript.messages().is_empty()
        });
        let i = match shell {
            Some(j) => {
                self.remove_at(j);
                if i > j { i - 1 } else { i }
            }
            None => i,
        };
        // Dial it again later at the address it came from (the port we know only if we
        // dialled it ourselves).
        let raw = info.raw;
        let about_key = key_words(&name, &info);
        let encoding = self.encoding;
        let conv = &mut self.conversations[i];
        if !conv.link.is_live() {
            // Accepted: the session started with the defaults.
            conv.encoding = encoding;
        }
        conv.peer = Some(peer);
        conv.name = name.clone();
        if conv.target.is_none() {
            conv.target = info.addr.map(|a| a.ip().to_string());
        }
        conv.link = Link::Connected(info);
        // The peer's earlier messages, read from the history meanwhile, go here.
        let asked = conv.past_asked;
        if !asked {
            conv.past_mark = Some(conv.transcript.mark());
        }
        if raw {
            self.post_system(
                i,
                format!(
                    "raw peer {addr}: plain bytes, no framing, not encrypted; files cannot be sent to it"
                ),
            );
        } else {
            self.post_system(i, format!("connected to {name} ({addr}), {}", about_key.0));
        }
        if let Some(warning) = about_key.1 {
            self.post_error(i, warning);
            self.bell = true;
        }
        // Nobody else to talk to: this conversation opens; otherwise the list shows it and
        // the bell rings.
        let alone = !(1..self.conversations.len())
            .any(|j| j != i && self.conversations[j].link.has_session());
        if i != self.open {
            if (self.open == 0 || !self.conv().link.is_live()) && alone {
                self.open_at(i);
            } else {
                self.bell = true;
            }
        }
        let mut actions = Vec::new();
        let conv = &mut self.conversations[i];
        if !conv.past_asked {
            conv.past_asked = true;
            actions.push(Action::ReadPast {
                to: conv.id,
                peer: name,
            });
        }
        if raw {
            return actions;
        }
        let mut files = self.conversations[i].take_pending();
        if alone {
            files.extend(self.conversations[0].take_pending());
        }
        if !files.is_empty() {
            actions.extend(self.offer(i, files));
        }
        actions
    }

    /// Offer `files` to conversation `i`'s peer.
    pub(super) fn offer(
        &mut self,
        i: usize,
        files: Vec<crate::transfer::outgoing::OutgoingFile>,
    ) -> Vec<Action> {
        let Some(peer) = self.conversations[i].session() else {
            return Vec::new();
        };
        let total: u64 = files.iter().map(|f| f.size).sum();
        self.post_system(
            i,
            format!("offering {} file(s), {}", files.len(), human_size(total)),
        );
        self.conversations[i].offered.extend(files.iter().cloned());
        vec![Action::Session(peer, Command::Offer(files))]
    }

    fn on_transfer(&mut self, i: usize, update: TransferUpdate) {
        let now = std::time::Instant::now();
        let conv = &mut self.conversations[i];
        let (index, is_new) = conv.row_for(update.id, &update.path, &update.state, update.progress);
        let peer = conv.name.clone();
        let row = &mut conv.queue[index];
        let changed = is_new || row.state != update.state;
        if update.state == TransferState::Transferring {
            if let Some((at, done)) = row.sample {
                let dt = now.duration_since(at).as_secs_f64();
                if dt > 0.0 && update.progress.done >= done {
                    let rate = (update.progress.done - done) as f64 / dt;
                    row.speed = if row.speed == 0.0 {
                        rate
                    } else {
                        0.7 * row.speed + 0.3 * rate
                    };
                }
            }
            row.sample = Some((now, update.progress.done));
        }
        row.state = update.state.clone();
        row.progress = update.progress;
        row.saved_as = update.saved_as.clone();
        if !changed {
            return;
        }
        let folder = row.folder;
        if let Some(folder) = folder {
            conv.folder_changed(folder, &update.state, now);
            // A folder's files are one item: its offer is said once, its end in one line when
            // all are settled (`Msg::Tick`); only a file's failure is said on its own.
            let first = conv
                .queue
                .iter()
                .filter(|r| r.folder == Some(folder))
                .count()
                == 1;
            let name = conv
                .folders
                .iter()
                .find(|f| f.id == folder)
                .map(|f| f.name.clone())
                .unwrap_or_default();
            match &update.state {
                TransferState::AwaitingDecision if first => {
                    self.post_system(i, format!(
                        "{peer} offers the folder {name}: Tab to the files, then a or d and y to accept or decline all of it (→ shows its files)"
                    ));
                    if i != self.open {
                        self.bell = true;
                    }
                }
                TransferState::Offered if first => {
                    self.post_system(i, format!("offering the folder {name}"));
                }
                TransferState::Failed(why) => {
                    self.post_error(i, format!("{} failed: {why}", update.path));
                }
                _ => {}
            }
            return;
        }
        let path = update.path.clone();
        let size = human_size(update.progress.total);
        match (&update.state, update.id.direction) {
            (TransferState::AwaitingDecision, _) => {
                self.post_system(i, format!(
                    "{peer} offers {path} ({size}): Tab to the files, then a or d and y to accept or decline (or /accept)"
                ));
                if i != self.open {
                    self.bell = true;
                }
            }
            (TransferState::Verified, Direction::Incoming) => {
                let saved = update
                    .saved_as
                    .map(|p| Shown::new(p.display().to_string()))
                    .unwrap_or(path.clone());
                self.post_system(
                    i,
                    format!("received {path} ({size}), BLAKE3 verified: {saved}"),
                );
            }
            (TransferState::Verified, Direction::Outgoing) => {
                self.post_system(i, format!("sent {path} ({size}), verified by {peer}"));
            }
            (TransferState::Failed(why), _) => self.post_error(i, format!("{path} failed: {why}")),
            (TransferState::Rejected(why), Direction::Outgoing) => {
                self.post_system(i, format!("{peer} declined {path}: {why}"));
            }
            (state @ TransferState::Cancelled(_), _) => {
                self.post_system(i, format!("{path}: {state}"));
            }
            _ => {}
        }
    }

    // ---- saying ---------------------------------------------------------------------------

    /// `text` to conversation `i`'s peer; nothing (and the line stays typed) when it has no
    /// session.
    pub(super) fn say_to(&mut self, i: usize, text: String) -> Vec<Action> {
        let Some(peer) = self.conversations[i].session() else {
            let name = Shown::new(self.conversations[i].name.as_str()).to_string();
            self.error(format!(
                "{name} is not connected: the message was not sent (it is still in the input line)"
            ));
            return Vec::new();
        };
        let me = self.name.clone();
        self.post(i, MessageKind::Mine, &me, text.clone());
        self.conversations[i].transcript.to_bottom();
        vec![Action::Session(peer, Command::Text(text))]
    }

    /// `text` to every peer with a session.
    pub(super) fn say_to_everyone(&mut self, text: String) -> Vec<Action> {
        let peers: Vec<(usize, PeerId)> = (1..self.conversations.len())
            .filter_map(|i| self.conversations[i].session().map(|p| (i, p)))
            .collect();
        if peers.is_empty() {
            self.error(
                "nobody is connected: the message was not sent (it is still in the input line)",
            );
            return Vec::new();
        }
        let me = self.name.clone();
        let message = self.message(MessageKind::Mine, &me, text.clone());
        for &(i, _) in &peers {
            self.conversations[i].push(message.clone());
        }
        self.conversations[0].push(message);
        self.conversations[0].transcript.to_bottom();
        peers
            .into_iter()
            .map(|(_, peer)| Action::Session(peer, Command::Text(text.clone())))
            .collect()
    }

    // ---- moving between conversations ----------------------------------------------------

    /// Open the conversation at `index` (wrapping around the list).
    pub(super) fn open_at(&mut self, index: usize) {
        let index = index % self.conversations.len();
        if index != self.open {
            self.prompt = None;
        }
        self.open = index;
        let width = self.viewport.0 as usize;
        let conv = &mut self.conversations[index];
        conv.unread = 0;
        conv.transcript.set_width(width);
        conv.select(conv.selected);
    }

    /// Alt-1…9 open the peers in the list's order; Alt-0 opens Everyone.
    pub(super) fn open_number(&mut self, n: u8) {
        let index = usize::from(n);
        if index < self.conversations.len() {
            self.open_at(index);
        }
    }

    pub(super) fn open_next_unread(&mut self) {
        let n = self.conversations.len();
        if let Some(i) = (1..n)
            .map(|k| (self.open + k) % n)
            .find(|&i| self.conversations[i].unread > 0)
        {
            self.open_at(i);
        }
    }

    /// Enter on a peer in the list: dial it when it has no session.
    pub(super) fn dial_open(&mut self) -> Vec<Action> {
        let conv = self.conv();
        if conv.everyone || conv.link.is_live() {
            return Vec::new();
        }
        match conv.target.clone() {
            Some(target) => self.dial(self.open, target),
            None => {
                self.error("no address is known for this peer: /connect HOST[:PORT]");
                Vec::new()
            }
        }
    }

    /// Dial `target` for conversation `i`.
    pub(super) fn dial(&mut self, i: usize, target: String) -> Vec<Action> {
        let peer = PeerId::next();
        let encoding = self.encoding;
        let conv = &mut self.conversations[i];
        conv.encoding = encoding;
        conv.peer = Some(peer);
        conv.target = Some(target.clone());
        conv.dialled = true;
        conv.link = Link::Connecting(target.clone());
        self.post_system(i, format!("connecting to {target}…"));
        vec![Action::Dial { peer, target }]
    }

    /// `/connect TARGET`: a new conversation (or the one that last dialled it), opened.
    pub fn connect(&mut self, target: String) -> Vec<Action> {
        let existing = (1..self.conversations.len()).find(|&i| {
            let c = &self.conversations[i];
            c.target.as_deref() == Some(target.as_str()) && !c.link.is_live()
        });
        let i = match existing {
            Some(i) => i,
            None => self.make_room(Conversation::new(target.clone(), Link::Idle)),
        };
        self.open_at(i);
        self.dial(i, target)
    }

    /// Peers the history knows, listed (not dialled) unless already there.
    pub(super) fn add_known(&mut self, peers: Vec<(String, Option<String>)>) {
        for (name, addr) in peers {
            if self.conversations.len() >= MAX_CONVERSATIONS {
                break;
            }
            if self
                .conversations
                .iter()
                .any(|c| !c.everyone && c.name == name)
            {
                continue;
            }
            let mut conv = Conversation::new(name, Link::Idle);
            conv.target = addr.and_then(|a| {
                a.parse::<std::net::SocketAddr>()
                    .ok()
                    .map(|s| s.ip().to_string())
            });
            self.conversations.push(conv);
        }
    }

    /// Open offers waiting for our answer in conversation `i`.
    pub(super) fn waiting_offers(&self, i: usize) -> Vec<Action> {
        let conv = &self.conversations[i];
        let Some(peer) = conv.session() else {
            return Vec::new();
        };
        conv.queue
            .iter()
            .filter(|r| r.state == TransferState::AwaitingDecision)
            .filter_map(|r| match r.key {
                RowKey::Transfer(id) => Some(Action::Session(peer, Command::Accept(id))),
                RowKey::Local(_) => None,
            })
            .collect()
    }
}

/// What to say of a tern peer's key when it connects, and a warning when it changed.
fn key_words(name: &str, info: &PeerInfo) -> (String, Option<String>) {
    let Some(key) = &info.key else {
        return (
            "NOT encrypted (--insecure): anyone on the network can read and alter this".into(),
            None,
        );
    };
    let standing = match &key.standing {
        Verdict::FirstContact => "first contact: /verify to be sure it is them",
        Verdict::Known { verified: true } => "verified",
        Verdict::Known { verified: false } => "known (/verify to be sure it is them)",
        Verdict::KeyChanged { .. } => "KEY CHANGED",
    };
    let said = format!("encrypted; key {}, {standing}", key.fingerprint);
    let warning = match &key.standing {
        Verdict::KeyChanged { previous } => Some(format!(
            "WARNING: {name} presents a different key than before (was {previous}, now {}). \
             Someone may be pretending to be {name}, or {name} reinstalled tern. Nothing is sent \
             to it and no file is accepted from it until you /trust the new key; /verify \
             compares the digits with {name} first, /close leaves.",
            key.fingerprint
        )),
        _ => None,
    };
    (said, warning)
}
