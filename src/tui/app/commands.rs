//! Slash commands, and files queued for a peer (from `/send`, a paste or a drop).

use super::conversation::Link;
use super::{Action, App, ConvId};
use crate::session::Command;
use crate::text::{Encoding, Shown};
use crate::transfer::outgoing::OutgoingFile;
use crate::transfer::{Direction, TransferState, human_size};
use crate::tui::paste;

impl App {
    pub(super) fn run_command(&mut self, command: &str) -> Vec<Action> {
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
                vec![Action::Collect {
                    to: self.conv().id,
                    paths,
                }]
            }
            "encoding" => match rest.parse::<Encoding>() {
                Ok(encoding) => self.set_encoding(encoding),
                Err(_) => {
                    self.error("usage: /encoding utf-8|gbk");
                    Vec::new()
                }
            },
            "name" => {
                if rest.is_empty() {
                    self.error("usage: /name NAME");
                    return Vec::new();
                }
                self.name = rest.chars().take(64).collect();
                self.system(format!("your name is now {}", self.name));
                // Every session tells its peer at once (or says why it cannot).
                let mut actions: Vec<Action> = self
                    .sessions()
                    .into_iter()
                    .map(|peer| Action::Session(peer, Command::SetName(self.name.clone())))
                    .collect();
                actions.push(Action::Defaults {
                    name: Some(self.name.clone()),
                    encoding: None,
                });
                actions
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
                } else {
                    self.connect(rest.to_string())
                }
            }
            "msg" => {
                let Some((to, text)) = rest.split_once(char::is_whitespace) else {
                    self.error("usage: /msg NAME TEXT");
                    return Vec::new();
                };
                match self.find_peer(to) {
                    Ok(i) => self.say_to(i, text.trim_start().to_string()),
                    Err(why) => {
                        self.error(why);
                        Vec::new()
                    }
                }
            }
            "close" => match self.conv().session() {
                Some(peer) if !self.conv().everyone => {
                    self.system("closing the session…");
                    vec![Action::Close(peer)]
                }
                _ if self.conv().everyone => {
                    self.error("/close ends one peer's session: open its conversation first");
                    Vec::new()
                }
                _ => {
                    self.error("this conversation has no session to close");
                    Vec::new()
                }
            },
            "accept" => {
                let actions: Vec<Action> = if self.conv().everyone {
                    (1..self.conversations.len())
                        .flat_map(|i| self.waiting_offers(i))
                        .collect()
                } else {
                    self.waiting_offers(self.open)
                };
                if actions.is_empty() {
                    self.system("no offers are waiting");
                }
                actions
            }
            "peers" => self.list_lan(),
            "trust" => self.trust(),
            "verify" => self.verify(rest),
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

    /// Every peer with a session.
    fn sessions(&self) -> Vec<crate::session::PeerId> {
        self.conversations
            .iter()
            .filter_map(super::Conversation::session)
            .collect()
    }

    /// `/encoding`: in a peer's conversation, that peer's; in Everyone, every peer's and the
    /// one new sessions start with.
    fn set_encoding(&mut self, encoding: Encoding) -> Vec<Action> {
        if self.conv().everyone {
            self.encoding = encoding;
            for conv in &mut self.conversations {
                conv.encoding = encoding;
            }
            self.system(format!("outgoing text is now encoded as {encoding}"));
            let mut actions: Vec<Action> = self
                .sessions()
                .into_iter()
                .map(|peer| Action::Session(peer, Command::SetEncoding(encoding)))
                .collect();
            actions.push(Action::Defaults {
                name: None,
                encoding: Some(encoding),
            });
            return actions;
        }
        let peer = self.conv().session();
        self.conv_mut().encoding = encoding;
        if peer.is_none() {
            // Nobody to tell: it is the encoding the next session starts with.
            self.encoding = encoding;
        }
        self.system(format!("outgoing text is now encoded as {encoding}"));
        match peer {
            Some(peer) => vec![Action::Session(peer, Command::SetEncoding(encoding))],
            None => vec![Action::Defaults {
                name: None,
                encoding: Some(encoding),
            }],
        }
    }

    /// The conversation of the peer called `name`: exactly, or else the one whose name starts
    /// with it, ignoring case.
    fn find_peer(&self, name: &str) -> Result<usize, String> {
        let peers = 1..self.conversations.len();
        if let Some(i) = peers.clone().find(|&i| self.conversations[i].name == name) {
            return Ok(i);
        }
        let lower = name.to_lowercase();
        let matches: Vec<usize> = peers
            .filter(|&i| {
                self.conversations[i]
                    .name
                    .to_lowercase()
                    .starts_with(&lower)
            })
            .collect();
        match matches[..] {
            [i] => Ok(i),
            [] => Err(format!("no peer is called {}", Shown::new(name))),
            _ => Err(format!(
                "{} could be {} peers: type more of the name",
                Shown::new(name),
                matches.len()
            )),
        }
    }

    // ---- queue ------------------------------------------------------------------------------

    /// Files collected for conversation `to`: offered to its peer, or to every peer from
    /// Everyone, or held until a peer connects.
    pub(super) fn queue_files(&mut self, to: ConvId, files: Vec<OutgoingFile>) -> Vec<Action> {
        let Some(i) = self.index_of(to) else {
            return Vec::new();
        };
        if files.is_empty() {
            self.post(
                i,
                crate::tui::transcript::MessageKind::System,
                "",
                "nothing to send: the folder is empty".into(),
            );
            return Vec::new();
        }
        if i == 0 {
            let peers: Vec<usize> = (1..self.conversations.len())
                .filter(|&j| {
                    self.conversations[j].session().is_some() && !self.conversations[j].is_raw()
                })
                .collect();
            if !peers.is_empty() {
                return peers
                    .into_iter()
                    .flat_map(|j| self.offer(j, files.clone()))
                    .collect();
            }
        }
        let conv = &self.conversations[i];
        if conv.is_raw() {
            self.post(
                i,
                crate::tui::transcript::MessageKind::Error,
                "",
                "files cannot be sent to a raw peer (it speaks no tern protocol)".into(),
            );
            return Vec::new();
        }
        if conv.session().is_some() {
            return self.offer(i, files);
        }
        let total: u64 = files.iter().map(|f| f.size).sum();
        let count = files.len();
        self.conversations[i].hold(files, &mut self.next_local);
        let when = if i == 0 {
            "they are offered when a peer connects"
        } else {
            "they are offered when this peer connects"
        };
        self.post(
            i,
            crate::tui::transcript::MessageKind::System,
            "",
            format!("queued {count} file(s), {}: {when}", human_size(total)),
        );
        Vec::new()
    }

    pub(super) fn retry_selected(&mut self) -> Vec<Action> {
        let Some(row) = self.conv().selected_row() else {
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
        let conv = self.conv_mut();
        conv.queue.remove(conv.selected);
        conv.select(conv.selected);
        let id = conv.id;
        let mut actions = self.queue_files(id, vec![file]);
        // Disconnected: dial again; the file is offered once connected and the receiver
        // resumes it from what it kept.
        let conv = self.conv();
        if conv.dialled
            && matches!(conv.link, Link::Disconnected(_))
            && let Some(target) = conv.target.clone()
        {
            actions.extend(self.dial(self.open, target));
        }
        actions
    }
}
