//! [`inspect`] (untrusted display) and [`verify`] (streaming verification).

use std::io::{self, Read, Write};
use std::path::Path;

use ferro_signing::Sha256;
use ferro_signing::{KeyId, Purpose, TrustedKeys, VerifyError, parse_unverified, verify1};
use subtle::ConstantTimeEq;

use crate::archive::{ArchiveRules, OS_DEVICE_BINARY, check_archive};
use crate::error::{ArchiveError, ImageError, Section};
use crate::header::{FixedHeader, HEADER_LEN};
use crate::metadata::{ImageMetadata, ImageType};

/// Size of the one buffer verification streams the payload through (1 MiB).
pub const VERIFY_BUFFER_SIZE: usize = 1024 * 1024;

/// A package whose signature has NOT been checked: for display (`ferro image show`) only.
#[derive(Debug, Clone)]
pub struct UnverifiedImage {
    /// The fixed header.
    pub header: FixedHeader,
    /// The key the envelope claims to be signed by.
    pub claimed_signer: KeyId,
    /// The metadata as claimed (structurally valid, not authenticated).
    pub claimed_metadata: ImageMetadata,
}

/// An image whose signature, metadata and payload all verified. Only [`verify`] and
/// [`verify_file`] create one; it has no public constructor and cannot be deserialized.
#[derive(Debug, Clone)]
pub struct VerifiedImage {
    metadata: ImageMetadata,
    signer: KeyId,
    payload_sha256: [u8; 32],
}

impl VerifiedImage {
    /// The verified metadata.
    pub fn metadata(&self) -> &ImageMetadata {
        &self.metadata
    }
    /// The trusted key that signed it.
    pub fn signer(&self) -> KeyId {
        self.signer
    }
    /// The SHA-256 of the payload that was streamed to the sink.
    pub fn payload_sha256(&self) -> [u8; 32] {
        self.payload_sha256
    }
}

fn read_exact_or(r: &mut dyn Read, buf: &mut [u8], section: Section) -> Result<(), ImageError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => ImageError::Truncated { section },
        _ => ImageError::Io(e),
    })
}

fn read_header_and_envelope(r: &mut dyn Read) -> Result<(FixedHeader, Vec<u8>), ImageError> {
    let mut hb = [0u8; HEADER_LEN];
    read_exact_or(r, &mut hb, Section::Header)?;
    let header = FixedHeader::parse(&hb)?;
    // Bounded by MAX_ENVELOPE_LEN (checked by parse).
    let mut envelope = vec![0u8; header.envelope_len as usize];
    read_exact_or(r, &mut envelope, Section::Envelope)?;
    Ok((header, envelope))
}

/// Parse header and metadata without verifying anything cryptographically. The payload is not
/// read.
pub fn inspect(mut reader: impl Read) -> Result<UnverifiedImage, ImageError> {
    let (header, envelope) = read_header_and_envelope(&mut reader)?;
    let env = parse_unverified(&envelope)?;
    if env.claimed_purpose != Purpose::ImagePackage {
        return Err(VerifyError::WrongPurpose {
            expected: Purpose::ImagePackage,
            found: env.claimed_purpose,
        }
        .into());
    }
    let claimed_metadata = ImageMetadata::from_cbor(&env.unverified_payload)?;
    Ok(UnverifiedImage {
        header,
        claimed_signer: env.claimed_kid,
        claimed_metadata,
    })
}

/// Reads exactly `remaining` payload bytes from the package, hashing them and copying them to
/// the sink; records I/O failures so they are reported as such rather than as archive errors.
struct PayloadReader<'a> {
    inner: &'a mut dyn Read,
    remaining: u64,
    hasher: Sha256,
    sink: &'a mut dyn Write,
    source_error: Option<io::Error>,
    sink_error: Option<io::Error>,
    truncated: bool,
    read_past_end: bool,
}

impl Read for PayloadReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            self.read_past_end = true;
            return Ok(0);
        }
        if self.source_error.is_some() || self.sink_error.is_some() || self.truncated {
            return Err(io::Error::other("payload stream failed"));
        }
        let want = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let Some(dst) = buf.get_mut(..want) else {
            return Ok(0);
        };
        let n = loop {
            match self.inner.read(dst) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.source_error = Some(e);
                    return Err(io::Error::other("reading the package failed"));
                }
            }
        };
        if n == 0 {
            self.truncated = true;
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "package truncated",
            ));
        }
        let data = dst.get(..n).unwrap_or_default();
        self.hasher.update(data);
        if let Err(e) = self.sink.write_all(data) {
            self.sink_error = Some(e);
            return Err(io::Error::other("sink failed"));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Verify a package read from `reader`, streaming its payload into `sink` as it is checked.
///
/// Order: fixed header; COSE_Sign1 (strict profile, [`Purpose::ImagePackage`], trusted kid,
/// ES256 signature with the header's first 12 bytes as external AAD); metadata (deterministic
/// CBOR, no unknown keys); then the payload is read exactly once through one
/// [`VERIFY_BUFFER_SIZE`] buffer, hashed, copied to `sink` and (for app, rt-app and OS images)
/// checked as a ustar stream; finally end of file, the SHA-256 (constant-time compare) and the
/// archive verdict.
///
/// **The bytes written to `sink` are untrusted until this returns `Ok`.** An installer writes
/// them to a staging location and commits only after `Ok`: verifying while copying means the
/// bytes installed are the bytes verified (no time-of-check/time-of-use gap). Pass
/// [`io::sink()`] to only verify.
pub fn verify(
    mut reader: impl Read,
    trusted: &TrustedKeys,
    sink: &mut dyn Write,
) -> Result<VerifiedImage, ImageError> {
    let (header, envelope) = read_header_and_envelope(&mut reader)?;
    let verified = verify1(
        &envelope,
        Purpose::ImagePackage,
        trusted,
        &header.external_aad(),
    )?;
    let signer = verified.key_id();
    let metadata = ImageMetadata::from_cbor(verified.payload())?;
    drop(envelope);

    let mut buf = vec![0u8; VERIFY_BUFFER_SIZE];
    let mut pr = PayloadReader {
        inner: &mut reader,
        remaining: metadata.payload_size,
        hasher: Sha256::new(),
        sink,
        source_error: None,
        sink_error: None,
        truncated: false,
        read_past_end: false,
    };

    let required = match (&metadata.app, metadata.image_type) {
        (Some(app), _) => Some(app.entry_point_tar_path()),
        (None, ImageType::Os) => Some(OS_DEVICE_BINARY),
        _ => None,
    };
    let manifest = metadata.app.as_ref().map(|a| a.manifest_json.as_slice());
    let mut board_config: Vec<u8> = Vec::new();
    let mut content_result: Result<(), ImageError> = Ok(());
    if let Some(required_file) = required {
        let rules = ArchiveRules {
            manifest,
            required_file,
        };
        content_result = check_archive(&mut pr, &rules, &mut buf).map_err(ImageError::from);
        if content_result.is_ok() && pr.read_past_end {
            content_result = Err(ArchiveError::MissingEndOfArchive.into());
        }
        // What follows the first end-of-archive block must be zeros, at least one more block.
        let mut padding = 0u64;
        loop {
            match pr.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    padding += n as u64;
                    if buf.get(..n).is_some_and(|b| b.iter().any(|&x| x != 0)) {
                        content_result = content_result.and(Err(ArchiveError::DataAfterEnd.into()));
                    }
                }
            }
        }
        if padding < 512 || !padding.is_multiple_of(512) {
            content_result = content_result.and(Err(ArchiveError::MissingEndOfArchive.into()));
        }
    } else {
        // Board configuration: at most MAX_BOARD_CONFIG_SIZE (checked in the metadata).
        loop {
            match pr.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => board_config.extend_from_slice(buf.get(..n).unwrap_or_default()),
            }
        }
    }

    // I/O failures first: they say nothing about the package's validity.
    if let Some(e) = pr.sink_error.take() {
        return Err(ImageError::Sink(e));
    }
    if let Some(e) = pr.source_error.take() {
        return Err(ImageError::Io(e));
    }
    if pr.truncated || pr.remaining != 0 {
        return Err(ImageError::Truncated {
            section: Section::Payload,
        });
    }
    let digest = pr.hasher.finalize();
    let mut extra = [0u8; 1];
    loop {
        match reader.read(&mut extra) {
            Ok(0) => break,
            Ok(_) => return Err(ImageError::TrailingData),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ImageError::Io(e)),
        }
    }
    if !bool::from(digest.ct_eq(&metadata.payload_sha256)) {
        return Err(ImageError::PayloadDigestMismatch);
    }
    content_result?;
    if metadata.image_type == ImageType::BoardConfig {
        check_board_config(&board_config)?;
    }
    Ok(VerifiedImage {
        metadata,
        signer,
        payload_sha256: digest,
    })
}

/// The board configuration schema: a JSON object with a non-empty `Name` (at most 128 bytes)
/// and a non-empty `HardwareDefinition` string; other members are left to the device.
pub(crate) fn check_board_config(bytes: &[u8]) -> Result<(), ImageError> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|_| ImageError::BoardConfig("not JSON"))?;
    let obj = v
        .as_object()
        .ok_or(ImageError::BoardConfig("not a JSON object"))?;
    let name = obj
        .get("Name")
        .and_then(serde_json::Value::as_str)
        .ok_or(ImageError::BoardConfig("Name must be a string"))?;
    if name.is_empty() || name.len() > crate::MAX_NAME_LEN {
        return Err(ImageError::BoardConfig("Name must be 1 to 128 bytes"));
    }
    match obj
        .get("HardwareDefinition")
        .and_then(serde_json::Value::as_str)
    {
        Some(h) if !h.is_empty() => Ok(()),
        _ => Err(ImageError::BoardConfig(
            "HardwareDefinition must be a non-empty string",
        )),
    }
}

/// [`verify`] a package file.
pub fn verify_file(
    path: &Path,
    trusted: &TrustedKeys,
    sink: &mut dyn Write,
) -> Result<VerifiedImage, ImageError> {
    let file = std::fs::File::open(path).map_err(ImageError::Io)?;
    verify(file, trusted, sink)
}
