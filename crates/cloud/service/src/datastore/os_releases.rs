//! The platform's OS releases (`os_releases`), their feeds' policies (`os_feed_policies`) and
//! the lock that serialises their writers. Platform-wide: no tenant scope.

use super::{to_u32, to_u64};
use crate::datastore::{StoreError, StoreResult};
use crate::db::{self, Db, Tx};
use ferro_wire::{ImageId, OsFeed, OsFeedPolicy, OsRelease, UserId};
use sqlx::Row;

/// A release's version, ordered as versions are (`major`, then `minor`, then `patch`).
pub type Version = (i64, i64, i64);

/// An OS release as stored: what the API shows, with what the API does not show.
#[derive(Clone, Debug)]
pub struct StoredRelease {
    /// The release.
    pub release: OsRelease,
    /// Its version, as numbers.
    pub version: Version,
    /// SHA-256 of the package as uploaded (before the service re-signed it), hex.
    pub uploaded_sha256: String,
}

const RELEASE_COLUMNS: &str = "id, image_id, name, version_major, version_minor, version_patch, \
    security_version, target_runtime_version, payload_sha256, package_sha256, package_size, \
    signer_key_id, uploaded_signer_key_id, uploaded_sha256, published_by, published_at, retail_at, \
    revoked_at";

fn parse<T: std::str::FromStr>(text: &str, what: &str) -> StoreResult<T> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("malformed {what}")))
}

fn release_from_row(r: &sqlx::any::AnyRow) -> StoreResult<StoredRelease> {
    let retail_at: Option<i64> = r.try_get("retail_at")?;
    let version: Version = (
        r.try_get("version_major")?,
        r.try_get("version_minor")?,
        r.try_get("version_patch")?,
    );
    Ok(StoredRelease {
        release: OsRelease {
            image_id: parse(&r.try_get::<String, _>("image_id")?, "image ID")?,
            feed: if retail_at.is_some() {
                OsFeed::Retail
            } else {
                OsFeed::RetailEval
            },
            version: format!("{}.{}.{}", version.0, version.1, version.2),
            security_version: to_u32(r.try_get("security_version")?)?,
            target_runtime_version: to_u32(r.try_get("target_runtime_version")?)?,
            name: r.try_get("name")?,
            payload_sha256: r.try_get("payload_sha256")?,
            package_sha256: r.try_get("package_sha256")?,
            package_size: to_u64(r.try_get("package_size")?)?,
            signer_key_id: r.try_get("signer_key_id")?,
            uploaded_signer_key_id: r.try_get("uploaded_signer_key_id")?,
            published_by: parse(&r.try_get::<String, _>("published_by")?, "user ID")?,
            published_at: db::ts(r.try_get("published_at")?),
            retail_at: retail_at.map(db::ts),
            revoked_at: r.try_get::<Option<i64>, _>("revoked_at")?.map(db::ts),
        },
        version,
        uploaded_sha256: r.try_get("uploaded_sha256")?,
    })
}

/// Serialise OS release writers for the rest of the transaction (PostgreSQL row lock; SQLite's
/// write lock does it already).
pub async fn lock(tx: &mut Tx) -> StoreResult<()> {
    sqlx::query("UPDATE platform_meta SET value = value WHERE key = 'os_release_lock'")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn get_on<'e, E>(ex: E, image: ImageId) -> StoreResult<Option<StoredRelease>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {RELEASE_COLUMNS} FROM os_releases WHERE image_id = $1"
    )))
    .bind(image.to_string())
    .fetch_optional(ex)
    .await?;
    row.as_ref().map(release_from_row).transpose()
}

/// The release of `image`.
pub async fn get(db: &Db, image: ImageId) -> StoreResult<Option<StoredRelease>> {
    get_on(db.pool(), image).await
}

/// The release of `image`, read in the caller's write transaction.
pub async fn get_in(tx: &mut Tx, image: ImageId) -> StoreResult<Option<StoredRelease>> {
    get_on(&mut **tx, image).await
}

/// The newest version of every release (`retail_only`: of the Retail feed's), read in the
/// caller's write transaction.
pub async fn newest_version_in(tx: &mut Tx, retail_only: bool) -> StoreResult<Option<Version>> {
    let sql = if retail_only {
        "SELECT version_major, version_minor, version_patch FROM os_releases \
         WHERE retail_at IS NOT NULL \
         ORDER BY version_major DESC, version_minor DESC, version_patch DESC LIMIT 1"
    } else {
        "SELECT version_major, version_minor, version_patch FROM os_releases \
         ORDER BY version_major DESC, version_minor DESC, version_patch DESC LIMIT 1"
    };
    let row = sqlx::query(sql).fetch_optional(&mut **tx).await?;
    row.map(|r| {
        Ok((
            r.try_get("version_major")?,
            r.try_get("version_minor")?,
            r.try_get("version_patch")?,
        ))
    })
    .transpose()
}

/// Store a new release.
pub async fn insert(tx: &mut Tx, s: &StoredRelease) -> StoreResult<()> {
    let r = &s.release;
    // Checked by the caller (a package that large is refused before it is stored).
    let package_size = i64::try_from(r.package_size).unwrap_or(i64::MAX);
    sqlx::query(
        "INSERT INTO os_releases (id, image_id, name, version_major, version_minor, version_patch, \
         security_version, target_runtime_version, payload_sha256, package_sha256, package_size, \
         signer_key_id, uploaded_signer_key_id, uploaded_sha256, published_by, published_at, \
         retail_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
         $16, $17)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(r.image_id.to_string())
    .bind(&r.name)
    .bind(s.version.0)
    .bind(s.version.1)
    .bind(s.version.2)
    .bind(i64::from(r.security_version))
    .bind(i64::from(r.target_runtime_version))
    .bind(&r.payload_sha256)
    .bind(&r.package_sha256)
    .bind(package_size)
    .bind(&r.signer_key_id)
    .bind(&r.uploaded_signer_key_id)
    .bind(&s.uploaded_sha256)
    .bind(r.published_by.to_string())
    .bind(r.published_at.unix_timestamp())
    .bind(r.retail_at.map(|t| t.unix_timestamp()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Put the release of `image` in Retail at `at`.
pub async fn promote(tx: &mut Tx, image: ImageId, at: i64) -> StoreResult<()> {
    sqlx::query("UPDATE os_releases SET retail_at = $1 WHERE image_id = $2")
        .bind(at)
        .bind(image.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Revoke the release of `image` at `at`.
pub async fn revoke(tx: &mut Tx, image: ImageId, at: i64, by: UserId) -> StoreResult<()> {
    sqlx::query("UPDATE os_releases SET revoked_at = $1, revoked_by = $2 WHERE image_id = $3")
        .bind(at)
        .bind(by.to_string())
        .bind(image.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Up to `limit` releases (`retail_only`: of the Retail feed) published before the row `after`
/// (`""`: from the newest), newest first, each with its row ID (the page key).
pub async fn list(
    db: &Db,
    after: &str,
    retail_only: bool,
    limit: i64,
) -> StoreResult<Vec<(String, OsRelease)>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {RELEASE_COLUMNS} FROM os_releases WHERE ($1 = '' OR id < $1) \
         AND ($2 = 0 OR retail_at IS NOT NULL) ORDER BY id DESC LIMIT $3"
    )))
    .bind(after)
    .bind(i64::from(retail_only))
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get::<String, _>("id")?, release_from_row(r)?.release)))
        .collect()
}

/// The highest security version of `feed`'s releases that are not revoked, read in the caller's
/// write transaction.
pub async fn highest_security_version_in(tx: &mut Tx, feed: OsFeed) -> StoreResult<Option<i64>> {
    Ok(sqlx::query(
        "SELECT MAX(security_version) AS v FROM os_releases WHERE revoked_at IS NULL \
         AND ($1 = 'RetailEval' OR retail_at IS NOT NULL)",
    )
    .bind(feed.as_str())
    .fetch_one(&mut **tx)
    .await?
    .try_get("v")?)
}

/// Both feeds' policies (a feed never set has minimum 0 and no author).
pub async fn feed_policies(db: &Db) -> StoreResult<Vec<OsFeedPolicy>> {
    let rows = sqlx::query(
        "SELECT feed, minimum_security_version, updated_by, updated_at FROM os_feed_policies",
    )
    .fetch_all(db.pool())
    .await?;
    let mut out = Vec::new();
    for feed in [OsFeed::Retail, OsFeed::RetailEval] {
        let mut policy = OsFeedPolicy {
            feed,
            minimum_security_version: 0,
            updated_by: None,
            updated_at: None,
        };
        for r in rows
            .iter()
            .filter(|r| r.try_get::<String, _>("feed").ok().as_deref() == Some(feed.as_str()))
        {
            policy.minimum_security_version = to_u32(r.try_get("minimum_security_version")?)?;
            policy.updated_by = Some(parse(&r.try_get::<String, _>("updated_by")?, "user ID")?);
            policy.updated_at = Some(db::ts(r.try_get("updated_at")?));
        }
        out.push(policy);
    }
    Ok(out)
}

/// Store a feed's minimum security version.
pub async fn set_feed_minimum(
    tx: &mut Tx,
    feed: OsFeed,
    minimum: u32,
    by: UserId,
    at: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO os_feed_policies (feed, minimum_security_version, updated_by, updated_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (feed) DO UPDATE SET \
         minimum_security_version = $2, updated_by = $3, updated_at = $4",
    )
    .bind(feed.as_str())
    .bind(i64::from(minimum))
    .bind(by.to_string())
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
