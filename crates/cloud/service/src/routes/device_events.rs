//! `POST /v1/device/events`: a device uploads a batch of its events (device certificate in
//! TLS) for its tenant's error report (`routes::error_report`); the rules (size, time window,
//! per-device cap) are `crate::device_events`'.

use crate::authz;
use crate::datastore::device_events as store;
use crate::db::{self};
use crate::device_auth::AuthenticatedDevice;
use crate::device_events::{
    BATCH_ID_RETENTION_SECS, EVENT_CAP_WINDOW_SECS, check_upload, event_cap, events_in_window,
    record_device_events,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use ferro_wire::{DeviceEventsUpload, DeviceId, ErrorBody, ErrorCode};

/// Upload a batch of the device's events for its tenant's error report (device certificate;
/// the device and tenant come from the certificate). All or nothing. A `batchId` this device
/// sent before stores nothing and answers 204 too (retries are safe). At most 2,000 events
/// (the service's default; `Config::device_events_per_day`) per device in any 24 hours: more is
/// 429 with `Retry-After`, nothing stored.
#[utoipa::path(post, path = "/v1/device/events", tag = "devices",
    request_body = DeviceEventsUpload,
    responses((status = 204, description = "Stored, or stored before (a batch ID this device already sent)"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, description = "Invalid upload; `details` lists refused events by index", body = ErrorBody),
        (status = 429, description = "The device's event cap for 24 hours is reached; see `Retry-After`", body = ErrorBody)),
    security(("deviceCertificate" = [])))]
pub async fn device_events(
    State(state): State<AppState>,
    AuthenticatedDevice(device): AuthenticatedDevice,
    JsonBody(upload): JsonBody<DeviceEventsUpload>,
) -> ApiResult<StatusCode> {
    let now = db::now();
    let scope = authz::device_scope(&device)?;
    let id: DeviceId = device
        .device_id
        .parse()
        .map_err(|_| ApiError::Internal("malformed ID of an authenticated device".into()))?;
    let events = check_upload(&upload, &id, now)?;
    let stored = i64::try_from(events.len()).unwrap_or(i64::MAX);
    let mut tx = state.db.begin_write().await?;
    // The device's row lock: this device's uploads run one at a time from here, so the checks
    // below see each other's batches.
    if !store::lock_for_upload(&mut tx, &scope, &id, now).await? {
        return Err(ApiError::not_found("device"));
    }
    if !store::insert_batch(&mut tx, &scope, &id, upload.batch_id, stored, now).await? {
        // Sent before and stored then: nothing to do (the transaction rolls back).
        return Ok(StatusCode::NO_CONTENT);
    }
    let cap = event_cap(&state);
    let (in_window, oldest) = events_in_window(&mut tx, &id, now).await?;
    if in_window > cap {
        let retry = oldest.map_or(EVENT_CAP_WINDOW_SECS, |o| o + EVENT_CAP_WINDOW_SECS - now);
        return Err(ApiError::Client {
            code: ErrorCode::RateLimited,
            message: format!(
                "this device may store at most {cap} events in 24 hours; keep the batch and \
                 send it again after `Retry-After` seconds"
            ),
            retry_after: Some(u64::try_from(retry.max(1)).unwrap_or(1)),
        });
    }
    // Batch IDs old enough that a re-send could no longer show in the report.
    store::forget_batches_before(&mut tx, &id, now - BATCH_ID_RETENTION_SECS).await?;
    record_device_events(&mut tx, &scope, &events).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
