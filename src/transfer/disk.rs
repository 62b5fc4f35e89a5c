//! The receiving side's disk work, on a thread of its own: resuming, creating, writing,
//! hashing and promoting `.part` files. The session actor hands it jobs and hears back, so a
//! slow or full disk stalls neither chat nor the socket: no disk I/O and no hashing happen on
//! the thread that serves sessions and the UI.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc::UnboundedSender;

use super::TransferId;
use super::folder::FolderCache;
use super::incoming::PartFile;
use super::names::SafePath;
use super::parts::PartIndex;
use super::worker::{Work, Worker};

/// Decides, once, whether a transfer whose every byte arrived is named or withdrawn: the
/// session may stop a transfer (the peer's `Cancel`, the user, a lost connection) while the
/// disk thread is checking its hash. Whichever comes first wins; the other learns it lost.
#[derive(Debug, Default)]
pub struct SaveGate(AtomicU8);

/// How long the thread waits with no file open before it lets go of the folders it holds. On
/// Windows a held folder cannot be renamed or deleted (cap-std opens folders without
/// `FILE_SHARE_DELETE`, so that a name resolved through one stays inside it): the user can
/// move what arrived once tern is idle, not only once the session ends.
const FOLDER_IDLE: Duration = Duration::from_secs(1);

const OPEN: u8 = 0;
const WITHDRAWN: u8 = 1;
const SAVING: u8 = 2;

impl SaveGate {
    /// The session stops the transfer. `false`: too late, the file is being given its name.
    pub fn withdraw(&self) -> bool {
        self.0
            .compare_exchange(OPEN, WITHDRAWN, Ordering::AcqRel, Ordering::Acquire)
            .map_or_else(|now| now == WITHDRAWN, |_| true)
    }

    /// The disk thread is about to name the file. `false`: the transfer was withdrawn.
    fn save(&self) -> bool {
        self.0
            .compare_exchange(OPEN, SAVING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    fn withdrawn(&self) -> bool {
        self.0.load(Ordering::Acquire) == WITHDRAWN
    }
}

/// Work for the disk thread, in the order it must happen per transfer. Transfers are named by
/// their program-wide tid, never by the peer's id, which a peer may use again.
#[derive(Debug)]
pub enum DiskJob {
    /// A transfer was accepted: remember where it goes. With `resume`, look for a partial file
    /// to continue and answer `Ready` with the bytes it holds.
    Begin {
        tid: TransferId,
        path: SafePath,
        size: u64,
        resume: bool,
        gate: Arc<SaveGate>,
    },
    Write {
        tid: TransferId,
        data: Bytes,
    },
    /// Every byte was handed over: check the hash, then give the file its name, unless the
    /// transfer's gate was withdrawn.
    Finish {
        tid: TransferId,
        hash: [u8; 32],
    },
    /// Stop writing; with `discard`, delete the partial file too (a cancel, not a failure).
    Abandon {
        tid: TransferId,
        discard: bool,
    },
}

impl DiskJob {
    pub fn tid(&self) -> TransferId {
        match self {
            DiskJob::Begin { tid, .. }
            | DiskJob::Write { tid, .. }
            | DiskJob::Finish { tid, .. }
            | DiskJob::Abandon { tid, .. } => *tid,
        }
    }
}

/// What the disk thread reports.
#[derive(Debug, PartialEq, Eq)]
pub enum DiskEvent {
    /// Answer to `Begin { resume: true }`: continue from `offset`.
    Ready { tid: TransferId, offset: u64 },
    /// All of the transfer's bytes up to `total` are written.
    Written { tid: TransferId, total: u64 },
    /// Verified and renamed to this path.
    Saved { tid: TransferId, path: PathBuf },
    /// The transfer failed here; the partial file stays unless the reason says otherwise.
    Failed { tid: TransferId, reason: String },
}

struct Slot {
    path: SafePath,
    size: u64,
    gate: Arc<SaveGate>,
    /// Boxed: a hasher is ~2 KiB, and thousands of pipelined small files wait here at once.
    part: Option<Box<PartFile>>,
    /// A write failed: further jobs for this transfer are moot.
    broken: bool,
}

/// What the thread and the session share.
struct Shared {
    root: PathBuf,
    disk: Mutex<Disk>,
    /// Bytes of file data sent to the thread and not yet written (or dropped): the session
    /// stops reading the socket while this is high, so a disk slower than the link holds the
    /// data back in the sender, not in our memory.
    backlog: AtomicUsize,
}

/// The sending end of a disk thread; dropping it lets the thread finish its queue and end.
pub struct DiskWorker {
    worker: Worker<DiskJob>,
    shared: Arc<Shared>,
}

impl DiskWorker {
    /// Start the thread for files under `root`; its reports go to `events`.
    pub fn start(root: PathBuf, events: UnboundedSender<Vec<DiskEvent>>) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            root,
            disk: Mutex::new(Disk::default()),
            backlog: AtomicUsize::new(0),
        });
        let work = DiskWork {
            shared: Arc::clone(&shared),
        };
        let worker = Worker::start("tern-disk", work, events)?;
        Ok(Self { worker, shared })
    }

    /// Queue jobs, in order. `false` if the thread is gone (it never stops while we hold the
    /// sender, short of a panic, which the caller reports as a failure of the transfer).
    pub fn send(&self, jobs: Vec<DiskJob>) -> bool {
        let bytes = data_bytes(&jobs);
        self.shared.backlog.fetch_add(bytes, Ordering::AcqRel);
        let sent = self.worker.send(jobs);
        if !sent {
            self.shared.backlog.fetch_sub(bytes, Ordering::AcqRel);
        }
        sent
    }

    /// Keep the thread from taking its next job until the result is dropped: a disk that does
    /// not keep up, for tests.
    #[cfg(test)]
    pub(crate) fn stall(&self) -> Stall {
        let shared = Arc::clone(&self.shared);
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (held, holding) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let _guard = shared.disk.lock();
            let _ = held.send(());
            let _ = wait.recv();
        });
        let _ = holding.recv();
        Stall {
            release,
            thread: Some(thread),
        }
    }

    /// Bytes of file data queued for the thread and not yet written. The thread reports after
    /// every batch that held data, so a caller waiting for this to fall is woken.
    pub fn backlog(&self) -> usize {
        self.shared.backlog.load(Ordering::Acquire)
    }
}

/// See [`DiskWorker::stall`].
#[cfg(test)]
pub(crate) struct Stall {
    release: std::sync::mpsc::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[cfg(test)]
impl Drop for Stall {
    fn drop(&mut self) {
        let _ = self.release.send(());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The file data in `jobs`.
fn data_bytes(jobs: &[DiskJob]) -> usize {
    jobs.iter()
        .map(|job| match job {
            DiskJob::Write { data, .. } => data.len(),
            _ => 0,
        })
        .sum()
}

/// What the disk thread keeps between jobs.
#[derive(Default)]
struct Disk {
    slots: HashMap<TransferId, Slot>,
    folders: FolderCache,
    /// Made on first use, for the root `handle` is given (the same on every call).
    parts: Option<PartIndex>,
}

impl Disk {
    /// Nothing came for a while: with no file open, let go of the folders.
    fn idle(&mut self) {
        if self.slots.is_empty() {
            self.folders.forget();
        }
    }
}

/// The disk thread's side.
struct DiskWork {
    shared: Arc<Shared>,
}

impl Work for DiskWork {
    type Job = DiskJob;
    type Event = DiskEvent;

    fn batch(&mut self, jobs: Vec<DiskJob>) -> Option<Vec<DiskEvent>> {
        let shared = &self.shared;
        let bytes = data_bytes(&jobs);
        let done: Vec<DiskEvent> = match shared.disk.lock() {
            Ok(mut disk) => jobs
                .into_iter()
                .filter_map(|job| handle(&shared.root, &mut disk, job))
                .collect(),
            // A panic while the lock was held: the transfers fail as the session finds the
            // thread's reports stop.
            Err(_) => Vec::new(),
        };
        shared.backlog.fetch_sub(bytes, Ordering::AcqRel);
        // Even with nothing to say, a batch of data is reported: the session may be waiting
        // for the backlog to fall before it reads the socket again.
        (!done.is_empty() || bytes > 0).then_some(done)
    }

    fn idle_after(&self) -> Option<Duration> {
        Some(FOLDER_IDLE)
    }

    fn idle(&mut self) {
        if let Ok(mut disk) = self.shared.disk.lock() {
            disk.idle();
        }
    }
}

fn handle(root: &Path, disk: &mut Disk, job: DiskJob) -> Option<DiskEvent> {
    let Disk {
        slots,
        folders,
        parts,
    } = disk;
    let parts = parts.get_or_insert_with(|| PartIndex::new(root.to_path_buf()));
    match job {
        DiskJob::Begin {
            tid,
            path,
            size,
            resume,
            gate,
        } => {
            // Only a partial file already there is worth opening (see `PartIndex`).
            let part = if resume && parts.exists(&path, size) {
                match folders
                    .prepare(root, &path)
                    .and_then(|dir| PartFile::resume_in(dir, &path, size))
                {
                    Ok(part) => part,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot resume; starting over");
                        None
                    }
                }
            } else {
                None
            };
            let offset = part.as_ref().map_or(0, PartFile::received);
            let part = part.map(Box::new);
            slots.insert(
                tid,
                Slot {
                    path,
                    size,
                    gate,
                    part,
                    broken: false,
                },
            );
            resume.then_some(DiskEvent::Ready { tid, offset })
        }
        DiskJob::Write { tid, data } => {
            let slot = slots.get_mut(&tid).filter(|s| !s.broken)?;
            match write(root, folders, slot, &data) {
                // A file that is complete needs no credit or progress: its `Finish` follows.
                Ok(total) if total == slot.size => None,
                Ok(total) => Some(DiskEvent::Written { tid, total }),
                Err(reason) => {
                    slot.broken = true;
                    // Dropping the file keeps what was written, for a later resume; a partial
                    // with nothing in it (the disk could not hold the file) would be litter.
                    if let Some(part) = slot.part.take()
                        && part.received() == 0
                    {
                        part.discard();
                    }
                    parts.may_have_left(&slot.path, slot.size);
                    Some(DiskEvent::Failed { tid, reason })
                }
            }
        }
        DiskJob::Finish { tid, hash } => {
            // Withdrawn: the `Abandon` that follows decides what becomes of the partial.
            if slots
                .get(&tid)
                .is_none_or(|s| s.broken || s.gate.withdrawn())
            {
                return None;
            }
            let mut slot = slots.remove(&tid)?;
            if slot.part.is_none()
                && let Err(reason) = write(root, folders, &mut slot, &[])
            {
                return Some(DiskEvent::Failed { tid, reason });
            }
            let part = slot.part.take()?;
            if part.hash() != hash {
                let reason = if part.resumed() {
                    // The kept prefix was not this file: start from zero next time.
                    part.discard();
                    "BLAKE3 mismatch: the data kept from an earlier attempt did not match; \
                     it was removed, so a retry starts over"
                        .to_string()
                } else {
                    tracing::warn!(part = %part.part_path().display(), "BLAKE3 mismatch, kept");
                    parts.may_have_left(&slot.path, slot.size);
                    "BLAKE3 mismatch: the data is corrupt (the receiver kept it, unnamed)"
                        .to_string()
                };
                return Some(DiskEvent::Failed { tid, reason });
            }
            if !slot.gate.save() {
                slot.part = Some(part);
                slots.insert(tid, slot);
                return None;
            }
            Some(match part.promote() {
                Ok(path) => DiskEvent::Saved { tid, path },
                Err(e) => {
                    parts.may_have_left(&slot.path, slot.size);
                    DiskEvent::Failed {
                        tid,
                        reason: format!("cannot rename the finished file: {e}"),
                    }
                }
            })
        }
        DiskJob::Abandon { tid, discard } => {
            let slot = slots.remove(&tid)?;
            match slot.part {
                Some(part) if discard => part.discard(),
                // Kept for a later resume.
                Some(_) => parts.may_have_left(&slot.path, slot.size),
                None => {}
            }
            None
        }
    }
}

/// Write `data` to the slot's `.part`, creating it on first use; the total written.
fn write(
    root: &Path,
    folders: &mut FolderCache,
    slot: &mut Slot,
    data: &[u8],
) -> Result<u64, String> {
    let part = match &mut slot.part {
        Some(part) => part,
        None => {
            let create = |folders: &mut FolderCache| {
                folders
                    .prepare(root, &slot.path)
                    .and_then(|dir| PartFile::create_in(dir, &slot.path, slot.size))
            };
            // A folder held open may have been removed since (the user emptied the download
            // dir): then nothing is found in it, and it is walked to afresh, once.
            let created = create(folders)
                .or_else(|e| {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        return Err(e);
                    }
                    folders.forget();
                    create(folders)
                })
                .map_err(|e| {
                    // The reason goes to the peer too: the local path only to the log.
                    tracing::warn!(error = %e, root = %root.display(), "cannot create a file");
                    format!("cannot create the file: {e}")
                })?;
            slot.part.insert(Box::new(created))
        }
    };
    part.write(data).map_err(|e| {
        tracing::warn!(error = %e, part = %part.part_path().display(), "cannot write");
        format!("cannot write the file: {e}")
    })?;
    Ok(part.received())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::incoming::partial_name;

    /// Incoming transfer `n`, with key `n`: numbered as the tests need, unlike real ones.
    fn tid(n: u64) -> TransferId {
        TransferId {
            direction: crate::transfer::Direction::Incoming,
            id: n as u32,
            key: crate::transfer::TransferKey(n),
        }
    }

    fn path(p: &str) -> SafePath {
        SafePath::parse(p).expect("safe")
    }

    #[test]
    fn jobs_write_verify_and_promote_in_order() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let mut disk = Disk::default();
        let root = tmp.path();
        let begin = DiskJob::Begin {
            tid: tid(1),
            path: path("dir/a.txt"),
            size: 11,
            resume: false,
            gate: Arc::default(),
        };
        assert_eq!(handle(root, &mut disk, begin), None);
        let write = |data: &'static [u8]| DiskJob::Write {
            tid: tid(1),
            data: Bytes::from_static(data),
        };
        assert_eq!(
            handle(root, &mut disk, write(b"hello ")),
            Some(DiskEvent::Written {
                tid: tid(1),
                total: 6
            })
        );
        handle(root, &mut disk, write(b"world"));
        let finish = DiskJob::Finish {
            tid: tid(1),
            hash: *blake3::hash(b"hello world").as_bytes(),
        };
        let saved = root.join("dir/a.txt");
        assert_eq!(
            handle(root, &mut disk, finish),
            Some(DiskEvent::Saved {
                tid: tid(1),
                path: saved.clone()
            })
        );
        assert_eq!(std::fs::read(saved)?, b"hello world");
        Ok(())
    }

    #[test]
    fn a_wrong_hash_keeps_the_part_and_reports_it() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let mut disk = Disk::default();
        let root = tmp.path();
        let begin = DiskJob::Begin {
            tid: tid(2),
            path: path("b.bin"),
            size: 3,
            resume: false,
            gate: Arc::default(),
        };
        handle(root, &mut disk, begin);
        let write = DiskJob::Write {
            tid: tid(2),
            data: Bytes::from_static(b"abc"),
        };
        handle(root, &mut disk, write);
        let finish = DiskJob::Finish {
            tid: tid(2),
            hash: [0; 32],
        };
        match handle(root, &mut disk, finish) {
            Some(DiskEvent::Failed { reason, .. }) => assert!(reason.contains("BLAKE3")),
            other => anyhow::bail!("unexpected {other:?}"),
        }
        assert!(root.join(partial_name("b.bin", 3, 0)).exists());
        assert!(!root.join("b.bin").exists());
        Ok(())
    }

    /// Begin, write and finish a two-byte file.
    fn receive_small(root: &Path, disk: &mut Disk, id: u64, name: &str) -> Vec<DiskEvent> {
        let tid = tid(id);
        let begin = DiskJob::Begin {
            tid,
            path: path(name),
            size: 2,
            resume: false,
            gate: Arc::default(),
        };
        let write = DiskJob::Write {
            tid,
            data: Bytes::from_static(b"ok"),
        };
        let finish = DiskJob::Finish {
            tid,
            hash: *blake3::hash(b"ok").as_bytes(),
        };
        [begin, write, finish]
            .into_iter()
            .filter_map(|job| handle(root, disk, job))
            .collect()
    }

    /// Unix lets a folder be removed while tern holds it open; the next file finds it gone
    /// and walks to the new one.
    #[cfg(unix)]
    #[test]
    fn a_download_dir_removed_and_made_again_is_written_to() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let root = tmp.path().join("in");
        std::fs::create_dir(&root)?;
        let mut disk = Disk::default();
        let first = receive_small(&root, &mut disk, 1, "sub/a");
        assert!(matches!(first[..], [DiskEvent::Saved { .. }]));
        std::fs::remove_dir_all(&root)?;
        std::fs::create_dir(&root)?;
        assert_eq!(
            receive_small(&root, &mut disk, 2, "sub/b"),
            vec![DiskEvent::Saved {
                tid: tid(2),
                path: root.join("sub/b")
            }]
        );
        Ok(())
    }

    /// Windows refuses to remove or rename a folder held open: once no file is open, the
    /// thread lets go, and the user can move what arrived.
    #[test]
    fn an_idle_thread_holds_no_folder() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let root = tmp.path().join("in");
        std::fs::create_dir(&root)?;
        let mut disk = Disk::default();
        let first = receive_small(&root, &mut disk, 1, "sub/deeper/a");
        assert!(matches!(first[..], [DiskEvent::Saved { .. }]));
        disk.idle();
        std::fs::rename(root.join("sub"), root.join("moved"))?;
        std::fs::remove_dir_all(&root)?;
        std::fs::create_dir(&root)?;
        assert_eq!(
            receive_small(&root, &mut disk, 2, "sub/deeper/b"),
            vec![DiskEvent::Saved {
                tid: tid(2),
                path: root.join("sub/deeper/b")
            }]
        );
        Ok(())
    }

    #[test]
    fn an_open_file_keeps_its_folders() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let mut disk = Disk::default();
        let begin = DiskJob::Begin {
            tid: tid(1),
            path: path("sub/a"),
            size: 4,
            resume: false,
            gate: Arc::default(),
        };
        let write = DiskJob::Write {
            tid: tid(1),
            data: Bytes::from_static(b"ok"),
        };
        for job in [begin, write] {
            let _ = handle(tmp.path(), &mut disk, job);
        }
        assert_eq!(disk.slots.len(), 1);
        disk.idle();
        assert!(
            !disk.folders.is_empty(),
            "the folder of an open file is kept"
        );
        Ok(())
    }

    #[test]
    fn the_thread_reports_back_over_its_channel() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let worker = DiskWorker::start(tmp.path().to_path_buf(), tx)?;
        std::fs::write(tmp.path().join(partial_name("r.bin", 6, 0)), b"12")?;
        assert!(worker.send(vec![DiskJob::Begin {
            tid: tid(7),
            path: path("r.bin"),
            size: 6,
            resume: true,
            gate: Arc::default(),
        }]));
        assert_eq!(
            rx.blocking_recv(),
            Some(vec![DiskEvent::Ready {
                tid: tid(7),
                offset: 2
            }])
        );
        assert!(worker.send(vec![DiskJob::Write {
            tid: tid(7),
            data: Bytes::from_static(b"34"),
        }]));
        assert_eq!(
            rx.blocking_recv(),
            Some(vec![DiskEvent::Written {
                tid: tid(7),
                total: 4
            }])
        );
        drop(worker);
        assert_eq!(rx.blocking_recv(), None);
        Ok(())
    }
}
