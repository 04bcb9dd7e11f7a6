//! The tenant's error report (`GET /v1/tenants/{tenantId}/error-report`): the events devices
//! uploaded (`routes::device_events`), with Azure Sphere's CSV columns or as JSON.

use crate::auth::TenantCaller;
use crate::datastore::device_events;
use crate::db::{self};
use crate::device_events::{MAX_REPORT_ROWS, REPORT_WINDOW_SECS};
use crate::error::ApiResult;
use crate::extract::StrictQuery;
use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use ferro_wire::{ERROR_REPORT_CSV_HEADER, ErrorBody, ErrorReportQuery, Role};
use time::format_description::well_known::Rfc3339;

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
    let scope = who.authorize(Role::Reader)?;
    let since = db::now() - REPORT_WINDOW_SECS;
    let rows = device_events::report(&state.db, &scope, since, MAX_REPORT_ROWS).await?;
    let mut csv = String::with_capacity(128 * (rows.len() + 1));
    csv.push_str(ERROR_REPORT_CSV_HEADER);
    csv.push_str("\r\n");
    for r in &rows {
        let cells = [
            csv_cell(&r.device_id.to_string()),
            csv_cell(&r.event_type),
            csv_cell(&r.event_class),
            csv_cell(&r.event_category),
            r.count.to_string(),
            csv_cell(&r.description),
            time_cell(r.start),
            time_cell(r.end),
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
