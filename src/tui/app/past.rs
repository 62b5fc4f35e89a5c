//! What the history holds, shown: `/search` results, and a peer's earlier messages above the
//! new ones when it connects.

use super::{Action, App, ConvId};
use crate::text::Shown;
use crate::transfer::human_size;
use crate::tui::transcript::{Message, MessageKind};

impl App {
    /// The history of the open conversation's peer, if it has not been asked for yet.
    pub(super) fn past_of_open(&mut self) -> Vec<Action> {
        let conv = self.conv_mut();
        if conv.everyone || conv.past_asked {
            return Vec::new();
        }
        conv.past_asked = true;
        conv.past_mark.get_or_insert(conv.transcript.mark());
        vec![Action::ReadPast {
            to: conv.id,
            peer: conv.name.clone(),
        }]
    }

    pub(super) fn show_found(
        &mut self,
        query: &str,
        result: Result<Vec<crate::history::Entry>, String>,
    ) {
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
        self.conv_mut().transcript.to_bottom();
    }

    /// The conversation's earlier messages and files, from the history, before the new ones.
    pub(super) fn show_past(&mut self, to: ConvId, entries: &[crate::history::Entry]) {
        use crate::history::{Direction, EntryKind};
        let Some(i) = self.index_of(to) else {
            return;
        };
        if entries.is_empty() {
            return;
        }
        let peer_shown = Shown::new(self.conversations[i].name.as_str()).to_string();
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
        let conv = &mut self.conversations[i];
        let mark = conv
            .past_mark
            .take()
            .unwrap_or_else(|| conv.transcript.mark());
        conv.transcript.insert_at(mark, past);
    }
}
