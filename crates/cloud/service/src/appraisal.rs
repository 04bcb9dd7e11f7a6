//! Attestation appraisal (docs/attestation.md): every decision the service makes on a device's
//! evidence, each failure a stable reason code, as plain functions of what the evidence says and
//! what the service knows (no HTTP, no database). One evidence request, in order:
//!
//! 1. the nonce: ours, for this device, fresh (`crate::nonce`; its refusal is [`nonce_reason`]);
//! 2. [`admit`]: on the device's stored row, registered, nonce not answered yet, evidence signed
//!    by the device key over the nonce (else answered, never recorded), root of trust and TPM
//!    quote (stage 2), claimed;
//! 3. [`decide`]: stage 2's failure, the tenant's block, and for verified evidence [`appraise`]:
//!    the measurements against the accepted OS releases and the tenant's images, debugging, and
//!    [`appraise_firmware`]: the quoted firmware PCRs against the product's reference values;
//! 4. [`issuing_ca`]: a Trusted device's certificate needs a current tenant CA.
//!
//! The route (`routes::attestation`) reads what each step needs from the datastore
//! (`datastore::attestation`), issues the certificate and records the verdict.

use std::collections::HashMap;

use ferro_pki::TenantCa;
use ferro_trust::evidence::{DebugStatus, EvidenceError, VerifiedEvidence};
use ferro_trust::{FirmwarePcrs, MeasurementEvent};
use ferro_wire::{AttestationReason, FirmwareAppraisal, OsFeed, RootOfTrustKind};
use time::OffsetDateTime;
use uuid::Uuid;

pub use crate::datastore::attestation::{ClaimedDevice, EvidenceRow, KnownImage, KnownOsRelease};
use crate::nonce::NonceError;

/// Reason codes (stable; adding one is compatible).
pub mod codes {
    /// No registration record for the device ID.
    pub const UNREGISTERED: &str = "unregistered";
    /// Registered but claimed by no tenant.
    pub const UNCLAIMED: &str = "unclaimed";
    /// The tenant blocked the device.
    pub const BLOCKED: &str = "blocked";
    /// The nonce was never issued for this device (or was purged long after expiry).
    pub const NONCE_UNKNOWN: &str = "nonce_unknown";
    /// The nonce's life ended before the evidence arrived.
    pub const NONCE_EXPIRED: &str = "nonce_expired";
    /// The nonce was already used.
    pub const NONCE_REPLAYED: &str = "nonce_replayed";
    /// The evidence signs another nonce than the one submitted with it.
    pub const NONCE_MISMATCH: &str = "nonce_mismatch";
    /// The evidence is not signed by the registered device key (or is malformed).
    pub const BAD_SIGNATURE: &str = "bad_signature";
    /// The evidence names another device than its signing key.
    pub const WRONG_DEVICE: &str = "wrong_device";
    /// TPM: the quote is missing, unsigned, for another nonce, or the log does not replay to it.
    pub const QUOTE_MISMATCH: &str = "quote_mismatch";
    /// TPM: the quote is not signed by the attestation key of the device's registration record,
    /// or the record has none (a TPM device registered before record format version 2).
    pub const UNKNOWN_ATTESTATION_KEY: &str = "unknown_attestation_key";
    /// A measurement is neither a published OS release nor an image of the device's tenant.
    pub const UNKNOWN_MEASUREMENT: &str = "unknown_measurement";
    /// An image unknown to the tenant (test-signed) on a device without AppDevelopment.
    pub const TEST_SIGNED_WITHOUT_CAPABILITY: &str = "test_signed_without_capability";
    /// The tenant has no valid CA to issue the certificate with.
    pub const NO_TENANT_CA: &str = "no_tenant_ca";
    /// The measurement log has no OS measurement (empty, or apps only): nothing says which OS
    /// runs.
    pub const OS_MEASUREMENT_MISSING: &str = "os_measurement_missing";
    /// The OS measurement is not the log's first entry (something was measured before the OS,
    /// which ferro-boot never does).
    pub const OS_NOT_FIRST: &str = "os_not_first";
    /// The log has more than one OS measurement (ferro-boot measures exactly one per boot).
    pub const MULTIPLE_OS_MEASUREMENTS: &str = "multiple_os_measurements";
    /// The OS release is published, but not in the OS feed of the device's group (a RetailEval
    /// release on a Retail device).
    pub const OS_RELEASE_NOT_IN_FEED: &str = "os_release_not_in_feed";
    /// The OS release was revoked by the platform operator.
    pub const OS_RELEASE_REVOKED: &str = "os_release_revoked";
    /// The OS release's security version is below the minimum of the device's feed.
    pub const OS_BELOW_MINIMUM_SECURITY_VERSION: &str = "os_below_minimum_security_version";
    /// The evidence says debugging is enabled, and the device holds no AppDevelopment
    /// capability (the capability that allows debugging).
    pub const DEBUG_WITHOUT_CAPABILITY: &str = "debug_without_capability";
    /// The quoted firmware PCRs 0-7 are none of the reference values registered for the
    /// device's product (other firmware or boot loader than the registered ones).
    pub const FIRMWARE_NOT_IN_REFERENCE_SET: &str = "firmware_not_in_reference_set";
    /// Reference values apply (registered for the product, or required by the operator) but the
    /// evidence has no firmware measurements (a software root of trust).
    pub const FIRMWARE_MEASUREMENTS_MISSING: &str = "firmware_measurements_missing";
    /// The operator requires firmware reference values and the device's product has none (or
    /// the device is in no device group).
    pub const NO_FIRMWARE_REFERENCE_VALUES: &str = "no_firmware_reference_values";
}

/// A reason with its message.
pub fn reason(code: &str, message: impl Into<String>) -> AttestationReason {
    AttestationReason {
        code: code.to_string(),
        message: message.into(),
    }
}

/// The reason for evidence that did not verify.
pub fn evidence_reason(e: &EvidenceError) -> AttestationReason {
    use EvidenceError as E;
    let code = match e {
        E::TooLarge | E::Envelope(_) | E::Malformed(_) => codes::BAD_SIGNATURE,
        E::NonceMismatch => codes::NONCE_MISMATCH,
        E::WrongDevice => codes::WRONG_DEVICE,
        E::UnknownAttestationKey | E::NoRegisteredAttestationKey => codes::UNKNOWN_ATTESTATION_KEY,
        _ => codes::QUOTE_MISMATCH,
    };
    reason(code, format!("{} ({})", e, e.code()))
}

/// Everything [`appraise`] needs besides the evidence: the facts the service holds about the
/// device and the images it measured.
#[derive(Clone, Debug)]
pub struct Facts {
    /// The OS feed the device follows: its group's, `Retail` for a device in no group (as its
    /// target sets, `crate::targets`).
    pub feed: OsFeed,
    /// The feed's minimum security version (0 when none is set).
    pub feed_minimum_security_version: u32,
    /// The published OS releases among the measured OS image IDs.
    pub os_releases: HashMap<Uuid, KnownOsRelease>,
    /// The device's tenant's images among the measured app image IDs.
    pub tenant_images: HashMap<Uuid, KnownImage>,
    /// The device holds a current (not revoked) AppDevelopment capability of its tenant.
    pub app_development: bool,
    /// What its firmware is compared with.
    pub firmware: FirmwareFacts,
}

/// What a device's firmware PCRs are appraised against.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FirmwareFacts {
    /// The reference values registered for the device's product (empty: none, or the device is
    /// in no device group).
    pub references: Vec<FirmwarePcrs>,
    /// The operator requires reference values (`require_firmware_reference_values`).
    pub required: bool,
    /// The device is in a device group, so it has a product to register values for.
    pub in_product: bool,
}

/// What TCG PC Client measured boot puts in each firmware PCR (for messages).
const FIRMWARE_PCR_NAMES: [&str; 8] = [
    "firmware code",
    "firmware configuration",
    "option ROM code",
    "option ROM configuration",
    "boot loader",
    "boot loader configuration and GPT",
    "platform-specific",
    "Secure Boot policy",
];

/// Appraise stage 0: the firmware PCRs 0-7 of verified evidence (`None`: it has none, a
/// software root of trust) against `facts` (docs/attestation.md, "Firmware appraisal"):
///
/// - no reference values for the product and none required: [`FirmwareAppraisal::NotAppraised`]
///   (the verdict rests on the OS and apps; recorded so that nobody mistakes it for more);
/// - none registered but required: [`codes::NO_FIRMWARE_REFERENCE_VALUES`];
/// - reference values apply but the evidence has no firmware measurements:
///   [`codes::FIRMWARE_MEASUREMENTS_MISSING`];
/// - the PCRs equal one reference value: [`FirmwareAppraisal::Matched`]; else
///   [`codes::FIRMWARE_NOT_IN_REFERENCE_SET`], naming the PCRs in which the closest reference
///   value differs.
pub fn appraise_firmware(
    firmware: Option<&FirmwarePcrs>,
    facts: &FirmwareFacts,
) -> (FirmwareAppraisal, Option<AttestationReason>) {
    if facts.references.is_empty() {
        if !facts.required {
            return (FirmwareAppraisal::NotAppraised, None);
        }
        let why = if facts.in_product {
            "the platform requires firmware reference values and none are registered for the \
             device's product (`ferro product firmware-reference add`)"
        } else {
            "the platform requires firmware reference values and the device is in no device \
             group, so no product's values apply"
        };
        return (
            FirmwareAppraisal::Refused,
            Some(reason(codes::NO_FIRMWARE_REFERENCE_VALUES, why)),
        );
    }
    let Some(pcrs) = firmware else {
        return (
            FirmwareAppraisal::Refused,
            Some(reason(
                codes::FIRMWARE_MEASUREMENTS_MISSING,
                "the evidence has no firmware measurements (a software root of trust has no \
                 measured boot) but firmware reference values apply to this device",
            )),
        );
    };
    if facts.references.iter().any(|r| r == pcrs) {
        return (FirmwareAppraisal::Matched, None);
    }
    let differing =
        |r: &FirmwarePcrs| -> Vec<usize> { (0..8).filter(|&i| r[i] != pcrs[i]).collect() };
    let closest = facts
        .references
        .iter()
        .map(differing)
        .min_by_key(Vec::len)
        .unwrap_or_default();
    let named: Vec<String> = closest
        .iter()
        .map(|&i| format!("PCR {i} ({})", FIRMWARE_PCR_NAMES[i]))
        .collect();
    (
        FirmwareAppraisal::Refused,
        Some(reason(
            codes::FIRMWARE_NOT_IN_REFERENCE_SET,
            format!(
                "the firmware PCRs are none of the {} reference values registered for the \
                 device's product; the closest differs in {}",
                facts.references.len(),
                named.join(", ")
            ),
        )),
    )
}

/// The appraisal's verdict on verified evidence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Everything measured is known and acceptable.
    Trusted,
    /// Why not (at least one reason).
    Untrusted(Vec<AttestationReason>),
}

impl Verdict {
    /// The reasons (empty when Trusted).
    pub fn into_reasons(self) -> Vec<AttestationReason> {
        match self {
            Verdict::Trusted => Vec::new(),
            Verdict::Untrusted(reasons) => reasons,
        }
    }
}

/// Appraise verified evidence: its measurement log (in log order) and debug status, against
/// `facts`. The rules (docs/attestation.md, "Appraisal"):
///
/// - exactly one OS measurement, and it is the first entry (ferro-boot measures the OS bundle
///   before anything runs on it);
/// - that OS is a published release with the measured digest, not revoked, in the device's feed
///   and at or above the feed's minimum security version;
/// - every other measurement is an image of the device's tenant with the measured digest and
///   component, or (test-signed, sideloaded) the device holds AppDevelopment;
/// - debugging enabled (`dbgstat` 0) only with AppDevelopment.
pub fn appraise(measurements: &[MeasurementEvent], debug: DebugStatus, facts: &Facts) -> Verdict {
    let mut out = Vec::new();
    let is_os = |m: &MeasurementEvent| m.component_id == ferro_image::OS_COMPONENT_ID;
    let os_count = measurements.iter().filter(|m| is_os(m)).count();
    match measurements.first() {
        None => out.push(reason(
            codes::OS_MEASUREMENT_MISSING,
            "the measurement log is empty: the device did not boot its OS through ferro-boot",
        )),
        Some(_) if os_count == 0 => out.push(reason(
            codes::OS_MEASUREMENT_MISSING,
            "the measurement log has no OS measurement: the device did not boot its OS through \
             ferro-boot",
        )),
        Some(first) if !is_os(first) => out.push(reason(
            codes::OS_NOT_FIRST,
            "the first measurement is not the OS: something was measured before the OS",
        )),
        Some(_) => {}
    }
    if os_count > 1 {
        out.push(reason(
            codes::MULTIPLE_OS_MEASUREMENTS,
            format!("the measurement log has {os_count} OS measurements; a boot has exactly one"),
        ));
    }
    for (i, m) in measurements.iter().enumerate() {
        let digest = hex::encode(m.digest);
        if is_os(m) {
            out.extend(appraise_os(i, m, &digest, facts));
            continue;
        }
        match facts.tenant_images.get(&m.image_id) {
            Some(known)
                if known.payload_sha256 != digest || known.component_id != m.component_id =>
            {
                out.push(reason(
                    codes::UNKNOWN_MEASUREMENT,
                    format!(
                        "measurement {i}: image {} is known, but not with digest {digest} for \
                         component {} (tampered or corrupted image)",
                        m.image_id, m.component_id
                    ),
                ));
            }
            Some(_) => {}
            None if !facts.app_development => out.push(reason(
                codes::TEST_SIGNED_WITHOUT_CAPABILITY,
                format!(
                    "measurement {i}: image {} is not an image of this tenant (test-signed?) and \
                     the device holds no AppDevelopment capability",
                    m.image_id
                ),
            )),
            None => {}
        }
    }
    if debug == DebugStatus::Enabled && !facts.app_development {
        out.push(reason(
            codes::DEBUG_WITHOUT_CAPABILITY,
            "the device reports debugging enabled and holds no AppDevelopment capability; \
             apply one (`ferro device enable-development`) or disable debugging",
        ));
    }
    if out.is_empty() {
        Verdict::Trusted
    } else {
        Verdict::Untrusted(out)
    }
}

/// The checks of one OS measurement.
fn appraise_os(
    i: usize,
    m: &MeasurementEvent,
    digest: &str,
    facts: &Facts,
) -> Option<AttestationReason> {
    let Some(release) = facts.os_releases.get(&m.image_id) else {
        return Some(reason(
            codes::UNKNOWN_MEASUREMENT,
            format!(
                "measurement {i}: OS image {} is no published OS release",
                m.image_id
            ),
        ));
    };
    if release.payload_sha256 != digest {
        return Some(reason(
            codes::UNKNOWN_MEASUREMENT,
            format!(
                "measurement {i}: OS release {} is known, but not with digest {digest} (tampered \
                 or corrupted OS)",
                m.image_id
            ),
        ));
    }
    if release.revoked {
        return Some(reason(
            codes::OS_RELEASE_REVOKED,
            format!(
                "measurement {i}: OS release {} ({}) was revoked; the device must update its OS",
                m.image_id, m.version
            ),
        ));
    }
    if facts.feed == OsFeed::Retail && !release.in_retail {
        return Some(reason(
            codes::OS_RELEASE_NOT_IN_FEED,
            format!(
                "measurement {i}: OS release {} ({}) is not in the Retail feed the device's group \
                 follows (RetailEval only)",
                m.image_id, m.version
            ),
        ));
    }
    if release.security_version < facts.feed_minimum_security_version {
        return Some(reason(
            codes::OS_BELOW_MINIMUM_SECURITY_VERSION,
            format!(
                "measurement {i}: OS release {} ({}) has security version {}, below the {} feed's \
                 minimum {}; the device must update its OS",
                m.image_id,
                m.version,
                release.security_version,
                facts.feed.as_str(),
                facts.feed_minimum_security_version
            ),
        ));
    }
    None
}

// ---------------------------------------------------------------------------------------------
// The decisions on one evidence request, in order (the route gathers what each needs)

/// The reason for a nonce that is not ours, not this device's, or not fresh.
pub fn nonce_reason(e: NonceError) -> AttestationReason {
    match e {
        NonceError::Unknown => reason(
            codes::NONCE_UNKNOWN,
            "this nonce was not issued for this device; ask for a new challenge",
        ),
        NonceError::Expired => reason(
            codes::NONCE_EXPIRED,
            "this nonce expired; ask for a new challenge and answer it promptly",
        ),
        NonceError::FromTheFuture => reason(
            codes::NONCE_UNKNOWN,
            "this nonce was issued in the future (the service clocks are out of step); ask for \
             a new challenge",
        ),
    }
}

/// The reason for a nonce the device's key already answered (or an older one than it did).
pub fn replayed() -> AttestationReason {
    reason(
        codes::NONCE_REPLAYED,
        "this nonce was already used, or a newer challenge was answered since; a nonce answers \
         one attestation: ask for a new challenge",
    )
}

/// The first decision on evidence over a nonce of ours (issued at `issued_us` for this device),
/// made on the device's stored row before anything else is read.
#[derive(Debug)]
// Made once per evidence request and destructured at once: boxing the evidence buys nothing.
#[allow(clippy::large_enum_variant)]
pub enum Admission<'a> {
    /// Answer `Untrusted` with these reasons and record nothing on the device: nobody proved to
    /// hold the device key (so a stranger cannot overwrite a device's status or spend its
    /// nonce), or there is no device record to write to (unregistered, unclaimed).
    Refuse(Vec<AttestationReason>),
    /// The device key answered this fresh challenge for a claimed device: appraise, and record
    /// the verdict. `verified` is the second stage (device ID, root of trust, TPM quote); its
    /// failure is the device's own statement, recorded like any verdict.
    Appraise {
        /// The device's claim (tenant, group's feed, block).
        device: &'a ClaimedDevice,
        /// The verified evidence, or why it did not verify.
        verified: Result<VerifiedEvidence, AttestationReason>,
    },
}

/// Admit `evidence` answering `nonce` (issued at `issued_us`) from the device of `row` (`None`:
/// no registration record): docs/attestation.md, "Verification" and "What is recorded".
pub fn admit<'a>(
    row: Option<&'a EvidenceRow>,
    issued_us: u64,
    nonce: &[u8],
    evidence: &[u8],
) -> Admission<'a> {
    let Some(row) = row else {
        // Nothing to record a verdict on (and nothing to consume: an unregistered device's
        // nonce gets this same answer however often it is replayed).
        return Admission::Refuse(vec![reason(
            codes::UNREGISTERED,
            "no registration record for this device ID",
        )]);
    };
    // Cheap refusal of an answered nonce (the recording write re-checks atomically).
    if row.nonce_floor.is_some_and(|floor| floor >= issued_us) {
        return Admission::Refuse(vec![replayed()]);
    }
    // Stage 1: the device key signed these claims over this nonce. A failure proves nothing
    // about who sent the request: answered, never recorded, the nonce not spent.
    let authenticated =
        match ferro_trust::evidence::authenticate_evidence(evidence, &row.device_key, nonce) {
            Ok(a) => a,
            Err(e) => return Admission::Refuse(vec![evidence_reason(&e)]),
        };
    // Stage 2: the holder of the device key answered this challenge.
    let verified = same_root_of_trust(authenticated.claims().root_of_trust, row.root_of_trust)
        .and_then(|()| {
            authenticated
                .verify(row.attestation_key.as_ref())
                .map_err(|e| evidence_reason(&e))
        });
    match &row.claimed {
        Some(device) => Admission::Appraise { device, verified },
        None => {
            // No device record to write to: answer only.
            let mut reasons: Vec<_> = verified.err().into_iter().collect();
            reasons.push(reason(
                codes::UNCLAIMED,
                "the device is registered but no tenant has claimed it",
            ));
            Admission::Refuse(reasons)
        }
    }
}

/// A device registered with a TPM must prove itself with a TPM quote: software-type evidence
/// (signed by a device key a compromised OS can use) would be a downgrade. And the other way
/// round: a software device has no TPM to quote with.
fn same_root_of_trust(
    evidence: ferro_trust::RootOfTrustKind,
    registered: RootOfTrustKind,
) -> Result<(), AttestationReason> {
    let evidence = match evidence {
        ferro_trust::RootOfTrustKind::Software => RootOfTrustKind::Software,
        ferro_trust::RootOfTrustKind::Tpm => RootOfTrustKind::Tpm,
    };
    if registered == evidence {
        Ok(())
    } else {
        Err(reason(
            codes::QUOTE_MISMATCH,
            format!(
                "the device was registered with a {registered} root of trust but sent {evidence} \
                 evidence"
            ),
        ))
    }
}

/// The measured images the appraisal must know about: (OS image IDs, app image IDs).
pub fn measured_images(verified: &VerifiedEvidence) -> (Vec<Uuid>, Vec<Uuid>) {
    let (os, apps): (Vec<_>, Vec<_>) = verified
        .measurements()
        .iter()
        .partition(|m| m.component_id == ferro_image::OS_COMPONENT_ID);
    (
        os.iter().map(|m| m.image_id).collect(),
        apps.iter().map(|m| m.image_id).collect(),
    )
}

/// Whether the appraisal depends on the device holding AppDevelopment: debugging is enabled, or
/// an app is not an image of the tenant (so the service reads it only then).
pub fn needs_app_development(
    verified: &VerifiedEvidence,
    tenant_images: &HashMap<Uuid, KnownImage>,
) -> bool {
    verified.debug_status() == DebugStatus::Enabled
        || verified.measurements().iter().any(|m| {
            m.component_id != ferro_image::OS_COMPONENT_ID
                && !tenant_images.contains_key(&m.image_id)
        })
}

/// The facts of a claimed device's appraisal: its group's feed (`Retail` for a device in no
/// group, as its target sets, `crate::targets`) with the feed's minimum security version (0 when
/// none is set), and what the service knows of what it measured.
pub fn facts(
    device: &ClaimedDevice,
    os_releases: HashMap<Uuid, KnownOsRelease>,
    tenant_images: HashMap<Uuid, KnownImage>,
    app_development: bool,
    firmware: FirmwareFacts,
) -> Facts {
    Facts {
        feed: device.os_feed.unwrap_or(OsFeed::Retail),
        feed_minimum_security_version: device.feed_minimum_security_version.unwrap_or(0),
        os_releases,
        tenant_images,
        app_development,
        firmware,
    }
}

/// The verdict on an admitted device, before a certificate: the second stage's failure, the
/// tenant's block, and for verified evidence the measurement rules ([`appraise`]) and the
/// firmware's ([`appraise_firmware`]) over `facts`, in that order.
pub fn decide(
    verified: &Result<VerifiedEvidence, AttestationReason>,
    facts: Option<&Facts>,
    blocked: bool,
) -> Verdict {
    let mut reasons = Vec::new();
    if let Err(r) = verified {
        reasons.push(r.clone());
    }
    if blocked {
        reasons.push(reason(codes::BLOCKED, "the tenant blocked this device"));
    }
    if let Ok(v) = verified {
        match facts {
            Some(facts) => {
                reasons.extend(appraise(v.measurements(), v.debug_status(), facts).into_reasons());
                reasons.extend(appraise_firmware(v.firmware_pcrs(), &facts.firmware).1);
            }
            // Verified evidence is never trusted without its appraisal.
            None => reasons.push(reason(
                codes::UNKNOWN_MEASUREMENT,
                "the measurements could not be appraised",
            )),
        }
    }
    if reasons.is_empty() {
        Verdict::Trusted
    } else {
        Verdict::Untrusted(reasons)
    }
}

/// The tenant CA a Trusted device's certificate is issued by at `now`, or the reason there is
/// none (the verdict then is Untrusted).
pub fn issuing_ca(cas: &[TenantCa], now: OffsetDateTime) -> Result<&TenantCa, AttestationReason> {
    ferro_pki::current_tenant_ca(cas, now).ok_or_else(|| {
        reason(
            codes::NO_TENANT_CA,
            "the tenant has no valid CA certificate",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OS_DIGEST: [u8; 32] = [7; 32];
    const APP_DIGEST: [u8; 32] = [9; 32];

    fn os_event(image_id: Uuid) -> MeasurementEvent {
        MeasurementEvent {
            component_id: ferro_image::OS_COMPONENT_ID,
            image_id,
            version: "1.0.0".into(),
            digest: OS_DIGEST,
        }
    }

    fn app_event(component_id: Uuid, image_id: Uuid) -> MeasurementEvent {
        MeasurementEvent {
            component_id,
            image_id,
            version: "1.0.0".into(),
            digest: APP_DIGEST,
        }
    }

    struct World {
        os: Uuid,
        app_component: Uuid,
        app: Uuid,
        facts: Facts,
    }

    /// A Retail device whose OS release (Retail, security version 3) and app are known.
    fn world() -> World {
        let (os, app_component, app) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let facts = Facts {
            feed: OsFeed::Retail,
            feed_minimum_security_version: 0,
            os_releases: HashMap::from([(
                os,
                KnownOsRelease {
                    payload_sha256: hex::encode(OS_DIGEST),
                    security_version: 3,
                    in_retail: true,
                    revoked: false,
                },
            )]),
            tenant_images: HashMap::from([(
                app,
                KnownImage {
                    payload_sha256: hex::encode(APP_DIGEST),
                    component_id: app_component,
                },
            )]),
            app_development: false,
            firmware: FirmwareFacts::default(),
        };
        World {
            os,
            app_component,
            app,
            facts,
        }
    }

    fn codes_of(v: Verdict) -> Vec<String> {
        v.into_reasons().into_iter().map(|r| r.code).collect()
    }

    #[test]
    fn os_then_app_is_trusted() {
        let w = world();
        let log = [os_event(w.os), app_event(w.app_component, w.app)];
        assert_eq!(
            appraise(&log, DebugStatus::Disabled, &w.facts),
            Verdict::Trusted
        );
        assert_eq!(
            appraise(&log[..1], DebugStatus::DisabledPermanently, &w.facts),
            Verdict::Trusted
        );
    }

    #[test]
    fn empty_or_app_only_logs_are_untrusted() {
        let w = world();
        assert_eq!(
            codes_of(appraise(&[], DebugStatus::Disabled, &w.facts)),
            [codes::OS_MEASUREMENT_MISSING]
        );
        let apps = [app_event(w.app_component, w.app)];
        assert_eq!(
            codes_of(appraise(&apps, DebugStatus::Disabled, &w.facts)),
            [codes::OS_MEASUREMENT_MISSING]
        );
    }

    #[test]
    fn the_os_must_come_first_and_once() {
        let w = world();
        let late = [app_event(w.app_component, w.app), os_event(w.os)];
        assert_eq!(
            codes_of(appraise(&late, DebugStatus::Disabled, &w.facts)),
            [codes::OS_NOT_FIRST]
        );
        let twice = [os_event(w.os), os_event(w.os)];
        assert_eq!(
            codes_of(appraise(&twice, DebugStatus::Disabled, &w.facts)),
            [codes::MULTIPLE_OS_MEASUREMENTS]
        );
    }

    #[test]
    fn os_release_must_be_known_live_in_feed_and_recent_enough() {
        let w = world();
        let log = [os_event(w.os)];
        let with = |f: &dyn Fn(&mut Facts)| {
            let mut facts = w.facts.clone();
            f(&mut facts);
            codes_of(appraise(&log, DebugStatus::Disabled, &facts))
        };
        assert_eq!(
            with(&|f| f.os_releases.clear()),
            [codes::UNKNOWN_MEASUREMENT]
        );
        assert_eq!(
            with(&|f| f.os_releases.get_mut(&w.os).unwrap().payload_sha256 = "00".repeat(32)),
            [codes::UNKNOWN_MEASUREMENT]
        );
        assert_eq!(
            with(&|f| f.os_releases.get_mut(&w.os).unwrap().revoked = true),
            [codes::OS_RELEASE_REVOKED]
        );
        assert_eq!(
            with(&|f| f.os_releases.get_mut(&w.os).unwrap().in_retail = false),
            [codes::OS_RELEASE_NOT_IN_FEED]
        );
        // A RetailEval device takes RetailEval-only releases.
        assert!(
            with(&|f| {
                f.feed = OsFeed::RetailEval;
                f.os_releases.get_mut(&w.os).unwrap().in_retail = false;
            })
            .is_empty()
        );
        assert_eq!(
            with(&|f| f.feed_minimum_security_version = 4),
            [codes::OS_BELOW_MINIMUM_SECURITY_VERSION]
        );
        assert!(with(&|f| f.feed_minimum_security_version = 3).is_empty());
    }

    #[test]
    fn debugging_needs_app_development() {
        let mut w = world();
        let log = [os_event(w.os)];
        assert_eq!(
            codes_of(appraise(&log, DebugStatus::Enabled, &w.facts)),
            [codes::DEBUG_WITHOUT_CAPABILITY]
        );
        w.facts.app_development = true;
        assert_eq!(
            appraise(&log, DebugStatus::Enabled, &w.facts),
            Verdict::Trusted
        );
    }

    #[test]
    fn apps_are_appraised_as_before() {
        let mut w = world();
        let tampered = MeasurementEvent {
            digest: [1; 32],
            ..app_event(w.app_component, w.app)
        };
        let unknown = app_event(Uuid::new_v4(), Uuid::new_v4());
        let log = [os_event(w.os), tampered.clone(), unknown.clone()];
        assert_eq!(
            codes_of(appraise(&log, DebugStatus::Disabled, &w.facts)),
            [
                codes::UNKNOWN_MEASUREMENT,
                codes::TEST_SIGNED_WITHOUT_CAPABILITY
            ]
        );
        w.facts.app_development = true;
        assert_eq!(
            codes_of(appraise(&log, DebugStatus::Disabled, &w.facts)),
            [codes::UNKNOWN_MEASUREMENT]
        );
        // An app measured as another component is not that image.
        let moved = app_event(Uuid::new_v4(), w.app);
        assert_eq!(
            codes_of(appraise(
                &[os_event(w.os), moved],
                DebugStatus::Disabled,
                &w.facts
            )),
            [codes::UNKNOWN_MEASUREMENT]
        );
    }

    // -----------------------------------------------------------------------------------------
    // The decisions on one evidence request, with real evidence of a software root of trust.

    use ferro_trust::{RootOfTrust, SoftwareRootOfTrust};
    use ferro_wire::TenantId;

    const NONCE: [u8; 32] = [5; 32];
    const ISSUED_US: u64 = 1_000;

    /// A device with a software root of trust that measured `w`'s OS.
    struct Attesting {
        _dir: tempfile::TempDir,
        rot: SoftwareRootOfTrust,
    }

    fn attesting(w: &World) -> Attesting {
        let dir = tempfile::tempdir().unwrap();
        let rot = SoftwareRootOfTrust::open(dir.path().join("rot")).unwrap();
        rot.extend_measurement(&os_event(w.os)).unwrap();
        Attesting { _dir: dir, rot }
    }

    fn evidence_of(rot: &SoftwareRootOfTrust, nonce: &[u8], debug: DebugStatus) -> Vec<u8> {
        ferro_trust::evidence::create_evidence(rot, nonce, debug).unwrap()
    }

    fn row_of(rot: &SoftwareRootOfTrust) -> EvidenceRow {
        EvidenceRow {
            device_key: rot.public_key(),
            root_of_trust: RootOfTrustKind::Software,
            attestation_key: None,
            nonce_floor: None,
            claimed: Some(ClaimedDevice {
                tenant: TenantId::new(),
                blocked: false,
                ca_generation: 1,
                os_feed: None,
                feed_minimum_security_version: None,
                product: None,
                firmware_references: 0,
            }),
            target: None,
        }
    }

    /// What `admit` must answer: refuse with these codes (nothing recorded), or appraise with
    /// stage 2's failure code, if any.
    #[derive(Debug, PartialEq)]
    enum Want {
        Refuse(&'static [&'static str]),
        Appraise(Option<&'static str>),
    }

    fn outcome(a: Admission<'_>) -> (Vec<String>, Option<Option<String>>) {
        match a {
            Admission::Refuse(reasons) => (reasons.into_iter().map(|r| r.code).collect(), None),
            Admission::Appraise { verified, .. } => {
                (Vec::new(), Some(verified.err().map(|r| r.code)))
            }
        }
    }

    #[test]
    fn admission_table() {
        let w = world();
        let dev = attesting(&w);
        let other = attesting(&w);
        let good = evidence_of(&dev.rot, &NONCE, DebugStatus::Disabled);
        let by_other_key = evidence_of(&other.rot, &NONCE, DebugStatus::Disabled);
        let other_nonce = evidence_of(&dev.rot, &[6; 32], DebugStatus::Disabled);
        let with = |f: &dyn Fn(&mut EvidenceRow)| {
            let mut row = row_of(&dev.rot);
            f(&mut row);
            row
        };
        let cases: Vec<(&str, Option<EvidenceRow>, &[u8], Want)> = vec![
            (
                "unregistered",
                None,
                &good,
                Want::Refuse(&[codes::UNREGISTERED]),
            ),
            (
                "nonce already answered",
                Some(with(&|r| r.nonce_floor = Some(ISSUED_US))),
                &good,
                Want::Refuse(&[codes::NONCE_REPLAYED]),
            ),
            (
                "a newer nonce answered",
                Some(with(&|r| r.nonce_floor = Some(ISSUED_US + 1))),
                &good,
                Want::Refuse(&[codes::NONCE_REPLAYED]),
            ),
            (
                "garbage",
                Some(with(&|_| {})),
                b"garbage",
                Want::Refuse(&[codes::BAD_SIGNATURE]),
            ),
            (
                "signed by another device's key",
                Some(with(&|_| {})),
                &by_other_key,
                Want::Refuse(&[codes::BAD_SIGNATURE]),
            ),
            (
                "another nonce",
                Some(with(&|_| {})),
                &other_nonce,
                Want::Refuse(&[codes::NONCE_MISMATCH]),
            ),
            (
                "unclaimed",
                Some(with(&|r| r.claimed = None)),
                &good,
                Want::Refuse(&[codes::UNCLAIMED]),
            ),
            (
                "unclaimed, and software evidence from a TPM device",
                Some(with(&|r| {
                    r.claimed = None;
                    r.root_of_trust = RootOfTrustKind::Tpm;
                })),
                &good,
                Want::Refuse(&[codes::QUOTE_MISMATCH, codes::UNCLAIMED]),
            ),
            (
                "software evidence from a TPM device: recorded",
                Some(with(&|r| r.root_of_trust = RootOfTrustKind::Tpm)),
                &good,
                Want::Appraise(Some(codes::QUOTE_MISMATCH)),
            ),
            (
                "an older nonce answered before",
                Some(with(&|r| r.nonce_floor = Some(ISSUED_US - 1))),
                &good,
                Want::Appraise(None),
            ),
            (
                "fresh, claimed",
                Some(with(&|_| {})),
                &good,
                Want::Appraise(None),
            ),
        ];
        for (name, row, evidence, want) in cases {
            let got = outcome(admit(row.as_ref(), ISSUED_US, &NONCE, evidence));
            let expected = match want {
                Want::Refuse(codes) => (codes.iter().map(|c| c.to_string()).collect(), None),
                Want::Appraise(code) => (Vec::new(), Some(code.map(str::to_string))),
            };
            assert_eq!(got, expected, "{name}");
        }
    }

    /// Verified evidence of `dev`, with `debug`.
    fn verified(dev: &Attesting, debug: DebugStatus) -> VerifiedEvidence {
        let row = row_of(&dev.rot);
        let evidence = evidence_of(&dev.rot, &NONCE, debug);
        match admit(Some(&row), ISSUED_US, &NONCE, &evidence) {
            Admission::Appraise {
                verified: Ok(v), ..
            } => v,
            other => panic!("not admitted: {other:?}"),
        }
    }

    #[test]
    fn decision_table() {
        let w = world();
        let dev = attesting(&w);
        let ok = Ok(verified(&dev, DebugStatus::Disabled));
        let failed: Result<VerifiedEvidence, _> =
            Err(reason(codes::QUOTE_MISMATCH, "stage 2 failed"));
        let mut unknown_os = w.facts.clone();
        unknown_os.os_releases.clear();
        let mut firmware_values = w.facts.clone();
        firmware_values.firmware.references = vec![[[1; 32]; 8]];
        type Stage2 = Result<VerifiedEvidence, AttestationReason>;
        // (case, stage 2, facts, blocked, the reasons' codes)
        type Case<'a> = (&'a str, &'a Stage2, Option<&'a Facts>, bool, &'a [&'a str]);
        let cases: Vec<Case> = vec![
            (
                "verified, known, not blocked",
                &ok,
                Some(&w.facts),
                false,
                &[],
            ),
            (
                "verified, blocked",
                &ok,
                Some(&w.facts),
                true,
                &[codes::BLOCKED],
            ),
            (
                "verified, unknown OS",
                &ok,
                Some(&unknown_os),
                false,
                &[codes::UNKNOWN_MEASUREMENT],
            ),
            (
                "verified, unknown OS, blocked",
                &ok,
                Some(&unknown_os),
                true,
                &[codes::BLOCKED, codes::UNKNOWN_MEASUREMENT],
            ),
            // Stage 0 is appraised with the rest: software evidence where values apply.
            (
                "verified, firmware values apply, none measured",
                &ok,
                Some(&firmware_values),
                false,
                &[codes::FIRMWARE_MEASUREMENTS_MISSING],
            ),
            // Never trusted without the appraisal.
            (
                "verified, no facts",
                &ok,
                None,
                false,
                &[codes::UNKNOWN_MEASUREMENT],
            ),
            (
                "stage 2 failed",
                &failed,
                None,
                false,
                &[codes::QUOTE_MISMATCH],
            ),
            (
                "stage 2 failed, blocked",
                &failed,
                None,
                true,
                &[codes::QUOTE_MISMATCH, codes::BLOCKED],
            ),
        ];
        for (name, verified, facts, blocked, want) in cases {
            assert_eq!(codes_of(decide(verified, facts, blocked)), *want, "{name}");
        }
    }

    #[test]
    fn app_development_matters_only_for_debugging_or_unknown_apps() {
        let w = world();
        let dev = attesting(&w);
        let plain = verified(&dev, DebugStatus::Disabled);
        assert!(!needs_app_development(&plain, &w.facts.tenant_images));
        let debugging = verified(&dev, DebugStatus::Enabled);
        assert!(needs_app_development(&debugging, &w.facts.tenant_images));
        dev.rot
            .extend_measurement(&app_event(Uuid::new_v4(), Uuid::new_v4()))
            .unwrap();
        let unknown_app = verified(&dev, DebugStatus::Disabled);
        assert!(needs_app_development(&unknown_app, &w.facts.tenant_images));
        assert_eq!(measured_images(&unknown_app).0, [w.os]);
        assert_eq!(measured_images(&unknown_app).1.len(), 1);
    }

    #[test]
    fn facts_default_to_retail_without_a_minimum() {
        let claimed = ClaimedDevice {
            tenant: TenantId::new(),
            blocked: false,
            ca_generation: 1,
            os_feed: None,
            feed_minimum_security_version: None,
            product: None,
            firmware_references: 0,
        };
        let f = facts(
            &claimed,
            HashMap::new(),
            HashMap::new(),
            true,
            FirmwareFacts::default(),
        );
        assert_eq!(
            (f.feed, f.feed_minimum_security_version),
            (OsFeed::Retail, 0)
        );
        let eval = ClaimedDevice {
            os_feed: Some(OsFeed::RetailEval),
            feed_minimum_security_version: Some(4),
            ..claimed
        };
        let f = facts(
            &eval,
            HashMap::new(),
            HashMap::new(),
            false,
            FirmwareFacts::default(),
        );
        assert_eq!(
            (f.feed, f.feed_minimum_security_version),
            (OsFeed::RetailEval, 4)
        );
    }

    /// Stage 0, as a table: (case, the evidence's firmware PCRs, reference values, required,
    /// in a product) -> (appraisal, reason code).
    #[test]
    fn firmware_table() {
        let genuine: FirmwarePcrs = std::array::from_fn(|i| [i as u8 + 1; 32]);
        let mut new_loader = genuine;
        new_loader[4] = [0xee; 32];
        let mut other_board = genuine;
        other_board[0] = [0xaa; 32];
        other_board[4] = [0xbb; 32];
        type Case<'a> = (
            &'a str,
            Option<&'a FirmwarePcrs>,
            Vec<FirmwarePcrs>,
            bool,
            (FirmwareAppraisal, Option<&'a str>),
        );
        let cases: Vec<Case> = vec![
            (
                "no values, not required",
                Some(&genuine),
                vec![],
                false,
                (FirmwareAppraisal::NotAppraised, None),
            ),
            (
                "software, no values, not required",
                None,
                vec![],
                false,
                (FirmwareAppraisal::NotAppraised, None),
            ),
            (
                "no values, required",
                Some(&genuine),
                vec![],
                true,
                (
                    FirmwareAppraisal::Refused,
                    Some(codes::NO_FIRMWARE_REFERENCE_VALUES),
                ),
            ),
            (
                "matches the one value",
                Some(&genuine),
                vec![genuine],
                false,
                (FirmwareAppraisal::Matched, None),
            ),
            (
                "matches the new value during a rollout",
                Some(&new_loader),
                vec![genuine, new_loader],
                true,
                (FirmwareAppraisal::Matched, None),
            ),
            (
                "another boot loader",
                Some(&new_loader),
                vec![genuine],
                false,
                (
                    FirmwareAppraisal::Refused,
                    Some(codes::FIRMWARE_NOT_IN_REFERENCE_SET),
                ),
            ),
            (
                "software where values apply",
                None,
                vec![genuine],
                false,
                (
                    FirmwareAppraisal::Refused,
                    Some(codes::FIRMWARE_MEASUREMENTS_MISSING),
                ),
            ),
        ];
        for (name, pcrs, references, required, want) in cases {
            let facts = FirmwareFacts {
                references,
                required,
                in_product: true,
            };
            let (got, reason) = appraise_firmware(pcrs, &facts);
            assert_eq!((got, reason.map(|r| r.code).as_deref()), want, "{name}");
        }
        // The message names the PCRs in which the closest value differs.
        let facts = FirmwareFacts {
            references: vec![other_board, genuine],
            required: false,
            in_product: true,
        };
        let (_, reason) = appraise_firmware(Some(&new_loader), &facts);
        let message = reason.unwrap().message;
        assert!(
            message.ends_with("the closest differs in PCR 4 (boot loader)"),
            "{message}"
        );
        // A device in no group under the requirement is told why.
        let facts = FirmwareFacts {
            references: vec![],
            required: true,
            in_product: false,
        };
        let (_, reason) = appraise_firmware(Some(&genuine), &facts);
        assert!(reason.unwrap().message.contains("in no device group"));
    }

    #[test]
    fn no_tenant_ca_no_certificate() {
        let err = issuing_ca(&[], OffsetDateTime::now_utc()).unwrap_err();
        assert_eq!(err.code, codes::NO_TENANT_CA);
    }

    #[test]
    fn nonce_refusals_have_their_codes() {
        for (e, code) in [
            (NonceError::Unknown, codes::NONCE_UNKNOWN),
            (NonceError::Expired, codes::NONCE_EXPIRED),
            (NonceError::FromTheFuture, codes::NONCE_UNKNOWN),
        ] {
            assert_eq!(nonce_reason(e).code, code);
        }
        assert_eq!(replayed().code, codes::NONCE_REPLAYED);
    }
}
