//! `ferro-provenance` owns the attested provenance of telemetry (docs/provenance.md): the format
//! of a signed telemetry batch, a COSE_Sign1 (RFC 9052) of purpose
//! [`Purpose::TelemetryBatch`] made by the device key in the root of trust over the bytes an app
//! publishes, whose protected header carries what the app cannot choose (the device, the app's
//! component ID, the image ID of the verified image that runs it, whether that image was
//! sideloaded for development, the boot, a per-boot sequence number, the signing time and the
//! device certificate chain); [`sign_batch`], which the device calls for an app; and
//! [`verify_batch`], the cloud side's check, whose only success value is a [`VerifiedBatch`].
//!
//! It depends on `ferro-signing` (the one COSE_Sign1 profile) and `ferro-pki` (device
//! certificates and tenant CAs) only among Ferrosphere crates, and must not depend on anything of
//! the device, the runtime or the service: a broker plug-in, a data pipeline or the `ferro` CLI
//! verify with it alone. It hand-writes no COSE, CBOR or X.509 and never panics on untrusted
//! bytes.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use ferro_pki::{CertError, DeviceCertificate, TenantCa};
use ferro_signing::{
    DeviceId, HeaderValue, KeyId, Purpose, SignError, Signer, VerifyError, parse_with_headers,
    sign1_with_headers,
};
use time::OffsetDateTime;
use uuid::Uuid;

/// The protected header labels of a telemetry batch beyond alg (1), content type (3) and kid
/// (4). `x5chain` is RFC 9360's; the others are private-use labels (below -65536).
pub mod label {
    /// `x5chain` (RFC 9360): the device certificate, then its tenant CA; an array of byte
    /// strings (or one byte string for the leaf alone).
    pub const X5CHAIN: i64 = 33;
    /// The device ID (64 bytes, SHA-512 of the device key's SubjectPublicKeyInfo).
    pub const DEVICE_ID: i64 = -70101;
    /// The app's component ID (16-byte UUID).
    pub const COMPONENT_ID: i64 = -70102;
    /// The image ID of the verified image the app runs from (16-byte UUID).
    pub const IMAGE_ID: i64 = -70103;
    /// Whether that image was sideloaded in development mode (signed by a developer key)
    /// rather than deployed as a production image (boolean).
    pub const DEVELOPMENT: i64 = -70104;
    /// A random ID of the device's current boot (16 bytes).
    pub const BOOT_ID: i64 = -70105;
    /// The batch's number in this boot: 0, 1, 2, ... across the device's apps (unsigned).
    pub const SEQUENCE: i64 = -70106;
    /// When the device signed it, by its clock: seconds since the Unix epoch (unsigned).
    pub const SIGNED_AT: i64 = -70107;

    /// Every label, in the one order of the encoding (RFC 8949 deterministic: 33, then the
    /// negative labels by increasing magnitude).
    pub const ALL: [i64; 8] = [
        X5CHAIN,
        DEVICE_ID,
        COMPONENT_ID,
        IMAGE_ID,
        DEVELOPMENT,
        BOOT_ID,
        SEQUENCE,
        SIGNED_AT,
    ];
}

/// The largest payload a batch may carry (256 KiB). The device refuses to sign more.
pub const MAX_BATCH_PAYLOAD: usize = 256 * 1024;
/// The largest signed batch a verifier looks at (the payload, the chain and the headers).
pub const MAX_BATCH_LEN: usize = MAX_BATCH_PAYLOAD + 16 * 1024;
/// Most certificates an `x5chain` may carry.
pub const MAX_CHAIN_CERTIFICATES: usize = 4;
/// How far in the verifier's future a signing time may lie (the device's clock may be ahead).
pub const MAX_CLOCK_SKEW: time::Duration = time::Duration::minutes(5);

/// What the device puts in a batch's protected header for the app (the device ID and the
/// certificate chain come from the root of trust and the certificate store).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchClaims {
    /// The app's component ID.
    pub component_id: Uuid,
    /// The image ID of the verified image the app runs from.
    pub image_id: Uuid,
    /// Whether that image was sideloaded in development mode.
    pub development: bool,
    /// The current boot.
    pub boot_id: Uuid,
    /// The batch's number in this boot.
    pub sequence: u64,
    /// The signing time (whole seconds are kept).
    pub signed_at: OffsetDateTime,
}

/// A device's batch numbering for one boot: a random boot ID and the next sequence number,
/// shared by all its apps (one per device process).
#[derive(Debug)]
pub struct BootSequence {
    boot_id: Uuid,
    next: AtomicU64,
}

impl Default for BootSequence {
    fn default() -> Self {
        BootSequence::new(Uuid::new_v4())
    }
}

impl BootSequence {
    /// Numbering from 0 in boot `boot_id` (use [`BootSequence::default`] for a fresh random
    /// one).
    pub fn new(boot_id: Uuid) -> BootSequence {
        BootSequence {
            boot_id,
            next: AtomicU64::new(0),
        }
    }

    /// The boot.
    pub fn boot_id(&self) -> Uuid {
        self.boot_id
    }

    /// How many batches were numbered.
    pub fn issued(&self) -> u64 {
        self.next.load(Ordering::Relaxed)
    }

    /// The claims of the next batch of app `component_id` running from `image_id`, signed now.
    pub fn next_claims(
        &self,
        component_id: Uuid,
        image_id: Uuid,
        development: bool,
    ) -> BatchClaims {
        BatchClaims {
            component_id,
            image_id,
            development,
            boot_id: self.boot_id,
            sequence: self.next.fetch_add(1, Ordering::Relaxed),
            signed_at: OffsetDateTime::now_utc(),
        }
    }
}

/// Signing a batch failed; nothing was emitted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignBatchError {
    /// The payload is larger than [`MAX_BATCH_PAYLOAD`].
    #[error("the batch is {len} bytes, more than the limit of {max}")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The certificate chain is empty, too long, or its leaf is not a device certificate.
    #[error("the device certificate chain is unusable: {0}")]
    Chain(String),
    /// The chain's leaf certifies another key than the signer's.
    #[error("the device certificate is not the signing key's")]
    LeafKeyMismatch,
    /// The signing time is before 1970.
    #[error("the signing time is before the Unix epoch")]
    BadTime,
    /// The signer (the root of trust) failed.
    #[error(transparent)]
    Sign(#[from] SignError),
}

/// Sign `payload` as a telemetry batch with the device key `signer`, whose certificate is the
/// first of `chain_der` (DER, leaf first, then its tenant CA). The signature is checked before
/// it is returned (`ferro_signing::sign1`'s self-check).
pub fn sign_batch(
    signer: &dyn Signer,
    chain_der: &[Vec<u8>],
    claims: &BatchClaims,
    payload: &[u8],
) -> Result<Vec<u8>, SignBatchError> {
    if payload.len() > MAX_BATCH_PAYLOAD {
        return Err(SignBatchError::TooLarge {
            len: payload.len(),
            max: MAX_BATCH_PAYLOAD,
        });
    }
    let leaf = match chain_der {
        [] => return Err(SignBatchError::Chain("no certificate".to_owned())),
        chain if chain.len() > MAX_CHAIN_CERTIFICATES => {
            return Err(SignBatchError::Chain(format!(
                "{} certificates, more than {MAX_CHAIN_CERTIFICATES}",
                chain.len()
            )));
        }
        [leaf, ..] => {
            DeviceCertificate::parse(leaf).map_err(|e| SignBatchError::Chain(e.to_string()))?
        }
    };
    if leaf.public_key.key_id() != signer.key_id() {
        return Err(SignBatchError::LeafKeyMismatch);
    }
    let signed_at =
        u64::try_from(claims.signed_at.unix_timestamp()).map_err(|_| SignBatchError::BadTime)?;
    let x5chain = match chain_der {
        [only] => HeaderValue::Bytes(only.clone()),
        chain => HeaderValue::BytesArray(chain.to_vec()),
    };
    let headers = [
        (label::X5CHAIN, x5chain),
        (
            label::DEVICE_ID,
            HeaderValue::Bytes(leaf.device_id.as_bytes().to_vec()),
        ),
        (
            label::COMPONENT_ID,
            HeaderValue::Bytes(claims.component_id.as_bytes().to_vec()),
        ),
        (
            label::IMAGE_ID,
            HeaderValue::Bytes(claims.image_id.as_bytes().to_vec()),
        ),
        (label::DEVELOPMENT, HeaderValue::Bool(claims.development)),
        (
            label::BOOT_ID,
            HeaderValue::Bytes(claims.boot_id.as_bytes().to_vec()),
        ),
        (label::SEQUENCE, HeaderValue::Uint(claims.sequence)),
        (label::SIGNED_AT, HeaderValue::Uint(signed_at)),
    ];
    Ok(sign1_with_headers(
        signer,
        Purpose::TelemetryBatch,
        &headers,
        payload,
        &[],
    )?)
}

/// The tenant CAs a verifier trusts: the anchors a batch's certificate must chain to.
#[derive(Clone, Debug, Default)]
pub struct TenantAnchors {
    cas: Vec<TenantCa>,
}

impl TenantAnchors {
    /// Anchors from tenant CA certificates (each checked to be a Ferrosphere tenant CA).
    pub fn new(cas: Vec<TenantCa>) -> TenantAnchors {
        TenantAnchors { cas }
    }

    /// Anchors from a PEM bundle of tenant CA certificates (`ferro ca-certificate download-chain`'s
    /// output); every `CERTIFICATE` block must be a tenant CA, and there must be one.
    pub fn from_pem(text: &str) -> Result<TenantAnchors, AnchorError> {
        let blocks = pem::parse_many(text).map_err(|e| AnchorError::Pem(e.to_string()))?;
        let cas = blocks
            .iter()
            .filter(|b| b.tag() == "CERTIFICATE")
            .map(|b| TenantCa::from_der(b.contents()))
            .collect::<Result<Vec<_>, _>>()?;
        if cas.is_empty() {
            return Err(AnchorError::Empty);
        }
        Ok(TenantAnchors { cas })
    }

    /// The trusted CAs.
    pub fn cas(&self) -> &[TenantCa] {
        &self.cas
    }
}

/// Tenant CA certificates could not be read as anchors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnchorError {
    /// Not PEM.
    #[error("not PEM: {0}")]
    Pem(String),
    /// No certificate in it.
    #[error("no CERTIFICATE in the PEM text")]
    Empty,
    /// A certificate that is not a tenant CA.
    #[error(transparent)]
    NotTenantCa(#[from] CertError),
}

/// What a verifier expects of a batch's origin. Every set that is given must contain the
/// batch's value; `None` accepts any value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExpectedProvenance {
    /// The images the batch may come from (the attested images of the app). Empty: refuse all.
    pub image_ids: BTreeSet<Uuid>,
    /// The app the batch must come from.
    pub component_id: Option<Uuid>,
    /// The devices it may come from.
    pub device_ids: Option<BTreeSet<DeviceId>>,
    /// Whether a batch from an image sideloaded in development mode is acceptable (normally
    /// not: a developer key may give its image any image ID).
    pub allow_development: bool,
}

/// A batch whose signature, certificate chain and headers verified, from an expected image.
/// Only [`verify_batch`] makes one.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifiedBatch {
    payload: Vec<u8>,
    device_id: DeviceId,
    tenant_id: Uuid,
    component_id: Uuid,
    image_id: Uuid,
    development: bool,
    boot_id: Uuid,
    sequence: u64,
    signed_at: OffsetDateTime,
    key_id: KeyId,
    ca_serial: String,
}

impl fmt::Debug for VerifiedBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedBatch")
            .field("payload_len", &self.payload.len())
            .field("device_id", &self.device_id.to_string())
            .field("tenant_id", &self.tenant_id)
            .field("component_id", &self.component_id)
            .field("image_id", &self.image_id)
            .field("development", &self.development)
            .field("boot_id", &self.boot_id)
            .field("sequence", &self.sequence)
            .field("signed_at", &self.signed_at)
            .finish()
    }
}

impl VerifiedBatch {
    /// The payload the app published.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }
    /// The payload, consumed.
    pub fn into_payload(self) -> Vec<u8> {
        self.payload
    }
    /// The device that signed it.
    pub fn device_id(&self) -> &DeviceId {
        &self.device_id
    }
    /// The tenant its certificate names (the tenant whose CA issued it).
    pub fn tenant_id(&self) -> Uuid {
        self.tenant_id
    }
    /// The app.
    pub fn component_id(&self) -> Uuid {
        self.component_id
    }
    /// The verified image the app ran from.
    pub fn image_id(&self) -> Uuid {
        self.image_id
    }
    /// Whether that image was sideloaded in development mode.
    pub fn development(&self) -> bool {
        self.development
    }
    /// The device's boot.
    pub fn boot_id(&self) -> Uuid {
        self.boot_id
    }
    /// The batch's number in that boot.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }
    /// When the device signed it (its clock).
    pub fn signed_at(&self) -> OffsetDateTime {
        self.signed_at
    }
    /// The device key's ID.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }
    /// The serial (hex) of the tenant CA that issued the device certificate.
    pub fn ca_serial(&self) -> &str {
        &self.ca_serial
    }
}

/// Why a batch was refused. Each reason has its own variant and [`ProvenanceError::code`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProvenanceError {
    /// Longer than [`MAX_BATCH_LEN`].
    #[error("the batch is {len} bytes, more than the limit of {max}")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not a well-formed tagged COSE_Sign1 (truncated, garbage).
    #[error("not a COSE_Sign1: {0}")]
    Malformed(String),
    /// Well-formed but not in the one deterministic encoding.
    #[error("the batch is not canonically encoded")]
    NonCanonical,
    /// Signed for another purpose than a telemetry batch.
    #[error("not a telemetry batch: signed as {0}")]
    WrongPurpose(Purpose),
    /// The protected header lists critical parameters (`crit`), which no batch has.
    #[error("the batch names critical header parameters this verifier does not know")]
    UnknownCriticalHeader,
    /// A header parameter a batch does not have (or an unprotected one).
    #[error("unexpected header parameter: {0}")]
    UnexpectedHeader(String),
    /// A header parameter of the batch is missing or not of its type.
    #[error("header parameter {name} is missing or malformed")]
    BadHeader {
        /// Which one.
        name: &'static str,
    },
    /// The leaf of `x5chain` is not a device certificate.
    #[error("the batch's certificate is not a device certificate: {0}")]
    NotDeviceCertificate(CertError),
    /// The envelope's `kid` is not the certificate's key.
    #[error("the batch's key ID {kid} is not the key of its certificate")]
    KeyMismatch {
        /// The claimed key.
        kid: KeyId,
    },
    /// The device ID header is not the certificate's device.
    #[error("the batch names another device than its certificate")]
    DeviceIdMismatch,
    /// The certificate names a tenant whose CA is not among the anchors.
    #[error("the certificate is of tenant {0}, whose CA is not trusted here")]
    UnknownTenant(Uuid),
    /// No CA of the tenant was valid when the batch was signed.
    #[error("no trusted CA of tenant {0} was valid when the batch was signed")]
    TenantCaNotValid(Uuid),
    /// The certificate was not issued by a trusted CA of its tenant (e.g. self-signed).
    #[error("the certificate was not issued by a trusted CA of its tenant")]
    NotIssuedByTenantCa,
    /// The certificate was not valid when the batch was signed (expired, or not yet valid).
    #[error(
        "the certificate was not valid when the batch was signed ({signed_at}; valid {not_before} to {not_after})"
    )]
    CertificateNotValid {
        /// The batch's signing time.
        signed_at: OffsetDateTime,
        /// The certificate's notBefore.
        not_before: OffsetDateTime,
        /// The certificate's notAfter.
        not_after: OffsetDateTime,
    },
    /// Signed later than the verifier's clock allows.
    #[error("the batch claims to be signed at {signed_at}, after now ({now})")]
    SignedInTheFuture {
        /// The claimed signing time.
        signed_at: OffsetDateTime,
        /// The verifier's time.
        now: OffsetDateTime,
    },
    /// The signature does not verify with the certificate's key.
    #[error("the signature does not verify")]
    BadSignature,
    /// Verified, but from an image that is not expected.
    #[error("the batch comes from image {0}, which is not expected")]
    UnexpectedImage(Uuid),
    /// Verified, but from another app.
    #[error("the batch comes from app {0}, not the expected one")]
    UnexpectedComponent(Uuid),
    /// Verified, but from a device that is not expected.
    #[error("the batch comes from a device that is not expected")]
    UnexpectedDevice,
    /// Verified, but from an image sideloaded in development mode.
    #[error("the batch comes from an image sideloaded in development mode")]
    DevelopmentImage,
}

impl ProvenanceError {
    /// A stable, machine-readable code (test vectors, `--output json`).
    pub fn code(&self) -> &'static str {
        match self {
            ProvenanceError::TooLarge { .. } => "too-large",
            ProvenanceError::Malformed(_) => "malformed",
            ProvenanceError::NonCanonical => "non-canonical",
            ProvenanceError::WrongPurpose(_) => "wrong-purpose",
            ProvenanceError::UnknownCriticalHeader => "unknown-critical-header",
            ProvenanceError::UnexpectedHeader(_) => "unexpected-header",
            ProvenanceError::BadHeader { .. } => "bad-header",
            ProvenanceError::NotDeviceCertificate(_) => "not-device-certificate",
            ProvenanceError::KeyMismatch { .. } => "key-mismatch",
            ProvenanceError::DeviceIdMismatch => "device-id-mismatch",
            ProvenanceError::UnknownTenant(_) => "unknown-tenant",
            ProvenanceError::TenantCaNotValid(_) => "tenant-ca-not-valid",
            ProvenanceError::NotIssuedByTenantCa => "not-issued-by-tenant-ca",
            ProvenanceError::CertificateNotValid { .. } => "certificate-not-valid",
            ProvenanceError::SignedInTheFuture { .. } => "signed-in-the-future",
            ProvenanceError::BadSignature => "bad-signature",
            ProvenanceError::UnexpectedImage(_) => "unexpected-image",
            ProvenanceError::UnexpectedComponent(_) => "unexpected-component",
            ProvenanceError::UnexpectedDevice => "unexpected-device",
            ProvenanceError::DevelopmentImage => "development-image",
        }
    }
}

fn label_name(label: i64) -> &'static str {
    match label {
        label::X5CHAIN => "x5chain",
        label::DEVICE_ID => "device ID",
        label::COMPONENT_ID => "component ID",
        label::IMAGE_ID => "image ID",
        label::DEVELOPMENT => "development",
        label::BOOT_ID => "boot ID",
        label::SEQUENCE => "sequence",
        label::SIGNED_AT => "signed at",
        _ => "unknown",
    }
}

fn envelope_error(error: VerifyError) -> ProvenanceError {
    match error {
        VerifyError::TooLarge { len, max } => ProvenanceError::TooLarge { len, max },
        VerifyError::Malformed(m) => ProvenanceError::Malformed(m),
        VerifyError::NonCanonical => ProvenanceError::NonCanonical,
        VerifyError::WrongPurpose { found, .. } => ProvenanceError::WrongPurpose(found),
        VerifyError::UnexpectedHeaderParameter("crit") => ProvenanceError::UnknownCriticalHeader,
        VerifyError::UnexpectedHeaderParameter(what) => {
            ProvenanceError::UnexpectedHeader(what.to_owned())
        }
        VerifyError::UnprotectedHeaderNotEmpty => {
            ProvenanceError::UnexpectedHeader("unprotected header".to_owned())
        }
        VerifyError::MissingHeaderParameter(label) | VerifyError::BadHeaderValue(label) => {
            ProvenanceError::BadHeader {
                name: label_name(label),
            }
        }
        VerifyError::WrongAlgorithm => ProvenanceError::BadHeader { name: "alg" },
        VerifyError::MissingKid => ProvenanceError::BadHeader { name: "kid" },
        VerifyError::MissingPurpose | VerifyError::UnknownPurpose(_) => {
            ProvenanceError::BadHeader {
                name: "content type",
            }
        }
        VerifyError::DetachedPayload => ProvenanceError::BadHeader { name: "payload" },
        VerifyError::UnknownKey(kid) => ProvenanceError::KeyMismatch { kid },
        VerifyError::BadSignature => ProvenanceError::BadSignature,
        // VerifyError is non-exhaustive: a reason added later is still a refusal.
        other => ProvenanceError::Malformed(other.to_string()),
    }
}

fn bytes_header(
    envelope: &ferro_signing::HeaderedEnvelope,
    label: i64,
) -> Result<&[u8], ProvenanceError> {
    match envelope.header(label) {
        Some(HeaderValue::Bytes(b)) => Ok(b),
        _ => Err(ProvenanceError::BadHeader {
            name: label_name(label),
        }),
    }
}

fn uuid_header(
    envelope: &ferro_signing::HeaderedEnvelope,
    label: i64,
) -> Result<Uuid, ProvenanceError> {
    Uuid::from_slice(bytes_header(envelope, label)?).map_err(|_| ProvenanceError::BadHeader {
        name: label_name(label),
    })
}

fn uint_header(
    envelope: &ferro_signing::HeaderedEnvelope,
    label: i64,
) -> Result<u64, ProvenanceError> {
    match envelope.header(label) {
        Some(HeaderValue::Uint(n)) => Ok(*n),
        _ => Err(ProvenanceError::BadHeader {
            name: label_name(label),
        }),
    }
}

/// Verify a signed telemetry batch: the strict COSE profile and purpose, exactly the batch's
/// header parameters, the device certificate in `x5chain` (its key is the `kid`, its device is
/// the device ID header, it was issued by a CA of the tenant it names among `anchors`, and it
/// and that CA were valid at the signing time, which is not after `now` plus
/// [`MAX_CLOCK_SKEW`]), the signature by the certificate's key, then what `expected` asks of
/// the image, the app and the device. Only the leaf of `x5chain` is read: the anchors alone
/// decide trust.
pub fn verify_batch(
    bytes: &[u8],
    anchors: &TenantAnchors,
    now: OffsetDateTime,
    expected: &ExpectedProvenance,
) -> Result<VerifiedBatch, ProvenanceError> {
    if bytes.len() > MAX_BATCH_LEN {
        return Err(ProvenanceError::TooLarge {
            len: bytes.len(),
            max: MAX_BATCH_LEN,
        });
    }
    let envelope =
        parse_with_headers(bytes, Purpose::TelemetryBatch, &label::ALL).map_err(envelope_error)?;

    // The certificate: the leaf of x5chain, a device certificate of the key that signed.
    let leaf_der = match envelope.header(label::X5CHAIN) {
        Some(HeaderValue::Bytes(leaf)) => leaf.as_slice(),
        Some(HeaderValue::BytesArray(chain))
            if (2..=MAX_CHAIN_CERTIFICATES).contains(&chain.len()) =>
        {
            chain[0].as_slice()
        }
        _ => return Err(ProvenanceError::BadHeader { name: "x5chain" }),
    };
    let leaf = DeviceCertificate::parse(leaf_der).map_err(ProvenanceError::NotDeviceCertificate)?;
    if leaf.public_key.key_id() != envelope.claimed_kid() {
        return Err(ProvenanceError::KeyMismatch {
            kid: envelope.claimed_kid(),
        });
    }
    let device_id = DeviceId::from_slice(bytes_header(&envelope, label::DEVICE_ID)?)
        .ok_or(ProvenanceError::BadHeader { name: "device ID" })?;
    if device_id != leaf.device_id {
        return Err(ProvenanceError::DeviceIdMismatch);
    }
    let component_id = uuid_header(&envelope, label::COMPONENT_ID)?;
    let image_id = uuid_header(&envelope, label::IMAGE_ID)?;
    let development = match envelope.header(label::DEVELOPMENT) {
        Some(HeaderValue::Bool(b)) => *b,
        _ => {
            return Err(ProvenanceError::BadHeader {
                name: "development",
            });
        }
    };
    let boot_id = uuid_header(&envelope, label::BOOT_ID)?;
    let sequence = uint_header(&envelope, label::SEQUENCE)?;
    let signed_at = i64::try_from(uint_header(&envelope, label::SIGNED_AT)?)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .ok_or(ProvenanceError::BadHeader { name: "signed at" })?;

    // The time: not in the future, inside the certificate's validity.
    if signed_at > now + MAX_CLOCK_SKEW {
        return Err(ProvenanceError::SignedInTheFuture { signed_at, now });
    }
    if signed_at < leaf.not_before || signed_at > leaf.not_after {
        return Err(ProvenanceError::CertificateNotValid {
            signed_at,
            not_before: leaf.not_before,
            not_after: leaf.not_after,
        });
    }

    // The chain: a CA of the tenant the certificate names, valid then, issued it.
    let tenant_cas: Vec<TenantCa> = anchors
        .cas
        .iter()
        .filter(|ca| ca.tenant_id() == leaf.tenant_id)
        .cloned()
        .collect();
    if tenant_cas.is_empty() {
        return Err(ProvenanceError::UnknownTenant(leaf.tenant_id));
    }
    let valid_cas: Vec<TenantCa> = tenant_cas
        .into_iter()
        .filter(|ca| ca.certificate().is_valid_at(signed_at))
        .collect();
    if valid_cas.is_empty() {
        return Err(ProvenanceError::TenantCaNotValid(leaf.tenant_id));
    }
    let verified_cert = ferro_pki::verify_device_certificate(leaf_der, &valid_cas, signed_at)
        .map_err(|_| ProvenanceError::NotIssuedByTenantCa)?;

    // The signature, by the certified key.
    let verified = envelope
        .verify(&leaf.public_key, &[])
        .map_err(envelope_error)?;

    // What the verifier expects of the origin, checked only on authentic headers.
    if !expected.image_ids.contains(&image_id) {
        return Err(ProvenanceError::UnexpectedImage(image_id));
    }
    if expected.component_id.is_some_and(|c| c != component_id) {
        return Err(ProvenanceError::UnexpectedComponent(component_id));
    }
    if expected
        .device_ids
        .as_ref()
        .is_some_and(|ids| !ids.contains(&device_id))
    {
        return Err(ProvenanceError::UnexpectedDevice);
    }
    if development && !expected.allow_development {
        return Err(ProvenanceError::DevelopmentImage);
    }
    Ok(VerifiedBatch {
        payload: verified.into_payload(),
        device_id,
        tenant_id: leaf.tenant_id,
        component_id,
        image_id,
        development,
        boot_id,
        sequence,
        signed_at,
        key_id: leaf.public_key.key_id(),
        ca_serial: verified_cert.ca_serial().to_owned(),
    })
}
