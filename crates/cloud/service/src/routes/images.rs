//! `/v1/tenants/{tenantId}/images`: upload (verify against the tenant's developer keys, re-sign
//! with the tenant image key, store the production package), list, metadata and download.
//! The package plumbing it shares with OS releases is `crate::packages`.

use crate::auth::Caller;
use crate::authz::{self, TenantScope};
use crate::datastore::images;
use crate::db::{self, Tx};
use crate::error::{ApiError, ApiResult};
use crate::extract::{StrictQuery, path_id};
use crate::object_store::ObjectKey;
use crate::packages::{
    AuditRow, Expect, ImagePackage, commit_with_object, receive_package, resign_package,
    serve_package, wire_image_type,
};
use crate::page::PageReq;
use crate::page::strip_row_ids;
use crate::signing_keys::trusted_developer_keys;
use crate::state::AppState;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use ferro_pki::KeyName;
use ferro_wire::{ErrorBody, ErrorCode, Image, ImageId, ImageQuery, Page, Role, TenantId};
use serde_json::json;

fn tenant_ids(raw: &str) -> ApiResult<(TenantId, String)> {
    let t: TenantId = path_id(raw, "tenantId")?;
    Ok((t, t.to_string()))
}

// ---------------------------------------------------------------------------------------------
// Handlers

/// Upload an image package (Contributor). The body is the package file as `ferro image-package`
/// wrote it, signed by one of the tenant's developer keys. The service verifies it completely,
/// re-signs it with the tenant image key and stores that production package. Uploading the same
/// file again answers 200 with the stored image; another package with the same image ID is 409.
#[utoipa::path(post, path = "/v1/tenants/{tenantId}/images", tag = "images",
    request_body(content = ImagePackage, content_type = "application/octet-stream",
        description = "The image package file (at most the configured upload limit, 512 MiB by default)"),
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID")),
    responses((status = 201, description = "Stored", body = Image),
        (status = 200, description = "The same package was already uploaded", body = Image),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "conflict: another package with this image ID exists; storage_quota_exceeded: the tenant's image storage quota would be exceeded", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, description = "untrusted_signing_key, invalid_image or wrong_image_type", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn upload_image(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<Image>)> {
    let (t, tid) = tenant_ids(&tenant_id)?;
    // Authorise before reading a byte of the body.
    let reading = authz::authorize(state.db.pool(), &caller, t, Role::Contributor).await?;
    let staged = receive_package(&state, &headers, body).await?;
    let trusted = trusted_developer_keys(&state, &reading).await?;
    let signed = resign_package(
        &state,
        staged,
        trusted,
        KeyName::tenant_image(t.0),
        Expect::TenantImage,
    )
    .await?;
    let m = &signed.metadata;
    let image_id = m.image_id.to_string();
    let uploaded_sha = hex::encode(signed.uploaded_sha256);
    let mut tx = state.db.begin_write().await?;
    let scope = authz::authorize(&mut *tx, &caller, t, Role::Contributor).await?;
    db::lock_tenant(&mut tx, &tid).await?;
    if let Some(existing) = images::get_in(&mut tx, &scope, &ImageId(m.image_id)).await? {
        if existing.uploaded_sha256 == uploaded_sha {
            return Ok((StatusCode::OK, Json(existing)));
        }
        return Err(ApiError::conflict(format!(
            "the tenant already has image {image_id} with different content; image IDs are \
             unique: pack the new build again (a new image ID) and upload that"
        )));
    }
    check_image_quota(&state, &mut tx, &scope, signed.package_size).await?;
    let image = Image {
        id: ImageId(m.image_id),
        tenant_id: t,
        component_id: m.component_id,
        name: m.name.clone(),
        image_type: wire_image_type(m.image_type),
        version: m.version.to_string(),
        security_version: m.security_version,
        target_runtime_version: m.target_runtime_version,
        debug: m.debug,
        payload_size: m.payload_size,
        payload_sha256: hex::encode(m.payload_sha256),
        package_sha256: hex::encode(signed.package_sha256),
        package_size: signed.package_size,
        test_signed: false,
        signer_key_id: signed.signer.clone(),
        uploaded_signer_key_id: signed.uploaded_signer.clone(),
        uploaded_sha256: uploaded_sha,
        uploaded_by: caller.user.id,
        uploaded_at: db::ts(db::now()),
    };
    images::insert(&mut tx, &image, m).await?;
    let details = json!({
        "componentId": image.component_id, "name": image.name, "imageType": image.image_type,
        "version": image.version, "packageSha256": image.package_sha256,
        "uploadedSignerKeyId": image.uploaded_signer_key_id,
    });
    let uid = caller.uid();
    commit_with_object(
        &state,
        tx,
        &ObjectKey::image(&signed.package_sha256),
        &signed.package,
        AuditRow {
            tenant: Some(&tid),
            actor: &uid,
            action: "image.upload",
            object_type: "image",
            object_id: &image_id,
            details,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(image)))
}

/// Refuse an upload of `adding` bytes that would take `tenant` over its image storage quota
/// (`Config::tenant_image_quota_bytes`). Called in the upload's transaction after the tenant's
/// lock, so two concurrent uploads cannot both fit in the last free bytes.
async fn check_image_quota(
    state: &AppState,
    tx: &mut Tx,
    scope: &TenantScope,
    adding: u64,
) -> ApiResult<()> {
    let used = images::used_bytes_in(tx, scope).await?;
    let limit = state.config.tenant_image_quota_bytes;
    if used.saturating_add(adding) > limit {
        return Err(ApiError::new(
            ErrorCode::StorageQuotaExceeded,
            format!(
                "this image ({adding} bytes) would take the tenant's image storage to {} bytes, \
                 over its quota of {limit} bytes ({used} bytes used); nothing was stored. Ask \
                 the service operator to raise `tenant_image_quota_bytes` in ferro-service.toml",
                used.saturating_add(adding)
            ),
        ));
    }
    Ok(())
}

/// Delete an image (Contributor, as uploads): its row, its bytes from the tenant's image storage
/// quota and its package from the object store. Deployments are history: those that listed it
/// keep its ID, name, type and version, marked `deletedAt`. Refused (`image_in_use`, 409) while
/// a device is or may still be given it or runs it, naming each reason: it is in its group's
/// current deployment, or the base of that deployment's rollout; devices hold a target set from
/// a deployment listing it that they may still fetch; devices last reported it installed.
/// Answers the deleted image.
#[utoipa::path(delete, path = "/v1/tenants/{tenantId}/images/{imageId}", tag = "images",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("imageId" = String, Path, format = Uuid, description = "Image ID")),
    responses((status = 200, description = "Deleted; the image as it was", body = Image),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "image_in_use: a device is or may still be given it, or \
            runs it", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_image(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant_id, image_id)): Path<(String, String)>,
) -> ApiResult<Json<Image>> {
    let (t, tid) = tenant_ids(&tenant_id)?;
    let iid = path_id::<ImageId>(&image_id, "imageId")?;
    let mut tx = state.db.begin_write().await?;
    let scope = authz::authorize(&mut *tx, &caller, t, Role::Contributor).await?;
    // Serialised with uploads and new deployments of the tenant.
    db::lock_tenant(&mut tx, &tid).await?;
    let (row_id, image) = images::get_row_in(&mut tx, &scope, &iid)
        .await?
        .ok_or_else(|| ApiError::not_found("image"))?;
    let now = state.clock.unix();
    let blockers = images::blockers_in(&mut tx, &scope, &row_id, &iid, now).await?;
    if !blockers.is_empty() {
        return Err(ApiError::new(
            ErrorCode::ImageInUse,
            in_use_message(&iid, &blockers),
        ));
    }
    let key = format!("images/{}", image.package_sha256);
    images::delete_in(&mut tx, &scope, &row_id, &key, now).await?;
    db::audit(
        &mut tx,
        Some(&tid),
        Some(&caller.uid()),
        "image.delete",
        "image",
        &iid.to_string(),
        json!({ "componentId": image.component_id, "name": image.name,
            "version": image.version, "packageSha256": image.package_sha256,
            "packageSize": image.package_size, "listedBy": blockers.listed_by }),
    )
    .await?;
    tx.commit().await?;
    // The row and the intent are committed: the bytes are off the quota. Delete the object now
    // (a failure leaves the intent for the next run, never a row without its object).
    if let Err(e) = crate::packages::finish_object_deletions(&state).await {
        tracing::warn!(error = %e, "image deleted; its object stays pending deletion");
    }
    Ok(Json(image))
}

/// The `image_in_use` answer: each reason the image stays, and what to do about it.
fn in_use_message(iid: &ImageId, b: &images::Blockers) -> String {
    let mut reasons = Vec::new();
    for (d, g) in &b.current {
        reasons.push(format!(
            "it is in deployment {d}, the current deployment of device group {g} (deploy \
             another image of its component first)"
        ));
    }
    for (d, g) in &b.rollout_base {
        reasons.push(format!(
            "it is in deployment {d}, the base of the rollout of device group {g}'s current \
             deployment: devices outside the waves are given it"
        ));
    }
    for (d, n) in &b.device_sets {
        reasons.push(format!(
            "{n} device(s) hold a target set from deployment {d} that they may still fetch \
             (unexpired, or kept outside a rollout's waves)"
        ));
    }
    if !b.installed_on.is_empty() {
        let more = b.installed_on.len() > images::MAX_NAMED_DEVICES;
        let named: Vec<&str> = b
            .installed_on
            .iter()
            .take(images::MAX_NAMED_DEVICES)
            .map(String::as_str)
            .collect();
        reasons.push(format!(
            "device(s) {}{} last reported it installed",
            named.join(", "),
            if more { " and more" } else { "" }
        ));
    }
    format!(
        "image {iid} is still in use, nothing was deleted: {}. Superseded deployments do not \
         keep an image: their history keeps its ID, name and version",
        reasons.join("; ")
    )
}

/// The tenant's images (any role), in upload order; `componentId` filters.
#[utoipa::path(get, path = "/v1/tenants/{tenantId}/images", tag = "images",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"), ImageQuery),
    responses((status = 200, body = Page<Image>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_images(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant_id): Path<String>,
    StrictQuery(q): StrictQuery<ImageQuery>,
) -> ApiResult<Json<Page<Image>>> {
    let (t, _) = tenant_ids(&tenant_id)?;
    let scope = authz::authorize(state.db.pool(), &caller, t, Role::Reader).await?;
    let page = PageReq::new(q.limit, q.continuation.as_deref())?;
    let items = images::list(&state.db, &scope, q.component_id, &page.after, page.fetch()).await?;
    Ok(Json(strip_row_ids(page.finish(items, |x| x.0.clone()))))
}

/// One image's metadata (any role).
#[utoipa::path(get, path = "/v1/tenants/{tenantId}/images/{imageId}", tag = "images",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("imageId" = String, Path, format = Uuid, description = "Image ID")),
    responses((status = 200, body = Image), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_image(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant_id, image_id)): Path<(String, String)>,
) -> ApiResult<Json<Image>> {
    let (t, _) = tenant_ids(&tenant_id)?;
    let iid = path_id::<ImageId>(&image_id, "imageId")?;
    let scope = authz::authorize(state.db.pool(), &caller, t, Role::Reader).await?;
    let image = images::get(&state.db, &scope, &iid)
        .await?
        .ok_or_else(|| ApiError::not_found("image"))?;
    Ok(Json(image))
}

/// Download the production package (any role): the uploaded package re-signed with the tenant
/// image key. Supports `Range` (one range; 206), `If-Range` and `If-None-Match` (304); the
/// `ETag` is the package's SHA-256.
#[utoipa::path(get, path = "/v1/tenants/{tenantId}/images/{imageId}/content", tag = "images",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("imageId" = String, Path, format = Uuid, description = "Image ID")),
    responses((status = 200, description = "The package", content_type = "application/octet-stream", body = ImagePackage),
        (status = 206, description = "The requested range", content_type = "application/octet-stream", body = ImagePackage),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 416, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_image_content(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant_id, image_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (t, _) = tenant_ids(&tenant_id)?;
    let iid = path_id::<ImageId>(&image_id, "imageId")?;
    let scope = authz::authorize(state.db.pool(), &caller, t, Role::Reader).await?;
    let image = images::get(&state.db, &scope, &iid)
        .await?
        .ok_or_else(|| ApiError::not_found("image"))?;
    serve_package(
        &state,
        &headers,
        &image.package_sha256,
        image.package_size,
        &format!("{iid}.fsimg"),
    )
    .await
}
