//! Device routes over a real HTTPS listener: a running server for one test and claimed,
//! attested devices whose HTTPS client presents their device certificate in the handshake.
#![allow(dead_code)]

use super::TestApp;
use super::devices::{Dev, attest, claimed};
use axum::http::StatusCode;
use ferro_tls::SharedSigner;
use ferro_trust::RootOfTrust;
use serde_json::Value;

/// A running HTTPS listener for one test.
pub struct Server {
    pub url: String,
    pub root: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Server {
    pub async fn start(t: &TestApp) -> Server {
        Self::start_state(t, t.state.clone()).await
    }

    /// A listener serving `state` (another replica on the test's database and data directory).
    pub async fn start_state(t: &TestApp, state: ferro_service::AppState) -> Server {
        let (url, root, stop, handle) = super::devices::serve_https_state(t, state).await;
        Server {
            url,
            root,
            stop: Some(stop),
            handle: Some(handle),
        }
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
    }

    /// A client trusting the platform root, presenting `identity` (leaf DER and its key).
    pub fn client(&self, identity: Option<(Vec<u8>, SharedSigner)>) -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let root = ferro_service::platform::pem_body(&self.root).unwrap();
        let config = ferro_tls::client_config(
            &[root.into()],
            identity.map(|(der, signer)| (vec![der.into()], signer)),
        )
        .unwrap();
        reqwest::Client::builder()
            .use_preconfigured_tls(config)
            .build()
            .unwrap()
    }
}

/// A claimed, attested device and its HTTPS client (device certificate as client identity).
pub struct Device {
    pub dev: Dev,
    pub cert: Vec<u8>,
    pub http: reqwest::Client,
}

impl Device {
    pub fn id(&self) -> &str {
        &self.dev.id
    }
}

/// A device claimed by `tid` that attested Trusted, with a client presenting its certificate.
pub async fn certified(t: &TestApp, s: &Server, tid: &str, admin: &str) -> Device {
    let dev = claimed(t, tid, admin).await;
    let v = attest(t, &dev).await;
    assert_eq!(v["verdict"], "Trusted", "{v}");
    let cert = ferro_service::platform::pem_body(v["certificatePem"].as_str().unwrap()).unwrap();
    let http = s.client(Some((cert.clone(), dev.rot.device_key())));
    Device { dev, cert, http }
}

/// (status, headers, raw body) of a request.
pub async fn send(
    rb: reqwest::RequestBuilder,
) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let r = rb.send().await.expect("request");
    let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
    let headers = r.headers().clone();
    (status, headers, r.bytes().await.unwrap().to_vec())
}

/// The body as JSON, or Null.
pub fn json_of(raw: &[u8]) -> Value {
    serde_json::from_slice(raw).unwrap_or(Value::Null)
}
