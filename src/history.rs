//! Conversations kept across runs: peers, messages and file transfers in a SQLite file in the
//! user's data folder (`$XDG_DATA_HOME/tern/history.sqlite3` on Linux).
//!
//! - `store`: the file, its schema, and the statements that write and read it.
//! - `writer`: the one thread that writes, fed through a bounded channel, so no session or UI
//!   thread ever waits for the disk.
//! - `recorder`: what a session's events mean for the history.
//! - `show`: `tern history`.

mod recorder;
mod show;
mod store;
mod writer;

use std::path::PathBuf;

pub use recorder::Recorder;
pub use show::{Query, show};
pub use store::Store;
pub use writer::{History, Writer};

/// The file's name in the data folder.
pub const FILE_NAME: &str = "history.sqlite3";

/// Where the history lives: `$TERN_DATA_DIR`, else the user's data folder
/// (`$XDG_DATA_HOME/tern` on Linux, `~/Library/Application Support/tern` on macOS,
/// `%APPDATA%\tern\data` on Windows).
pub fn default_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("TERN_DATA_DIR") {
        return Some(PathBuf::from(dir).join(FILE_NAME));
    }
    let dirs = directories::ProjectDirs::from("", "", "tern")?;
    Some(dirs.data_dir().join(FILE_NAME))
}

/// Now, as stored: ISO 8601 in UTC, to the millisecond (so text order is time order).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    In,
    Out,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

/// One thing worth keeping, as a session saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// A peer connected.
    Seen {
        time: String,
        peer: String,
        addr: Option<String>,
    },
    Message {
        time: String,
        peer: String,
        addr: Option<String>,
        direction: Direction,
        encoding: String,
        text: String,
    },
    /// A file transfer that ended, whichever way.
    Transfer {
        time: String,
        peer: String,
        addr: Option<String>,
        direction: Direction,
        name: String,
        size: u64,
        blake3: Option<String>,
        saved_path: Option<String>,
        outcome: String,
    },
}

impl Record {
    fn peer(&self) -> &str {
        match self {
            Record::Seen { peer, .. }
            | Record::Message { peer, .. }
            | Record::Transfer { peer, .. } => peer,
        }
    }

    fn addr(&self) -> Option<&str> {
        match self {
            Record::Seen { addr, .. }
            | Record::Message { addr, .. }
            | Record::Transfer { addr, .. } => addr.as_deref(),
        }
    }

    fn time(&self) -> &str {
        match self {
            Record::Seen { time, .. }
            | Record::Message { time, .. }
            | Record::Transfer { time, .. } => time,
        }
    }
}

/// One line of a conversation, read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub time: String,
    pub peer: String,
    pub direction: Direction,
    pub kind: EntryKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Message {
        text: String,
        encoding: String,
    },
    File {
        name: String,
        size: u64,
        outcome: String,
        saved_path: Option<String>,
        /// Hex, when verified.
        blake3: Option<String>,
    },
}
