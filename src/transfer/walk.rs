//! Listing a folder to send, on several threads. Every file's size costs a `statx`: ten
//! thousand files took ~40 ms on one core of tmpfs, all of it before the first offer, and on
//! a cold disk each one may wait for a read, so folders are listed side by side.

use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, PoisonError};

use super::outgoing::{CollectError, OutgoingFile, io_err, readable_size};

/// More threads than this only queue up on the same disk.
const MAX_THREADS: usize = 4;

/// What a folder holds, in name order: files, and folders listed elsewhere.
enum Item {
    File(OutgoingFile),
    /// The index of the folder's own listing.
    Folder(usize),
}

/// A folder to list: where its listing goes, where it is, and its path as the peer sees it.
struct Job {
    slot: usize,
    path: PathBuf,
    rel: String,
}

#[derive(Default)]
struct Walk {
    queue: Vec<Job>,
    /// One per folder found; `None` until listed.
    listings: Vec<Option<Vec<Item>>>,
    /// Threads listing a folder now (they may find more).
    busy: usize,
    error: Option<CollectError>,
}

/// Every file below `dir`, with `rel` as the first component of their paths, sorted within
/// each folder. Links to files are followed; links to folders are skipped, so a loop cannot
/// make the walk endless. The first error found ends it.
pub fn walk_dir(dir: &Path, rel: &str, out: &mut Vec<OutgoingFile>) -> Result<(), CollectError> {
    let walk = Mutex::new(Walk {
        queue: vec![Job {
            slot: 0,
            path: dir.to_path_buf(),
            rel: rel.to_string(),
        }],
        listings: vec![None],
        ..Walk::default()
    });
    let wake = Condvar::new();
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(MAX_THREADS);
    std::thread::scope(|scope| {
        for _ in 1..threads {
            // A thread that cannot start leaves the work to the others.
            let _ = std::thread::Builder::new()
                .name("tern-walk".into())
                .spawn_scoped(scope, || work(&walk, &wake));
        }
        work(&walk, &wake);
    });
    let mut walk = walk.into_inner().unwrap_or_else(PoisonError::into_inner);
    if let Some(e) = walk.error {
        return Err(e);
    }
    // In order: a folder's files and subfolders where they sort among its entries.
    let mut stack = vec![walk.listings[0].take().unwrap_or_default().into_iter()];
    while let Some(items) = stack.last_mut() {
        match items.next() {
            Some(Item::File(file)) => out.push(file),
            Some(Item::Folder(slot)) => {
                let listing = walk.listings[slot].take().unwrap_or_default();
                stack.push(listing.into_iter());
            }
            None => {
                stack.pop();
            }
        }
    }
    Ok(())
}

/// Take folders off the queue and list them until none is left and no thread may add more.
fn work(walk: &Mutex<Walk>, wake: &Condvar) {
    let lock = || walk.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        let job = {
            let mut w = lock();
            loop {
                if w.error.is_some() {
                    return;
                }
                if let Some(job) = w.queue.pop() {
                    w.busy += 1;
                    break job;
                }
                if w.busy == 0 {
                    return;
                }
                w = wake.wait(w).unwrap_or_else(PoisonError::into_inner);
            }
        };
        let listed = list(&job);
        let mut w = lock();
        w.busy -= 1;
        match listed {
            Ok(entries) => {
                let mut items = Vec::with_capacity(entries.len());
                for entry in entries {
                    items.push(match entry {
                        Listed::File(file) => Item::File(file),
                        Listed::Folder(path, rel) => {
                            let slot = w.listings.len();
                            w.listings.push(None);
                            w.queue.push(Job { slot, path, rel });
                            Item::Folder(slot)
                        }
                    });
                }
                w.listings[job.slot] = Some(items);
            }
            Err(e) => {
                w.error.get_or_insert(e);
            }
        }
        wake.notify_all();
    }
}

enum Listed {
    File(OutgoingFile),
    Folder(PathBuf, String),
}

fn list(job: &Job) -> Result<Vec<Listed>, CollectError> {
    let mut entries = std::fs::read_dir(&job.path)
        .map_err(io_err(&job.path))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(io_err(&job.path))?;
    entries.sort_by_key(|e| e.file_name());
    let mut listed = Vec::with_capacity(entries.len());
    for entry in entries {
        let path = entry.path();
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| CollectError::NotUtf8(path.clone()))?;
        let rel = format!("{}/{name}", job.rel);
        let file_type = entry.file_type().map_err(io_err(&path))?;
        if file_type.is_dir() {
            listed.push(Listed::Folder(path, rel));
        } else if file_type.is_file()
            || (file_type.is_symlink() && std::fs::metadata(&path).is_ok_and(|m| m.is_file()))
        {
            // Opened, not only looked at: a file we cannot read fails before it is offered.
            let size = readable_size(&path)?;
            listed.push(Listed::File(OutgoingFile {
                local: path,
                rel_path: rel,
                size,
            }));
        } else if file_type.is_symlink() {
            tracing::info!(path = %path.display(), "skipping link that is not a file");
        }
    }
    Ok(listed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wide_and_deep_tree_comes_out_in_order() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let mut expected = Vec::new();
        // Folders and files interleaved in name order, several levels deep.
        for a in 0..6 {
            std::fs::write(tmp.path().join(format!("{a}f")), b"x".repeat(a))?;
            expected.push((format!("top/{a}f"), a as u64));
            for b in 0..5 {
                let dir = tmp.path().join(format!("{a}g/{b}"));
                std::fs::create_dir_all(&dir)?;
                for c in 0..3 {
                    std::fs::write(dir.join(format!("{c}")), b"yy")?;
                    expected.push((format!("top/{a}g/{b}/{c}"), 2));
                }
            }
        }
        std::fs::create_dir(tmp.path().join("empty"))?;
        let mut out = Vec::new();
        walk_dir(tmp.path(), "top", &mut out)?;
        let got: Vec<(String, u64)> = out.into_iter().map(|f| (f.rel_path, f.size)).collect();
        assert_eq!(got, expected);
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn an_unreadable_folder_ends_the_walk_with_its_path() -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir()?;
        let locked = tmp.path().join("b/locked");
        std::fs::create_dir_all(&locked)?;
        std::fs::write(tmp.path().join("a"), b"")?;
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000))?;
        // Root reads it anyway: then there is nothing to see.
        let readable = std::fs::read_dir(&locked).is_ok();
        let mut out = Vec::new();
        let result = walk_dir(tmp.path(), "t", &mut out);
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755))?;
        match result {
            Err(CollectError::Io { path, .. }) => assert_eq!(path, locked),
            Err(e) => anyhow::bail!("unexpected error {e}"),
            Ok(()) => assert!(readable, "an unreadable folder was walked"),
        }
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn a_link_loop_does_not_make_the_walk_endless() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        std::fs::create_dir(tmp.path().join("d"))?;
        std::fs::write(tmp.path().join("d/file"), b"1")?;
        std::os::unix::fs::symlink(tmp.path(), tmp.path().join("d/loop"))?;
        std::os::unix::fs::symlink(tmp.path().join("d/file"), tmp.path().join("d/link"))?;
        let mut out = Vec::new();
        walk_dir(tmp.path(), "t", &mut out)?;
        let got: Vec<&str> = out.iter().map(|f| f.rel_path.as_str()).collect();
        assert_eq!(got, ["t/d/file", "t/d/link"]);
        Ok(())
    }
}
