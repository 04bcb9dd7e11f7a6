//! Attestation evidence: an EAT (RFC 9711) claims set in CBOR, signed by the device key as a
//! purpose-bound COSE_Sign1 (`Purpose::AttestationEvidence`, empty external AAD). In TPM mode the
//! claims also carry a TPM2_Quote over the firmware PCRs 0..=7 and [`crate::FERRO_PCR`] with the
//! nonce as qualifying data, and the firmware PCRs' values; software evidence says explicitly
//! that it has no firmware measurements.
//! Creation needs a [`RootOfTrust`]; verification ([`verify_evidence`]) is pure Rust and needs
//! no TPM stack. The claim tables are in `docs/trust.md`.
//!
//! | key | claim | CBOR type |
//! |---|---|---|
//! | 6 | iat | uint, seconds since the epoch (device clock, informational) |
//! | 10 | eat_nonce | bstr 8..=64 |
//! | 256 | ueid | bstr 33: `0x01` (RAND type) then the first 32 bytes of the device ID |
//! | 263 | dbgstat | uint 0..=4 (RFC 9711 section 4.2.9) |
//! | 265 | eat_profile | tstr [`EAT_PROFILE`] |
//! | -70000 | ferro-device-id | bstr 64, the full device ID |
//! | -70001 | ferro-measurements | array of measurement event maps (the log, in order) |
//! | -70002 | ferro-rot-kind | uint, 1 software, 2 TPM |
//! | -70003 | ferro-tpm-quote | map `{1: TPMS_ATTEST, 2: signature r\|\|s, 3: AK SPKI DER}`, TPM only |
//! | -70004 | ferro-firmware-pcrs | array of 8 bstr 32 (SHA-256 PCRs 0..=7, TPM), or null: no firmware measurements (software) |

use std::time::{SystemTime, UNIX_EPOCH};

use ferro_cbor::Value;
use ferro_signing::Sha256;
use ferro_signing::{DeviceId, PublicKey, Purpose, TrustedKeys, VerifyError, sign1, verify1};
use subtle::ConstantTimeEq;

use crate::tpm_attest::{self, AttestParseError, QuoteInfo, TPM_ALG_SHA256};
use crate::{
    FERRO_PCR, FIRMWARE_PCRS, FirmwarePcrs, MAX_LOG_ENTRIES, MeasurementEvent, MeasurementLog,
    RootOfTrust, RootOfTrustKind, TpmQuote, TrustError,
};
use ferro_cbor as cbor;

/// The `eat_profile` of Ferrosphere evidence, version 1.
pub const EAT_PROFILE: &str = "urn:ferrosphere:eat:v1";
/// The largest evidence [`verify_evidence`] looks at (256 KiB).
pub const MAX_EVIDENCE_LEN: usize = 256 * 1024;
/// Shortest and longest nonce (RFC 9711 eat_nonce: 8..=64 bytes; also TPM2B_DATA's limit).
pub const NONCE_LEN: std::ops::RangeInclusive<usize> = 8..=64;

const IAT: i128 = 6;
const NONCE: i128 = 10;
const UEID: i128 = 256;
const DBGSTAT: i128 = 263;
const PROFILE: i128 = 265;
const DEVICE_ID: i128 = -70000;
const MEASUREMENTS: i128 = -70001;
const ROT_KIND: i128 = -70002;
const TPM_QUOTE: i128 = -70003;
const FIRMWARE: i128 = -70004;

/// RFC 9711 debug status (`dbgstat`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DebugStatus {
    /// 0: debug is enabled.
    Enabled,
    /// 1: debug is disabled (may be re-enabled).
    Disabled,
    /// 2: disabled since boot.
    DisabledSinceBoot,
    /// 3: disabled permanently.
    DisabledPermanently,
    /// 4: disabled fully and permanently.
    DisabledFullyAndPermanently,
}

impl DebugStatus {
    /// The RFC 9711 value.
    pub const fn code(self) -> u64 {
        match self {
            DebugStatus::Enabled => 0,
            DebugStatus::Disabled => 1,
            DebugStatus::DisabledSinceBoot => 2,
            DebugStatus::DisabledPermanently => 3,
            DebugStatus::DisabledFullyAndPermanently => 4,
        }
    }
    /// The status with this value.
    pub const fn from_code(v: u64) -> Option<DebugStatus> {
        Some(match v {
            0 => DebugStatus::Enabled,
            1 => DebugStatus::Disabled,
            2 => DebugStatus::DisabledSinceBoot,
            3 => DebugStatus::DisabledPermanently,
            4 => DebugStatus::DisabledFullyAndPermanently,
            _ => return None,
        })
    }
}

/// Evidence was refused. [`EvidenceError::code`] gives a stable code per reason.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum EvidenceError {
    /// Larger than [`MAX_EVIDENCE_LEN`].
    #[error("evidence larger than {MAX_EVIDENCE_LEN} bytes")]
    TooLarge,
    /// The COSE_Sign1 envelope failed (signature, purpose, key, profile).
    #[error("evidence envelope: {0}")]
    Envelope(#[from] VerifyError),
    /// The claims set is malformed.
    #[error("malformed evidence claims: {0}")]
    Malformed(&'static str),
    /// The nonce is not the one the verifier issued.
    #[error("evidence nonce does not match the challenge")]
    NonceMismatch,
    /// The device ID / UEID claims are not those of the verifying key.
    #[error("evidence names another device")]
    WrongDevice,
    /// TPM evidence without a quote.
    #[error("TPM evidence carries no quote")]
    MissingQuote,
    /// Software evidence with a quote.
    #[error("software evidence carries a TPM quote")]
    UnexpectedQuote,
    /// The quote's TPMS_ATTEST is malformed.
    #[error("TPM quote: {0}")]
    QuoteMalformed(#[from] AttestParseError),
    /// The quote's signature does not verify with the attestation key.
    #[error("TPM quote signature does not verify")]
    QuoteSignature,
    /// The quote's qualifying data is not the nonce.
    #[error("TPM quote was made for another nonce")]
    QuoteNonceMismatch,
    /// The quote does not select exactly the SHA-256 firmware PCRs and the Ferrosphere PCR.
    #[error("TPM quote does not cover exactly PCRs 0-7 and {FERRO_PCR} (SHA-256)")]
    QuotePcrSelection,
    /// TPM evidence that states it has no firmware measurements (a TPM always has PCRs 0..=7).
    #[error("TPM evidence carries no firmware PCR values")]
    MissingFirmwarePcrs,
    /// Software evidence with firmware PCR values (nothing could vouch for them).
    #[error("software evidence claims firmware PCR values, which no quote covers")]
    UnexpectedFirmwarePcrs,

    /// The measurement log does not replay to the quoted PCR (or the claimed firmware PCRs are
    /// not those quoted: one digest covers both).
    #[error(
        "measurement log and firmware PCR values do not match the quoted PCR digest (the log does \
         not replay, or the firmware PCRs are not the TPM's)"
    )]
    LogDoesNotReplay,
    /// The quote is not by the attestation key registered for the device.
    #[error("TPM quote is not signed by the attestation key registered for this device")]
    UnknownAttestationKey,
    /// TPM evidence for a device whose registration has no attestation key (fail closed).
    #[error("the device's registration has no TPM attestation key, so no quote can be accepted")]
    NoRegisteredAttestationKey,
}

impl EvidenceError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            EvidenceError::TooLarge => "evidence-too-large",
            EvidenceError::Envelope(_) => "evidence-envelope",
            EvidenceError::Malformed(_) => "evidence-malformed",
            EvidenceError::NonceMismatch => "nonce-mismatch",
            EvidenceError::WrongDevice => "wrong-device",
            EvidenceError::MissingQuote => "missing-quote",
            EvidenceError::UnexpectedQuote => "unexpected-quote",
            EvidenceError::QuoteMalformed(_) => "quote-malformed",
            EvidenceError::QuoteSignature => "quote-bad-signature",
            EvidenceError::QuoteNonceMismatch => "quote-nonce-mismatch",
            EvidenceError::QuotePcrSelection => "quote-pcr-selection",
            EvidenceError::MissingFirmwarePcrs => "missing-firmware-pcrs",
            EvidenceError::UnexpectedFirmwarePcrs => "unexpected-firmware-pcrs",
            EvidenceError::LogDoesNotReplay => "log-does-not-replay",
            EvidenceError::UnknownAttestationKey => "unknown-attestation-key",
            EvidenceError::NoRegisteredAttestationKey => "no-registered-attestation-key",
        }
    }
}

/// The claims of one piece of evidence (what [`encode_claims`] writes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// `iat`.
    pub issued_at: u64,
    /// `eat_nonce`.
    pub nonce: Vec<u8>,
    /// The device ID (`ueid` carries its first 32 bytes, `ferro-device-id` all of it).
    pub device_id: DeviceId,
    /// `dbgstat`.
    pub debug_status: DebugStatus,
    /// The measurement log's events, in order.
    pub measurements: Vec<MeasurementEvent>,
    /// The root of trust kind.
    pub root_of_trust: RootOfTrustKind,
    /// The TPM quote (TPM only).
    pub tpm_quote: Option<TpmQuote>,
    /// The firmware PCRs 0..=7 (TPM), or `None`: this root of trust has no firmware measurements
    /// (software; encoded as an explicit null, never as zeros that would look measured).
    pub firmware_pcrs: Option<FirmwarePcrs>,
}

fn ueid(device_id: &DeviceId) -> Vec<u8> {
    let mut u = Vec::with_capacity(33);
    u.push(0x01);
    u.extend_from_slice(&device_id.as_bytes()[..32]);
    u
}

/// The deterministic CBOR encoding of `claims` (the COSE payload).
pub fn encode_claims(claims: &Claims) -> Result<Vec<u8>, TrustError> {
    let mut map = vec![
        (cbor::uint(IAT as u64), cbor::uint(claims.issued_at)),
        (cbor::uint(NONCE as u64), Value::Bytes(claims.nonce.clone())),
        (
            cbor::uint(UEID as u64),
            Value::Bytes(ueid(&claims.device_id)),
        ),
        (
            cbor::uint(DBGSTAT as u64),
            cbor::uint(claims.debug_status.code()),
        ),
        (cbor::uint(PROFILE as u64), Value::Text(EAT_PROFILE.into())),
        (
            cbor::int(DEVICE_ID as i64),
            Value::Bytes(claims.device_id.as_bytes().to_vec()),
        ),
        (
            cbor::int(MEASUREMENTS as i64),
            Value::Array(claims.measurements.iter().map(|e| e.to_value()).collect()),
        ),
        (
            cbor::int(ROT_KIND as i64),
            cbor::uint(claims.root_of_trust.code()),
        ),
    ];
    map.push((
        cbor::int(FIRMWARE as i64),
        match &claims.firmware_pcrs {
            Some(pcrs) => Value::Array(pcrs.iter().map(|p| Value::Bytes(p.to_vec())).collect()),
            None => Value::Null,
        },
    ));
    if let Some(q) = &claims.tpm_quote {
        map.push((
            cbor::int(TPM_QUOTE as i64),
            Value::Map(vec![
                (cbor::uint(1), Value::Bytes(q.attest.clone())),
                (cbor::uint(2), Value::Bytes(q.signature.to_vec())),
                (cbor::uint(3), Value::Bytes(q.attestation_key.clone())),
            ]),
        ));
    }
    cbor::encode(&Value::Map(map)).map_err(|e| TrustError::Encoding(e.to_string()))
}

/// Strictly decode a claims set (the inverse of [`encode_claims`]; no unknown claims, no other
/// encoding). Unverified: use [`verify_evidence`].
pub fn decode_claims(bytes: &[u8]) -> Result<Claims, EvidenceError> {
    use EvidenceError::Malformed;
    let v = cbor::decode(bytes).map_err(|_| Malformed("not CBOR"))?;
    let map = cbor::int_map(&v).ok_or(Malformed("claims are not a map with integer keys"))?;
    for (k, _) in &map {
        if ![
            IAT,
            NONCE,
            UEID,
            DBGSTAT,
            PROFILE,
            DEVICE_ID,
            MEASUREMENTS,
            ROT_KIND,
            TPM_QUOTE,
            FIRMWARE,
        ]
        .contains(k)
        {
            return Err(Malformed("unknown claim"));
        }
    }
    let get = |k| cbor::get(&map, k);
    if get(PROFILE).and_then(cbor::as_text) != Some(EAT_PROFILE) {
        return Err(Malformed("eat_profile missing or not Ferrosphere v1"));
    }
    let issued_at = get(IAT).and_then(cbor::as_u64).ok_or(Malformed("iat"))?;
    let nonce = get(NONCE)
        .and_then(cbor::as_bytes)
        .filter(|n| NONCE_LEN.contains(&n.len()))
        .ok_or(Malformed("eat_nonce"))?
        .to_vec();
    let device_id = get(DEVICE_ID)
        .and_then(cbor::as_bytes)
        .and_then(DeviceId::from_slice)
        .ok_or(Malformed("ferro-device-id"))?;
    if get(UEID).and_then(cbor::as_bytes) != Some(ueid(&device_id).as_slice()) {
        return Err(EvidenceError::WrongDevice);
    }
    let debug_status = get(DBGSTAT)
        .and_then(cbor::as_u64)
        .and_then(DebugStatus::from_code)
        .ok_or(Malformed("dbgstat"))?;
    let measurements = match get(MEASUREMENTS) {
        Some(Value::Array(items)) if items.len() <= MAX_LOG_ENTRIES => items
            .iter()
            .map(MeasurementEvent::from_value)
            .collect::<Option<Vec<_>>>()
            .ok_or(Malformed("measurement event"))?,
        _ => return Err(Malformed("ferro-measurements")),
    };
    let root_of_trust = get(ROT_KIND)
        .and_then(cbor::as_u64)
        .and_then(RootOfTrustKind::from_code)
        .ok_or(Malformed("ferro-rot-kind"))?;
    let tpm_quote = match get(TPM_QUOTE) {
        None => None,
        Some(q) => {
            let q = cbor::int_map(q).ok_or(Malformed("ferro-tpm-quote"))?;
            let field = |k| cbor::get(&q, k).and_then(cbor::as_bytes);
            if q.len() != 3 {
                return Err(Malformed("ferro-tpm-quote"));
            }
            Some(TpmQuote {
                attest: field(1).ok_or(Malformed("quote attest"))?.to_vec(),
                signature: field(2)
                    .and_then(|s| <[u8; 64]>::try_from(s).ok())
                    .ok_or(Malformed("quote signature"))?,
                attestation_key: field(3).ok_or(Malformed("quote key"))?.to_vec(),
            })
        }
    };
    let firmware_pcrs = match get(FIRMWARE) {
        Some(Value::Null) => None,
        Some(Value::Array(items)) if items.len() == FIRMWARE_PCRS.len() => {
            let mut pcrs = [[0u8; 32]; 8];
            for (slot, item) in pcrs.iter_mut().zip(items) {
                *slot = cbor::as_bytes(item)
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or(Malformed("ferro-firmware-pcrs"))?;
            }
            Some(pcrs)
        }
        _ => return Err(Malformed("ferro-firmware-pcrs")),
    };
    let claims = Claims {
        issued_at,
        nonce,
        device_id,
        debug_status,
        measurements,
        root_of_trust,
        tpm_quote,
        firmware_pcrs,
    };
    if encode_claims(&claims).ok().as_deref() != Some(bytes) {
        return Err(Malformed("not the deterministic encoding"));
    }
    Ok(claims)
}

fn check_nonce(nonce: &[u8]) -> Result<(), TrustError> {
    if NONCE_LEN.contains(&nonce.len()) {
        Ok(())
    } else {
        Err(TrustError::InvalidNonce(nonce.len()))
    }
}

/// Create evidence for `nonce` (8..=64 bytes) with the current time as `iat`. See
/// [`create_evidence_at`].
pub fn create_evidence(
    rot: &dyn RootOfTrust,
    nonce: &[u8],
    debug_status: DebugStatus,
) -> Result<Vec<u8>, TrustError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    create_evidence_at(rot, nonce, debug_status, now)
}

/// Create evidence: this boot's measurement log, the device ID, `nonce` and `debug_status`, and
/// (TPM) the firmware PCRs with a quote over them and the Ferrosphere PCR, signed by the device
/// key. The log, the firmware PCRs and the quote are read consistently (re-read until nothing
/// was extended in between).
pub fn create_evidence_at(
    rot: &dyn RootOfTrust,
    nonce: &[u8],
    debug_status: DebugStatus,
    issued_at: u64,
) -> Result<Vec<u8>, TrustError> {
    check_nonce(nonce)?;
    let mut attempt = 0;
    let (log, firmware_pcrs, tpm_quote) = loop {
        let before = (rot.read_measurements()?, rot.firmware_pcrs()?);
        let quote = rot.tpm_quote(nonce)?;
        let after = (rot.read_measurements()?, rot.firmware_pcrs()?);
        attempt += 1;
        if before == after || attempt >= 5 {
            break (after.0.log, after.1, quote);
        }
    };
    let claims = Claims {
        issued_at,
        nonce: nonce.to_vec(),
        device_id: rot.device_id(),
        debug_status,
        measurements: log.entries().iter().map(|e| e.event.clone()).collect(),
        root_of_trust: rot.kind(),
        tpm_quote,
        firmware_pcrs,
    };
    let payload = encode_claims(&claims)?;
    Ok(sign1(
        rot.device_key().as_ref(),
        Purpose::AttestationEvidence,
        &payload,
        &[],
    )?)
}

/// A verified TPM quote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedQuote {
    /// The attestation key that signed the quote (the one registered for the device).
    pub attestation_key: PublicKey,
    /// The parsed quote (clock, reset count, ...).
    pub info: QuoteInfo,
}

/// Evidence whose signature, nonce, device and (TPM) quote verified. Only
/// [`AuthenticatedEvidence::verify`] (the second stage of [`verify_evidence`]) makes one.
/// Appraising the measurements (known OS releases, tenant images) is the caller's job.
#[derive(Clone, Debug)]
pub struct VerifiedEvidence {
    claims: Claims,
    pcr_value: [u8; 32],
    quote: Option<VerifiedQuote>,
}

impl VerifiedEvidence {
    /// The device (equal to the verifying key's device ID).
    pub fn device_id(&self) -> DeviceId {
        self.claims.device_id
    }
    /// Which root of trust made it.
    pub fn root_of_trust(&self) -> RootOfTrustKind {
        self.claims.root_of_trust
    }
    /// The nonce (equal to the expected one).
    pub fn nonce(&self) -> &[u8] {
        &self.claims.nonce
    }
    /// `iat` by the device clock: informational only.
    pub fn issued_at(&self) -> u64 {
        self.claims.issued_at
    }
    /// The debug status the device claims.
    pub fn debug_status(&self) -> DebugStatus {
        self.claims.debug_status
    }
    /// The measurements, in boot order.
    pub fn measurements(&self) -> &[MeasurementEvent] {
        &self.claims.measurements
    }
    /// The register value the log replays to (TPM: equal to the quoted PCR).
    pub fn pcr_value(&self) -> [u8; 32] {
        self.pcr_value
    }
    /// The firmware PCRs 0..=7 as the verified quote covers them (TPM), or `None`: the root of
    /// trust has no firmware measurements (software).
    pub fn firmware_pcrs(&self) -> Option<&FirmwarePcrs> {
        self.claims.firmware_pcrs.as_ref()
    }
    /// The verified quote (TPM only).
    pub fn quote(&self) -> Option<&VerifiedQuote> {
        self.quote.as_ref()
    }
    /// All claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }
}

/// Verify a TPM quote: made by exactly `registered_ak`, the attestation key registered for the
/// device (the quote's own key field must be that key, compared in constant time, and the
/// signature over `TPMS_ATTEST` must verify with it), a quote structure, qualifying data equal
/// to `expected_nonce`, a selection of exactly PCRs 0..=7 and [`FERRO_PCR`] in the SHA-256 bank,
/// and a PCR digest equal to SHA-256 of `firmware_pcrs` followed by `expected_pcr_value`.
pub fn verify_tpm_quote(
    quote: &TpmQuote,
    registered_ak: &PublicKey,
    expected_nonce: &[u8],
    firmware_pcrs: &FirmwarePcrs,
    expected_pcr_value: &[u8; 32],
) -> Result<VerifiedQuote, EvidenceError> {
    let registered = registered_ak.to_spki_der();
    if !bool::from(
        quote
            .attestation_key
            .as_slice()
            .ct_eq(registered.as_slice()),
    ) {
        return Err(EvidenceError::UnknownAttestationKey);
    }
    if !registered_ak.verify_signature(&quote.attest, &quote.signature) {
        return Err(EvidenceError::QuoteSignature);
    }
    let info = tpm_attest::parse_quote(&quote.attest)?;
    if info.extra_data != expected_nonce {
        return Err(EvidenceError::QuoteNonceMismatch);
    }
    if info.pcr_selections != quote_selection() {
        return Err(EvidenceError::QuotePcrSelection);
    }
    let mut quoted = Vec::with_capacity(32 * 9);
    for pcr in firmware_pcrs {
        quoted.extend_from_slice(pcr);
    }
    quoted.extend_from_slice(expected_pcr_value);
    if info.pcr_digest != Sha256::digest(&quoted) {
        // Which half differs cannot be told from one digest: the log may not replay, or the
        // claimed firmware PCRs may not be those the TPM holds.
        return Err(EvidenceError::LogDoesNotReplay);
    }
    Ok(VerifiedQuote {
        attestation_key: registered_ak.clone(),
        info,
    })
}

/// The PCR selection every quote must have: SHA-256 PCRs 0..=7 and [`FERRO_PCR`].
pub fn quote_selection() -> [tpm_attest::PcrSelection; 1] {
    let mut pcrs: Vec<u16> = FIRMWARE_PCRS.map(u16::from).collect();
    pcrs.push(u16::from(FERRO_PCR));
    [tpm_attest::PcrSelection {
        hash: TPM_ALG_SHA256,
        pcrs,
    }]
}

/// Evidence whose COSE_Sign1 verified with the device key and whose (strict) claims sign exactly
/// the expected nonce: the device key's holder answered this challenge. Nothing else is checked
/// yet; [`AuthenticatedEvidence::verify`] does the rest. Only [`authenticate_evidence`] makes
/// one. A verifier may act on a failure of the second stage as the device's own statement (the
/// service records it on the device), which it must not do for a failure of the first.
#[derive(Clone, Debug)]
pub struct AuthenticatedEvidence {
    claims: Claims,
    device_key: PublicKey,
}

impl AuthenticatedEvidence {
    /// The claims (signed by the device key, over the expected nonce; not yet appraised).
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// The second stage of [`verify_evidence`]: the device ID and UEID are those of the device
    /// key, and by root of trust kind: software evidence carries no quote; TPM evidence carries a
    /// quote by exactly `registered_ak` that verifies ([`verify_tpm_quote`]) against the PCR
    /// value the measurement log replays to. TPM evidence with no registered attestation key is
    /// refused ([`EvidenceError::NoRegisteredAttestationKey`]).
    pub fn verify(
        self,
        registered_ak: Option<&PublicKey>,
    ) -> Result<VerifiedEvidence, EvidenceError> {
        let claims = self.claims;
        if claims.device_id != DeviceId::from_public_key(&self.device_key) {
            return Err(EvidenceError::WrongDevice);
        }
        let pcr_value = MeasurementLog::from_events(claims.measurements.iter().cloned()).replay();
        let quote = match (claims.root_of_trust, &claims.tpm_quote) {
            (RootOfTrustKind::Software, None) => {
                if claims.firmware_pcrs.is_some() {
                    return Err(EvidenceError::UnexpectedFirmwarePcrs);
                }
                None
            }
            (RootOfTrustKind::Software, Some(_)) => return Err(EvidenceError::UnexpectedQuote),
            (RootOfTrustKind::Tpm, None) => return Err(EvidenceError::MissingQuote),
            (RootOfTrustKind::Tpm, Some(q)) => {
                let ak = registered_ak.ok_or(EvidenceError::NoRegisteredAttestationKey)?;
                let firmware = claims
                    .firmware_pcrs
                    .as_ref()
                    .ok_or(EvidenceError::MissingFirmwarePcrs)?;
                Some(verify_tpm_quote(
                    q,
                    ak,
                    &claims.nonce,
                    firmware,
                    &pcr_value,
                )?)
            }
        };
        Ok(VerifiedEvidence {
            claims,
            pcr_value,
            quote,
        })
    }
}

/// The first stage of [`verify_evidence`]: size, the COSE_Sign1 (purpose, exactly `device_key`,
/// signature, strict profile), strict deterministic claims, and the nonce equal to
/// `expected_nonce`.
pub fn authenticate_evidence(
    bytes: &[u8],
    device_key: &PublicKey,
    expected_nonce: &[u8],
) -> Result<AuthenticatedEvidence, EvidenceError> {
    if bytes.len() > MAX_EVIDENCE_LEN {
        return Err(EvidenceError::TooLarge);
    }
    let trusted: TrustedKeys = [device_key.clone()].into_iter().collect();
    let verified = verify1(bytes, Purpose::AttestationEvidence, &trusted, &[])?;
    let claims = decode_claims(verified.payload())?;
    if !bool::from(claims.nonce.as_slice().ct_eq(expected_nonce)) {
        return Err(EvidenceError::NonceMismatch);
    }
    Ok(AuthenticatedEvidence {
        claims,
        device_key: device_key.clone(),
    })
}

/// Verify evidence from the device whose key is `device_key` and whose registered TPM
/// attestation key (if any) is `registered_ak`, for the challenge `expected_nonce`:
/// [`authenticate_evidence`] (COSE_Sign1, strict claims, nonce), then
/// [`AuthenticatedEvidence::verify`] (device ID and UEID; software evidence carries no quote;
/// TPM evidence carries a quote by exactly `registered_ak` that verifies against the PCR value
/// the measurement log replays to; no registered attestation key means no TPM evidence passes).
pub fn verify_evidence(
    bytes: &[u8],
    device_key: &PublicKey,
    registered_ak: Option<&PublicKey>,
    expected_nonce: &[u8],
) -> Result<VerifiedEvidence, EvidenceError> {
    authenticate_evidence(bytes, device_key, expected_nonce)?.verify(registered_ak)
}
