//! Folders of the download dir held open, so that received files are created, renamed and
//! removed by name within them (the `*at` system calls). For ten thousand small files that
//! spares the kernel a walk of the whole path on every call, and no folder can be swapped
//! for a symbolic link between the check that it is a real folder and the use of it.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::incoming::SafePath;

/// Enough for the folders a transfer is writing into at once; beyond, the cache starts over
/// (the files being written keep their folders open), so a peer sending into a hundred
/// thousand folders cannot use up this process's file descriptors.
const MAX_CACHED: usize = 64;

/// Only a handle for the `*at` calls, which needs no permission to read the folder.
#[cfg(target_os = "linux")]
const FOLDER_FLAGS: libc::c_int = libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC;
#[cfg(not(target_os = "linux"))]
const FOLDER_FLAGS: libc::c_int = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;

/// An open folder, and the path it was opened by (for messages and for the saved file's name).
#[derive(Debug)]
pub struct Folder {
    path: PathBuf,
    fd: OwnedFd,
}

fn c_name(name: &str) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a name"))
}

/// The result of a libc call that returns -1 on failure.
fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

impl Folder {
    /// Open the download dir itself. A symbolic link here is followed: it is the user's
    /// choice, not a peer's.
    pub fn open(path: &Path) -> io::Result<Self> {
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
        // SAFETY: a valid NUL-terminated string for the duration of the call.
        let fd = check(unsafe { libc::open(c.as_ptr(), FOLDER_FLAGS) })?;
        Ok(Self {
            path: path.to_path_buf(),
            // SAFETY: a descriptor just opened and owned by nobody else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The folder `name` in this one, made if missing. Anything else by that name (a file, a
    /// symbolic link, even one to a folder) is refused: it could lead outside the download dir.
    pub fn child(&self, name: &str) -> io::Result<Self> {
        let c = c_name(name)?;
        let open = || {
            // SAFETY: a valid descriptor and NUL-terminated string for the duration of the call.
            check(unsafe {
                libc::openat(
                    self.fd.as_raw_fd(),
                    c.as_ptr(),
                    FOLDER_FLAGS | libc::O_NOFOLLOW,
                )
            })
        };
        let fd = match open() {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // SAFETY: as above.
                match check(unsafe { libc::mkdirat(self.fd.as_raw_fd(), c.as_ptr(), 0o777) }) {
                    // Made by someone else meanwhile: open whatever it is, as any other.
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e),
                }
                open()?
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTDIR | libc::ELOOP)) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "{} exists and is not a folder",
                        self.path.join(name).display()
                    ),
                ));
            }
            Err(e) => return Err(e),
        };
        Ok(Self {
            path: self.path.join(name),
            // SAFETY: a descriptor just opened and owned by nobody else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    fn open_file(&self, name: &str, flags: libc::c_int) -> io::Result<File> {
        let c = c_name(name)?;
        let flags = flags | libc::O_CLOEXEC | libc::O_NOFOLLOW;
        let mode: libc::c_uint = 0o666;
        // SAFETY: a valid descriptor and NUL-terminated string for the duration of the call.
        let fd = check(unsafe { libc::openat(self.fd.as_raw_fd(), c.as_ptr(), flags, mode) })?;
        // SAFETY: a descriptor just opened and owned by nobody else.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// A new file `name` for writing; `AlreadyExists` if there is anything by that name.
    pub fn create_new(&self, name: &str) -> io::Result<File> {
        self.open_file(name, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL)
    }

    /// `name` for reading and appending, if it is there (a symbolic link is refused, and
    /// opening a FIFO does not wait for a writer); the caller checks what it is.
    pub fn open_existing(&self, name: &str) -> io::Result<File> {
        self.open_file(name, libc::O_RDWR | libc::O_APPEND | libc::O_NONBLOCK)
    }

    pub fn remove(&self, name: &str) -> io::Result<()> {
        let c = c_name(name)?;
        // SAFETY: a valid descriptor and NUL-terminated string for the duration of the call.
        check(unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), 0) }).map(drop)
    }

    /// Rename `from` to `to` in this folder without ever replacing anything: `Ok(false)` when
    /// `to` exists.
    pub fn rename_no_replace(&self, from: &str, to: &str) -> io::Result<bool> {
        let (from_c, to_c, dir) = (c_name(from)?, c_name(to)?, self.fd.as_raw_fd());
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            // SAFETY: a valid descriptor and NUL-terminated strings for the duration of the call.
            let rc = unsafe {
                libc::renameat2(
                    dir,
                    from_c.as_ptr(),
                    dir,
                    to_c.as_ptr(),
                    libc::RENAME_NOREPLACE,
                )
            };
            match check(rc) {
                Ok(_) => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
                // Not supported by this file system or kernel: the portable way below.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EINVAL | libc::ENOSYS | libc::ENOTSUP)
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        // A hard link fails if the target exists, whatever it is: an atomic no-overwrite.
        // SAFETY: as above.
        match check(unsafe { libc::linkat(dir, from_c.as_ptr(), dir, to_c.as_ptr(), 0) }) {
            Ok(_) => self.remove(from).map(|()| true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => {
                // File systems without hard links: check, then rename.
                tracing::debug!(error = %e, "hard link failed, falling back to rename");
                let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
                // SAFETY: as above; `st` is written by the call, and only its result is read.
                let rc = unsafe {
                    libc::fstatat(
                        dir,
                        to_c.as_ptr(),
                        st.as_mut_ptr(),
                        libc::AT_SYMLINK_NOFOLLOW,
                    )
                };
                if rc == 0 {
                    return Ok(false);
                }
                // SAFETY: as above.
                check(unsafe { libc::renameat(dir, from_c.as_ptr(), dir, to_c.as_ptr()) })
                    .map(|_| true)
            }
        }
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
    fn a_symlink_or_file_on_the_way_is_refused() -> anyhow::Result<()> {
        let outside = tempfile::tempdir()?;
        let tmp = tempfile::tempdir()?;
        std::os::unix::fs::symlink(outside.path(), tmp.path().join("evil"))?;
        std::fs::write(tmp.path().join("plain"), b"")?;
        let mut cache = FolderCache::default();
        for p in ["evil/x.txt", "evil/deeper/x.txt", "plain/x.txt"] {
            let e = cache.prepare(tmp.path(), &safe(p)).expect_err(p);
            assert!(e.to_string().contains("is not a folder"), "{p}: {e}");
        }
        assert_eq!(std::fs::read_dir(outside.path())?.count(), 0);
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
        // A symbolic link is not opened through.
        std::os::unix::fs::symlink(tmp.path().join("a"), tmp.path().join("link"))?;
        assert!(folder.open_existing("link").is_err());
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
