//! The platform key list (docs/design.md §2): the platform root signs the platform's other public
//! keys by role, with a monotonic version. Rotating a platform key = publishing a new list.
//! Format in `docs/identity-documents.md`.

use std::collections::BTreeMap;

use ciborium::value::Value;
use ferro_signing::{KeyId, PublicKey, Purpose, Signer, TrustedKeys, sign1, verify1};
use time::OffsetDateTime;

use crate::cbor;
use crate::error::DocumentError;

/// The largest key list accepted (16 KiB).
pub const MAX_KEY_LIST_LEN: usize = 16 * 1024;
/// The most keys one role may list (old and new during a rotation, plus spares).
pub const MAX_KEYS_PER_ROLE: usize = 8;
const MAX_SPKI_LEN: usize = 256;
const FORMAT_VERSION: u64 = 1;

const K_VERSION: u64 = 1;
const K_LIST_VERSION: u64 = 2;
const K_ISSUED_AT: u64 = 3;
const K_KEYS: u64 = 4;
const K_MAX: u64 = 4;

/// The role of a platform key in the key list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PlatformKeyRole {
    /// Signs OS bundles (required in every list).
    OsRelease,
    /// Signs capability files (required in every list).
    Capability,
    /// The service's TLS key (optional; lets a device pin it in addition to the certificate).
    ServiceTls,
    /// Signs device ownership documents (which tenant owns a device, and that tenant's image and
    /// metadata keys). Optional in the format; a device without one cannot take updates.
    TenantEndorsement,
}

impl PlatformKeyRole {
    /// Every role, in code order.
    pub const ALL: [PlatformKeyRole; 4] = [
        PlatformKeyRole::OsRelease,
        PlatformKeyRole::Capability,
        PlatformKeyRole::ServiceTls,
        PlatformKeyRole::TenantEndorsement,
    ];

    /// The CBOR code.
    pub const fn code(self) -> u64 {
        match self {
            PlatformKeyRole::OsRelease => 1,
            PlatformKeyRole::Capability => 2,
            PlatformKeyRole::ServiceTls => 3,
            PlatformKeyRole::TenantEndorsement => 4,
        }
    }

    /// The role with this code.
    pub fn from_code(code: u64) -> Option<PlatformKeyRole> {
        PlatformKeyRole::ALL.into_iter().find(|r| r.code() == code)
    }

    /// Whether every list must name at least one key for this role.
    pub const fn is_required(self) -> bool {
        matches!(
            self,
            PlatformKeyRole::OsRelease | PlatformKeyRole::Capability
        )
    }
}

/// A key list's content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyList {
    /// Monotonic version (>= 1): a device accepts a list only if its version is higher than (or
    /// equal to, for the same bytes) the one it holds.
    pub version: u64,
    /// When it was issued (whole seconds).
    pub issued_at: OffsetDateTime,
    /// The keys of each role (1 to 8 each; OS release and capability required). Kept sorted by
    /// key ID in the encoding.
    pub keys: BTreeMap<PlatformKeyRole, Vec<PublicKey>>,
}

impl KeyList {
    /// The deterministic CBOR payload.
    pub fn to_cbor(&self) -> Result<Vec<u8>, DocumentError> {
        if self.version == 0 {
            return Err(DocumentError::InvalidField {
                field: "list_version",
                reason: "must be at least 1",
            });
        }
        for role in PlatformKeyRole::ALL {
            if role.is_required() && !self.keys.contains_key(&role) {
                return Err(DocumentError::MissingField(match role {
                    PlatformKeyRole::OsRelease => "keys.os_release",
                    _ => "keys.capability",
                }));
            }
        }
        let mut roles = Vec::new();
        for (role, keys) in &self.keys {
            if keys.is_empty() || keys.len() > MAX_KEYS_PER_ROLE {
                return Err(DocumentError::InvalidField {
                    field: "keys",
                    reason: "each role lists 1 to 8 keys",
                });
            }
            let mut sorted: Vec<&PublicKey> = keys.iter().collect();
            sorted.sort_by_key(|k| k.key_id());
            if !sorted
                .windows(2)
                .all(|w| matches!(w, [a, b] if a.key_id() != b.key_id()))
            {
                return Err(DocumentError::InvalidField {
                    field: "keys",
                    reason: "a key is listed twice for one role",
                });
            }
            roles.push((
                cbor::uint(role.code()),
                Value::Array(
                    sorted
                        .into_iter()
                        .map(|k| Value::Bytes(k.to_spki_der()))
                        .collect(),
                ),
            ));
        }
        let map = vec![
            (cbor::uint(K_VERSION), cbor::uint(FORMAT_VERSION)),
            (cbor::uint(K_LIST_VERSION), cbor::uint(self.version)),
            (
                cbor::uint(K_ISSUED_AT),
                cbor::uint(cbor::secs_from_time(self.issued_at, "issued_at")?),
            ),
            (cbor::uint(K_KEYS), Value::Map(roles)),
        ];
        cbor::encode(&Value::Map(map))
    }

    /// Decode a payload strictly (no signature check; see [`verify_key_list`]). Keys of each
    /// role come back sorted by key ID.
    pub fn from_cbor(bytes: &[u8]) -> Result<KeyList, DocumentError> {
        let mut f = cbor::decode_map(bytes, MAX_KEY_LIST_LEN, K_MAX)?;
        cbor::check_version(&mut f, FORMAT_VERSION)?;
        let version = cbor::as_uint(
            cbor::required(&mut f, K_LIST_VERSION, "list_version")?,
            "list_version",
        )?;
        let issued_at = cbor::as_time(
            cbor::required(&mut f, K_ISSUED_AT, "issued_at")?,
            "issued_at",
        )?;
        let Value::Map(roles) = cbor::required(&mut f, K_KEYS, "keys")? else {
            return Err(DocumentError::InvalidField {
                field: "keys",
                reason: "not a map",
            });
        };
        let mut keys = BTreeMap::new();
        for (role, list) in roles {
            let role = cbor::as_uint(role, "keys")
                .ok()
                .and_then(PlatformKeyRole::from_code)
                .ok_or(DocumentError::InvalidField {
                    field: "keys",
                    reason: "unknown key role",
                })?;
            let list = cbor::as_array(list, "keys", 1, MAX_KEYS_PER_ROLE)?
                .into_iter()
                .map(|v| {
                    let spki = cbor::as_bytes(v, "keys", 1, MAX_SPKI_LEN)?;
                    PublicKey::from_spki_der(&spki).map_err(|_| DocumentError::InvalidField {
                        field: "keys",
                        reason: "not a P-256 SubjectPublicKeyInfo",
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            if keys.insert(role, list).is_some() {
                return Err(DocumentError::InvalidField {
                    field: "keys",
                    reason: "a role appears twice",
                });
            }
        }
        let list = KeyList {
            version,
            issued_at,
            keys,
        };
        // Also refuses unsorted keys and roles, and duplicates (to_cbor validates).
        cbor::check_canonical(bytes, &list.to_cbor()?)?;
        Ok(list)
    }

    /// Sign with the platform root key ([`Purpose::KeyList`], empty external AAD).
    pub fn sign(&self, root: &dyn Signer) -> Result<Vec<u8>, DocumentError> {
        let payload = self.to_cbor()?;
        Ok(sign1(root, Purpose::KeyList, &payload, &[])?)
    }
}

/// A key list signed by the platform root. Only [`verify_key_list`] makes one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedKeyList {
    list: KeyList,
}

impl VerifiedKeyList {
    /// The list's version (refuse a list older than the one already held: rollback).
    pub fn version(&self) -> u64 {
        self.list.version
    }

    /// When it was issued.
    pub fn issued_at(&self) -> OffsetDateTime {
        self.list.issued_at
    }

    /// The verified list.
    pub fn list(&self) -> &KeyList {
        &self.list
    }

    /// The keys of `role` as a trust set (empty if the role is absent), e.g. the OS release keys
    /// to verify an OS bundle with.
    pub fn trusted(&self, role: PlatformKeyRole) -> TrustedKeys {
        self.list
            .keys
            .get(&role)
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }

    /// The key IDs of `role`.
    pub fn key_ids(&self, role: PlatformKeyRole) -> Vec<KeyId> {
        self.list
            .keys
            .get(&role)
            .into_iter()
            .flatten()
            .map(PublicKey::key_id)
            .collect()
    }
}

/// Verify a key list: strict COSE profile, [`Purpose::KeyList`], signed by `root`, strict
/// payload. Version monotonicity is the holder's check ([`VerifiedKeyList::version`]).
pub fn verify_key_list(bytes: &[u8], root: &PublicKey) -> Result<VerifiedKeyList, DocumentError> {
    if bytes.len() > MAX_KEY_LIST_LEN {
        return Err(DocumentError::TooLarge {
            len: bytes.len(),
            max: MAX_KEY_LIST_LEN,
        });
    }
    let trusted: TrustedKeys = [root.clone()].into_iter().collect();
    let verified = verify1(bytes, Purpose::KeyList, &trusted, &[])?;
    Ok(VerifiedKeyList {
        list: KeyList::from_cbor(verified.payload())?,
    })
}
