//! [`resign`]: verify a package completely, then sign the same metadata and payload with
//! another key (the service's tenant image key for developer uploads; the operator's OS release
//! key for OS bundles).

use std::io::{self, Read, Write};
use std::path::Path;

use ferro_signing::{Signer, TrustedKeys};

use crate::error::ImageError;
use crate::metadata::ImageMetadata;
use crate::pack::{destination_dir, write_signed_package};
use crate::verify::verify;

/// Re-sign the package read from `reader`: [`verify`] it completely with `trusted_source`
/// (streaming its payload into a temp file in `destination`'s directory, bounded memory), then
/// write a package with the **same metadata and payload** signed by `new_signer`, self-verified
/// with `new_signer`'s key and renamed atomically over `destination`. Returns the metadata.
///
/// On any failure (the source does not verify, I/O, signing) nothing is left at `destination`
/// nor in its directory. The new package verifies only with the new key: its envelope names the
/// new key ID.
pub fn resign(
    reader: impl Read,
    trusted_source: &TrustedKeys,
    new_signer: &dyn Signer,
    destination: &Path,
) -> Result<ImageMetadata, ImageError> {
    let dir = destination_dir(destination);
    let io_err = |source| ImageError::PackIo {
        path: destination.to_path_buf(),
        source,
    };
    let mut payload_tmp = tempfile::Builder::new()
        .prefix(".ferro-payload-")
        .tempfile_in(&dir)
        .map_err(io_err)?;
    let verified = {
        let mut sink = io::BufWriter::with_capacity(1 << 20, payload_tmp.as_file_mut());
        let verified = verify(reader, trusted_source, &mut sink)?;
        sink.flush().map_err(ImageError::Sink)?;
        verified
    };
    // The payload in the temp file is exactly the bytes whose digest `verify` checked; it is
    // checked once more by the self-verification of the new package.
    let metadata = verified.metadata().clone();
    write_signed_package(destination, new_signer, &metadata, payload_tmp)?;
    Ok(metadata)
}
