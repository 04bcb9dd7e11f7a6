//! Over a real socket: the binary's `init` (once only), serving with reqwest, client IPs for
//! the rate limit, graceful shutdown draining in-flight requests.

mod common;

use common::{ADMIN, Backend, PASSWORD, TestApp};
use serde_json::json;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Serve the app, with `extra` routes of the test beside it, on a loopback port until the
/// returned sender fires.
async fn serve(
    t: &TestApp,
    extra: axum::Router,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = ferro_service::server::bind("127.0.0.1:0", None)
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = ferro_service::build_app(t.state.clone()).merge(extra);
    let h = tokio::spawn(ferro_service::server::serve(listener, app, async {
        let _ = rx.await;
    }));
    (base, tx, h)
}

/// A route that answers "done" once `release` is notified, after notifying `entered`: a
/// request the test holds in flight as long as it likes, without timing.
fn held_route(entered: Arc<Notify>, release: Arc<Notify>) -> axum::Router {
    axum::Router::new().route(
        "/test/in-flight",
        axum::routing::get(move || {
            let (entered, release) = (entered.clone(), release.clone());
            async move {
                entered.notify_one();
                release.notified().await;
                "done"
            }
        }),
    )
}

async fn over_a_socket(t: &TestApp) {
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let held = held_route(entered.clone(), release.clone());
    let (base, stop, handle) = serve(t, held).await;
    let addr = base.trim_start_matches("http://").to_string();
    let http = http_client();
    let r = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({"login": ADMIN, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-request-id"));
    let login: ferro_wire::LoginResponse = r.json().await.unwrap();
    let me: ferro_wire::Me = http
        .get(format!("{base}/v1/me"))
        .bearer_auth(&login.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(me.user.platform_operator);
    // Typed error bodies.
    let r = http.get(format!("{base}/v1/me")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let e: ferro_wire::ErrorBody = r.json().await.unwrap();
    assert_eq!(e.error.code, ferro_wire::ErrorCode::Unauthenticated);
    // The rate limit sees the socket's address.
    for _ in 0..5 {
        http.post(format!("{base}/v1/auth/login"))
            .json(&json!({"login": "nobody@example.com", "password": "wrong"}))
            .send()
            .await
            .unwrap();
    }
    assert_eq!(
        t.count("SELECT COUNT(*) FROM login_failures WHERE scope_key = 'ip:127.0.0.1'")
            .await,
        5
    );
    // Metrics (a platform operator's) carry route templates.
    let m = http
        .get(format!("{base}/metrics"))
        .bearer_auth(&login.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("http_requests_total"), "{m}");
    assert!(m.contains("route=\"/v1/me\""), "{m}");
    assert!(m.contains("http_request_duration_seconds_bucket"), "{m}");
    // Graceful shutdown. A request in flight when the signal comes (held in its handler until
    // released: no timing) completes with 200, and the listener stops accepting: a new
    // connection after the signal is refused.
    let in_flight = {
        let http = http_client();
        let base = base.clone();
        tokio::spawn(async move {
            let r = http.get(format!("{base}/test/in-flight")).send().await?;
            Ok::<_, reqwest::Error>((r.status().as_u16(), r.text().await?))
        })
    };
    tokio::time::timeout(Duration::from_secs(10), entered.notified())
        .await
        .expect("the request reaches its handler");
    stop.send(()).expect("the server listens for the signal");
    // The listener closes: a new connection is refused (one that met the closing listener may
    // be completed or reset instead; try again until the refusal comes).
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match tokio::net::TcpStream::connect(&addr).await {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
                Err(e) if e.kind() != std::io::ErrorKind::ConnectionReset => {
                    panic!("connecting after the signal: {e}")
                }
                _ => tokio::task::yield_now().await,
            }
        }
    })
    .await
    .expect("new connections are refused after the signal");
    // Meanwhile the request is still held (it waits for `release`), and the server waits for it.
    assert!(
        !in_flight.is_finished(),
        "the in-flight request was cut off"
    );
    assert!(
        !handle.is_finished(),
        "the server stopped before its request finished"
    );
    release.notify_one();
    let answer = in_flight.await.expect("join");
    assert_eq!(
        answer.as_ref().map(|(s, b)| (*s, b.as_str())).ok(),
        Some((200, "done")),
        "{answer:?}"
    );
    tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .expect("drains in time")
        .expect("join")
        .expect("serve");
    // After shutdown nothing answers.
    assert!(http.get(format!("{base}/healthz")).send().await.is_err());
}

both!(over_a_socket);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_init_refuses_twice_and_run_serves() {
    let (url, dir, _pg) = common::fresh_database(Backend::Sqlite).await;
    let _ = url;
    let data = dir.path().join("data");
    let bin = env!("CARGO_BIN_EXE_ferro-service");
    let out = init_binary(&data);
    // stdout: exactly the fingerprint line and the one-time password line.
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout:?}");
    let fp = lines[0]
        .strip_prefix("Platform root SHA-256 fingerprint: ")
        .expect("fingerprint line");
    let otp = lines[1]
        .strip_prefix("One-time password: ")
        .expect("password line")
        .to_string();
    assert_eq!(otp.len(), 24, "{stdout:?}");
    // The printed fingerprint is the root certificate's, as openssl prints it.
    let openssl = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(data.join("pki/platform-root.pem"))
        .output()
        .expect("openssl");
    let openssl = String::from_utf8(openssl.stdout).unwrap();
    assert_eq!(openssl.trim().rsplit('=').next().unwrap(), fp, "{openssl}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let mode = std::fs::metadata(data.join("ferro-service.toml"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
    let again = Command::new(bin)
        .args(["init", "--data-dir"])
        .arg(&data)
        .output()
        .expect("run init");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already initialised"));
    // The same PostgreSQL database cannot be initialised twice either (through another directory).
    let (pg_url, pg_dir, _guard) = common::fresh_database(Backend::Postgres).await;
    for (i, expect_ok) in [(1, true), (2, false)] {
        let out = Command::new(bin)
            .args(["init", "--database-url", &pg_url, "--data-dir"])
            .arg(pg_dir.path().join(format!("d{i}")))
            .output()
            .expect("run init");
        assert_eq!(
            out.status.success(),
            expect_ok,
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Plain HTTP is refused off loopback.
    let out = Command::new(bin)
        .args([
            "run",
            "--insecure-http",
            "--listen",
            "0.0.0.0:0",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
    // The config file's attestation limit: a burst of 0 is refused by name, then a small one
    // is used (checked below).
    let config_file = data.join("ferro-service.toml");
    let original = std::fs::read_to_string(&config_file).unwrap();
    std::fs::write(
        &config_file,
        format!("{original}attestation_rate_limit = {{ per_second = 5, burst = 0 }}\n"),
    )
    .unwrap();
    let out = Command::new(bin)
        .args([
            "run",
            "--insecure-http",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("attestation_rate_limit") && stderr.contains("burst"),
        "{stderr}"
    );
    std::fs::write(
        &config_file,
        format!("{original}attestation_rate_limit = {{ per_second = 1, burst = 2 }}\n"),
    )
    .unwrap();
    // `run` serves, and stops on SIGTERM.
    let running = RunningBinary::start(&data, &[]);
    let addr = running.addr.clone();
    // HTTPS by default, under the platform root that init made.
    let http = {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let pem = std::fs::read_to_string(data.join("pki/platform-root.pem")).unwrap();
        let der = ferro_service::platform::pem_body(&pem).unwrap();
        let config = ferro_tls::client_config(&[der.into()], None).unwrap();
        reqwest::Client::builder()
            .use_preconfigured_tls(config)
            .build()
            .unwrap()
    };
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(r) = http.get(format!("https://{addr}/readyz")).send().await
            && r.status() == 200
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "service did not become ready");
    let statuses = {
        let mut v = Vec::new();
        for _ in 0..3 {
            let r = http
                .post(format!("https://{addr}/v1/attestation/challenge"))
                .json(&json!({ "deviceId": "cd".repeat(64) }))
                .send()
                .await
                .unwrap();
            v.push(r.status().as_u16());
        }
        v
    };
    assert_eq!(statuses, [200, 200, 429], "the config file's limit applies");
    let (status, logs) = running.terminate().await;
    assert!(status.success(), "exits after SIGTERM: {status:?}");
    assert!(
        logs.lines()
            .any(|l| l.starts_with('{') && l.contains("\"serving\"")),
        "{logs}"
    );
    assert!(
        !logs.contains(otp.trim()),
        "the one-time password leaked into logs"
    );
}

/// The built `ferro-service run` on port 0: the service binds a port of its own choosing and
/// logs it (`"serving"`, with `addr`), so no other process can take the port between a probe
/// and the bind. A thread reads its JSON logs to the end (so it never blocks on a full pipe).
/// Killed on drop, however the test ends.
struct RunningBinary {
    child: std::process::Child,
    addr: String,
    logs: Option<std::thread::JoinHandle<String>>,
}

impl RunningBinary {
    /// Starts `run --data-dir DATA` with `extra` arguments; returns once the listener is bound.
    fn start(data: &std::path::Path, extra: &[&str]) -> RunningBinary {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferro-service"))
            .args(["run", "--log-format", "json", "--listen", "127.0.0.1:0"])
            .args(extra)
            .arg("--data-dir")
            .arg(data)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn run");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        let logs = std::thread::spawn(move || {
            let mut all = String::new();
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(addr) = ferro_e2e::serving_addr(&line) {
                    let _ = tx.send(addr);
                }
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        let mut running = RunningBinary {
            child,
            addr: String::new(),
            logs: Some(logs),
        };
        // Disconnected at once if the service exits without serving.
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => running.addr = addr,
            Err(_) => {
                let _ = running.child.kill();
                let _ = running.child.wait();
                let logs = running.logs.take().map(|h| h.join().unwrap_or_default());
                panic!("the service logged no address: {logs:?}");
            }
        }
        running
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits (up to 5 s) for the exit; returns the exit status and the whole log.
    async fn terminate(mut self) -> (std::process::ExitStatus, String) {
        Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no exit within 5 s of SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let logs = self
            .logs
            .take()
            .expect("log reader")
            .join()
            .expect("log reader");
        (status, logs)
    }
}

impl Drop for RunningBinary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain-HTTP client. reqwest is built with `rustls-no-provider` in this workspace, so a
/// crypto provider must be installed before any client is built.
fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// The attestation routes' per-address limit over a real socket: the listener's peer address is
/// the key, a limited address gets `429 rate_limited` with `Retry-After` before its body is even
/// read, other addresses are unaffected, in-process callers (no address) are limited too, and
/// the bucket refills.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attestation_requests_are_limited_per_address() {
    let config = ferro_service::Config {
        attestation_rate: ferro_service::rate_limit::AddressRate {
            per_second: 1,
            burst: 3,
        },
        ..common::test_config()
    };
    let t = TestApp::with_config(Backend::Sqlite, config).await;
    let (base, stop, handle) = serve(&t, axum::Router::new()).await;
    let device_id = "ab".repeat(64);
    let challenge = |http: reqwest::Client| {
        let url = format!("{base}/v1/attestation/challenge");
        let body = json!({ "deviceId": device_id });
        async move { http.post(url).json(&body).send().await.unwrap() }
    };
    let http = http_client();
    for _ in 0..3 {
        assert_eq!(challenge(http.clone()).await.status(), 200);
    }
    let refused = challenge(http.clone()).await;
    assert_eq!(refused.status(), 429);
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        retry, 1,
        "one token a second: the next comes within a second"
    );
    let e: ferro_wire::ErrorBody = refused.json().await.unwrap();
    assert_eq!(e.error.code, ferro_wire::ErrorCode::RateLimited);
    assert!(
        e.error.message.contains("try again in 1 s"),
        "{}",
        e.error.message
    );
    // The evidence route shares the bucket and refuses before reading the body: a malformed
    // body gets 429, not 422.
    let r = http
        .post(format!("{base}/v1/attestation/evidence"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    // The device's attestation client reports the limit with the service's Retry-After, and its
    // certificate manager waits at least that long.
    let rot_dir = tempfile::tempdir().unwrap();
    let rot = ferro_trust::SoftwareRootOfTrust::open(rot_dir.path().join("rot")).unwrap();
    let root = std::fs::read_to_string(t.dir.path().join("data/pki/platform-root.pem")).unwrap();
    let connection = ferro_attest::ServiceConnection::new(&base, &root).unwrap();
    let outcome = ferro_attest::attest(&rot, &connection).await;
    assert!(
        matches!(outcome, Err(ferro_attest::AttestError::RateLimited { retry_after })
            if retry_after == Duration::from_secs(1)),
        "{outcome:?}"
    );
    // Another address has its own bucket (the whole of 127/8 is loopback).
    let other = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    assert_eq!(challenge(other).await.status(), 200);
    // Other routes are not limited by it.
    let r = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // In-process callers have no address: they share one bucket, limited like any other.
    let in_process = |_| {
        t.call(
            axum::http::Method::POST,
            "/v1/attestation/challenge",
            None,
            Some(json!({ "deviceId": device_id })),
        )
    };
    let statuses: Vec<u16> = futures_util::future::join_all((0..4).map(in_process))
        .await
        .iter()
        .map(|r| r.status.as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        1,
        "{statuses:?}"
    );
    // The bucket refills.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(challenge(http.clone()).await.status(), 200);
    assert_eq!(challenge(http).await.status(), 429);
    let _ = stop.send(());
    handle.await.expect("join").expect("serve");
    t.finish().await;
}

/// `ferro-service init --data-dir DATA` with the built binary; its output, after checking it
/// succeeded.
fn init_binary(data: &std::path::Path) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_ferro-service"))
        .args(["init", "--data-dir"])
        .arg(data)
        .output()
        .expect("run init");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Resident memory of a process, from /proc: (current, peak) in KiB.
#[cfg(target_os = "linux")]
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("rss field")
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Issue 16 item 2, against the binary with production Argon2 cost (19 MiB a check): a flood of
/// parallel logins from many addresses, each under its address limit, once grew the service
/// to ~1.3 GB (every request hashed at once). The password gate lets two checks run and 32
/// wait; the rest are refused with 503 and `Retry-After` before any hashing, so the peak
/// resident memory stays bounded. Prints the figures it measured.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_keeps_memory_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    init_binary(&data);
    let running = RunningBinary::start(&data, &["--insecure-http"]);
    let (pid, addr) = (running.pid(), running.addr.clone());
    let (baseline, _) = rss_kib(pid);
    // 15 source addresses x 20 attempts: each address stays within its limit (20 failures per
    // 15 minutes), so only the gate stands between the flood and Argon2.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut tasks = tokio::task::JoinSet::new();
    for source in 2u8..17 {
        let http = reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 0, source]))
            .build()
            .unwrap();
        for i in 0..20 {
            let http = http.clone();
            let url = format!("http://{addr}/v1/auth/login");
            tasks.spawn(async move {
                let r = http
                    .post(url)
                    .json(&json!({"login": format!("guess{source}x{i}@example.com"),
                        "password": "not the password"}))
                    .send()
                    .await
                    .expect("answer");
                (r.status().as_u16(), r.headers().contains_key("retry-after"))
            });
        }
    }
    let mut counts = std::collections::BTreeMap::<u16, usize>::new();
    while let Some(r) = tasks.join_next().await {
        let (status, retry_after) = r.unwrap();
        if status == 503 {
            assert!(retry_after, "503 without Retry-After");
        }
        *counts.entry(status).or_default() += 1;
    }
    let (rss, peak) = rss_kib(pid);
    eprintln!(
        "300 parallel logins: {counts:?}; resident memory {baseline} KiB before, {rss} KiB after, \
         peak {peak} KiB"
    );
    assert!(counts.keys().all(|s| [401, 503].contains(s)), "{counts:?}");
    assert!(
        counts.get(&503).copied().unwrap_or(0) > 0,
        "the gate refused none: {counts:?}"
    );
    // Two checks at 19 MiB each plus what 300 connections cost; without the gate every request
    // hashed at once (300 x 19 MiB).
    assert!(
        peak < baseline + 192 * 1024,
        "peak resident memory {peak} KiB grew more than 192 MiB over {baseline} KiB"
    );
}

/// Wrong-password logins over a real socket, each with its own login name (so only the address
/// limit applies) and the given `X-Forwarded-For` lines: the statuses.
async fn wrong_logins(base: &str, forwarded_for: &[&[&str]]) -> Vec<u16> {
    let http = http_client();
    let mut statuses = Vec::new();
    for lines in forwarded_for {
        let mut req = http.post(format!("{base}/v1/auth/login")).json(
            &json!({"login": format!("nobody{}@example.com", common::uniq()), "password": "wrong"}),
        );
        for l in *lines {
            req = req.header("x-forwarded-for", *l);
        }
        statuses.push(req.send().await.unwrap().status().as_u16());
    }
    statuses
}

fn address_limit_config(trusted_proxies: &[&str]) -> ferro_service::Config {
    ferro_service::Config {
        rate_limit: ferro_service::auth::RateLimit {
            window_secs: 900,
            per_login: 100,
            per_ip: 3,
        },
        trusted_proxies: ferro_service::client_addr::TrustedProxies::parse(trusted_proxies)
            .unwrap(),
        ..common::test_config()
    }
}

/// Attack: a client talking to the service directly (no proxy trusted, the default) sends a new
/// `X-Forwarded-For` with every guess. The header is ignored: every guess counts against its
/// socket's address, and the limit holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_client_cannot_choose_its_login_limit_key() {
    let t = TestApp::with_config(Backend::Sqlite, address_limit_config(&[])).await;
    let (base, stop, handle) = serve(&t, axum::Router::new()).await;
    let spoofed: Vec<String> = (1..=5).map(|i| format!("203.0.113.{i}")).collect();
    let lines: Vec<[&str; 1]> = spoofed.iter().map(|s| [s.as_str()]).collect();
    let lines: Vec<&[&str]> = lines.iter().map(|l| &l[..]).collect();
    assert_eq!(wrong_logins(&base, &lines).await, [401, 401, 401, 429, 429]);
    assert_eq!(
        t.count("SELECT COUNT(*) FROM login_failures WHERE scope_key LIKE 'ip:%'")
            .await,
        t.count("SELECT COUNT(*) FROM login_failures WHERE scope_key = 'ip:127.0.0.1'")
            .await,
        "only the socket's address is a key"
    );
    stop.send(()).unwrap();
    handle.await.unwrap().unwrap();
}

/// Behind a trusted proxy (the test client on 127.0.0.1 plays it, sending `X-Forwarded-For`),
/// each forwarded client has its own login limit; one host rotating addresses inside its IPv6
/// /64 is one key; a spoofed entry left of the real one changes nothing; missing or malformed
/// headers key on the proxy's address, never on a per-request value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit() {
    let t = TestApp::with_config(Backend::Sqlite, address_limit_config(&["127.0.0.1/32"])).await;
    let (base, stop, handle) = serve(&t, axum::Router::new()).await;
    // Client A uses up its allowance; client B, through the same proxy, is unaffected.
    let a: &[&str] = &["203.0.113.5"];
    let b: &[&str] = &["203.0.113.6"];
    assert_eq!(
        wrong_logins(&base, &[a, a, a, a]).await,
        [401, 401, 401, 429]
    );
    assert_eq!(wrong_logins(&base, &[b]).await, [401]);
    // A spoofed entry left of A's real one (the client's own header, then the proxy's line or
    // entry) is still A.
    let chain: &[&str] = &["198.51.100.77, 203.0.113.5"];
    let two_lines: &[&str] = &["198.51.100.78", "203.0.113.5"];
    assert_eq!(wrong_logins(&base, &[chain, two_lines]).await, [429, 429]);
    // One host rotating its interface ID inside its /64 is one key.
    let v6: Vec<String> = (1..=4).map(|i| format!("2001:db8:1:2::{i:x}")).collect();
    let v6_lines: Vec<[&str; 1]> = v6.iter().map(|s| [s.as_str()]).collect();
    let v6_lines: Vec<&[&str]> = v6_lines.iter().map(|l| &l[..]).collect();
    assert_eq!(wrong_logins(&base, &v6_lines).await, [401, 401, 401, 429]);
    assert_eq!(
        t.count("SELECT COUNT(*) FROM login_failures WHERE scope_key = 'ip:2001:db8:1:2::'")
            .await,
        3
    );
    // Missing or malformed headers from the proxy: its own address, one shared key (fail
    // closed), so rotating garbage does not buy new allowances.
    let malformed: &[&[&str]] = &[
        &[],
        &["garbage"],
        &["203.0.113.9, unknown"],
        &["203.0.113.10:80"],
    ];
    assert_eq!(wrong_logins(&base, malformed).await, [401, 401, 401, 429]);
    assert_eq!(
        t.count("SELECT COUNT(*) FROM login_failures WHERE scope_key = 'ip:127.0.0.1'")
            .await,
        3
    );
    for absent in [
        "203.0.113.9",
        "203.0.113.10",
        "198.51.100.77",
        "198.51.100.78",
    ] {
        assert_eq!(
            t.count(&format!(
                "SELECT COUNT(*) FROM login_failures WHERE scope_key = 'ip:{absent}'"
            ))
            .await,
            0,
            "{absent} was never the client"
        );
    }
    // A successful login's audit record names the forwarded client.
    let r = http_client()
        .post(format!("{base}/v1/auth/login"))
        .header("x-forwarded-for", "192.0.2.44")
        .json(&json!({"login": ADMIN, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        t.count("SELECT COUNT(*) FROM audit_log WHERE action = 'session.create' AND details LIKE '%192.0.2.44%'")
            .await,
        1
    );
    stop.send(()).unwrap();
    handle.await.unwrap().unwrap();
}
