//! Deployments (`deployments`, `deployment_images`): immutable sets of a tenant's images for a
//! device group. Their rollouts' columns are `super::rollouts`'.

use super::images::{self, deployed_image};
use crate::authz::TenantScope;
use crate::datastore::{StoreError, StoreResult};
use crate::db::{self, Db, Tx};
use ferro_wire::{DeployedImage, Deployment, DeploymentId, DeviceGroupId};
use sqlx::Row;
use std::collections::HashMap;

const DEPLOYMENT_COLUMNS: &str = "id, device_group_id, deployed_by, deployed_at, rollout_waves, rollout_wait, \
     rollout_max_failure";

fn parse<T: std::str::FromStr>(text: &str, what: &str) -> StoreResult<T> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("malformed {what}")))
}

/// Deployments' rows plus their images (one query for all images).
async fn with_images(
    db: &Db,
    scope: &TenantScope,
    rows: &[sqlx::any::AnyRow],
) -> StoreResult<Vec<(String, Deployment)>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT di.deployment_id, {} FROM deployment_images di \
         JOIN images i ON i.id = di.image_row_id \
         WHERE di.deployment_id IN ({}) ORDER BY di.component_id",
        images::columns_of("i"),
        db::placeholders(1, rows.len())
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for r in rows {
        q = q.bind(r.try_get::<String, _>("id")?);
    }
    let mut by_deployment: HashMap<String, Vec<DeployedImage>> = HashMap::new();
    for r in q.fetch_all(db.pool()).await? {
        by_deployment
            .entry(r.try_get("deployment_id")?)
            .or_default()
            .push(deployed_image(&images::image_from_row(&r)?));
    }
    rows.iter()
        .map(|r| {
            let id: String = r.try_get("id")?;
            let rollout = super::rollouts::config_of(r)?
                .map(|(waves, wait, max_failure)| crate::rollouts::wire(&waves, wait, max_failure));
            let d = Deployment {
                id: parse(&id, "deployment ID")?,
                tenant_id: scope.tenant(),
                device_group_id: parse(&r.try_get::<String, _>("device_group_id")?, "group ID")?,
                images: by_deployment.remove(&id).unwrap_or_default(),
                deployed_by: parse(&r.try_get::<String, _>("deployed_by")?, "user ID")?,
                deployed_at: db::ts(r.try_get("deployed_at")?),
                rollout,
            };
            Ok((id, d))
        })
        .collect()
}

/// Up to `limit` deployments of the scope's group `group` created before the row `after`
/// (`""`: from the newest), newest first, each with its ID (the page key).
pub async fn list(
    db: &Db,
    scope: &TenantScope,
    group: DeviceGroupId,
    after: &str,
    limit: i64,
) -> StoreResult<Vec<(String, Deployment)>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {DEPLOYMENT_COLUMNS} FROM deployments \
         WHERE tenant_id = $1 AND device_group_id = $2 AND ($3 = '' OR id < $3) \
         ORDER BY id DESC LIMIT $4"
    )))
    .bind(scope.tenant_str())
    .bind(group.to_string())
    .bind(after)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    with_images(db, scope, &rows).await
}

/// One deployment of the scope's group `group`.
pub async fn get(
    db: &Db,
    scope: &TenantScope,
    group: DeviceGroupId,
    deployment: DeploymentId,
) -> StoreResult<Option<Deployment>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {DEPLOYMENT_COLUMNS} FROM deployments \
         WHERE tenant_id = $1 AND device_group_id = $2 AND id = $3"
    )))
    .bind(scope.tenant_str())
    .bind(group.to_string())
    .bind(deployment.to_string())
    .fetch_all(db.pool())
    .await?;
    Ok(with_images(db, scope, &rows).await?.pop().map(|(_, d)| d))
}

/// Store a new deployment of the scope's tenant, its images given as (image row ID, component
/// ID) pairs. Its rollout, if it has one, is stored after it (`super::rollouts::insert`).
pub async fn insert(
    tx: &mut Tx,
    scope: &TenantScope,
    d: &Deployment,
    image_rows: &[(String, String)],
) -> StoreResult<()> {
    let did = d.id.to_string();
    sqlx::query(
        "INSERT INTO deployments (id, tenant_id, device_group_id, deployed_by, deployed_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&did)
    .bind(scope.tenant_str())
    .bind(d.device_group_id.to_string())
    .bind(d.deployed_by.to_string())
    .bind(d.deployed_at.unix_timestamp())
    .execute(&mut **tx)
    .await?;
    for (row_id, component) in image_rows {
        sqlx::query(
            "INSERT INTO deployment_images (deployment_id, image_row_id, component_id) \
             VALUES ($1, $2, $3)",
        )
        .bind(&did)
        .bind(row_id)
        .bind(component)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
