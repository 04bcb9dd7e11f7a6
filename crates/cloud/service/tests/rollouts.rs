//! Rollouts in waves (docs/updates.md, "Rollout waves"), on SQLite and PostgreSQL: with a group
//! of claimed devices checking their target sets as devices do (device certificate on the
//! connection), a rollout includes about its wave's share of the group, the same devices each
//! time; waves start as the service's clock passes their waits; failures above the threshold
//! pause it by themselves and further devices get nothing new; resume continues; a newer
//! deployment freezes it; versions only grow and no device is ever told to go back; bad input is
//! refused with a specific code and writes nothing.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use common::{Resp, TestApp, uniq};
use ferro_service::server::ConnInfo;
use serde_json::{Value, json};

both!(
    waves_include_stable_shares_pause_on_failures_and_resume,
    newer_deployments_supersede_and_devices_never_go_back,
    bad_rollouts_are_refused_and_write_nothing,
    rollout_routes_answer_by_role_and_state,
);

/// A claimed device in a group, checking as a device does: its certificate on the
/// "connection", its last target set's version, ETag and images.
struct Device {
    id: String,
    conn: ConnInfo,
    version: u64,
    etag: Option<String>,
    images: BTreeSet<String>,
}

const HOUR: Duration = Duration::from_secs(3600);

/// `n` devices registered and claimed by `tid` (one request each), each with a device
/// certificate from the tenant's CA, moved into `group` when given.
async fn fleet(t: &TestApp, tid: &str, admin: &str, group: Option<&str>, n: usize) -> Vec<Device> {
    let devices: Vec<Device> = common::devices::claimed_with_certificates(t, tid, admin, n)
        .await
        .into_iter()
        .map(|d| Device {
            id: d.id,
            conn: ConnInfo::new(
                SocketAddr::from(([127, 0, 0, 1], 40000)),
                Some(Arc::from(d.cert)),
            ),
            version: 0,
            etag: None,
            images: BTreeSet::new(),
        })
        .collect();
    if let Some(g) = group {
        for d in &devices {
            move_to(t, tid, admin, &d.id, g).await;
        }
    }
    devices
}

async fn move_to(t: &TestApp, tid: &str, admin: &str, device: &str, group: &str) {
    let r = t
        .call(
            Method::PATCH,
            &format!("/v1/tenants/{tid}/devices/{device}"),
            Some(admin),
            Some(json!({ "deviceGroupId": group })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}

/// A request on a device's connection (device routes authenticate by its certificate).
async fn device_call(
    t: &TestApp,
    d: &Device,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Resp {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(tag) = &d.etag {
        req = req.header("if-none-match", tag);
    }
    let mut req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    req.extensions_mut().insert(ConnectInfo(d.conn.clone()));
    t.send(req).await
}

/// The device checks its target set (with its ETag). Returns whether it got a new one. Checks
/// that the version never goes down, and grows whenever the content changed.
async fn check(t: &TestApp, d: &mut Device) -> bool {
    let r = device_call(t, d, Method::GET, "/v1/device/target-set", None).await;
    if r.status == StatusCode::NOT_MODIFIED {
        return false;
    }
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let bytes =
        <base64ct::Base64 as base64ct::Encoding>::decode_vec(r.body["targetSet"].as_str().unwrap())
            .unwrap();
    let env = ferro_signing::parse_unverified(&bytes).unwrap();
    let set = ferro_pki::TargetSet::from_cbor(&env.unverified_payload).unwrap();
    let images: BTreeSet<String> = set
        .images
        .iter()
        .filter(|i| i.kind != ferro_pki::TargetKind::Os)
        .map(|i| i.image_id.to_string())
        .collect();
    assert!(set.version >= d.version, "a version went down");
    if d.etag.is_some() {
        assert_ne!(
            (set.version > d.version),
            images == d.images,
            "the version grows exactly when the content changes"
        );
    }
    d.version = set.version;
    d.images = images;
    d.etag = Some(r.headers["etag"].to_str().unwrap().to_string());
    true
}

async fn check_all(t: &TestApp, fleet: &mut [Device]) -> usize {
    let mut changed = 0;
    for d in fleet.iter_mut() {
        changed += usize::from(check(t, d).await);
    }
    changed
}

/// The IDs of the devices whose set names `image`.
fn holding(fleet: &[Device], image: &str) -> BTreeSet<String> {
    fleet
        .iter()
        .filter(|d| d.images.contains(image))
        .map(|d| d.id.clone())
        .collect()
}

async fn report(t: &TestApp, d: &Device, state: &str, version: u64) {
    let r = device_call(
        t,
        d,
        Method::POST,
        "/v1/device/update-status",
        Some(json!({"state": state, "targetVersion": version, "detail": "install failed"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
}

async fn group(t: &TestApp, tid: &str, admin: &str) -> String {
    let product = t.product(tid, admin, true).await;
    let r = t
        .post(
            &format!("/v1/tenants/{tid}/device-groups"),
            admin,
            json!({"productId": product, "name": format!("Group {}", uniq()),
                "osFeed": "Retail", "updatePolicy": "UpdateAll"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body["id"].as_str().unwrap().to_string()
}

/// POST a deployment; the raw answer.
async fn deploy_raw(
    t: &TestApp,
    tid: &str,
    token: &str,
    group: &str,
    images: &[&str],
    rollout: Option<Value>,
) -> Resp {
    let mut body = json!({ "imageIds": images });
    if let Some(r) = rollout {
        body["rollout"] = r;
    }
    t.post(
        &format!("/v1/tenants/{tid}/device-groups/{group}/deployments"),
        token,
        body,
    )
    .await
}

/// Deploy; returns the deployment's ID.
async fn deploy(
    t: &TestApp,
    tid: &str,
    admin: &str,
    group: &str,
    images: &[&str],
    rollout: Option<Value>,
) -> String {
    let r = deploy_raw(t, tid, admin, group, images, rollout).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body["id"].as_str().unwrap().to_string()
}

fn rollout_path(tid: &str, group: &str, deployment: &str) -> String {
    format!("/v1/tenants/{tid}/device-groups/{group}/deployments/{deployment}/rollout")
}

async fn rollout(t: &TestApp, tid: &str, token: &str, group: &str, deployment: &str) -> Value {
    let r = t.get(&rollout_path(tid, group, deployment), token).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body
}

fn n(v: &Value) -> usize {
    usize::try_from(v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))).unwrap()
}

/// The service's clock, as the rollout sees it.
fn now(t: &TestApp) -> i64 {
    t.state.clock.unix()
}

fn unix(v: &Value) -> i64 {
    time::OffsetDateTime::parse(
        v.as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
    .unix_timestamp()
}

async fn waves_include_stable_shares_pause_on_failures_and_resume(t: &TestApp) {
    let (tid, admin) = t.tenant().await;
    let (_, contributor, _) = t.user(Some((&tid, "Contributor", &admin))).await;
    let g = group(t, &tid, &admin).await;
    let a = t.image(&tid, &admin).await;
    let b = t.image(&tid, &admin).await;
    deploy(t, &tid, &admin, &g, &[&a], None).await;
    let mut devices = fleet(t, &tid, &admin, Some(&g), 200).await;
    assert_eq!(check_all(t, &mut devices).await, 200);
    assert_eq!(
        holding(&devices, &a).len(),
        200,
        "no rollout: everyone at once"
    );
    let v1: BTreeMap<String, u64> = devices.iter().map(|d| (d.id.clone(), d.version)).collect();

    // 10 %, then 50 % an hour later, then 100 %; pause above 5 % failures.
    let created = now(t);
    let d2 = deploy(
        t,
        &tid,
        &contributor,
        &g,
        &[&b],
        Some(json!({"waves": [10, 50, 100], "waveWaitSeconds": 3600, "maxFailurePercent": 5})),
    )
    .await;
    let s = rollout(t, &tid, &admin, &g, &d2).await;
    assert_eq!(s["state"], "Rolling", "{s}");
    assert_eq!(s["currentWave"], 1);
    assert_eq!(s["currentPercent"], 10.0);
    assert_eq!(s["devicesInGroup"], 200);
    assert_eq!(s["rollout"]["waves"], json!([10.0, 50.0, 100.0]));
    assert!(
        (unix(&s["nextWaveAt"]) - (created + 3600)).abs() <= 2,
        "{s}"
    );
    let included1 = n(&s["devicesIncluded"]);
    // Binomial(200, 0.1): 20 expected, outside 6..=40 with probability below 1e-4.
    assert!(
        (6..=40).contains(&included1),
        "{included1} of 200 in the 10 % wave"
    );
    assert_eq!(s["devicesTargeted"], 0, "nobody checked yet");

    // The included devices, and only they, get B; the others are told nothing new (304).
    let changed = check_all(t, &mut devices).await;
    let wave1 = holding(&devices, &b);
    assert_eq!(wave1.len(), included1);
    assert_eq!(
        changed, included1,
        "devices outside the wave keep their ETag"
    );
    for d in &devices {
        if wave1.contains(&d.id) {
            assert_eq!(d.version, v1[&d.id] + 1);
            assert!(!d.images.contains(&a));
        } else {
            assert_eq!(d.version, v1[&d.id]);
            assert!(d.images.contains(&a));
        }
    }
    let s = rollout(t, &tid, &admin, &g, &d2).await;
    assert_eq!(n(&s["devicesTargeted"]), included1);
    // Stable: the same devices on every check.
    assert_eq!(check_all(t, &mut devices).await, 0);
    assert_eq!(holding(&devices, &b), wave1);

    // Not before its wait: the wave starts when the clock passes it.
    t.state.clock.advance(HOUR - Duration::from_secs(5));
    assert_eq!(check_all(t, &mut devices).await, 0);
    t.state.clock.advance(Duration::from_secs(5));
    let s = rollout(t, &tid, &admin, &g, &d2).await;
    assert_eq!(s["currentWave"], 2, "{s}");
    assert_eq!(s["currentPercent"], 50.0);
    let included2 = n(&s["devicesIncluded"]);
    assert!(
        (70..=130).contains(&included2),
        "{included2} of 200 in 50 %"
    );
    check_all(t, &mut devices).await;
    let wave2 = holding(&devices, &b);
    assert_eq!(wave2.len(), included2);
    assert!(
        wave2.is_superset(&wave1),
        "a device never leaves a wave it entered"
    );

    // Failures. Not counted: a Failed report for the previous deployment's set (version v1),
    // and one from a device outside the rollout.
    let in_wave: Vec<usize> = (0..devices.len())
        .filter(|i| wave2.contains(&devices[*i].id))
        .collect();
    let outside = (0..devices.len())
        .find(|i| !wave2.contains(&devices[*i].id))
        .unwrap();
    report(
        t,
        &devices[in_wave[0]],
        "Failed",
        v1[&devices[in_wave[0]].id],
    )
    .await;
    report(t, &devices[outside], "Failed", devices[outside].version).await;
    let s = rollout(t, &tid, &admin, &g, &d2).await;
    assert_eq!(s["devicesFailed"], 0, "{s}");
    // 5 % of the included may fail; one more pauses the rollout.
    let allowed = included2 * 5 / 100;
    for i in &in_wave[1..=allowed] {
        let d = &devices[*i];
        report(t, d, "Failed", d.version).await;
        // Reported twice: counted once.
        report(t, d, "Failed", d.version).await;
    }
    let s = rollout(t, &tid, &admin, &g, &d2).await;
    assert_eq!(s["state"], "Rolling", "{s}");
    assert_eq!(n(&s["devicesFailed"]), allowed);
    let last = &devices[in_wave[allowed + 1]];
    report(t, last, "Failed", last.version).await;
    let s = rollout(t, &tid, &admin, &g, &d2).await;
    assert_eq!(s["state"], "Paused", "{s}");
    assert_eq!(s["pause"]["reason"], "FailureThreshold");
    assert!(s["pause"].get("by").is_none(), "the service paused it: {s}");
    assert!(
        s["pause"]["detail"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{} of {included2} devices", allowed + 1)),
        "{s}"
    );
    assert_eq!(n(&s["devicesFailed"]), allowed + 1);
    assert!(s.get("nextWaveAt").is_none(), "{s}");
    // Audited, as the service (no actor).
    let pauses = t
        .count(&format!(
            "SELECT COUNT(*) FROM audit_log WHERE tenant_id = '{tid}' AND \
             action = 'deployment.rollout.pause' AND actor IS NULL AND object_id = '{d2}'"
        ))
        .await;
    assert_eq!(pauses, 1);

    // Paused: hours pass, no wave starts, further devices get nothing new; the included keep B.
    t.state.clock.advance(3 * HOUR);
    assert_eq!(check_all(t, &mut devices).await, 0);
    assert_eq!(holding(&devices, &b), wave2);
    let s = rollout(t, &tid, &admin, &g, &d2).await;
    assert_eq!(
        (s["state"].as_str(), s["currentWave"].as_u64()),
        (Some("Paused"), Some(2))
    );
    // An operator's pause of a paused rollout changes nothing (the reason stays).
    let r = t
        .post(
            &format!("{}/pause", rollout_path(&tid, &g, &d2)),
            &contributor,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["pause"]["reason"], "FailureThreshold");

    // Resume: the failures so far are acknowledged; the wait starts again.
    let resumed_at = now(t);
    let r = t
        .post(
            &format!("{}/resume", rollout_path(&tid, &g, &d2)),
            &contributor,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let s = r.body;
    assert_eq!(s["state"], "Rolling", "{s}");
    assert_eq!(s["currentWave"], 2);
    assert_eq!(s["devicesFailed"], 0);
    assert!(s.get("pause").is_none());
    assert!(
        (unix(&s["nextWaveAt"]) - (resumed_at + 3600)).abs() <= 2,
        "{s}"
    );
    assert!((unix(&s["failuresCountedSince"]) - resumed_at).abs() <= 2);
    // A failure after the resume counts (one is within 5 %: no pause).
    let again = &devices[in_wave[allowed + 2]];
    report(t, again, "Failed", again.version).await;
    let s = rollout(t, &tid, &admin, &g, &d2).await;
    assert_eq!(
        (s["state"].as_str(), n(&s["devicesFailed"])),
        (Some("Rolling"), 1)
    );
    t.state.clock.advance(HOUR);
    let s = rollout(t, &tid, &admin, &g, &d2).await;
    assert_eq!(s["state"], "Complete", "{s}");
    assert_eq!(s["devicesIncluded"], 200);
    assert_eq!(check_all(t, &mut devices).await, 200 - included2);
    assert_eq!(holding(&devices, &b).len(), 200);
    for d in &devices {
        assert_eq!(d.version, v1[&d.id] + 1, "one step each, none back");
    }
    // Complete: nothing to pause or resume.
    for action in ["pause", "resume"] {
        let r = t
            .post(
                &format!("{}/{action}", rollout_path(&tid, &g, &d2)),
                &admin,
                json!({}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{action}: {:?}", r.body);
        assert_eq!(r.code(), "rollout_not_active");
    }
}

async fn newer_deployments_supersede_and_devices_never_go_back(t: &TestApp) {
    let (tid, admin) = t.tenant().await;
    let g = group(t, &tid, &admin).await;
    let (a, b, c, e) = (
        t.image(&tid, &admin).await,
        t.image(&tid, &admin).await,
        t.image(&tid, &admin).await,
        t.image(&tid, &admin).await,
    );
    // The first deployment of a group may roll out: devices outside its waves get no apps, as
    // in a group without a deployment.
    let d1 = deploy(
        t,
        &tid,
        &admin,
        &g,
        &[&a],
        Some(json!({"waves": [100], "waveWaitSeconds": 0, "maxFailurePercent": 0})),
    )
    .await;
    assert_eq!(rollout(t, &tid, &admin, &g, &d1).await["state"], "Complete");
    let mut devices = fleet(t, &tid, &admin, Some(&g), 80).await;
    check_all(t, &mut devices).await;
    assert_eq!(
        holding(&devices, &a).len(),
        80,
        "one wave of 100 %, no wait"
    );

    let d2 = deploy(
        t,
        &tid,
        &admin,
        &g,
        &[&b],
        Some(json!({"waves": [20, 100], "waveWaitSeconds": 1800, "maxFailurePercent": 10})),
    )
    .await;
    check_all(t, &mut devices).await;
    let got_b = holding(&devices, &b);
    assert!(!got_b.is_empty() && got_b.len() < 80, "{}", got_b.len());
    let versions: BTreeMap<String, u64> =
        devices.iter().map(|d| (d.id.clone(), d.version)).collect();

    // A newer deployment with its own rollout freezes D2 where it stands.
    let d3 = deploy(
        t,
        &tid,
        &admin,
        &g,
        &[&c],
        Some(json!({"waves": [20, 100], "waveWaitSeconds": 3600, "maxFailurePercent": 10})),
    )
    .await;
    let s2 = rollout(t, &tid, &admin, &g, &d2).await;
    assert_eq!(s2["state"], "Superseded", "{s2}");
    assert!(s2["supersededAt"].is_string());
    for action in ["pause", "resume"] {
        let r = t
            .post(
                &format!("{}/{action}", rollout_path(&tid, &g, &d2)),
                &admin,
                json!({}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
        assert_eq!(r.code(), "rollout_not_active");
    }
    check_all(t, &mut devices).await;
    let got_c = holding(&devices, &c);
    assert_eq!(
        got_c.len(),
        n(&rollout(t, &tid, &admin, &g, &d3).await["devicesIncluded"])
    );
    for d in &devices {
        if got_c.contains(&d.id) {
            assert_eq!(d.images, BTreeSet::from([c.clone()]));
        } else if got_b.contains(&d.id) {
            // In D2's wave, not in D3's: keeps B, never back to A.
            assert_eq!(d.images, BTreeSet::from([b.clone()]), "{}", d.id);
            assert_eq!(d.version, versions[&d.id]);
        } else {
            assert_eq!(d.images, BTreeSet::from([a.clone()]));
            assert_eq!(d.version, versions[&d.id]);
        }
    }
    // D2's wait passes (not D3's): frozen, D2 reaches nobody new.
    t.state.clock.advance(Duration::from_secs(1800));
    assert_eq!(check_all(t, &mut devices).await, 0);
    // A device that joins the group now, outside D3's first wave, gets the newest deployment that
    // reached everyone (D1), not D2 which it never had.
    let mut newcomers = fleet(t, &tid, &admin, Some(&g), 30).await;
    check_all(t, &mut newcomers).await;
    for d in &newcomers {
        assert!(
            d.images == BTreeSet::from([c.clone()]) || d.images == BTreeSet::from([a.clone()]),
            "{:?}",
            d.images
        );
    }
    assert!(holding(&newcomers, &a).len() > 10);
    // Devices that come from another group, whose deployment is newer than D1: what they had
    // there is not "kept" here.
    let g2 = group(t, &tid, &admin).await;
    deploy(t, &tid, &admin, &g2, &[&e], None).await;
    let mut movers = fleet(t, &tid, &admin, Some(&g2), 20).await;
    check_all(t, &mut movers).await;
    assert_eq!(holding(&movers, &e).len(), 20);
    for d in &movers {
        move_to(t, &tid, &admin, &d.id, &g).await;
    }
    assert_eq!(check_all(t, &mut movers).await, 20);
    assert!(holding(&movers, &e).is_empty());
    assert!(holding(&movers, &a).len() + holding(&movers, &c).len() == 20);
    assert!(!holding(&movers, &a).is_empty());
    // D3's last wave: everyone gets C, one version up from where they were.
    t.state.clock.advance(Duration::from_secs(1800));
    let before: BTreeMap<String, u64> = devices.iter().map(|d| (d.id.clone(), d.version)).collect();
    check_all(t, &mut devices).await;
    assert_eq!(holding(&devices, &c).len(), 80);
    for d in &devices {
        let expected = before[&d.id] + u64::from(!got_c.contains(&d.id));
        assert_eq!(d.version, expected);
    }
    assert_eq!(rollout(t, &tid, &admin, &g, &d3).await["state"], "Complete");
    // A deployment without a rollout reaches everyone at once, exactly as before rollouts.
    let d4 = deploy(t, &tid, &admin, &g, &[&e], None).await;
    assert_eq!(check_all(t, &mut devices).await, 80);
    assert_eq!(holding(&devices, &e).len(), 80);
    // D3 was complete: not superseded.
    assert_eq!(rollout(t, &tid, &admin, &g, &d3).await["state"], "Complete");
    let r = t.get(&rollout_path(&tid, &g, &d4), &admin).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
    assert_eq!(r.code(), "no_rollout");
}

/// (deployments, audit rows) of a tenant.
async fn rows(t: &TestApp, tid: &str) -> (i64, i64) {
    (
        t.count(&format!(
            "SELECT COUNT(*) FROM deployments WHERE tenant_id = '{tid}'"
        ))
        .await,
        t.count(&format!(
            "SELECT COUNT(*) FROM audit_log WHERE tenant_id = '{tid}'"
        ))
        .await,
    )
}

async fn bad_rollouts_are_refused_and_write_nothing(t: &TestApp) {
    let (tid, admin) = t.tenant().await;
    let g = group(t, &tid, &admin).await;
    let a = t.image(&tid, &admin).await;
    let before = rows(t, &tid).await;
    let ok = json!({"waves": [10, 50, 100], "waveWaitSeconds": 3600, "maxFailurePercent": 5});
    let with = |field: &str, value: Value| {
        let mut r = ok.clone();
        r[field] = value;
        r
    };
    for (rollout, why) in [
        (with("waves", json!([10, 10, 100])), "not increasing"),
        (with("waves", json!([50, 10, 100])), "decreasing"),
        (with("waves", json!([10, 50])), "not ending at 100"),
        (with("waves", json!([])), "no wave"),
        (with("waves", json!([0, 100])), "zero"),
        (with("waves", json!([-10, 100])), "negative"),
        (with("waves", json!([10, 150])), "over 100"),
        (with("waves", json!([10.125, 100])), "three decimals"),
        (
            with("waves", json!([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 100])),
            "too many",
        ),
        (with("waveWaitSeconds", json!(-60)), "negative wait"),
        (
            with("waveWaitSeconds", json!(31 * 24 * 3600)),
            "wait over 30 days",
        ),
        (with("maxFailurePercent", json!(-1)), "negative threshold"),
        (with("maxFailurePercent", json!(101)), "threshold over 100"),
    ] {
        let r = deploy_raw(t, &tid, &admin, &g, &[&a], Some(rollout)).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{why}: {:?}",
            r.body
        );
        assert_eq!(r.code(), "invalid_rollout", "{why}");
    }
    // Wrong shapes are the generic body errors.
    let r = deploy_raw(t, &tid, &admin, &g, &[&a], Some(json!({"waves": [100]}))).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.code(), "invalid_body");
    let r = deploy_raw(t, &tid, &admin, &g, &[&a], Some(with("extra", json!(1)))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert_eq!(r.code(), "unknown_field");
    // A valid rollout with a bad image list is refused before anything is written too.
    let r = deploy_raw(t, &tid, &admin, &g, &[&a, &a], Some(ok.clone())).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(rows(t, &tid).await, before, "refusals wrote nothing");
    // A running rollout is not superseded by a refused deployment.
    let d = deploy(t, &tid, &admin, &g, &[&a], Some(ok.clone())).await;
    let r = deploy_raw(t, &tid, &admin, &g, &[&a], Some(with("waves", json!([5])))).await;
    assert_eq!(r.code(), "invalid_rollout");
    assert_eq!(rollout(t, &tid, &admin, &g, &d).await["state"], "Rolling");
    // The deployment shows its rollout.
    let r = t
        .get(
            &format!("/v1/tenants/{tid}/device-groups/{g}/deployments/{d}"),
            &admin,
        )
        .await;
    assert_eq!(
        r.body["rollout"],
        json!({"waves": [10.0, 50.0, 100.0], "waveWaitSeconds": 3600, "maxFailurePercent": 5.0})
    );
    let r = t
        .get(
            &format!("/v1/tenants/{tid}/device-groups/{g}/deployments"),
            &admin,
        )
        .await;
    assert_eq!(r.body["items"][0]["rollout"]["waves"][2], 100.0);
}

async fn rollout_routes_answer_by_role_and_state(t: &TestApp) {
    let (tid, admin) = t.tenant().await;
    let (_, reader, _) = t.user(Some((&tid, "Reader", &admin))).await;
    let (_, contributor, _) = t.user(Some((&tid, "Contributor", &admin))).await;
    let (other_tid, other_admin) = t.tenant().await;
    let g = group(t, &tid, &admin).await;
    let a = t.image(&tid, &admin).await;
    let plain = deploy(t, &tid, &admin, &g, &[&a], None).await;
    let d = deploy(
        t,
        &tid,
        &admin,
        &g,
        &[&a],
        Some(json!({"waves": [25, 100], "waveWaitSeconds": 600, "maxFailurePercent": 2.5})),
    )
    .await;
    let path = rollout_path(&tid, &g, &d);
    // Readers see it; only Contributors and above pause or resume.
    let s = rollout(t, &tid, &reader, &g, &d).await;
    assert_eq!(s["rollout"]["maxFailurePercent"], 2.5);
    let r = t.post(&format!("{path}/pause"), &reader, json!({})).await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "forbidden"));
    // Another tenant's deployment answers as missing, for its Administrator too.
    for token in [&other_admin] {
        let r = t.get(&path, token).await;
        assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found"));
        let r = t.post(&format!("{path}/pause"), token, json!({})).await;
        assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found"));
    }
    let foreign = rollout_path(&other_tid, &g, &d);
    let r = t.get(&foreign, &other_admin).await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found"));
    // Unknown and malformed IDs; a deployment of another group; no rollout.
    let unknown = rollout_path(&tid, &g, &uuid::Uuid::now_v7().to_string());
    let r = t.get(&unknown, &admin).await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found"));
    let r = t.get(&rollout_path(&tid, &g, "nope"), &admin).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "invalid_id")
    );
    let g2 = group(t, &tid, &admin).await;
    let r = t.get(&rollout_path(&tid, &g2, &d), &admin).await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found"));
    for p in [
        rollout_path(&tid, &g, &plain),
        format!("{}/pause", rollout_path(&tid, &g, &plain)),
    ] {
        let r = if p.ends_with("pause") {
            t.post(&p, &admin, json!({})).await
        } else {
            t.get(&p, &admin).await
        };
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::NOT_FOUND, "no_rollout"),
            "{p}"
        );
    }
    // An operator pause: recorded with who; time passes without a wave; resume continues.
    let r = t
        .post(&format!("{path}/pause"), &contributor, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["state"], "Paused");
    assert_eq!(r.body["pause"]["reason"], "Operator");
    let me = t.get("/v1/me", &contributor).await.body["user"]["id"].clone();
    assert_eq!(r.body["pause"]["by"], me);
    t.state.clock.advance(Duration::from_secs(7200));
    let s = rollout(t, &tid, &reader, &g, &d).await;
    assert_eq!(
        (s["state"].as_str(), s["currentWave"].as_u64()),
        (Some("Paused"), Some(1))
    );
    let r = t
        .post(&format!("{path}/resume"), &contributor, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        (r.body["state"].as_str(), r.body["currentWave"].as_u64()),
        (Some("Rolling"), Some(1))
    );
    // Resuming a running rollout changes nothing.
    let again = t.post(&format!("{path}/resume"), &admin, json!({})).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["nextWaveAt"], r.body["nextWaveAt"]);
    t.state.clock.advance(Duration::from_secs(600));
    assert_eq!(rollout(t, &tid, &reader, &g, &d).await["state"], "Complete");
    let audited = t
        .count(&format!(
            "SELECT COUNT(*) FROM audit_log WHERE tenant_id = '{tid}' AND \
             action LIKE 'deployment.rollout.%' AND object_id = '{d}'"
        ))
        .await;
    assert_eq!(audited, 2, "one pause, one resume");
}
