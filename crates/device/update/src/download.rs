//! Resumable, size-bounded, hash-checked downloads. A package is downloaded to
//! `downloads/<sha256>.part`; the agent feeds it chunks (from an HTTP `Range` request starting at
//! [`PartialDownload::offset`]), every chunk is written and synced before the next, a download
//! longer than the target set's size is refused at the first byte too many, and only bytes that
//! hash to the target's digest become a [`DownloadedPackage`] (`downloads/<sha256>`, by rename).

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use ferro_signing::Sha256;

use crate::{UpdateError, crash};

/// Bytes kept free beyond the downloads themselves (state files, logs, the OS unpack).
pub const FREE_SPACE_RESERVE: u64 = 16 * 1024 * 1024;
/// Received bytes are written and synced in blocks of this size (a crash loses at most one).
pub const FLUSH_BLOCK: usize = 64 * 1024;

/// A download in progress.
#[derive(Debug)]
pub struct PartialDownload {
    part: PathBuf,
    done: PathBuf,
    sha256: [u8; 32],
    expected: u64,
    file: fs::File,
    offset: u64,
    pending: Vec<u8>,
}

/// A complete download whose bytes hash to the digest the target set names. Its signature is
/// not checked yet: see [`crate::check_package`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DownloadedPackage {
    path: PathBuf,
    sha256: [u8; 32],
}

impl DownloadedPackage {
    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Its SHA-256.
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    /// A complete download already in `dir`, re-hashed (`None` if absent or not matching, in
    /// which case it is removed).
    pub fn existing(
        dir: &Path,
        sha256: [u8; 32],
    ) -> Result<Option<DownloadedPackage>, UpdateError> {
        let path = dir.join(hex::encode(sha256));
        if fs::symlink_metadata(&path).is_err() {
            return Ok(None);
        }
        if hash_file(&path)? == sha256 {
            return Ok(Some(DownloadedPackage { path, sha256 }));
        }
        let _ = fs::remove_file(&path);
        Ok(None)
    }
}

fn hash_file(path: &Path) -> Result<[u8; 32], UpdateError> {
    let mut f = fs::File::open(path).map_err(UpdateError::io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(UpdateError::io(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize())
}

/// Check that `needed` bytes plus [`FREE_SPACE_RESERVE`] are free on `dir`'s file system.
pub fn ensure_free_space(dir: &Path, needed: u64) -> Result<(), UpdateError> {
    let available = fs4::available_space(dir).map_err(UpdateError::io(dir))?;
    let needed = needed.saturating_add(FREE_SPACE_RESERVE);
    if available < needed {
        return Err(UpdateError::NoSpace { needed, available });
    }
    Ok(())
}

impl PartialDownload {
    /// Open (or resume) the download of the package `sha256` of `expected` bytes in `dir`. A
    /// partial file longer than `expected` is discarded.
    pub fn open(
        dir: &Path,
        sha256: [u8; 32],
        expected: u64,
    ) -> Result<PartialDownload, UpdateError> {
        let name = hex::encode(sha256);
        let part = dir.join(format!("{name}.part"));
        let done = dir.join(&name);
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&part)
            .map_err(UpdateError::io(&part))?;
        let mut offset = file.metadata().map_err(UpdateError::io(&part))?.len();
        if offset > expected {
            file.set_len(0).map_err(UpdateError::io(&part))?;
            offset = 0;
        }
        Ok(PartialDownload {
            part,
            done,
            sha256,
            expected,
            file,
            offset,
            pending: Vec::with_capacity(FLUSH_BLOCK),
        })
    }

    /// Bytes already on disk: where the next request starts.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Whether every byte has arrived.
    pub fn is_complete(&self) -> bool {
        self.received() == self.expected
    }

    fn received(&self) -> u64 {
        self.offset + self.pending.len() as u64
    }

    /// Append a chunk; every [`FLUSH_BLOCK`] bytes are written and synced. More bytes than the
    /// package has are refused and the partial file is discarded (an endless download stops at
    /// the first byte too many).
    pub fn append(&mut self, chunk: &[u8]) -> Result<(), UpdateError> {
        if self.received().saturating_add(chunk.len() as u64) > self.expected {
            let _ = fs::remove_file(&self.part);
            return Err(UpdateError::TooLong {
                sha256: hex::encode(self.sha256),
                expected: self.expected,
            });
        }
        self.pending.extend_from_slice(chunk);
        // Whole blocks only, so block boundaries (and crash points) do not depend on how the
        // network happened to split the stream.
        while self.pending.len() >= FLUSH_BLOCK {
            let rest = self.pending.split_off(FLUSH_BLOCK);
            self.write_pending()?;
            self.pending = rest;
        }
        Ok(())
    }

    /// Write and sync what was received (the agent calls it when a transfer breaks off).
    pub fn flush(&mut self) -> Result<(), UpdateError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.write_pending()
    }

    fn write_pending(&mut self) -> Result<(), UpdateError> {
        self.file
            .write_all(&self.pending)
            .map_err(UpdateError::io(&self.part))?;
        self.file.sync_data().map_err(UpdateError::io(&self.part))?;
        self.offset += self.pending.len() as u64;
        self.pending.clear();
        crash::point("download.block");
        Ok(())
    }

    /// Discard what was received (a server that ignored `Range` and restarted from byte 0).
    pub fn restart(&mut self) -> Result<(), UpdateError> {
        self.pending.clear();
        self.file.set_len(0).map_err(UpdateError::io(&self.part))?;
        self.offset = 0;
        Ok(())
    }

    /// Finish: the bytes must be complete and hash to the digest; then the file is renamed to
    /// its final name. A mismatch discards the partial file (the next attempt starts over).
    pub fn finish(mut self) -> Result<DownloadedPackage, UpdateError> {
        self.flush()?;
        if self.offset < self.expected {
            return Err(UpdateError::Truncated {
                sha256: hex::encode(self.sha256),
                got: self.offset,
                expected: self.expected,
            });
        }
        let got = hash_file(&self.part)?;
        if got != self.sha256 {
            let _ = fs::remove_file(&self.part);
            return Err(UpdateError::DigestMismatch {
                expected: hex::encode(self.sha256),
                got: hex::encode(got),
            });
        }
        crate::files::rename_durable(&self.part, &self.done)?;
        crash::point("download.complete");
        Ok(DownloadedPackage {
            path: self.done,
            sha256: self.sha256,
        })
    }
}

/// Remove downloads (complete or partial) whose digest is not in `keep`.
pub fn prune(dir: &Path, keep: &[[u8; 32]]) -> Result<(), UpdateError> {
    let keep: Vec<String> = keep.iter().map(hex::encode).collect();
    for entry in fs::read_dir(dir).map_err(UpdateError::io(dir))? {
        let entry = entry.map_err(UpdateError::io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let stem = name.strip_suffix(".part").unwrap_or(&name);
        if !keep.iter().any(|k| k == stem) {
            let _ = fs::remove_file(entry.path());
        }
    }
    Ok(())
}
