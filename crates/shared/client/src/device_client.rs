//! The device's client of the service (feature `device`): async, one method per device route
//! with `ferro-wire` types in and out, over the HTTPS client the device hands it.
//!
//! The device builds that `reqwest::Client` itself, because only it can: the device
//! certificate's TLS client authentication signs through the root of trust, whose key never
//! leaves it (`ferro_attest::mtls_client_config`), and the routes that need no certificate
//! (attestation, the key list) trust only the platform root. This client never builds TLS.
//!
//! What the device's agents used to do each in their own way is done here once: the paths
//! (`routes.rs`), the API's errors as one typed [`DeviceClientError`] (429 with the one
//! `Retry-After` reading, [`crate::retry_after`]; 401, which the device answers by attesting
//! again), bounded reads of every answer, 304 for an unchanged target set, and image downloads
//! that resume with `Range` and stream chunk by chunk, never holding an image in memory.

use std::fmt;
use std::time::{Duration, SystemTime};

use ferro_wire::{
    AttestationChallenge, AttestationChallengeRequest, AttestationEvidenceRequest,
    AttestationResult, DeviceEventsUpload, DeviceTargetSet, UpdateSignal, UpdateStatusReport,
};
use reqwest::{RequestBuilder, Response, StatusCode, Url, header};
use serde::de::DeserializeOwned;

use crate::client::error_chain;
use crate::error::api_error_body;
use crate::retry_after::retry_after;
use crate::routes::{Route, service as route};
use crate::service::SignalQuery;

/// How long a request may take, unless its method says otherwise.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one image download (or the resumed rest of one) may take.
pub const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// The largest JSON answer read (a target set with its ownership document is the largest).
pub const MAX_JSON_ANSWER: usize = 256 * 1024;
/// How much of an error answer is read for its code and message.
const MAX_ERROR_ANSWER: usize = 64 * 1024;

/// Why a device's call to the service failed. Carries no key material and no certificate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceClientError {
    /// 429: the service (or something in front of it) limits this device's requests; wait at
    /// least `retry_after` ([`crate::retry_after`]).
    #[error("the service is limiting requests; retry in {}s", .retry_after.as_secs())]
    RateLimited {
        /// What the `Retry-After` header said, or its documented default.
        retry_after: Duration,
    },
    /// 401: the service refused the device certificate (the device moved to another tenant,
    /// or was blocked): attest again for a new one.
    #[error("the service refused the device certificate: {message}")]
    Unauthorized {
        /// The service's message (empty if it sent no error body).
        message: String,
    },
    /// Another error status with the API's error body: its stable code and message.
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable error code.
        code: String,
        /// The service's message.
        message: String,
    },
    /// An error status without the API's error body.
    #[error("the service answered HTTP {status} without an error description")]
    UnexpectedStatus {
        /// HTTP status.
        status: u16,
    },
    /// The request could not be sent, or the answer not received in full.
    #[error("cannot reach the service at {url}: {reason}")]
    Transport {
        /// The request's URL.
        url: String,
        /// Why, with its causes.
        reason: String,
    },
    /// The answer arrived but is not what the route returns (shape, size, range).
    #[error("the service's answer to {url} could not be read: {reason}")]
    Decode {
        /// The request's URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The service URL cannot take the route's path.
    #[error("invalid service URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
}

impl DeviceClientError {
    /// The HTTP status, if the service answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            DeviceClientError::RateLimited { .. } => Some(429),
            DeviceClientError::Unauthorized { .. } => Some(401),
            DeviceClientError::Api { status, .. }
            | DeviceClientError::UnexpectedStatus { status } => Some(*status),
            _ => None,
        }
    }

    /// The error an error status comes to: `retry_after_header` is the answer's `Retry-After`,
    /// `body` (the start of) its body, `now` the time a `Retry-After` date is measured from.
    pub(crate) fn from_status(
        status: StatusCode,
        retry_after_header: Option<&str>,
        body: &[u8],
        now: SystemTime,
    ) -> DeviceClientError {
        let decoded = api_error_body(body);
        match (status, decoded) {
            (StatusCode::TOO_MANY_REQUESTS, _) => DeviceClientError::RateLimited {
                retry_after: retry_after(retry_after_header, now),
            },
            (StatusCode::UNAUTHORIZED, decoded) => DeviceClientError::Unauthorized {
                message: decoded.map(|(_, message)| message).unwrap_or_default(),
            },
            (status, Some((code, message))) => DeviceClientError::Api {
                status: status.as_u16(),
                code,
                message,
            },
            (status, None) => DeviceClientError::UnexpectedStatus {
                status: status.as_u16(),
            },
        }
    }
}

/// The answer to a target set request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetSetAnswer {
    /// 304: the set is the one the given `ETag` names.
    NotModified,
    /// The current set, with the `ETag` to send next time (if the service gave one).
    Current {
        /// The target set and ownership document (still to be verified by the device).
        target_set: DeviceTargetSet,
        /// The answer's `ETag`.
        etag: Option<String>,
    },
}

/// The device's client of one service: its base URL and the HTTPS client the device built.
#[derive(Clone)]
pub struct DeviceClient {
    http: reqwest::Client,
    base: Url,
}

impl fmt::Debug for DeviceClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceClient")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl DeviceClient {
    /// A client of the service at `base_url` (`https://host:port`) over `http`, which the
    /// caller configured: trust in the platform root and, for the device routes, the device
    /// certificate with its key in the root of trust.
    pub fn new(base_url: &str, http: reqwest::Client) -> Result<DeviceClient, DeviceClientError> {
        let invalid = |reason: String| DeviceClientError::InvalidUrl {
            url: base_url.to_string(),
            reason,
        };
        let base =
            Url::parse(base_url.trim_end_matches('/')).map_err(|e| invalid(e.to_string()))?;
        if base.cannot_be_a_base() {
            return Err(invalid("the URL cannot take a path".to_string()));
        }
        Ok(DeviceClient { http, base })
    }

    /// The service's base URL.
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// `GET /v1/platform/key-list`: the signed platform key list, at most `max_len` bytes.
    pub async fn key_list(&self, max_len: usize) -> Result<Vec<u8>, DeviceClientError> {
        let (url, request) = self.request(&route::KEY_LIST, &[])?;
        let response = self.send(&url, request).await?;
        read_bounded(&url, response, max_len).await
    }

    /// `POST /v1/attestation/challenge`.
    pub async fn attestation_challenge(
        &self,
        request: &AttestationChallengeRequest,
    ) -> Result<AttestationChallenge, DeviceClientError> {
        let (url, builder) = self.request(&route::CHALLENGE, &[])?;
        self.fetch(&url, builder.json(request)).await
    }

    /// `POST /v1/attestation/evidence`.
    pub async fn attestation_evidence(
        &self,
        request: &AttestationEvidenceRequest,
    ) -> Result<AttestationResult, DeviceClientError> {
        let (url, builder) = self.request(&route::EVIDENCE, &[])?;
        self.fetch(&url, builder.json(request)).await
    }

    /// `GET /v1/device/target-set`, conditional on `if_none_match` (the `ETag` of the set the
    /// device last applied).
    pub async fn target_set(
        &self,
        if_none_match: Option<&str>,
    ) -> Result<TargetSetAnswer, DeviceClientError> {
        let (url, mut builder) = self.request(&route::DEVICE_TARGET_SET, &[])?;
        if let Some(tag) = if_none_match {
            builder = builder.header(header::IF_NONE_MATCH, tag);
        }
        let response = self.send(&url, builder).await?;
        if response.status() == StatusCode::NOT_MODIFIED {
            return Ok(TargetSetAnswer::NotModified);
        }
        let etag = response
            .headers()
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = read_bounded(&url, response, MAX_JSON_ANSWER).await?;
        Ok(TargetSetAnswer::Current {
            target_set: decode(&url, &body)?,
            etag,
        })
    }

    /// `GET /v1/device/images/{packageSha256}` from byte `offset` on (a `Range` request when
    /// `offset` > 0): the answer's body, to be read chunk by chunk ([`ImageDownload`]).
    pub async fn image(
        &self,
        package_sha256_hex: &str,
        offset: u64,
    ) -> Result<ImageDownload, DeviceClientError> {
        let (url, mut builder) = self.request(&route::DEVICE_IMAGE, &[&package_sha256_hex])?;
        builder = builder.timeout(DOWNLOAD_TIMEOUT);
        if offset > 0 {
            builder = builder.header(header::RANGE, format!("bytes={offset}-"));
        }
        let response = self.send(&url, builder).await?;
        let start = match response.status() {
            StatusCode::PARTIAL_CONTENT => {
                let range = response
                    .headers()
                    .get(header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok());
                match range.map(range_start) {
                    None => offset,
                    Some(Some(start)) if start == offset => offset,
                    Some(_) => {
                        return Err(DeviceClientError::Decode {
                            url: url.to_string(),
                            reason: format!(
                                "asked for bytes from {offset} on, got Content-Range {:?}",
                                range.unwrap_or_default()
                            ),
                        });
                    }
                }
            }
            StatusCode::OK => 0,
            status => {
                return Err(DeviceClientError::Decode {
                    url: url.to_string(),
                    reason: format!("HTTP {status} is not an image"),
                });
            }
        };
        Ok(ImageDownload {
            url,
            response,
            start,
        })
    }

    /// `GET /v1/device/update-signal`: without `since`, where the signals stand now; with it,
    /// waits up to `wait` for a newer one. `None`: nothing new (204).
    pub async fn update_signal(
        &self,
        since: Option<&str>,
        wait: Duration,
    ) -> Result<Option<UpdateSignal>, DeviceClientError> {
        let (url, mut builder) = self.request(&route::DEVICE_UPDATE_SIGNAL, &[])?;
        if since.is_some() {
            builder = builder.query(&SignalQuery {
                since,
                wait_seconds: Some(wait.as_secs()),
            });
        }
        let response = self
            .send(&url, builder.timeout(wait + REQUEST_TIMEOUT))
            .await?;
        if response.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        let body = read_bounded(&url, response, MAX_JSON_ANSWER).await?;
        decode(&url, &body).map(Some)
    }

    /// `POST /v1/device/update-status`.
    pub async fn update_status(
        &self,
        report: &UpdateStatusReport,
    ) -> Result<(), DeviceClientError> {
        let (url, builder) = self.request(&route::DEVICE_UPDATE_STATUS, &[])?;
        self.send(&url, builder.json(report)).await.map(drop)
    }

    /// `POST /v1/device/events`.
    pub async fn events(&self, upload: &DeviceEventsUpload) -> Result<(), DeviceClientError> {
        let (url, builder) = self.request(&route::DEVICE_EVENTS, &[])?;
        self.send(&url, builder.json(upload)).await.map(drop)
    }

    /// A request on `route` with the default timeout.
    fn request(
        &self,
        route: &Route,
        params: &[&dyn fmt::Display],
    ) -> Result<(Url, RequestBuilder), DeviceClientError> {
        let url = route
            .url(&self.base, params)
            .map_err(|e| DeviceClientError::InvalidUrl {
                url: self.base.to_string(),
                reason: e.to_string(),
            })?;
        let builder = self
            .http
            .request(route.verb.method(), url.clone())
            .timeout(REQUEST_TIMEOUT);
        Ok((url, builder))
    }

    /// Sends; a success (or 304) is returned, any other status becomes its typed error.
    async fn send(
        &self,
        url: &Url,
        builder: RequestBuilder,
    ) -> Result<Response, DeviceClientError> {
        let response = builder.send().await.map_err(|e| transport(url, &e))?;
        let status = response.status();
        if status.is_success() || status == StatusCode::NOT_MODIFIED {
            return Ok(response);
        }
        let retry = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        // An error body that cannot be read still leaves the status to go by.
        let body = read_bounded(url, response, MAX_ERROR_ANSWER)
            .await
            .unwrap_or_default();
        Err(DeviceClientError::from_status(
            status,
            retry.as_deref(),
            &body,
            SystemTime::now(),
        ))
    }

    /// Sends and decodes the JSON answer.
    async fn fetch<T: DeserializeOwned>(
        &self,
        url: &Url,
        builder: RequestBuilder,
    ) -> Result<T, DeviceClientError> {
        let response = self.send(url, builder).await?;
        let body = read_bounded(url, response, MAX_JSON_ANSWER).await?;
        decode(url, &body)
    }
}

/// An image package arriving: read it with [`ImageDownload::chunk`] until `None`.
#[derive(Debug)]
pub struct ImageDownload {
    url: Url,
    response: Response,
    start: u64,
}

impl ImageDownload {
    /// Where in the package the body starts: the offset asked for (206), or 0 when the service
    /// sent the whole package (200), so a partial download must start again.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// The next piece of the body; `None` at its end. After an error the pieces received so
    /// far are still good: keep them and resume from there.
    pub async fn chunk(&mut self) -> Result<Option<bytes::Bytes>, DeviceClientError> {
        self.response
            .chunk()
            .await
            .map_err(|e| transport(&self.url, &e))
    }
}

/// The first byte of a `Content-Range: bytes FIRST-LAST/LENGTH` value.
fn range_start(value: &str) -> Option<u64> {
    let (first, _) = value.trim().strip_prefix("bytes ")?.split_once('-')?;
    first.trim().parse().ok()
}

fn transport(url: &Url, error: &reqwest::Error) -> DeviceClientError {
    DeviceClientError::Transport {
        url: url.to_string(),
        reason: error_chain(error),
    }
}

fn decode<T: DeserializeOwned>(url: &Url, body: &[u8]) -> Result<T, DeviceClientError> {
    serde_json::from_slice(body).map_err(|e| DeviceClientError::Decode {
        url: url.to_string(),
        reason: e.to_string(),
    })
}

/// The whole body, refused once it passes `max` bytes (before any is read when the announced
/// length already does).
async fn read_bounded(
    url: &Url,
    mut response: Response,
    max: usize,
) -> Result<Vec<u8>, DeviceClientError> {
    let too_large = || DeviceClientError::Decode {
        url: url.to_string(),
        reason: format!("the answer is larger than {max} bytes"),
    };
    if response
        .content_length()
        .is_some_and(|n| n > u64::try_from(max).unwrap_or(u64::MAX))
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| transport(url, &e))? {
        if body.len() + chunk.len() > max {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_body(code: &str, message: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({ "error": { "code": code, "message": message } }))
            .unwrap_or_default()
    }

    /// What each answer comes to: (status, Retry-After, body) -> typed error.
    #[test]
    fn error_mapping_table() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        let limited = error_body("rate_limited", "try again in 7 s");
        let refused = error_body("unauthenticated", "certificate refused");
        let missing = error_body("not_found", "no such image");
        let cases: Vec<(u16, Option<&str>, Vec<u8>, &str)> = vec![
            (429, Some("7"), limited.clone(), "RateLimited 7s"),
            (
                429,
                Some("Sun, 06 Nov 1994 08:49:47 GMT"),
                Vec::new(),
                "RateLimited 10s",
            ),
            (429, None, limited, "RateLimited 60s"),
            (429, Some("later"), b"busy".to_vec(), "RateLimited 60s"),
            (401, None, refused, "Unauthorized certificate refused"),
            (401, None, b"<html>".to_vec(), "Unauthorized "),
            (404, None, missing, "Api 404 not_found no such image"),
            (
                400,
                Some("5"),
                error_body("malformed_json", "bad"),
                "Api 400 malformed_json bad",
            ),
            (413, None, Vec::new(), "Unexpected 413"),
            (
                502,
                None,
                b"<html>bad gateway</html>".to_vec(),
                "Unexpected 502",
            ),
            (500, None, br#"{"error":{}}"#.to_vec(), "Unexpected 500"),
        ];
        for (status, retry, body, expected) in cases {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::IM_A_TEAPOT);
            let error = DeviceClientError::from_status(status, retry, &body, now);
            let got = match &error {
                DeviceClientError::RateLimited { retry_after } => {
                    format!("RateLimited {}s", retry_after.as_secs())
                }
                DeviceClientError::Unauthorized { message } => format!("Unauthorized {message}"),
                DeviceClientError::Api {
                    status,
                    code,
                    message,
                } => format!("Api {status} {code} {message}"),
                DeviceClientError::UnexpectedStatus { status } => format!("Unexpected {status}"),
                other => format!("{other:?}"),
            };
            assert_eq!(got, expected, "{status} {retry:?}");
            assert_eq!(error.status(), Some(status.as_u16()));
        }
    }

    #[test]
    fn content_range_starts() {
        let cases: &[(&str, Option<u64>)] = &[
            ("bytes 100-199/200", Some(100)),
            ("bytes 0-9/*", Some(0)),
            (" bytes 5-9/10 ", Some(5)),
            ("bytes */200", None),
            ("items 1-2/3", None),
            ("bytes x-9/10", None),
        ];
        for (value, expected) in cases {
            assert_eq!(range_start(value), *expected, "{value}");
        }
    }

    #[test]
    fn routes_join_the_base_url() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let cases: &[(&str, &str)] = &[
            ("https://svc:8443", "https://svc:8443/v1/device/images/ab"),
            ("https://svc:8443/", "https://svc:8443/v1/device/images/ab"),
            ("https://svc/api/", "https://svc/api/v1/device/images/ab"),
        ];
        for (base, expected) in cases {
            let client = DeviceClient::new(base, reqwest::Client::new());
            let url =
                client.and_then(|c| c.request(&route::DEVICE_IMAGE, &[&"ab"]).map(|(u, _)| u));
            assert_eq!(
                url.map(String::from).ok().as_deref(),
                Some(*expected),
                "{base}"
            );
        }
        assert!(DeviceClient::new("not a url", reqwest::Client::new()).is_err());
        assert!(DeviceClient::new("mailto:x@y", reqwest::Client::new()).is_err());
    }
}
