//! The one reading of a `Retry-After` header (RFC 9110 §10.2.3) on the device: delay-seconds
//! or an HTTP-date, capped, with one default for a header that is missing or unreadable.
//!
//! The service always sends delay-seconds with a 429 (`crates/cloud/service/src/error.rs`), so
//! the default only answers a 429 from something in front of it (a proxy, a load balancer).
//! Every caller then waits the longer of this and its own backoff, or this alone where it has
//! no backoff of its own (docs/device.md, "Talking to the service").

use std::time::{Duration, SystemTime};

/// The wait when a 429 carries no `Retry-After`, or one that is neither delay-seconds nor an
/// HTTP-date: a minute, long enough that a fleet told "too many" by a proxy does not come back
/// at once, short enough that a device does not miss its certificate renewal over it.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The longest wait taken from a header (the device's longest backoff): a larger value, or a
/// date further ahead, is cut to this, so one answer cannot silence a device for days.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// How long `value` (a `Retry-After` header's text, if there was one) asks to wait, as of
/// `now`: delay-seconds as given, an HTTP-date as the time until it (zero once it has
/// passed), both at most [`MAX_RETRY_AFTER`]; [`DEFAULT_RETRY_AFTER`] when there is no header
/// or it is neither.
pub fn retry_after(value: Option<&str>, now: SystemTime) -> Duration {
    let Some(text) = value.map(str::trim) else {
        return DEFAULT_RETRY_AFTER;
    };
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        // All digits: delay-seconds. Too many digits for a u64 is only "very long".
        return text
            .parse::<u64>()
            .map_or(MAX_RETRY_AFTER, Duration::from_secs)
            .min(MAX_RETRY_AFTER);
    }
    match httpdate::parse_http_date(text) {
        Ok(at) => at
            .duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_AFTER),
        Err(_) => DEFAULT_RETRY_AFTER,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_table() {
        // 1994-11-06T08:49:37Z, RFC 9110's example date.
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        let s = Duration::from_secs;
        let cases: &[(Option<&str>, Duration)] = &[
            // delay-seconds
            (Some("0"), s(0)),
            (Some("1"), s(1)),
            (Some(" 120 "), s(120)),
            (Some("3600"), s(3600)),
            (Some("3601"), MAX_RETRY_AFTER),
            (Some("99999999999999999999999"), MAX_RETRY_AFTER),
            // HTTP-date, all three forms RFC 9110 requires a recipient to read
            (Some("Sun, 06 Nov 1994 08:50:07 GMT"), s(30)),
            (Some("Sunday, 06-Nov-94 08:51:37 GMT"), s(120)),
            (Some("Sun Nov  6 08:49:47 1994"), s(10)),
            (Some("Sun, 06 Nov 1994 08:49:37 GMT"), s(0)),
            (Some("Sat, 05 Nov 1994 08:49:37 GMT"), s(0)),
            (Some("Mon, 07 Nov 1994 08:49:37 GMT"), MAX_RETRY_AFTER),
            // missing or unreadable: the one default
            (None, DEFAULT_RETRY_AFTER),
            (Some(""), DEFAULT_RETRY_AFTER),
            (Some("-1"), DEFAULT_RETRY_AFTER),
            (Some("1.5"), DEFAULT_RETRY_AFTER),
            (Some("soon"), DEFAULT_RETRY_AFTER),
            (Some("0x10"), DEFAULT_RETRY_AFTER),
            (Some("06 Nov 1994 08:49:37"), DEFAULT_RETRY_AFTER),
        ];
        for (value, expected) in cases {
            assert_eq!(retry_after(*value, now), *expected, "{value:?}");
        }
    }
}
