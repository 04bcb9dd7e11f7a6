//! `ferro-trust` owns the device's root of trust: the [`RootOfTrust`] trait (a non-exportable
//! device key, measurements into a PCR-like register with a replayable [`MeasurementLog`],
//! anti-rollback counters that only go up, write-once trust anchors, random bytes and platform
//! attestation), its backends, and attestation evidence: creating it on the device and verifying
//! it on the service ([`evidence`]).
//!
//! Backends:
//! - [`SoftwareRootOfTrust`]: files in the device's data directory, for virtual devices and
//!   development. It protects against accidents and casual edits, **not** against anyone who can
//!   read or write those files (see its docs and `docs/trust.md`).
//! - `TpmRootOfTrust` (cargo feature `tpm`): a TPM 2.0 through tss-esapi 7.x; the device key
//!   never leaves the TPM, measurements go into PCR [`FERRO_PCR`], counters are NV counter
//!   indices and the trust anchors a write-once NV index.
//!
//! Rules: this crate depends on nothing of the service and has no HTTP; it is the only crate that
//! links the TPM stack, and only with the `tpm` feature. Everything a verifier needs
//! ([`evidence::verify_evidence`], the bounded `TPMS_ATTEST` parser in [`tpm_attest`]) is pure
//! Rust and available without that feature, so the service verifies TPM quotes without libtss2.
//! `unsafe` stays forbidden: tss-esapi needs none from us.

mod anchors;
mod error;
pub mod evidence;
mod measurement;
mod software;
#[cfg(feature = "tpm")]
mod tpm;
pub mod tpm_attest;

use std::sync::Arc;

use ferro_signing::{DeviceId, PublicKey, Signer};

pub use anchors::{MAX_ANCHORS_LEN, TrustAnchors};
pub use error::TrustError;
pub use measurement::{
    LogEntry, MAX_LOG_ENTRIES, MeasurementEvent, MeasurementLog, Measurements, extend_pcr,
};
pub use software::SoftwareRootOfTrust;
#[cfg(feature = "tpm")]
pub use tpm::{TpmConfig, TpmRootOfTrust, power_cycle_virtual_tpm};

/// The PCR that holds Ferrosphere's measurements in TPM mode: PCR 15, the last of the PCRs the TCG
/// PC Client profile leaves to the operating system (8..=15), not resettable and not debug (16);
/// PCRs 8..=14 are used by GRUB, shim, IMA and systemd-stub on common Linux boot chains.
/// Anything else that extends PCR 15 makes replay fail, which the verifier reports.
pub const FERRO_PCR: u8 = 15;

/// The PCRs that measured boot firmware extends before any OS runs (TCG PC Client: 0 firmware
/// code, 1 its configuration, 2 option ROMs, 3 their configuration, 4 the boot loader, 5 its
/// configuration and the GPT, 6 platform-specific, 7 Secure Boot policy). A TPM quote covers
/// them with [`FERRO_PCR`], so the service can compare them with its reference values
/// (docs/trust.md, "What a quote proves").
pub const FIRMWARE_PCRS: std::ops::RangeInclusive<u8> = 0..=7;

/// The SHA-256 values of PCRs 0..=7 ([`FIRMWARE_PCRS`]), in PCR order.
pub type FirmwarePcrs = [[u8; 32]; 8];

/// The most bytes [`RootOfTrust::random`] returns in one call.
pub const MAX_RANDOM_LEN: usize = 4096;

/// Which kind of root of trust a device has (the numbers are those of registration records).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RootOfTrustKind {
    /// [`SoftwareRootOfTrust`]: files on the device.
    Software,
    /// A TPM 2.0.
    Tpm,
}

impl RootOfTrustKind {
    /// The wire number: 1 software, 2 TPM.
    pub const fn code(self) -> u64 {
        match self {
            RootOfTrustKind::Software => 1,
            RootOfTrustKind::Tpm => 2,
        }
    }

    /// The kind with this wire number.
    pub const fn from_code(code: u64) -> Option<RootOfTrustKind> {
        match code {
            1 => Some(RootOfTrustKind::Software),
            2 => Some(RootOfTrustKind::Tpm),
            _ => None,
        }
    }
}

/// A TPM2_Quote over [`FIRMWARE_PCRS`] and [`FERRO_PCR`] as the device produced it (the verifier's input is inside the
/// evidence, see [`evidence`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TpmQuote {
    /// The marshalled `TPMS_ATTEST` the TPM signed.
    pub attest: Vec<u8>,
    /// The attestation key's ECDSA P-256 / SHA-256 signature over `attest`, `r || s`.
    pub signature: [u8; 64],
    /// The attestation key (restricted signing key in the TPM), DER SubjectPublicKeyInfo. Only
    /// informative: the verifier checks the quote with the attestation key registered for the
    /// device and refuses any other.
    pub attestation_key: Vec<u8>,
}

/// What a root of trust does. Every method takes `&self`; implementations lock internally, so one
/// instance can be shared (`Arc<dyn RootOfTrust>`) by the device's tasks.
pub trait RootOfTrust: Send + Sync + std::fmt::Debug {
    /// Which backend this is.
    fn kind(&self) -> RootOfTrustKind;

    /// The device key (ECDSA P-256): signs without ever exporting the private key from the root
    /// of trust (for the software backend, "the root of trust" is the key file).
    fn device_key(&self) -> Arc<dyn Signer + Send + Sync>;

    /// The device's public key.
    fn public_key(&self) -> PublicKey {
        self.device_key().public_key().clone()
    }

    /// The device ID: SHA-512 of the device public key's SubjectPublicKeyInfo.
    fn device_id(&self) -> DeviceId {
        DeviceId::from_public_key(&self.public_key())
    }

    /// Append `event` to this boot's measurement log and extend its entry digest into the
    /// measurement register. Returns the new log entry.
    fn extend_measurement(&self, event: &MeasurementEvent) -> Result<LogEntry, TrustError>;

    /// The register's current value and this boot's log. A log that does not replay to the value
    /// means something measured outside the log (the verifier refuses it).
    fn read_measurements(&self) -> Result<Measurements, TrustError>;

    /// The anti-rollback counter `name` (0 if it was never advanced). Names are 1..=32 characters
    /// of `a-z`, `0-9`, `.`, `_`, `-`.
    fn counter(&self, name: &str) -> Result<u64, TrustError>;

    /// Raise counter `name` to `to`. Equal is a no-op; lower is refused with
    /// [`TrustError::CounterRollback`] and changes nothing.
    fn advance_counter(&self, name: &str, to: u64) -> Result<(), TrustError>;

    /// Write the trust anchors. Only once: a second write is refused with
    /// [`TrustError::AnchorsAlreadyWritten`], even with identical content.
    fn write_trust_anchors(&self, anchors: &TrustAnchors) -> Result<(), TrustError>;

    /// The trust anchors, or `None` before provisioning wrote them. Tampering is an error.
    fn read_trust_anchors(&self) -> Result<Option<TrustAnchors>, TrustError>;

    /// `n` random bytes (at most [`MAX_RANDOM_LEN`]) from the root of trust's generator.
    fn random(&self, n: usize) -> Result<Vec<u8>, TrustError>;

    /// The attestation key that signs this root of trust's platform quotes (a TPM's restricted
    /// signing key, the same key at every open), or `None` for roots of trust without quotes
    /// (software). Provisioning records it in the registration record, and the service accepts
    /// only quotes signed by the key recorded there.
    fn attestation_key(&self) -> Option<PublicKey> {
        None
    }

    /// The TPM's endorsement key certificate (DER, as its manufacturer stored it in NV), if it
    /// has one; `None` for a TPM without one and for roots of trust that are not TPMs.
    /// Provisioning puts it in the registration record for the service to check later.
    fn ek_certificate(&self) -> Result<Option<Vec<u8>>, TrustError> {
        Ok(None)
    }

    /// A platform quote over the firmware PCRs and the measurement register with `nonce` as
    /// qualifying data: `Some` for a TPM (TPM2_Quote over SHA-256 PCRs 0..=7 and
    /// [`FERRO_PCR`]), `None` for roots of trust that have no platform quote (software).
    fn tpm_quote(&self, nonce: &[u8]) -> Result<Option<TpmQuote>, TrustError> {
        let _ = nonce;
        Ok(None)
    }

    /// The values of the firmware PCRs ([`FIRMWARE_PCRS`], SHA-256 bank) as the platform's
    /// measured boot left them: `Some` for a TPM (a TPM always has them; all zero where no
    /// firmware extended them, as on a bare swtpm), `None` for roots of trust without firmware
    /// measurements (software), which the evidence states explicitly.
    fn firmware_pcrs(&self) -> Result<Option<FirmwarePcrs>, TrustError> {
        Ok(None)
    }
}

pub(crate) fn check_counter_name(name: &str) -> Result<(), TrustError> {
    let ok = (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(TrustError::InvalidCounterName(
            name.chars().take(40).collect(),
        ))
    }
}
