//! The files of the app's own image package, read-only (always available): whatever the package
//! directory held beside the entry point when it was packed, as signed and verified. Azure
//! Sphere's `Storage_OpenFileInImagePackage`. A configuration shipped this way changes only by
//! a signed update.
//!
//! ```no_run
//! let map = applibs::imagefiles::read("register_map.json")?;
//! # Ok::<(), applibs::Error>(())
//! ```

use crate::bindings::ferrosphere::device::imagefiles as raw;
use crate::error::Result;

/// The bytes of the file at `path` in the package (relative: `register_map.json`,
/// `config/a.json`). [`Error::InvalidArgument`](crate::Error::InvalidArgument) for an absolute
/// path or one with `.`, `..` or empty components;
/// [`Error::NoSuchResource`](crate::Error::NoSuchResource) when the package has no such file.
pub fn read(path: &str) -> Result<Vec<u8>> {
    Ok(raw::read(path)?)
}
