//! `--json`: one JSON object per line on stdout for every event a script may act on. The
//! fields are a contract (README): `event`, `peer` (its display name, or its address for a raw
//! peer), and per event `addr`, `text`, `encoding`, `name`, `size`, `path`, `error`, `reason`.

use std::io::Write;

use serde_json::{Value, json};

use crate::crypto::known::Verdict;
use crate::session::{Failure, PeerInfo};
use crate::text::Encoding;
use crate::transfer::TransferUpdate;

/// Write one event line and flush it: a script reads events as they happen.
pub(super) fn print(event: &Value) {
    let mut out = std::io::stdout().lock();
    // A closed stdout (its reader gone) is not worth dying for.
    let _ = writeln!(out, "{event}").and_then(|()| out.flush());
}

/// `encrypted`, and for an encrypted peer its key's `fingerprint` and what it means here,
/// `trust`: `first-contact`, `known`, `verified` or `key-changed`.
pub(super) fn connected(peer: &str, addr: &str, info: &PeerInfo) -> Value {
    let trust = info.key.as_ref().map(|k| match k.standing {
        Verdict::FirstContact => "first-contact",
        Verdict::Known { verified: false } => "known",
        Verdict::Known { verified: true } => "verified",
        Verdict::KeyChanged { .. } => "key-changed",
    });
    json!({
        "event": "connected",
        "peer": peer,
        "addr": addr,
        "raw": info.raw,
        "encrypted": info.key.is_some(),
        "fingerprint": info.key.as_ref().map(|k| k.fingerprint.to_string()),
        "trust": trust,
    })
}

/// `error`: why the session ended, if not by a goodbye.
/// The peer's session ended: `error` is null for a goodbye; else its words, and `reason`, what
/// kind of failure it was (`lost`, `protocol`, `peer-left`, `cancelled`, `handshake`,
/// `abnormal`).
pub(super) fn left(peer: &str, addr: &str, error: Option<&Failure>) -> Value {
    json!({
        "event": "left",
        "peer": peer,
        "addr": addr,
        "error": error.map(|e| e.text.as_str()),
        "reason": error.map(|e| e.kind.name()),
    })
}

pub(super) fn message(peer: &str, addr: &str, text: &str, encoding: Encoding) -> Value {
    json!({
        "event": "message",
        "peer": peer,
        "addr": addr,
        "text": text,
        "encoding": encoding.name(),
    })
}

/// A file the peer offers us.
pub(super) fn offer(peer: &str, name: &str, size: u64) -> Value {
    json!({ "event": "offer", "peer": peer, "name": name, "size": size })
}

/// A file that arrived whole (`path`: where it was saved), or that the peer verified; `hash`:
/// the BLAKE3 both sides agreed on.
pub(super) fn verified(peer: &str, update: &TransferUpdate, incoming: bool) -> Value {
    json!({
        "event": "verified",
        "peer": peer,
        "name": update.path.as_str(),
        "size": update.progress.total,
        "path": update.saved_as.as_ref().map(|p| p.to_string_lossy()),
        "blake3": update.hash.map(|h| blake3::Hash::from(h).to_hex().to_string()),
        "direction": direction(incoming),
    })
}

/// A file that was refused, cancelled or failed, either way.
pub(super) fn failed(peer: &str, name: &str, error: &str, incoming: bool) -> Value {
    json!({
        "event": "failed",
        "peer": peer,
        "name": name,
        "error": error,
        "direction": direction(incoming),
    })
}

fn direction(incoming: bool) -> &'static str {
    if incoming { "in" } else { "out" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_the_contract_fields_and_escape_what_a_peer_sent() {
        let line = message(
            "ana",
            "10.0.0.2:5000",
            "hi \"there\"\n\u{1b}[2J",
            Encoding::Gbk,
        );
        let parsed: Value = serde_json::from_str(&line.to_string()).expect("valid JSON");
        assert_eq!(parsed["event"], "message");
        assert_eq!(parsed["peer"], "ana");
        assert_eq!(parsed["addr"], "10.0.0.2:5000");
        assert_eq!(parsed["text"], "hi \"there\"\n\u{1b}[2J");
        assert_eq!(parsed["encoding"], "gbk");
        assert!(!line.to_string().contains('\n') && !line.to_string().contains('\u{1b}'));
        let mut update = TransferUpdate {
            id: crate::transfer::TransferId::incoming(1),
            path: "a/b.txt".into(),
            saved_as: Some("/in/a/b.txt".into()),
            hash: Some(*blake3::hash(b"abc").as_bytes()),
            state: crate::transfer::TransferState::Verified,
            progress: crate::transfer::Progress { done: 3, total: 3 },
        };
        let saved = verified("ana", &update, true);
        assert_eq!(saved["path"], "/in/a/b.txt");
        assert_eq!(saved["direction"], "in");
        assert_eq!(saved["size"], 3);
        assert_eq!(saved["blake3"], blake3::hash(b"abc").to_hex().as_str());
        update.saved_as = None;
        assert_eq!(verified("ana", &update, false)["path"], Value::Null);
    }
}
