//! The TUI's model and `update`: every input (key, paste, a peer's report) becomes a new state
//! and a list of things for the loop to do. No I/O here, so all of it is testable.
//!
//! The model is a list of conversations, Everyone first, one per peer after it; one is open at
//! a time, and the panes show it.

mod commands;
mod conversation;
mod folders;
mod lan;
mod past;
mod peers;
mod prompt;
mod trust;

pub use conversation::{ConvId, Conversation, Link, Row, RowKey};
pub use folders::{Folder, Item, Tally, count};
pub use prompt::{FileAction, Prompt};
pub use trust::Standing;

use std::path::PathBuf;
use std::time::Instant;

use crossterm::event::KeyEvent;

use super::input::InputLine;
use super::keymap::{self, Focus, Intent, KeyContext};
use super::paste;
use super::transcript::{Message, MessageKind};
use crate::net::Report;
use crate::session::{Command, PeerId};
use crate::text::Encoding;
use crate::transfer::Direction;
use crate::transfer::outgoing::OutgoingFile;

/// Where we listen, for the status bar and the welcome text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listening {
    pub addresses: Vec<String>,
    pub port: u16,
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
    /// What happened to one peer.
    Peer(Report),
    /// Paths expanded into files for a conversation (or the error that stopped it).
    Collected {
        to: ConvId,
        result: Result<Vec<OutgoingFile>, String>,
    },
    /// Time passed while transfers run (it is now this): speeds decay, ETAs move, settled
    /// folders are summed up.
    Tick(Instant),
    /// The history's messages matching a `/search`, oldest first (or why there are none).
    Found {
        query: String,
        result: Result<Vec<crate::history::Entry>, String>,
    },
    /// What the history holds of a conversation's peer, oldest first.
    Past {
        to: ConvId,
        entries: Vec<crate::history::Entry>,
    },
    /// Peers the history knows, most recently seen first: name and last address.
    Known(Vec<(String, Option<String>)>),
    /// Work done off the UI thread failed; the user is told.
    Failed(String),
    /// What discovery heard on the LAN.
    Lan(crate::net::discovery::Sighting),
    /// A look asked for with `/peers` has had its time: why nobody may have answered, for
    /// when nobody did.
    LanQuiet(String),
}

/// What the loop should do after an update.
#[derive(Debug)]
pub enum Action {
    /// A command for one peer's session.
    Session(PeerId, Command),
    /// Dial `target`; the session that results is `peer`.
    Dial {
        peer: PeerId,
        target: String,
    },
    /// End one peer's session.
    Close(PeerId),
    /// Sessions started from now on use this name, and this encoding, each when given.
    Defaults {
        name: Option<String>,
        encoding: Option<Encoding>,
    },
    /// Expand these paths into files for a conversation (disk I/O: off the UI thread).
    Collect {
        to: ConvId,
        paths: Vec<PathBuf>,
    },
    /// Look for messages in the history (disk I/O: off the UI thread).
    Search(String),
    /// Read what the history holds of `peer` for conversation `to` (disk I/O: off the UI
    /// thread); it comes back as `Msg::Past`.
    ReadPast {
        to: ConvId,
        peer: String,
    },
    /// The user trusts `key` as `name`'s at `ip` (the known peers are written off the UI
    /// thread).
    Trust {
        key: [u8; 32],
        name: String,
        ip: Option<std::net::IpAddr>,
    },
    /// Both users read the same digits: `key` is verified.
    Verified {
        key: [u8; 32],
    },
    /// Ask the LAN again who is there (and say we are).
    Refresh,
    Quit,
}

/// Conversations kept, Everyone included. Past this, a new peer takes the place of the one
/// that has gone longest without a session.
pub const MAX_CONVERSATIONS: usize = 65;

pub struct App {
    pub name: String,
    /// The encoding new sessions start with.
    pub encoding: Encoding,
    pub listening: Option<Listening>,
    /// Everyone first, then a conversation per peer.
    pub conversations: Vec<Conversation>,
    /// The conversation the panes show (an index into `conversations`).
    pub open: usize,
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
    /// The peer list was drawn (the terminal is wide enough for it).
    pub sidebar: bool,
    /// Ring the terminal bell at the next draw.
    pub bell: bool,
    /// Peers accepted and still identifying themselves, by address.
    pub arriving: Vec<(PeerId, String)>,
    /// Discovery runs: peers on the LAN are listed.
    pub discovering: bool,
    home: Option<PathBuf>,
    clock: fn() -> String,
    next_local: u32,
}

/// `HH:MM` in local time.
pub fn local_clock() -> String {
    chrono::Local::now().format("%H:%M").to_string()
}

impl App {
    pub fn new(
        name: String,
        encoding: Encoding,
        listening: Option<Listening>,
        clock: fn() -> String,
    ) -> Self {
        let mut app = Self {
            name,
            encoding,
            listening,
            conversations: vec![Conversation {
                encoding,
                ..Conversation::everyone()
            }],
            open: 0,
            input: InputLine::default(),
            focus: Focus::Input,
            help_open: false,
            confirm_quit: false,
            prompt: None,
            color: true,
            viewport: (0, 0),
            queue_rows: 0,
            sidebar: false,
            bell: false,
            arriving: Vec::new(),
            discovering: false,
            home: std::env::var_os("HOME").map(PathBuf::from),
            clock,
            next_local: 1,
        };
        if let Some(Listening { addresses, port }) = &app.listening {
            let addr = addresses
                .first()
                .cloned()
                .unwrap_or_else(|| "this-host".into());
            app.system(format!(
                "waiting for peers on port {port}: on another machine run  tern connect {addr}:{port}"
            ));
        }
        app
    }

    /// The conversation the panes show.
    pub fn conv(&self) -> &Conversation {
        &self.conversations[self.open]
    }

    pub fn conv_mut(&mut self) -> &mut Conversation {
        &mut self.conversations[self.open]
    }

    pub fn set_viewport(&mut self, width: u16, height: u16) {
        self.viewport = (width, height);
        let open = self.open;
        self.conversations[open]
            .transcript
            .set_width(width as usize);
    }

    fn page(&self) -> usize {
        (self.viewport.1 as usize).saturating_sub(1).max(1)
    }

    /// Some transfer is moving or waiting for an answer, or a folder is to be summed up:
    /// time matters.
    pub fn has_active_transfers(&self) -> bool {
        self.conversations
            .iter()
            .any(|c| c.has_active_transfers() || c.folders_due())
    }

    /// Transfers whose bytes are moving (quitting would cut them).
    pub fn running_transfers(&self) -> usize {
        self.conversations
            .iter()
            .map(Conversation::running_transfers)
            .sum()
    }

    /// Total bytes per second, out and in, over every peer.
    pub fn throughput(&self) -> (f64, f64) {
        let sum = |d: Direction| self.conversations.iter().map(|c| c.rate(d)).sum();
        (sum(Direction::Outgoing), sum(Direction::Incoming))
    }

    /// Peers with a session now.
    pub fn connected(&self) -> usize {
        self.conversations
            .iter()
            .filter(|c| matches!(c.link, Link::Connected(_)))
            .count()
    }

    /// Messages not seen yet, over every conversation.
    pub fn unread(&self) -> usize {
        self.conversations.iter().map(|c| c.unread).sum()
    }

    /// The terminal's title: the unread count first, so it shows in a task bar.
    pub fn title(&self) -> String {
        match self.unread() {
            0 => "tern".to_string(),
            n => format!("({n}) tern"),
        }
    }

    fn message(&self, kind: MessageKind, sender: &str, text: String) -> Message {
        Message {
            time: (self.clock)(),
            kind,
            sender: sender.to_string(),
            text,
        }
    }

    /// A line in the open conversation.
    pub fn push(&mut self, kind: MessageKind, sender: &str, text: impl Into<String>) {
        let message = self.message(kind, sender, text.into());
        self.conv_mut().push(message);
    }

    fn system(&mut self, text: impl Into<String>) {
        self.push(MessageKind::System, "", text);
    }

    fn error(&mut self, text: impl Into<String>) {
        self.push(MessageKind::Error, "", text);
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
                } else {
                    let height = self.viewport.1 as usize;
                    let transcript = &mut self.conv_mut().transcript;
                    if up {
                        transcript.scroll_up(3, height);
                    } else {
                        transcript.scroll_down(3);
                    }
                    Vec::new()
                }
            }
            Msg::Peer(report) => self.on_report(report),
            Msg::Found { query, result } => {
                self.show_found(&query, result);
                Vec::new()
            }
            Msg::Past { to, entries } => {
                self.show_past(to, &entries);
                Vec::new()
            }
            Msg::Known(peers) => {
                self.add_known(peers);
                Vec::new()
            }
            Msg::Failed(why) => {
                self.error(why);
                Vec::new()
            }
            Msg::Lan(sighting) => self.on_sighting(sighting),
            Msg::LanQuiet(why) => self.on_quiet_lan(&why),
            Msg::Collected { to, result } => match result {
                Ok(files) => self.queue_files(to, files),
                Err(e) => {
                    if let Some(i) = self.index_of(to) {
                        let message =
                            self.message(MessageKind::Error, "", format!("cannot send: {e}"));
                        self.conversations[i].push(message);
                    }
                    Vec::new()
                }
            },
            Msg::Tick(now) => {
                for i in 0..self.conversations.len() {
                    self.conversations[i].tick(now);
                    let name = self.conversations[i].name.clone();
                    for (failed, line) in self.conversations[i].sum_up_folders(now, &name) {
                        let kind = if failed {
                            MessageKind::Error
                        } else {
                            MessageKind::System
                        };
                        self.post(i, kind, "", line);
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
        let height = self.viewport.1 as usize;
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
            Intent::FocusNext => self.focus = self.focus.next(self.sidebar),
            Intent::FocusPrev => self.focus = self.focus.prev(self.sidebar),
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
            Intent::ScrollUp => self.conv_mut().transcript.scroll_up(1, height),
            Intent::ScrollDown => self.conv_mut().transcript.scroll_down(1),
            Intent::PageUp if self.focus == Focus::Queue => {
                let page = self.queue_page();
                let conv = self.conv_mut();
                conv.selected = conv.selected.saturating_sub(page);
            }
            Intent::PageDown if self.focus == Focus::Queue => {
                let page = self.queue_page();
                let conv = self.conv_mut();
                conv.select(conv.selected + page);
            }
            Intent::PageUp => {
                let page = self.page();
                self.conv_mut().transcript.scroll_up(page, height);
            }
            Intent::PageDown => {
                let page = self.page();
                self.conv_mut().transcript.scroll_down(page);
            }
            Intent::Top => self.conv_mut().transcript.to_top(height),
            Intent::Bottom => self.conv_mut().transcript.to_bottom(),
            Intent::SelectUp => {
                let conv = self.conv_mut();
                conv.selected = conv.selected.saturating_sub(1);
            }
            Intent::SelectDown => {
                let conv = self.conv_mut();
                conv.select(conv.selected + 1);
            }
            Intent::SelectFirst => self.conv_mut().selected = 0,
            Intent::SelectLast => self.conv_mut().select(usize::MAX),
            Intent::Accept | Intent::Reject | Intent::Cancel | Intent::Retry => {
                return self.file_intent(intent, None);
            }
            Intent::OpenNumber(n) => {
                self.open_number(n);
                return self.past_of_open();
            }
            Intent::NextConversation => {
                self.open_at(self.open + 1);
                return self.past_of_open();
            }
            Intent::PrevConversation => {
                let n = self.conversations.len();
                self.open_at(self.open + n - 1);
                return self.past_of_open();
            }
            Intent::NextUnread => {
                self.open_next_unread();
                return self.past_of_open();
            }
            Intent::PeerUp => {
                if self.open > 0 {
                    self.open_at(self.open - 1);
                }
                return self.past_of_open();
            }
            Intent::PeerDown => {
                if self.open + 1 < self.conversations.len() {
                    self.open_at(self.open + 1);
                }
                return self.past_of_open();
            }
            Intent::DialOpen => return self.dial_open(),
            Intent::Expand => self.conv_mut().expand(true),
            Intent::Collapse => self.conv_mut().expand(false),
        }
        Vec::new()
    }

    fn queue_page(&self) -> usize {
        (self.queue_rows as usize / 2).max(1)
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
            // On a peer found on the LAN, Enter connects from the input line too.
            if self.conv().lan.is_some() {
                return self.dial_open();
            }
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
            let to = self.conv().id;
            return vec![Action::Collect { to, paths }];
        }
        // `//text` sends `/text`.
        let text = line.strip_prefix('/').unwrap_or(&line).to_string();
        let actions = if self.conv().everyone {
            self.say_to_everyone(text)
        } else {
            self.say_to(self.open, text)
        };
        if !actions.is_empty() {
            self.input.take();
        }
        actions
    }

    fn on_paste(&mut self, text: &str) -> Vec<Action> {
        match paste::existing_paths(text, self.home.as_deref()) {
            Some(paths) => {
                let to = self.conv().id;
                vec![Action::Collect { to, paths }]
            }
            None => {
                self.focus = Focus::Input;
                self.input.insert_str(text.trim_end_matches(['\n', '\r']));
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests;
