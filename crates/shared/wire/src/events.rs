//! Wire types of device event uploads (failure reporting, docs/design.md §3.6): a device
//! sends batches of aggregated events (`POST /v1/device/events`, device certificate in TLS), and
//! the tenant reads them in its error report (`GET /v1/tenants/{tenantId}/error-report`, CSV).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Most events in one upload.
pub const MAX_EVENTS_PER_UPLOAD: usize = 500;
/// Longest `eventType`, `eventClass` and `eventCategory`, in characters (each at least 1).
pub const MAX_EVENT_NAME_LEN: usize = 128;
/// Longest `description`, in characters.
pub const MAX_EVENT_DESCRIPTION_LEN: usize = 1024;
/// How far past the service's clock an event's `end` may be, in seconds (device clock skew).
pub const MAX_EVENT_CLOCK_SKEW_SECS: i64 = 24 * 3600;

/// `POST /v1/device/events` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceEventsUpload {
    /// A UUID the device picks for this batch; re-sending the same batch (a retry after a lost
    /// answer) stores nothing twice. Not the nil UUID.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub batch_id: Uuid,
    /// The events, 1 to 500 ([`MAX_EVENTS_PER_UPLOAD`]).
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 500))]
    pub events: Vec<DeviceEventRecord>,
}

/// One aggregated event: what happened, how often, in which period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceEventRecord {
    /// E.g. `AppCrash`, `AppExit`, `UpdateFailed`, `AttestationFailed` (1 to 128 characters, no
    /// control characters).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub event_type: String,
    /// E.g. `Errors`, `Warnings` (1 to 128 characters, no control characters).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub event_class: String,
    /// E.g. the component ID, or `Update` (1 to 128 characters, no control characters).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub event_category: String,
    /// How many times it happened in the period (at least 1).
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub count: u32,
    /// What happened (at most 1024 characters; control characters other than line feed and tab
    /// are dropped).
    #[cfg_attr(feature = "openapi", schema(max_length = 1024))]
    pub description: String,
    /// RFC 3339: the first occurrence in the period.
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub start: String,
    /// RFC 3339: the end of the period, not before `start`, at most 24 hours past the service's
    /// clock.
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub end: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape() {
        let body = DeviceEventsUpload {
            batch_id: Uuid::from_u128(0x0190_c1a8_3c7a_7c4e_9b1e_2f4d_5a6b_7c8d),
            events: vec![DeviceEventRecord {
                event_type: "AppCrash".into(),
                event_class: "Errors".into(),
                event_category: "a0b1c2d3-0000-4000-8000-000000000001".into(),
                count: 3,
                description: "exit code 139".into(),
                start: "2026-11-25T10:00:00Z".into(),
                end: "2026-11-25T11:00:00Z".into(),
            }],
        };
        let v = serde_json::to_value(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "batchId": "0190c1a8-3c7a-7c4e-9b1e-2f4d5a6b7c8d",
                "events": [{
                    "eventType": "AppCrash",
                    "eventClass": "Errors",
                    "eventCategory": "a0b1c2d3-0000-4000-8000-000000000001",
                    "count": 3,
                    "description": "exit code 139",
                    "start": "2026-11-25T10:00:00Z",
                    "end": "2026-11-25T11:00:00Z"
                }]
            })
        );
        let back: DeviceEventsUpload = serde_json::from_value(v).unwrap();
        assert_eq!(back, body);
    }

    #[test]
    fn refuses_unknown_fields_and_bad_types() {
        let ok = r#"{"batchId":"0190c1a8-3c7a-7c4e-9b1e-2f4d5a6b7c8d","events":[]}"#;
        assert!(serde_json::from_str::<DeviceEventsUpload>(ok).is_ok());
        let extra =
            r#"{"batchId":"0190c1a8-3c7a-7c4e-9b1e-2f4d5a6b7c8d","events":[],"deviceId":"x"}"#;
        assert!(serde_json::from_str::<DeviceEventsUpload>(extra).is_err());
        let bad_id = r#"{"batchId":"batch-1","events":[]}"#;
        assert!(serde_json::from_str::<DeviceEventsUpload>(bad_id).is_err());
        let negative = r#"{"eventType":"a","eventClass":"b","eventCategory":"c","count":-1,
            "description":"","start":"2026-11-25T10:00:00Z","end":"2026-11-25T10:00:00Z"}"#;
        assert!(serde_json::from_str::<DeviceEventRecord>(negative).is_err());
    }
}
