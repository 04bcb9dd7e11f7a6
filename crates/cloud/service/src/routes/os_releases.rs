//! OS releases (docs/design.md §4): `/v1/os-releases` (publish, promote, revoke, list,
//! download). The build keys are `routes/os_release_keys.rs`', the feeds' policies
//! `routes/os_feeds.rs`'.
//!
//! Trust rule: the platform operator builds and signs an OS bundle with a build key registered
//! there (`POST /v1/os-release-keys`, platform operator); the service verifies the upload against
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

use crate::auth::Caller;
use crate::datastore::os_release_keys;
use crate::datastore::os_releases::{self, StoredRelease};
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::extract::{StrictQuery, path_id};
use crate::object_store::ObjectKey;
use crate::packages::{
    AuditRow, Expect, ImagePackage, commit_with_object, receive_package, resign_package,
    serve_package,
};
use crate::page::PageReq;
use crate::page::strip_row_ids;
use crate::signing_keys::trusted_from_pems;
use crate::state::AppState;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use ferro_pki::KeyName;
use ferro_wire::{
    ErrorBody, ImageId, OsFeed, OsRelease, OsReleaseQuery, Page, PublishOsReleaseQuery,
};
use serde_json::json;

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
    let trusted = trusted_from_pems(&os_release_keys::public_keys(&state.db).await?)?;
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
    os_releases::lock(&mut tx).await?;
    if let Some(existing) = os_releases::get_in(&mut tx, ImageId(m.image_id)).await? {
        if existing.uploaded_sha256 == uploaded_sha {
            return Ok((StatusCode::OK, Json(existing.release)));
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
    if let Some(newest) = os_releases::newest_version_in(&mut tx, false).await?
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
    if i64::try_from(release.package_size).is_err() {
        return Err(ApiError::invalid_body("the package is too large"));
    }
    let stored = StoredRelease {
        release,
        version: v,
        uploaded_sha256: uploaded_sha,
    };
    os_releases::insert(&mut tx, &stored).await?;
    let release = stored.release;
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
/// writers' lock), the image ID and the release as stored.
async fn operator_release(
    state: &AppState,
    caller: &Caller,
    image_id: &str,
) -> ApiResult<(db::Tx, ImageId, StoredRelease)> {
    caller.require_operator()?;
    let iid = path_id::<ImageId>(image_id, "imageId")?;
    let mut tx = state.db.begin_write().await?;
    os_releases::lock(&mut tx).await?;
    let stored = os_releases::get_in(&mut tx, iid)
        .await?
        .ok_or_else(|| ApiError::not_found("OS release"))?;
    Ok((tx, iid, stored))
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
    let (mut tx, iid, stored) = operator_release(&state, &caller, &image_id).await?;
    let mut release = stored.release;
    if release.retail_at.is_some() {
        return Ok(Json(release));
    }
    if release.revoked_at.is_some() {
        return Err(ApiError::conflict(
            "this OS release is revoked and cannot be promoted; publish a fixed release",
        ));
    }
    if let Some(newest) = os_releases::newest_version_in(&mut tx, true).await?
        && stored.version <= newest
    {
        return Err(ApiError::conflict(format!(
            "Retail already has release {}.{}.{}, newer than this one; promote a newer release",
            newest.0, newest.1, newest.2
        )));
    }
    let now = db::now();
    os_releases::promote(&mut tx, iid, now).await?;
    db::audit(
        &mut tx,
        None,
        Some(&caller.uid()),
        "os_release.promote",
        "os_release",
        &iid.to_string(),
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
    let retail_only = q.feed == Some(OsFeed::Retail);
    let items = os_releases::list(&state.db, &page.after, retail_only, page.fetch()).await?;
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
    let iid = path_id::<ImageId>(&image_id, "imageId")?;
    let stored = os_releases::get(&state.db, iid)
        .await?
        .ok_or_else(|| ApiError::not_found("OS release"))?;
    Ok(Json(stored.release))
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
    let iid = path_id::<ImageId>(&image_id, "imageId")?;
    let r = os_releases::get(&state.db, iid)
        .await?
        .ok_or_else(|| ApiError::not_found("OS release"))?
        .release;
    serve_package(
        &state,
        &headers,
        &r.package_sha256,
        r.package_size,
        &format!("{iid}.fsimg"),
    )
    .await
}

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
    let (mut tx, iid, stored) = operator_release(&state, &caller, &image_id).await?;
    let mut release = stored.release;
    if release.revoked_at.is_some() {
        return Ok(Json(release));
    }
    let now = db::now();
    os_releases::revoke(&mut tx, iid, now, caller.user.id).await?;
    db::audit(
        &mut tx,
        None,
        Some(&caller.uid()),
        "os_release.revoke",
        "os_release",
        &iid.to_string(),
        json!({ "version": release.version, "securityVersion": release.security_version }),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(image_id = %iid, version = %release.version, "OS release revoked");
    release.revoked_at = Some(db::ts(now));
    Ok(Json(release))
}
