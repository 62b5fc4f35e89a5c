//! Folders of the download dir held open, so that received files are created, renamed and
//! removed by name within them. For ten thousand small files that spares the system a walk of
//! the whole path on every call, and no folder can be swapped for a symbolic link (or a
//! Windows junction) between the check that it is a real folder and the use of it.
//!
//! A held folder is a capability ([`cap_std::fs::Dir`]): on Linux, macOS and Windows alike,
//! nothing opened through it can be outside it, whatever a name holds.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cap_fs_ext::{DirExt, FollowSymlinks, OpenOptionsFollowExt};
use cap_std::fs::{Dir, OpenOptions};

use super::names::SafePath;
use crate::platform::files::rename_no_replace;

/// Enough for the folders a transfer is writing into at once; beyond, the cache starts over
/// (the files being written keep their folders open), so a peer sending into a hundred
/// thousand folders cannot use up this process's file descriptors.
const MAX_CACHED: usize = 64;

/// An open folder, and the path it was opened by (for messages and for the saved file's name).
#[derive(Debug)]
pub struct Folder {
    path: PathBuf,
    dir: Dir,
}

impl Folder {
    /// Open the download dir itself. A symbolic link here is followed: it is the user's
    /// choice, not a peer's.
    pub fn open(path: &Path) -> io::Result<Self> {
        Ok(Self {
            path: path.to_path_buf(),
            dir: Dir::open_ambient_dir(path, cap_std::ambient_authority())?,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The folder `name` in this one, made if missing. Anything else by that name (a file, a
    /// symbolic link or junction, even one to a folder) is refused: it could lead outside the
    /// download dir.
    pub fn child(&self, name: &str) -> io::Result<Self> {
        let dir = match self.dir.open_dir_nofollow(name) {
            Ok(dir) => dir,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match self.dir.create_dir(name) {
                    // Made by someone else meanwhile: open whatever it is, as any other.
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e),
                }
                self.dir
                    .open_dir_nofollow(name)
                    .map_err(|e| self.not_a_folder(name, e))?
            }
            Err(e) => return Err(self.not_a_folder(name, e)),
        };
        Ok(Self {
            path: self.path.join(name),
            dir,
        })
    }

    /// The error for a `name` that could not be opened as a folder: a clear one when something
    /// else is there (each system reports that with its own error).
    fn not_a_folder(&self, name: &str, e: io::Error) -> io::Error {
        match self.dir.symlink_metadata(name) {
            Ok(meta) if !meta.is_dir() => io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not a folder",
                    self.path.join(name).display()
                ),
            ),
            _ => e,
        }
    }

    fn open_file(&self, name: &str, options: &mut OpenOptions) -> io::Result<File> {
        options.follow(FollowSymlinks::No);
        Ok(self.dir.open_with(name, options)?.into_std())
    }

    /// A new file `name` for writing; `AlreadyExists` if there is anything by that name.
    pub fn create_new(&self, name: &str) -> io::Result<File> {
        self.open_file(name, OpenOptions::new().write(true).create_new(true))
    }

    /// `name` for reading and appending, if it is a regular file. `Ok(None)` when there is
    /// nothing by that name, or something else: a symbolic link is not followed, and a FIFO
    /// is not opened (opening one would wait for a writer).
    pub fn open_existing(&self, name: &str) -> io::Result<Option<File>> {
        match self.dir.symlink_metadata(name) {
            Ok(meta) if meta.is_file() => {}
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        }
        let mut options = OpenOptions::new();
        options.read(true).append(true);
        // Swapped for a FIFO since the look above: the open must not wait for a writer.
        #[cfg(unix)]
        cap_std::fs::OpenOptionsExt::custom_flags(
            &mut options,
            rustix::fs::OFlags::NONBLOCK.bits() as i32,
        );
        let file = match self.open_file(name, &mut options) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        // Swapped since the look above, for something that opens without following.
        Ok(file.metadata()?.is_file().then_some(file))
    }

    pub fn remove(&self, name: &str) -> io::Result<()> {
        self.dir.remove_file(name)
    }

    /// Rename `from` to `to` in this folder without ever replacing anything: `Ok(false)` when
    /// `to` exists.
    pub fn rename_no_replace(&self, from: &str, to: &str) -> io::Result<bool> {
        rename_no_replace(&self.dir, from, to)
    }
}

/// The folders opened so far this session, so ten thousand files in one folder cost one
/// walk to it, not ten thousand.
#[derive(Debug, Default)]
pub struct FolderCache {
    root: Option<Arc<Folder>>,
    /// By the folders' components under the root, joined with `/`.
    known: HashMap<String, Arc<Folder>>,
}

impl FolderCache {
    /// The folder `path` goes in, under `root`, made where missing. `root` is the same on
    /// every call (one cache per download dir).
    pub fn prepare(&mut self, root: &Path, path: &SafePath) -> io::Result<Arc<Folder>> {
        let folders = path.folders();
        if folders.is_empty() {
            return self.root(root);
        }
        let key = folders.join("/");
        if let Some(folder) = self.known.get(&key) {
            return Ok(Arc::clone(folder));
        }
        if self.known.len() + folders.len() > MAX_CACHED {
            self.known.clear();
        }
        // From the deepest folder on the way that is open already.
        let mut depth = folders.len() - 1;
        let mut folder = loop {
            if depth == 0 {
                break self.root(root)?;
            }
            if let Some(f) = self.known.get(&folders[..depth].join("/")) {
                break Arc::clone(f);
            }
            depth -= 1;
        };
        for i in depth..folders.len() {
            folder = Arc::new(folder.child(&folders[i])?);
            self.known
                .insert(folders[..=i].join("/"), Arc::clone(&folder));
        }
        Ok(folder)
    }

    fn root(&mut self, root: &Path) -> io::Result<Arc<Folder>> {
        if let Some(folder) = &self.root {
            return Ok(Arc::clone(folder));
        }
        let folder = Arc::new(Folder::open(root)?);
        self.root = Some(Arc::clone(&folder));
        Ok(folder)
    }

    /// Whether no folder is held.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.root.is_none() && self.known.is_empty()
    }

    /// Open every folder afresh next time: one may have been removed or replaced.
    pub fn forget(&mut self) {
        self.root = None;
        self.known.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn safe(p: &str) -> SafePath {
        SafePath::parse(p).expect("safe")
    }

    #[test]
    fn folders_are_made_once_and_shared() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let mut cache = FolderCache::default();
        let a = cache.prepare(tmp.path(), &safe("x/y/z/a.txt"))?;
        assert_eq!(a.path(), tmp.path().join("x/y/z"));
        assert!(tmp.path().join("x/y/z").is_dir());
        let b = cache.prepare(tmp.path(), &safe("x/y/z/b.txt"))?;
        assert!(Arc::ptr_eq(&a, &b));
        // A sibling starts from the open parent.
        let c = cache.prepare(tmp.path(), &safe("x/y/w/c.txt"))?;
        assert_eq!(c.path(), tmp.path().join("x/y/w"));
        let root = cache.prepare(tmp.path(), &safe("top.txt"))?;
        assert_eq!(root.path(), tmp.path());
        Ok(())
    }

    #[test]
    fn a_file_on_the_way_is_refused() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        std::fs::write(tmp.path().join("plain"), b"")?;
        let mut cache = FolderCache::default();
        let e = cache
            .prepare(tmp.path(), &safe("plain/x.txt"))
            .expect_err("a file");
        assert!(e.to_string().contains("is not a folder"), "{e}");
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_on_the_way_is_refused() -> anyhow::Result<()> {
        let outside = tempfile::tempdir()?;
        let tmp = tempfile::tempdir()?;
        std::os::unix::fs::symlink(outside.path(), tmp.path().join("evil"))?;
        let mut cache = FolderCache::default();
        for p in ["evil/x.txt", "evil/deeper/x.txt"] {
            let e = cache.prepare(tmp.path(), &safe(p)).expect_err(p);
            assert!(e.to_string().contains("is not a folder"), "{p}: {e}");
        }
        assert_eq!(std::fs::read_dir(outside.path())?.count(), 0);
        Ok(())
    }

    /// Windows (and macOS by default) compare names without case: `report.pdf` is the file
    /// `Report.pdf`, and must be neither created over nor renamed onto.
    #[cfg(windows)]
    #[test]
    fn a_name_differing_only_in_case_is_taken() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let folder = Folder::open(tmp.path())?;
        std::fs::write(tmp.path().join("Report.pdf"), b"old")?;
        assert_eq!(
            folder.create_new("report.pdf").map_err(|e| e.kind()).err(),
            Some(io::ErrorKind::AlreadyExists)
        );
        std::io::Write::write_all(&mut folder.create_new("x.part")?, b"new")?;
        assert!(!folder.rename_no_replace("x.part", "REPORT.PDF")?);
        assert_eq!(std::fs::read(tmp.path().join("Report.pdf"))?, b"old");
        Ok(())
    }

    #[test]
    fn files_are_made_renamed_and_removed_by_name() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let folder = Folder::open(tmp.path())?;
        std::io::Write::write_all(&mut folder.create_new("a.part")?, b"new")?;
        assert_eq!(
            folder.create_new("a.part").map_err(|e| e.kind()).err(),
            Some(io::ErrorKind::AlreadyExists)
        );
        std::fs::write(tmp.path().join("a"), b"old")?;
        assert!(!folder.rename_no_replace("a.part", "a")?);
        assert!(folder.rename_no_replace("a.part", "b")?);
        assert_eq!(std::fs::read(tmp.path().join("a"))?, b"old");
        assert_eq!(std::fs::read(tmp.path().join("b"))?, b"new");
        folder.remove("b")?;
        assert!(!tmp.path().join("b").exists());
        assert!(folder.open_existing("b")?.is_none());
        assert!(folder.open_existing("a")?.is_some());
        // A symbolic link is not opened through.
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(tmp.path().join("a"), tmp.path().join("link"))?;
            assert!(folder.open_existing("link")?.is_none());
        }
        Ok(())
    }

    #[test]
    fn the_cache_is_bounded() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let mut cache = FolderCache::default();
        for i in 0..3 * MAX_CACHED {
            cache.prepare(tmp.path(), &safe(&format!("d{i}/f")))?;
            assert!(cache.known.len() <= MAX_CACHED);
        }
        assert_eq!(std::fs::read_dir(tmp.path())?.count(), 3 * MAX_CACHED);
        Ok(())
    }
}
