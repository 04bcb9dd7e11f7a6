//! OS feeds (docs/design.md §4): `/v1/os-release-keys` (the build keys whose signatures the
//! platform accepts on OS bundles) and `/v1/os-releases` (publish, promote, list, download).
//!
//! Trust rule: the platform operator builds and signs an OS bundle with a build key registered
//! here (`POST /v1/os-release-keys`, platform operator); the service verifies the upload against
//! the registered build keys only, then re-signs it with the platform OS release key
//! (`platform/os-release`), the key devices trust for OS bundles (it is in the root-signed key
//! list). Build keys never reach devices, so one can be removed without touching a device.
//!
//! Feeds: every release is in RetailEval; publishing with `feed=Retail` or promoting
//! (`POST /v1/os-releases/{imageId}/promote`) puts it in Retail too. Versions grow with every
//! publication (409 otherwise), and a promotion must be newer than Retail's newest release.
//!
//! What devices may run (docs/attestation.md, "OS appraisal"): a release can be revoked
//! (`POST /v1/os-releases/{imageId}/revoke`) and each feed has a minimum security version
//! (`PATCH /v1/os-feeds/{feed}`); target sets never offer, and the appraisal never trusts, a
//! revoked release or one below its feed's minimum.

use crate::auth::{Caller, parse_id};
use crate::datastore::{to_u32, to_u64, version_string};
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, StrictQuery, path_id};
use crate::object_store::ObjectKey;
use crate::packages::{
    AuditRow, Expect, ImagePackage, commit_with_object, receive_package, resign_package,
    serve_package,
};
use crate::page::PageReq;
use crate::page::strip_row_ids;
use crate::signing_keys::{key_from_row, parse_key_request, path_key_id, trusted_from_rows};
use crate::state::AppState;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use ferro_pki::KeyName;
use ferro_wire::{
    ErrorBody, ErrorCode, ImageId, MAX_SIGNING_KEYS, OsFeed, OsFeedPolicy, OsRelease,
    OsReleaseQuery, Page, PageQuery, PublishOsReleaseQuery, RegisterSigningKeyRequest,
    RegisteredSigningKey, SetOsFeedPolicyRequest,
};
use serde_json::json;
use sqlx::Row;

// ---------------------------------------------------------------------------------------------
// OS release build keys

/// Register an OS release build key (platform operator).
#[utoipa::path(post, path = "/v1/os-release-keys", tag = "os-releases",
    request_body = RegisterSigningKeyRequest,
    responses((status = 201, body = RegisteredSigningKey), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn add_os_release_key(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<RegisterSigningKeyRequest>,
) -> ApiResult<(StatusCode, Json<RegisteredSigningKey>)> {
    caller.require_operator()?;
    let key = parse_key_request(&req)?;
    let mut tx = state.db.begin_write().await?;
    lock_releases(&mut tx).await?;
    let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM os_release_keys")
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
    if n >= MAX_SIGNING_KEYS as i64 {
        return Err(ApiError::conflict(format!(
            "{MAX_SIGNING_KEYS} OS release keys are registered; remove unused ones first"
        )));
    }
    let out = RegisteredSigningKey {
        key_id: key.key_id().to_string(),
        tenant_id: None,
        name: req.name,
        public_key_pem: key.to_pem(),
        created_by: caller.user.id,
        created_at: db::ts(db::now()),
    };
    sqlx::query(
        "INSERT INTO os_release_keys (id, key_id, name, public_key_pem, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(&out.key_id)
    .bind(&out.name)
    .bind(&out.public_key_pem)
    .bind(caller.uid())
    .bind(out.created_at.unix_timestamp())
    .execute(&mut *tx)
    .await
    .map_err(|e| ApiError::from(e).on_unique("this OS release key is already registered"))?;
    db::audit(
        &mut tx,
        None,
        Some(&caller.uid()),
        "os_release_key.create",
        "os_release_key",
        &out.key_id,
        json!({ "name": out.name }),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// The registered OS release build keys (platform operator).
#[utoipa::path(get, path = "/v1/os-release-keys", tag = "os-releases", params(PageQuery),
    responses((status = 200, body = Page<RegisteredSigningKey>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_os_release_keys(
    State(state): State<AppState>,
    caller: Caller,
    StrictQuery(q): StrictQuery<PageQuery>,
) -> ApiResult<Json<Page<RegisteredSigningKey>>> {
    caller.require_operator()?;
    let page = PageReq::new(q.limit, q.continuation.as_deref())?;
    let rows = sqlx::query(
        "SELECT id, key_id, name, public_key_pem, created_by, created_at FROM os_release_keys \
         WHERE id > $1 ORDER BY id LIMIT $2",
    )
    .bind(&page.after)
    .bind(page.fetch())
    .fetch_all(state.db.pool())
    .await?;
    let items = rows
        .iter()
        .map(|r| Ok((r.try_get::<String, _>("id")?, key_from_row(r, None)?)))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(strip_row_ids(page.finish(items, |x| x.0.clone()))))
}

/// Remove an OS release build key (platform operator). Published releases stay (they carry the
/// platform OS release key's signature).
#[utoipa::path(delete, path = "/v1/os-release-keys/{keyId}", tag = "os-releases",
    params(("keyId" = String, Path, description = "Key ID (64 hex)")),
    responses((status = 204, description = "Removed"), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_os_release_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(key_id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_operator()?;
    let kid = path_key_id(&key_id)?;
    let mut tx = state.db.begin_write().await?;
    let r = sqlx::query("DELETE FROM os_release_keys WHERE key_id = $1")
        .bind(&kid)
        .execute(&mut *tx)
        .await?;
    if r.rows_affected() == 0 {
        return Err(ApiError::not_found("OS release key"));
    }
    db::audit(
        &mut tx,
        None,
        Some(&caller.uid()),
        "os_release_key.delete",
        "os_release_key",
        &kid,
        json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------
// OS releases

/// Serialise OS release writers (PostgreSQL row lock; SQLite's write lock does it already).
async fn lock_releases(tx: &mut db::Tx) -> ApiResult<()> {
    sqlx::query("UPDATE platform_meta SET value = value WHERE key = 'os_release_lock'")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

const RELEASE_COLUMNS: &str = "id, image_id, name, version_major, version_minor, version_patch, \
    security_version, target_runtime_version, payload_sha256, package_sha256, package_size, \
    signer_key_id, uploaded_signer_key_id, uploaded_sha256, published_by, published_at, retail_at, \
    revoked_at";

fn release_from_row(r: &sqlx::any::AnyRow) -> ApiResult<OsRelease> {
    let retail_at: Option<i64> = r.try_get("retail_at")?;
    Ok(OsRelease {
        image_id: parse_id(&r.try_get::<String, _>("image_id")?)?,
        feed: if retail_at.is_some() {
            OsFeed::Retail
        } else {
            OsFeed::RetailEval
        },
        version: version_string(r)?,
        security_version: to_u32(r.try_get("security_version")?)?,
        target_runtime_version: to_u32(r.try_get("target_runtime_version")?)?,
        name: r.try_get("name")?,
        payload_sha256: r.try_get("payload_sha256")?,
        package_sha256: r.try_get("package_sha256")?,
        package_size: to_u64(r.try_get("package_size")?)?,
        signer_key_id: r.try_get("signer_key_id")?,
        uploaded_signer_key_id: r.try_get("uploaded_signer_key_id")?,
        published_by: parse_id(&r.try_get::<String, _>("published_by")?)?,
        published_at: db::ts(r.try_get("published_at")?),
        retail_at: retail_at.map(db::ts),
        revoked_at: r.try_get::<Option<i64>, _>("revoked_at")?.map(db::ts),
    })
}

async fn release_row<'e, E>(ex: E, image_id: &str) -> ApiResult<Option<sqlx::any::AnyRow>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    Ok(sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {RELEASE_COLUMNS} FROM os_releases WHERE image_id = $1"
    )))
    .bind(image_id)
    .fetch_optional(ex)
    .await?)
}

/// The newest version in the releases matching `filter` (a fixed SQL condition).
async fn newest_version(tx: &mut db::Tx, retail_only: bool) -> ApiResult<Option<(i64, i64, i64)>> {
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

/// Publish an OS release (platform operator). The body is an OS bundle package
/// (`ferro image-package pack-os`) signed by a registered OS release build key; the service
/// verifies it, re-signs it with the platform OS release key and publishes it to `feed`
/// (`RetailEval`, or `Retail`, which is both). Its version must be greater than every release's.
/// Publishing the same file again answers 200.
#[utoipa::path(post, path = "/v1/os-releases", tag = "os-releases",
    request_body(content = ImagePackage, content_type = "application/octet-stream",
        description = "The OS bundle package file"),
    params(PublishOsReleaseQuery),
    responses((status = 201, description = "Published", body = OsRelease),
        (status = 200, description = "The same package was already published", body = OsRelease),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "Version not newer, or image ID taken", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, description = "untrusted_signing_key, invalid_image or wrong_image_type", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn publish_os_release(
    State(state): State<AppState>,
    caller: Caller,
    StrictQuery(q): StrictQuery<PublishOsReleaseQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<OsRelease>)> {
    caller.require_operator()?;
    let staged = receive_package(&state, &headers, body).await?;
    let rows = sqlx::query("SELECT public_key_pem FROM os_release_keys")
        .fetch_all(state.db.pool())
        .await?;
    let trusted = trusted_from_rows(&rows)?;
    let signed = resign_package(
        &state,
        staged,
        trusted,
        KeyName::platform_os_release(),
        Expect::OsRelease,
    )
    .await?;
    let m = &signed.metadata;
    let image_id = m.image_id.to_string();
    let uploaded_sha = hex::encode(signed.uploaded_sha256);
    let mut tx = state.db.begin_write().await?;
    lock_releases(&mut tx).await?;
    if let Some(row) = release_row(&mut *tx, &image_id).await? {
        let existing = release_from_row(&row)?;
        let same: String = row.try_get("uploaded_sha256")?;
        if same == uploaded_sha {
            return Ok((StatusCode::OK, Json(existing)));
        }
        return Err(ApiError::conflict(format!(
            "OS release {image_id} exists with different content; pack the new build again (a \
             new image ID) and publish that"
        )));
    }
    let v = (
        i64::from(m.version.major),
        i64::from(m.version.minor),
        i64::from(m.version.patch),
    );
    if let Some(newest) = newest_version(&mut tx, false).await?
        && v <= newest
    {
        return Err(ApiError::conflict(format!(
            "OS release versions must grow: the newest release is {}.{}.{}; pack the OS with a \
             higher version",
            newest.0, newest.1, newest.2
        )));
    }
    let now = db::now();
    let retail_at = (q.feed == OsFeed::Retail).then_some(now);
    let release = OsRelease {
        image_id: ImageId(m.image_id),
        feed: q.feed,
        version: m.version.to_string(),
        security_version: m.security_version,
        target_runtime_version: m.target_runtime_version,
        name: m.name.clone(),
        payload_sha256: hex::encode(m.payload_sha256),
        package_sha256: hex::encode(signed.package_sha256),
        package_size: signed.package_size,
        signer_key_id: signed.signer.clone(),
        uploaded_signer_key_id: signed.uploaded_signer.clone(),
        published_by: caller.user.id,
        published_at: db::ts(now),
        retail_at: retail_at.map(db::ts),
        revoked_at: None,
    };
    let package_size = i64::try_from(release.package_size)
        .map_err(|_| ApiError::invalid_body("the package is too large"))?;
    sqlx::query(
        "INSERT INTO os_releases (id, image_id, name, version_major, version_minor, version_patch, \
         security_version, target_runtime_version, payload_sha256, package_sha256, package_size, \
         signer_key_id, uploaded_signer_key_id, uploaded_sha256, published_by, published_at, \
         retail_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
         $16, $17)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(&image_id)
    .bind(&release.name)
    .bind(v.0)
    .bind(v.1)
    .bind(v.2)
    .bind(i64::from(m.security_version))
    .bind(i64::from(m.target_runtime_version))
    .bind(&release.payload_sha256)
    .bind(&release.package_sha256)
    .bind(package_size)
    .bind(&release.signer_key_id)
    .bind(&release.uploaded_signer_key_id)
    .bind(&uploaded_sha)
    .bind(caller.uid())
    .bind(now)
    .bind(retail_at)
    .execute(&mut *tx)
    .await?;
    let uid = caller.uid();
    commit_with_object(
        &state,
        tx,
        &ObjectKey::image(&signed.package_sha256),
        &signed.package,
        AuditRow {
            tenant: None,
            actor: &uid,
            action: "os_release.publish",
            object_type: "os_release",
            object_id: &image_id,
            details: json!({
                "feed": release.feed, "version": release.version,
                "packageSha256": release.package_sha256,
                "uploadedSignerKeyId": release.uploaded_signer_key_id,
            }),
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(release)))
}

/// For a platform operator's change of one release: the write transaction (holding the release
/// writers' lock), the image ID, its row and the release.
async fn operator_release(
    state: &AppState,
    caller: &Caller,
    image_id: &str,
) -> ApiResult<(db::Tx, String, sqlx::any::AnyRow, OsRelease)> {
    caller.require_operator()?;
    let iid = path_id::<ImageId>(image_id, "imageId")?.to_string();
    let mut tx = state.db.begin_write().await?;
    lock_releases(&mut tx).await?;
    let row = release_row(&mut *tx, &iid)
        .await?
        .ok_or_else(|| ApiError::not_found("OS release"))?;
    let release = release_from_row(&row)?;
    Ok((tx, iid, row, release))
}

/// Promote a RetailEval release to Retail (platform operator). It must be newer than Retail's
/// newest release; promoting a release already in Retail answers it unchanged.
#[utoipa::path(post, path = "/v1/os-releases/{imageId}/promote", tag = "os-releases",
    params(("imageId" = String, Path, format = Uuid, description = "Image ID of the release")),
    responses((status = 200, body = OsRelease), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Retail already has a newer release, or the release is revoked", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn promote_os_release(
    State(state): State<AppState>,
    caller: Caller,
    Path(image_id): Path<String>,
) -> ApiResult<Json<OsRelease>> {
    let (mut tx, iid, row, mut release) = operator_release(&state, &caller, &image_id).await?;
    if release.retail_at.is_some() {
        return Ok(Json(release));
    }
    if release.revoked_at.is_some() {
        return Err(ApiError::conflict(
            "this OS release is revoked and cannot be promoted; publish a fixed release",
        ));
    }
    let v: (i64, i64, i64) = (
        row.try_get("version_major")?,
        row.try_get("version_minor")?,
        row.try_get("version_patch")?,
    );
    if let Some(newest) = newest_version(&mut tx, true).await?
        && v <= newest
    {
        return Err(ApiError::conflict(format!(
            "Retail already has release {}.{}.{}, newer than this one; promote a newer release",
            newest.0, newest.1, newest.2
        )));
    }
    let now = db::now();
    sqlx::query("UPDATE os_releases SET retail_at = $1 WHERE image_id = $2")
        .bind(now)
        .bind(&iid)
        .execute(&mut *tx)
        .await?;
    db::audit(
        &mut tx,
        None,
        Some(&caller.uid()),
        "os_release.promote",
        "os_release",
        &iid,
        json!({ "version": release.version }),
    )
    .await?;
    tx.commit().await?;
    release.retail_at = Some(db::ts(now));
    release.feed = OsFeed::Retail;
    Ok(Json(release))
}

/// The OS releases, newest first (any authenticated user); `feed` filters (`RetailEval` holds
/// every release, `Retail` the released ones).
#[utoipa::path(get, path = "/v1/os-releases", tag = "os-releases", params(OsReleaseQuery),
    responses((status = 200, body = Page<OsRelease>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_os_releases(
    State(state): State<AppState>,
    _caller: Caller,
    StrictQuery(q): StrictQuery<OsReleaseQuery>,
) -> ApiResult<Json<Page<OsRelease>>> {
    let page = PageReq::new(q.limit, q.continuation.as_deref())?;
    let retail_only = i64::from(q.feed == Some(OsFeed::Retail));
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {RELEASE_COLUMNS} FROM os_releases WHERE ($1 = '' OR id < $1) \
         AND ($2 = 0 OR retail_at IS NOT NULL) ORDER BY id DESC LIMIT $3"
    )))
    .bind(&page.after)
    .bind(retail_only)
    .bind(page.fetch())
    .fetch_all(state.db.pool())
    .await?;
    let items = rows
        .iter()
        .map(|r| Ok((r.try_get::<String, _>("id")?, release_from_row(r)?)))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(strip_row_ids(page.finish(items, |x| x.0.clone()))))
}

/// One OS release (any authenticated user).
#[utoipa::path(get, path = "/v1/os-releases/{imageId}", tag = "os-releases",
    params(("imageId" = String, Path, format = Uuid, description = "Image ID of the release")),
    responses((status = 200, body = OsRelease), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_os_release(
    State(state): State<AppState>,
    _caller: Caller,
    Path(image_id): Path<String>,
) -> ApiResult<Json<OsRelease>> {
    let iid = path_id::<ImageId>(&image_id, "imageId")?.to_string();
    let row = release_row(state.db.pool(), &iid)
        .await?
        .ok_or_else(|| ApiError::not_found("OS release"))?;
    Ok(Json(release_from_row(&row)?))
}

/// Download an OS release's signed package (any authenticated user). Supports `Range` (206),
/// `If-Range` and `If-None-Match` (304); the `ETag` is the package's SHA-256.
#[utoipa::path(get, path = "/v1/os-releases/{imageId}/content", tag = "os-releases",
    params(("imageId" = String, Path, format = Uuid, description = "Image ID of the release")),
    responses((status = 200, description = "The package", content_type = "application/octet-stream", body = ImagePackage),
        (status = 206, description = "The requested range", content_type = "application/octet-stream", body = ImagePackage),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 416, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_os_release_content(
    State(state): State<AppState>,
    _caller: Caller,
    Path(image_id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let iid = path_id::<ImageId>(&image_id, "imageId")?.to_string();
    let row = release_row(state.db.pool(), &iid)
        .await?
        .ok_or_else(|| ApiError::not_found("OS release"))?;
    let sha: String = row.try_get("package_sha256")?;
    let len = to_u64(row.try_get("package_size")?)?;
    serve_package(&state, &headers, &sha, len, &format!("{iid}.fsimg")).await
}

// ---------------------------------------------------------------------------------------------
// Revocation and feed minimums

/// Revoke an OS release (platform operator), for good: no target set offers it again and a
/// device that runs it attests Untrusted (`os_release_revoked`) until it runs another release.
/// Revoking a revoked release answers it unchanged.
#[utoipa::path(post, path = "/v1/os-releases/{imageId}/revoke", tag = "os-releases",
    params(("imageId" = String, Path, format = Uuid, description = "Image ID of the release")),
    responses((status = 200, body = OsRelease), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke_os_release(
    State(state): State<AppState>,
    caller: Caller,
    Path(image_id): Path<String>,
) -> ApiResult<Json<OsRelease>> {
    let (mut tx, iid, _, mut release) = operator_release(&state, &caller, &image_id).await?;
    if release.revoked_at.is_some() {
        return Ok(Json(release));
    }
    let now = db::now();
    sqlx::query("UPDATE os_releases SET revoked_at = $1, revoked_by = $2 WHERE image_id = $3")
        .bind(now)
        .bind(caller.uid())
        .bind(&iid)
        .execute(&mut *tx)
        .await?;
    db::audit(
        &mut tx,
        None,
        Some(&caller.uid()),
        "os_release.revoke",
        "os_release",
        &iid,
        json!({ "version": release.version, "securityVersion": release.security_version }),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(image_id = %iid, version = %release.version, "OS release revoked");
    release.revoked_at = Some(db::ts(now));
    Ok(Json(release))
}

fn feed_param(raw: &str) -> ApiResult<OsFeed> {
    raw.parse().map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidId,
            "the feed must be `Retail` or `RetailEval`",
        )
    })
}

async fn feed_policies<'e, E>(ex: E) -> ApiResult<Vec<OsFeedPolicy>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let rows = sqlx::query(
        "SELECT feed, minimum_security_version, updated_by, updated_at FROM os_feed_policies",
    )
    .fetch_all(ex)
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
            policy.updated_by = Some(parse_id(&r.try_get::<String, _>("updated_by")?)?);
            policy.updated_at = Some(db::ts(r.try_get("updated_at")?));
        }
        out.push(policy);
    }
    Ok(out)
}

/// The OS feeds' policies (any authenticated user): both feeds, with their minimum security
/// versions (0 when never set).
#[utoipa::path(get, path = "/v1/os-feeds", tag = "os-releases",
    responses((status = 200, body = Vec<OsFeedPolicy>), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_os_feeds(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<Json<Vec<OsFeedPolicy>>> {
    Ok(Json(feed_policies(state.db.pool()).await?))
}

/// Set a feed's minimum security version (platform operator). Devices of the feed's groups (and,
/// for Retail, devices in no group) are then offered only releases at or above it, and attest
/// Untrusted (`os_below_minimum_security_version`) while they run an older one. It may not
/// exceed the highest security version of the feed's releases that are not revoked (409), so
/// the feed always has an OS to offer. Lowering it is allowed (to undo a mistake) and audited.
#[utoipa::path(patch, path = "/v1/os-feeds/{feed}", tag = "os-releases",
    params(("feed" = String, Path, description = "Retail or RetailEval")),
    request_body = SetOsFeedPolicyRequest,
    responses((status = 200, body = OsFeedPolicy), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "No release of the feed that is not revoked has that security version", body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_os_feed_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path(feed): Path<String>,
    JsonBody(req): JsonBody<SetOsFeedPolicyRequest>,
) -> ApiResult<Json<OsFeedPolicy>> {
    caller.require_operator()?;
    let feed = feed_param(&feed)?;
    let minimum = req.minimum_security_version;
    let mut tx = state.db.begin_write().await?;
    lock_releases(&mut tx).await?;
    let highest: Option<i64> = sqlx::query(
        "SELECT MAX(security_version) AS v FROM os_releases WHERE revoked_at IS NULL \
         AND ($1 = 'RetailEval' OR retail_at IS NOT NULL)",
    )
    .bind(feed.as_str())
    .fetch_one(&mut *tx)
    .await?
    .try_get("v")?;
    if minimum > 0 && highest.is_none_or(|h| h < i64::from(minimum)) {
        return Err(ApiError::conflict(format!(
            "no {} release that is not revoked has security version {minimum} or higher (the \
             highest is {}); publish (or promote) such a release first, then raise the minimum",
            feed.as_str(),
            highest.map_or_else(|| "none".to_string(), |h| h.to_string())
        )));
    }
    let now = db::now();
    sqlx::query(
        "INSERT INTO os_feed_policies (feed, minimum_security_version, updated_by, updated_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (feed) DO UPDATE SET \
         minimum_security_version = $2, updated_by = $3, updated_at = $4",
    )
    .bind(feed.as_str())
    .bind(i64::from(minimum))
    .bind(caller.uid())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    db::audit(
        &mut tx,
        None,
        Some(&caller.uid()),
        "os_feed.set_minimum_security_version",
        "os_feed",
        feed.as_str(),
        json!({ "minimumSecurityVersion": minimum }),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(
        feed = feed.as_str(),
        minimum,
        "OS feed minimum security version set"
    );
    Ok(Json(OsFeedPolicy {
        feed,
        minimum_security_version: minimum,
        updated_by: Some(caller.user.id),
        updated_at: Some(db::ts(now)),
    }))
}
