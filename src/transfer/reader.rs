//! The sending side's disk work, on a thread of its own: reading accepted files chunk by chunk
//! and hashing them, ahead of the socket. The session actor only writes finished frames, so a
//! slow disk or the hashing never stands between a typed line and the wire.

use std::collections::HashMap;
use std::path::PathBuf;

use bytes::Bytes;
use tokio::sync::mpsc::UnboundedSender;

use super::outgoing::{FileReader, ReadStep};
use super::pool::BufferPool;
use super::worker::{Work, Worker};
use crate::protocol::codec::CHUNK_HEADER_LEN;

/// Room for the `FileEnd` frame that may follow the last chunk in the same buffer.
const FILE_END_ROOM: usize = 64;

#[derive(Debug)]
pub enum ReadJob {
    /// An offer was accepted: read `local` from `offset` (the prefix is hashed, not sent).
    Start {
        id: u32,
        local: PathBuf,
        size: u64,
        offset: u64,
    },
    /// Produce the next chunk of at most `max` bytes (and the `FileEnd` after the last one).
    Next { id: u32, max: usize },
    /// Forget the transfer (cancelled, failed, or the session is gone).
    Drop { id: u32 },
}

#[derive(Debug)]
pub enum ReadEvent {
    /// Encoded frames, ready for the wire: a `Chunk`, followed by the `FileEnd` when they end
    /// the file (`end`: its BLAKE3).
    Frames {
        id: u32,
        bytes: Bytes,
        data_len: usize,
        end: Option<[u8; 32]>,
    },
    Failed {
        id: u32,
        reason: String,
    },
}

/// The sending end of a reader thread; dropping it ends the thread.
pub type ReadWorker = Worker<ReadJob>;

/// Start a reader thread; its frames go to `events`.
pub fn start(events: UnboundedSender<Vec<ReadEvent>>) -> std::io::Result<ReadWorker> {
    Worker::start("tern-read", Reader::default(), events)
}

/// What the reader thread keeps between jobs.
#[derive(Default)]
struct Reader {
    readers: HashMap<u32, FileReader>,
    /// The session drops each buffer once the socket took it; it comes back here.
    pool: BufferPool,
}

impl Work for Reader {
    type Job = ReadJob;
    type Event = ReadEvent;

    fn batch(&mut self, jobs: Vec<ReadJob>) -> Option<Vec<ReadEvent>> {
        let done: Vec<ReadEvent> = jobs
            .into_iter()
            .filter_map(|job| handle(&mut self.readers, &self.pool, job))
            .collect();
        (!done.is_empty()).then_some(done)
    }
}

fn handle(
    readers: &mut HashMap<u32, FileReader>,
    pool: &BufferPool,
    job: ReadJob,
) -> Option<ReadEvent> {
    match job {
        ReadJob::Start {
            id,
            local,
            size,
            offset,
        } => {
            readers.insert(id, FileReader::starting_at(local, size, offset));
            None
        }
        ReadJob::Next { id, max } => {
            let reader = readers.get_mut(&id)?;
            let before = reader.sent();
            // Sized for this chunk, not the largest: a 4 KiB file must not hold a 256 KiB buffer.
            let data = reader.remaining().min(max as u64) as usize;
            let mut buf = pool.take(CHUNK_HEADER_LEN + data + FILE_END_ROOM);
            match reader.write_next(id, max, &mut buf) {
                Ok(step) => {
                    let end = match step {
                        ReadStep::Finished(hash) => Some(hash),
                        ReadStep::Chunk => None,
                    };
                    let data_len = (reader.sent() - before) as usize;
                    if end.is_some() {
                        readers.remove(&id);
                    }
                    Some(ReadEvent::Frames {
                        id,
                        bytes: pool.freeze(buf),
                        data_len,
                        end,
                    })
                }
                Err(e) => {
                    readers.remove(&id);
                    Some(ReadEvent::Failed {
                        id,
                        reason: e.to_string(),
                    })
                }
            }
        }
        ReadJob::Drop { id } => {
            readers.remove(&id);
            None
        }
    }
}
