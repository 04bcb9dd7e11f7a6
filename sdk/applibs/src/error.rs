use std::fmt;

use crate::bindings::ferrosphere::device::types::Error as RawError;

/// Why a device call failed. The text names the resource and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The app's manifest does not grant this resource.
    NotPermitted(String),
    /// The board has no such resource, or it is not open.
    NoSuchResource(String),
    /// An argument is out of range or malformed.
    InvalidArgument(String),
    /// The resource is open in an incompatible way.
    Busy(String),
    /// The device or the peer failed.
    Io(String),
    /// A quota or size limit would be exceeded (e.g. mutable storage).
    LimitExceeded(String),
    /// The device does not support the operation.
    Unsupported(String),
    /// Nothing arrived before the timeout.
    TimedOut,
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<RawError> for Error {
    fn from(error: RawError) -> Self {
        match error {
            RawError::NotPermitted(text) => Self::NotPermitted(text),
            RawError::NoSuchResource(text) => Self::NoSuchResource(text),
            RawError::InvalidArgument(text) => Self::InvalidArgument(text),
            RawError::Busy(text) => Self::Busy(text),
            RawError::Io(text) => Self::Io(text),
            RawError::LimitExceeded(text) => Self::LimitExceeded(text),
            RawError::Unsupported(text) => Self::Unsupported(text),
            RawError::TimedOut => Self::TimedOut,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotPermitted(text) => write!(f, "not permitted: {text}"),
            Self::NoSuchResource(text) => write!(f, "no such resource: {text}"),
            Self::InvalidArgument(text) => write!(f, "invalid argument: {text}"),
            Self::Busy(text) => write!(f, "busy: {text}"),
            Self::Io(text) => write!(f, "I/O error: {text}"),
            Self::LimitExceeded(text) => write!(f, "limit exceeded: {text}"),
            Self::Unsupported(text) => write!(f, "unsupported: {text}"),
            Self::TimedOut => f.write_str("timed out"),
        }
    }
}

impl Error {
    /// Whether this is a connection that is gone (its real-time partner restarted or
    /// stopped): connect again.
    pub fn is_disconnect(&self) -> bool {
        matches!(self, Self::NoSuchResource(_))
    }
}

impl std::error::Error for Error {}

impl From<Error> for std::io::Error {
    fn from(error: Error) -> Self {
        let kind = match &error {
            Error::NotPermitted(_) => std::io::ErrorKind::PermissionDenied,
            Error::NoSuchResource(_) => std::io::ErrorKind::NotFound,
            Error::InvalidArgument(_) => std::io::ErrorKind::InvalidInput,
            Error::TimedOut => std::io::ErrorKind::TimedOut,
            Error::Unsupported(_) => std::io::ErrorKind::Unsupported,
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, error)
    }
}
