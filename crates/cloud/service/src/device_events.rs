//! Device events: what a device reports (uploaded batches and failed update status reports), the
//! rules an upload must meet, the per-device cap, and storing them for the tenant's error report
//! (`routes::device_events` serves the upload, `routes::error_report` the report).

use crate::authz::TenantScope;
use crate::datastore::device_events as store;
use crate::db::{self, Tx};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use ferro_wire::{
    DeviceEventRecord, DeviceEventsUpload, DeviceId, ErrorCode, ErrorItem,
    MAX_EVENT_CLOCK_SKEW_SECS, MAX_EVENT_DESCRIPTION_LEN, MAX_EVENT_NAME_LEN,
    MAX_EVENTS_PER_UPLOAD,
};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// How far back the error report reaches (as Azure Sphere's: 14 days).
pub const REPORT_WINDOW_SECS: i64 = 14 * 24 * 3600;

/// Most rows in one report (newest kept); beyond it the report says it was cut.
pub const MAX_REPORT_ROWS: i64 = 100_000;

/// Longest text field of an event, in characters (longer ones are cut).
pub const MAX_EVENT_TEXT: usize = MAX_EVENT_DESCRIPTION_LEN;

/// The window of the per-device cap on uploaded events (`Config::device_events_per_day`).
pub const EVENT_CAP_WINDOW_SECS: i64 = 24 * 3600;

/// How long a device's batch IDs are remembered. A batch re-sent later than this could only
/// add events that ended before its first upload (plus the clock skew allowance), which the
/// report, reaching 14 days back, no longer shows.
pub const BATCH_ID_RETENTION_SECS: i64 = REPORT_WINDOW_SECS + MAX_EVENT_CLOCK_SKEW_SECS;

pub use crate::datastore::device_events::DeviceEvent;

fn clip(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .take(MAX_EVENT_TEXT)
        .collect()
}

/// Store events of `tenant`'s devices in `tx` (`POST /v1/device/events` and failed update
/// status reports call this; tests may call it directly). Events of devices that are not the
/// tenant's are refused (`not_found`), as are empty periods and counts below 1
/// (`invalid_body`). Text fields lose control characters other than line feed and tab and are
/// cut to [`MAX_EVENT_TEXT`] characters. Nothing is committed here: the caller's transaction
/// stores all of `events` or none.
pub async fn record_device_events(
    tx: &mut Tx,
    scope: &TenantScope,
    events: &[DeviceEvent],
) -> ApiResult<()> {
    let now = db::now();
    let mut checked: Option<&DeviceId> = None;
    for e in events {
        if e.count < 1 || e.end < e.start {
            return Err(ApiError::invalid_body(
                "an event needs a count of at least 1 and an end not before its start",
            ));
        }
        // One look-up per run of events of one device (an upload is all one device's).
        if checked != Some(&e.device_id) {
            if !store::is_tenant_device(tx, scope, &e.device_id).await? {
                return Err(ApiError::not_found("device"));
            }
            checked = Some(&e.device_id);
        }
        let row = DeviceEvent {
            device_id: e.device_id,
            event_type: clip(&e.event_type),
            event_class: clip(&e.event_class),
            event_category: clip(&e.event_category),
            count: e.count,
            description: clip(&e.description),
            start: e.start,
            end: e.end,
        };
        store::insert_event(tx, scope, &row, now).await?;
    }
    Ok(())
}

/// Why one uploaded event is refused: (item code, message). Messages name the field and the
/// rule, never the value.
fn check_event(e: &DeviceEventRecord, now: i64) -> Result<(i64, i64), (&'static str, String)> {
    for (field, value) in [
        ("eventType", &e.event_type),
        ("eventClass", &e.event_class),
        ("eventCategory", &e.event_category),
    ] {
        if value.is_empty() {
            return Err(("empty_text", format!("`{field}` is empty")));
        }
        if value.chars().count() > MAX_EVENT_NAME_LEN {
            return Err((
                "text_too_long",
                format!("`{field}` is longer than {MAX_EVENT_NAME_LEN} characters"),
            ));
        }
        if value.chars().any(char::is_control) {
            return Err((
                "control_character",
                format!("`{field}` contains a control character"),
            ));
        }
    }
    if e.description.chars().count() > MAX_EVENT_DESCRIPTION_LEN {
        return Err((
            "text_too_long",
            format!("`description` is longer than {MAX_EVENT_DESCRIPTION_LEN} characters"),
        ));
    }
    if e.count < 1 {
        return Err(("invalid_count", "`count` must be at least 1".into()));
    }
    let parse = |field: &str, value: &str| {
        OffsetDateTime::parse(value, &Rfc3339).map_err(|_| {
            (
                "invalid_time",
                format!("`{field}` is not an RFC 3339 time such as 2026-11-25T10:00:00Z"),
            )
        })
    };
    let start = parse("start", &e.start)?;
    let end = parse("end", &e.end)?;
    if end < start {
        return Err(("end_before_start", "`end` is before `start`".into()));
    }
    let (start, end) = (start.unix_timestamp(), end.unix_timestamp());
    if end > now.saturating_add(MAX_EVENT_CLOCK_SKEW_SECS) {
        return Err((
            "end_in_future",
            "`end` is more than 24 hours after the service's clock; check the device's time".into(),
        ));
    }
    Ok((start, end))
}

/// Check a whole upload: every refused event is listed (`details`, by index), and one refused
/// event refuses the upload.
pub(crate) fn check_upload(
    upload: &DeviceEventsUpload,
    device_id: &DeviceId,
    now: i64,
) -> ApiResult<Vec<DeviceEvent>> {
    if upload.batch_id.is_nil() {
        return Err(ApiError::invalid_body(
            "`batchId` must not be the nil UUID; pick a random UUID per batch",
        ));
    }
    if upload.events.is_empty() || upload.events.len() > MAX_EVENTS_PER_UPLOAD {
        return Err(ApiError::invalid_body(format!(
            "`events` must list 1 to {MAX_EVENTS_PER_UPLOAD} events; send more in further batches"
        )));
    }
    let mut events = Vec::with_capacity(upload.events.len());
    let mut refused = Vec::new();
    for (i, e) in upload.events.iter().enumerate() {
        match check_event(e, now) {
            Ok((start, end)) => events.push(DeviceEvent {
                device_id: *device_id,
                event_type: e.event_type.clone(),
                event_class: e.event_class.clone(),
                event_category: e.event_category.clone(),
                count: i64::from(e.count),
                description: e.description.clone(),
                start,
                end,
            }),
            Err((code, message)) => refused.push(ErrorItem {
                index: u32::try_from(i).unwrap_or(u32::MAX),
                id: None,
                code: code.to_string(),
                message,
            }),
        }
    }
    if !refused.is_empty() {
        return Err(ApiError::Items {
            code: ErrorCode::InvalidBody,
            message: "some events were refused (see `details`); nothing of this batch was stored"
                .into(),
            items: refused,
        });
    }
    Ok(events)
}

/// The most events one device may store in any [`EVENT_CAP_WINDOW_SECS`]
/// (`Config::device_events_per_day`, at least a full upload).
pub(crate) fn event_cap(state: &AppState) -> i64 {
    i64::from(state.config.device_events_per_day)
        .max(i64::try_from(MAX_EVENTS_PER_UPLOAD).unwrap_or(i64::MAX))
}

/// The events `device` stored in the cap's window before `now` (every batch row counts: uploads
/// and failed update status reports), and when the oldest of them arrived. Call it after taking
/// the device's row lock (an `UPDATE devices` in `tx`), so concurrent writers see each other.
pub(crate) async fn events_in_window(
    tx: &mut Tx,
    device: &DeviceId,
    now: i64,
) -> ApiResult<(i64, Option<i64>)> {
    Ok(store::events_since(tx, device, now - EVENT_CAP_WINDOW_SECS).await?)
}
