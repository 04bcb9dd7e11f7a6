//! `ferro-image` owns Ferrosphere image packages (docs/design.md §6; byte layout in
//! `docs/image-format.md`): a 16-byte fixed header, a purpose-bound COSE_Sign1 over a
//! deterministic CBOR metadata map, then the payload. It packs applications, real-time
//! applications, OS bundles and board configurations; [`inspect`]s packages without trusting
//! them; [`verify`]s them while streaming the payload in bounded memory, producing a
//! [`VerifiedImage`], the only value an installer should accept; and [`resign`]s a verified
//! package with another key (same metadata and payload).
//!
//! It depends on `ferro-signing` for keys and COSE and on the foundations `ferro-cbor` (the
//! strict CBOR rules) and `ferro-files` (the atomic write of a package); it must not depend on
//! the manifest crate, the device, the service or any I/O beyond `std::io` readers/writers and the
//! files it packs. It never hand-writes cryptography, CBOR or COSE (SHA-256 and `coset` via
//! `ferro-signing`, `ciborium` through `ferro-cbor`) and never panics on untrusted bytes.

mod archive;
mod error;
mod header;
mod metadata;
mod pack;
mod resign;
mod verify;

pub use archive::{MAX_ARCHIVE_ENTRIES, MAX_TAR_PATH_LEN, OS_DEVICE_BINARY};
pub use error::{ArchiveError, ImageError, MetadataError, Section};
pub use header::{AAD_LEN, FORMAT_VERSION, FixedHeader, HEADER_LEN, MAGIC, MAX_ENVELOPE_LEN};
pub use metadata::{
    AppMetadata, BOARD_CONFIG_COMPONENT_ID, ImageMetadata, ImageType, MAX_BOARD_CONFIG_SIZE,
    MAX_MANIFEST_LEN, MAX_NAME_LEN, MAX_PAYLOAD_SIZE, OS_COMPONENT_ID, Version,
};
pub use pack::{AppPackageManifest, PackOptions, pack_application, pack_board_config, pack_os};
pub use resign::resign;
pub use verify::{
    UnverifiedImage, VERIFY_BUFFER_SIZE, VerifiedImage, inspect, verify, verify_file,
};
