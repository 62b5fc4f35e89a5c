//! The history's one writing thread. Sessions and the UI hand it records through a bounded
//! channel and never wait: a full channel (a disk far slower than the chat) drops the record
//! and says so in the log, rather than stall a conversation.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use super::{Record, Store};

/// Records waiting for the disk, at most.
const QUEUE: usize = 16 * 1024;

/// Where records go; cheap to clone, one per session.
#[derive(Clone)]
pub struct History {
    tx: SyncSender<Record>,
    dropped: Arc<AtomicU64>,
}

/// The writing thread: dropping every [`History`] lets it write what is queued and end;
/// [`Writer::finish`] waits for that.
pub struct Writer {
    thread: JoinHandle<()>,
}

impl Writer {
    pub fn finish(self) {
        let _ = self.thread.join();
    }
}

impl History {
    /// Open the store at `path` (making its folder) and start the thread that writes it.
    pub fn open(path: &Path) -> anyhow::Result<(Self, Writer)> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let store = Store::open(path)
            .map_err(|e| anyhow::anyhow!("cannot open the history {}: {e}", path.display()))?;
        let (tx, rx) = sync_channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("tern-history".into())
            .spawn(move || write_all(store, &rx))?;
        let history = Self {
            tx,
            dropped: Arc::default(),
        };
        Ok((history, Writer { thread }))
    }

    /// Queue `record`; never waits.
    pub fn record(&self, record: Record) {
        match self.tx.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                if self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::warn!("the history cannot keep up: records are being dropped");
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// Records written in one transaction, at most.
const BATCH: usize = 4096;

fn write_all(mut store: Store, rx: &Receiver<Record>) {
    crate::platform::sched::bulk_thread();
    // What is queued goes in one transaction: one record at a time while people chat, so a kill
    // loses at most the one being written; thousands at once when a folder of small files
    // arrives, where a transaction each cost more than the transfer (10,000 files: 0.5 s of
    // CPU). A kill loses what is queued and not yet committed, never the file.
    let mut batch = Vec::new();
    while let Ok(record) = rx.recv() {
        batch.push(record);
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(record) => batch.push(record),
                Err(_) => break,
            }
        }
        if let Err(e) = store.write_all(&batch) {
            tracing::warn!(error = %e, records = batch.len(), "cannot write to the history");
        }
        batch.clear();
    }
}
