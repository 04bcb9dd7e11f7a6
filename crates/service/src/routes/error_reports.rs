//! Device events and the tenant's error report (`GET /v1/tenants/{tenantId}/error-report`), with
//! Azure Sphere's CSV columns.

use crate::auth::TenantCaller;
use crate::db::{self, Tx};
use crate::error::{ApiError, ApiResult};
use crate::extract::StrictQuery;
use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use ferro_wire::{ERROR_REPORT_CSV_HEADER, ErrorBody, ErrorReportQuery, Role};
use sqlx::Row;
use time::format_description::well_known::Rfc3339;

/// How far back the error report reaches (as Azure Sphere's: 14 days).
pub const REPORT_WINDOW_SECS: i64 = 14 * 24 * 3600;
/// Most rows in one report (newest kept); beyond it the report says it was cut.
pub const MAX_REPORT_ROWS: i64 = 100_000;
/// Longest text field of an event, in characters (longer ones are cut).
pub const MAX_EVENT_TEXT: usize = 1024;

/// One aggregated event a device reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceEvent {
    /// Device ID (128 lowercase hex); must be a device of the tenant.
    pub device_id: String,
    /// Event type (e.g. `AppCrash`, `UpdateFailure`).
    pub event_type: String,
    /// Event class.
    pub event_class: String,
    /// Event category.
    pub event_category: String,
    /// How many times it happened in the period (>= 1).
    pub count: i64,
    /// Description (untrusted text from the device).
    pub description: String,
    /// Start of the period (Unix seconds).
    pub start: i64,
    /// End of the period (Unix seconds, >= start).
    pub end: i64,
}

fn clip(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .take(MAX_EVENT_TEXT)
        .collect()
}

/// Store events of `tenant`'s devices in `tx` (the device upload route, a later issue, will
/// call this; tests call it directly). Events of devices that are not the tenant's are refused
/// (`not_found`), as are empty periods and counts below 1 (`invalid_body`).
pub async fn record_device_events(
    tx: &mut Tx,
    tenant: &str,
    events: &[DeviceEvent],
) -> ApiResult<()> {
    let now = db::now();
    for e in events {
        if e.count < 1 || e.end < e.start {
            return Err(ApiError::invalid_body(
                "an event needs a count of at least 1 and an end not before its start",
            ));
        }
        sqlx::query("SELECT id FROM devices WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(&e.device_id)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| ApiError::not_found("device"))?;
        sqlx::query(
            "INSERT INTO device_events (id, tenant_id, device_id, event_type, event_class, \
             event_category, event_count, description, start_time, end_time, received_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(tenant)
        .bind(&e.device_id)
        .bind(clip(&e.event_type))
        .bind(clip(&e.event_class))
        .bind(clip(&e.event_category))
        .bind(e.count)
        .bind(clip(&e.description))
        .bind(e.start)
        .bind(e.end)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
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
