//! Attestation appraisal (docs/attestation.md): the checks the service makes on a device's
//! evidence, each failure a stable reason code. The decision on verified evidence is
//! [`appraise`], a plain function of what the evidence says and what the service knows (no
//! HTTP, no database); the HTTP side, which gathers that knowledge, is `routes::attestation`.

use std::collections::HashMap;

use ferro_trust::MeasurementEvent;
use ferro_trust::evidence::{DebugStatus, EvidenceError};
use ferro_wire::{AttestationReason, OsFeed};
use uuid::Uuid;

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

/// What the service knows of a published OS release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownOsRelease {
    /// Lowercase hex SHA-256 of the payload.
    pub payload_sha256: String,
    /// Its anti-rollback security version.
    pub security_version: u32,
    /// Promoted (or published) to Retail; every release is in RetailEval.
    pub in_retail: bool,
    /// Revoked by the platform operator.
    pub revoked: bool,
}

/// What the service knows of one of the tenant's images.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownImage {
    /// Lowercase hex SHA-256 of the payload.
    pub payload_sha256: String,
    /// Its component ID.
    pub component_id: Uuid,
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
}
