//! Attestation: what the evidence route reads about a device and the images it measured, and
//! the one write that consumes the device's nonce and records the verdict
//! (docs/attestation.md). The decisions on what is read are `crate::appraisal`'s.
//!
//! The device's row is one hot-path read on the [`Db`] (rusqlite on SQLite); the verdict is one
//! all-or-nothing write ([`Db::write_atomic`]: group-committed on SQLite).

use std::collections::HashMap;

use base64ct::{Base64, Encoding};
use ferro_signing::PublicKey;
use ferro_wire::{
    AttestationReason, AttestationVerdict, DeviceId, FirmwareAppraisal, OsFeed, ProductId,
    RootOfTrustKind, TenantId,
};
use sqlx::Row;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{StoreError, StoreResult, parse_id, parse_name, to_u32};
use crate::authz::TenantScope;
use crate::db::{self, Arg, Db, DbRow, WriteStmt, Written};

/// What the evidence route reads about a device: its registration and, once claimed, its record
/// with what its update target set is computed from (`targets::CheckRow`) and its tenant's CA
/// generation, in one read.
const EVIDENCE_SQL: &str = concat!(
    "SELECT r.device_key, r.root_of_trust, r.attestation_key, d.blocked, \
     d.attestation_nonce_floor, t.ca_generation, \
     (SELECT f.minimum_security_version FROM os_feed_policies f \
      WHERE f.feed = COALESCE(g.os_feed, 'Retail')) AS feed_minimum_security_version, \
     g.product_id, (SELECT COUNT(*) FROM firmware_references fr \
      WHERE fr.product_id = g.product_id) AS firmware_references, ",
    crate::targets::target_check_columns!(),
    " FROM device_registrations r LEFT JOIN devices d ON d.id = r.device_id \
     LEFT JOIN device_groups g ON g.id = d.device_group_id \
     LEFT JOIN tenants t ON t.id = d.tenant_id WHERE r.device_id = $1"
);

/// A registered device as the appraisal sees it.
pub struct EvidenceRow {
    /// The device key of its registration record.
    pub device_key: PublicKey,
    /// Its root of trust, as registered.
    pub root_of_trust: RootOfTrustKind,
    /// The TPM attestation key of its registration record (TPM devices, record format 2).
    pub attestation_key: Option<PublicKey>,
    /// Issue time (Unix microseconds) of the last nonce the device's key answered.
    pub nonce_floor: Option<u64>,
    /// Its claim (`None` while no tenant has claimed it).
    pub claimed: Option<ClaimedDevice>,
    /// What its update target set is computed from (`None` while unclaimed).
    pub(crate) target: Option<crate::targets::CheckRow>,
}

impl std::fmt::Debug for EvidenceRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EvidenceRow")
            .field("root_of_trust", &self.root_of_trust)
            .field("nonce_floor", &self.nonce_floor)
            .field("claimed", &self.claimed)
            .finish_non_exhaustive()
    }
}

/// A claimed device, as the appraisal and its answer need it.
pub struct ClaimedDevice {
    /// Its tenant.
    pub tenant: TenantId,
    /// Blocked by a tenant administrator.
    pub blocked: bool,
    /// The tenant's CA generation (`tenant_ca`'s cache key).
    pub ca_generation: i64,
    /// The OS feed of its device group (`None`: in no group).
    pub os_feed: Option<OsFeed>,
    /// That feed's minimum security version (`None`: not set).
    pub feed_minimum_security_version: Option<u32>,
    /// The product of its device group (`None`: in no group).
    pub product: Option<ProductId>,
    /// How many firmware reference values that product holds (read only when there are some).
    pub firmware_references: i64,
}

impl std::fmt::Debug for ClaimedDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimedDevice")
            .field("tenant", &self.tenant)
            .field("blocked", &self.blocked)
            .field("os_feed", &self.os_feed)
            .finish_non_exhaustive()
    }
}

/// A stored base64 DER SubjectPublicKeyInfo.
fn public_key(b64: &str, what: &str) -> StoreResult<PublicKey> {
    Base64::decode_vec(b64)
        .ok()
        .and_then(|der| PublicKey::from_spki_der(&der).ok())
        .ok_or_else(|| StoreError::Corrupt(format!("malformed {what}")))
}

fn evidence_row(r: &DbRow<'_>) -> StoreResult<EvidenceRow> {
    let target = crate::targets::CheckRow::from_optional_row(r)
        .map_err(|e| StoreError::Corrupt(format!("target columns: {e}")))?;
    let claimed = match r.get::<Option<String>>("tenant_id")? {
        None => None,
        Some(tenant) => Some(ClaimedDevice {
            tenant: parse_id(&tenant)?,
            blocked: r.get::<Option<i64>>("blocked")?.unwrap_or(0) != 0,
            ca_generation: r
                .get::<Option<i64>>("ca_generation")?
                .ok_or_else(|| StoreError::Corrupt("claimed device without a tenant".into()))?,
            os_feed: r
                .get::<Option<String>>("os_feed")?
                .map(|f| parse_name(&f, "OS feed"))
                .transpose()?,
            feed_minimum_security_version: r
                .get::<Option<i64>>("feed_minimum_security_version")?
                .map(to_u32)
                .transpose()?,
            product: r
                .get::<Option<String>>("product_id")?
                .map(|p| parse_id(&p))
                .transpose()?,
            firmware_references: r.get::<Option<i64>>("firmware_references")?.unwrap_or(0),
        }),
    };
    Ok(EvidenceRow {
        device_key: public_key(&r.get::<String>("device_key")?, "device key")?,
        root_of_trust: parse_name(&r.get::<String>("root_of_trust")?, "root of trust")?,
        attestation_key: r
            .get::<Option<String>>("attestation_key")?
            .map(|k| public_key(&k, "attestation key"))
            .transpose()?,
        nonce_floor: r
            .get::<Option<i64>>("attestation_nonce_floor")?
            .map(super::to_u64)
            .transpose()?,
        claimed,
        target,
    })
}

/// The device's row, or `None` when no registration record has its ID.
pub async fn evidence_row_of(db: &Db, device: &DeviceId) -> StoreResult<Option<EvidenceRow>> {
    let id = device.to_string();
    db.read_optional(EVIDENCE_SQL, &[Arg::from(&id)], evidence_row)
        .await
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

fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The published OS releases among `ids` (platform-wide).
pub async fn os_releases(db: &Db, ids: &[Uuid]) -> StoreResult<HashMap<Uuid, KnownOsRelease>> {
    let mut out = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let sql = format!(
        "SELECT image_id, payload_sha256, security_version, retail_at, revoked_at \
         FROM os_releases WHERE image_id IN ({})",
        placeholders(1, ids.len())
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in ids {
        q = q.bind(id.to_string());
    }
    for r in q.fetch_all(db.pool()).await? {
        out.insert(
            parse_id::<Uuid>(&r.try_get::<String, _>("image_id")?)?,
            KnownOsRelease {
                payload_sha256: r.try_get("payload_sha256")?,
                security_version: to_u32(r.try_get("security_version")?)?,
                in_retail: r.try_get::<Option<i64>, _>("retail_at")?.is_some(),
                revoked: r.try_get::<Option<i64>, _>("revoked_at")?.is_some(),
            },
        );
    }
    Ok(out)
}

/// The tenant's images among `ids`.
pub async fn tenant_images(
    db: &Db,
    scope: &TenantScope,
    ids: &[Uuid],
) -> StoreResult<HashMap<Uuid, KnownImage>> {
    let mut out = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let sql = format!(
        "SELECT image_id, payload_sha256, component_id FROM images WHERE tenant_id = $1 AND \
         image_id IN ({})",
        placeholders(2, ids.len())
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(scope.tenant_str());
    for id in ids {
        q = q.bind(id.to_string());
    }
    for r in q.fetch_all(db.pool()).await? {
        out.insert(
            parse_id::<Uuid>(&r.try_get::<String, _>("image_id")?)?,
            KnownImage {
                payload_sha256: r.try_get("payload_sha256")?,
                component_id: parse_id(&r.try_get::<String, _>("component_id")?)?,
            },
        );
    }
    Ok(out)
}

/// Whether the device holds a current (not revoked) AppDevelopment capability of its tenant.
pub async fn holds_app_development(
    db: &Db,
    scope: &TenantScope,
    device: &DeviceId,
) -> StoreResult<bool> {
    Ok(sqlx::query(
        "SELECT id FROM device_capabilities WHERE tenant_id = $1 AND device_id = $2 \
         AND capability_type = 'AppDevelopment' AND revoked_at IS NULL LIMIT 1",
    )
    .bind(scope.tenant_str())
    .bind(device.to_string())
    .fetch_optional(db.pool())
    .await?
    .is_some())
}

/// A verdict to record on the device.
#[derive(Debug)]
pub struct Recorded<'a> {
    /// Issue time (Unix microseconds) of the nonce the evidence answered.
    pub nonce_issued_us: u64,
    /// When the service decided.
    pub at: OffsetDateTime,
    /// The verdict.
    pub verdict: AttestationVerdict,
    /// Why it is untrusted (empty when trusted).
    pub reasons: &'a [AttestationReason],
    /// The serial of the certificate issued (trusted).
    pub certificate_serial: Option<&'a str>,
    /// What the appraisal found of the firmware (`None`: the evidence did not verify).
    pub firmware: Option<FirmwareAppraisal>,
    /// The firmware PCRs of the verified evidence, as stored text
    /// (`super::firmware_references::pcrs_text`; `None`: software, or not verified).
    pub firmware_pcrs: Option<&'a str>,
}

/// Consume the device's nonce by raising its floor, atomically (of two concurrent answers, or an
/// older nonce answered after a newer one, only one passes), and record the verdict on the
/// device and in its tenant's audit log (actor: the service itself), all or nothing. `false`:
/// the nonce was already answered (nothing written).
pub async fn record_verdict(
    db: &Db,
    scope: &TenantScope,
    device: &DeviceId,
    r: &Recorded<'_>,
) -> StoreResult<bool> {
    let floor = i64::try_from(r.nonce_issued_us)
        .map_err(|_| StoreError::Unrepresentable("nonce issue time".into()))?;
    let reasons = serde_json::to_string(r.reasons)
        .map_err(|e| StoreError::Unrepresentable(format!("reasons: {e}")))?;
    let codes: Vec<&str> = r.reasons.iter().map(|r| r.code.as_str()).collect();
    let details = serde_json::json!({
        "verdict": r.verdict,
        "reasons": codes,
        "certificateSerial": r.certificate_serial,
        "firmware": r.firmware,
        "firmwarePcrs": r.firmware_pcrs,
    })
    .to_string();
    let did = device.to_string();
    let audit_id = Uuid::now_v7().to_string();
    let consume_and_record = [
        Arg::Int(floor),
        Arg::Int(r.at.unix_timestamp()),
        Arg::Text(r.verdict.as_str()),
        Arg::Text(&reasons),
        Arg::Text(&did),
        Arg::Text(scope.tenant_str()),
        r.firmware.map_or(Arg::NullText, |f| Arg::Text(f.as_str())),
        r.firmware_pcrs.map_or(Arg::NullText, Arg::Text),
    ];
    // The row `db::audit` writes.
    let audit = [
        Arg::Text(&audit_id),
        Arg::Text(scope.tenant_str()),
        Arg::Int(db::now()),
        Arg::NullText,
        Arg::Text("device.attest"),
        Arg::Text("device"),
        Arg::Text(&did),
        Arg::Text(&details),
    ];
    let written = db
        .write_atomic(&[
            WriteStmt {
                sql: "UPDATE devices SET attestation_nonce_floor = $1, last_attested_at = $2, \
                      last_attestation_result = $3, last_attestation_reasons = $4, \
                      last_attestation_firmware = $7, last_firmware_pcrs = $8 \
                      WHERE id = $5 AND tenant_id = $6 \
                      AND (attestation_nonce_floor IS NULL OR attestation_nonce_floor < $1)",
                args: &consume_and_record,
                must_change_one_row: true,
            },
            WriteStmt {
                sql: db::AUDIT_INSERT,
                args: &audit,
                must_change_one_row: true,
            },
        ])
        .await?;
    Ok(written != Written::Unchanged)
}
