//! Over-the-air updates (docs/updates.md). Device routes, authenticated by the device
//! certificate ([`AuthenticatedDevice`]): the target set (`ETag`/304), content-addressed image
//! downloads with `Range` limited to what the device's target set names, status reports and the
//! update-now long poll. Management routes: deployment status, targeted images, update-now.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64ct::{Base64, Encoding};
use ferro_wire::{
    DeviceDeploymentStatus, DeviceTargetSet, ErrorBody, ErrorCode, InstalledImage,
    MAX_REPORTED_IMAGES, MAX_SIGNAL_WAIT_SECONDS, MAX_UPDATE_DETAIL_LEN, Role, TargetedImage,
    TargetedImages, UpdateNowResult, UpdateSignal, UpdateState, UpdateStatusReport,
    normalize_device_id,
};
use serde::Deserialize;
use serde_json::json;
use sqlx::Row;

use crate::auth::TenantCaller;
use crate::authz;
use crate::db;
use crate::device_auth::AuthenticatedDevice;
use crate::device_events::{
    BATCH_ID_RETENTION_SECS, DeviceEvent, event_cap, events_in_window, record_device_events,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, StrictQuery, path_id};
use crate::packages::serve_package;
use crate::rollouts;
use crate::state::AppState;
use crate::targets::{self, current_target};

/// The validator of a device's target set: its version and its expiry. The expiry is part of it
/// because an unchanged set is re-signed with a later expiry when half its life is over: a
/// device that holds the older signature must get the new one (200), not 304, or it would
/// freeze when its copy expires although the service has a fresh one.
fn etag(version: u64, expires_at: time::OffsetDateTime) -> String {
    format!("\"v{version}-{}\"", expires_at.unix_timestamp())
}

fn header(s: &str) -> ApiResult<HeaderValue> {
    HeaderValue::from_str(s).map_err(|_| ApiError::Internal("header value".into()))
}

/// The device's current target set (device certificate). `ETag` is `"v<version>-<expiry>"`
/// (expiry in Unix seconds); a matching `If-None-Match` gets 304 without a body, which is what a
/// device that checks often mostly gets.
#[utoipa::path(get, path = "/v1/device/target-set", tag = "updates",
    responses((status = 200, body = DeviceTargetSet),
        (status = 304, description = "Not modified: the device holds this version"),
        (status = 401, description = "No valid device certificate", body = ErrorBody)),
    security(("deviceCertificate" = [])))]
pub async fn device_target_set(
    State(state): State<AppState>,
    AuthenticatedDevice(device): AuthenticatedDevice,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let target = current_target(&state, &device.device_id)
        .await?
        .ok_or_else(|| ApiError::not_found("device"))?;
    let tag = etag(target.version, target.expires_at);
    let matches = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut resp = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Json(DeviceTargetSet {
            version: target.version,
            target_set: Base64::encode_string(&target.signed),
            ownership: Base64::encode_string(&target.ownership),
        })
        .into_response()
    };
    resp.headers_mut().insert(ETAG, header(&tag)?);
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// Download a package by its SHA-256 (device certificate): only a package that the device's
/// current target set names (anything else is 404, as a missing one). `Range` resumes.
#[utoipa::path(get, path = "/v1/device/images/{packageSha256}", tag = "updates",
    params(("packageSha256" = String, Path, description = "SHA-256 of the package, 64 lowercase hex")),
    responses((status = 200, description = "The package", content_type = "application/octet-stream"),
        (status = 206, description = "The requested range", content_type = "application/octet-stream"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 416, body = ErrorBody)),
    security(("deviceCertificate" = [])))]
pub async fn device_image(
    State(state): State<AppState>,
    AuthenticatedDevice(device): AuthenticatedDevice,
    Path(sha): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let mut wanted = [0u8; 32];
    if sha.len() != 64
        || sha.bytes().any(|b| b.is_ascii_uppercase())
        || hex::decode_to_slice(&sha, &mut wanted).is_err()
    {
        return Err(ApiError::new(
            ErrorCode::InvalidId,
            "`packageSha256` must be 64 lowercase hexadecimal characters (a package's SHA-256 \
             from the target set)",
        ));
    }
    let target = current_target(&state, &device.device_id)
        .await?
        .ok_or_else(|| ApiError::not_found("device"))?;
    let set = targets::content(&target.signed)?;
    let image = set
        .images
        .iter()
        .find(|i| i.package_sha256 == wanted)
        .ok_or_else(|| ApiError::not_found("image in this device's target set"))?;
    serve_package(
        &state,
        &headers,
        &sha,
        image.package_size,
        &format!("{}.fsimg", image.image_id),
    )
    .await
}

/// Report the device's update state (device certificate). Failures are also stored as device
/// events for the error report, and count against the rollout of the deployment whose images
/// the device was given, which pauses when they exceed its threshold.
#[utoipa::path(post, path = "/v1/device/update-status", tag = "updates",
    request_body = UpdateStatusReport,
    responses((status = 204, description = "Recorded"), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("deviceCertificate" = [])))]
pub async fn device_update_status(
    State(state): State<AppState>,
    AuthenticatedDevice(device): AuthenticatedDevice,
    JsonBody(report): JsonBody<UpdateStatusReport>,
) -> ApiResult<StatusCode> {
    if report
        .detail
        .as_ref()
        .is_some_and(|d| d.chars().count() > MAX_UPDATE_DETAIL_LEN)
    {
        return Err(ApiError::invalid_body(
            "`detail` is longer than 1024 characters",
        ));
    }
    if report.installed.len() > MAX_REPORTED_IMAGES {
        return Err(ApiError::invalid_body(
            "`installed` lists more than 64 images",
        ));
    }
    if report
        .installed
        .iter()
        .any(|i| i.kind.len() > 16 || i.version.len() > 32)
    {
        return Err(ApiError::invalid_body(
            "an installed image's `kind` (at most 16 characters) or `version` (at most 32) is too long",
        ));
    }
    let now = state.clock.unix();
    let installed = serde_json::to_string(&report.installed)
        .map_err(|e| ApiError::Internal(format!("installed: {e}")))?;
    let mut tx = state.db.begin_write().await?;
    // A report that turns the device's state to Failed (for this version) re-counts the rollout
    // of the deployment it was given (below, after the commit); repeated reports do not.
    let before = sqlx::query(
        "SELECT update_state, update_target_version FROM devices WHERE id = $1 AND tenant_id = $2",
    )
    .bind(&device.device_id)
    .bind(&device.tenant_id)
    .fetch_optional(&mut *tx)
    .await?;
    let newly_failed = report.state == UpdateState::Failed
        && match &before {
            Some(r) => {
                r.try_get::<Option<String>, _>("update_state")?.as_deref() != Some("Failed")
                    || r.try_get::<Option<i64>, _>("update_target_version")?
                        != report
                            .target_version
                            .map(|v| i64::try_from(v).unwrap_or(i64::MAX))
            }
            None => false,
        };
    sqlx::query(
        "UPDATE devices SET update_state = $1, update_target_version = $2, update_detail = $3, \
         update_deferred_until = $4, update_reported_at = $5, update_installed = $6 \
         WHERE id = $7 AND tenant_id = $8",
    )
    .bind(report.state.as_str())
    .bind(
        report
            .target_version
            .map(|v| i64::try_from(v).unwrap_or(i64::MAX)),
    )
    .bind(&report.detail)
    .bind(report.deferred_until.map(|t| t.unix_timestamp()))
    .bind(now)
    .bind(&installed)
    .bind(&device.device_id)
    .bind(&device.tenant_id)
    .execute(&mut *tx)
    .await?;
    // A Failed report is also an event of the error report, counted against the device's
    // event cap like an upload of one event (the UPDATE above holds the device's row lock):
    // past the cap the state is still recorded, the event is not.
    let event_room = if report.state == UpdateState::Failed {
        let at = db::now();
        let (in_window, _) = events_in_window(&mut tx, &device.device_id, at).await?;
        let room = in_window < event_cap(&state);
        if room {
            sqlx::query(
                "INSERT INTO device_event_batches (device_id, batch_id, tenant_id, event_count, \
                 received_at) VALUES ($1, $2, $3, 1, $4)",
            )
            .bind(&device.device_id)
            .bind(uuid::Uuid::new_v4().hyphenated().to_string())
            .bind(&device.tenant_id)
            .bind(at)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "DELETE FROM device_event_batches WHERE device_id = $1 AND received_at < $2",
            )
            .bind(&device.device_id)
            .bind(at - BATCH_ID_RETENTION_SECS)
            .execute(&mut *tx)
            .await?;
        } else {
            tracing::warn!(device = %device.device_id,
                "update failure not stored as an event: the device's event cap for 24 hours is reached");
        }
        room
    } else {
        false
    };
    if event_room {
        record_device_events(
            &mut tx,
            &crate::authz::device_scope(&device)?,
            &[DeviceEvent {
                device_id: device.device_id.clone(),
                event_type: "UpdateFailed".into(),
                event_class: "Update".into(),
                event_category: "Failure".into(),
                count: 1,
                description: report.detail.clone().unwrap_or_default(),
                start: now,
                end: now,
            }],
        )
        .await?;
    }
    tx.commit().await?;
    if newly_failed && let Err(e) = rollouts::after_failure(&state, &device.device_id).await {
        // The report is stored; the next Failed report (or an operator) pauses the rollout.
        tracing::error!(device = %device.device_id, "counting a rollout's failures: {e}");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Query of `GET /v1/device/update-signal`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SignalQuery {
    /// The last signal the device saw (omit on the first call).
    pub since: Option<String>,
    /// How long to wait for a newer one (0 to 300 seconds, default 0).
    pub wait_seconds: Option<u64>,
}

async fn newest_signal(state: &AppState, did: &str, tid: &str) -> ApiResult<Option<String>> {
    Ok(sqlx::query_scalar::<_, Option<String>>(
        "SELECT MAX(s.id) FROM update_signals s WHERE s.tenant_id = $1 AND (s.device_id = $2 OR \
         s.device_group_id = (SELECT d.device_group_id FROM devices d WHERE d.id = $2))",
    )
    .bind(tid)
    .bind(did)
    .fetch_one(state.db.pool())
    .await?)
}

/// Wait for an update-now signal for this device (device certificate): 200 at once when there
/// is one newer than `since` (or, without `since`, with the newest one and `checkNow: false`),
/// else after up to `waitSeconds` 204.
#[utoipa::path(get, path = "/v1/device/update-signal", tag = "updates", params(SignalQuery),
    responses((status = 200, body = UpdateSignal), (status = 204, description = "No newer signal"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("deviceCertificate" = [])))]
pub async fn device_update_signal(
    State(state): State<AppState>,
    AuthenticatedDevice(device): AuthenticatedDevice,
    StrictQuery(q): StrictQuery<SignalQuery>,
) -> ApiResult<Response> {
    let wait = q.wait_seconds.unwrap_or(0);
    if wait > MAX_SIGNAL_WAIT_SECONDS {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            "`waitSeconds` must be 0 to 300",
        ));
    }
    let Some(since) = q.since else {
        let newest = newest_signal(&state, &device.device_id, &device.tenant_id).await?;
        return Ok(Json(UpdateSignal {
            signal: newest.unwrap_or_default(),
            check_now: false,
        })
        .into_response());
    };
    let mut changes = state.signals.subscribe(&state.db);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    loop {
        if let Some(newest) = newest_signal(&state, &device.device_id, &device.tenant_id).await?
            && newest > since
        {
            return Ok(Json(UpdateSignal {
                signal: newest,
                check_now: true,
            })
            .into_response());
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => continue,
            _ => return Ok(StatusCode::NO_CONTENT.into_response()),
        }
    }
}

fn device_param(raw: &str) -> ApiResult<String> {
    normalize_device_id(raw).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidId,
            "`deviceId` must be 128 hexadecimal characters (the device ID)",
        )
    })
}

/// A device's update status: the target set version the service computed for it and the
/// device's last report (any role).
#[utoipa::path(get, path = "/v1/tenants/{tenantId}/devices/{deviceId}/deployment-status", tag = "updates",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("deviceId" = String, Path, description = "Device ID (128 hex characters)")),
    responses((status = 200, body = DeviceDeploymentStatus), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn deployment_status(
    State(state): State<AppState>,
    who: TenantCaller,
    Path((_, device_id)): Path<(String, String)>,
) -> ApiResult<Json<DeviceDeploymentStatus>> {
    who.authorize(Role::Reader)?;
    let did = device_param(&device_id)?;
    let r = sqlx::query(
        "SELECT target_version, update_state, update_target_version, update_detail, \
         update_deferred_until, update_reported_at, update_installed FROM devices \
         WHERE id = $1 AND tenant_id = $2",
    )
    .bind(&did)
    .bind(&who.tid)
    .fetch_optional(state.db.pool())
    .await?
    .ok_or_else(|| ApiError::not_found("device"))?;
    let version: i64 = r.try_get("target_version")?;
    let installed: Vec<InstalledImage> = r
        .try_get::<Option<String>, _>("update_installed")?
        .map(|s| serde_json::from_str(&s))
        .transpose()
        .map_err(|_| ApiError::Internal("malformed installed list".into()))?
        .unwrap_or_default();
    Ok(Json(DeviceDeploymentStatus {
        device_id: did,
        target_version: u64::try_from(version).ok().filter(|v| *v > 0),
        state: r
            .try_get::<Option<String>, _>("update_state")?
            .and_then(|s| s.parse().ok()),
        reported_target_version: r
            .try_get::<Option<i64>, _>("update_target_version")?
            .and_then(|v| u64::try_from(v).ok()),
        detail: r.try_get("update_detail")?,
        deferred_until: r
            .try_get::<Option<i64>, _>("update_deferred_until")?
            .map(db::ts),
        reported_at: r
            .try_get::<Option<i64>, _>("update_reported_at")?
            .map(db::ts),
        installed,
    }))
}

/// The images a device's current target set names (any role). Computes the set if it is due.
#[utoipa::path(get, path = "/v1/tenants/{tenantId}/devices/{deviceId}/targeted-images", tag = "updates",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("deviceId" = String, Path, description = "Device ID (128 hex characters)")),
    responses((status = 200, body = TargetedImages), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn targeted_images(
    State(state): State<AppState>,
    who: TenantCaller,
    Path((_, device_id)): Path<(String, String)>,
) -> ApiResult<Json<TargetedImages>> {
    who.authorize(Role::Reader)?;
    let did = device_param(&device_id)?;
    sqlx::query("SELECT id FROM devices WHERE id = $1 AND tenant_id = $2")
        .bind(&did)
        .bind(&who.tid)
        .fetch_optional(state.db.pool())
        .await?
        .ok_or_else(|| ApiError::not_found("device"))?;
    let target = current_target(&state, &did)
        .await?
        .ok_or_else(|| ApiError::not_found("device"))?;
    let set = targets::content(&target.signed)?;
    Ok(Json(TargetedImages {
        device_id: did,
        target_version: set.version,
        expires_at: set.expires_at,
        manage_apps: set.manage_apps,
        images: set
            .images
            .iter()
            .map(|i| TargetedImage {
                component_id: i.component_id,
                image_id: i.image_id,
                kind: i.kind.as_str().to_string(),
                version: i.version.clone(),
                security_version: i.security_version,
                package_sha256: hex::encode(i.package_sha256),
                package_size: i.package_size,
            })
            .collect(),
    }))
}

async fn signal(
    state: &AppState,
    who: &TenantCaller,
    group: Option<String>,
    device: Option<String>,
) -> ApiResult<UpdateNowResult> {
    let mut tx = state.db.begin_write().await?;
    authz::authorize(&mut *tx, &who.caller, who.tenant, Role::Contributor).await?;
    let count: i64 = match (&group, &device) {
        (Some(g), _) => {
            sqlx::query("SELECT id FROM device_groups WHERE id = $1 AND tenant_id = $2")
                .bind(g)
                .bind(&who.tid)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| ApiError::not_found("device group"))?;
            sqlx::query_scalar("SELECT COUNT(*) FROM devices WHERE device_group_id = $1")
                .bind(g)
                .fetch_one(&mut *tx)
                .await?
        }
        (None, Some(d)) => {
            sqlx::query("SELECT id FROM devices WHERE id = $1 AND tenant_id = $2")
                .bind(d)
                .bind(&who.tid)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| ApiError::not_found("device"))?;
            1
        }
        (None, None) => return Err(ApiError::Internal("signal without a target".into())),
    };
    let id = uuid::Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO update_signals (id, tenant_id, device_group_id, device_id, created_by, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(&who.tid)
    .bind(&group)
    .bind(&device)
    .bind(who.caller.uid())
    .bind(db::now())
    .execute(&mut *tx)
    .await?;
    let (object_type, object_id) = match (&group, &device) {
        (Some(g), _) => ("device_group", g.clone()),
        (_, Some(d)) => ("device", d.clone()),
        _ => ("device", String::new()),
    };
    db::audit(
        &mut tx,
        Some(&who.tid),
        Some(&who.caller.uid()),
        "update.now",
        object_type,
        &object_id,
        json!({ "signal": id, "devices": count }),
    )
    .await?;
    tx.commit().await?;
    Ok(UpdateNowResult {
        signal: id,
        device_count: u64::try_from(count).unwrap_or(0),
    })
}

/// Make every device of a group check for updates now (Contributor). Devices waiting on
/// `GET /v1/device/update-signal` hear of it within about a second.
#[utoipa::path(post, path = "/v1/tenants/{tenantId}/device-groups/{deviceGroupId}/update-now", tag = "updates",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("deviceGroupId" = String, Path, format = Uuid, description = "Device group ID")),
    responses((status = 200, body = UpdateNowResult), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn group_update_now(
    State(state): State<AppState>,
    who: TenantCaller,
    Path((_, group_id)): Path<(String, String)>,
) -> ApiResult<Json<UpdateNowResult>> {
    who.authorize(Role::Contributor)?;
    let g: ferro_wire::DeviceGroupId = path_id(&group_id, "deviceGroupId")?;
    Ok(Json(signal(&state, &who, Some(g.to_string()), None).await?))
}

/// Make one device check for updates now (Contributor).
#[utoipa::path(post, path = "/v1/tenants/{tenantId}/devices/{deviceId}/update-now", tag = "updates",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("deviceId" = String, Path, description = "Device ID (128 hex characters)")),
    responses((status = 200, body = UpdateNowResult), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn device_update_now(
    State(state): State<AppState>,
    who: TenantCaller,
    Path((_, device_id)): Path<(String, String)>,
) -> ApiResult<Json<UpdateNowResult>> {
    who.authorize(Role::Contributor)?;
    let did = device_param(&device_id)?;
    Ok(Json(signal(&state, &who, None, Some(did)).await?))
}
