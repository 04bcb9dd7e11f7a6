//! Request extractors with the service's error contract: strict JSON bodies, query strings and
//! path IDs that fail with a specific code and a message naming the field.

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::request::Parts;
use ferro_wire::{DeviceId, ErrorCode};
use serde::de::DeserializeOwned;

/// A JSON request body: `Content-Type: application/json`, at most the configured size, strictly
/// typed (request types deny unknown fields).
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request<Body>, state: &AppState) -> Result<Self, Self::Rejection> {
        read_json_body(req, state.config.body_limit, "")
            .await
            .map(JsonBody)
    }
}

/// The one JSON body extractor's work, for [`JsonBody`] and the bulk routes' larger limit:
/// `Content-Type: application/json`, at most `limit` bytes (refused from `Content-Length` before
/// reading; `advice` is added to the payload-too-large message), then [`parse_json`].
pub async fn read_json_body<T: DeserializeOwned>(
    req: Request<Body>,
    limit: usize,
    advice: &str,
) -> Result<T, ApiError> {
    let is_json = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(ferro_wire::is_json_content_type);
    if !is_json {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send the body as JSON with `Content-Type: application/json`",
        ));
    }
    let too_large = || {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the body must be at most {limit} bytes{advice}"),
        )
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|_| too_large())?;
    parse_json(&bytes)
}

/// Parse JSON into `T`, classifying failures (`ferro_wire::parse_json_body`, which the
/// device's local API shares). Messages name fields and expected types but never echo values
/// (a misplaced password must not come back in an error).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    ferro_wire::parse_json_body(bytes).map_err(|e| ApiError::new(e.code, e.message))
}

/// A query string, strictly typed (unknown parameters refused).
#[derive(Debug, Clone)]
pub struct StrictQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for StrictQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        serde_urlencoded_from_str(q).map(StrictQuery).map_err(|e| {
            ApiError::new(
                ErrorCode::InvalidQuery,
                format!(
                    "bad query string: {e}; list routes take `limit` (1-500) and `continuation`"
                ),
            )
        })
    }
}

fn serde_urlencoded_from_str<T: DeserializeOwned>(q: &str) -> Result<T, String> {
    // axum's Query uses serde_urlencoded; reuse it through axum to avoid another dependency.
    let uri: axum::http::Uri = format!("/?{q}")
        .parse()
        .map_err(|_| "malformed".to_string())?;
    axum::extract::Query::<T>::try_from_uri(&uri)
        .map(|q| q.0)
        .map_err(|e| {
            let s = e.body_text();
            s.strip_prefix("Failed to deserialize query string: ")
                .unwrap_or(&s)
                .to_string()
        })
}

/// Parse a path segment as a typed ID, or 400 `invalid_id` naming the parameter.
pub fn path_id<T: From<uuid::Uuid>>(raw: &str, name: &str) -> Result<T, ApiError> {
    uuid::Uuid::parse_str(raw).map(T::from).map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidId,
            format!("`{name}` must be a UUID such as 0190c1a8-3c7a-7c4e-9b1e-2f4d5a6b7c8d"),
        )
    })
}

/// The client's address as the rate limits and the audit log see it: the socket's peer, or,
/// from a trusted proxy, the client it forwards for (`crate::client_addr`); `None` without a
/// socket, as for in-process tests. One place, so the login and attestation limits always agree.
pub fn client_addr(
    parts: &Parts,
    trusted: &crate::client_addr::TrustedProxies,
) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<crate::server::ConnInfo>>()
        .map(|c| crate::client_addr::resolve(c.0.addr.ip(), &parts.headers, trusted))
}

/// The client's address, for rate limiting and auditing ([`client_addr`]; `None` without a
/// socket, as in in-process tests).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl FromRequestParts<crate::state::AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &crate::state::AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(client_addr(
            parts,
            &state.config.trusted_proxies,
        )))
    }
}

/// A request's `expiresInDays`: the requested number of days, or `default`; 1 to `max`, else
/// `invalid_body` naming the bounds (invitations, API tokens, device transfer offers).
pub fn expires_in_days(requested: Option<u32>, default: u32, max: u32) -> ApiResult<u32> {
    let days = requested.unwrap_or(default);
    if !(1..=max).contains(&days) {
        return Err(ApiError::invalid_body(format!(
            "`expiresInDays` must be 1 to {max}"
        )));
    }
    Ok(days)
}

/// `days` whole days after `now` (Unix seconds).
pub fn days_after(now: i64, days: u32) -> i64 {
    now.saturating_add(i64::from(days) * 86_400)
}

/// Parse a `{deviceId}` path segment (128 hex digits, either case) into the [`DeviceId`], or
/// 400 `invalid_id` (every route with a device ID in its path answers a malformed one so).
pub(crate) fn device_param(raw: &str) -> ApiResult<DeviceId> {
    raw.parse().map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidId,
            "`deviceId` must be 128 hexadecimal characters (the device ID)",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferro_wire::{CreateProductRequest, LoginRequest};

    #[test]
    fn expires_in_days_takes_the_default_and_refuses_outside_1_to_max() {
        // Transfer offers' rule: default 14, at most 90.
        for (requested, want) in [
            (None, Some(14)),
            (Some(1), Some(1)),
            (Some(90), Some(90)),
            (Some(0), None),
            (Some(91), None),
            (Some(u32::MAX), None),
        ] {
            let got = expires_in_days(requested, 14, 90);
            assert_eq!(got.as_ref().ok().copied(), want, "{requested:?}");
            if let Err(e) = got {
                assert_eq!(e.code(), ErrorCode::InvalidBody);
                assert!(e.to_string().contains("1 to 90"), "{e}");
            }
        }
        assert_eq!(days_after(1000, 14), 1000 + 14 * 86_400);
        assert_eq!(days_after(i64::MAX - 1, 1), i64::MAX);
    }

    fn code<T: DeserializeOwned + std::fmt::Debug>(s: &str) -> (ErrorCode, String) {
        let e = parse_json::<T>(s.as_bytes()).unwrap_err();
        (e.code(), e.to_string())
    }

    #[test]
    fn classifies() {
        assert_eq!(
            code::<CreateProductRequest>("{").0,
            ErrorCode::MalformedJson
        );
        assert_eq!(
            code::<CreateProductRequest>(r#"{"name":"a"} x"#).0,
            ErrorCode::MalformedJson
        );
        let (c, m) = code::<CreateProductRequest>(r#"{"name":"a","colour":1}"#);
        assert_eq!(c, ErrorCode::UnknownField);
        assert!(m.contains("`colour`"), "{m}");
        let (c, m) = code::<CreateProductRequest>(r#"{"name":5}"#);
        assert_eq!(c, ErrorCode::InvalidBody);
        assert!(m.contains("`name`"), "{m}");
        assert_eq!(code::<CreateProductRequest>("{}").0, ErrorCode::InvalidBody);
    }

    #[test]
    fn never_echoes_values() {
        let (_, m) = code::<LoginRequest>(r#"{"login":"a@b","password":["hunter2secret"]}"#);
        assert!(!m.contains("hunter2secret"), "{m}");
        let (_, m) =
            code::<ferro_wire::CreateApiTokenRequest>(r#"{"name":"x","expiresInDays":"sekrit"}"#);
        assert!(!m.contains("sekrit"), "{m}");
    }
}
