//! The blocking client: one base URL, one trust, one optional token.

use std::fmt;
use std::fs::File;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use reqwest::blocking::{RequestBuilder, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ClientError, api_error_body};
use crate::routes::Route;
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
    pub(crate) fn local_device(socket: &Path) -> Result<Client, ClientError> {
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

    /// A request on `route`, its `{name}` segments filled from `params` in order.
    pub(crate) fn call(
        &self,
        route: &Route,
        params: &[&dyn fmt::Display],
    ) -> Result<Call, ClientError> {
        let base = reqwest::Url::parse(&self.base).map_err(|e| ClientError::InvalidUrl {
            url: self.base.clone(),
            reason: e.to_string(),
        })?;
        let url = route.url(&base, params)?;
        let builder = self.http.request(route.verb.method(), url.clone());
        let builder = match &self.token {
            Some(token) => builder.bearer_auth(token.expose()),
            None => builder,
        };
        Ok(Call { url, builder })
    }

    /// Raw requests on any path, for tests that send what no typed method would (malformed
    /// bodies, unknown routes). Nothing outside tests should need it.
    pub fn raw(&self) -> Raw<'_> {
        Raw { client: self }
    }
}

/// One request being built: the route's URL and reqwest's builder.
pub(crate) struct Call {
    url: reqwest::Url,
    builder: RequestBuilder,
}

impl Call {
    /// Adds query parameters (a wire query struct).
    pub(crate) fn query<Q: Serialize + ?Sized>(mut self, query: &Q) -> Call {
        self.builder = self.builder.query(query);
        self
    }

    /// Adds a JSON body.
    pub(crate) fn json<B: Serialize + ?Sized>(mut self, body: &B) -> Call {
        self.builder = self.builder.json(body);
        self
    }

    /// Adds a raw body of `content_type`.
    pub(crate) fn body(
        mut self,
        content_type: &str,
        body: impl Into<reqwest::blocking::Body>,
    ) -> Call {
        self.builder = self
            .builder
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        self
    }

    /// Adds a header.
    pub(crate) fn header(mut self, name: &str, value: &str) -> Call {
        self.builder = self.builder.header(name, value);
        self
    }

    pub(crate) fn url_text(&self) -> String {
        self.url.to_string()
    }

    /// Sends; an error status becomes [`ClientError::Api`] (or `UnexpectedStatus`).
    pub(crate) fn send(self) -> Result<(String, Response), ClientError> {
        let url = self.url_text();
        let response = self.builder.send().map_err(|e| ClientError::Transport {
            url: url.clone(),
            reason: error_chain(&e),
        })?;
        if response.status().is_success() {
            return Ok((url, response));
        }
        let status = response.status().as_u16();
        let body = response.bytes().unwrap_or_default();
        match api_error_body(&body) {
            Some((code, message)) => Err(ClientError::Api {
                status,
                code,
                message,
            }),
            None => Err(ClientError::UnexpectedStatus { status, url }),
        }
    }

    /// Sends and decodes the JSON answer.
    pub(crate) fn fetch<T: DeserializeOwned>(self) -> Result<T, ClientError> {
        let (url, response) = self.send()?;
        response.json::<T>().map_err(|e| ClientError::Decode {
            url,
            reason: error_chain(&e),
        })
    }

    /// Sends, decoding a JSON answer if there is one (`None` for 204 No Content).
    pub(crate) fn fetch_optional<T: DeserializeOwned>(self) -> Result<Option<T>, ClientError> {
        let (url, response) = self.send()?;
        if response.status() == reqwest::StatusCode::NO_CONTENT {
            return Ok(None);
        }
        response
            .json::<T>()
            .map(Some)
            .map_err(|e| ClientError::Decode {
                url,
                reason: error_chain(&e),
            })
    }

    /// Sends, ignoring the answer's body (204 and the like).
    pub(crate) fn no_content(self) -> Result<(), ClientError> {
        self.send().map(|_| ())
    }

    /// Sends and returns the raw answer (certificates, CSV reports, COSE files).
    pub(crate) fn bytes(self) -> Result<Vec<u8>, ClientError> {
        let (url, response) = self.send()?;
        response
            .bytes()
            .map(|b| b.to_vec())
            .map_err(|e| ClientError::Transport {
                url,
                reason: error_chain(&e),
            })
    }

    /// Sends the file's bytes as `content_type`, streamed (never held in memory); `progress` is
    /// told how many bytes have been sent so far. Decodes the JSON answer.
    pub(crate) fn upload<T: DeserializeOwned>(
        self,
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
        self.body(content_type, body).fetch()
    }

    /// Streams the answer into `destination` (mode 0644) through a temporary file renamed into
    /// place (`ferro_files::AtomicFile`) only when the whole body arrived; `progress` gets
    /// (bytes so far, total if known).
    pub(crate) fn download(
        self,
        destination: &Path,
        progress: impl Fn(u64, Option<u64>),
    ) -> Result<u64, ClientError> {
        let local = |e: std::io::Error| ClientError::LocalFile {
            path: destination.display().to_string(),
            reason: e.to_string(),
        };
        let (url, mut response) = self.send()?;
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
                    url: url.clone(),
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
                url,
                reason: format!("the download ended after {done} bytes"),
            });
        }
        file.commit().map_err(local)?;
        Ok(done)
    }

    /// Hands each line of the answer to `line` as it arrives (a streamed log), until the body
    /// ends or `line` returns false.
    pub(crate) fn lines(self, mut line: impl FnMut(&str) -> bool) -> Result<(), ClientError> {
        use std::io::BufRead;
        let (url, response) = self.send()?;
        let reader = std::io::BufReader::new(response);
        for text in reader.lines() {
            let text = text.map_err(|e| ClientError::Transport {
                url: url.clone(),
                reason: e.to_string(),
            })?;
            if !line(&text) {
                break;
            }
        }
        Ok(())
    }
}

/// Requests on any path (see [`Client::raw`]).
#[derive(Debug)]
pub struct Raw<'c> {
    client: &'c Client,
}

impl Raw<'_> {
    fn call(&self, method: Method, path: &str) -> Result<Call, ClientError> {
        let text = format!("{}{path}", self.client.base);
        let url = reqwest::Url::parse(&text).map_err(|e| ClientError::InvalidUrl {
            url: text,
            reason: e.to_string(),
        })?;
        let builder = self.client.http.request(method, url.clone());
        let builder = match &self.client.token {
            Some(token) => builder.bearer_auth(token.expose()),
            None => builder,
        };
        Ok(Call { url, builder })
    }

    /// `GET path`, decoding JSON.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::GET, path)?.fetch()
    }

    /// `method path` with a raw body of `content_type` and extra `headers`, decoding JSON.
    pub fn send_bytes<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<T, ClientError> {
        let mut call = self.call(method, path)?.body(content_type, body);
        for (name, value) in headers {
            call = call.header(name, value);
        }
        call.fetch()
    }
}

/// An error and its sources on one line (reqwest's top-level message alone hides the cause).
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
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
