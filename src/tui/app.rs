//! The TUI's model and `update`: every input (key, paste, session event) becomes a new state
//! and a list of things for the loop to do. No I/O here, so all of it is testable.

mod prompt;

pub use prompt::{FileAction, Prompt};

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Instant;

use crossterm::event::KeyEvent;

use super::input::InputLine;
use super::keymap::{self, Focus, Intent, KeyContext};
use super::paste;
use super::transcript::{Message, MessageKind, Transcript};
use crate::session::{Command, PeerInfo, SessionEvent};
use crate::text::Encoding;
use crate::text::Shown;
use crate::transfer::outgoing::OutgoingFile;
use crate::transfer::{Direction, Progress, TransferId, TransferState, TransferUpdate, human_size};

/// Where the connection stands, for the status bar and what input may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    /// Waiting for a peer on these addresses.
    Listening {
        addresses: Vec<String>,
        port: u16,
    },
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
    sample: Option<(Instant, u64)>,
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

    fn is_active(&self) -> bool {
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
        }
    }

    pub fn with_speed(mut self, speed: f64) -> Self {
        self.speed = speed;
        self
    }
}

/// Everything that can happen to the app.
#[derive(Debug)]
pub enum Msg {
    Key(KeyEvent),
    Paste(String),
    /// Mouse wheel: `up`, and whether the pointer is over the queue.
    Wheel {
        up: bool,
        over_queue: bool,
    },
    Session(SessionEvent),
    Link(Link),
    /// Paths expanded into files (or the error that stopped it).
    Collected(Result<Vec<OutgoingFile>, String>),
    /// Time passed while transfers run: speeds decay, ETAs move.
    Tick,
    /// The history's messages matching a `/search`, oldest first (or why there are none).
    Found {
        query: String,
        result: Result<Vec<crate::history::Entry>, String>,
    },
    /// What the history holds of the peer just connected, oldest first.
    Past {
        peer: String,
        entries: Vec<crate::history::Entry>,
    },
}

/// What the loop should do after an update.
#[derive(Debug)]
pub enum Action {
    Session(Command),
    /// Expand these paths into files (disk I/O: off the UI thread).
    Collect(Vec<PathBuf>),
    Connect(String),
    /// Look for messages in the history (disk I/O: off the UI thread).
    Search(String),
    Quit,
}

/// Rows the files pane keeps before the oldest finished ones go.
const MAX_ROWS: usize = 2_000;

pub struct App {
    pub name: String,
    pub encoding: Encoding,
    pub link: Link,
    pub transcript: Transcript,
    /// Where the connected peer's earlier messages go when the history has been read.
    past_mark: Option<usize>,
    pub queue: Vec<Row>,
    pub selected: usize,
    pub input: InputLine,
    pub focus: Focus,
    pub help_open: bool,
    pub confirm_quit: bool,
    /// A decline or cancel waiting for y / n in the status line.
    pub prompt: Option<Prompt>,
    pub color: bool,
    /// Inner size of the message pane at the last draw.
    pub viewport: (u16, u16),
    /// Rows of the queue pane at the last draw.
    pub queue_rows: u16,
    home: Option<PathBuf>,
    clock: fn() -> String,
    next_local: u32,
    /// Files queued while no tern peer was connected.
    pending: Vec<OutgoingFile>,
    /// Files offered, in order, waiting for their first event (to learn their ids).
    offered: VecDeque<OutgoingFile>,
    /// The peer we dialled last, to dial again for a retry.
    last_target: Option<String>,
}

/// `HH:MM` in local time.
pub fn local_clock() -> String {
    chrono::Local::now().format("%H:%M").to_string()
}

impl App {
    pub fn new(name: String, encoding: Encoding, link: Link, clock: fn() -> String) -> Self {
        let link_for_target = link.clone();
        Self {
            name,
            encoding,
            link,
            transcript: Transcript::default(),
            past_mark: None,
            queue: Vec::new(),
            selected: 0,
            input: InputLine::default(),
            focus: Focus::Input,
            help_open: false,
            confirm_quit: false,
            prompt: None,
            color: true,
            viewport: (0, 0),
            queue_rows: 0,
            home: std::env::var_os("HOME").map(PathBuf::from),
            clock,
            next_local: 1,
            pending: Vec::new(),
            offered: VecDeque::new(),
            last_target: match &link_for_target {
                Link::Connecting(target) => Some(target.clone()),
                _ => None,
            },
        }
    }

    pub fn set_viewport(&mut self, width: u16, height: u16) {
        self.viewport = (width, height);
        self.transcript.set_width(width as usize);
    }

    fn page(&self) -> usize {
        (self.viewport.1 as usize).saturating_sub(1).max(1)
    }

    /// Some transfer is moving or waiting for an answer.
    pub fn has_active_transfers(&self) -> bool {
        self.queue.iter().any(Row::is_active)
    }

    /// Transfers whose bytes are moving (quitting would cut them).
    pub fn running_transfers(&self) -> usize {
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

    /// Total bytes per second in each direction.
    pub fn throughput(&self) -> (f64, f64) {
        let sum = |d: Direction| {
            self.queue
                .iter()
                .filter(|r| r.direction() == d && r.state == TransferState::Transferring)
                .map(|r| r.speed)
                .sum()
        };
        (sum(Direction::Outgoing), sum(Direction::Incoming))
    }

    pub fn push(&mut self, kind: MessageKind, sender: &str, text: impl Into<String>) {
        self.transcript.push(Message {
            time: (self.clock)(),
            kind,
            sender: sender.to_string(),
            text: text.into(),
        });
    }

    fn show_found(&mut self, query: &str, result: Result<Vec<crate::history::Entry>, String>) {
        let query = Shown::new(query);
        let entries = match result {
            Ok(entries) => entries,
            Err(e) => {
                self.error(format!("/search {query}: {e}"));
                return;
            }
        };
        if entries.is_empty() {
            self.system(format!("no message in the history matches {query}"));
            return;
        }
        self.system(format!("{} message(s) match {query}:", entries.len()));
        for entry in &entries {
            if let crate::history::EntryKind::Message { text, .. } = &entry.kind {
                let when = chrono::DateTime::parse_from_rfc3339(&entry.time)
                    .map(|t| {
                        t.with_timezone(&chrono::Local)
                            .format("%Y-%m-%d %H:%M")
                            .to_string()
                    })
                    .unwrap_or_default();
                let arrow = match entry.direction {
                    crate::history::Direction::In => "from",
                    crate::history::Direction::Out => "to",
                };
                self.system(format!(
                    "  {when} {arrow} {}: {}",
                    Shown::new(entry.peer.as_str()),
                    Shown::new(text.as_str())
                ));
            }
        }
        self.transcript.to_bottom();
    }

    /// The conversation's earlier messages and files, from the history, before the new ones.
    fn show_past(&mut self, peer: &str, entries: &[crate::history::Entry]) {
        use crate::history::{Direction, EntryKind};
        if entries.is_empty() {
            return;
        }
        let peer_shown = Shown::new(peer).to_string();
        let now = (self.clock)();
        let note = |text: String| Message {
            time: now.clone(),
            kind: MessageKind::System,
            sender: String::new(),
            text,
        };
        let mut past = vec![note(format!(
            "earlier with {peer_shown} (the last {} from the history):",
            entries.len()
        ))];
        let me = self.name.clone();
        for entry in entries {
            let time = chrono::DateTime::parse_from_rfc3339(&entry.time)
                .map(|t| t.with_timezone(&chrono::Local).format("%H:%M").to_string())
                .unwrap_or_default();
            let (kind, sender, text) = match (&entry.kind, entry.direction) {
                (EntryKind::Message { text, .. }, direction) => {
                    let text = crate::text::PeerText::new(text.clone());
                    let lines: Vec<String> = text.shown_lines().map(|l| l.to_string()).collect();
                    match direction {
                        Direction::In => (MessageKind::Peer, peer_shown.clone(), lines.join("\n")),
                        Direction::Out => (MessageKind::Mine, me.clone(), lines.join("\n")),
                    }
                }
                (
                    EntryKind::File {
                        name,
                        size,
                        outcome,
                        ..
                    },
                    direction,
                ) => {
                    let arrow = if direction == Direction::In {
                        "↓"
                    } else {
                        "↑"
                    };
                    let line = format!(
                        "{arrow} {} ({}): {}",
                        Shown::new(name.as_str()),
                        human_size(*size),
                        Shown::new(outcome.as_str())
                    );
                    (MessageKind::System, String::new(), line)
                }
            };
            past.push(Message {
                time,
                kind,
                sender,
                text,
            });
        }
        past.push(note("(end of the history)".into()));
        let mark = self
            .past_mark
            .take()
            .unwrap_or_else(|| self.transcript.mark());
        self.transcript.insert_at(mark, past);
    }

    fn system(&mut self, text: impl Into<String>) {
        self.push(MessageKind::System, "", text);
    }

    fn error(&mut self, text: impl Into<String>) {
        self.push(MessageKind::Error, "", text);
    }

    fn peer_name(&self) -> String {
        match &self.link {
            Link::Connected(peer) => peer.name.to_string(),
            _ => "peer".into(),
        }
    }

    pub fn update(&mut self, msg: Msg) -> Vec<Action> {
        match msg {
            Msg::Key(key) => self.on_key(&key),
            Msg::Paste(text) => {
                // The paste lands in the input line: a `y` typed after it is text, not a yes.
                self.prompt = None;
                self.on_paste(&text)
            }
            Msg::Wheel { up, over_queue } => {
                if over_queue {
                    self.apply(if up {
                        Intent::SelectUp
                    } else {
                        Intent::SelectDown
                    })
                } else if up {
                    self.transcript.scroll_up(3, self.viewport.1 as usize);
                    Vec::new()
                } else {
                    self.transcript.scroll_down(3);
                    Vec::new()
                }
            }
            Msg::Session(event) => self.on_session(event),
            Msg::Link(link) => self.on_link(link),
            Msg::Found { query, result } => {
                self.show_found(&query, result);
                Vec::new()
            }
            Msg::Past { peer, entries } => {
                self.show_past(&peer, &entries);
                Vec::new()
            }
            Msg::Collected(Ok(files)) => self.queue_files(files),
            Msg::Collected(Err(e)) => {
                self.error(format!("cannot send: {e}"));
                Vec::new()
            }
            Msg::Tick => {
                let now = Instant::now();
                for row in &mut self.queue {
                    if let Some((at, _)) = row.sample
                        && row.state == TransferState::Transferring
                        && now.duration_since(at).as_secs_f64() > 2.0
                    {
                        // Nothing heard for a while: the speed is falling.
                        row.speed *= 0.5;
                    }
                }
                Vec::new()
            }
        }
    }

    fn key_context(&self) -> KeyContext {
        KeyContext {
            focus: self.focus,
            help_open: self.help_open,
            confirm_open: self.confirm_quit,
            prompt_open: self.prompt.is_some(),
            input_empty: self.input.is_empty(),
        }
    }

    fn on_key(&mut self, key: &KeyEvent) -> Vec<Action> {
        let typed = keymap::typed_char(key);
        if let Some(prompt) = self.prompt.take() {
            let answer = keymap::intent(
                key,
                KeyContext {
                    prompt_open: true,
                    ..self.key_context()
                },
            );
            if let Some(actions) = self.answer(prompt, answer, typed) {
                return actions;
            }
        }
        match keymap::intent(key, self.key_context()) {
            Some(intent @ (Intent::Accept | Intent::Reject | Intent::Cancel | Intent::Retry)) => {
                self.file_intent(intent, typed)
            }
            Some(intent) => self.apply(intent),
            None => Vec::new(),
        }
    }

    fn apply(&mut self, intent: Intent) -> Vec<Action> {
        match intent {
            Intent::Quit => return self.request_quit(),
            Intent::Confirm => return vec![Action::Quit],
            Intent::Deny => self.confirm_quit = false,
            Intent::Help => self.help_open = true,
            Intent::CloseOverlay => {
                if self.help_open {
                    self.help_open = false;
                } else {
                    self.focus = Focus::Input;
                }
            }
            Intent::FocusNext => self.focus = self.focus.next(),
            Intent::FocusPrev => self.focus = self.focus.prev(),
            Intent::Submit => return self.submit(),
            Intent::Insert(c) => self.type_char(c),
            Intent::Left => self.input.left(),
            Intent::Right => self.input.right(),
            Intent::Home => self.input.home(),
            Intent::End => self.input.end(),
            Intent::Backspace => self.input.backspace(),
            Intent::Delete => self.input.delete(),
            Intent::ClearLine => self.input.clear(),
            Intent::HistoryUp => self.input.history_up(),
            Intent::HistoryDown => self.input.history_down(),
            Intent::ScrollUp => self.transcript.scroll_up(1, self.viewport.1 as usize),
            Intent::ScrollDown => self.transcript.scroll_down(1),
            Intent::PageUp if self.focus == Focus::Queue => {
                self.selected = self.selected.saturating_sub(self.queue_page());
            }
            Intent::PageDown if self.focus == Focus::Queue => {
                self.select(self.selected + self.queue_page());
            }
            Intent::PageUp => {
                let page = self.page();
                self.transcript.scroll_up(page, self.viewport.1 as usize);
            }
            Intent::PageDown => self.transcript.scroll_down(self.page()),
            Intent::Top => self.transcript.to_top(self.viewport.1 as usize),
            Intent::Bottom => self.transcript.to_bottom(),
            Intent::SelectUp => self.selected = self.selected.saturating_sub(1),
            Intent::SelectDown => self.select(self.selected + 1),
            Intent::SelectFirst => self.selected = 0,
            Intent::SelectLast => self.select(usize::MAX),
            Intent::Accept | Intent::Reject | Intent::Cancel | Intent::Retry => {
                return self.file_intent(intent, None);
            }
        }
        Vec::new()
    }

    fn queue_page(&self) -> usize {
        (self.queue_rows as usize / 2).max(1)
    }

    fn select(&mut self, index: usize) {
        self.selected = index.min(self.queue.len().saturating_sub(1));
    }

    fn request_quit(&mut self) -> Vec<Action> {
        if self.confirm_quit {
            return vec![Action::Quit];
        }
        if self.running_transfers() > 0 {
            self.confirm_quit = true;
            Vec::new()
        } else {
            vec![Action::Quit]
        }
    }

    // ---- input line -----------------------------------------------------------------------

    fn submit(&mut self) -> Vec<Action> {
        let line = self.input.text().to_string();
        if line.trim().is_empty() {
            return Vec::new();
        }
        if let Some(command) = line.strip_prefix('/')
            && !command.starts_with('/')
        {
            self.input.take();
            return self.run_command(command.trim());
        }
        if let Some(paths) = paste::dropped_paths(&line) {
            self.input.take();
            return vec![Action::Collect(paths)];
        }
        // `//text` sends `/text`.
        let text = line.strip_prefix('/').unwrap_or(&line).to_string();
        if !self.link.has_session() {
            // Keep the line: nothing typed is lost.
            self.error("not connected: the message was not sent (it is still in the input line)");
            return Vec::new();
        }
        self.input.take();
        let me = self.name.clone();
        self.push(MessageKind::Mine, &me, text.clone());
        self.transcript.to_bottom();
        vec![Action::Session(Command::Text(text))]
    }

    fn run_command(&mut self, command: &str) -> Vec<Action> {
        let (name, rest) = command
            .split_once(char::is_whitespace)
            .map_or((command, ""), |(n, r)| (n, r.trim()));
        match name {
            "send" => {
                let paths = paste::parse_paths(rest, self.home.as_deref());
                if paths.is_empty() {
                    self.error("usage: /send PATH... (files or folders)");
                    return Vec::new();
                }
                vec![Action::Collect(paths)]
            }
            "encoding" => match rest.parse::<Encoding>() {
                Ok(encoding) => {
                    self.encoding = encoding;
                    self.system(format!("outgoing text is now encoded as {encoding}"));
                    if self.link.has_session() {
                        vec![Action::Session(Command::SetEncoding(encoding))]
                    } else {
                        Vec::new()
                    }
                }
                Err(_) => {
                    self.error("usage: /encoding utf-8|gbk");
                    Vec::new()
                }
            },
            "name" => {
                if rest.is_empty() {
                    self.error("usage: /name NAME");
                } else {
                    self.name = rest.chars().take(64).collect();
                    self.system(format!("your name is now {}", self.name));
                    // The session tells the peer at once (or says why it cannot).
                    if self.link.has_session() {
                        return vec![Action::Session(Command::SetName(self.name.clone()))];
                    }
                }
                Vec::new()
            }
            "search" => {
                if rest.is_empty() {
                    self.error("usage: /search TEXT (words, \"a phrase\", prefix*)");
                    Vec::new()
                } else {
                    vec![Action::Search(rest.to_string())]
                }
            }
            "connect" => {
                if rest.is_empty() {
                    self.error("usage: /connect HOST[:PORT]");
                    Vec::new()
                } else if self.link.has_session() {
                    self.error("already connected: /quit first, or wait for the peer to leave");
                    Vec::new()
                } else {
                    vec![Action::Connect(rest.to_string())]
                }
            }
            "accept" => {
                let ids: Vec<TransferId> = self
                    .queue
                    .iter()
                    .filter(|r| r.state == TransferState::AwaitingDecision)
                    .filter_map(|r| match r.key {
                        RowKey::Transfer(id) => Some(id),
                        RowKey::Local(_) => None,
                    })
                    .collect();
                if ids.is_empty() {
                    self.system("no offers are waiting");
                }
                ids.into_iter()
                    .map(|id| Action::Session(Command::Accept(id)))
                    .collect()
            }
            "quit" | "exit" | "q" => self.request_quit(),
            "help" | "?" => {
                self.help_open = true;
                Vec::new()
            }
            "" => {
                self.error("type a command after /, e.g. /help");
                Vec::new()
            }
            other => {
                self.error(format!(
                    "unknown command /{other}: /help lists the commands"
                ));
                Vec::new()
            }
        }
    }

    fn on_paste(&mut self, text: &str) -> Vec<Action> {
        match paste::existing_paths(text, self.home.as_deref()) {
            Some(paths) => vec![Action::Collect(paths)],
            None => {
                self.focus = Focus::Input;
                self.input.insert_str(text.trim_end_matches(['\n', '\r']));
                Vec::new()
            }
        }
    }

    // ---- queue ------------------------------------------------------------------------------

    fn queue_files(&mut self, files: Vec<OutgoingFile>) -> Vec<Action> {
        if files.is_empty() {
            self.system("nothing to send: the folder is empty");
            return Vec::new();
        }
        let total: u64 = files.iter().map(|f| f.size).sum();
        let count = files.len();
        match &self.link {
            Link::Connected(peer) if peer.raw => {
                self.error("files cannot be sent to a raw peer (it speaks no tern protocol)");
                Vec::new()
            }
            Link::Connected(_) | Link::Handshaking(_) => {
                self.system(format!("offering {count} file(s), {}", human_size(total)));
                self.offered.extend(files.iter().cloned());
                vec![Action::Session(Command::Offer(files))]
            }
            _ => {
                for file in files {
                    let key = RowKey::Local(self.next_local);
                    self.next_local += 1;
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
                    self.queue.push(row);
                    self.pending.push(file);
                }
                self.system(format!(
                    "queued {count} file(s), {}: they are offered when a peer connects",
                    human_size(total)
                ));
                Vec::new()
            }
        }
    }

    fn selected_row(&self) -> Option<&Row> {
        self.queue.get(self.selected)
    }

    fn retry_selected(&mut self) -> Vec<Action> {
        let Some(row) = self.selected_row() else {
            return Vec::new();
        };
        let retryable = matches!(
            row.state,
            TransferState::Failed(_) | TransferState::Cancelled(_) | TransferState::Rejected(_)
        );
        if !retryable {
            return Vec::new();
        }
        if row.direction() == Direction::Incoming {
            self.system("only the sender can retry an incoming file");
            return Vec::new();
        }
        let Some(mut file) = row.local.clone() else {
            return Vec::new();
        };
        match std::fs::metadata(&file.local) {
            Ok(meta) => file.size = meta.len(),
            Err(e) => {
                self.error(format!("cannot retry {}: {e}", file.local.display()));
                return Vec::new();
            }
        }
        self.queue.remove(self.selected);
        self.select(self.selected);
        let mut actions = self.queue_files(vec![file]);
        // Disconnected after dialling out: dial again; the file is offered once connected and
        // the receiver resumes it from what it kept.
        if !self.link.has_session()
            && !matches!(self.link, Link::Listening { .. } | Link::Connecting(_))
            && let Some(target) = self.last_target.clone()
        {
            actions.push(Action::Connect(target));
        }
        actions
    }

    // ---- session and link -----------------------------------------------------------------

    fn on_link(&mut self, link: Link) -> Vec<Action> {
        match &link {
            Link::Listening { addresses, port } => {
                let addr = addresses
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "this-host".into());
                self.system(format!(
                    "waiting for a peer on port {port}: on the other machine run  tern connect {addr}:{port}"
                ));
            }
            Link::Connecting(target) => {
                self.last_target = Some(target.clone());
                self.system(format!("connecting to {target}…"));
            }
            Link::Handshaking(_) => {}
            Link::Disconnected(reason) => self.error(reason.clone()),
            Link::Connected(_) => {}
        }
        self.link = link;
        Vec::new()
    }

    fn on_session(&mut self, event: SessionEvent) -> Vec<Action> {
        match event {
            SessionEvent::Connected(peer) => {
                let addr = peer.addr.map(|a| a.to_string()).unwrap_or_default();
                if peer.raw {
                    self.system(format!(
                        "raw peer {addr}: plain bytes, no framing; files cannot be sent to it"
                    ));
                } else {
                    self.system(format!("connected to {} ({addr})", peer.name));
                }
                // The peer's earlier messages, read from the history meanwhile, go here.
                self.past_mark = Some(self.transcript.mark());
                let raw = peer.raw;
                self.link = Link::Connected(peer);
                if !raw && !self.pending.is_empty() {
                    let files = std::mem::take(&mut self.pending);
                    self.queue
                        .retain(|r| !matches!(r.key, RowKey::Local(_)) || r.state.is_final());
                    return self.queue_files(files);
                }
            }
            SessionEvent::Text {
                text,
                encoding,
                lossy,
            } => {
                let peer = self.peer_name();
                // Cleaned line by line: the message pane keeps a message's own line breaks.
                let lines: Vec<String> = text.shown_lines().map(|l| l.to_string()).collect();
                self.push(MessageKind::Peer, &peer, lines.join("\n"));
                if lossy {
                    self.error(format!(
                        "that message had bytes that are not valid {encoding}; they show as \u{fffd}"
                    ));
                }
            }
            SessionEvent::EncodingChanged(encoding) => {
                if encoding != self.encoding {
                    self.encoding = encoding;
                    self.system(format!("outgoing encoding switched to {encoding}"));
                }
            }
            SessionEvent::PeerRenamed(name) => {
                if let Link::Connected(peer) = &mut self.link {
                    let old = std::mem::replace(&mut peer.name, name.clone());
                    self.system(format!("{old} is now called {name}"));
                }
            }
            SessionEvent::Transfer(update) => self.on_transfer(update),
            SessionEvent::Notice(text) => self.system(text.to_string()),
            SessionEvent::Closed { error } => {
                let reason = match error {
                    Some(e) => e.to_string(),
                    None => format!("{} left", self.peer_name()),
                };
                self.offered.clear();
                self.link = Link::Disconnected(reason.clone());
                self.error(format!("disconnected: {reason}"));
            }
        }
        Vec::new()
    }

    /// Past `MAX_ROWS`, the oldest finished rows go (those still moving or waiting stay, and
    /// a peer may have at most `MAX_OPEN_OFFERS` open): the queue must not keep every file
    /// of a long session. In batches, so a full queue does not shift for every new row.
    fn forget_finished_rows(&mut self) {
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
        self.select(index.unwrap_or(0));
    }

    fn on_transfer(&mut self, update: TransferUpdate) {
        let key = RowKey::Transfer(update.id);
        let existing = self.queue.iter().position(|r| r.key == key);
        let is_new = existing.is_none();
        let index = match existing {
            Some(i) => i,
            None => {
                let mut row = Row::new(key, &update.path, update.state.clone(), update.progress);
                if update.id.direction == Direction::Outgoing {
                    row.local = self.offered.pop_front();
                }
                self.forget_finished_rows();
                self.queue.push(row);
                self.queue.len() - 1
            }
        };
        let now = Instant::now();
        let peer = self.peer_name();
        let row = &mut self.queue[index];
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
        let path = update.path.clone();
        let size = human_size(update.progress.total);
        match (&update.state, update.id.direction) {
            (TransferState::AwaitingDecision, _) => self.system(format!(
                "{peer} offers {path} ({size}): Tab to the files, then a or d and y to accept or decline (or /accept)"
            )),
            (TransferState::Verified, Direction::Incoming) => {
                let saved = update
                    .saved_as
                    .map(|p| Shown::new(p.display().to_string()))
                    .unwrap_or(path.clone());
                self.system(format!("received {path} ({size}), BLAKE3 verified: {saved}"));
            }
            (TransferState::Verified, Direction::Outgoing) => {
                self.system(format!("sent {path} ({size}), verified by {peer}"));
            }
            (TransferState::Failed(why), _) => self.error(format!("{path} failed: {why}")),
            (TransferState::Rejected(why), Direction::Outgoing) => {
                self.system(format!("{peer} declined {path}: {why}"));
            }
            (state @ TransferState::Cancelled(_), _) => self.system(format!("{path}: {state}")),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
