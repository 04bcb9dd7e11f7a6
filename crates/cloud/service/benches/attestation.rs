//! Attestation throughput (docs/attestation.md): end-to-end attestations per second (challenge,
//! evidence, appraisal, certificate) with many concurrent simulated devices (software RoT) on
//! the in-process service (SQLite, `oneshot`), against the bound of the P-256 crypto one
//! attestation needs (device sign + service verify + certificate sign), measured in the same run.
//!
//! The same devices then run against a *floor*: the same two routes with the same wire types,
//! nonces and crypto but nothing else (see [`Floor`]), which shows how much of the bound the
//! HTTP/JSON protocol alone leaves for everything the service must also do.
//!
//! `cargo bench -p ferro-service --bench attestation` (env `DEVICES`, `ROUNDS`, `WORKERS`).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::Request;
use base64ct::{Base64, Base64UrlUnpadded, Encoding};
use ferro_service::{Config, setup};
use ferro_signing::{PublicKey, Signer as _, SoftwareSigningKey};
use ferro_trust::evidence::{DebugStatus, create_evidence};
use ferro_trust::{RootOfTrust, SoftwareRootOfTrust};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

#[path = "common/os_release.rs"]
mod os_release;

/// The service binary's allocator, so the figures are the service's.
#[global_allocator]
static ALLOCATOR: ferro_service::Allocator = ferro_service::ALLOCATOR;

async fn call(app: &axum::Router, path: &str, token: Option<&str>, body: Value) -> Value {
    call_as(app, path, token, None, &body)
        .await
        .unwrap_or(Value::Null)
}

/// A request whose answer is parsed into `T` (the simulated devices send and parse typed wire
/// messages, as `ferro-attest` does).
async fn call_as<T: serde::de::DeserializeOwned>(
    app: &axum::Router,
    path: &str,
    token: Option<&str>,
    peer: Option<std::net::SocketAddr>,
    body: &impl serde::Serialize,
) -> Option<T> {
    let mut req = Request::post(path).header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if let Some(addr) = peer {
        // What the listener attaches to each connection (the rate limit's key).
        req = req.extension(axum::extract::ConnectInfo(
            ferro_service::server::ConnInfo::new(addr, None),
        ));
    }
    let resp = app
        .clone()
        .oneshot(
            req.body(Body::from(serde_json::to_vec(body).unwrap()))
                .unwrap(),
        )
        .await
        .unwrap();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).ok()
}

/// Seconds per ECDSA P-256 sign and verify on one core with the implementation attestation uses
/// (`ferro_signing`: `ring`), and the bound for all cores: 2 signs (device evidence, device
/// certificate) + 1 verify (evidence) per attestation.
fn crypto_bound() -> (f64, f64, f64) {
    use ring::signature::{
        ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
        UnparsedPublicKey,
    };
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key.public_key().as_ref());
    let msg = [7u8; 200];
    let n = 4000u32;
    let t = Instant::now();
    let mut sig = None;
    for _ in 0..n {
        sig = Some(key.sign(&rng, &msg).unwrap());
    }
    let sign = t.elapsed().as_secs_f64() / f64::from(n);
    let sig = sig.unwrap();
    let t = Instant::now();
    for _ in 0..n {
        assert!(public.verify(&msg, sig.as_ref()).is_ok());
    }
    let verify = t.elapsed().as_secs_f64() / f64::from(n);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    (sign, verify, cores / (2.0 * sign + verify))
}

/// CPU time (ns) of each live thread of this process by thread name, from
/// `/proc/self/task/*/schedstat` (Linux; empty elsewhere): what was busy during the run.
fn cpu_by_thread() -> std::collections::BTreeMap<(String, u32), u64> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let tid: u32 = task.file_name().to_string_lossy().parse().unwrap_or(0);
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let ns = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
            .unwrap_or(0);
        out.insert((name.trim().to_string(), tid), ns);
    }
    out
}

/// CPU seconds per thread name spent between two [`cpu_by_thread`] readings.
fn cpu_between(
    before: &std::collections::BTreeMap<(String, u32), u64>,
    after: &std::collections::BTreeMap<(String, u32), u64>,
) -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    for (key, ns) in after {
        let spent = ns.saturating_sub(before.get(key).copied().unwrap_or(0));
        *out.entry(key.0.clone()).or_insert(0.0) += spent as f64 / 1e9;
    }
    out
}

/// One measured run of all devices against `app`.
struct Run {
    trusted: usize,
    secs: f64,
    cpu: std::collections::BTreeMap<String, f64>,
    /// A Trusted answer (the floor's template).
    last_answer: Option<ferro_wire::AttestationResult>,
}

type Devices = [(tempfile::TempDir, Arc<SoftwareRootOfTrust>)];

/// Every device attests `rounds` times, all devices concurrently: a challenge, evidence made and
/// signed by the device, the evidence sent, the answer parsed.
async fn run_devices(app: &axum::Router, devices: &Devices, rounds: usize) -> Run {
    let cpu_before = cpu_by_thread();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (i, (_, rot)) in devices.iter().enumerate() {
        let (app, rot) = (app.clone(), rot.clone());
        // Each simulated device from an address of its own, as over the network.
        let peer = Some(std::net::SocketAddr::from((
            std::net::Ipv4Addr::from(0x0a00_0000 + u32::try_from(i).unwrap()),
            40_000,
        )));
        tasks.push(tokio::spawn(async move {
            let id = rot.device_id();
            let mut ok = 0usize;
            let mut last = None;
            for _ in 0..rounds {
                let c: ferro_wire::AttestationChallenge = call_as(
                    &app,
                    "/v1/attestation/challenge",
                    None,
                    peer,
                    &ferro_wire::AttestationChallengeRequest { device_id: id },
                )
                .await
                .expect("a challenge");
                let nonce = c.nonce;
                let n = Base64UrlUnpadded::decode_vec(&nonce).unwrap();
                let ev = create_evidence(rot.as_ref(), &n, DebugStatus::Disabled).unwrap();
                let v: ferro_wire::AttestationResult = call_as(
                    &app,
                    "/v1/attestation/evidence",
                    None,
                    peer,
                    &ferro_wire::AttestationEvidenceRequest {
                        device_id: id,
                        nonce,
                        evidence: Base64::encode_string(&ev),
                    },
                )
                .await
                .expect("a verdict");
                if v.verdict == ferro_wire::AttestationVerdict::Trusted {
                    ok += 1;
                    last = Some(v);
                }
            }
            (ok, last)
        }));
    }
    let mut trusted = 0;
    let mut last_answer = None;
    for t in tasks {
        let (ok, last) = t.await.unwrap();
        trusted += ok;
        last_answer = last_answer.or(last);
    }
    let secs = start.elapsed().as_secs_f64();
    Run {
        trusted,
        secs,
        cpu: cpu_between(&cpu_before, &cpu_by_thread()),
        last_answer,
    }
}

impl Run {
    fn print(&self, what: &str, bound: f64) {
        let rate = self.trusted as f64 / self.secs;
        println!("| **{what}** | |");
        println!(
            "| trusted attestations | {} in {:.2} s |",
            self.trusted, self.secs
        );
        println!("| end-to-end attestations | {rate:.0} /s |");
        println!(
            "| fraction of bound (mean of the bounds around the run) | {:.0} % |",
            100.0 * rate / bound
        );
        let cpu_total: f64 = self.cpu.values().sum();
        if cpu_total > 0.0 && self.trusted > 0 {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
            println!(
                "| CPU per attestation (all threads) | {:.0} us |",
                cpu_total * 1e6 / self.trusted as f64
            );
            println!(
                "| cores busy during the run | {:.0} % |",
                100.0 * cpu_total / (self.secs * cores)
            );
            for (name, s) in &self.cpu {
                if *s > 0.001 {
                    println!("| CPU of threads `{name}` | {s:.3} s |");
                }
            }
        }
    }
}

/// The floor: `/v1/attestation/challenge` and `/v1/attestation/evidence` with the service's wire
/// types, its nonces (`NonceKey`: HMAC, issue time, single device), the evidence's COSE
/// verification and an ECDSA signature over as many bytes as the service's device certificate,
/// and nothing else: no middleware, no database read or write, no appraisal, no X.509 building,
/// no audit. The answer is a real Trusted answer of the service with the signature, PEM-encoded,
/// in place of its certificate, so both sides handle the same JSON. Not a service (it accepts
/// replays and keeps device keys in memory): the upper end of what this protocol over axum and
/// JSON reaches on this machine, for comparison with the bound.
#[derive(Clone)]
struct Floor {
    nonce_key: Arc<ferro_service::nonce::NonceKey>,
    device_keys: Arc<HashMap<String, PublicKey>>,
    ca_key: Arc<SoftwareSigningKey>,
    answer: Arc<ferro_wire::AttestationResult>,
    certificate_len: usize,
}

impl Floor {
    fn new(devices: &Devices, answer: ferro_wire::AttestationResult) -> Floor {
        let certificate_len = answer
            .certificate_pem
            .as_deref()
            .and_then(|p| pem::parse(p).ok())
            .map_or(512, |p| p.contents().len());
        Floor {
            nonce_key: Arc::new(ferro_service::nonce::NonceKey::from_bytes([7; 32])),
            device_keys: Arc::new(
                devices
                    .iter()
                    .map(|(_, rot)| (rot.device_id().to_string(), rot.public_key().clone()))
                    .collect(),
            ),
            ca_key: Arc::new(SoftwareSigningKey::generate()),
            answer: Arc::new(answer),
            certificate_len,
        }
    }

    fn router(self) -> axum::Router {
        axum::Router::new()
            .route(
                "/v1/attestation/challenge",
                axum::routing::post(floor_challenge),
            )
            .route(
                "/v1/attestation/evidence",
                axum::routing::post(floor_evidence),
            )
            .with_state(self)
    }
}

fn now_us() -> u64 {
    u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000).unwrap_or(0)
}

async fn floor_challenge(
    State(floor): State<Floor>,
    Json(req): Json<ferro_wire::AttestationChallengeRequest>,
) -> Json<ferro_wire::AttestationChallenge> {
    let nonce = floor
        .nonce_key
        .issue(&req.device_id.to_string(), now_us())
        .unwrap();
    Json(ferro_wire::AttestationChallenge {
        nonce: Base64UrlUnpadded::encode_string(&nonce),
        expires_at: time::OffsetDateTime::now_utc() + time::Duration::minutes(1),
    })
}

async fn floor_evidence(
    State(floor): State<Floor>,
    Json(req): Json<ferro_wire::AttestationEvidenceRequest>,
) -> Json<ferro_wire::AttestationResult> {
    let nonce = Base64UrlUnpadded::decode_vec(&req.nonce).unwrap();
    let evidence = Base64::decode_vec(&req.evidence).unwrap();
    floor
        .nonce_key
        .open(
            &nonce,
            &req.device_id.to_string(),
            now_us(),
            Duration::from_secs(60),
        )
        .unwrap();
    let key = &floor.device_keys[&req.device_id.to_string()];
    let verified = ferro_trust::evidence::authenticate_evidence(&evidence, key, &nonce)
        .unwrap()
        .verify(None)
        .unwrap();
    std::hint::black_box(verified);
    let mut der = vec![0x30; floor.certificate_len.saturating_sub(72)];
    let signature = floor.ca_key.sign(&der).unwrap();
    der.extend_from_slice(signature.as_bytes());
    let mut answer = (*floor.answer).clone();
    answer.certificate_pem = Some(pem::encode(&pem::Pem::new("CERTIFICATE", der)));
    answer.service_time = time::OffsetDateTime::now_utc();
    Json(answer)
}

fn main() {
    let devices: usize = std::env::var("DEVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let (sign, verify, bound) = crypto_bound();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    // Diagnostic knob: more runtime threads than cores show whether threads block (the
    // service runs with tokio's default, one per core).
    if let Some(workers) = std::env::var("WORKERS").ok().and_then(|v| v.parse().ok()) {
        rt.worker_threads(workers);
    }
    let rt = rt.enable_all().build().unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let params = ferro_service::auth::PasswordParams::insecure_fast_for_tests();
        let report = setup::init(&data, None, "admin@localhost", params)
            .await
            .unwrap();
        let (db, _) = setup::open(&data, None).await.unwrap();
        let config = Config {
            password_params: params,
            // The per-address limit is checked on every request (its cost is measured) but set
            // far above what the simulated devices send.
            attestation_rate: ferro_service::rate_limit::AddressRate {
                per_second: 1_000_000,
                burst: 1_000_000,
            },
            ..Config::default()
        };
        let state = setup::state(&data, db, config).await.unwrap();
        let app = ferro_service::build_app(state);
        let pw = "correct horse battery staple";
        call(
            &app,
            "/v1/auth/change-password",
            None,
            json!({"login": "admin@localhost",
            "currentPassword": report.one_time_password, "newPassword": pw}),
        )
        .await;
        let op = call(
            &app,
            "/v1/auth/login",
            None,
            json!({"login": "admin@localhost", "password": pw}),
        )
        .await["token"]
            .as_str()
            .unwrap()
            .to_string();
        let tenant = call(&app, "/v1/tenants", Some(&op), json!({"name": "Bench"})).await["id"]
            .as_str()
            .unwrap()
            .to_string();
        // A Retail OS release the devices booted (the appraisal wants its measurement first).
        let os_dir = tempfile::tempdir().unwrap();
        let os_event = os_release::publish_retail_os(&app, &op, b"bench os", os_dir.path()).await;
        let mut rots = Vec::new();
        let mut records = Vec::new();
        for _ in 0..devices {
            let d = tempfile::tempdir().unwrap();
            let rot = SoftwareRootOfTrust::open(d.path().join("rot")).unwrap();
            rot.extend_measurement(&os_event).unwrap();
            let rec = ferro_pki::RegistrationRecord {
                device_key: rot.public_key().clone(),
                root_of_trust: ferro_pki::RootOfTrust::Software,
                tpm_ek_certificate: None,
                manufacturing_state: ferro_pki::ManufacturingState::DeviceComplete,
                created_at: time::OffsetDateTime::now_utc(),
                tpm_attestation_key: None,
            };
            records.push(Base64::encode_string(
                &rec.sign(rot.device_key().as_ref()).unwrap(),
            ));
            rots.push((d, Arc::new(rot)));
        }
        let registered = call(
            &app,
            "/v1/manufacturing/registrations",
            Some(&op),
            json!({"records": records}),
        )
        .await;
        // Each device with the claim code its registration answered with.
        let ids: Vec<serde_json::Value> = registered["devices"]
            .as_array()
            .expect("devices")
            .iter()
            .map(|d| json!({"deviceId": d["deviceId"], "claimCode": d["claimCode"]}))
            .collect();
        call(
            &app,
            &format!("/v1/tenants/{tenant}/devices/claim"),
            Some(&op),
            json!({"devices": ids}),
        )
        .await;
        let run = run_devices(&app, &rots, rounds).await;
        // The bound again after each run: a shared machine's speed drifts within seconds, and
        // each run is compared with the mean of the bounds measured around it.
        let (_, _, bound_between) = crypto_bound();
        // The floor, on the same devices: a real answer of the service as its template.
        let floor = Floor::new(&rots, run.last_answer.clone().expect("an answer"));
        let floor_run = run_devices(&floor.router(), &rots, rounds).await;
        let (_, _, bound_after) = crypto_bound();
        println!("| measure | value |\n|---|---|");
        println!("| P-256 sign (1 core) | {:.1} us |", sign * 1e6);
        println!("| P-256 verify (1 core) | {:.1} us |", verify * 1e6);
        println!(
            "| crypto bound, all cores (2 sign + 1 verify each), before / between / after the runs \
             | {bound:.0} / {bound_between:.0} / {bound_after:.0} /s |"
        );
        println!("| devices x rounds | {devices} x {rounds} |");
        run.print("service", (bound + bound_between) / 2.0);
        floor_run.print(
            "floor (protocol and crypto only, see the bench's docs)",
            (bound_between + bound_after) / 2.0,
        );
    });
}
