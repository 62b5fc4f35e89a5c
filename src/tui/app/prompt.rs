//! The files pane's letters. One that can act on the selected file does; one that cannot is
//! typed into the input line, because someone typing in the wrong pane means to chat.
//! Accepting, declining and cancelling are asked about in the status line first (y / n), so a
//! stray `a`, `d` or `x` neither lets a file be written nor throws one away.

use super::folders::Item;
use super::{Action, App, Row, RowKey};
use crate::session::Command;
use crate::transfer::TransferState;
use crate::tui::keymap::{Focus, Intent};

/// What the status line asks about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileAction {
    Accept,
    Decline,
    Cancel,
}

/// What a question is about, by identity: rows may come and go before the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    File(RowKey),
    /// Every file of a folder (by its id).
    Folder(u32),
}

/// A question about one file or folder, waiting for y or n.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prompt {
    pub action: FileAction,
    pub target: Target,
    /// The file's path, or the folder's name and file count.
    pub path: String,
    /// The letter that asked, if a letter did. When the next key is typing too, this one was
    /// typing as well, and goes to the input line before it.
    typed: Option<char>,
}

/// An offer to us that waits for our answer.
fn is_open_offer(row: &Row) -> bool {
    matches!(row.key, RowKey::Transfer(_)) && row.state == TransferState::AwaitingDecision
}

impl FileAction {
    fn applies_to(self, row: &Row) -> bool {
        match self {
            FileAction::Accept | FileAction::Decline => is_open_offer(row),
            FileAction::Cancel => !row.state.is_final(),
        }
    }
}

impl App {
    /// The selected item: its target, how the question names it, and its files.
    fn selected_target(&self) -> Option<(Target, String, Vec<&Row>)> {
        let conv = self.conv();
        match conv.selected_item()? {
            Item::File(i) | Item::Member(i) => {
                let row = conv.queue.get(i)?;
                Some((Target::File(row.key), row.path.clone(), vec![row]))
            }
            Item::Folder(f) => {
                let folder = &conv.folders[f];
                let rows: Vec<&Row> = conv
                    .queue
                    .iter()
                    .filter(|r| r.folder == Some(folder.id))
                    .collect();
                let name = format!(
                    "{} ({} files)",
                    folder.name,
                    super::folders::count(rows.len())
                );
                Some((Target::Folder(folder.id), name, rows))
            }
        }
    }

    /// A file intent from a key that may also type `typed`.
    pub(super) fn file_intent(&mut self, intent: Intent, typed: Option<char>) -> Vec<Action> {
        let rows = self
            .selected_target()
            .map(|(target, _, rows)| (target, rows));
        let acts = rows.as_ref().is_some_and(|(target, rows)| {
            rows.iter().any(|row| match intent {
                Intent::Accept => is_open_offer(row),
                Intent::Reject => FileAction::Decline.applies_to(row),
                Intent::Cancel => FileAction::Cancel.applies_to(row),
                // One file at a time: a folder's failed files are retried from its list.
                Intent::Retry => {
                    matches!(target, Target::File(_))
                        && matches!(
                            row.state,
                            TransferState::Failed(_)
                                | TransferState::Cancelled(_)
                                | TransferState::Rejected(_)
                        )
                }
                _ => false,
            })
        });
        if !acts {
            if let Some(c) = typed {
                self.type_char(c);
            }
            return Vec::new();
        }
        match intent {
            Intent::Accept => self.ask(FileAction::Accept, typed),
            Intent::Retry => self.retry_selected(),
            Intent::Reject => self.ask(FileAction::Decline, typed),
            Intent::Cancel => self.ask(FileAction::Cancel, typed),
            _ => Vec::new(),
        }
    }

    fn ask(&mut self, action: FileAction, typed: Option<char>) -> Vec<Action> {
        if let Some((target, path, _)) = self.selected_target() {
            self.prompt = Some(Prompt {
                action,
                target,
                path,
                typed,
            });
        }
        Vec::new()
    }

    /// `intent` is the key's meaning while the question is open (`None`: neither yes nor no).
    /// Returns the actions of an answer, or `None` when the key was no answer and is still to
    /// be handled as usual.
    pub(super) fn answer(
        &mut self,
        prompt: Prompt,
        intent: Option<Intent>,
        typed: Option<char>,
    ) -> Option<Vec<Action>> {
        match intent {
            Some(Intent::Confirm) => Some(self.carry_out(&prompt)),
            Some(Intent::Deny) => Some(Vec::new()),
            _ => {
                if let (Some(held), Some(_)) = (prompt.typed, typed) {
                    self.type_char(held);
                }
                None
            }
        }
    }

    fn carry_out(&mut self, prompt: &Prompt) -> Vec<Action> {
        let peer = self.conv().session();
        let conv = self.conv_mut();
        // The files may have moved on while the question was open (finished, withdrawn).
        let indexes: Vec<usize> = conv
            .queue
            .iter()
            .enumerate()
            .filter(|(_, r)| match prompt.target {
                Target::File(key) => r.key == key,
                Target::Folder(id) => r.folder == Some(id),
            })
            .filter(|(_, r)| prompt.action.applies_to(r))
            .map(|(i, _)| i)
            .collect();
        let mut commands = Vec::new();
        for index in indexes {
            let key = conv.queue[index].key;
            let command = match (prompt.action, key) {
                (FileAction::Accept, RowKey::Transfer(id)) => Command::Accept(id),
                (FileAction::Decline, RowKey::Transfer(id)) => {
                    conv.queue[index].declined_by_you = true;
                    Command::Reject(id, "declined by the receiver".into())
                }
                (FileAction::Cancel, RowKey::Transfer(id)) => Command::Cancel(id),
                (FileAction::Cancel, RowKey::Local(_)) => {
                    let row = &mut conv.queue[index];
                    row.state = TransferState::cancelled("");
                    if let Some(local) = row.local.clone() {
                        conv.pending.retain(|f| f != &local);
                    }
                    continue;
                }
                (FileAction::Accept | FileAction::Decline, RowKey::Local(_)) => continue,
            };
            commands.push(command);
        }
        match peer {
            Some(peer) => commands
                .into_iter()
                .map(|command| Action::Session(peer, command))
                .collect(),
            // The session ended meanwhile: its rows are settled by its last events.
            None => Vec::new(),
        }
    }

    /// Type `c` into the input line, taking the focus there.
    pub(super) fn type_char(&mut self, c: char) {
        self.focus = Focus::Input;
        self.input.insert_char(c);
    }
}
