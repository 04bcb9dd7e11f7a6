//! API benchmark: authenticated reads against a bare axum route, same machine, same run.
//!
//! `cargo bench -p ferro-service --bench api` prints a table: requests/s and p99 latency for a
//! bare route, the service's middleware alone (`/healthz`), `GET` of one product and one device,
//! and 50-item list pages of products and devices (100,000 claimed devices), each with its ratio
//! to the bare route. The bare route is measured again right before each scenario and the ratio
//! is to that run: the ratio is the figure to compare, absolute rates move with whatever else the
//! machine runs. Authenticated scenarios reuse one token, so after the first request of each
//! second they are answered by the authentication cache (`auth_cache`, TTL 1 s): one query per
//! request. Runs on SQLite, and on PostgreSQL if `FERRO_BENCH_PG_URL` (default
//! postgres://postgres@127.0.0.1:5432) is reachable. Client: reqwest over loopback with
//! keep-alive, `CONCURRENCY` tasks, `REQUESTS` requests per scenario (bounded).
//!
//! For a quick loop, `FERRO_BENCH_REQUESTS` and `FERRO_BENCH_DEVICES` lower the requests per
//! scenario and the claimed devices, `FERRO_BENCH_ONLY=text` runs only the scenarios whose label
//! contains `text` (for a profile of one), and `FERRO_BENCH_PG_URL=none` skips PostgreSQL; the
//! defaults are the figures the documentation reports.

use ferro_service::{Config, setup};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The service binary's allocator, so the figures are the service's.
#[global_allocator]
static ALLOCATOR: ferro_service::Allocator = ferro_service::ALLOCATOR;

/// The claim code of every bench device (the rows are written directly) and its SHA-256.
const BENCH_CLAIM_CODE: &str = "11111111-11111111-11111111-11111111";
const BENCH_CLAIM_CODE_SHA256: &str =
    "b8f12ea8c9a95d4b4641b03d9fa5a71ad30b44ed6cd4bf793bbe1a5801b986d4";

const CONCURRENCY: usize = 16;
const REQUESTS: usize = 20_000;
const WARMUP: usize = 1_000;
const CLAIM_DEVICES: usize = 100_000;

/// `name` from the environment, else `default`.
fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Stats {
    rps: f64,
    p50: Duration,
    p99: Duration,
}

async fn run(client: &reqwest::Client, url: &str, token: Option<&str>, total: usize) -> Stats {
    let url = Arc::new(url.to_string());
    let token = Arc::new(token.map(str::to_string));
    let per_task = total / CONCURRENCY;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (client, url, token) = (client.clone(), url.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_task);
            for _ in 0..per_task {
                let t0 = Instant::now();
                let mut req = client.get(url.as_str());
                if let Some(t) = token.as_deref() {
                    req = req.bearer_auth(t);
                }
                let resp = req.send().await.expect("request");
                assert!(resp.status().is_success(), "{}", resp.status());
                let _ = resp.bytes().await.expect("body");
                lat.push(t0.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::with_capacity(total);
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    let elapsed = start.elapsed();
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    Stats {
        rps: all.len() as f64 / elapsed.as_secs_f64(),
        p50: pct(0.50),
        p99: pct(0.99),
    }
}

async fn bench_backend(
    name: &str,
    pg_url: Option<String>,
    bare_url: &str,
    client: &reqwest::Client,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let report = match setup::init(
        &data,
        pg_url.as_deref(),
        "admin@localhost",
        Default::default(),
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            println!("{name}: skipped ({e})");
            return;
        }
    };
    let (db, _) = setup::open(&data, pg_url.as_deref()).await.expect("open");
    // Production configuration: default Argon2 cost, limits and timeouts.
    let state = setup::state(&data, db.clone(), Config::default())
        .await
        .expect("state");
    let listener = ferro_service::server::bind("127.0.0.1:0", None)
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr());
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(ferro_service::server::serve(
        listener,
        ferro_service::build_app(state),
        async {
            let _ = rx.await;
        },
    ));
    let pw = "benchmark password 1";
    client
        .post(format!("{base}/v1/auth/change-password"))
        .json(&json!({"login": "admin@localhost", "currentPassword": report.one_time_password, "newPassword": pw}))
        .send()
        .await
        .expect("change password");
    let login: serde_json::Value = client
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({"login": "admin@localhost", "password": pw}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let token = login["token"].as_str().expect("token").to_string();
    let tenant: serde_json::Value = client
        .post(format!("{base}/v1/tenants"))
        .bearer_auth(&token)
        .json(&json!({"name": "Bench"}))
        .send()
        .await
        .expect("tenant")
        .json()
        .await
        .expect("json");
    let tid = tenant["id"].as_str().expect("id").to_string();
    let mut product = String::new();
    for i in 0..60 {
        let p: serde_json::Value = client
            .post(format!("{base}/v1/tenants/{tid}/products"))
            .bearer_auth(&token)
            .json(&json!({"name": format!("Product {i}"), "noDefaultDeviceGroups": i > 0}))
            .send()
            .await
            .expect("product")
            .json()
            .await
            .expect("json");
        if i == 0 {
            product = p["id"].as_str().expect("id").to_string();
        }
    }
    // 100,000 registered devices (rows written directly: record verification is not what is
    // measured), claimed through the API in batches of 1000.
    let claim_devices = env_count("FERRO_BENCH_DEVICES", CLAIM_DEVICES).max(1);
    let requests = env_count("FERRO_BENCH_REQUESTS", REQUESTS).max(CONCURRENCY);
    let ids: Vec<String> = (0..claim_devices)
        .map(|i| format!("{:0128x}", 0xfe00_0000_u64 + i as u64))
        .collect();
    let t0 = Instant::now();
    for chunk in ids.chunks(1000) {
        let values = (0..chunk.len())
            .map(|i| {
                format!(
                    "(${}, 'AA==', 'Software', NULL, 'DeviceComplete', 'AA==', 'x', 0, 0, NULL, \
                     '{BENCH_CLAIM_CODE_SHA256}')",
                    i + 1
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO device_registrations (device_id, device_key, root_of_trust, ek_certificate, \
             manufacturing_state, record, record_sha256, record_created_at, registered_at, registered_by, \
             claim_code_sha256) VALUES {values}"
        );
        let mut tx = db.begin_write().await.expect("tx");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(id);
        }
        q.execute(&mut *tx).await.expect("register");
        tx.commit().await.expect("commit");
    }
    let registered = t0.elapsed();
    let t0 = Instant::now();
    for chunk in ids.chunks(1000) {
        let r = client
            .post(format!("{base}/v1/tenants/{tid}/devices/claim"))
            .bearer_auth(&token)
            .json(&json!({ "devices": chunk
                .iter()
                .map(|id| json!({ "deviceId": id, "claimCode": BENCH_CLAIM_CODE }))
                .collect::<Vec<_>>() }))
            .send()
            .await
            .expect("claim");
        assert!(r.status().is_success(), "{}", r.status());
    }
    let claimed = t0.elapsed();
    println!(
        "| {name:<10} | bulk: {claim_devices} devices registered (DB) in {:.1} s, claimed via API (1000/request) in {:.1} s ({:.0} devices/s) |",
        registered.as_secs_f64(),
        claimed.as_secs_f64(),
        claim_devices as f64 / claimed.as_secs_f64()
    );
    let device = &ids[claim_devices / 2];
    let scenarios: [(&str, String, Option<&str>); 6] = [
        ("bare axum route", bare_url.to_string(), None),
        // The service's middleware (request ID, trace span, metrics, timeout, panic catching)
        // around a handler with no database and no authentication: the middleware's share.
        ("GET /healthz (no DB)", format!("{base}/healthz"), None),
        (
            "GET one product",
            format!("{base}/v1/tenants/{tid}/products/{product}"),
            Some(&token),
        ),
        (
            "GET list page (50)",
            format!("{base}/v1/tenants/{tid}/products?limit=50"),
            Some(&token),
        ),
        (
            "GET one device",
            format!("{base}/v1/tenants/{tid}/devices/{device}"),
            Some(&token),
        ),
        (
            "GET device page (50)",
            format!("{base}/v1/tenants/{tid}/devices?limit=50"),
            Some(&token),
        ),
    ];
    let only = std::env::var("FERRO_BENCH_ONLY").unwrap_or_default();
    for (label, url, tok) in scenarios.iter().filter(|s| s.0.contains(only.as_str())) {
        // The bare route again right before each scenario: its ratio is to a baseline measured
        // seconds earlier, so load from elsewhere on the machine skews both alike.
        run(client, bare_url, None, WARMUP).await;
        let bare_rps = run(client, bare_url, None, requests).await.rps;
        run(client, url, *tok, WARMUP).await;
        let s = run(client, url, *tok, requests).await;
        println!(
            "| {name:<10} | {label:<20} | {:>9.0} | {:>8.2} | {:>8.2} | {:>6.2} |",
            s.rps,
            s.p50.as_secs_f64() * 1e3,
            s.p99.as_secs_f64() * 1e3,
            s.rps / bare_rps
        );
    }
    let _ = stop.send(());
    let _ = server.await;
    db.close().await;
    if let Some(url) = pg_url {
        // Drop the benchmark database.
        if let Some((base_url, name)) = url.rsplit_once('/') {
            use sqlx::Connection;
            if let Ok(mut c) = sqlx::AnyConnection::connect(&format!("{base_url}/postgres")).await {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut c)
                .await;
            }
        }
    }
}

async fn pg_database() -> Option<String> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let base = std::env::var("FERRO_BENCH_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    if base == "none" {
        return None;
    }
    let mut c = sqlx::AnyConnection::connect(&format!("{base}/postgres"))
        .await
        .ok()?;
    let name = format!("ferro_bench_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut c)
        .await
        .ok()?;
    Some(format!("{base}/{name}"))
}

#[tokio::main]
async fn main() {
    // A bare axum route on the same runtime, for scale.
    let bare = axum::Router::new().route(
        "/bare",
        axum::routing::get(|| async {
            axum::Json(json!({"id": "0190c1a8-3c7a-7c4e-9b1e-2f4d5a6b7c8d", "name": "x"}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let bare_url = format!("http://{}/bare", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, bare).await });
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .expect("client");
    println!(
        "{} requests per scenario, {} concurrent keep-alive clients over loopback, {} cores",
        env_count("FERRO_BENCH_REQUESTS", REQUESTS).max(CONCURRENCY),
        CONCURRENCY,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| backend    | scenario             |     req/s |  p50 ms  |  p99 ms  | / bare |");
    println!("|------------|----------------------|-----------|----------|----------|--------|");
    bench_backend("SQLite", None, &bare_url, &client).await;
    match pg_database().await {
        Some(url) => bench_backend("PostgreSQL", Some(url), &bare_url, &client).await,
        None => println!("| PostgreSQL | unreachable: skipped |"),
    }
}
