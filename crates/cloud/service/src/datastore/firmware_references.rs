//! Firmware reference values of products (`firmware_references`, docs/attestation.md "Firmware
//! appraisal"): the TPM PCR 0-7 values genuine devices of a product show. Stored as text, the
//! eight lowercase hex values joined by `,` ([`pcrs_text`]), the same form as a device's
//! `last_firmware_pcrs`.

use super::{StoreError, StoreResult, parse_id};
use crate::authz::TenantScope;
use crate::db::{self, Db, Tx};
use ferro_trust::FirmwarePcrs;
use ferro_wire::{FirmwareReference, FirmwareReferenceId, ProductId};
use sqlx::Row;

/// The stored text of firmware PCRs: 8 x 64 lowercase hex, joined by `,`.
pub fn pcrs_text(pcrs: &FirmwarePcrs) -> String {
    pcrs.iter().map(hex::encode).collect::<Vec<_>>().join(",")
}

/// The firmware PCRs of their stored text (`None`: not 8 values of 32 bytes).
pub fn parse_pcrs_text(s: &str) -> Option<FirmwarePcrs> {
    let mut out = [[0u8; 32]; 8];
    let mut parts = s.split(',');
    for slot in out.iter_mut() {
        let part = parts.next()?;
        if part.len() != 64 || part.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        *slot = hex::decode(part).ok()?.try_into().ok()?;
    }
    parts.next().is_none().then_some(out)
}

fn reference_from_row(r: &sqlx::any::AnyRow) -> StoreResult<FirmwareReference> {
    let pcrs: String = r.try_get("pcrs")?;
    if parse_pcrs_text(&pcrs).is_none() {
        return Err(StoreError::Corrupt(
            "malformed firmware reference PCRs".into(),
        ));
    }
    Ok(FirmwareReference {
        id: parse_id(&r.try_get::<String, _>("id")?)?,
        product_id: parse_id(&r.try_get::<String, _>("product_id")?)?,
        pcrs: pcrs.split(',').map(str::to_string).collect(),
        description: r.try_get("description")?,
        created_at: db::ts(r.try_get("created_at")?),
    })
}

const COLUMNS: &str = "id, product_id, pcrs, description, created_at";

/// The product's reference values, oldest first.
pub async fn list(
    db: &Db,
    scope: &TenantScope,
    product: ProductId,
) -> StoreResult<Vec<FirmwareReference>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM firmware_references WHERE tenant_id = $1 AND product_id = $2 \
         ORDER BY id"
    )))
    .bind(scope.tenant_str())
    .bind(product.to_string())
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(reference_from_row).collect()
}

/// The product's reference values as the appraisal compares them.
pub async fn pcrs_of(
    db: &Db,
    scope: &TenantScope,
    product: ProductId,
) -> StoreResult<Vec<FirmwarePcrs>> {
    let rows = sqlx::query(
        "SELECT pcrs FROM firmware_references WHERE tenant_id = $1 AND product_id = $2",
    )
    .bind(scope.tenant_str())
    .bind(product.to_string())
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            parse_pcrs_text(&r.try_get::<String, _>("pcrs")?)
                .ok_or_else(|| StoreError::Corrupt("malformed firmware reference PCRs".into()))
        })
        .collect()
}

/// How many reference values the product holds, read in the caller's write transaction.
pub async fn count_in(tx: &mut Tx, scope: &TenantScope, product: ProductId) -> StoreResult<i64> {
    Ok(sqlx::query(
        "SELECT COUNT(*) AS n FROM firmware_references WHERE tenant_id = $1 AND product_id = $2",
    )
    .bind(scope.tenant_str())
    .bind(product.to_string())
    .fetch_one(&mut **tx)
    .await?
    .try_get("n")?)
}

/// Store a new reference value (the same PCRs twice for one product is a unique violation).
pub async fn insert(
    tx: &mut Tx,
    scope: &TenantScope,
    reference: &FirmwareReference,
    pcrs: &FirmwarePcrs,
    by: &str,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO firmware_references (id, tenant_id, product_id, pcrs, description, \
         created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(reference.id.to_string())
    .bind(scope.tenant_str())
    .bind(reference.product_id.to_string())
    .bind(pcrs_text(pcrs))
    .bind(&reference.description)
    .bind(reference.created_at.unix_timestamp())
    .bind(by)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Delete one reference value of the product; `None` when the product has no such value.
pub async fn delete(
    tx: &mut Tx,
    scope: &TenantScope,
    product: ProductId,
    id: FirmwareReferenceId,
) -> StoreResult<Option<FirmwareReference>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM firmware_references WHERE tenant_id = $1 AND product_id = $2 \
         AND id = $3"
    )))
    .bind(scope.tenant_str())
    .bind(product.to_string())
    .bind(id.to_string())
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let reference = reference_from_row(&row)?;
    sqlx::query("DELETE FROM firmware_references WHERE id = $1")
        .bind(id.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(Some(reference))
}

/// Delete every reference value of a product (the product is being deleted).
pub async fn delete_all_of(tx: &mut Tx, product: ProductId) -> StoreResult<()> {
    sqlx::query("DELETE FROM firmware_references WHERE product_id = $1")
        .bind(product.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcrs_text_round_trips_and_refuses_other_forms() {
        let mut pcrs = [[0u8; 32]; 8];
        pcrs[4] = [0xab; 32];
        let text = pcrs_text(&pcrs);
        assert_eq!(parse_pcrs_text(&text), Some(pcrs));
        assert_eq!(parse_pcrs_text(&text.to_uppercase()), None);
        assert_eq!(
            parse_pcrs_text(&format!("{text},{}", "00".repeat(32))),
            None
        );
        let seven: Vec<_> = text.split(',').take(7).collect();
        assert_eq!(parse_pcrs_text(&seven.join(",")), None);
        assert_eq!(parse_pcrs_text(""), None);
    }
}
