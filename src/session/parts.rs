//! Whether an accepted offer has a `.part` to resume, asked of each folder's listing rather
//! than of the file system once per offer: for 10,000 small files the `statx` of each
//! `NAME.part` was a quarter of the receiving session's time, on the thread that reads the
//! socket.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::transfer::incoming::SafePath;

/// Folders remembered at once; beyond, the index starts over.
const MAX_FOLDERS: usize = 4096;

enum Folder {
    /// Asked about once, with a `statx`: a folder a single file goes to is never listed.
    Once,
    /// The `.part` names it held when listed, and those a transfer may have left since.
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

    /// There is a `.part` with something in it for `path` (one made by another program while
    /// this session runs may be missed: that file starts over).
    pub fn exists(&mut self, path: &SafePath) -> bool {
        let key = path.folders().join("/");
        let name = format!("{}.part", path.file_name());
        let dir = || {
            let mut dir = self.root.clone();
            dir.extend(path.folders());
            dir
        };
        let listed = match self.folders.get_mut(&key) {
            Some(Folder::Listed(names)) => names.contains(&name),
            Some(once @ Folder::Once) => {
                let names = list_parts(&dir());
                let listed = names.contains(&name);
                *once = Folder::Listed(names);
                listed
            }
            None => {
                if self.folders.len() >= MAX_FOLDERS {
                    self.folders.clear();
                }
                self.folders.insert(key, Folder::Once);
                true
            }
        };
        // Listed (or not yet): only the file itself says whether it can be resumed.
        listed && resumable(&dir().join(name))
    }

    /// A transfer to `path` ended without its file: its `.part` may be there now.
    pub fn may_have_left(&mut self, path: &SafePath) {
        if let Some(Folder::Listed(names)) = self.folders.get_mut(&path.folders().join("/")) {
            names.insert(format!("{}.part", path.file_name()));
        }
    }
}

fn resumable(part: &Path) -> bool {
    std::fs::symlink_metadata(part).is_ok_and(|m| m.file_type().is_file() && m.len() > 0)
}

/// The names ending in `.part` in `dir`; none if it cannot be read (a folder not made yet).
fn list_parts(dir: &Path) -> HashSet<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return HashSet::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".part"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn safe(p: &str) -> SafePath {
        SafePath::parse(p).expect("safe")
    }

    #[test]
    fn parts_are_found_first_by_statx_then_by_the_listing() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        std::fs::create_dir(tmp.path().join("d"))?;
        std::fs::write(tmp.path().join("d/a.part"), b"12")?;
        std::fs::write(tmp.path().join("d/empty.part"), b"")?;
        std::fs::create_dir(tmp.path().join("d/dir.part"))?;
        let mut index = PartIndex::new(tmp.path().to_path_buf());
        assert!(index.exists(&safe("d/a")));
        assert!(index.exists(&safe("d/a")));
        assert!(!index.exists(&safe("d/b")));
        assert!(!index.exists(&safe("d/empty")));
        assert!(!index.exists(&safe("d/dir")));
        assert!(!index.exists(&safe("missing/x")));
        assert!(!index.exists(&safe("missing/y")));
        Ok(())
    }

    #[test]
    fn a_part_left_by_this_session_is_found() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let mut index = PartIndex::new(tmp.path().to_path_buf());
        // Listed while the folder did not exist yet.
        assert!(!index.exists(&safe("d/a")));
        assert!(!index.exists(&safe("d/b")));
        std::fs::create_dir(tmp.path().join("d"))?;
        std::fs::write(tmp.path().join("d/b.part"), b"half")?;
        index.may_have_left(&safe("d/b"));
        assert!(index.exists(&safe("d/b")));
        // Not there after all (discarded): the file says so.
        index.may_have_left(&safe("d/c"));
        assert!(!index.exists(&safe("d/c")));
        Ok(())
    }
}
