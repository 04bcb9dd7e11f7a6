//! The blocking client: one base URL, one trust, one optional token.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use ferro_wire::ErrorBody;
use reqwest::Method;
use reqwest::blocking::{RequestBuilder, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ClientError;
use crate::tls::ServiceTrust;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A bearer token (session or API token). Never printed: `Debug` shows only that it is there.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    pub fn new(secret: impl Into<String>) -> Token {
        Token(secret.into())
    }

    /// The secret, for storing it where only its owner can read it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// A client of one Ferrosphere service.
#[derive(Debug)]
pub struct Client {
    http: reqwest::blocking::Client,
    base: String,
    token: Option<Token>,
}

/// Whether plain HTTP is acceptable for this host: loopback only (local development).
fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Client {
    /// A client of the service at `base_url` (`https://host:port`). HTTPS needs `trust` (the
    /// pinned platform root or a CA file); plain `http://` is accepted for loopback only.
    pub fn new(
        base_url: &str,
        trust: Option<&ServiceTrust>,
        token: Option<Token>,
    ) -> Result<Client, ClientError> {
        // reqwest is built without a default provider: make ring the process default (a no-op
        // when one is installed already).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let url = reqwest::Url::parse(base_url).map_err(|e| ClientError::InvalidUrl {
            url: base_url.to_string(),
            reason: e.to_string(),
        })?;
        let host = url.host_str().unwrap_or_default().to_string();
        let builder = reqwest::blocking::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("ferro/", env!("CARGO_PKG_VERSION")))
            .https_only(url.scheme() == "https");
        let builder = match (url.scheme(), trust) {
            ("https", Some(trust)) => builder.tls_backend_preconfigured(trust.client_config()?),
            ("https", None) => {
                return Err(ClientError::InvalidUrl {
                    url: base_url.to_string(),
                    reason: "no CA to verify the service with: run `ferro login --service URL` \
                             (or pass --ca-file)"
                        .to_string(),
                });
            }
            ("http", _) if is_loopback(&host) => builder,
            ("http", _) => {
                return Err(ClientError::InvalidUrl {
                    url: base_url.to_string(),
                    reason: "plain http is accepted only on loopback; use https".to_string(),
                });
            }
            (scheme, _) => {
                return Err(ClientError::InvalidUrl {
                    url: base_url.to_string(),
                    reason: format!("unsupported scheme {scheme:?}; use https"),
                });
            }
        };
        let http = builder.build().map_err(|e| ClientError::Transport {
            url: base_url.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Client {
            http,
            base: base_url.trim_end_matches('/').to_string(),
            token,
        })
    }

    /// The service's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// A copy of this client that authenticates with `token`.
    pub fn with_token(&self, token: Token) -> Client {
        Client {
            http: self.http.clone(),
            base: self.base.clone(),
            token: Some(token),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let builder = self.http.request(method, self.url(path));
        match &self.token {
            Some(token) => builder.bearer_auth(token.expose()),
            None => builder,
        }
    }

    fn send(&self, path: &str, builder: RequestBuilder) -> Result<Response, ClientError> {
        let url = self.url(path);
        let response = builder.send().map_err(|e| ClientError::Transport {
            url: url.clone(),
            reason: error_chain(&e),
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let body = response.bytes().unwrap_or_default();
        match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(error) => Err(ClientError::Api {
                status,
                code: error.error.code.to_string(),
                message: error.error.message,
            }),
            Err(_) => Err(ClientError::UnexpectedStatus { status, url }),
        }
    }

    fn decode<T: DeserializeOwned>(
        &self,
        path: &str,
        response: Response,
    ) -> Result<T, ClientError> {
        response.json::<T>().map_err(|e| ClientError::Decode {
            url: self.url(path),
            reason: error_chain(&e),
        })
    }

    /// `GET path`, decoding JSON.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let response = self.send(path, self.request(Method::GET, path))?;
        self.decode(path, response)
    }

    /// `GET path?query`, decoding JSON.
    pub fn get_query<Q: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        query: &Q,
    ) -> Result<T, ClientError> {
        let response = self.send(path, self.request(Method::GET, path).query(query))?;
        self.decode(path, response)
    }

    /// `GET path`, returning the raw body (downloads: certificates, CSV reports, images).
    pub fn get_bytes(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        let response = self.send(path, self.request(Method::GET, path))?;
        response
            .bytes()
            .map(|b| b.to_vec())
            .map_err(|e| ClientError::Transport {
                url: self.url(path),
                reason: error_chain(&e),
            })
    }

    /// `method path` with a JSON body, decoding a JSON answer.
    pub fn send_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let response = self.send(path, self.request(method, path).json(body))?;
        self.decode(path, response)
    }

    /// `POST path` with a JSON body.
    pub fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.send_json(Method::POST, path, body)
    }

    /// `PATCH path` with a JSON body.
    pub fn patch<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.send_json(Method::PATCH, path, body)
    }

    /// `method path` with a JSON body, ignoring the answer's body (204 and the like).
    pub fn send_json_no_content<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<(), ClientError> {
        let builder = self.request(method, path);
        let builder = match body {
            Some(body) => builder.json(body),
            None => builder,
        };
        self.send(path, builder).map(|_| ())
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> Result<(), ClientError> {
        self.send_json_no_content::<()>(Method::DELETE, path, None)
    }
}

/// An error and its sources on one line (reqwest's top-level message alone hides the cause).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
