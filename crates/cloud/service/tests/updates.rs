//! Over-the-air updates, service side (docs/updates.md), on SQLite and PostgreSQL, over a real
//! HTTPS listener with the device certificate in the TLS handshake: device authentication, the
//! signed target set (verified as a device would, from the platform root down), its versioning
//! and ETag, content-addressed downloads with Range, status reports, update-now long polls, and
//! the management routes' roles.

mod common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use base64ct::{Base64, Encoding};
use common::device_https::{Device, Server, certified, json_of, send};
use common::devices::{Dev, attest, claimed, new_rot, register};
use common::{TestApp, uniq};
use ferro_pki::{PlatformKeyRole, TargetKind, TargetSet};
use ferro_signing::PublicKey;
use ferro_trust::RootOfTrust;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

both!(
    device_routes_need_a_valid_device_certificate,
    target_sets_follow_group_deployment_and_feed,
    downloads_are_limited_to_the_target_set,
    status_reports_are_shown_and_failures_reported,
    update_now_wakes_waiting_devices,
);

/// GET a device route; (status, headers, JSON body or Null).
async fn dget(c: &reqwest::Client, url: &str) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let (s, h, raw) = send(c.get(url)).await;
    (s, h, json_of(&raw))
}

/// The device's target set, checked as the device does: key list under the platform root, the
/// ownership document under its tenant endorsement keys, the set under the owner's metadata keys.
fn verify_set(t: &TestApp, d: &Device, body: &Value) -> TargetSet {
    let root_key =
        PublicKey::from_spki_der(t.state.platform.root.subject_public_key_info()).unwrap();
    let list = ferro_pki::verify_key_list(&t.state.platform.key_list, &root_key).unwrap();
    let endorsement = list.trusted(PlatformKeyRole::TenantEndorsement);
    assert_eq!(endorsement.len(), 1);
    let device_id = d.dev.rot.device_id();
    let ownership = Base64::decode_vec(body["ownership"].as_str().unwrap()).unwrap();
    let owner = ferro_pki::verify_ownership(&ownership, &endorsement, &device_id).unwrap();
    let signed = Base64::decode_vec(body["targetSet"].as_str().unwrap()).unwrap();
    let set = ferro_pki::verify_target_set(&signed, &owner, &device_id)
        .unwrap()
        .target_set()
        .clone();
    assert_eq!(Some(set.version), body["version"].as_u64());
    // Another device cannot take this device's documents.
    let other = ferro_signing::DeviceId::from_bytes([7; 64]);
    assert!(ferro_pki::verify_ownership(&ownership, &endorsement, &other).is_err());
    assert!(ferro_pki::verify_target_set(&signed, &owner, &other).is_err());
    set
}

/// GET the target set (200) and verify it.
async fn target_set(t: &TestApp, s: &Server, d: &Device) -> (TargetSet, Value, String) {
    let (status, headers, body) = dget(&d.http, &format!("{}/v1/device/target-set", s.url)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let etag = headers["etag"].to_str().unwrap().to_string();
    let set = verify_set(t, d, &body);
    assert_eq!(
        etag,
        format!("\"v{}-{}\"", set.version, set.expires_at.unix_timestamp())
    );
    (set, body, etag)
}

/// Image IDs named by a set, as (kind, image ID) sorted.
fn named(set: &TargetSet) -> Vec<(TargetKind, String)> {
    let mut v: Vec<_> = set
        .images
        .iter()
        .map(|i| (i.kind, i.image_id.to_string()))
        .collect();
    v.sort();
    v
}

async fn group(
    t: &TestApp,
    tid: &str,
    admin: &str,
    product: &str,
    feed: &str,
    policy: &str,
) -> String {
    let r = t
        .post(
            &format!("/v1/tenants/{tid}/device-groups"),
            admin,
            json!({"productId": product, "name": format!("Group {}", uniq()),
                "osFeed": feed, "updatePolicy": policy}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body["id"].as_str().unwrap().to_string()
}

async fn deploy(t: &TestApp, tid: &str, admin: &str, group: &str, images: &[&str]) {
    let r = t
        .post(
            &format!("/v1/tenants/{tid}/device-groups/{group}/deployments"),
            admin,
            json!({ "imageIds": images }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
}

async fn move_to(t: &TestApp, tid: &str, admin: &str, device: &str, group: Option<&str>) {
    let r = t
        .call(
            axum::http::Method::PATCH,
            &format!("/v1/tenants/{tid}/devices/{device}"),
            Some(admin),
            Some(json!({ "deviceGroupId": group })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}

async fn package_sha(t: &TestApp, table: &str, image_id: &str) -> (String, u64) {
    use sqlx::Row;
    let r = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT package_sha256, package_size FROM {table} WHERE image_id = $1"
    )))
    .bind(image_id)
    .fetch_one(t.db.pool())
    .await
    .unwrap();
    (
        r.try_get("package_sha256").unwrap(),
        u64::try_from(r.try_get::<i64, _>("package_size").unwrap()).unwrap(),
    )
}

/// A certificate for `dev`'s key issued by `ca` (in `store`) naming `tenant`.
fn issue(
    ca: &ferro_pki::TenantCa,
    store: &dyn ferro_pki::KeyStore,
    dev: &Dev,
    tenant: &str,
    validity: ferro_pki::time::Duration,
) -> Vec<u8> {
    ferro_pki::issue_device_certificate(
        ca,
        store,
        &dev.rot.device_id(),
        tenant.parse().unwrap(),
        &dev.rot.public_key(),
        time::OffsetDateTime::now_utc(),
        validity,
    )
    .unwrap()
    .der()
    .to_vec()
}

async fn tenant_ca(t: &TestApp, tid: &str) -> ferro_pki::TenantCa {
    let cas = ferro_service::datastore::tenant_cas::active(&t.db, tid.parse().unwrap())
        .await
        .unwrap();
    ferro_pki::current_tenant_ca(&cas, time::OffsetDateTime::now_utc())
        .unwrap()
        .clone()
}

async fn device_routes_need_a_valid_device_certificate(t: &TestApp) {
    let (tid, admin) = t.tenant().await;
    let (tb, admin_b) = t.tenant().await;
    let s = Server::start(t).await;
    let a = certified(t, &s, &tid, &admin).await;
    let _b = certified(t, &s, &tb, &admin_b).await;
    let routes = [
        format!("{}/v1/device/target-set", s.url),
        format!("{}/v1/device/images/{}", s.url, "ab".repeat(32)),
        format!("{}/v1/device/update-signal", s.url),
    ];
    // The genuine certificate works.
    let (status, _, body) = dget(&a.http, &routes[0]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // No client certificate: 401 on every device route, with a hint to attest.
    let anonymous = s.client(None);
    for url in &routes {
        let (status, _, body) = dget(&anonymous, url).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{url}: {body}");
        assert_eq!(body["error"]["code"], "unauthenticated");
    }
    let (status, _, _) = send(
        anonymous
            .post(format!("{}/v1/device/update-status", s.url))
            .json(&json!({"state": "Checking"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A user's bearer token is not a device identity.
    let (status, _, _) = send(anonymous.get(&routes[0]).bearer_auth(&admin)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let keys = t.state.platform.keys.0.as_ref();
    let day = ferro_pki::DEVICE_CERT_VALIDITY;
    let refused = |what: &'static str, cert: Vec<u8>| {
        let client = s.client(Some((cert, a.dev.rot.device_key())));
        let url = routes[0].clone();
        async move {
            let (status, _, body) = dget(&client, &url).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
            assert_eq!(body["error"]["code"], "unauthenticated", "{what}");
        }
    };
    // Tenant B's CA certifies A's device as B's: B does not own it.
    let ca_b = tenant_ca(t, &tb).await;
    refused(
        "another tenant's certificate",
        issue(&ca_b, keys, &a.dev, &tb, day),
    )
    .await;
    // A self-made CA with the tenant's name, ID and the same certificate profile.
    let rogue_dir = tempfile::tempdir().unwrap();
    let rogue_store = ferro_pki::FileKeyStore::open(&rogue_dir.path().join("keys")).unwrap();
    let rogue = ferro_pki::create_tenant_ca(
        &rogue_store,
        tid.parse().unwrap(),
        "Tenant",
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    refused(
        "self-made CA",
        issue(&rogue, &rogue_store, &a.dev, &tid, day),
    )
    .await;
    // Expired (the tenant's genuine CA, one second of life).
    let ca_a = tenant_ca(t, &tid).await;
    let short = issue(
        &ca_a,
        keys,
        &a.dev,
        &tid,
        ferro_pki::time::Duration::seconds(1),
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    refused("expired", short).await;
    // A registered but unclaimed device with a certificate from A's genuine CA.
    let unclaimed = new_rot();
    register(t, &unclaimed).await;
    let cert = issue(&ca_a, keys, &unclaimed, &tid, day);
    let client = s.client(Some((cert, unclaimed.rot.device_key())));
    let (status, _, body) = dget(&client, &routes[0]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "unclaimed: {body}");
    // ... and its attestation answer carries no target set (no tenant to compute one for).
    let v = attest(t, &unclaimed).await;
    assert_eq!(v["verdict"], "Untrusted");
    assert!(v.get("targetSet").is_none(), "{v}");
    // A device claimed by A, certified by A's CA without attesting, is accepted: the
    // certificate is the authentication (attestation is how devices get one).
    let other = claimed(t, &tid, &admin).await;
    let cert = issue(&ca_a, keys, &other, &tid, day);
    let client = s.client(Some((cert, other.rot.device_key())));
    let (status, _, body) = dget(&client, &routes[0]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A's certificate with another key: the TLS layer refuses (no proof of possession), before
    // any route. The client library refuses to even use it.
    assert!(
        ferro_tls::client_config(
            &[],
            Some((vec![a.cert.clone().into()], other.rot.device_key()))
        )
        .is_err()
    );
    // Management routes are not reachable with a device certificate alone.
    let (status, _, _) = dget(
        &a.http,
        &format!(
            "{}/v1/tenants/{tid}/devices/{}/deployment-status",
            s.url,
            a.id()
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    s.stop().await;
}

async fn target_sets_follow_group_deployment_and_feed(t: &TestApp) {
    let (tid, admin) = t.tenant().await;
    let product = t.product(&tid, &admin, true).await;
    let retail = group(t, &tid, &admin, &product, "Retail", "UpdateAll").await;
    let eval = group(t, &tid, &admin, &product, "RetailEval", "UpdateAll").await;
    let keep_apps = group(t, &tid, &admin, &product, "Retail", "No3rdPartyAppUpdates").await;
    let os1 = t.os_release("Retail").await;
    let app1 = t.image(&tid, &admin).await;
    deploy(t, &tid, &admin, &retail, &[&app1]).await;
    let s = Server::start(t).await;
    let d = certified(t, &s, &tid, &admin).await;
    let url = format!("{}/v1/device/target-set", s.url);

    // No group: the Retail OS only, apps left alone.
    let (set, _, _) = target_set(t, &s, &d).await;
    assert_eq!(set.device_id, d.dev.rot.device_id());
    assert_eq!(set.tenant_id.to_string(), tid);
    assert_eq!(set.device_group_id, None);
    assert!(!set.manage_apps);
    assert_eq!(named(&set), vec![(TargetKind::Os, os1.clone())]);
    assert_eq!(set.images[0].component_id, ferro_image::OS_COMPONENT_ID);
    let now = time::OffsetDateTime::now_utc();
    assert!((set.issued_at - now).abs() < time::Duration::minutes(1));
    assert_eq!(set.expires_at - set.issued_at, time::Duration::days(7));
    let v0 = set.version;
    assert_eq!(v0, 1);

    // Into the Retail group: its deployment and the newest Retail OS.
    move_to(t, &tid, &admin, d.id(), Some(&retail)).await;
    let (set, body, etag) = target_set(t, &s, &d).await;
    assert_eq!(set.version, v0 + 1);
    assert_eq!(set.device_group_id.unwrap().to_string(), retail);
    assert!(set.manage_apps);
    assert_eq!(
        named(&set),
        vec![
            (TargetKind::App, app1.clone()),
            (TargetKind::Os, os1.clone())
        ]
    );
    let (sha, size) = package_sha(t, "images", &app1).await;
    let app = set
        .images
        .iter()
        .find(|i| i.kind == TargetKind::App)
        .unwrap();
    assert_eq!(hex::encode(app.package_sha256), sha);
    assert_eq!(app.package_size, size);
    // Nothing changed: the same version, the same signed bytes.
    let (again, body2, etag2) = target_set(t, &s, &d).await;
    assert_eq!(again.version, set.version);
    assert_eq!(body2["targetSet"], body["targetSet"]);
    assert_eq!(etag2, etag);
    // The validator: 304 without a body; another tag gets the set.
    let (status, headers, raw) = send(d.http.get(&url).header("if-none-match", &etag)).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(raw.is_empty());
    assert_eq!(headers["etag"].to_str().unwrap(), etag);
    let (status, _, _) = send(d.http.get(&url).header("if-none-match", "\"v0\", \"x\"")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = send(
        d.http
            .get(&url)
            .header("if-none-match", format!("\"v0\", {etag}")),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    // Half of its life over (simulated): the unchanged set is re-signed with a later expiry,
    // keeps its version, and gets a new validator, so a device holding the old signature gets
    // the fresh one instead of a 304 (else it would freeze when its copy expires). The service's
    // clock moves a second on, so the new expiry differs from the old one.
    t.state.clock.advance(Duration::from_secs(1));
    t.exec(&format!(
        "UPDATE devices SET target_expires_at = {} WHERE id = '{}'",
        (time::OffsetDateTime::now_utc() + time::Duration::days(1)).unix_timestamp(),
        d.id()
    ))
    .await;
    let (status, headers, raw) = send(d.http.get(&url).header("if-none-match", &etag)).await;
    assert_eq!(status, StatusCode::OK);
    let refreshed = verify_set(t, &d, &json_of(&raw));
    assert_eq!(refreshed.version, set.version);
    assert!(refreshed.expires_at > set.expires_at);
    assert_eq!(refreshed.images, set.images);
    assert_ne!(headers["etag"].to_str().unwrap(), etag);
    let (again, _, etag_now) = target_set(t, &s, &d).await;
    assert_eq!(again, refreshed);
    let (status, _, _) = send(d.http.get(&url).header("if-none-match", &etag_now)).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);

    // The management view shows the same set.
    let r = t
        .get(
            &format!("/v1/tenants/{tid}/devices/{}/targeted-images", d.id()),
            &admin,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["targetVersion"], set.version);
    assert_eq!(r.body["manageApps"], true);
    assert_eq!(r.body["images"].as_array().unwrap().len(), 2);
    assert!(
        r.body["images"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["imageId"] == app1.as_str()
                && i["kind"] == "App"
                && i["packageSha256"] == sha.as_str())
    );

    // A new deployment: one more.
    let app2 = t.image(&tid, &admin).await;
    deploy(t, &tid, &admin, &retail, &[&app2]).await;
    let (set, _, _) = target_set(t, &s, &d).await;
    assert_eq!(set.version, v0 + 2);
    assert_eq!(
        named(&set),
        vec![
            (TargetKind::App, app2.clone()),
            (TargetKind::Os, os1.clone())
        ]
    );
    let (status, _, _) = send(d.http.get(&url).header("if-none-match", &etag)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the old version's tag no longer matches"
    );
    // Deploying the same images again changes nothing the device runs: same version.
    deploy(t, &tid, &admin, &retail, &[&app2]).await;
    assert_eq!(target_set(t, &s, &d).await.0.version, v0 + 2);
    // A RetailEval release does not reach a Retail group.
    let os_eval = t.os_release("RetailEval").await;
    let (set, _, _) = target_set(t, &s, &d).await;
    assert_eq!(set.version, v0 + 2);
    assert_eq!(set.os().unwrap().image_id.to_string(), os1);
    // The RetailEval group gets it (no deployment there: the OS only, apps managed).
    move_to(t, &tid, &admin, d.id(), Some(&eval)).await;
    let (set, _, _) = target_set(t, &s, &d).await;
    assert_eq!(set.version, v0 + 3);
    assert_eq!(set.device_group_id.unwrap().to_string(), eval);
    assert!(set.manage_apps);
    assert_eq!(named(&set), vec![(TargetKind::Os, os_eval.clone())]);
    // A new Retail release reaches both feeds.
    let os2 = t.os_release("Retail").await;
    let (set, _, _) = target_set(t, &s, &d).await;
    assert_eq!(set.version, v0 + 4);
    assert_eq!(named(&set), vec![(TargetKind::Os, os2.clone())]);
    move_to(t, &tid, &admin, d.id(), Some(&retail)).await;
    let (set, _, _) = target_set(t, &s, &d).await;
    assert_eq!(set.version, v0 + 5);
    assert_eq!(
        named(&set),
        vec![
            (TargetKind::App, app2.clone()),
            (TargetKind::Os, os2.clone())
        ]
    );
    // No3rdPartyAppUpdates: the OS only, apps left as they are, even with a deployment.
    let app3 = t.image(&tid, &admin).await;
    deploy(t, &tid, &admin, &keep_apps, &[&app3]).await;
    move_to(t, &tid, &admin, d.id(), Some(&keep_apps)).await;
    let (set, _, _) = target_set(t, &s, &d).await;
    assert_eq!(set.version, v0 + 6);
    assert!(!set.manage_apps);
    assert_eq!(set.device_group_id.unwrap().to_string(), keep_apps);
    assert_eq!(named(&set), vec![(TargetKind::Os, os2.clone())]);
    let r = t
        .get(
            &format!("/v1/tenants/{tid}/devices/{}/targeted-images", d.id()),
            &admin,
        )
        .await;
    assert_eq!(r.body["manageApps"], false);
    assert_eq!(r.body["targetVersion"], v0 + 6);
    // Out of any group again: Retail OS only, and the version still only grows.
    move_to(t, &tid, &admin, d.id(), None).await;
    let (set, _, _) = target_set(t, &s, &d).await;
    assert_eq!(set.version, v0 + 7);
    assert_eq!(set.device_group_id, None);
    assert_eq!(named(&set), vec![(TargetKind::Os, os2.clone())]);

    // Attestation answers carry the set too, trusted or not: an untrusted device gets no
    // certificate (so no device routes) and heals through this.
    let v = attest(t, &d.dev).await;
    assert_eq!(v["verdict"], "Trusted", "{v}");
    let set = verify_set(t, &d, &v["targetSet"]);
    assert_eq!(set.version, v0 + 7);
    d.dev
        .rot
        .extend_measurement(&ferro_trust::MeasurementEvent {
            component_id: ferro_image::OS_COMPONENT_ID,
            image_id: uuid::Uuid::new_v4(),
            version: "9.9.9".into(),
            digest: [1; 32],
        })
        .unwrap();
    let v = attest(t, &d.dev).await;
    assert_eq!(v["verdict"], "Untrusted", "{v}");
    assert!(v.get("certificatePem").is_none());
    let set = verify_set(t, &d, &v["targetSet"]);
    assert_eq!(set.version, v0 + 7);
    assert_eq!(named(&set), vec![(TargetKind::Os, os2.clone())]);

    // Management view: Readers may look, another tenant cannot see the device, a malformed ID
    // is a 400.
    let (_, reader, _) = t.user(Some((&tid, "Reader", &admin))).await;
    let r = t
        .get(
            &format!("/v1/tenants/{tid}/devices/{}/targeted-images", d.id()),
            &reader,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let (tb, admin_b) = t.tenant().await;
    let r = t
        .get(
            &format!("/v1/tenants/{tb}/devices/{}/targeted-images", d.id()),
            &admin_b,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = t
        .get(
            &format!("/v1/tenants/{tid}/devices/xyz/targeted-images"),
            &admin,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // A device that never asked: the management view computes its set.
    let fresh = claimed(t, &tid, &admin).await;
    let r = t
        .get(
            &format!("/v1/tenants/{tid}/devices/{}/targeted-images", fresh.id),
            &admin,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["targetVersion"], 1);
    s.stop().await;
}

async fn downloads_are_limited_to_the_target_set(t: &TestApp) {
    let (tid, admin) = t.tenant().await;
    let (tb, admin_b) = t.tenant().await;
    let product = t.product(&tid, &admin, true).await;
    let g = group(t, &tid, &admin, &product, "Retail", "UpdateAll").await;
    let os = t.os_release("Retail").await;
    let app = t.image(&tid, &admin).await;
    let undeployed = t.image(&tid, &admin).await;
    let foreign = t.image(&tb, &admin_b).await;
    deploy(t, &tid, &admin, &g, &[&app]).await;
    let s = Server::start(t).await;
    let d = certified(t, &s, &tid, &admin).await;
    move_to(t, &tid, &admin, d.id(), Some(&g)).await;
    let base = format!("{}/v1/device/images", s.url);

    for (table, id) in [("images", &app), ("os_releases", &os)] {
        let (sha, size) = package_sha(t, table, id).await;
        // Whole.
        let (status, headers, whole) = send(d.http.get(format!("{base}/{sha}"))).await;
        assert_eq!(status, StatusCode::OK, "{table}");
        assert_eq!(whole.len() as u64, size);
        assert_eq!(hex::encode(Sha256::digest(&whole)), sha);
        assert_eq!(headers["accept-ranges"], "bytes");
        // Resumed from an offset: the remaining bytes, which complete the file.
        let offset = size / 3;
        let (status, headers, rest) = send(
            d.http
                .get(format!("{base}/{sha}"))
                .header("range", format!("bytes={offset}-")),
        )
        .await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(
            headers["content-range"].to_str().unwrap(),
            format!("bytes {offset}-{}/{size}", size - 1)
        );
        let mut joined = whole[..offset as usize].to_vec();
        joined.extend_from_slice(&rest);
        assert_eq!(hex::encode(Sha256::digest(&joined)), sha);
        // A middle range, and one past the end.
        let (status, _, part) = send(
            d.http
                .get(format!("{base}/{sha}"))
                .header("range", "bytes=10-19"),
        )
        .await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(part, whole[10..20]);
        let (status, _, _) = send(
            d.http
                .get(format!("{base}/{sha}"))
                .header("range", format!("bytes={size}-")),
        )
        .await;
        assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    }
    // Not in this device's target set: 404 like a missing object.
    for (what, id) in [("undeployed", &undeployed), ("another tenant's", &foreign)] {
        let (sha, _) = package_sha(t, "images", id).await;
        let (status, _, body) = dget(&d.http, &format!("{base}/{sha}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{what}: {body}");
        assert_eq!(body["error"]["code"], "not_found", "{what}");
    }
    let (status, _, _) = dget(&d.http, &format!("{base}/{}", "0".repeat(64))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A replaced deployment's image is no longer downloadable.
    let (old_sha, _) = package_sha(t, "images", &app).await;
    deploy(t, &tid, &admin, &g, &[&undeployed]).await;
    let (status, _, _) = dget(&d.http, &format!("{base}/{old_sha}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (new_sha, _) = package_sha(t, "images", &undeployed).await;
    let (status, _, _) = dget(&d.http, &format!("{base}/{new_sha}")).await;
    assert_eq!(status, StatusCode::OK);
    // Malformed digests: 400.
    for bad in [
        "xyz".to_string(),
        new_sha.to_uppercase(),
        format!("{new_sha}00"),
        new_sha[..63].to_string(),
        format!("{}zz", &new_sha[..62]),
    ] {
        let (status, _, body) = dget(&d.http, &format!("{base}/{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "invalid_id");
    }
    s.stop().await;
}

async fn status_reports_are_shown_and_failures_reported(t: &TestApp) {
    let (tid, admin) = t.tenant().await;
    let (tb, admin_b) = t.tenant().await;
    let os = t.os_release("Retail").await;
    let s = Server::start(t).await;
    let d = certified(t, &s, &tid, &admin).await;
    let status_url = format!("/v1/tenants/{tid}/devices/{}/deployment-status", d.id());
    let report_url = format!("{}/v1/device/update-status", s.url);
    let report = |body: Value| {
        let rb = d.http.post(&report_url).json(&body);
        async move {
            let (status, _, raw) = send(rb).await;
            (status, json_of(&raw))
        }
    };

    // A device that never attested has no target set yet.
    let never = claimed(t, &tid, &admin).await;
    let r = t
        .get(
            &format!("/v1/tenants/{tid}/devices/{}/deployment-status", never.id),
            &admin,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["targetVersion"], Value::Null);
    assert_eq!(r.body["state"], Value::Null);
    // Attested (the answer carried version 1), never reported.
    let r = t.get(&status_url, &admin).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["deviceId"], d.id());
    assert_eq!(r.body["targetVersion"], 1);
    assert_eq!(r.body["state"], Value::Null);
    assert_eq!(r.body["installed"], json!([]));
    let (set, _, _) = target_set(t, &s, &d).await;

    let (status, body) =
        report(json!({"state": "Downloading", "targetVersion": set.version})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let r = t.get(&status_url, &admin).await;
    assert_eq!(r.body["state"], "Downloading");
    assert_eq!(r.body["targetVersion"], set.version);
    assert_eq!(r.body["reportedTargetVersion"], set.version);
    assert!(r.body["reportedAt"].is_string());

    let installed = json!([{"componentId": ferro_image::OS_COMPONENT_ID, "imageId": os,
        "kind": "Os", "version": "1.0.0"}]);
    let (status, _) = report(json!({"state": "Installed", "targetVersion": set.version,
        "detail": "switched to slot b", "installed": installed}))
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, reader, _) = t.user(Some((&tid, "Reader", &admin))).await;
    let r = t.get(&status_url, &reader).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["state"], "Installed");
    assert_eq!(r.body["detail"], "switched to slot b");
    assert_eq!(r.body["installed"], installed);

    let until = "2030-01-02T03:04:05Z";
    let (status, _) = report(json!({"state": "Deferred", "deferredUntil": until})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let r = t.get(&status_url, &admin).await;
    assert_eq!(r.body["state"], "Deferred");
    assert_eq!(r.body["deferredUntil"], until);
    assert_eq!(r.body["reportedTargetVersion"], Value::Null);
    assert_eq!(r.body["installed"], json!([]));

    // Failed: shown, and an event in the tenant's error report.
    let (status, _) = report(json!({"state": "Failed", "targetVersion": set.version,
        "detail": "image 1234 failed verification: \"bad signature\""}))
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let r = t.get(&status_url, &admin).await;
    assert_eq!(r.body["state"], "Failed");
    let r = t
        .get(&format!("/v1/tenants/{tid}/error-report"), &admin)
        .await;
    let csv = String::from_utf8(r.raw).unwrap();
    let line = csv
        .lines()
        .find(|l| l.starts_with(d.id()))
        .unwrap_or_else(|| panic!("no event for the device: {csv}"));
    assert!(line.contains("UpdateFailed"), "{line}");
    assert!(line.contains("Update"), "{line}");
    assert!(
        line.contains("image 1234 failed verification: \"\"bad signature\"\""),
        "{line}"
    );
    let r = t
        .get(&format!("/v1/tenants/{tb}/error-report"), &admin_b)
        .await;
    assert!(!String::from_utf8(r.raw).unwrap().contains(d.id()));

    // Malformed reports.
    for (what, body, code) in [
        ("unknown state", json!({"state": "Bricked"}), "invalid_body"),
        (
            "unknown field",
            json!({"state": "Checking", "tenantId": tb}),
            "unknown_field",
        ),
        ("no state", json!({"detail": "x"}), ""),
        (
            "detail too long",
            json!({"state": "Failed", "detail": "x".repeat(1025)}),
            "",
        ),
        (
            "too many images",
            json!({"state": "Installed", "installed": vec![installed[0].clone(); 65]}),
            "",
        ),
    ] {
        let (status, body) = report(body).await;
        assert!(status.is_client_error(), "{what}: {status} {body}");
        if !code.is_empty() {
            assert_eq!(body["error"]["code"], code, "{what}: {body}");
        }
    }
    // Unchanged by the refused reports.
    assert_eq!(t.get(&status_url, &admin).await.body["state"], "Failed");

    // Another tenant sees no such device; a malformed ID is a 400.
    let r = t
        .get(
            &format!("/v1/tenants/{tb}/devices/{}/deployment-status", d.id()),
            &admin_b,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = t
        .get(
            &format!("/v1/tenants/{tid}/devices/12/deployment-status"),
            &admin,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Upper-case device IDs name the same device.
    let r = t
        .get(
            &format!(
                "/v1/tenants/{tid}/devices/{}/deployment-status",
                d.id().to_uppercase()
            ),
            &admin,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    s.stop().await;
}

async fn update_now_wakes_waiting_devices(t: &TestApp) {
    let (tid, admin) = t.tenant().await;
    let product = t.product(&tid, &admin, true).await;
    let g = group(t, &tid, &admin, &product, "Retail", "UpdateAll").await;
    let other_group = group(t, &tid, &admin, &product, "Retail", "UpdateAll").await;
    let s = Server::start(t).await;
    let d = certified(t, &s, &tid, &admin).await;
    let bystander = certified(t, &s, &tid, &admin).await;
    move_to(t, &tid, &admin, d.id(), Some(&g)).await;
    move_to(t, &tid, &admin, bystander.id(), Some(&g)).await;
    let (_, reader, _) = t.user(Some((&tid, "Reader", &admin))).await;
    let (_, contributor, _) = t.user(Some((&tid, "Contributor", &admin))).await;
    let signal_url = format!("{}/v1/device/update-signal", s.url);

    // Where the signals stand (none yet).
    let (status, _, body) = dget(&d.http, &signal_url).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"signal": "", "checkNow": false}));

    // A long poll waiting before the signal is given hears of it within about a second.
    let http = d.http.clone();
    let poll_url = format!("{signal_url}?since=&waitSeconds=30");
    let poll = tokio::spawn(async move {
        let (status, _, raw) = send(http.get(&poll_url)).await;
        (status, json_of(&raw), Instant::now())
    });
    t.state.signals.wait_for_waiters(1).await;
    assert!(!poll.is_finished());
    let now_url = format!("/v1/tenants/{tid}/device-groups/{g}/update-now");
    let r = t
        .call(axum::http::Method::POST, &now_url, Some(&reader), None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert!(!poll.is_finished());
    let signalled = Instant::now();
    let r = t
        .call(axum::http::Method::POST, &now_url, Some(&contributor), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["deviceCount"], 2);
    let signal = r.body["signal"].as_str().unwrap().to_string();
    let (status, body, answered) = tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .expect("the long poll answers")
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"signal": signal, "checkNow": true}));
    let latency = answered.duration_since(signalled);
    assert!(latency < Duration::from_millis(2500), "{latency:?}");
    // The other device of the group sees it at once, with the signal as cursor.
    let (status, _, body) = dget(&bystander.http, &format!("{signal_url}?since=")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["checkNow"], true);
    // The first call without `since` now reports the newest signal, without asking to check.
    let (_, _, body) = dget(&d.http, &signal_url).await;
    assert_eq!(body, json!({"signal": signal, "checkNow": false}));

    // No newer signal: 204 after waitSeconds; a signal to another group does not wake it.
    let started = Instant::now();
    let http = d.http.clone();
    let poll_url = format!("{signal_url}?since={signal}&waitSeconds=3");
    let poll = tokio::spawn(async move { send(http.get(&poll_url)).await.0 });
    t.state.signals.wait_for_waiters(1).await;
    let r = t
        .call(
            axum::http::Method::POST,
            &format!("/v1/tenants/{tid}/device-groups/{other_group}/update-now"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["deviceCount"], 0);
    assert_eq!(poll.await.unwrap(), StatusCode::NO_CONTENT);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_secs(6),
        "{waited:?}"
    );
    // waitSeconds=0 answers at once.
    let (status, _, _) = dget(&d.http, &format!("{signal_url}?since={signal}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // Per device: only that device is told.
    let http = d.http.clone();
    let poll_url = format!("{signal_url}?since={signal}&waitSeconds=30");
    let poll = tokio::spawn(async move {
        let (status, _, raw) = send(http.get(&poll_url)).await;
        (status, json_of(&raw))
    });
    t.state.signals.wait_for_waiters(1).await;
    let r = t
        .call(
            axum::http::Method::POST,
            &format!("/v1/tenants/{tid}/devices/{}/update-now", d.id()),
            Some(&reader),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = t
        .call(
            axum::http::Method::POST,
            &format!("/v1/tenants/{tid}/devices/{}/update-now", d.id()),
            Some(&contributor),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["deviceCount"], 1);
    let device_signal = r.body["signal"].as_str().unwrap().to_string();
    assert!(device_signal > signal);
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .expect("the long poll answers")
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["signal"], device_signal.as_str());
    let (status, _, _) = dget(&bystander.http, &format!("{signal_url}?since={signal}")).await;
    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "the per-device signal is not the group's"
    );

    // Bad waits; other tenants' groups and devices are missing; audit rows are written.
    // Malformed queries are the JSON error body like everywhere else (`invalid_query`).
    for bad in [
        "since=&waitSeconds=301",
        "waitSeconds=-1",
        "waitSeconds=soon",
        "since=&wait=5",
    ] {
        let (status, _, body) = dget(&d.http, &format!("{signal_url}?{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "invalid_query", "{bad}: {body}");
    }
    let (tb, admin_b) = t.tenant().await;
    let r = t
        .call(
            axum::http::Method::POST,
            &format!("/v1/tenants/{tb}/device-groups/{g}/update-now"),
            Some(&admin_b),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = t
        .call(
            axum::http::Method::POST,
            &format!("/v1/tenants/{tb}/devices/{}/update-now", d.id()),
            Some(&admin_b),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        t.count("SELECT COUNT(*) FROM audit_log WHERE action = 'update.now'")
            .await,
        3
    );
    s.stop().await;
}

/// A long poll may wait longer than the request timeout (30 s by default): the update-signal
/// route gets `waitSeconds` on top of it instead of a 504.
mod long_poll_outlives_the_request_timeout {
    use super::*;
    use common::Backend;

    async fn run(backend: Backend) {
        let config = ferro_service::Config {
            request_timeout: Duration::from_secs(1),
            ..common::test_config()
        };
        let t = TestApp::with_config(backend, config).await;
        let (tid, admin) = t.tenant().await;
        let s = Server::start(&t).await;
        let d = certified(&t, &s, &tid, &admin).await;
        let started = Instant::now();
        let (status, _, body) = dget(
            &d.http,
            &format!("{}/v1/device/update-signal?since=&waitSeconds=3", s.url),
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        assert!(started.elapsed() >= Duration::from_secs(3));
        s.stop().await;
        t.finish().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        run(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        run(Backend::Postgres).await;
    }
}
