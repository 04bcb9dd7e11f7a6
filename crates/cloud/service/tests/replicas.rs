//! Scale-out (docs/service/scale-out.md): replicas of the service on one PostgreSQL database.
//!
//! - In process: an update-now given through one replica wakes a long poll waiting on another
//!   (LISTEN/NOTIFY; also when the listener's connection is killed in between), and the PROXY
//!   protocol is believed from trusted balancers only.
//! - Real processes behind HAProxy, configured by the file operators use
//!   (`deploy/haproxy/ferro-service.cfg`): a replica killed in the middle of a rollout loses no
//!   device and no status report, and the devices' own addresses reach the attestation limiter.
//! - PostgreSQL cut off (a TCP relay the test controls between the service and the server):
//!   `/readyz` and requests answer 503, never 500, and the service recovers by itself.
//!
//! Test setup: replicas share the test's data directory (`keys/`, `pki/`, `objects/`) on this
//! host, as replicas on several hosts share them through a volume (the docs say how).

mod common;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use common::device_https::{Server, certified, json_of, send};
use common::{Backend, TestApp, uniq};
use ferro_service::AppState;
use ferro_service::update_signals::SignalWatch;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A second replica on the test's database (its own pool and listener) and data directory,
/// whose signal watch re-reads the database every `recheck` without a notification.
async fn replica(t: &TestApp, recheck: Duration) -> AppState {
    let data = t.dir.path().join("data");
    let (db, _) = ferro_service::setup::open(&data, Some(&t.url))
        .await
        .expect("open");
    let mut state = ferro_service::setup::state(&data, db, common::test_config())
        .await
        .expect("state");
    state.signals = Arc::new(SignalWatch::with_recheck(recheck));
    state
}

/// A long poll for a device's update-now signal newer than `since`: (status, JSON body).
fn long_poll(
    http: &reqwest::Client,
    url: &str,
    since: &str,
) -> tokio::task::JoinHandle<(StatusCode, Value)> {
    let http = http.clone();
    let url = format!("{url}?since={since}&waitSeconds=60");
    tokio::spawn(async move {
        let (status, _, raw) = send(http.get(&url)).await;
        (status, json_of(&raw))
    })
}

/// Sessions listening for update-now notifications on the test's database.
async fn listeners(t: &TestApp) -> i64 {
    t.count(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE \
         'LISTEN %'",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_now_through_one_replica_wakes_a_long_poll_on_another() {
    let t = TestApp::new(Backend::Postgres).await;
    // B re-reads only every 10 minutes: within the test only a notification (or a
    // reconnection) can wake its long polls.
    let b = replica(&t, Duration::from_secs(600)).await;
    let server_b = Server::start_state(&t, b.clone()).await;
    let (tid, admin) = t.tenant().await;
    let d = certified(&t, &server_b, &tid, &admin).await;
    let signal_url = format!("{}/v1/device/update-signal", server_b.url);
    let now_url = format!("/v1/tenants/{tid}/devices/{}/update-now", d.id());
    let wake = Duration::from_secs(10);

    // The device waits on replica B; signals are given through replica A (the test's app).
    // The first may also be seen by the read B's watch makes once it listens; once the watch
    // is listening, only the notification can wake B within the test (its re-read is 10 min).
    let mut since = String::new();
    for round in ["while B starts listening", "by notification alone"] {
        let poll = long_poll(&d.http, &signal_url, &since);
        b.signals.wait_for_waiters(1).await;
        let r = t.call(Method::POST, &now_url, Some(&admin), None).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let signal = r.body["signal"].as_str().unwrap().to_string();
        let (status, body) = tokio::time::timeout(wake, poll)
            .await
            .unwrap_or_else(|_| panic!("the long poll on the other replica never woke ({round})"))
            .unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, json!({"signal": signal, "checkNow": true}));
        since = signal;
    }
    assert_eq!(
        listeners(&t).await,
        1,
        "one listener per replica that waits"
    );
    let first = since;

    // The listener's connection is killed and a signal given at once: whether its notification
    // reaches the new connection or was lost, the re-check after reconnecting finds it.
    let poll = long_poll(&d.http, &signal_url, &first);
    b.signals.wait_for_waiters(1).await;
    let killed = t
        .count(
            "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE \
             datname = current_database() AND query LIKE 'LISTEN %') AS k",
        )
        .await;
    assert_eq!(killed, 1);
    let r = t.call(Method::POST, &now_url, Some(&admin), None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let second = r.body["signal"].as_str().unwrap().to_string();
    let (status, body) = tokio::time::timeout(wake, poll)
        .await
        .expect("a signal given while the listener reconnects still wakes the long poll")
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"signal": second, "checkNow": true}));
    // And it listens again.
    let start = Instant::now();
    while listeners(&t).await != 1 {
        assert!(start.elapsed() < wake, "the listener never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A signal whose notification never comes (stored without one, as if it were lost) is
    // still seen by the periodic re-read: replica C re-reads every second.
    let c = replica(&t, Duration::from_secs(1)).await;
    let server_c = Server::start_state(&t, c.clone()).await;
    let poll = long_poll(
        &d.http,
        &format!("{}/v1/device/update-signal", server_c.url),
        &second,
    );
    c.signals.wait_for_waiters(1).await;
    // C listens, and has read once after LISTEN (no hook shows that read: a short wait).
    let start = Instant::now();
    while listeners(&t).await != 2 {
        assert!(start.elapsed() < wake, "replica C never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let silent = uuid::Uuid::now_v7().to_string();
    t.exec(&format!(
        "INSERT INTO update_signals (id, tenant_id, device_id, created_by, created_at) SELECT \
         '{silent}', tenant_id, device_id, created_by, created_at FROM update_signals WHERE id = \
         '{second}'"
    ))
    .await;
    let (status, body) = tokio::time::timeout(wake, poll)
        .await
        .expect("the periodic re-read finds a signal without a notification")
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"signal": silent, "checkNow": true}));
    server_c.stop().await;
    c.db.close().await;
    server_b.stop().await;
    b.db.close().await;
    t.finish().await;
}

/// The platform root of the test's data directory, as rustls wants it.
fn root_der(t: &TestApp) -> Vec<u8> {
    let pem = std::fs::read_to_string(t.dir.path().join("data/pki/platform-root.pem")).unwrap();
    ferro_service::platform::pem_body(&pem).unwrap()
}

/// A TLS client trusting the platform root (and presenting `identity`), connecting from
/// `local` (any 127.0.0.0/8 address is this host's).
fn client_from(
    root: &[u8],
    identity: Option<(Vec<u8>, ferro_tls::SharedSigner)>,
    local: IpAddr,
) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = ferro_tls::client_config(
        &[root.to_vec().into()],
        identity.map(|(der, signer)| (vec![der.into()], signer)),
    )
    .unwrap();
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .local_address(local)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A PROXY protocol v2 header saying the connection comes from `source`.
fn proxy_header(source: &str, destination: SocketAddr) -> Vec<u8> {
    use ppp::v2::{Builder, Command as PpCommand, Protocol, Version};
    let source: SocketAddr = source.parse().unwrap();
    Builder::with_addresses(
        Version::Two | PpCommand::Proxy,
        Protocol::Stream,
        (source, destination),
    )
    .build()
    .unwrap()
}

/// Connect from `local` to `server`, send `prefix`, then try a TLS handshake; whether it
/// completed.
async fn handshake_after(root: &[u8], local: IpAddr, server: SocketAddr, prefix: &[u8]) -> bool {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(local, 0)).unwrap();
    let mut tcp = socket.connect(server).await.unwrap();
    tcp.write_all(prefix).await.unwrap();
    let config = ferro_tls::client_config(&[root.to_vec().into()], None).unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    match tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp)).await {
        Ok(Ok(mut tls)) => {
            // Completed: the service answers on it.
            tls.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut head = [0u8; 12];
            tls.read_exact(&mut head).await.unwrap();
            assert_eq!(&head, b"HTTP/1.1 200");
            true
        }
        Ok(Err(_)) => false,
        Err(_) => panic!("the handshake neither completed nor failed"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_headers_are_believed_from_trusted_balancers_only() {
    let t = TestApp::new(Backend::Sqlite).await;
    // The balancer is 127.0.0.1; clients connect from 127.0.0.2.
    let trusted = ferro_service::client_addr::TrustedProxies::parse(&["127.0.0.1"]).unwrap();
    let proxy = ferro_service::proxy_protocol::ProxyProtocol::new(trusted);
    let (url, _, stop, h) =
        common::devices::serve_https_with(&t, t.state.clone(), Some(proxy)).await;
    let server: SocketAddr = url.trim_start_matches("https://").parse().unwrap();
    let root = root_der(&t);
    let balancer: IpAddr = "127.0.0.1".parse().unwrap();
    let client: IpAddr = "127.0.0.2".parse().unwrap();
    let spoofed = proxy_header("203.0.113.9:5555", server);

    // A client that claims another address is refused before TLS.
    assert!(
        !handshake_after(&root, client, server, &spoofed).await,
        "a PROXY header from an untrusted peer was accepted"
    );
    // Without a header it is served, keyed on its own address.
    let r = client_from(&root, None, client)
        .get(format!("{url}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    // The balancer's connections must carry one...
    assert!(
        client_from(&root, None, balancer)
            .get(format!("{url}/healthz"))
            .send()
            .await
            .is_err(),
        "a trusted balancer's connection without a PROXY header was served"
    );
    assert!(!handshake_after(&root, balancer, server, b"\x16garbage").await);
    // ...and with one, the handshake that follows it is the client's.
    assert!(handshake_after(&root, balancer, server, &spoofed).await);
    // A header that claims more bytes than it may carry is refused.
    let mut long = spoofed.clone();
    long[14..16].copy_from_slice(&4000u16.to_be_bytes());
    assert!(!handshake_after(&root, balancer, server, &long).await);

    // Plain HTTP cannot be combined with it (it is for balancers passing TLS through).
    let plain = ferro_service::server::bind_with(
        "127.0.0.1:0",
        None,
        Some(ferro_service::proxy_protocol::ProxyProtocol::new(
            ferro_service::client_addr::TrustedProxies::parse(&["127.0.0.1"]).unwrap(),
        )),
    )
    .await;
    assert!(matches!(
        plain,
        Err(ferro_service::server::BindError::ProxyProtocolWithoutTls)
    ));

    let _ = stop.send(());
    h.await.unwrap().unwrap();
    t.finish().await;
}

// ---------------------------------------------------------------------------------------------
// Real processes behind HAProxy.

/// A `ferro-service run` process on the test's data directory (`None` once killed).
struct Replica {
    child: Option<Child>,
    addr: String,
    log: PathBuf,
}

impl Replica {
    fn start(data: &Path, name: &str) -> Replica {
        let log_path = data.with_file_name(format!("{name}.log"));
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ferro-service"))
            .args(["run", "--data-dir"])
            .arg(data)
            .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("run ferro-service");
        let mut replica = Replica {
            child: Some(child),
            addr: String::new(),
            log: log_path.clone(),
        };
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            if let Some(addr) = ferro_e2e::serving_addr(&text) {
                replica.addr = addr;
                return replica;
            }
            if let Some(Ok(Some(status))) = replica.child.as_mut().map(Child::try_wait) {
                panic!("{name} exited ({status}):\n{text}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{name} is not serving:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// How many `path` requests it answered (its JSON log's response lines).
    fn answered(&self, path: &str) -> usize {
        let needle = format!("\"path\":\"{path}\"");
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("finished processing request") && l.contains(&needle))
            .count()
    }

    /// SIGKILL: no graceful shutdown, connections cut.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            ferro_e2e::terminate(child);
        }
    }
}

/// HAProxy with the checked-in configuration, in the foreground.
struct Balancer {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Balancer {
    fn start(dir: &Path, replicas: &[&Replica], root: &Path) -> Balancer {
        let config = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../../deploy/haproxy/ferro-service.cfg");
        // A port the kernel chose, free again for HAProxy to bind.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let bind = format!("127.0.0.1:{port}");
        let log_path = dir.join("haproxy.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .env("FERRO_LB_BIND", &bind)
            .env("FERRO_REPLICA_1", &replicas[0].addr)
            .env("FERRO_REPLICA_2", &replicas[1].addr)
            .env("FERRO_PLATFORM_ROOT", root)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("run haproxy (Debian package `haproxy`; scripts/test.sh installs it)");
        Balancer {
            child,
            url: format!("https://{bind}"),
            log: log_path,
        }
    }

    /// What HAProxy wrote (alerts and server state changes).
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        ferro_e2e::terminate(&mut self.child);
    }
}

/// A device of the fleet: its ID, an HTTPS client presenting its certificate from its own
/// loopback address, and the target set version it last saw.
struct FleetDevice {
    id: String,
    http: reqwest::Client,
    version: u64,
}

/// `n` devices claimed into `group`, each with its certificate and its own loopback address.
async fn fleet(t: &TestApp, tid: &str, admin: &str, group: &str, n: usize) -> Vec<FleetDevice> {
    let root = root_der(t);
    let mut devices = Vec::new();
    for (i, d) in common::devices::claimed_with_certificates(t, tid, admin, n)
        .await
        .into_iter()
        .enumerate()
    {
        let r = t
            .patch(
                &format!("/v1/tenants/{tid}/devices/{}", d.id),
                admin,
                json!({ "deviceGroupId": group }),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let signer: ferro_tls::SharedSigner = Arc::new(d.key);
        let local = IpAddr::from([127, 0, 1, u8::try_from(i + 1).unwrap()]);
        devices.push(FleetDevice {
            id: d.id,
            http: client_from(&root, Some((d.cert, signer)), local),
            version: 0,
        });
    }
    devices
}

/// Send until a replica answers (as a device does: a connection cut by a dying replica is
/// retried); fails after 20 s. Returns (status, body).
async fn until_answered(
    make: impl Fn() -> reqwest::RequestBuilder,
    cut: &mut u32,
) -> (StatusCode, Value) {
    let start = Instant::now();
    loop {
        match make().send().await {
            Ok(r) if r.status().as_u16() != 502 && r.status().as_u16() != 503 => {
                let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
                let raw = r.bytes().await.unwrap_or_default();
                return (status, json_of(&raw));
            }
            Ok(_) | Err(_) => *cut += 1,
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no replica answered for 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The device checks its target set through the balancer; whether it names `image`.
async fn check(lb: &str, d: &mut FleetDevice, image: &str, cut: &mut u32) -> bool {
    let url = format!("{lb}/v1/device/target-set");
    let (status, body) = until_answered(|| d.http.get(&url), cut).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let bytes =
        <base64ct::Base64 as base64ct::Encoding>::decode_vec(body["targetSet"].as_str().unwrap())
            .unwrap();
    let env = ferro_signing::parse_unverified(&bytes).unwrap();
    let set = ferro_pki::TargetSet::from_cbor(&env.unverified_payload).unwrap();
    assert!(set.version >= d.version, "a version went down");
    d.version = set.version;
    set.images.iter().any(|i| i.image_id.to_string() == image)
}

/// The device reports that it installed its set, through the balancer, until a replica took it.
async fn report_installed(lb: &str, d: &FleetDevice, cut: &mut u32) {
    let url = format!("{lb}/v1/device/update-status");
    let body = json!({"state": "Installed", "targetVersion": d.version});
    let (status, answer) = until_answered(|| d.http.post(&url).json(&body), cut).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_haproxy_a_replica_killed_mid_rollout_loses_nothing() {
    let t = TestApp::new(Backend::Postgres).await;
    let data = t.dir.path().join("data");
    // The balancer (127.0.0.1) is trusted and sends PROXY headers; a small attestation burst
    // shows whose address the limiter keys on.
    let config = data.join(ferro_service::setup::CONFIG_FILE);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(
        "trusted_proxies = [\"127.0.0.1\"]\nproxy_protocol = true\n\
         attestation_rate_limit = { per_second = 1, burst = 3 }\n",
    );
    std::fs::write(&config, text).unwrap();
    let mut r1 = Replica::start(&data, "replica1");
    let r2 = Replica::start(&data, "replica2");
    let root = data.join("pki/platform-root.pem");
    let lb = Balancer::start(t.dir.path(), &[&r1, &r2], &root);
    let root_der = root_der(&t);
    let http = client_from(&root_der, None, "127.0.0.1".parse().unwrap());
    let mut cut = 0;
    let (status, _) = until_answered(|| http.get(format!("{}/readyz", lb.url)), &mut cut).await;
    assert_eq!(status, StatusCode::OK);

    // A group of devices on image A; then image B in two waves, the second 5 s after the first.
    let (tid, admin) = t.tenant().await;
    let product = t.product(&tid, &admin, true).await;
    let r = t
        .post(
            &format!("/v1/tenants/{tid}/device-groups"),
            &admin,
            json!({"productId": product, "name": format!("Group {}", uniq()),
                "osFeed": "Retail", "updatePolicy": "UpdateAll"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let group = r.body["id"].as_str().unwrap().to_string();
    let a = t.image(&tid, &admin).await;
    let b = t.image(&tid, &admin).await;
    let deployments = format!("/v1/tenants/{tid}/device-groups/{group}/deployments");
    let r = t.post(&deployments, &admin, json!({"imageIds": [a]})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let n = 12;
    let mut devices = fleet(&t, &tid, &admin, &group, n).await;
    for d in devices.iter_mut() {
        assert!(check(&lb.url, d, &a, &mut cut).await);
        report_installed(&lb.url, d, &mut cut).await;
    }
    let r = t
        .post(
            &deployments,
            &admin,
            json!({"imageIds": [b], "rollout": {"waves": [50, 100], "waveWaitSeconds": 5,
                "maxFailurePercent": 10}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let deployment = r.body["id"].as_str().unwrap().to_string();
    let rollout = format!("{deployments}/{deployment}/rollout");

    // Wave 1: its devices take B and report, spread over both replicas.
    let mut updated = std::collections::BTreeSet::new();
    for d in devices.iter_mut() {
        if check(&lb.url, d, &b, &mut cut).await {
            report_installed(&lb.url, d, &mut cut).await;
            updated.insert(d.id.clone());
        }
    }
    let wave1 = updated.len();
    assert!(wave1 < n, "all {n} devices in the 50 % wave");

    // Replica 1 dies in the middle of the rollout.
    const REPORTS: &str = "/v1/device/update-status";
    let by_r1 = r1.answered(REPORTS);
    assert!(by_r1 > 0, "replica 1 took no report before it died");
    r1.kill();
    let cut_before = cut;
    let by_r2_before = r2.answered(REPORTS);

    // Wave 2 starts; every device carries on through replica 2 until all run B.
    let start = Instant::now();
    while updated.len() < n {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the rollout did not complete: {} of {n} devices run B",
            updated.len()
        );
        for d in devices.iter_mut() {
            if !updated.contains(&d.id) && check(&lb.url, d, &b, &mut cut).await {
                report_installed(&lb.url, d, &mut cut).await;
                updated.insert(d.id.clone());
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The health checks (TLS, PROXY header, /readyz) took replica 1 out, and only it.
    let start = Instant::now();
    while !lb.log().contains("replica1 is DOWN") {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "HAProxy never marked replica 1 down:\n{}",
            lb.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!lb.log().contains("replica2 is DOWN"), "{}", lb.log());
    let s = t.get(&rollout, &admin).await;
    assert_eq!(s.status, StatusCode::OK, "{:?}", s.body);
    assert_eq!(s.body["state"], "Complete", "{:?}", s.body);
    assert_eq!(s.body["devicesTargeted"], json!(n), "{:?}", s.body);
    assert_eq!(s.body["devicesFailed"], 0, "{:?}", s.body);
    // No status report lost: every device's last report is B's set, installed.
    for d in &devices {
        let stored = t
            .count(&format!(
                "SELECT COUNT(*) FROM devices WHERE id = '{}' AND update_state = 'Installed' \
                 AND update_target_version = {}",
                d.id, d.version
            ))
            .await;
        assert_eq!(stored, 1, "the report of {} (version {})", d.id, d.version);
    }
    let by_r2_after = r2.answered(REPORTS) - by_r2_before;
    assert!(
        by_r2_after >= n - wave1,
        "replica 2 took {by_r2_after} reports after the kill"
    );
    eprintln!(
        "{wave1} devices in wave 1; reports before the kill: {by_r1} by replica 1, \
         {by_r2_before} by replica 2; after: {by_r2_after} by replica 2; requests retried \
         after the kill: {}",
        cut - cut_before
    );

    // The attestation limiter keys on each device's own address (from the PROXY header), not
    // on the balancer's: one address runs out of its burst, the next one is not affected.
    let challenge = |from: &str| {
        let http = client_from(&root_der, None, from.parse().unwrap());
        let url = format!("{}/v1/attestation/challenge", lb.url);
        let body = json!({"deviceId": devices[0].id});
        async move {
            http.post(&url)
                .json(&body)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    };
    let mut limited = false;
    for _ in 0..10 {
        if challenge("127.0.2.1").await == 429 {
            limited = true;
            break;
        }
    }
    assert!(limited, "the burst of 3 never ran out");
    assert_eq!(
        challenge("127.0.2.2").await,
        200,
        "another device's address shared the limit"
    );
    drop(lb);
    drop(r2);
    t.finish().await;
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL unreachable.

/// A TCP relay to PostgreSQL that the test can cut (every connection closed, new ones refused
/// at once) and restore.
struct Relay {
    addr: SocketAddr,
    /// Whether the link is up. A `watch` rather than a flag and a `Notify`: a connection whose
    /// task had not started waiting when the cut came still sees it (a `Notify` only wakes
    /// the waiters of that moment, and one connection then stayed up through the cut).
    up: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(upstream: String) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (up, _) = tokio::sync::watch::channel(true);
        let task = tokio::spawn({
            let up = up.clone();
            async move {
                loop {
                    let Ok((mut client, _)) = listener.accept().await else {
                        return;
                    };
                    let mut link = up.subscribe();
                    if !*link.borrow_and_update() {
                        continue; // dropped: refused
                    }
                    let upstream = upstream.clone();
                    tokio::spawn(async move {
                        let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                            return;
                        };
                        // `wait_for` looks at the current value first: a cut made while this
                        // connection was being set up ends it too.
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = link.wait_for(|up| !*up) => {}
                        }
                    });
                }
            }
        });
        Relay { addr, up, task }
    }

    fn cut(&self) {
        self.up.send_replace(false);
    }

    fn restore(&self) {
        self.up.send_replace(true);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_unreachable_is_503_and_the_service_recovers_by_itself() {
    let t = TestApp::new(Backend::Postgres).await;
    // The test database's URL, with the relay in place of the server's address.
    let url = reqwest::Url::parse(&t.url).unwrap();
    let upstream = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    let relay = Relay::start(upstream).await;
    let mut relayed = url.clone();
    relayed.set_host(Some("127.0.0.1")).unwrap();
    relayed.set_port(Some(relay.addr.port())).unwrap();
    let data = t.dir.path().join("data");
    let (db, _) = ferro_service::setup::open(&data, Some(relayed.as_str()))
        .await
        .expect("open through the relay");
    let state = ferro_service::setup::state(&data, db.clone(), common::test_config())
        .await
        .unwrap();
    let app = ferro_service::build_app(state);
    let (tid, admin) = t.tenant().await;
    let paths = [
        "/readyz".to_string(),
        "/v1/me".to_string(),
        format!("/v1/tenants/{tid}/devices"),
        format!("/v1/tenants/{tid}/products"),
    ];
    let status = |path: String| {
        let app = app.clone();
        let admin = admin.clone();
        async move {
            use tower::ServiceExt;
            let req = axum::http::Request::builder()
                .uri(path)
                .header("authorization", format!("Bearer {admin}"))
                .body(axum::body::Body::empty())
                .unwrap();
            let resp = app.oneshot(req).await.unwrap();
            let status = resp.status();
            let raw = http_body_util::BodyExt::collect(resp.into_body())
                .await
                .unwrap()
                .to_bytes();
            (status, json_of(&raw))
        }
    };
    for p in &paths {
        assert_eq!(status(p.clone()).await.0, StatusCode::OK, "{p}");
    }

    // Cut: every path answers 503 (the error body says why), never 500.
    relay.cut();
    let started = Instant::now();
    let answers =
        futures_util::future::join_all(paths.iter().cycle().take(16).map(|p| status(p.clone())))
            .await;
    for (i, (s, body)) in answers.iter().enumerate() {
        assert_eq!(
            *s,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}: {body}",
            paths[i % paths.len()]
        );
        if i % paths.len() != 0 {
            assert_eq!(body["error"]["code"], "unavailable", "{body}");
        }
    }
    eprintln!(
        "16 requests during the cut answered 503 in {:?}",
        started.elapsed()
    );

    // Restored: ready again by itself, and served.
    relay.restore();
    let start = Instant::now();
    loop {
        if status("/readyz".into()).await.0 == StatusCode::OK {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "not ready 20 s after PostgreSQL came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("ready {:?} after the relay was restored", start.elapsed());
    for p in &paths {
        assert_eq!(status(p.clone()).await.0, StatusCode::OK, "{p}");
    }
    db.close().await;
    t.finish().await;
}
