//! File operations whose best form differs by system: a rename that never replaces, disk space
//! set aside ahead of the writes, and reads into a buffer's spare capacity.

use std::fs::File;
use std::io;

use bytes::BytesMut;
use cap_std::fs::Dir;

/// Rename `from` to `to` within `dir` without ever replacing anything: `Ok(false)` when `to`
/// exists (whatever it is, whatever its case on a case-insensitive file system).
pub fn rename_no_replace(dir: &Dir, from: &str, to: &str) -> io::Result<bool> {
    match atomic_rename_no_replace(dir, from, to) {
        Ok(()) => return Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) if e.kind() == io::ErrorKind::Unsupported => {}
        Err(e) => return Err(e),
    }
    // A hard link fails if the target exists, whatever it is: as atomic as the rename above,
    // at the cost of a second call to remove the old name. This is the way on Windows (NTFS),
    // and on file systems whose rename has no no-replace flag.
    match dir.hard_link(from, dir, to) {
        Ok(()) => dir.remove_file(from).map(|()| true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => {
            // File systems without hard links (FAT, exFAT: USB sticks): look, then rename. A
            // file created under `to` between the two calls would be replaced; nothing else
            // can be.
            tracing::debug!(error = %e, "hard link failed, falling back to rename");
            match dir.symlink_metadata(to) {
                Ok(_) => Ok(false),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    dir.rename(from, dir, to).map(|()| true)
                }
                Err(e) => Err(e),
            }
        }
    }
}

/// `renameat2(RENAME_NOREPLACE)` on Linux, `renameatx_np(RENAME_EXCL)` on macOS: one call that
/// fails with `AlreadyExists` rather than replace. `Unsupported` where the system or the file
/// system has none.
#[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
fn atomic_rename_no_replace(dir: &Dir, from: &str, to: &str) -> io::Result<()> {
    use rustix::fs::{RenameFlags, renameat_with};
    use rustix::io::Errno;
    match renameat_with(dir, from, dir, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(Errno::EXIST) => Err(io::ErrorKind::AlreadyExists.into()),
        Err(Errno::INVAL | Errno::NOSYS | Errno::NOTSUP) => Err(io::ErrorKind::Unsupported.into()),
        Err(e) => Err(e.into()),
    }
}

/// Windows' `MoveFileEx` without `MOVEFILE_REPLACE_EXISTING` would do, but cap-std renames
/// with replacement and has no flag for it: the hard link in [`rename_no_replace`] gives the
/// same guarantee without hand-written FFI.
#[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
fn atomic_rename_no_replace(_dir: &Dir, _from: &str, _to: &str) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// Set aside disk space for `len` bytes from `offset` without changing the file's length (the
/// length is what a resume trusts): `fallocate(FALLOC_FL_KEEP_SIZE)` on Linux.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn set_aside(file: &File, offset: u64, len: u64) -> io::Result<()> {
    use rustix::fs::{FallocateFlags, fallocate};
    Ok(fallocate(file, FallocateFlags::KEEP_SIZE, offset, len)?)
}

/// `Unsupported` on macOS and Windows. macOS can only preallocate by also setting the length
/// (`F_PREALLOCATE` then `ftruncate`), which would make a cut transfer look longer than what
/// arrived; Windows would need hand-written FFI (`FileAllocationInfo`). There the writes
/// allocate as they go: a disk too small for a file fails on the write that fills it, not
/// at the start, and the partial file keeps what arrived for a resume.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn set_aside(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let _ = (file, offset, len);
    Err(io::ErrorKind::Unsupported.into())
}

/// Append exactly `n` bytes read from `file` to `dst`. On Unix they are read straight into
/// `dst`'s spare capacity, without zeroing it first (measured on Linux: the zeroing cost more
/// than the read).
#[cfg(unix)]
pub fn read_exact_into(file: &mut File, dst: &mut BytesMut, n: usize) -> io::Result<()> {
    dst.reserve(n);
    let mut left = n;
    while left > 0 {
        let spare = &mut dst.spare_capacity_mut()[..left];
        let got = match rustix::io::read(&*file, spare) {
            Ok((filled, _)) => filled.len(),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        if got == 0 {
            return Err(shorter());
        }
        // SAFETY: `read` initialised the first `got` bytes of the spare capacity (the slice it
        // returned), and `got <= left <= spare capacity`. No crate appends a file's bytes to a
        // `BytesMut` without this step: std's uninitialised-buffer reads are unstable.
        unsafe { dst.set_len(dst.len() + got) };
        left -= got;
    }
    Ok(())
}

/// Elsewhere the buffer is zeroed, then read into: one `memset` per chunk, and no `unsafe`.
#[cfg(not(unix))]
pub fn read_exact_into(file: &mut File, dst: &mut BytesMut, n: usize) -> io::Result<()> {
    use std::io::Read;
    let start = dst.len();
    dst.resize(start + n, 0);
    let result = file.read_exact(&mut dst[start..]);
    if result.is_err() {
        dst.truncate(start);
    }
    result.map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            shorter()
        } else {
            e
        }
    })
}

fn shorter() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the file became shorter while it was being sent",
    )
}

/// Write `bytes` to a new file at `path` that only its owner can read (mode 0600 on Unix; on
/// Windows the user's profile folders are private to the user already). Whole or not at all:
/// written aside, then renamed in place by [`rename_no_replace`]. `false` when `path` exists
/// already (it is left alone).
pub fn create_private(path: &std::path::Path, bytes: &[u8]) -> io::Result<bool> {
    use std::io::Write;
    let folder = path.parent().unwrap_or_else(|| std::path::Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let aside = format!(".{name}.{}.new", std::process::id());
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(folder.join(&aside)).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    let placed = written.and_then(|()| {
        let dir = Dir::open_ambient_dir(folder, cap_std::ambient_authority())?;
        rename_no_replace(&dir, &aside, name)
    });
    if !matches!(placed, Ok(true)) {
        let _ = std::fs::remove_file(folder.join(&aside));
    }
    placed
}

/// Make sure only the owner can read `path`: a private file others could read is made private
/// again (as it should have been), and the log says so.
#[cfg(unix)]
pub fn keep_private(path: &std::path::Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "a private file others could read: made private");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// On Windows a file in the user's profile inherits the profile's owner-only access.
#[cfg(not(unix))]
pub fn keep_private(_path: &std::path::Path) -> io::Result<()> {
    Ok(())
}
