//! The SQLite file itself: its schema, and the few statements that write and read it. No
//! thread of its own: [`super::writer`] owns the one that writes, `tern history` reads.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use super::{Direction, Entry, EntryKind, Record};

/// Bumped with every change to the schema; an older file is migrated in [`Store::open`].
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS peers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    last_addr TEXT,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    peer INTEGER NOT NULL REFERENCES peers(id),
    direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    encoding TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_peer ON messages (peer, id);
CREATE TABLE IF NOT EXISTS transfers (
    id INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    peer INTEGER NOT NULL REFERENCES peers(id),
    direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    blake3 TEXT,
    saved_path TEXT,
    outcome TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS transfers_by_peer ON transfers (peer, id);
CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5 (
    text, content = 'messages', content_rowid = 'id'
);
CREATE TRIGGER IF NOT EXISTS messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, text) VALUES (new.id, new.text);
END;
";

pub struct Store {
    db: Connection,
}

impl Store {
    /// Open (or create) the history at `path`, in WAL mode: a writer killed at any moment
    /// leaves every committed record and a file that opens.
    pub fn open(path: &Path) -> rusqlite::Result<Self> {
        let db = Connection::open(path)?;
        // WAL: readers (`tern history`) never block the writer, and a commit is one append.
        // NORMAL: a commit survives the process being killed (not a power cut), without an
        // fsync per message.
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "NORMAL")?;
        db.pragma_update(None, "foreign_keys", "ON")?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        let version: i64 = db.pragma_query_value(None, "user_version", |row| row.get(0))?;
        if version < SCHEMA_VERSION {
            db.execute_batch(SCHEMA)?;
            db.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
        Ok(Self { db })
    }

    /// Write one record in a transaction of its own.
    pub fn write(&mut self, record: &Record) -> rusqlite::Result<()> {
        self.write_all(std::slice::from_ref(record))
    }

    /// Write `records` in one transaction: all of them, or (killed meanwhile) none.
    pub fn write_all(&mut self, records: &[Record]) -> rusqlite::Result<()> {
        let tx = self.db.transaction()?;
        // Each peer's row is brought up to date once per batch, by its last record.
        let mut peers: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
        for record in records.iter().rev() {
            if !peers.contains_key(record.peer()) {
                let id = upsert_peer(&tx, record.peer(), record.addr(), record.time())?;
                peers.insert(record.peer(), id);
            }
        }
        for record in records {
            write_one(&tx, peers[record.peer()], record)?;
        }
        tx.commit()
    }

    /// The last `limit` messages and file events (of `peer` only, if given), oldest first.
    pub fn entries(&self, peer: Option<&str>, limit: usize) -> rusqlite::Result<Vec<Entry>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut statement = self.db.prepare(
            "SELECT * FROM (
                 SELECT m.time AS time, p.name AS peer, m.direction AS direction,
                        'message' AS kind, m.text AS text, NULL AS name, NULL AS size,
                        NULL AS outcome, m.encoding AS encoding, NULL AS saved_path,
                        NULL AS blake3, m.id AS seq, 0 AS source
                 FROM messages m JOIN peers p ON p.id = m.peer
                 WHERE ?1 IS NULL OR p.name = ?1
                 UNION ALL
                 SELECT t.time, p.name, t.direction, 'file', NULL, t.name, t.size, t.outcome,
                        NULL, t.saved_path, t.blake3, t.id, 1
                 FROM transfers t JOIN peers p ON p.id = t.peer
                 WHERE ?1 IS NULL OR p.name = ?1
                 ORDER BY time DESC, source DESC, seq DESC
                 LIMIT ?2
             ) ORDER BY time, source, seq",
        )?;
        let rows = statement.query_map(params![peer, limit], |row| {
            let direction: String = row.get("direction")?;
            let kind: String = row.get("kind")?;
            Ok(Entry {
                time: row.get("time")?,
                peer: row.get("peer")?,
                direction: if direction == "in" {
                    Direction::In
                } else {
                    Direction::Out
                },
                kind: if kind == "file" {
                    EntryKind::File {
                        name: row.get("name")?,
                        size: row.get::<_, i64>("size")?.max(0) as u64,
                        outcome: row.get("outcome")?,
                        saved_path: row.get("saved_path")?,
                        blake3: row.get("blake3")?,
                    }
                } else {
                    EntryKind::Message {
                        text: row.get("text")?,
                        encoding: row.get("encoding")?,
                    }
                },
            })
        })?;
        rows.collect()
    }

    /// The peers met, most recently seen first, at most `limit`: name and last address.
    pub fn peers(&self, limit: usize) -> rusqlite::Result<Vec<(String, Option<String>)>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut statement = self.db.prepare(
            "SELECT name, last_addr FROM peers ORDER BY last_seen DESC, id DESC LIMIT ?1",
        )?;
        let rows = statement.query_map(params![limit], |row| Ok((row.get(0)?, row.get(1)?)))?;
        rows.collect()
    }

    /// Messages whose text matches `query` (FTS5 syntax: words, "phrases", prefix*), oldest
    /// first, at most `limit`.
    pub fn search(&self, query: &str, limit: usize) -> rusqlite::Result<Vec<Entry>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut statement = self.db.prepare(
            "SELECT m.time, p.name, m.direction, m.text, m.encoding
             FROM messages_fts f
             JOIN messages m ON m.id = f.rowid
             JOIN peers p ON p.id = m.peer
             WHERE messages_fts MATCH ?1
             ORDER BY m.id LIMIT ?2",
        )?;
        let rows = statement.query_map(params![query, limit], |row| {
            let direction: String = row.get(2)?;
            Ok(Entry {
                time: row.get(0)?,
                peer: row.get(1)?,
                direction: if direction == "in" {
                    Direction::In
                } else {
                    Direction::Out
                },
                kind: EntryKind::Message {
                    text: row.get(3)?,
                    encoding: row.get(4)?,
                },
            })
        })?;
        rows.collect()
    }
}

/// One record, within the caller's transaction.
fn write_one(tx: &Connection, peer: i64, record: &Record) -> rusqlite::Result<()> {
    match record {
        Record::Seen { .. } => {}
        Record::Message {
            time,
            direction,
            encoding,
            text,
            ..
        } => {
            tx.prepare_cached(
                "INSERT INTO messages (time, peer, direction, encoding, text) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![time, peer, direction.as_str(), encoding, text])?;
        }
        Record::Transfer {
            time,
            direction,
            name,
            size,
            blake3,
            saved_path,
            outcome,
            ..
        } => {
            tx.prepare_cached(
                "INSERT INTO transfers \
                 (time, peer, direction, name, size, blake3, saved_path, outcome) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                time,
                peer,
                direction.as_str(),
                name,
                i64::try_from(*size).unwrap_or(i64::MAX),
                blake3,
                saved_path,
                outcome
            ])?;
        }
    }
    Ok(())
}

/// The peer's row, made or brought up to date: its id.
fn upsert_peer(
    db: &Connection,
    name: &str,
    addr: Option<&str>,
    time: &str,
) -> rusqlite::Result<i64> {
    let existing: Option<i64> = db
        .query_row("SELECT id FROM peers WHERE name = ?1", [name], |row| {
            row.get(0)
        })
        .optional()?;
    match existing {
        Some(id) => {
            db.execute(
                "UPDATE peers SET last_seen = ?2, last_addr = COALESCE(?3, last_addr) \
                 WHERE id = ?1",
                params![id, time, addr],
            )?;
            Ok(id)
        }
        None => {
            db.execute(
                "INSERT INTO peers (name, last_addr, first_seen, last_seen) \
                 VALUES (?1, ?2, ?3, ?3)",
                params![name, addr, time],
            )?;
            Ok(db.last_insert_rowid())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(time: &str, peer: &str, direction: Direction, text: &str) -> Record {
        Record::Message {
            time: time.into(),
            peer: peer.into(),
            addr: Some("10.0.0.2:5000".into()),
            direction,
            encoding: "utf-8".into(),
            text: text.into(),
        }
    }

    #[test]
    fn what_is_written_is_read_back_after_a_reopen_oldest_first() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("h.sqlite3");
        {
            let mut store = Store::open(&path)?;
            store.write(&message(
                "2026-12-04T10:00:00.000Z",
                "ana",
                Direction::In,
                "你好",
            ))?;
            store.write(&message(
                "2026-12-04T10:00:01.000Z",
                "ana",
                Direction::Out,
                "hi",
            ))?;
            store.write(&Record::Transfer {
                time: "2026-12-04T10:00:02.000Z".into(),
                peer: "bo".into(),
                addr: None,
                direction: Direction::In,
                name: "photos/a.jpg".into(),
                size: 1234,
                blake3: None,
                saved_path: Some("/in/photos/a.jpg".into()),
                outcome: "verified".into(),
            })?;
            store.write(&message(
                "2026-12-04T10:00:03.000Z",
                "bo",
                Direction::In,
                "sent",
            ))?;
        }
        let store = Store::open(&path)?;
        let all = store.entries(None, usize::MAX)?;
        assert_eq!(all.len(), 4);
        assert_eq!(all[0].peer, "ana");
        assert_eq!(
            all[0].kind,
            EntryKind::Message {
                text: "你好".into(),
                encoding: "utf-8".into()
            }
        );
        assert_eq!(all[1].direction, Direction::Out);
        assert!(matches!(
            &all[2].kind,
            EntryKind::File { name, size: 1234, outcome, .. }
                if name == "photos/a.jpg" && outcome == "verified"
        ));
        // One peer's, and the last ones only, still oldest first.
        let bo = store.entries(Some("bo"), usize::MAX)?;
        assert_eq!(bo.len(), 2);
        assert!(bo.iter().all(|e| e.peer == "bo"));
        let last = store.entries(None, 2)?;
        assert_eq!(last, all[2..].to_vec());
        Ok(())
    }

    #[test]
    fn messages_are_found_by_words() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let mut store = Store::open(&dir.path().join("h.sqlite3"))?;
        store.write(&message(
            "2026-12-04T10:00:00.000Z",
            "ana",
            Direction::In,
            "lunch at noon?",
        ))?;
        store.write(&message(
            "2026-12-04T10:00:01.000Z",
            "bo",
            Direction::In,
            "the report",
        ))?;
        let found = store.search("lunch", 10)?;
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].peer, "ana");
        assert!(store.search("nothing", 10)?.is_empty());
        Ok(())
    }
}
