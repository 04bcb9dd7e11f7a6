//! Over-the-air updates as a device asks for them (docs/updates.md), authenticated by the device
//! certificate ([`AuthenticatedDevice`]): the target set (`ETag`/304), content-addressed image
//! downloads with `Range` limited to what the device's target set names, status reports and the
//! update-now long poll. What operators see and do is `routes/updates.rs`.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64ct::{Base64, Encoding};
use ferro_wire::{
    DeviceTargetSet, ErrorBody, ErrorCode, MAX_REPORTED_IMAGES, MAX_SIGNAL_WAIT_SECONDS,
    MAX_UPDATE_DETAIL_LEN, UpdateSignal, UpdateState, UpdateStatusReport,
};
use serde::Deserialize;

use crate::authz;
use crate::datastore::device_events as device_event_store;
use crate::datastore::devices;
use crate::datastore::update_reports::{self, LastReport};
use crate::datastore::update_signals;
use crate::db;
use crate::device_auth::AuthenticatedDevice;
use crate::device_events::{
    BATCH_ID_RETENTION_SECS, DeviceEvent, event_cap, events_in_window, record_device_events,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, StrictQuery};
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
        .ok_or_else(|| {
            // Also what a device mid-download hears once the deployment that named the package
            // was replaced and its image deleted (`routes/images.rs`).
            ApiError::new(
                ErrorCode::NotFound,
                format!(
                    "package {sha} is not in this device's target set (version {}): it was \
                     never named, or the deployment that named it was replaced (and its image \
                     may be deleted). Fetch the target set again (GET /v1/device/target-set)",
                    target.version
                ),
            )
        })?;
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
    let scope = authz::device_scope(&device)?;
    let mut tx = state.db.begin_write().await?;
    // A report that turns the device's state to Failed (for this version) re-counts the rollout
    // of the deployment it was given (below, after the commit); repeated reports do not.
    let before: Option<LastReport> =
        update_reports::last_in(&mut tx, &scope, &device.device_id).await?;
    let newly_failed = rollouts::newly_failed(
        report.state,
        update_reports::version_of(&report),
        before.as_ref(),
    );
    update_reports::store(&mut tx, &scope, &device.device_id, &report, now).await?;
    // A Failed report is also an event of the error report, counted against the device's
    // event cap like an upload of one event (the UPDATE above holds the device's row lock):
    // past the cap the state is still recorded, the event is not.
    let id: ferro_wire::DeviceId = device
        .device_id
        .parse()
        .map_err(|_| ApiError::Internal("malformed ID of an authenticated device".into()))?;
    let event_room = if report.state == UpdateState::Failed {
        let at = db::now();
        let (in_window, _) = events_in_window(&mut tx, &id, at).await?;
        let room = in_window < event_cap(&state);
        if room {
            device_event_store::insert_batch(&mut tx, &scope, &id, uuid::Uuid::new_v4(), 1, at)
                .await?;
            device_event_store::forget_batches_before(&mut tx, &id, at - BATCH_ID_RETENTION_SECS)
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
            &scope,
            &[DeviceEvent {
                device_id: id,
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

/// Wait for an update-now signal for this device (device certificate): 200 at once when there
/// is one newer than `since` (or, without `since`, with the newest one and `checkNow: false`),
/// else after up to `waitSeconds` 204. A device that changes owner while it waits (a transfer
/// accepted, an operator's reassignment or unclaim) gets 401 at once: attest again.
#[utoipa::path(get, path = "/v1/device/update-signal", tag = "updates", params(SignalQuery),
    responses((status = 200, body = UpdateSignal), (status = 204, description = "No newer signal"),
        (status = 400, body = ErrorBody),
        (status = 401, description = "No valid device certificate, or the device changed owner \
            while it waited: attest again", body = ErrorBody),
        (status = 403, description = "The tenant blocked the device", body = ErrorBody)),
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
    let scope = authz::device_scope(&device)?;
    let Some(since) = q.since else {
        let newest =
            update_signals::newest_for_device(&state.db, &scope, &device.device_id).await?;
        return Ok(Json(UpdateSignal {
            signal: newest.unwrap_or_default(),
            check_now: false,
        })
        .into_response());
    };
    let mut changes = state.signals.subscribe(&state.db);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    loop {
        if let Some(newest) =
            update_signals::newest_for_device(&state.db, &scope, &device.device_id).await?
            && newest > since
        {
            return Ok(Json(UpdateSignal {
                signal: newest,
                check_now: true,
            })
            .into_response());
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => {}
            _ => return Ok(StatusCode::NO_CONTENT.into_response()),
        }
        // Woken by a signal or an ownership change: a device that changed owner while it
        // waited hears so now, as its next request would (the certificate extractor), and
        // attests again for its new tenant's certificate.
        match devices::blocked(&state.db, &scope, &device.device_id).await? {
            Some(false) => {}
            Some(true) => {
                return Err(ApiError::new(
                    ErrorCode::Forbidden,
                    "the tenant blocked this device while it waited",
                ));
            }
            None => {
                return Err(ApiError::new(
                    ErrorCode::Unauthenticated,
                    "this device changed owner while it waited (a transfer, or an operator's \
                     reassignment or unclaim): its certificate's tenant no longer owns it. \
                     Attest again (POST /v1/attestation/evidence) for a certificate of its \
                     new tenant",
                ));
            }
        }
    }
}
