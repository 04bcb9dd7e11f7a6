use ferro_wire::ErrorBody;
use thiserror::Error;

/// The stable code and the message of an API error body, if `body` is one: the one reading of
/// the APIs' JSON errors, for the operator's client and the device's.
pub(crate) fn api_error_body(body: &[u8]) -> Option<(String, String)> {
    serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .map(|e| (e.error.code.to_string(), e.error.message))
}

/// Why a call to the service failed.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The service answered with an error body: its stable code and its advice.
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// The service answered with an error status but no Ferrosphere error body.
    #[error(
        "the service answered HTTP {status} without an error description; is {url} a Ferrosphere service?"
    )]
    UnexpectedStatus { status: u16, url: String },
    /// The request could not be sent or the answer not received.
    #[error("cannot reach the service at {url}: {reason}")]
    Transport { url: String, reason: String },
    /// The TLS connection failed (certificate not trusted, handshake failure, ...).
    #[error("TLS with {host} failed: {reason}")]
    Tls { host: String, reason: String },
    /// A URL that is not usable.
    #[error("invalid service URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// A CA file that holds no usable certificate.
    #[error("no usable CA certificate: {0}")]
    InvalidCa(String),
    /// A local file to upload or download into could not be used.
    #[error("{path}: {reason}")]
    LocalFile { path: String, reason: String },
    /// The answer did not have the expected shape.
    #[error("the service's answer to {url} could not be read: {reason}")]
    Decode { url: String, reason: String },
}

impl ClientError {
    /// The service's stable error code, if it sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status, if the service answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } | ClientError::UnexpectedStatus { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }
}
