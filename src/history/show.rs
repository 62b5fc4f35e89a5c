//! `tern history [PEER] [--limit N] [--search TEXT] [--json]`: the stored conversations on
//! stdout, oldest first.

use std::io::{IsTerminal, Write};
use std::path::Path;

use serde_json::json;

use super::{Entry, EntryKind, Store};
use crate::text::Shown;
use crate::transfer::human_size;

/// What to print, and how.
#[derive(Debug, Default)]
pub struct Query {
    pub peer: Option<String>,
    pub limit: Option<usize>,
    pub search: Option<String>,
    pub json: bool,
}

/// Print the entries of the history at `path` that `query` asks for. No history yet is not an
/// error: nothing is printed, and stderr says where it would be.
pub fn show(path: &Path, query: &Query) -> anyhow::Result<()> {
    if !path.exists() {
        eprintln!("tern: no history yet ({} does not exist)", path.display());
        return Ok(());
    }
    let store = Store::open(path)
        .map_err(|e| anyhow::anyhow!("cannot open the history {}: {e}", path.display()))?;
    let limit = query.limit.unwrap_or(usize::MAX);
    let entries = match &query.search {
        Some(text) => store
            .search(text, limit)
            .map_err(|e| anyhow::anyhow!("cannot search for {text:?}: {e}"))?
            .into_iter()
            .filter(|e| query.peer.as_ref().is_none_or(|p| *p == e.peer))
            .collect(),
        None => store.entries(query.peer.as_deref(), limit)?,
    };
    // What a peer wrote reaches a terminal cleaned; a pipe gets it as it was.
    let terminal = std::io::stdout().is_terminal();
    let mut out = std::io::stdout().lock();
    for entry in &entries {
        let line = if query.json {
            json_line(entry)
        } else {
            text_line(entry, terminal)
        };
        if writeln!(out, "{line}").is_err() {
            break;
        }
    }
    let _ = out.flush();
    Ok(())
}

fn json_line(entry: &Entry) -> String {
    let mut value = json!({
        "time": entry.time,
        "peer": entry.peer,
        "direction": entry.direction.as_str(),
    });
    match &entry.kind {
        EntryKind::Message { text, encoding } => {
            value["kind"] = "message".into();
            value["text"] = text.as_str().into();
            value["encoding"] = encoding.as_str().into();
        }
        EntryKind::File {
            name,
            size,
            outcome,
            saved_path,
            blake3,
        } => {
            value["kind"] = "file".into();
            value["name"] = name.as_str().into();
            value["size"] = (*size).into();
            value["outcome"] = outcome.as_str().into();
            value["path"] = saved_path.as_deref().into();
            value["blake3"] = blake3.as_deref().into();
        }
    }
    value.to_string()
}

fn text_line(entry: &Entry, terminal: bool) -> String {
    let clean = |s: &str| {
        if terminal {
            Shown::new(s).to_string()
        } else {
            s.to_string()
        }
    };
    let arrow = match entry.direction {
        super::Direction::In => "<-",
        super::Direction::Out => "->",
    };
    let what = match &entry.kind {
        EntryKind::Message { text, .. } => clean(text),
        EntryKind::File {
            name,
            size,
            outcome,
            ..
        } => format!(
            "file {} ({}): {}",
            clean(name),
            human_size(*size),
            clean(outcome)
        ),
    };
    format!("{}  {arrow} {}  {what}", entry.time, clean(&entry.peer))
}
