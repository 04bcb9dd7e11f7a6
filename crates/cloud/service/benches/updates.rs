//! Update delivery (docs/updates.md): update checks per second with nothing changed, for a
//! fleet of registered devices (default 100,000 claimed devices, of which `DEVICES` check
//! concurrently, each on its own "connection" whose verified certificate is cached as a kept-alive
//! TLS connection's is), against a bare route (`/healthz`) driven the same way in the same run;
//! and package download throughput against reading the same object from local disk.
//!
//! In-process (`oneshot`, no TLS or HTTP parsing on either side of the comparison), SQLite.
//! `cargo bench -p ferro-service --bench updates` (env `FLEET`, `DEVICES`, `ROUNDS`,
//! `PAYLOAD_MB`, `GROUP`). `GROUP=none` (default): the devices are in no group, as the first
//! measurements were; `GROUP=plain`: all in one UpdateAll group with a deployment;
//! `GROUP=rollout`: the same, whose current deployment rolls out in waves (10/50/100 %, first
//! wave under way), so every check takes the rollout path (devices in and outside the wave).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use base64ct::{Base64, Base64UrlUnpadded, Encoding};
use ferro_service::server::ConnInfo;
use ferro_service::{Config, setup};
use ferro_trust::evidence::{DebugStatus, create_evidence};
use ferro_trust::{RootOfTrust, SoftwareRootOfTrust};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

#[path = "common/os_release.rs"]
mod os_release;

/// The service binary's allocator, so the figures are the service's.
#[global_allocator]
static ALLOCATOR: ferro_service::Allocator = ferro_service::ALLOCATOR;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn call(app: &axum::Router, path: &str, token: Option<&str>, body: Value) -> Value {
    let mut req = Request::post(path).header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

/// GET `path` as the device of `conn`; (status, ETag, body length).
async fn device_get(
    app: &axum::Router,
    conn: &ConnInfo,
    path: &str,
    etag: Option<&str>,
) -> (StatusCode, Option<String>, usize) {
    let mut req = Request::get(path);
    if let Some(e) = etag {
        req = req.header("if-none-match", e);
    }
    let mut req = req.body(Body::empty()).unwrap();
    req.extensions_mut().insert(ConnectInfo(conn.clone()));
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let tag = resp
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut body = resp.into_body();
    let mut len = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            len += data.len();
        }
    }
    (status, tag, len)
}

fn main() {
    let fleet = env("FLEET", 100_000);
    let devices = env("DEVICES", 256);
    let rounds = env("ROUNDS", 200);
    let payload_mb = env("PAYLOAD_MB", 64);
    let group_mode = std::env::var("GROUP").unwrap_or_else(|_| "none".into());
    assert!(
        ["none", "plain", "rollout"].contains(&group_mode.as_str()),
        "GROUP must be none, plain or rollout"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
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
            // Setup attests every checking device from in-process (one shared address).
            attestation_rate: ferro_service::rate_limit::AddressRate::OFF,
            ..Config::default()
        };
        let state = setup::state(&data, db, config).await.unwrap();
        let app = ferro_service::build_app(state.clone());
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

        // An OS release in Retail: the target of devices in no group, and what they booted.
        let payload: Vec<u8> = (0..payload_mb * 1024 * 1024)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let os_event = os_release::publish_retail_os(&app, &op, &payload, dir.path()).await;
        drop(payload);

        // The checking devices: registered, claimed, booted, attested (certificate in hand).
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
            rots.push((d, rot));
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
        let mut conns = Vec::new();
        for (_, rot) in &rots {
            let id = rot.device_id().to_string();
            let c = call(&app, "/v1/attestation/challenge", None, json!({"deviceId": id})).await;
            let nonce = c["nonce"].as_str().unwrap().to_string();
            let n = Base64UrlUnpadded::decode_vec(&nonce).unwrap();
            let ev = create_evidence(rot, &n, DebugStatus::Disabled).unwrap();
            let v = call(
                &app,
                "/v1/attestation/evidence",
                None,
                json!({"deviceId": id, "nonce": nonce, "evidence": Base64::encode_string(&ev)}),
            )
            .await;
            assert_eq!(v["verdict"], "Trusted", "{v}");
            let leaf = pem::parse(v["certificatePem"].as_str().unwrap()).unwrap();
            conns.push(ConnInfo::new(
                SocketAddr::from(([127, 0, 0, 1], 40000)),
                Some(Arc::from(leaf.contents())),
            ));
        }

        // The rest of the fleet: claimed devices that are not checking now.
        let mut tx = state.db.begin_write().await.unwrap();
        let tid = tenant.clone();
        let mut n = 0usize;
        while n + devices < fleet {
            let batch = (fleet - devices - n).min(400);
            let mut sql = String::from("INSERT INTO devices (id, tenant_id, claimed_at) VALUES ");
            for i in 0..batch {
                let id = format!("{:0128x}", n + i + 1);
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("('{id}', '{tid}', 0)"));
            }
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut *tx)
                .await
                .unwrap();
            n += batch;
        }
        tx.commit().await.unwrap();

        // GROUP=plain|rollout: every device in one group with a deployment (with a rollout).
        let mut rollout_path = None;
        if group_mode != "none" {
            let product = call(
                &app,
                &format!("/v1/tenants/{tenant}/products"),
                Some(&op),
                json!({"name": "Bench", "noDefaultDeviceGroups": true}),
            )
            .await["id"]
                .as_str()
                .unwrap()
                .to_string();
            let group = call(
                &app,
                &format!("/v1/tenants/{tenant}/device-groups"),
                Some(&op),
                json!({"productId": product, "name": "Bench", "osFeed": "Retail",
                    "updatePolicy": "UpdateAll"}),
            )
            .await["id"]
                .as_str()
                .unwrap()
                .to_string();
            let deployments = format!("/v1/tenants/{tenant}/device-groups/{group}/deployments");
            call(&app, &deployments, Some(&op), json!({"imageIds": []})).await;
            if group_mode == "rollout" {
                let d = call(
                    &app,
                    &deployments,
                    Some(&op),
                    json!({"imageIds": [], "rollout": {"waves": [10, 50, 100],
                        "waveWaitSeconds": 86400, "maxFailurePercent": 5}}),
                )
                .await;
                assert!(d["rollout"].is_object(), "{d}");
                rollout_path = Some(format!(
                    "{deployments}/{}/rollout",
                    d["id"].as_str().unwrap()
                ));
            }
            sqlx::query("UPDATE devices SET device_group_id = $1 WHERE tenant_id = $2")
                .bind(&group)
                .bind(&tid)
                .execute(state.db.writer())
                .await
                .unwrap();
        }

        // First check of each device computes and signs its set.
        let mut etags = Vec::new();
        let mut sha = String::new();
        for c in &conns {
            let (status, tag, _) = device_get(&app, c, "/v1/device/target-set", None).await;
            assert_eq!(status, StatusCode::OK);
            etags.push(tag.unwrap());
        }
        let resp = {
            let mut req = Request::get("/v1/device/target-set").body(Body::empty()).unwrap();
            req.extensions_mut().insert(ConnectInfo(conns[0].clone()));
            app.clone().oneshot(req).await.unwrap()
        };
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let doc: Value = serde_json::from_slice(&body).unwrap();
        let set_bytes = Base64::decode_vec(doc["targetSet"].as_str().unwrap()).unwrap();
        let env = ferro_signing::parse_unverified(&set_bytes).unwrap();
        let set = ferro_pki::TargetSet::from_cbor(&env.unverified_payload).unwrap();
        if let Some(os) = set.os() {
            sha = hex::encode(os.package_sha256);
        }

        // Throughput: the same tasks, rounds and per-connection state for both routes.
        let run = |path: &'static str, with_etag: bool| {
            let app = app.clone();
            let conns = conns.clone();
            let etags = etags.clone();
            async move {
                let start = Instant::now();
                let mut tasks = Vec::new();
                for (c, tag) in conns.into_iter().zip(etags) {
                    let app = app.clone();
                    tasks.push(tokio::spawn(async move {
                        let mut ok = 0usize;
                        for _ in 0..rounds {
                            let etag = with_etag.then_some(tag.as_str());
                            let (status, _, _) = device_get(&app, &c, path, etag).await;
                            ok += usize::from(status.is_success() || status == StatusCode::NOT_MODIFIED);
                        }
                        ok
                    }));
                }
                let mut ok = 0;
                for t in tasks {
                    ok += t.await.unwrap();
                }
                (ok, ok as f64 / start.elapsed().as_secs_f64())
            }
        };
        let (_, bare) = run("/healthz", false).await;
        let (ok304, unchanged) = run("/v1/device/target-set", true).await;
        let (ok200, full) = run("/v1/device/target-set", false).await;
        let (_, bare2) = run("/healthz", false).await;
        let bare = bare.max(bare2);

        // Download: the whole package through the route, against reading the stored object.
        let object = data.join("objects/images").join(&sha);
        let size = std::fs::metadata(&object).map(|m| m.len()).unwrap_or(0) as f64;
        let mut best_route = f64::MAX;
        let mut best_disk = f64::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            let (status, _, len) =
                device_get(&app, &conns[0], &format!("/v1/device/images/{sha}"), None).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(len as f64, size);
            best_route = best_route.min(t.elapsed().as_secs_f64());
            let t = Instant::now();
            let mut f = std::fs::File::open(&object).unwrap();
            let mut buf = vec![0u8; 1 << 20];
            let mut total = 0usize;
            loop {
                let n = std::io::Read::read(&mut f, &mut buf).unwrap();
                if n == 0 {
                    break;
                }
                total += n;
            }
            assert_eq!(total as f64, size);
            best_disk = best_disk.min(t.elapsed().as_secs_f64());
        }
        // GROUP=rollout: a rollout's status counts every device of the group (best of 3).
        let mut status_ms = None;
        if let Some(path) = &rollout_path {
            let mut best = f64::MAX;
            for _ in 0..3 {
                let t = Instant::now();
                let resp = app
                    .clone()
                    .oneshot(
                        Request::get(path.as_str())
                            .header("authorization", format!("Bearer {op}"))
                            .body(Body::empty())
                            .unwrap(),
                    )
                    .await
                    .unwrap();
                assert_eq!(resp.status(), StatusCode::OK);
                let body = resp.into_body().collect().await.unwrap().to_bytes();
                best = best.min(t.elapsed().as_secs_f64());
                let status: Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(status["devicesInGroup"], fleet as u64);
            }
            status_ms = Some(best * 1000.0);
        }
        let mb = size / (1024.0 * 1024.0);
        println!("| measure | value |\n|---|---|");
        println!("| claimed devices in the database | {fleet} |");
        println!("| devices' group (GROUP) | {group_mode} |");
        println!("| checking devices x rounds | {devices} x {rounds} |");
        println!("| bare route (/healthz), same harness | {bare:.0} /s |");
        println!("| update checks, nothing changed (If-None-Match -> 304) | {unchanged:.0} /s ({ok304} ok) |");
        println!("| fraction of bare | {:.2} |", unchanged / bare);
        println!("| update checks without a validator (200, stored signed set) | {full:.0} /s ({ok200} ok) |");
        println!("| package size | {mb:.1} MiB |");
        println!("| download through the route (best of 3) | {:.0} MiB/s |", mb / best_route);
        println!("| read of the same object from disk (best of 3) | {:.0} MiB/s |", mb / best_disk);
        println!("| download / disk | {:.2} |", best_disk / best_route);
        if let Some(ms) = status_ms {
            println!("| rollout status, counting the group's {fleet} devices (best of 3) | {ms:.0} ms |");
        }
    });
}
