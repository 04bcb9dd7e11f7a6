//! The registry of signing purposes. Each purpose is carried in the COSE protected header as the
//! content type (label 3), so it is covered by the signature.

use std::fmt;

/// What a signature is for. The content-type strings are part of the wire format: never change
/// one, only add new variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Purpose {
    /// Metadata of an image package (`ferro-image`).
    ImagePackage,
    /// An update target set sent to a device group.
    TargetSet,
    /// A device capability file (appDevelopment, fieldServicing).
    CapabilityFile,
    /// Attestation evidence (an EAT) signed by a device key.
    AttestationEvidence,
    /// A platform key list signed by the platform root.
    KeyList,
    /// A device registration record, signed by the device key it contains (proof of possession).
    RegistrationRecord,
    /// A device ownership document: which tenant owns a device and that tenant's image and
    /// metadata keys, signed by the platform tenant endorsement key.
    DeviceOwnership,
    /// A batch of an app's telemetry, signed by the device key for the app that sent it
    /// (ferro-provenance: the device, the app and its running image in the protected header).
    TelemetryBatch,
}

impl Purpose {
    /// Every purpose, in registry order.
    pub const ALL: [Purpose; 8] = [
        Purpose::ImagePackage,
        Purpose::TargetSet,
        Purpose::CapabilityFile,
        Purpose::AttestationEvidence,
        Purpose::KeyList,
        Purpose::RegistrationRecord,
        Purpose::DeviceOwnership,
        Purpose::TelemetryBatch,
    ];

    /// The COSE content type (header label 3) that names this purpose.
    pub const fn content_type(self) -> &'static str {
        match self {
            Purpose::ImagePackage => "application/vnd.ferrosphere.image-metadata+cbor",
            Purpose::TargetSet => "application/vnd.ferrosphere.target-set+cbor",
            Purpose::CapabilityFile => "application/vnd.ferrosphere.capability+cbor",
            Purpose::AttestationEvidence => "application/vnd.ferrosphere.attestation-evidence+cbor",
            Purpose::KeyList => "application/vnd.ferrosphere.key-list+cbor",
            Purpose::RegistrationRecord => "application/vnd.ferrosphere.registration-record+cbor",
            Purpose::DeviceOwnership => "application/vnd.ferrosphere.device-ownership+cbor",
            Purpose::TelemetryBatch => "application/vnd.ferrosphere.telemetry-batch",
        }
    }

    /// What a person calls a document signed for this purpose (in messages: "target set is
    /// for device ...").
    pub const fn noun(self) -> &'static str {
        match self {
            Purpose::ImagePackage => "image package",
            Purpose::TargetSet => "target set",
            Purpose::CapabilityFile => "capability file",
            Purpose::AttestationEvidence => "attestation evidence",
            Purpose::KeyList => "key list",
            Purpose::RegistrationRecord => "registration record",
            Purpose::DeviceOwnership => "device ownership document",
            Purpose::TelemetryBatch => "telemetry batch",
        }
    }

    /// The purpose named by a content type, if it is one of ours.
    pub fn from_content_type(content_type: &str) -> Option<Purpose> {
        Purpose::ALL
            .into_iter()
            .find(|p| p.content_type() == content_type)
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.content_type())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_round_trip_and_are_distinct() {
        for p in Purpose::ALL {
            assert_eq!(Purpose::from_content_type(p.content_type()), Some(p));
        }
        let mut set = std::collections::BTreeSet::new();
        for p in Purpose::ALL {
            assert!(set.insert(p.content_type()));
        }
        assert_eq!(Purpose::from_content_type("application/cbor"), None);
    }
}
