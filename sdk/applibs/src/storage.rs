//! The app's mutable storage (manifest capability `MutableStorage`): one file of at most
//! `SizeKB` KiB that survives restarts and updates of the app.
//!
//! ```no_run
//! applibs::storage::write_all(b"counter=1")?;
//! let saved = applibs::storage::read_all()?;
//! # Ok::<(), applibs::Error>(())
//! ```

use crate::bindings::ferrosphere::device::storage as raw;
use crate::error::Result;

/// Bytes read per host call by [`read_all`].
const CHUNK: u32 = 16 * 1024;

/// Current size in bytes.
pub fn size() -> Result<u64> {
    Ok(raw::size()?)
}

/// The quota in bytes.
pub fn quota() -> u64 {
    raw::quota()
}

/// Reads up to `len` bytes at `offset`.
pub fn read(offset: u64, len: u32) -> Result<Vec<u8>> {
    Ok(raw::read(offset, len)?)
}

/// Writes `data` at `offset`. Past the quota it fails with
/// [`Error::LimitExceeded`](crate::Error::LimitExceeded) and writes nothing.
pub fn write(offset: u64, data: &[u8]) -> Result<()> {
    Ok(raw::write(offset, data)?)
}

/// Truncates (or zero-extends) to `len` bytes.
pub fn truncate(len: u64) -> Result<()> {
    Ok(raw::truncate(len)?)
}

/// Deletes everything.
pub fn delete_all() -> Result<()> {
    Ok(raw::delete_all()?)
}

/// The whole storage file.
pub fn read_all() -> Result<Vec<u8>> {
    let mut data = Vec::new();
    loop {
        let chunk = read(data.len() as u64, CHUNK)?;
        if chunk.is_empty() {
            return Ok(data);
        }
        data.extend_from_slice(&chunk);
    }
}

/// Replaces the whole storage file with `data`.
pub fn write_all(data: &[u8]) -> Result<()> {
    truncate(0)?;
    write(0, data)
}
