//! The blocking client: one base URL, one trust, one optional token.

use std::fmt;
use std::fs::File;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::Path;
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

    /// A client of the local device API (`ferro_wire::device_api`) listening on the Unix socket
    /// at `socket` (plain HTTP: the socket's file permissions are its access control).
    #[cfg(unix)]
    pub fn local_device(socket: &Path) -> Result<Client, ClientError> {
        let base = "http://localhost";
        // reqwest builds its TLS layer even when it is not used: give it the one provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::blocking::Client::builder()
            // Log streams stay open as long as the user follows them.
            .timeout(None)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("ferro/", env!("CARGO_PKG_VERSION")))
            .unix_socket(socket)
            .build()
            .map_err(|e| ClientError::Transport {
                url: socket.display().to_string(),
                reason: e.to_string(),
            })?;
        Ok(Client {
            http,
            base: base.to_string(),
            token: None,
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

    /// `method path` with a JSON body, returning the raw answer (a PEM, a CSV, a COSE file).
    pub fn send_json_for_bytes<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<Vec<u8>, ClientError> {
        let response = self.send(path, self.request(method, path).json(body))?;
        response
            .bytes()
            .map(|b| b.to_vec())
            .map_err(|e| ClientError::Transport {
                url: self.url(path),
                reason: error_chain(&e),
            })
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

    /// `POST path` with the file's bytes as `content_type`, streamed (never held in memory);
    /// `progress` is told how many bytes have been sent so far.
    pub fn upload_file<T: DeserializeOwned>(
        &self,
        path: &str,
        file: &Path,
        content_type: &str,
        progress: impl Fn(u64) + Send + 'static,
    ) -> Result<T, ClientError> {
        let opened = File::open(file).map_err(|e| ClientError::LocalFile {
            path: file.display().to_string(),
            reason: e.to_string(),
        })?;
        let length = opened.metadata().map(|m| m.len()).unwrap_or(0);
        let body = reqwest::blocking::Body::sized(
            ProgressReader {
                inner: opened,
                done: 0,
                progress,
            },
            length,
        );
        let builder = self
            .request(Method::POST, path)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        let response = self.send(path, builder)?;
        self.decode(path, response)
    }

    /// `GET path` into `destination` (mode 0644), streamed through a temporary file renamed into
    /// place (`ferro_files::AtomicFile`) only when the whole body arrived; `progress` gets (bytes so far, total if known).
    pub fn download_to_file(
        &self,
        path: &str,
        destination: &Path,
        progress: impl Fn(u64, Option<u64>),
    ) -> Result<u64, ClientError> {
        let local = |e: std::io::Error| ClientError::LocalFile {
            path: destination.display().to_string(),
            reason: e.to_string(),
        };
        let mut response = self.send(path, self.request(Method::GET, path))?;
        let total = response.content_length();
        // Removed unless committed: a failed download leaves nothing behind.
        let mut file = ferro_files::AtomicFile::create(destination, ferro_files::Mode::PUBLIC)
            .map_err(local)?;
        let mut buffer = vec![0u8; 256 * 1024];
        let mut done = 0u64;
        loop {
            let n = response
                .read(&mut buffer)
                .map_err(|e| ClientError::Transport {
                    url: self.url(path),
                    reason: e.to_string(),
                })?;
            if n == 0 {
                break;
            }
            file.write_all(buffer.get(..n).unwrap_or_default())
                .map_err(local)?;
            done += n as u64;
            progress(done, total);
        }
        if total.is_some_and(|t| t != done) {
            return Err(ClientError::Transport {
                url: self.url(path),
                reason: format!("the download ended after {done} bytes"),
            });
        }
        file.commit().map_err(local)?;
        Ok(done)
    }

    /// `method path` with a raw body of `content_type` and extra `headers`, decoding a JSON
    /// answer.
    pub fn send_bytes<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<T, ClientError> {
        let mut builder = self
            .request(method, path)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let response = self.send(path, builder)?;
        self.decode(path, response)
    }

    /// `GET path`, handing each line of the answer to `line` as it arrives (a streamed log),
    /// until the body ends or `line` returns false.
    pub fn get_lines(
        &self,
        path: &str,
        mut line: impl FnMut(&str) -> bool,
    ) -> Result<(), ClientError> {
        use std::io::BufRead;
        let response = self.send(path, self.request(Method::GET, path))?;
        let reader = std::io::BufReader::new(response);
        for text in reader.lines() {
            let text = text.map_err(|e| ClientError::Transport {
                url: self.url(path),
                reason: e.to_string(),
            })?;
            if !line(&text) {
                break;
            }
        }
        Ok(())
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

/// Counts what an upload has read from its file.
struct ProgressReader<R, F> {
    inner: R,
    done: u64,
    progress: F,
}

impl<R: Read, F: Fn(u64)> Read for ProgressReader<R, F> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        (self.progress)(self.done);
        Ok(n)
    }
}
