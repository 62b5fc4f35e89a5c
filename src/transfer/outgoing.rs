//! The sending side: which files a set of paths means, and reading them chunk by chunk.
//!
//! A file is read only when the socket can take the next chunk, straight into the output
//! buffer, and hashed on the way: memory stays at one chunk per file, whatever the file size.

use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};

use bytes::BytesMut;

use crate::protocol::Frame;
use crate::protocol::codec::{CHUNK_HEADER_LEN, encode_frame, put_chunk_header};

use super::walk::walk_dir;

/// One file to offer: where it is here, and the relative path the peer sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutgoingFile {
    pub local: PathBuf,
    /// `/`-separated, relative: `folder/sub/file.txt`.
    pub rel_path: String,
    pub size: u64,
}

/// Why a set of paths cannot be sent. Each message is whole: the I/O error is part of the
/// text and not also given as `source()`, or a report of the chain would say it twice.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: io::Error },
    #[error("cannot read {path}: {error}")]
    Unreadable { path: PathBuf, error: io::Error },
    #[error("{0}: file name is not valid UTF-8")]
    NotUtf8(PathBuf),
    #[error("{0}: not a regular file or folder")]
    NotAFile(PathBuf),
}

pub(super) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CollectError + '_ {
    move |error| CollectError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// Expand `paths` into the files they name: a file as itself, a folder as every file below
/// it with the folder's own name as the first component. Symbolic links to files are followed;
/// links to folders are skipped so a loop cannot make the walk endless. Order is stable
/// (sorted within each folder). Every file is opened once, and its size read from what was
/// opened, so one we cannot read fails here, before it is offered (in a folder, on the walk's
/// threads: one by one, opening ten thousand files doubled the time to the first offer).
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<OutgoingFile>, CollectError> {
    let mut out = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(io_err(path))?;
        let name = base_name(path)?;
        if meta.is_dir() {
            walk_dir(path, &name, &mut out)?;
        } else if meta.is_file() {
            out.push(OutgoingFile {
                local: path.clone(),
                rel_path: name,
                size: readable_size(path)?,
            });
        } else {
            return Err(CollectError::NotAFile(path.clone()));
        }
    }
    Ok(out)
}

/// Fail unless `file` can be opened for reading now.
pub fn check_readable(file: &OutgoingFile) -> Result<(), CollectError> {
    readable_size(&file.local).map(drop)
}

/// The size of the file at `path`, which we can open for reading.
pub(super) fn readable_size(path: &Path) -> Result<u64, CollectError> {
    let file = File::open(path).map_err(|error| CollectError::Unreadable {
        path: path.to_path_buf(),
        error,
    })?;
    Ok(file.metadata().map_err(io_err(path))?.len())
}

fn base_name(path: &Path) -> Result<String, CollectError> {
    // `.` or `dir/..` have no file name of their own: use the folder they resolve to.
    let resolved;
    let path = if path.file_name().is_none() {
        resolved = std::fs::canonicalize(path).map_err(io_err(path))?;
        resolved.as_path()
    } else {
        path
    };
    let name = path.file_name().unwrap_or(path.as_os_str());
    name.to_str()
        .map(str::to_string)
        .ok_or_else(|| CollectError::NotUtf8(path.to_path_buf()))
}

/// An accepted outgoing file being read. The file is opened on its first chunk, so thousands of
/// pipelined offers hold neither thousands of descriptors nor thousands of hashers (~2 KiB each).
pub struct FileReader {
    local: PathBuf,
    size: u64,
    sent: u64,
    reading: Option<Box<Reading>>,
}

struct Reading {
    file: File,
    hasher: blake3::Hasher,
}

/// What one call to [`FileReader::write_next`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadStep {
    /// A chunk went into the buffer; more follow.
    Chunk,
    /// The last chunk (if any) and the `FileEnd` went into the buffer: the file's BLAKE3.
    Finished([u8; 32]),
}

impl FileReader {
    pub fn new(local: PathBuf, size: u64) -> Self {
        Self::starting_at(local, size, 0)
    }

    /// Resume: the receiver already holds `offset` bytes. The prefix is hashed (not sent) when
    /// the file is first opened, because the final hash covers the whole file.
    pub fn starting_at(local: PathBuf, size: u64, offset: u64) -> Self {
        Self {
            local,
            size,
            sent: offset.min(size),
            reading: None,
        }
    }

    fn open(&self) -> io::Result<Reading> {
        let mut file = File::open(&self.local)?;
        let mut hasher = blake3::Hasher::new();
        if self.sent > 0 {
            hasher.update_reader((&mut file).take(self.sent))?;
            if file.stream_position()? != self.sent {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file became shorter than the part the receiver already has",
                ));
            }
        }
        Ok(Reading { file, hasher })
    }

    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Bytes of data still to send.
    pub fn remaining(&self) -> u64 {
        self.size - self.sent
    }

    /// Append the next `Chunk` (at most `chunk_len` bytes of data) to `dst`, and the `FileEnd`
    /// once the whole offered size is out. On error `dst` is left as it was.
    pub fn write_next(
        &mut self,
        id: u32,
        chunk_len: usize,
        dst: &mut BytesMut,
    ) -> io::Result<ReadStep> {
        let remaining = self.remaining();
        // Opened even with nothing left to send when resuming: the prefix must be hashed.
        if self.reading.is_none() && (remaining > 0 || self.sent > 0) {
            self.reading = Some(Box::new(self.open()?));
        }
        if remaining > 0
            && let Some(reading) = self.reading.as_mut()
        {
            let n = remaining.min(chunk_len as u64) as usize;
            let start = dst.len();
            dst.reserve(CHUNK_HEADER_LEN + n);
            put_chunk_header(dst, id, self.sent, n);
            let data_start = dst.len();
            if let Err(e) = crate::platform::files::read_exact_into(&mut reading.file, dst, n) {
                dst.truncate(start);
                return Err(e);
            }
            reading.hasher.update(&dst[data_start..]);
            self.sent += n as u64;
        }
        if self.sent < self.size {
            return Ok(ReadStep::Chunk);
        }
        let hash = match self.reading.take() {
            Some(reading) => *reading.hasher.finalize().as_bytes(),
            None => *blake3::hash(&[]).as_bytes(), // an empty file, never opened
        };
        encode_frame(&Frame::FileEnd { id, hash }, dst).map_err(io::Error::other)?;
        Ok(ReadStep::Finished(hash))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::FrameCodec;
    use tokio_util::codec::Decoder;

    #[test]
    fn folders_expand_with_their_name_and_sorted_children() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let root = tmp.path().join("photos");
        std::fs::create_dir_all(root.join("b/deeper"))?;
        std::fs::write(root.join("z.txt"), b"zz")?;
        std::fs::write(root.join("b/a.txt"), b"a")?;
        std::fs::write(root.join("b/deeper/c.bin"), b"ccc")?;
        let files = collect_files(&[root])?;
        let rels: Vec<_> = files.iter().map(|f| f.rel_path.as_str()).collect();
        assert_eq!(
            rels,
            ["photos/b/a.txt", "photos/b/deeper/c.bin", "photos/z.txt"]
        );
        assert_eq!(files[1].size, 3);
        Ok(())
    }

    #[test]
    fn a_missing_path_is_a_clear_error() {
        let err = collect_files(&[PathBuf::from("/no/such/file-here")])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("/no/such/file-here"), "{err}");
    }

    #[test]
    fn a_missing_path_is_named_once_and_its_cause_said_once() {
        let missing = PathBuf::from("/no/such/file-here");
        let err = collect_files(std::slice::from_ref(&missing))
            .err()
            .map(|e| format!("{:#}", anyhow::Error::from(e)))
            .unwrap_or_default();
        // The system's own words for it ("No such file or directory" on Unix).
        let cause = std::fs::metadata(&missing)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!cause.is_empty());
        assert_eq!(err.matches("/no/such/file-here").count(), 1, "{err}");
        assert_eq!(err.matches(&cause).count(), 1, "{err} / {cause}");
    }

    #[test]
    fn reader_emits_chunks_then_file_end_with_whole_hash() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let path = tmp.path().join("f");
        let content: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &content)?;
        let mut reader = FileReader::new(path, content.len() as u64);
        let mut buf = BytesMut::new();
        let mut steps = 0;
        while reader.write_next(7, 4096, &mut buf)? == ReadStep::Chunk {
            steps += 1;
        }
        assert_eq!(steps, 2);
        let mut got = Vec::new();
        let mut codec = FrameCodec;
        let mut end = None;
        while let Some(frame) = codec.decode(&mut buf)? {
            match frame {
                Frame::Chunk { id, offset, data } => {
                    assert_eq!(id, 7);
                    assert_eq!(offset, got.len() as u64);
                    got.extend_from_slice(&data);
                }
                Frame::FileEnd { hash, .. } => end = Some(hash),
                other => anyhow::bail!("unexpected {other:?}"),
            }
        }
        assert_eq!(got, content);
        assert_eq!(end, Some(*blake3::hash(&content).as_bytes()));
        Ok(())
    }

    #[test]
    fn a_resumed_reader_hashes_the_skipped_prefix() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let path = tmp.path().join("f");
        let content: Vec<u8> = (0..5000u32).map(|i| (i % 7) as u8).collect();
        std::fs::write(&path, &content)?;
        for offset in [0, 1, 4096, 5000] {
            let mut reader = FileReader::starting_at(path.clone(), 5000, offset);
            let mut buf = BytesMut::new();
            while reader.write_next(1, 4096, &mut buf)? == ReadStep::Chunk {}
            let mut codec = FrameCodec;
            let mut first_offset = None;
            let mut hash = None;
            while let Some(frame) = codec.decode(&mut buf)? {
                match frame {
                    Frame::Chunk { offset, .. } => {
                        first_offset.get_or_insert(offset);
                    }
                    Frame::FileEnd { hash: h, .. } => hash = Some(h),
                    other => anyhow::bail!("unexpected {other:?}"),
                }
            }
            assert_eq!(first_offset, (offset < 5000).then_some(offset));
            assert_eq!(
                hash,
                Some(*blake3::hash(&content).as_bytes()),
                "offset {offset}"
            );
        }
        Ok(())
    }

    #[test]
    fn a_file_that_shrinks_is_an_error_not_a_short_transfer() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let path = tmp.path().join("f");
        std::fs::write(&path, b"short")?;
        let mut reader = FileReader::new(path, 100);
        let mut buf = BytesMut::new();
        assert!(reader.write_next(1, 4096, &mut buf).is_err());
        assert!(buf.is_empty());
        Ok(())
    }
}
