//! The receiving side: untrusted names made safe, `.part` files written at their offsets and
//! hashed on the way, and the final rename that never overwrites anything.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::folder::{Folder, FolderCache};
use super::human_size;
use super::names::{SafePath, numbered};

/// Files smaller than this are not given their space up front: for thousands of small files
/// it would be one more system call and extent each, to find a full disk a moment earlier.
const SET_ASIDE_MIN: u64 = 1024 * 1024;

/// How tern's partial files end. Only files named so, for the same name and size (see
/// [`partial_name`]), are ever resumed or removed: a browser's `NAME.part` in the same folder
/// is someone else's.
pub const PARTIAL_SUFFIX: &str = ".tern-part";
/// The most of a name kept in front of its partial file's tag: the tag carries the identity,
/// and the whole partial name stays well inside 255 bytes.
const PARTIAL_STEM_MAX: usize = 200;
/// Partial files looked at for a resume: one per transfer of the same file that was cut while
/// another held the first.
pub const RESUME_CANDIDATES: usize = 4;
/// The partial file tern writes while receiving `name` of `size` bytes: `STEM.TAG.tern-part`,
/// or `STEM.TAG-n.tern-part` for the n-th at once. `TAG` is a hash of the name and the size,
/// so a partial is only ever taken up again by an offer of the same file, and `STEM` is the
/// name, shortened if need be.
pub fn partial_name(name: &str, size: u64, n: u32) -> String {
    partial_names(name, size)
        .nth(n as usize)
        .unwrap_or_default()
}

/// [`partial_name`] for n = 0, 1, 2, …, the tag hashed once.
pub fn partial_names(name: &str, size: u64) -> impl Iterator<Item = String> + '_ {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&size.to_le_bytes());
    hasher.update(name.as_bytes());
    let tag = hasher.finalize().to_hex();
    let mut cut = name.len().min(PARTIAL_STEM_MAX);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    let stem = &name[..cut];
    (0u32..).map(move |n| {
        let tag = &tag.as_str()[..12];
        if n == 0 {
            format!("{stem}.{tag}{PARTIAL_SUFFIX}")
        } else {
            format!("{stem}.{tag}-{n}{PARTIAL_SUFFIX}")
        }
    })
}

/// Partial files a transfer of this process holds. A partial belongs to at most one transfer
/// at a time, across sessions too: two offers of the same file must never append to one file,
/// and the second must not write to what the first has verified and named.
static HELD: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// A partial file held by one transfer; let go when dropped.
#[derive(Debug)]
struct Held(PathBuf);

impl Held {
    /// `None`: another transfer holds it.
    fn take(path: PathBuf) -> Option<Self> {
        // A panic while holding the lock cannot leave the set half-changed.
        let mut held = HELD
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Made only when taken: a `Held` dropped here would let go of another's claim.
        let taken = held.insert(path.clone());
        taken.then(|| Self(path))
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = HELD
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        held.remove(&self.0);
    }
}

/// An accepted incoming file being written to its partial file.
pub struct PartFile {
    folder: Arc<Folder>,
    name: String,
    /// The `.part`'s name in `folder`.
    part_name: String,
    /// Its whole path, for messages.
    part: PathBuf,
    file: File,
    received: u64,
    /// The whole file's size, as offered.
    size: u64,
    /// Space was set aside up to `size` (see [`Self::write`]).
    set_aside: bool,
    /// Asked once: a file system without `fallocate` is not asked again on every write.
    reserve_tried: bool,
    /// Promoted or discarded: what is set aside is in use, or gone with the file.
    closed: bool,
    hasher: blake3::Hasher,
    /// Started from bytes left by an earlier attempt.
    resumed: bool,
    /// Dropped last: the partial is no longer this transfer's once it is renamed or removed.
    _held: Held,
}

impl PartFile {
    /// Create a new partial file (see [`partial_name`]) in the folder for `path` under
    /// `root`, for a file of `size` bytes.
    pub fn create(root: &Path, path: &SafePath, size: u64) -> io::Result<Self> {
        Self::create_in(FolderCache::default().prepare(root, path)?, path, size)
    }

    /// [`PartFile::create`] in `folder`, already prepared for `path`: the first partial name
    /// for this file that is neither held nor taken.
    pub fn create_in(folder: Arc<Folder>, path: &SafePath, size: u64) -> io::Result<Self> {
        let name = path.file_name();
        for part_name in partial_names(name, size).take(1000) {
            let part = folder.path().join(&part_name);
            let Some(held) = Held::take(part.clone()) else {
                continue;
            };
            match folder.create_new(&part_name) {
                Ok(file) => {
                    return Ok(Self {
                        part,
                        folder,
                        name: name.to_string(),
                        part_name,
                        file,
                        received: 0,
                        size,
                        set_aside: false,
                        reserve_tried: false,
                        closed: false,
                        hasher: blake3::Hasher::new(),
                        resumed: false,
                        _held: held,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("too many partial files for {name}"),
        ))
    }

    /// Reopen a partial file an earlier attempt at the same file (same name, same size) left
    /// in the folder for `path`, if no transfer holds it and it is a regular file with at least
    /// one byte and no more than `size`. What it holds is hashed now, because the final hash
    /// covers the whole file. `None`: nothing to resume.
    pub fn resume(root: &Path, path: &SafePath, size: u64) -> io::Result<Option<Self>> {
        Self::resume_in(FolderCache::default().prepare(root, path)?, path, size)
    }

    /// [`PartFile::resume`] in `folder`, already prepared for `path`.
    pub fn resume_in(folder: Arc<Folder>, path: &SafePath, size: u64) -> io::Result<Option<Self>> {
        let name = path.file_name();
        for part_name in partial_names(name, size).take(RESUME_CANDIDATES) {
            let part = folder.path().join(&part_name);
            let Some(held) = Held::take(part.clone()) else {
                continue;
            };
            let Some(mut file) = open_resumable(&folder, &part_name, size)? else {
                continue;
            };
            let mut hasher = blake3::Hasher::new();
            hasher.update_reader(&mut file)?;
            let received = file.metadata()?.len();
            return Ok(Some(Self {
                part,
                folder,
                name: name.to_string(),
                part_name,
                file,
                received,
                size,
                set_aside: false,
                reserve_tried: false,
                closed: false,
                hasher,
                resumed: true,
                _held: held,
            }));
        }
        Ok(None)
    }

    pub fn resumed(&self) -> bool {
        self.resumed
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    pub fn part_path(&self) -> &Path {
        &self.part
    }

    /// Append the next piece; the caller has checked the offset and the size limit.
    ///
    /// The first write sets aside disk space for the rest of a file (of 1 MiB or more, see
    /// [`SET_ASIDE_MIN`]), so a file the disk
    /// cannot hold fails at once, not after gigabytes, and the file system maps its blocks in
    /// one go rather than page by page (ext4's per-page bookkeeping was about a tenth of the
    /// receiving side's profile).
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if !self.reserve_tried {
            self.reserve_tried = true;
            self.reserve()?;
        }
        self.file.write_all(data)?;
        self.hasher.update(data);
        self.received += data.len() as u64;
        Ok(())
    }

    fn reserve(&mut self) -> io::Result<()> {
        let (from, to) = (self.received, self.size);
        if to <= from || self.size < SET_ASIDE_MIN {
            return Ok(());
        }
        // Past the end, without changing the file's length: the length is what a resume
        // trusts.
        match crate::platform::files::set_aside(&self.file, from, to - from) {
            Ok(()) => self.set_aside = true,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::StorageFull
                        | io::ErrorKind::QuotaExceeded
                        | io::ErrorKind::FileTooLarge
                ) =>
            {
                return Err(io::Error::new(
                    e.kind(),
                    format!("{} more are needed: {e}", human_size(to - from)),
                ));
            }
            // Not supported here (or interrupted): the writes allocate as they go.
            Err(e) => {
                tracing::debug!(error = %e, part = %self.part.display(), "no space set aside")
            }
        }
        Ok(())
    }

    pub fn hash(&self) -> [u8; 32] {
        *self.hasher.finalize().as_bytes()
    }

    /// Give the file its final name (the first free of `NAME`, `NAME (1)`, ...) and return it.
    /// Never replaces an existing file, even one created a moment ago.
    pub fn promote(mut self) -> io::Result<PathBuf> {
        // No fsync: one per file would cost more than the transfer for small files (tar and
        // cp do not sync either); the hash was checked on the bytes as they were written.
        self.closed = true;
        for n in 0..10_000 {
            let target = numbered(&self.name, n);
            if self.folder.rename_no_replace(&self.part_name, &target)? {
                return Ok(self.folder.path().join(target));
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("too many files named {}", self.name),
        ))
    }

    /// Remove the `.part` (an explicit cancel: nothing to resume).
    pub fn discard(mut self) {
        self.closed = true;
        if let Err(e) = self.folder.remove(&self.part_name) {
            tracing::warn!(error = %e, part = %self.part.display(), "could not remove .part");
        }
    }
}

impl Drop for PartFile {
    /// A `.part` kept for a later resume gives back the space set aside beyond what arrived.
    fn drop(&mut self) {
        if !self.closed && self.set_aside && self.received < self.size {
            // Truncating to the length it has frees the blocks past the end (a hole punched
            // there is ignored by ext4).
            if let Err(e) = self.file.set_len(self.received) {
                tracing::debug!(error = %e, part = %self.part.display(), "space kept");
            }
        }
    }
}

/// `part_name` in `folder` if it can be appended to: a regular file of 1 to `size` bytes.
fn open_resumable(folder: &Folder, part_name: &str, size: u64) -> io::Result<Option<File>> {
    let Some(file) = folder.open_existing(part_name)? else {
        return Ok(None);
    };
    let len = file.metadata()?.len();
    Ok((len > 0 && len <= size).then_some(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_left_behind_is_resumed_with_its_prefix_hashed() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let path = SafePath::parse("dir/a.bin")?;
        let mut first = PartFile::create(tmp.path(), &path, 11)?;
        first.write(b"hello ")?;
        drop(first);
        let mut again = PartFile::resume(tmp.path(), &path, 11)?.expect("resumable");
        assert!(again.resumed());
        assert_eq!(again.received(), 6);
        again.write(b"world")?;
        assert_eq!(again.hash(), *blake3::hash(b"hello world").as_bytes());
        let done = again.promote()?;
        assert_eq!(std::fs::read(done)?, b"hello world");
        Ok(())
    }

    #[test]
    fn a_part_longer_than_the_offer_is_not_resumed() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let path = SafePath::parse("a.bin")?;
        std::fs::write(tmp.path().join(partial_name("a.bin", 5, 0)), b"0123456789")?;
        assert!(PartFile::resume(tmp.path(), &path, 5)?.is_none());
        assert!(PartFile::resume(tmp.path(), &SafePath::parse("b.bin")?, 5)?.is_none());
        Ok(())
    }

    #[test]
    fn a_part_file_tern_did_not_write_is_never_taken_up() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        // What a browser leaves in ~/Downloads.
        std::fs::write(tmp.path().join("a.bin.part"), b"browser")?;
        let path = SafePath::parse("a.bin")?;
        assert!(PartFile::resume(tmp.path(), &path, 100)?.is_none());
        let mut part = PartFile::create(tmp.path(), &path, 100)?;
        part.write(b"x")?;
        part.discard();
        assert_eq!(std::fs::read(tmp.path().join("a.bin.part"))?, b"browser");
        Ok(())
    }

    #[test]
    fn a_partial_is_only_resumed_for_the_same_name_and_size() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let path = SafePath::parse("a.bin")?;
        let mut first = PartFile::create(tmp.path(), &path, 100)?;
        first.write(b"12345")?;
        drop(first);
        assert!(PartFile::resume(tmp.path(), &path, 99)?.is_none());
        assert!(PartFile::resume(tmp.path(), &SafePath::parse("A.bin")?, 100)?.is_none());
        assert!(PartFile::resume(tmp.path(), &path, 100)?.is_some());
        Ok(())
    }

    #[test]
    fn a_partial_belongs_to_one_transfer_at_a_time() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let path = SafePath::parse("shared.bin")?;
        let mut first = PartFile::create(tmp.path(), &path, 10)?;
        first.write(b"abc")?;
        drop(first);
        let mut resumed = PartFile::resume(tmp.path(), &path, 10)?.expect("resumable");
        // Held by `resumed`: a second transfer of the same file neither resumes it nor
        // writes to it, and gets a partial of its own.
        assert!(PartFile::resume(tmp.path(), &path, 10)?.is_none());
        let mut second = PartFile::create(tmp.path(), &path, 10)?;
        assert_ne!(second.part_path(), resumed.part_path());
        resumed.write(b"defghij")?;
        let saved = resumed.promote()?;
        second.write(b"0123456789")?;
        let other = second.promote()?;
        assert_eq!(std::fs::read(&saved)?, b"abcdefghij");
        assert_eq!(std::fs::read(&other)?, b"0123456789");
        assert_ne!(saved, other);
        Ok(())
    }

    #[test]
    fn partial_names_stay_short_and_distinct() {
        let long = "名".repeat(80);
        assert!(partial_name(&long, u64::MAX, 999).len() < 240);
        assert!(partial_name("a", 1, 0).ends_with(PARTIAL_SUFFIX));
        assert_ne!(partial_name("a", 1, 0), partial_name("a", 2, 0));
        assert_ne!(partial_name("a", 1, 0), partial_name("a", 1, 1));
        assert!(SafePath::parse(&partial_name("a", 1, 0)).is_err());
    }

    #[test]
    fn promote_never_overwrites() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        std::fs::write(tmp.path().join("a.txt"), b"old")?;
        let path = SafePath::parse("a.txt")?;
        let mut part = PartFile::create(tmp.path(), &path, 11)?;
        part.write(b"new")?;
        let final_path = part.promote()?;
        assert_eq!(final_path, tmp.path().join("a (1).txt"));
        assert_eq!(std::fs::read(tmp.path().join("a.txt"))?, b"old");
        assert_eq!(std::fs::read(&final_path)?, b"new");
        assert!(!tmp.path().join(partial_name("a.txt", 11, 0)).exists());
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn a_symlinked_folder_in_the_download_dir_is_not_followed() -> anyhow::Result<()> {
        let outside = tempfile::tempdir()?;
        let root = tempfile::tempdir()?;
        std::os::unix::fs::symlink(outside.path(), root.path().join("evil"))?;
        let path = SafePath::parse("evil/x.txt")?;
        assert!(PartFile::create(root.path(), &path, 1).is_err());
        assert_eq!(std::fs::read_dir(outside.path())?.count(), 0);
        Ok(())
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn space_is_set_aside_for_the_whole_file_and_given_back_when_kept() -> anyhow::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let tmp = tempfile::tempdir()?;
        let path = SafePath::parse("big.bin")?;
        let size = 8 << 20;
        let mut part = PartFile::create(tmp.path(), &path, size)?;
        part.write(&[7; 100_000])?;
        let file = tmp.path().join(partial_name("big.bin", size, 0));
        let allocated = |f: &Path| std::fs::metadata(f).map(|m| m.blocks() * 512);
        assert!(allocated(&file)? >= size, "the whole file is set aside");
        assert_eq!(
            std::fs::metadata(&file)?.len(),
            100_000,
            "the length stays true"
        );
        // Kept for a resume (a failure, a lost connection): the unused space goes back.
        drop(part);
        assert!(
            allocated(&file)? < 1 << 20,
            "{} bytes still held",
            allocated(&file)?
        );
        assert_eq!(std::fs::read(&file)?, vec![7; 100_000]);
        Ok(())
    }
}
