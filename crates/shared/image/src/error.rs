//! Typed errors. Every way a package can be refused has its own variant and a stable
//! [`ImageError::code`].

use std::fmt;
use std::path::PathBuf;

use ferro_signing::{SignError, VerifyError};

/// Which part of a package a truncation cut into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// The 16-byte fixed header.
    Header,
    /// The COSE_Sign1.
    Envelope,
    /// The payload.
    Payload,
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Section::Header => "header",
            Section::Envelope => "COSE_Sign1",
            Section::Payload => "payload",
        })
    }
}

/// The signed metadata map is invalid.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetadataError {
    /// Not decodable as a single CBOR item.
    #[error("metadata is not valid CBOR: {0}")]
    Malformed(String),
    /// The top-level item is not a map.
    #[error("metadata is not a CBOR map")]
    NotAMap,
    /// Valid CBOR, but not in the one deterministic encoding.
    #[error("metadata is not deterministically encoded")]
    NonCanonical,
    /// A key that is not an unsigned integer of this format version (fail closed).
    #[error("unknown metadata key {0}")]
    UnknownKey(String),
    /// A key appears twice.
    #[error("duplicate metadata key {0}")]
    DuplicateKey(u64),
    /// A required field is absent.
    #[error("metadata field {0} is missing")]
    MissingField(&'static str),
    /// A field has the wrong CBOR type or is out of range.
    #[error("metadata field {0} has the wrong type or range")]
    WrongType(&'static str),
    /// A field is longer than its limit.
    #[error("metadata field {field} is {len} bytes, more than {max}")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A field has an invalid value.
    #[error("metadata field {field} is invalid: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// The embedded app manifest disagrees with the metadata.
    #[error("app manifest {field} disagrees with the image metadata")]
    ManifestInconsistent {
        /// The manifest field.
        field: &'static str,
    },
}

/// The payload archive (tar) breaks the format's rules.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArchiveError {
    /// The tar stream is malformed (bad checksum, bad number, cut short).
    #[error("malformed tar archive: {0}")]
    Malformed(String),
    /// An entry header is not POSIX ustar.
    #[error("tar entry {0:?} is not a ustar header")]
    NotUstar(String),
    /// An entry kind other than a regular file or directory.
    #[error("tar entry {path:?} has a disallowed type {kind:#04x} (only files and directories)")]
    DisallowedEntryType {
        /// The entry path.
        path: String,
        /// The ustar type flag.
        kind: u8,
    },
    /// A path that is not relative and normalized.
    #[error("tar entry path {path:?} is invalid: {reason}")]
    InvalidPath {
        /// The entry path (lossy UTF-8).
        path: String,
        /// Why.
        reason: &'static str,
    },
    /// The same path twice.
    #[error("tar entry {0:?} appears more than once")]
    DuplicateEntry(String),
    /// Entries are not sorted by path.
    #[error("tar entry {0:?} is out of order (entries must be sorted by path)")]
    UnsortedEntries(String),
    /// A header field that must be fixed (mode, uid, gid, mtime, owner names, link) is not.
    #[error("tar entry {path:?} has a non-deterministic {field}")]
    NonDeterministicHeader {
        /// The entry path.
        path: String,
        /// The field.
        field: &'static str,
    },
    /// More entries than [`crate::MAX_ARCHIVE_ENTRIES`].
    #[error("tar archive has more than {0} entries")]
    TooManyEntries(usize),
    /// `app_manifest.json` is not in the archive.
    #[error("app_manifest.json is missing from the payload")]
    ManifestMissing,
    /// `app_manifest.json` differs from the signed metadata's manifest.
    #[error("app_manifest.json in the payload differs from the signed manifest")]
    ManifestMismatch,
    /// The entry point (or `bin/ferro-device` for OS images) is not a regular file in the archive.
    #[error("required file {0:?} is missing from the payload")]
    RequiredFileMissing(String),
    /// The archive lacks its end-of-archive marker.
    #[error("tar archive has no end-of-archive marker")]
    MissingEndOfArchive,
    /// Something other than zero padding follows the end-of-archive marker.
    #[error("data follows the tar end-of-archive marker")]
    DataAfterEnd,
}

/// Packing, inspecting or verifying an image package failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// Reading the package failed.
    #[error("reading the package failed: {0}")]
    Io(#[source] std::io::Error),
    /// The package ends inside a section.
    #[error("package is truncated in its {section}")]
    Truncated {
        /// The section.
        section: Section,
    },
    /// Not an image package (wrong magic).
    #[error("not a Ferrosphere image package (bad magic)")]
    BadMagic,
    /// A format version this build does not read.
    #[error("unsupported image format version {0}")]
    UnsupportedVersion(u16),
    /// Flags must be zero in format version 1.
    #[error("header flags must be zero, found {0:#06x}")]
    NonZeroFlags(u16),
    /// The declared COSE_Sign1 length exceeds the limit.
    #[error("COSE_Sign1 length {len} exceeds the limit of {max}")]
    EnvelopeTooLarge {
        /// Declared length.
        len: u32,
        /// Limit.
        max: u32,
    },
    /// The COSE_Sign1 was refused.
    #[error("signature envelope refused: {0}")]
    Signature(#[from] VerifyError),
    /// The signed metadata is invalid.
    #[error("metadata refused: {0}")]
    Metadata(#[from] MetadataError),
    /// Bytes follow the declared payload.
    #[error("data follows the payload")]
    TrailingData,
    /// The payload's SHA-256 differs from the signed digest.
    #[error("payload SHA-256 does not match the signed metadata")]
    PayloadDigestMismatch,
    /// The payload archive breaks the format's rules.
    #[error("payload archive refused: {0}")]
    Archive(#[from] ArchiveError),
    /// The board configuration payload is invalid.
    #[error("board configuration refused: {0}")]
    BoardConfig(&'static str),
    /// Writing to the caller's sink failed (the package itself may be fine).
    #[error("writing the verified payload to its destination failed: {0}")]
    Sink(#[source] std::io::Error),
    /// Packing: a file could not be read or written.
    #[error("{path}: {source}")]
    PackIo {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Packing: the input is not packable.
    #[error("cannot pack: {0}")]
    PackInput(String),
    /// Packing: signing failed.
    #[error("signing failed: {0}")]
    Sign(#[from] SignError),
    /// Packing: the finished package did not verify (nothing was written).
    #[error("the packed image failed its own verification: {0}")]
    PackSelfCheck(Box<ImageError>),
}

impl ImageError {
    /// A stable, machine-readable code (used by test vectors and logs).
    pub fn code(&self) -> &'static str {
        match self {
            ImageError::Io(_) => "io",
            ImageError::Truncated { .. } => "truncated",
            ImageError::BadMagic => "bad-magic",
            ImageError::UnsupportedVersion(_) => "unsupported-version",
            ImageError::NonZeroFlags(_) => "nonzero-flags",
            ImageError::EnvelopeTooLarge { .. } => "envelope-too-large",
            ImageError::Signature(e) => e.code(),
            ImageError::Metadata(e) => match e {
                MetadataError::Malformed(_) => "metadata-malformed",
                MetadataError::NotAMap => "metadata-not-a-map",
                MetadataError::NonCanonical => "metadata-non-canonical",
                MetadataError::UnknownKey(_) => "metadata-unknown-key",
                MetadataError::DuplicateKey(_) => "metadata-duplicate-key",
                MetadataError::MissingField(_) => "metadata-missing-field",
                MetadataError::WrongType(_) => "metadata-wrong-type",
                MetadataError::TooLong { .. } => "metadata-too-long",
                MetadataError::Invalid { .. } => "metadata-invalid",
                MetadataError::ManifestInconsistent { .. } => "metadata-manifest-inconsistent",
            },
            ImageError::TrailingData => "trailing-data",
            ImageError::PayloadDigestMismatch => "payload-digest-mismatch",
            ImageError::Archive(e) => match e {
                ArchiveError::Malformed(_) => "archive-malformed",
                ArchiveError::NotUstar(_) => "archive-not-ustar",
                ArchiveError::DisallowedEntryType { .. } => "archive-disallowed-entry-type",
                ArchiveError::InvalidPath { .. } => "archive-invalid-path",
                ArchiveError::DuplicateEntry(_) => "archive-duplicate-entry",
                ArchiveError::UnsortedEntries(_) => "archive-unsorted-entries",
                ArchiveError::NonDeterministicHeader { .. } => "archive-non-deterministic-header",
                ArchiveError::TooManyEntries(_) => "archive-too-many-entries",
                ArchiveError::ManifestMissing => "archive-manifest-missing",
                ArchiveError::ManifestMismatch => "archive-manifest-mismatch",
                ArchiveError::RequiredFileMissing(_) => "archive-required-file-missing",
                ArchiveError::MissingEndOfArchive => "archive-missing-end",
                ArchiveError::DataAfterEnd => "archive-data-after-end",
            },
            ImageError::BoardConfig(_) => "board-config-invalid",
            ImageError::Sink(_) => "sink",
            ImageError::PackIo { .. } => "pack-io",
            ImageError::PackInput(_) => "pack-input",
            ImageError::Sign(_) => "sign",
            ImageError::PackSelfCheck(_) => "pack-self-check",
        }
    }
}
