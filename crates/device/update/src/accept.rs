//! Accepting a target set: the ownership document under the key list's tenant endorsement keys
//! (for the tenant the device already belongs to, and not older than the ownership document it
//! holds), the target set under that tenant's metadata
//! keys and for this device, its version not below the highest accepted (a root-of-trust
//! counter), and not expired at the service's signed time.
//!
//! "Service time" is the newest time the device has seen the service sign: target sets'
//! `issued_at` and the device certificate's `notBefore` (the agent passes it in). The device's
//! own clock is never trusted for freshness, so a device whose clock is wrong neither refuses
//! good sets nor accepts a replayed old one for longer than its expiry.

use std::path::{Path, PathBuf};

use ferro_pki::{
    DeviceOwnership, DocumentError, PlatformKeyRole, TargetSet, VerifiedKeyList, VerifiedOwnership,
    verify_ownership, verify_target_set,
};
use ferro_signing::DeviceId;
use ferro_trust::RootOfTrust;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::files::{create_private_dir, read_bounded, read_json_opt, write_atomic, write_json};
use crate::{UpdateError, crash};

/// The root-of-trust counter holding the highest target set version accepted.
pub const TARGET_SET_COUNTER: &str = "target-set-version";

/// The device's `update/` directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateDir {
    root: PathBuf,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustedTime {
    /// Unix seconds.
    service_time: i64,
}

impl UpdateDir {
    /// `dir` (normally `<data dir>/update`), created with mode 0700 if missing.
    pub fn open(dir: impl Into<PathBuf>) -> Result<UpdateDir, UpdateError> {
        let root = dir.into();
        create_private_dir(&root)?;
        create_private_dir(&root.join("downloads"))?;
        Ok(UpdateDir { root })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// `ownership.cose`: the newest verified ownership document.
    pub fn ownership(&self) -> PathBuf {
        self.root.join("ownership.cose")
    }
    /// `target-set.cose`: the accepted target set.
    pub fn target_set(&self) -> PathBuf {
        self.root.join("target-set.cose")
    }
    /// `service-time.json`: the newest service-signed time seen.
    pub fn service_time_file(&self) -> PathBuf {
        self.root.join("service-time.json")
    }
    /// `downloads/`: partial and complete downloads, named by package SHA-256.
    pub fn downloads(&self) -> PathBuf {
        self.root.join("downloads")
    }
    /// `transaction.json`: the update in progress, if any.
    pub fn transaction(&self) -> PathBuf {
        self.root.join("transaction.json")
    }

    /// The newest service-signed time seen (the Unix epoch if none).
    pub fn service_time(&self) -> Result<OffsetDateTime, UpdateError> {
        let t: TrustedTime = read_json_opt(&self.service_time_file())?.unwrap_or_default();
        Ok(OffsetDateTime::from_unix_timestamp(t.service_time)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH))
    }

    /// Record a service-signed time (kept only if newer).
    pub fn observe_service_time(&self, at: OffsetDateTime) -> Result<OffsetDateTime, UpdateError> {
        let current = self.service_time()?;
        if at > current {
            write_json(
                &self.service_time_file(),
                &TrustedTime {
                    service_time: at.unix_timestamp(),
                },
            )?;
            return Ok(at);
        }
        Ok(current)
    }

    /// The stored ownership document, re-verified (`None` if there is none yet).
    pub fn load_ownership(
        &self,
        key_list: &VerifiedKeyList,
        device: &DeviceId,
    ) -> Result<Option<VerifiedOwnership>, UpdateError> {
        let path = self.ownership();
        if std::fs::symlink_metadata(&path).is_err() {
            return Ok(None);
        }
        let bytes = read_bounded(&path, ferro_pki::MAX_OWNERSHIP_LEN as u64)?;
        let keys = endorsement_keys(key_list)?;
        verify_ownership(&bytes, &keys, device)
            .map(Some)
            .map_err(UpdateError::Ownership)
    }

    /// The accepted target set, re-verified against the stored ownership (`None` if none was
    /// accepted yet). Expiry is not re-checked: the set was fresh when accepted, and finishing
    /// its installation offline is not a freeze.
    pub fn load_accepted(
        &self,
        key_list: &VerifiedKeyList,
        device: &DeviceId,
    ) -> Result<Option<AcceptedTargetSet>, UpdateError> {
        let Some(ownership) = self.load_ownership(key_list, device)? else {
            return Ok(None);
        };
        let path = self.target_set();
        if std::fs::symlink_metadata(&path).is_err() {
            return Ok(None);
        }
        let bytes = read_bounded(&path, ferro_pki::MAX_TARGET_SET_LEN as u64)?;
        let verified =
            verify_target_set(&bytes, &ownership, device).map_err(UpdateError::TargetSet)?;
        Ok(Some(AcceptedTargetSet {
            set: verified.target_set().clone(),
            ownership,
        }))
    }
}

impl UpdateDir {
    /// The stored ownership document's content, checked for format and device but not
    /// re-verified against the key list (`None` if there is none yet).
    fn pinned_ownership(&self, device: &DeviceId) -> Result<Option<DeviceOwnership>, UpdateError> {
        let path = self.ownership();
        if std::fs::symlink_metadata(&path).is_err() {
            return Ok(None);
        }
        let bytes = read_bounded(&path, ferro_pki::MAX_OWNERSHIP_LEN as u64)?;
        let envelope = ferro_signing::parse_unverified(&bytes)
            .map_err(|e| UpdateError::malformed(&path, e))?;
        if envelope.claimed_purpose != ferro_signing::Purpose::DeviceOwnership {
            return Err(UpdateError::malformed(&path, "not an ownership document"));
        }
        let doc = DeviceOwnership::from_cbor(&envelope.unverified_payload)
            .map_err(|e| UpdateError::malformed(&path, e))?;
        if doc.device_id != *device {
            return Err(UpdateError::malformed(&path, "names another device"));
        }
        Ok(Some(doc))
    }

    /// The version of the stored target set, read without re-verifying it (it was verified when
    /// stored); `None` if there is none or it cannot be read.
    fn stored_version(&self) -> Option<u64> {
        let bytes = read_bounded(&self.target_set(), ferro_pki::MAX_TARGET_SET_LEN as u64).ok()?;
        let envelope = ferro_signing::parse_unverified(&bytes).ok()?;
        if envelope.claimed_purpose != ferro_signing::Purpose::TargetSet {
            return None;
        }
        TargetSet::from_cbor(&envelope.unverified_payload)
            .ok()
            .map(|s| s.version)
    }
}

fn endorsement_keys(key_list: &VerifiedKeyList) -> Result<ferro_signing::TrustedKeys, UpdateError> {
    let keys = key_list.trusted(PlatformKeyRole::TenantEndorsement);
    if keys.is_empty() {
        return Err(UpdateError::NoEndorsementKey);
    }
    Ok(keys)
}

/// A target set that passed every check of [`accept_target_set`]: the only input the installer
/// takes.
#[derive(Clone, Debug)]
pub struct AcceptedTargetSet {
    set: TargetSet,
    ownership: VerifiedOwnership,
}

impl AcceptedTargetSet {
    /// The content.
    pub fn target_set(&self) -> &TargetSet {
        &self.set
    }
    /// The ownership it was verified under (its image keys verify the tenant's packages).
    pub fn ownership(&self) -> &VerifiedOwnership {
        &self.ownership
    }
}

/// Accept `target_bytes` (a signed target set) with `ownership_bytes` (its ownership document)
/// for this device, or refuse it; on success both are stored, the version counter raised and
/// the service time advanced. `service_time_hint` is another service-signed time the caller
/// knows (the device certificate's `notBefore`).
///
/// The tenant pin is the stored ownership document's tenant (a document of another tenant is
/// accepted only with a greater ownership epoch: a transfer) even when the key list no longer
/// holds the endorsement key that signed it; a stored ownership document that cannot be read
/// refuses every set ([`UpdateError::Malformed`]) rather than unpinning the device. An ownership
/// document older than the stored one is refused (`UpdateError::Ownership` with an
/// `issued_at` [`DocumentError::InvalidField`]), so a key the tenant rotated out cannot come
/// back with a replayed document.
pub fn accept_target_set(
    dir: &UpdateDir,
    rot: &dyn RootOfTrust,
    key_list: &VerifiedKeyList,
    target_bytes: &[u8],
    ownership_bytes: &[u8],
    service_time_hint: Option<OffsetDateTime>,
) -> Result<AcceptedTargetSet, UpdateError> {
    let device = rot.device_id();
    let keys = endorsement_keys(key_list)?;
    let ownership =
        verify_ownership(ownership_bytes, &keys, &device).map_err(UpdateError::Ownership)?;
    // The pin is the stored document's tenant, read without re-verifying its signature: it was
    // verified when it was stored, and the endorsement key that signed it may since have been
    // rotated out of the key list. A stored document that cannot be read is an error, never "no
    // pin" (claims are permanent).
    let stored = dir.pinned_ownership(&device)?;
    if let Some(pinned) = &stored {
        let epoch = ownership.document().ownership_epoch;
        // A new tenant only under a newer ownership epoch: the platform raises it at every
        // transfer or reassignment, so an old owner's documents (replayed, or signed before the
        // transfer) can never win the device back, and a new owner's need no old owner's consent
        // on the device (the service required it before signing).
        if pinned.tenant_id != ownership.tenant_id() && epoch <= pinned.ownership_epoch {
            return Err(UpdateError::TenantChanged {
                pinned: pinned.tenant_id,
                found: ownership.tenant_id(),
            });
        }
        if epoch < pinned.ownership_epoch {
            return Err(UpdateError::Ownership(DocumentError::InvalidField {
                field: "ownership_epoch",
                reason: "older than the ownership epoch this device already holds",
            }));
        }
        // The device keeps the newest ownership document it verified; an older one (which may
        // list metadata or image keys the tenant has since rotated out) is refused.
        if ownership.document().issued_at < pinned.issued_at {
            return Err(UpdateError::Ownership(DocumentError::InvalidField {
                field: "issued_at",
                reason: "older than the ownership document this device already holds",
            }));
        }
    }
    let verified =
        verify_target_set(target_bytes, &ownership, &device).map_err(UpdateError::TargetSet)?;
    let set = verified.target_set().clone();
    // The highest version accepted is the counter, or the stored set's if a crash came between
    // storing a set and raising the counter (else an older set could replace it in that window).
    let accepted = rot
        .counter(TARGET_SET_COUNTER)?
        .max(dir.stored_version().unwrap_or(0));
    if set.version < accepted {
        return Err(UpdateError::Rollback {
            offered: set.version,
            accepted,
        });
    }
    let mut now = dir.service_time()?;
    for t in [Some(set.issued_at), service_time_hint]
        .into_iter()
        .flatten()
    {
        now = now.max(t);
    }
    if now > set.expires_at {
        return Err(UpdateError::Expired {
            version: set.version,
            expires_at: set.expires_at,
            now,
        });
    }
    // Not older than the stored one (checked above): store it unless it is the same document.
    if stored.as_ref() != Some(ownership.document()) {
        write_atomic(&dir.ownership(), ownership_bytes)?;
    }
    crash::point("accept.ownership-written");
    // Store first, then raise the counter: a crash in between leaves a stored set whose version
    // is above the counter; the rollback check above takes it into account, and the next
    // acceptance raises the counter.
    write_atomic(&dir.target_set(), target_bytes)?;
    crash::point("accept.target-written");
    rot.advance_counter(TARGET_SET_COUNTER, set.version)?;
    dir.observe_service_time(now)?;
    Ok(AcceptedTargetSet { set, ownership })
}
