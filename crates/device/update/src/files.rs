//! Crash-safe file primitives shared by the device's state files: bounded reads and atomic
//! writes (`ferro-files`: temporary file in the same directory, fsync, rename, fsync of the
//! directory), so a reader sees the old content or the new, never a torn one.

use std::fs;
use std::path::Path;

use crate::UpdateError;

/// Read at most `max` bytes of `path` (more is an error; `ferro_files::read_bounded`).
pub fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, UpdateError> {
    ferro_files::read_bounded(path, max).map_err(|e| match e {
        ferro_files::BoundedReadError::Io(e) => UpdateError::io(path)(e),
        e @ ferro_files::BoundedReadError::TooLarge { .. } => UpdateError::malformed(path, e),
    })
}

/// Read a bounded JSON file (64 KiB at most).
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, UpdateError> {
    let bytes = read_bounded(path, 64 * 1024)?;
    serde_json::from_slice(&bytes).map_err(|e| UpdateError::malformed(path, e))
}

/// Read a bounded JSON file, `None` if it does not exist.
pub fn read_json_opt<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<Option<T>, UpdateError> {
    if fs::symlink_metadata(path).is_err() {
        return Ok(None);
    }
    read_json(path).map(Some)
}

/// Write pretty JSON atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), UpdateError> {
    let mut bytes =
        serde_json::to_vec_pretty(value).map_err(|e| UpdateError::malformed(path, e))?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Write `path` atomically with mode 0600 (`ferro_files::write_atomic`).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), UpdateError> {
    ferro_files::write_atomic(path, bytes, ferro_files::Mode::SECRET).map_err(UpdateError::io(path))
}

/// Move a complete file into place atomically (same file system), then fsync the directory.
pub fn rename_durable(from: &Path, to: &Path) -> Result<(), UpdateError> {
    ferro_files::rename_durable(from, to).map_err(UpdateError::io(to))
}

/// fsync a directory (best effort: not every file system supports it).
pub use ferro_files::sync_dir;

/// Create `dir` (and parents) with mode 0700.
pub fn create_private_dir(dir: &Path) -> Result<(), UpdateError> {
    fs::create_dir_all(dir).map_err(UpdateError::io(dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(UpdateError::io(dir))?;
    }
    Ok(())
}
