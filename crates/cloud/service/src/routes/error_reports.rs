//! Device events and the tenant's error report (`GET /v1/tenants/{tenantId}/error-report`), with
//! Azure Sphere's CSV columns; devices upload their events with `POST /v1/device/events`
//! (device certificate in TLS).

use crate::auth::TenantCaller;
use crate::db::{self};
use crate::device_auth::AuthenticatedDevice;
use crate::device_events::{
    BATCH_ID_RETENTION_SECS, EVENT_CAP_WINDOW_SECS, MAX_REPORT_ROWS, REPORT_WINDOW_SECS,
    check_upload, event_cap, events_in_window, record_device_events,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, StrictQuery};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use ferro_wire::{
    DeviceEventsUpload, ERROR_REPORT_CSV_HEADER, ErrorBody, ErrorCode, ErrorReportQuery, Role,
};
use sqlx::Row;
use time::format_description::well_known::Rfc3339;

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
    let events = check_upload(&upload, &device.device_id, now)?;
    let batch = upload.batch_id.hyphenated().to_string();
    let stored = i64::try_from(events.len()).unwrap_or(i64::MAX);
    let mut tx = state.db.begin_write().await?;
    // The device's row lock (PostgreSQL; SQLite writers are serialised anyway): this device's
    // uploads run one at a time from here, so the checks below see each other's batches.
    let locked =
        sqlx::query("UPDATE devices SET events_uploaded_at = $1 WHERE id = $2 AND tenant_id = $3")
            .bind(now)
            .bind(&device.device_id)
            .bind(&device.tenant_id)
            .execute(&mut *tx)
            .await?;
    if locked.rows_affected() != 1 {
        return Err(ApiError::not_found("device"));
    }
    let new_batch = sqlx::query(
        "INSERT INTO device_event_batches (device_id, batch_id, tenant_id, event_count, \
         received_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (device_id, batch_id) DO NOTHING",
    )
    .bind(&device.device_id)
    .bind(&batch)
    .bind(&device.tenant_id)
    .bind(stored)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if new_batch.rows_affected() == 0 {
        // Sent before and stored then: nothing to do (the transaction rolls back).
        return Ok(StatusCode::NO_CONTENT);
    }
    let cap = event_cap(&state);
    let (in_window, oldest) = events_in_window(&mut tx, &device.device_id, now).await?;
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
    sqlx::query("DELETE FROM device_event_batches WHERE device_id = $1 AND received_at < $2")
        .bind(&device.device_id)
        .bind(now - BATCH_ID_RETENTION_SECS)
        .execute(&mut *tx)
        .await?;
    record_device_events(&mut tx, &device.tenant_id, &events).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One CSV cell: CSV-injection-safe (a cell starting with `=`, `+`, `-`, `@`, tab or CR gets a
/// leading `'` so spreadsheets do not evaluate it), then RFC 4180 quoting.
pub fn csv_cell(value: &str) -> String {
    let guarded = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_string()
    };
    if guarded.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

fn time_cell(secs: i64) -> String {
    db::ts(secs).format(&Rfc3339).unwrap_or_default()
}

/// The tenant's error report of the last 14 days (any role): CSV (RFC 4180, CRLF line ends)
/// with the columns `Device ID,Event Type,Event Class,Event Category,Event Count,Description,
/// Start Time,End Time` (times RFC 3339 UTC), oldest first.
#[utoipa::path(get, path = "/v1/tenants/{tenantId}/error-report", tag = "devices",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"), ErrorReportQuery),
    responses((status = 200, description = "CSV report", content_type = "text/csv", body = String),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn error_report(
    State(state): State<AppState>,
    who: TenantCaller,
    StrictQuery(_q): StrictQuery<ErrorReportQuery>,
) -> ApiResult<Response> {
    who.require(Role::Reader)?;
    let since = db::now() - REPORT_WINDOW_SECS;
    let rows = sqlx::query(
        "SELECT device_id, event_type, event_class, event_category, event_count, description, \
         start_time, end_time FROM device_events WHERE tenant_id = $1 AND end_time >= $2 \
         ORDER BY start_time, id LIMIT $3",
    )
    .bind(&who.tid)
    .bind(since)
    .bind(MAX_REPORT_ROWS)
    .fetch_all(state.db.pool())
    .await?;
    let mut csv = String::with_capacity(128 * (rows.len() + 1));
    csv.push_str(ERROR_REPORT_CSV_HEADER);
    csv.push_str("\r\n");
    for r in &rows {
        let cells = [
            csv_cell(&r.try_get::<String, _>("device_id")?),
            csv_cell(&r.try_get::<String, _>("event_type")?),
            csv_cell(&r.try_get::<String, _>("event_class")?),
            csv_cell(&r.try_get::<String, _>("event_category")?),
            r.try_get::<i64, _>("event_count")?.to_string(),
            csv_cell(&r.try_get::<String, _>("description")?),
            time_cell(r.try_get("start_time")?),
            time_cell(r.try_get("end_time")?),
        ];
        csv.push_str(&cells.join(","));
        csv.push_str("\r\n");
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"error-report-{}.csv\"", who.tid),
            ),
        ],
        csv,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::csv_cell;

    #[test]
    fn cells_are_quoted_and_guarded() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("line\nbreak"), "\"line\nbreak\"");
        assert_eq!(csv_cell("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(csv_cell("+1"), "'+1");
        assert_eq!(csv_cell("-1"), "'-1");
        assert_eq!(csv_cell("@x"), "'@x");
        assert_eq!(
            csv_cell("=HYPERLINK(\"x\",1)"),
            "\"'=HYPERLINK(\"\"x\"\",1)\""
        );
    }
}
