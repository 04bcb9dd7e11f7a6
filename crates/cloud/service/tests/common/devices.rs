//! Software devices for the device-facing tests: a software root of trust, registration,
//! claim, attestation (challenge + evidence) and an HTTPS listener for the real TLS paths.
#![allow(dead_code)]

use super::{TestApp, b64};
use axum::http::StatusCode;
use base64ct::{Base64UrlUnpadded, Encoding};
use ferro_trust::evidence::{DebugStatus, create_evidence};
use ferro_trust::{MeasurementEvent, RootOfTrust, SoftwareRootOfTrust};
use serde_json::{Value, json};

/// A software device: its root of trust (in a temporary directory) and ID.
pub struct Dev {
    pub _dir: tempfile::TempDir,
    pub rot: SoftwareRootOfTrust,
    pub id: String,
}

pub fn new_rot() -> Dev {
    let dir = tempfile::tempdir().unwrap();
    let rot = SoftwareRootOfTrust::open(dir.path().join("rot")).unwrap();
    let id = rot.device_id().to_string();
    Dev { _dir: dir, rot, id }
}

/// Registers the device; returns its claim code.
pub async fn register(t: &TestApp, d: &Dev) -> String {
    let record = ferro_pki::RegistrationRecord {
        device_key: d.rot.public_key().clone(),
        root_of_trust: ferro_pki::RootOfTrust::Software,
        tpm_ek_certificate: None,
        manufacturing_state: ferro_pki::ManufacturingState::DeviceComplete,
        created_at: time::OffsetDateTime::now_utc(),
        tpm_attestation_key: None,
    };
    let bytes = record.sign(d.rot.device_key().as_ref()).unwrap();
    let r = t
        .post(
            "/v1/manufacturing/registrations",
            &t.operator,
            json!({"records": [b64(&bytes)]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body["devices"][0]["claimCode"]
        .as_str()
        .expect("claim code")
        .to_string()
}

pub async fn claimed(t: &TestApp, tid: &str, admin: &str) -> Dev {
    let d = new_rot();
    let code = register(t, &d).await;
    let r = t
        .post(
            &format!("/v1/tenants/{tid}/devices/claim"),
            admin,
            json!({"devices": [{"deviceId": d.id, "claimCode": code}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    d
}

pub async fn challenge(t: &TestApp, did: &str) -> String {
    let r = t
        .call(
            axum::http::Method::POST,
            "/v1/attestation/challenge",
            None,
            Some(json!({"deviceId": did})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body["nonce"].as_str().unwrap().to_string()
}

pub fn evidence(rot: &dyn RootOfTrust, nonce: &str) -> Vec<u8> {
    let n = Base64UrlUnpadded::decode_vec(nonce).unwrap();
    create_evidence(rot, &n, DebugStatus::Disabled).unwrap()
}

pub async fn submit(t: &TestApp, did: &str, nonce: &str, ev: &[u8]) -> Value {
    let r = t
        .call(
            axum::http::Method::POST,
            "/v1/attestation/evidence",
            None,
            Some(json!({"deviceId": did, "nonce": nonce, "evidence": b64(ev)})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body
}

/// The measurement ferro-boot makes of an OS release it boots: the newest Retail release that
/// is not revoked, published first (as the operator) when there is none.
pub async fn os_boot_event(t: &TestApp) -> MeasurementEvent {
    use sqlx::Row;
    const NEWEST: &str = "SELECT image_id, payload_sha256, version_major, version_minor, \
        version_patch FROM os_releases WHERE retail_at IS NOT NULL AND revoked_at IS NULL \
        ORDER BY id DESC LIMIT 1";
    let mut row = sqlx::query(NEWEST)
        .fetch_optional(t.db.pool())
        .await
        .unwrap();
    if row.is_none() {
        t.os_release("Retail").await;
        row = sqlx::query(NEWEST)
            .fetch_optional(t.db.pool())
            .await
            .unwrap();
    }
    let row = row.expect("a Retail OS release");
    let part = |c: &str| row.try_get::<i64, _>(c).unwrap();
    MeasurementEvent {
        component_id: ferro_image::OS_COMPONENT_ID,
        image_id: row
            .try_get::<String, _>("image_id")
            .unwrap()
            .parse()
            .unwrap(),
        version: format!(
            "{}.{}.{}",
            part("version_major"),
            part("version_minor"),
            part("version_patch")
        ),
        digest: hex::decode(row.try_get::<String, _>("payload_sha256").unwrap())
            .unwrap()
            .try_into()
            .unwrap(),
    }
}

/// Boot the device's OS as ferro-boot does: the OS release's measurement first in the log.
pub async fn boot(t: &TestApp, d: &Dev) {
    d.rot.extend_measurement(&os_boot_event(t).await).unwrap();
}

/// Attest the device; a device that measured nothing yet boots first ([`boot`]), so every
/// device attests with the OS measurement ferro-boot makes (evidence with an empty log is
/// Untrusted: send it with [`submit`]).
pub async fn attest(t: &TestApp, d: &Dev) -> Value {
    if d.rot.read_measurements().unwrap().log.is_empty() {
        boot(t, d).await;
    }
    let n = challenge(t, &d.id).await;
    submit(t, &d.id, &n, &evidence(&d.rot, &n)).await
}

/// Serve the app over HTTPS on a free loopback port; returns (base URL, root PEM, stop).
pub async fn serve_https(
    t: &TestApp,
) -> (
    String,
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    serve_https_state(t, t.state.clone()).await
}

/// [`serve_https`] with another state on the test's data directory (a second replica).
pub async fn serve_https_state(
    t: &TestApp,
    state: ferro_service::AppState,
) -> (
    String,
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    serve_https_with(t, state, None).await
}

/// [`serve_https_state`], reading the PROXY protocol as `proxy` says.
pub async fn serve_https_with(
    t: &TestApp,
    state: ferro_service::AppState,
    proxy: Option<ferro_service::proxy_protocol::ProxyProtocol>,
) -> (
    String,
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let data = t.dir.path().join("data");
    let (chain, signer) =
        ferro_service::platform::service_tls(&data, &state.platform, &[]).unwrap();
    let config = ferro_service::server::tls_config(&chain, signer).unwrap();
    let listener = ferro_service::server::bind_with("127.0.0.1:0", Some(config), proxy)
        .await
        .unwrap();
    let port = listener.local_addr().port();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let h = tokio::spawn(ferro_service::server::serve(
        listener,
        ferro_service::build_app(state),
        async {
            let _ = rx.await;
        },
    ));
    let root = std::fs::read_to_string(data.join("pki/platform-root.pem")).unwrap();
    (format!("https://127.0.0.1:{port}"), root, stop, h)
}

/// A device whose software key the test holds and whose certificate the test had the tenant's
/// CA issue directly (no attestation): for tests that need many devices on the device routes.
pub struct KeyedDevice {
    pub id: String,
    pub key: ferro_signing::SoftwareSigningKey,
    /// The device certificate (DER).
    pub cert: Vec<u8>,
}

/// `n` devices registered (one request) and claimed by `tid` (one request), each with a device
/// certificate from the tenant's current CA.
pub async fn claimed_with_certificates(
    t: &TestApp,
    tid: &str,
    admin: &str,
    n: usize,
) -> Vec<KeyedDevice> {
    let cas = ferro_service::datastore::tenant_cas::active(&t.db, tid.parse().unwrap())
        .await
        .unwrap();
    let ca = ferro_pki::current_tenant_ca(&cas, time::OffsetDateTime::now_utc())
        .unwrap()
        .clone();
    let keys = t.state.platform.keys.0.as_ref();
    let mut records = Vec::new();
    let mut devices = Vec::new();
    for _ in 0..n {
        let key = ferro_signing::SoftwareSigningKey::generate();
        let (_, record) = super::registration_record_of(&key);
        records.push(record);
        let id = ferro_signing::DeviceId::from_public_key(key.public_key());
        let cert = ferro_pki::issue_device_certificate(
            &ca,
            keys,
            &id,
            tid.parse().unwrap(),
            key.public_key(),
            time::OffsetDateTime::now_utc(),
            ferro_pki::DEVICE_CERT_VALIDITY,
        )
        .unwrap();
        devices.push(KeyedDevice {
            id: id.to_string(),
            key,
            cert: cert.der().to_vec(),
        });
    }
    let r = t
        .post(
            "/v1/manufacturing/registrations",
            &t.operator,
            json!({ "records": records }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let claims = super::claims_of(&r);
    let r = t
        .post(
            &format!("/v1/tenants/{tid}/devices/claim"),
            admin,
            json!({ "devices": claims }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    devices
}
