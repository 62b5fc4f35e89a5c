//! Whether an accepted offer has a partial file to resume, asked of each folder's listing rather
//! than of the file system once per offer: for 10,000 small files the `statx` of each
//! partial file was a quarter of the receiving session's time. Kept by the disk thread, which
//! alone touches the download dir.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::transfer::incoming::{PARTIAL_SUFFIX, RESUME_CANDIDATES, partial_names};
use crate::transfer::names::SafePath;

/// Folders remembered at once; beyond, the index starts over.
const MAX_FOLDERS: usize = 4096;
/// Partial files' names remembered per folder.
const MAX_NAMES: usize = 4096;

enum Folder {
    /// Asked about once, with a `statx`: a folder a single file goes to is never listed.
    Once,
    /// The partial files' names it held when listed, and those a transfer may have left since.
    Listed(HashSet<String>),
}

pub struct PartIndex {
    root: PathBuf,
    /// By the folders' components under the root, joined with `/`.
    folders: HashMap<String, Folder>,
}

impl PartIndex {
    pub fn new(root: PathBuf) -> Self {
        Self {
            root,
            folders: HashMap::new(),
        }
    }

    /// There is a partial file with something in it for `path` of `size` bytes (one made by
    /// another program while this session runs may be missed: that file starts over).
    pub fn exists(&mut self, path: &SafePath, size: u64) -> bool {
        let key = path.folders().join("/");
        // The common case for many small files: a folder listed with no partial file in it.
        if let Some(Folder::Listed(held)) = self.folders.get(&key)
            && held.is_empty()
        {
            return false;
        }
        let names = candidates(path, size);
        let dir = || {
            let mut dir = self.root.clone();
            dir.extend(path.folders());
            dir
        };
        let listed: Vec<&String> = match self.folders.get_mut(&key) {
            Some(Folder::Listed(held)) => names.iter().filter(|n| held.contains(*n)).collect(),
            Some(once @ Folder::Once) => {
                let held = list_parts(&dir());
                let listed = names.iter().filter(|n| held.contains(*n)).collect();
                *once = Folder::Listed(held);
                listed
            }
            None => {
                if self.folders.len() >= MAX_FOLDERS {
                    self.folders.clear();
                }
                self.folders.insert(key, Folder::Once);
                names.iter().collect()
            }
        };
        // Listed (or not yet): only the file itself says whether it can be resumed.
        listed.into_iter().any(|name| resumable(&dir().join(name)))
    }

    /// A transfer to `path` of `size` bytes ended without its file: its partial may be there.
    pub fn may_have_left(&mut self, path: &SafePath, size: u64) {
        let Some(folder) = self.folders.get_mut(&path.folders().join("/")) else {
            return;
        };
        if let Folder::Listed(names) = folder {
            names.extend(candidates(path, size));
            // Bounded: past this, the folder is listed afresh when next asked about.
            if names.len() > MAX_NAMES {
                *folder = Folder::Once;
            }
        }
    }
}

/// The partial files a transfer of `path` of `size` bytes may resume.
fn candidates(path: &SafePath, size: u64) -> Vec<String> {
    partial_names(path.file_name(), size)
        .take(RESUME_CANDIDATES)
        .collect()
}

fn resumable(part: &Path) -> bool {
    std::fs::symlink_metadata(part).is_ok_and(|m| m.file_type().is_file() && m.len() > 0)
}

/// The names of partial files in `dir`; none if it cannot be read (a folder not made yet).
fn list_parts(dir: &Path) -> HashSet<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return HashSet::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(PARTIAL_SUFFIX))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::incoming::partial_name;

    fn safe(p: &str) -> SafePath {
        SafePath::parse(p).expect("safe")
    }

    #[test]
    fn parts_are_found_first_by_statx_then_by_the_listing() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let d = tmp.path().join("d");
        std::fs::create_dir(&d)?;
        std::fs::write(d.join(partial_name("a", 9, 0)), b"12")?;
        std::fs::write(d.join(partial_name("second", 9, 1)), b"12")?;
        std::fs::write(d.join(partial_name("empty", 9, 0)), b"")?;
        std::fs::create_dir(d.join(partial_name("dir", 9, 0)))?;
        // Someone else's.
        std::fs::write(d.join("b.part"), b"12")?;
        let mut index = PartIndex::new(tmp.path().to_path_buf());
        assert!(index.exists(&safe("d/a"), 9));
        assert!(index.exists(&safe("d/a"), 9));
        assert!(!index.exists(&safe("d/a"), 8));
        assert!(index.exists(&safe("d/second"), 9));
        assert!(!index.exists(&safe("d/b"), 2));
        assert!(!index.exists(&safe("d/empty"), 9));
        assert!(!index.exists(&safe("d/dir"), 9));
        assert!(!index.exists(&safe("missing/x"), 9));
        assert!(!index.exists(&safe("missing/y"), 9));
        Ok(())
    }

    #[test]
    fn a_part_left_by_this_session_is_found() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let mut index = PartIndex::new(tmp.path().to_path_buf());
        // Listed while the folder did not exist yet.
        assert!(!index.exists(&safe("d/a"), 4));
        assert!(!index.exists(&safe("d/b"), 4));
        std::fs::create_dir(tmp.path().join("d"))?;
        std::fs::write(tmp.path().join("d").join(partial_name("b", 4, 0)), b"half")?;
        index.may_have_left(&safe("d/b"), 4);
        assert!(index.exists(&safe("d/b"), 4));
        // Not there after all (discarded): the file says so.
        index.may_have_left(&safe("d/c"), 4);
        assert!(!index.exists(&safe("d/c"), 4));
        Ok(())
    }
}
