//! `ferro-files` owns Ferrosphere's one crash-safe way to write a file: a temporary file in the
//! target's own directory, written, fsynced, given its mode, renamed over the target (or, for
//! [`create_new`], renamed only if no file has the name yet), then the directory fsynced so the
//! rename itself survives a power cut. A reader, or a process started after a crash, sees the old
//! content or the new, never a torn or half-written file; a write that fails part way leaves the
//! target as it was and no temporary file behind (the temporary file is removed when the
//! [`AtomicFile`] holding it is dropped without [`AtomicFile::commit`]).
//!
//! Every Ferrosphere crate that keeps state in files writes through this crate: the device's
//! data directory (`ferro-device`, `ferro-update`, `ferro-attest`, the software root of trust in
//! `ferro-trust`), key files (`ferro-signing`), the service's data directory and the CLI's
//! session. Mode 0600 ([`Mode::SECRET`]) is for anything secret or device state; 0644
//! ([`Mode::PUBLIC`]) for certificates meant to be read by others. The mode is set explicitly
//! on the temporary file, so it does not depend on the process's umask and a replaced file never
//! keeps a wider mode than asked.
//!
//! It also owns the one bounded read of a state file ([`read_bounded`]).
//!
//! Errors are plain [`std::io::Error`]s, as `std::fs` returns them (and [`BoundedReadError`] for
//! the bounded read): each caller wraps them in its own error with the path it was using.
//!
//! It depends on `tempfile` only, and must not depend on any Ferrosphere crate, an async
//! runtime or anything else heavy: the boot TCB (`ferro-boot`) links it.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The permission bits a written file gets (Unix; ignored elsewhere).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mode(u32);

impl Mode {
    /// 0600: secrets and device state (owner read and write only).
    pub const SECRET: Mode = Mode(0o600);
    /// 0644: files meant to be read by others, such as certificates.
    pub const PUBLIC: Mode = Mode(0o644);

    /// Another mode, as asked (the low nine permission bits of `bits`).
    pub const fn new(bits: u32) -> Mode {
        Mode(bits & 0o777)
    }

    /// The permission bits.
    pub const fn bits(self) -> u32 {
        self.0
    }
}

/// A file being written in place of `path`: invisible under `path` until [`AtomicFile::commit`]
/// (or [`AtomicFile::commit_new`]); dropped without either, it is removed and `path` is
/// untouched. Write to it through [`Write`] or [`AtomicFile::file_mut`].
#[derive(Debug)]
pub struct AtomicFile {
    tmp: tempfile::NamedTempFile,
    path: PathBuf,
}

impl AtomicFile {
    /// Start a file that will replace `path`: a temporary file in `path`'s directory (which must
    /// exist) with mode `mode`.
    pub fn create(path: &Path, mode: Mode) -> io::Result<AtomicFile> {
        let dir = parent_dir(path);
        let tmp = tempfile::Builder::new()
            .prefix(".ferro-")
            .suffix(".tmp")
            .tempfile_in(dir)?;
        set_mode(tmp.as_file(), mode)?;
        Ok(AtomicFile {
            tmp,
            path: path.to_path_buf(),
        })
    }

    /// The path this file will have once committed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open temporary file (for reading back what was written before committing).
    pub fn file(&self) -> &File {
        self.tmp.as_file()
    }

    /// The open temporary file, mutably (to seek, or to read back).
    pub fn file_mut(&mut self) -> &mut File {
        self.tmp.as_file_mut()
    }

    /// fsync the content, rename it over the target (replacing a file already there), fsync the
    /// directory.
    pub fn commit(self) -> io::Result<()> {
        self.tmp.as_file().sync_all()?;
        self.tmp.persist(&self.path).map_err(|e| e.error)?;
        sync_dir(parent_dir(&self.path));
        Ok(())
    }

    /// As [`AtomicFile::commit`], but only if nothing has the target's name yet: fails with
    /// [`io::ErrorKind::AlreadyExists`] otherwise (and removes the temporary file), so of two
    /// concurrent creators exactly one wins.
    pub fn commit_new(self) -> io::Result<()> {
        self.tmp.as_file().sync_all()?;
        self.tmp
            .persist_noclobber(&self.path)
            .map_err(|e| e.error)?;
        sync_dir(parent_dir(&self.path));
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tmp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tmp.flush()
    }
}

/// Write `bytes` to `path` atomically with `mode`, replacing any file there. `path`'s directory
/// must exist.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: Mode) -> io::Result<()> {
    let mut file = AtomicFile::create(path, mode)?;
    file.write_all(bytes)?;
    file.commit()
}

/// Create `path` holding `bytes` with `mode`, atomically, failing with
/// [`io::ErrorKind::AlreadyExists`] (and changing nothing) if it exists. Missing parent
/// directories are created (with the process's default mode).
pub fn create_new(path: &Path, bytes: &[u8], mode: Mode) -> io::Result<()> {
    fs::create_dir_all(parent_dir(path))?;
    let mut file = AtomicFile::create(path, mode)?;
    file.write_all(bytes)?;
    file.commit_new()
}

/// Move a complete file (or directory) to `to` on the same file system, replacing a file there,
/// and fsync `to`'s directory so the move survives a crash.
pub fn rename_durable(from: &Path, to: &Path) -> io::Result<()> {
    fs::rename(from, to)?;
    sync_dir(parent_dir(to));
    Ok(())
}

/// Why [`read_bounded`] read nothing.
#[derive(Debug)]
pub enum BoundedReadError {
    /// Opening or reading the file failed.
    Io(io::Error),
    /// The file holds more than `max` bytes (only `max + 1` were read to find out).
    TooLarge {
        /// The limit asked for.
        max: u64,
    },
}

impl std::fmt::Display for BoundedReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BoundedReadError::Io(e) => e.fmt(f),
            BoundedReadError::TooLarge { max } => write!(f, "larger than {max} bytes"),
        }
    }
}

impl std::error::Error for BoundedReadError {}

/// Read all of `path` if it holds at most `max` bytes: a state file that grew beyond what its
/// reader expects is refused without reading more than `max + 1` bytes of it.
pub fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, BoundedReadError> {
    use std::io::Read;
    let file = File::open(path).map_err(BoundedReadError::Io)?;
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(BoundedReadError::Io)?;
    if bytes.len() as u64 > max {
        return Err(BoundedReadError::TooLarge { max });
    }
    Ok(bytes)
}

/// The directory `path` is in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// fsync a directory, so that renames and creations in it are durable. Best effort: not every
/// file system can sync a directory, and the rename it follows has already happened.
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(unix)]
fn set_mode(file: &File, mode: Mode) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(mode.bits()))
}

#[cfg(not(unix))]
fn set_mode(_file: &File, _mode: Mode) -> io::Result<()> {
    Ok(())
}
