//! Attestation (docs/attestation.md), on SQLite and PostgreSQL: the trusted path (certificate
//! checked with `openssl verify` against the tenant chain), every refusal with its reason code,
//! results recorded on the device, the device client over HTTPS, and Mosquitto accepting the
//! device certificate with the key in the root of trust.

mod common;

use axum::http::StatusCode;
use base64ct::{Base64UrlUnpadded, Encoding};
use common::devices::{
    attest, boot, challenge, claimed, evidence, new_rot, os_boot_event, register, serve_https,
    submit,
};
use common::{Backend, TestApp, b64};
use ferro_trust::{MeasurementEvent, RootOfTrust};
use serde_json::{Value, json};
use std::process::Command;

both!(
    trusted_path_issues_tenant_certificate,
    attacks_are_refused,
    measurements_are_appraised,
    os_measurement_is_appraised,
    revoked_os_releases_are_refused,
    feed_minimum_security_version_is_enforced,
    debug_needs_app_development,
    device_client_and_mosquitto,
);

fn codes(v: &Value) -> Vec<String> {
    v["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap().to_string())
        .collect()
}

fn assert_untrusted(v: &Value, code: &str) {
    assert_eq!(v["verdict"], "Untrusted", "{v}");
    assert!(codes(v).contains(&code.to_string()), "want {code}: {v}");
    assert!(v.get("certificatePem").is_none(), "{v}");
}

fn openssl(dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

async fn chain(t: &TestApp, tid: &str, admin: &str) -> Vec<u8> {
    t.get(&format!("/v1/tenants/{tid}/ca-certificates/chain"), admin)
        .await
        .raw
}

async fn trusted_path_issues_tenant_certificate(t: &TestApp) {
    let (tid, admin) = t.tenant().await;
    let (tb, admin_b) = t.tenant().await;
    let d = claimed(t, &tid, &admin).await;
    let v = attest(t, &d).await;
    assert_eq!(v["verdict"], "Trusted", "{v}");
    assert_eq!(codes(&v).len(), 0);
    let not_after = time::OffsetDateTime::parse(
        v["notAfter"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let life = not_after - time::OffsetDateTime::now_utc();
    assert!(
        life <= time::Duration::hours(24) && life > time::Duration::hours(23),
        "{life}"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("device.pem"),
        v["certificatePem"].as_str().unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("returned.pem"),
        v["caChainPem"].as_str().unwrap(),
    )
    .unwrap();
    std::fs::write(dir.path().join("a.pem"), chain(t, &tid, &admin).await).unwrap();
    std::fs::write(dir.path().join("b.pem"), chain(t, &tb, &admin_b).await).unwrap();
    for ca in ["a.pem", "returned.pem"] {
        let (ok, out) = openssl(
            dir.path(),
            &[
                "verify",
                "-x509_strict",
                "-purpose",
                "sslclient",
                "-CAfile",
                ca,
                "device.pem",
            ],
        );
        assert!(ok, "{out}");
    }
    // Tenant B's chain does not accept tenant A's device.
    let (ok, out) = openssl(dir.path(), &["verify", "-CAfile", "b.pem", "device.pem"]);
    assert!(!ok, "{out}");
    let (_, subject) = openssl(
        dir.path(),
        &[
            "x509",
            "-noout",
            "-subject",
            "-nameopt",
            "RFC2253",
            "-in",
            "device.pem",
        ],
    );
    assert!(subject.contains(&format!("CN={}", d.id)), "{subject}");
    assert!(subject.contains(&format!("O={tid}")), "{subject}");
    // Recorded on the device, shown by GET (and so by `ferro device show`).
    let r = t
        .get(&format!("/v1/tenants/{tid}/devices/{}", d.id), &admin)
        .await;
    assert_eq!(r.body["lastAttestationResult"], "Trusted", "{:?}", r.body);
    assert_eq!(r.body["lastAttestationReasons"], json!([]));
    assert!(r.body["lastAttestedAt"].is_string());
    // A device cannot ask for another tenant's certificate: the body has no tenant, and an
    // extra field is refused.
    let n = challenge(t, &d.id).await;
    let r = t
        .call(
            axum::http::Method::POST,
            "/v1/attestation/evidence",
            None,
            Some(
                json!({"deviceId": d.id, "nonce": n, "evidence": b64(&evidence(&d.rot, &n)),
                "tenantId": tb}),
            ),
        )
        .await;
    assert_eq!(r.code(), "unknown_field", "{:?}", r.body);
    // Tenant B cannot see A's device.
    let r = t
        .get(&format!("/v1/tenants/{tb}/devices/{}", d.id), &admin_b)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

async fn attacks_are_refused(t: &TestApp) {
    let (tid, admin) = t.tenant().await;
    let d = claimed(t, &tid, &admin).await;
    boot(t, &d).await;
    // Replayed nonce: the same evidence twice.
    let n = challenge(t, &d.id).await;
    let ev = evidence(&d.rot, &n);
    assert_eq!(submit(t, &d.id, &n, &ev).await["verdict"], "Trusted");
    assert_untrusted(&submit(t, &d.id, &n, &ev).await, "nonce_replayed");
    // A nonce never issued.
    let fake = Base64UrlUnpadded::encode_string(&[7u8; 32]);
    assert_untrusted(
        &submit(t, &d.id, &fake, &evidence(&d.rot, &fake)).await,
        "nonce_unknown",
    );
    // A nonce issued to another device.
    let other = claimed(t, &tid, &admin).await;
    let n_other = challenge(t, &other.id).await;
    assert_untrusted(
        &submit(t, &d.id, &n_other, &evidence(&d.rot, &n_other)).await,
        "nonce_unknown",
    );
    // Evidence signed by another key (another device's RoT) for this device's nonce.
    let n = challenge(t, &d.id).await;
    assert_untrusted(
        &submit(t, &d.id, &n, &evidence(&other.rot, &n)).await,
        "bad_signature",
    );
    // ... which did not spend the nonce: only the device key's answer does, so a stranger
    // cannot burn a device's challenge.
    assert_eq!(
        submit(t, &d.id, &n, &evidence(&d.rot, &n)).await["verdict"],
        "Trusted"
    );
    // Single use across challenges: once a newer challenge is answered, an older one still
    // outstanding is spent too.
    let older = challenge(t, &d.id).await;
    let newer = challenge(t, &d.id).await;
    assert_eq!(
        submit(t, &d.id, &newer, &evidence(&d.rot, &newer)).await["verdict"],
        "Trusted"
    );
    assert_untrusted(
        &submit(t, &d.id, &older, &evidence(&d.rot, &older)).await,
        "nonce_replayed",
    );
    // A nonce with one bit changed (its time, random part or tag) is not ours.
    let mut raw = Base64UrlUnpadded::decode_vec(&challenge(t, &d.id).await).unwrap();
    raw[3] ^= 1;
    let forged = Base64UrlUnpadded::encode_string(&raw);
    assert_untrusted(
        &submit(t, &d.id, &forged, &evidence(&d.rot, &forged)).await,
        "nonce_unknown",
    );
    // Evidence for another nonce than submitted.
    let n1 = challenge(t, &d.id).await;
    let n2 = challenge(t, &d.id).await;
    assert_untrusted(
        &submit(t, &d.id, &n1, &evidence(&d.rot, &n2)).await,
        "nonce_mismatch",
    );
    // None of these is recorded on the device: they prove nothing about who sent them (a
    // stranger's signature, a captured evidence replayed with a fresh nonce).
    let r = t
        .get(&format!("/v1/tenants/{tid}/devices/{}", d.id), &admin)
        .await;
    assert_eq!(r.body["lastAttestationResult"], "Trusted", "{:?}", r.body);
    assert_eq!(r.body["lastAttestationReasons"], json!([]));
    // Evidence the device key signed over the fresh nonce but that fails later checks is the
    // device's own statement: recorded (here it names another device).
    let n = challenge(t, &d.id).await;
    let mut claims = ferro_trust::evidence::decode_claims(
        &ferro_signing::parse_unverified(&evidence(&d.rot, &n))
            .unwrap()
            .unverified_payload,
    )
    .unwrap();
    claims.device_id = other.rot.device_id();
    let signed = ferro_signing::sign1(
        d.rot.device_key().as_ref(),
        ferro_signing::Purpose::AttestationEvidence,
        &ferro_trust::evidence::encode_claims(&claims).unwrap(),
        &[],
    )
    .unwrap();
    assert_untrusted(&submit(t, &d.id, &n, &signed).await, "wrong_device");
    let r = t
        .get(&format!("/v1/tenants/{tid}/devices/{}", d.id), &admin)
        .await;
    assert_eq!(r.body["lastAttestationResult"], "Untrusted", "{:?}", r.body);
    assert_eq!(r.body["lastAttestationReasons"][0]["code"], "wrong_device");
    // ... and the other device's record is untouched.
    let r = t
        .get(&format!("/v1/tenants/{tid}/devices/{}", other.id), &admin)
        .await;
    assert!(r.body["lastAttestationResult"].is_null(), "{:?}", r.body);
    // A software device cannot send TPM-kind evidence either.
    let n = challenge(t, &d.id).await;
    let mut claims = ferro_trust::evidence::decode_claims(
        &ferro_signing::parse_unverified(&evidence(&d.rot, &n))
            .unwrap()
            .unverified_payload,
    )
    .unwrap();
    claims.root_of_trust = ferro_trust::RootOfTrustKind::Tpm;
    let signed = ferro_signing::sign1(
        d.rot.device_key().as_ref(),
        ferro_signing::Purpose::AttestationEvidence,
        &ferro_trust::evidence::encode_claims(&claims).unwrap(),
        &[],
    )
    .unwrap();
    assert_untrusted(&submit(t, &d.id, &n, &signed).await, "quote_mismatch");
    assert_eq!(attest(t, &d).await["verdict"], "Trusted");
    // Unregistered: still gets a nonce (no registration oracle on the challenge route).
    let u = new_rot();
    assert_untrusted(&attest(t, &u).await, "unregistered");
    // Registered, unclaimed.
    let uc = new_rot();
    register(t, &uc).await;
    assert_untrusted(&attest(t, &uc).await, "unclaimed");
    // Blocked by the tenant's administrator (a Contributor may not; nothing changes then).
    let b = claimed(t, &tid, &admin).await;
    let device_path = format!("/v1/tenants/{tid}/devices/{}", b.id);
    let (_, contributor, _) = t.user(Some((&tid, "Contributor", &admin))).await;
    let block = |blocked: bool| json!({ "blocked": blocked });
    let r = t.patch(&device_path, &contributor, block(true)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert_eq!(attest(t, &b).await["verdict"], "Trusted");
    let r = t.patch(&device_path, &admin, block(true)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["blocked"], true);
    assert_eq!(
        t.count(&format!(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'device.block' AND object_id = '{}'",
            b.id
        ))
        .await,
        1
    );
    let blocked = attest(t, &b).await;
    assert_untrusted(&blocked, "blocked");
    assert!(
        blocked["certificatePem"].is_null(),
        "no certificate while blocked"
    );
    let r = t.get(&device_path, &admin).await;
    assert_eq!(r.body["blocked"], true);
    assert_eq!(r.body["lastAttestationResult"], "Untrusted");
    assert_eq!(r.body["lastAttestationReasons"][0]["code"], "blocked");
    // Unblocked: trusted again at the next attestation.
    let r = t.patch(&device_path, &admin, block(false)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["blocked"], false);
    assert_eq!(attest(t, &b).await["verdict"], "Trusted");
    // Malformed requests are 422 (not an appraisal).
    let r = t
        .call(
            axum::http::Method::POST,
            "/v1/attestation/challenge",
            None,
            Some(json!({"deviceId": "xyz"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    // Challenges are stateless: any number may be asked (nothing is stored), each a new nonce.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..20 {
        let r = t
            .call(
                axum::http::Method::POST,
                "/v1/attestation/challenge",
                None,
                Some(json!({"deviceId": u.id})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(seen.insert(r.body["nonce"].as_str().unwrap().to_string()));
    }
}

async fn measurements_are_appraised(t: &TestApp) {
    use sqlx::Row;
    let (tid, admin) = t.tenant().await;
    let image_id = t.image(&tid, &admin).await;
    let os_id = t.os_release("Retail").await;
    let row = sqlx::query("SELECT component_id, payload_sha256 FROM images WHERE image_id = $1")
        .bind(&image_id)
        .fetch_one(t.db.pool())
        .await
        .unwrap();
    let component: String = row.try_get("component_id").unwrap();
    let app_digest: String = row.try_get("payload_sha256").unwrap();
    let os_digest: String =
        sqlx::query("SELECT payload_sha256 FROM os_releases WHERE image_id = $1")
            .bind(&os_id)
            .fetch_one(t.db.pool())
            .await
            .unwrap()
            .try_get("payload_sha256")
            .unwrap();
    let ev = |component: uuid::Uuid, image: &str, digest: &str| MeasurementEvent {
        component_id: component,
        image_id: image.parse().unwrap(),
        version: "1.0.0".into(),
        digest: hex::decode(digest).unwrap().try_into().unwrap(),
    };
    let os_event = ev(ferro_image::OS_COMPONENT_ID, &os_id, &os_digest);
    let app_event = ev(component.parse().unwrap(), &image_id, &app_digest);
    // Known OS release + tenant image: trusted.
    let d = claimed(t, &tid, &admin).await;
    d.rot.extend_measurement(&os_event).unwrap();
    d.rot.extend_measurement(&app_event).unwrap();
    assert_eq!(attest(t, &d).await["verdict"], "Trusted");
    // Tampered app image (same image ID, other digest).
    let d = claimed(t, &tid, &admin).await;
    d.rot.extend_measurement(&os_event).unwrap();
    d.rot
        .extend_measurement(&ev(component.parse().unwrap(), &image_id, &"ab".repeat(32)))
        .unwrap();
    assert_untrusted(&attest(t, &d).await, "unknown_measurement");
    // Unknown OS image.
    let d = claimed(t, &tid, &admin).await;
    d.rot
        .extend_measurement(&ev(
            ferro_image::OS_COMPONENT_ID,
            &uuid::Uuid::new_v4().to_string(),
            &os_digest,
        ))
        .unwrap();
    assert_untrusted(&attest(t, &d).await, "unknown_measurement");
    // Another tenant's image is unknown to this one (test-signed from its point of view).
    let (tb, admin_b) = t.tenant().await;
    let d = claimed(t, &tb, &admin_b).await;
    d.rot.extend_measurement(&os_event).unwrap();
    d.rot.extend_measurement(&app_event).unwrap();
    let v = attest(t, &d).await;
    assert_untrusted(&v, "test_signed_without_capability");
    let r = t
        .get(&format!("/v1/tenants/{tb}/devices/{}", d.id), &admin_b)
        .await;
    assert_eq!(
        r.body["lastAttestationReasons"][0]["code"],
        "test_signed_without_capability"
    );
    // With an AppDevelopment capability issued by the service, the test-signed image passes;
    // FieldServicing does not count.
    let r = t
        .post(
            &format!("/v1/tenants/{tb}/devices/{}/capabilities", d.id),
            &admin_b,
            json!({"type": "FieldServicing"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_untrusted(&attest(t, &d).await, "test_signed_without_capability");
    t.developer_key(&tb, &admin_b).await;
    let r = t
        .post(
            &format!("/v1/tenants/{tb}/devices/{}/capabilities", d.id),
            &admin_b,
            json!({"type": "AppDevelopment"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let v = attest(t, &d).await;
    assert_eq!(v["verdict"], "Trusted", "{v}");
    // Revoked at the service, AppDevelopment no longer counts (the device still holds its file).
    let caps = format!("/v1/tenants/{tb}/devices/{}/capabilities", d.id);
    let r = t.delete(&format!("{caps}/AppDevelopment"), &admin_b).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["revoked"], 1);
    assert_eq!(r.body["type"], "AppDevelopment");
    assert_untrusted(&attest(t, &d).await, "test_signed_without_capability");
    // Nothing left to revoke; an unknown kind is refused and changes nothing.
    let r = t.delete(&format!("{caps}/AppDevelopment"), &admin_b).await;
    assert_eq!(r.body["revoked"], 0);
    let r = t.delete(&format!("{caps}/Debugging"), &admin_b).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    // A new AppDevelopment capability counts again.
    let r = t
        .post(&caps, &admin_b, json!({"type": "AppDevelopment"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(attest(t, &d).await["verdict"], "Trusted");
}

/// The evidence of `d` for a fresh challenge, submitted as is (no boot added).
async fn attest_as_is(t: &TestApp, d: &common::devices::Dev) -> Value {
    let n = challenge(t, &d.id).await;
    submit(t, &d.id, &n, &evidence(&d.rot, &n)).await
}

/// The OS image the target set of an attestation answer offers (decoded, the service's own).
fn offered_os(v: &Value) -> Option<String> {
    let signed = base64ct::Base64::decode_vec(v["targetSet"]["targetSet"].as_str()?).unwrap();
    let env = ferro_signing::parse_unverified(&signed).unwrap();
    let set = ferro_pki::TargetSet::from_cbor(&env.unverified_payload).unwrap();
    set.images
        .iter()
        .find(|i| i.kind == ferro_pki::TargetKind::Os)
        .map(|i| i.image_id.to_string())
}

/// Attacks on the OS measurement: an empty or app-only log, an OS measured after an app or
/// twice, a RetailEval release on a Retail device. Each was Trusted before the OS rules.
async fn os_measurement_is_appraised(t: &TestApp) {
    let (tid, admin) = t.tenant().await;
    let os = os_boot_event(t).await;
    let app = {
        use sqlx::Row;
        let image_id = t.image(&tid, &admin).await;
        let row =
            sqlx::query("SELECT component_id, payload_sha256 FROM images WHERE image_id = $1")
                .bind(&image_id)
                .fetch_one(t.db.pool())
                .await
                .unwrap();
        MeasurementEvent {
            component_id: row
                .try_get::<String, _>("component_id")
                .unwrap()
                .parse()
                .unwrap(),
            image_id: image_id.parse().unwrap(),
            version: "1.0.0".into(),
            digest: hex::decode(row.try_get::<String, _>("payload_sha256").unwrap())
                .unwrap()
                .try_into()
                .unwrap(),
        }
    };
    // An empty log: nothing says which OS runs.
    let d = claimed(t, &tid, &admin).await;
    let v = attest_as_is(t, &d).await;
    assert_untrusted(&v, "os_measurement_missing");
    assert_eq!(codes(&v), ["os_measurement_missing"]);
    // Apps only.
    d.rot.extend_measurement(&app).unwrap();
    let v = attest_as_is(t, &d).await;
    assert_eq!(codes(&v), ["os_measurement_missing"], "{v}");
    // The OS after an app.
    d.rot.extend_measurement(&os).unwrap();
    let v = attest_as_is(t, &d).await;
    assert_eq!(codes(&v), ["os_not_first"], "{v}");
    // Two OS measurements.
    let d = claimed(t, &tid, &admin).await;
    d.rot.extend_measurement(&os).unwrap();
    d.rot.extend_measurement(&os).unwrap();
    let v = attest_as_is(t, &d).await;
    assert_eq!(codes(&v), ["multiple_os_measurements"], "{v}");
    // The OS first, then the app: Trusted.
    let d = claimed(t, &tid, &admin).await;
    d.rot.extend_measurement(&os).unwrap();
    d.rot.extend_measurement(&app).unwrap();
    assert_eq!(attest_as_is(t, &d).await["verdict"], "Trusted");
    // A RetailEval release on a device in no group (Retail) or in a Retail group is refused;
    // in a RetailEval group it is trusted.
    t.os_release("RetailEval").await;
    let eval = {
        use sqlx::Row;
        let row = sqlx::query(
            "SELECT image_id, payload_sha256 FROM os_releases WHERE retail_at IS NULL \
             ORDER BY id DESC LIMIT 1",
        )
        .fetch_one(t.db.pool())
        .await
        .unwrap();
        MeasurementEvent {
            image_id: row
                .try_get::<String, _>("image_id")
                .unwrap()
                .parse()
                .unwrap(),
            digest: hex::decode(row.try_get::<String, _>("payload_sha256").unwrap())
                .unwrap()
                .try_into()
                .unwrap(),
            ..os.clone()
        }
    };
    let d = claimed(t, &tid, &admin).await;
    d.rot.extend_measurement(&eval).unwrap();
    let v = attest_as_is(t, &d).await;
    assert_eq!(codes(&v), ["os_release_not_in_feed"], "{v}");
    let product = t.product(&tid, &admin, true).await;
    let mut groups = Vec::new();
    for feed in ["Retail", "RetailEval"] {
        let r = t
            .post(
                &format!("/v1/tenants/{tid}/device-groups"),
                &admin,
                json!({"productId": product, "name": format!("G {}", common::uniq()),
                    "osFeed": feed}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        groups.push(r.body["id"].as_str().unwrap().to_string());
    }
    let move_to = |group: String| {
        let path = format!("/v1/tenants/{tid}/devices/{}", d.id);
        let admin = admin.clone();
        async move {
            let r = t
                .call(
                    axum::http::Method::PATCH,
                    &path,
                    Some(&admin),
                    Some(json!({ "deviceGroupId": group })),
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        }
    };
    move_to(groups[0].clone()).await;
    assert_eq!(
        codes(&attest_as_is(t, &d).await),
        ["os_release_not_in_feed"]
    );
    move_to(groups[1].clone()).await;
    assert_eq!(attest_as_is(t, &d).await["verdict"], "Trusted");
}

/// A revoked release: refused at attestation, never offered again, revocation by the platform
/// operator only, audited.
async fn revoked_os_releases_are_refused(t: &TestApp) {
    let (tid, admin) = t.tenant().await;
    let old = os_boot_event(t).await;
    let d = claimed(t, &tid, &admin).await;
    boot(t, &d).await;
    let v = attest_as_is(t, &d).await;
    assert_eq!(v["verdict"], "Trusted", "{v}");
    assert_eq!(offered_os(&v), Some(old.image_id.to_string()));
    let newer = t.os_release("Retail").await;
    // Only the platform operator revokes; a tenant Administrator is refused and changes nothing.
    let path = format!("/v1/os-releases/{}/revoke", old.image_id);
    let r = t.post(&path, &admin, json!({})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert_eq!(attest_as_is(t, &d).await["verdict"], "Trusted");
    let r = t
        .post(
            &format!("/v1/os-releases/{}/revoke", uuid::Uuid::new_v4()),
            &t.operator,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
    // Also the newest release can be revoked: the feed then offers the one before it.
    let r = t
        .post(
            &format!("/v1/os-releases/{newer}/revoke"),
            &t.operator,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert!(r.body["revokedAt"].is_string(), "{:?}", r.body);
    let v = attest_as_is(t, &d).await;
    assert_eq!(v["verdict"], "Trusted", "{v}");
    assert_eq!(offered_os(&v), Some(old.image_id.to_string()));
    // The release the device runs is revoked: Untrusted, and no revoked release is offered.
    let r = t.post(&path, &t.operator, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let at = r.body["revokedAt"].clone();
    let v = attest_as_is(t, &d).await;
    assert_eq!(codes(&v), ["os_release_revoked"], "{v}");
    assert_eq!(offered_os(&v), None, "{v}");
    // Revoking again answers it unchanged; a revoked release cannot be promoted or be listed
    // without its revocation.
    let r = t.post(&path, &t.operator, json!({})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["revokedAt"], at);
    let r = t
        .get(&format!("/v1/os-releases/{}", old.image_id), &admin)
        .await;
    assert_eq!(r.body["revokedAt"], at);
    let eval = t.os_release("RetailEval").await;
    let r = t
        .post(
            &format!("/v1/os-releases/{eval}/revoke"),
            &t.operator,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = t
        .post(
            &format!("/v1/os-releases/{eval}/promote"),
            &t.operator,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    // Audited.
    use sqlx::Row;
    let n: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM audit_log WHERE action = 'os_release.revoke' AND object_id = $1",
    )
    .bind(old.image_id.to_string())
    .fetch_one(t.db.pool())
    .await
    .unwrap()
    .try_get("n")
    .unwrap();
    assert_eq!(n, 1);
}

/// A feed's minimum security version: releases below it are neither trusted nor offered; set by
/// the platform operator only, never above the feed's newest live release, audited.
async fn feed_minimum_security_version_is_enforced(t: &TestApp) {
    let (tid, admin) = t.tenant().await;
    let d = claimed(t, &tid, &admin).await;
    boot(t, &d).await; // a security version 0 release
    assert_eq!(attest_as_is(t, &d).await["verdict"], "Trusted");
    let r = t.get("/v1/os-feeds", &admin).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body[0]["feed"], "Retail");
    assert_eq!(r.body[0]["minimumSecurityVersion"], 0);
    let set = move |who: String, feed: &'static str, v: u32| async move {
        t.call(
            axum::http::Method::PATCH,
            &format!("/v1/os-feeds/{feed}"),
            Some(&who),
            Some(json!({ "minimumSecurityVersion": v })),
        )
        .await
    };
    // Refused, changing nothing: a tenant Administrator; a minimum no live release meets; a
    // feed that does not exist; a malformed body.
    let r = set(admin.clone(), "Retail", 1).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    let r = set(t.operator.clone(), "Retail", 1).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("publish"),
        "{:?}",
        r.body
    );
    let r = set(t.operator.clone(), "Beta", 0).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    let r = t
        .call(
            axum::http::Method::PATCH,
            "/v1/os-feeds/Retail",
            Some(&t.operator),
            Some(json!({ "minimumSecurityVersion": -1 })),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(attest_as_is(t, &d).await["verdict"], "Trusted");
    // A RetailEval release with security version 1 does not make Retail's minimum 1 possible.
    t.os_release_with("RetailEval", 1).await;
    let r = set(t.operator.clone(), "Retail", 1).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    // With a Retail release of security version 1, the minimum rises; the device's release is
    // below it: Untrusted, and offered the new one.
    let fixed = t.os_release_with("Retail", 1).await;
    let r = set(t.operator.clone(), "Retail", 1).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["minimumSecurityVersion"], 1);
    let v = attest_as_is(t, &d).await;
    assert_eq!(codes(&v), ["os_below_minimum_security_version"], "{v}");
    assert_eq!(offered_os(&v), Some(fixed.clone()));
    // A device that runs the fixed release is trusted.
    let d2 = claimed(t, &tid, &admin).await;
    boot(t, &d2).await;
    assert_eq!(attest_as_is(t, &d2).await["verdict"], "Trusted");
    // A newer release below the minimum is not offered: the fixed one still is.
    let low = t.os_release_with("Retail", 0).await;
    assert_eq!(offered_os(&attest_as_is(t, &d2).await), Some(fixed.clone()));
    // Lowering undoes it (audited like raising).
    let r = set(t.operator.clone(), "Retail", 0).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let v = attest_as_is(t, &d).await;
    assert_eq!(v["verdict"], "Trusted", "{v}");
    assert_eq!(offered_os(&v), Some(low));
    use sqlx::Row;
    let n: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM audit_log WHERE action = 'os_feed.set_minimum_security_version'",
    )
    .fetch_one(t.db.pool())
    .await
    .unwrap()
    .try_get("n")
    .unwrap();
    assert_eq!(n, 2);
}

/// Evidence that says debugging is enabled is refused unless the device holds AppDevelopment.
async fn debug_needs_app_development(t: &TestApp) {
    use ferro_trust::evidence::{DebugStatus, create_evidence};
    let (tid, admin) = t.tenant().await;
    let d = claimed(t, &tid, &admin).await;
    boot(t, &d).await;
    let dev = &d;
    let debug_attest = move || async move {
        let n = challenge(t, &dev.id).await;
        let raw = Base64UrlUnpadded::decode_vec(&n).unwrap();
        let ev = create_evidence(&dev.rot, &raw, DebugStatus::Enabled).unwrap();
        submit(t, &dev.id, &n, &ev).await
    };
    let v = debug_attest().await;
    assert_eq!(codes(&v), ["debug_without_capability"], "{v}");
    // FieldServicing does not allow debugging.
    let caps = format!("/v1/tenants/{tid}/devices/{}/capabilities", d.id);
    let r = t
        .post(&caps, &admin, json!({"type": "FieldServicing"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(codes(&debug_attest().await), ["debug_without_capability"]);
    t.developer_key(&tid, &admin).await;
    let r = t
        .post(&caps, &admin, json!({"type": "AppDevelopment"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(debug_attest().await["verdict"], "Trusted");
    // Revoked: refused again.
    let r = t.delete(&format!("{caps}/AppDevelopment"), &admin).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(codes(&debug_attest().await), ["debug_without_capability"]);
    // Debugging disabled needs nothing.
    assert_eq!(attest_as_is(t, &d).await["verdict"], "Trusted");
}

/// Put the device in a new group of a new product; returns the product.
async fn in_a_product(t: &TestApp, tid: &str, admin: &str, did: &str) -> String {
    let product = t.product(tid, admin, false).await;
    let r = t
        .post(
            &format!("/v1/tenants/{tid}/device-groups"),
            admin,
            json!({"productId": product, "name": format!("G {}", common::uniq())}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let group = r.body["id"].as_str().unwrap().to_string();
    let r = t
        .patch(
            &format!("/v1/tenants/{tid}/devices/{did}"),
            admin,
            json!({ "deviceGroupId": group }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    product
}

/// Stage 0 for software roots of trust (docs/attestation.md, "Firmware appraisal"): their
/// evidence says "no firmware measurements". Appraised without stage 0 by default (recorded as
/// `NotAppraised`); refused where reference values apply (registered for the product), and,
/// under the operator's `require_firmware_reference_values`, refused in no group or a product
/// without values.
mod firmware_reference_values {
    use super::*;

    async fn device_firmware(t: &TestApp, tid: &str, admin: &str, did: &str) -> Value {
        let r = t
            .get(&format!("/v1/tenants/{tid}/devices/{did}"), admin)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        assert!(
            r.body["lastFirmwarePcrs"].is_null(),
            "software: no PCRs {:?}",
            r.body
        );
        r.body["lastAttestationFirmware"].clone()
    }

    async fn register_value(t: &TestApp, tid: &str, admin: &str, product: &str) {
        let r = t
            .post(
                &format!("/v1/tenants/{tid}/products/{product}/firmware-references"),
                admin,
                json!({"pcrs": vec!["11".repeat(32); 8]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    }

    async fn run(backend: Backend, required: bool) {
        let config = ferro_service::Config {
            require_firmware_reference_values: required,
            ..common::test_config()
        };
        let t = TestApp::with_config(backend, config).await;
        let (tid, admin) = t.tenant().await;
        let d = claimed(&t, &tid, &admin).await;
        // In no group.
        let v = attest(&t, &d).await;
        if required {
            assert_untrusted(&v, "no_firmware_reference_values");
            assert_eq!(device_firmware(&t, &tid, &admin, &d.id).await, "Refused");
        } else {
            assert_eq!(v["verdict"], "Trusted", "{v}");
            assert_eq!(
                device_firmware(&t, &tid, &admin, &d.id).await,
                "NotAppraised"
            );
        }
        // In a product without values.
        let product = in_a_product(&t, &tid, &admin, &d.id).await;
        let v = attest(&t, &d).await;
        if required {
            assert_untrusted(&v, "no_firmware_reference_values");
        } else {
            assert_eq!(v["verdict"], "Trusted", "{v}");
        }
        // Values registered: a software root of trust has nothing to match them with.
        register_value(&t, &tid, &admin, &product).await;
        assert_untrusted(&attest(&t, &d).await, "firmware_measurements_missing");
        assert_eq!(device_firmware(&t, &tid, &admin, &d.id).await, "Refused");
        t.finish().await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        run(Backend::Sqlite, false).await;
        run(Backend::Sqlite, true).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        run(Backend::Postgres, false).await;
        run(Backend::Postgres, true).await;
    }
}

mod expired_nonce {
    use super::*;
    async fn run(backend: Backend) {
        let config = ferro_service::Config {
            attestation_nonce_ttl: std::time::Duration::from_millis(300),
            ..common::test_config()
        };
        let t = TestApp::with_config(backend, config).await;
        let (tid, admin) = t.tenant().await;
        let d = claimed(&t, &tid, &admin).await;
        let n = challenge(&t, &d.id).await;
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
        assert_untrusted(
            &submit(&t, &d.id, &n, &evidence(&d.rot, &n)).await,
            "nonce_expired",
        );
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

struct Broker {
    mosquitto: ferro_e2e::mosquitto::Mosquitto,
    _dir: tempfile::TempDir,
    server_ca: String,
}

impl Broker {
    fn port(&self) -> u16 {
        self.mosquitto.ports[0]
    }
}

/// Mosquitto with TLS and `require_certificate true`, trusting `client_ca_pem` for clients.
fn mosquitto(client_ca_pem: &[u8]) -> Broker {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("clients.pem"), client_ca_pem).unwrap();
    let run = |args: &[&str]| {
        let (ok, out) = openssl(p, args);
        assert!(ok, "{args:?}: {out}");
    };
    run(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        "ca.key",
    ]);
    run(&[
        "req",
        "-x509",
        "-new",
        "-key",
        "ca.key",
        "-subj",
        "/CN=broker test CA",
        "-days",
        "2",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        "server.key",
    ]);
    run(&[
        "req",
        "-new",
        "-key",
        "server.key",
        "-subj",
        "/CN=127.0.0.1",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        p.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.pem",
    ]);
    // Fresh ports, started again if one was taken before mosquitto could bind it.
    let mosquitto = ferro_e2e::mosquitto::Mosquitto::start(p, 1, |ports| {
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\nrequire_certificate true\n\
             cafile {d}/clients.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\n\
             persistence false\n",
            port = ports[0],
            d = p.display()
        )
    });
    let server_ca = std::fs::read_to_string(p.join("ca.pem")).unwrap();
    Broker {
        mosquitto,
        _dir: dir,
        server_ca,
    }
}

/// Connect and publish with QoS 1; Ok once the broker acknowledged the publish.
async fn mqtt_publish(port: u16, config: rustls::ClientConfig) -> Result<(), String> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
    let mut opts = MqttOptions::new(format!("dev{}", common::uniq()), "127.0.0.1", port);
    opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
        std::sync::Arc::new(config),
    )));
    let (client, mut events) = AsyncClient::new(opts, 10);
    client
        .publish("ferro/test", QoS::AtLeastOnce, false, b"hello".to_vec())
        .await
        .map_err(|e| e.to_string())?;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let ev = tokio::time::timeout_at(deadline, events.poll())
            .await
            .map_err(|_| "timeout".to_string())?;
        match ev {
            Ok(Event::Incoming(Packet::PubAck(_))) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

async fn device_client_and_mosquitto(t: &TestApp) {
    let (tid, admin) = t.tenant().await;
    let (tb, admin_b) = t.tenant().await;
    let a = claimed(t, &tid, &admin).await;
    let b = claimed(t, &tb, &admin_b).await;
    boot(t, &a).await;
    boot(t, &b).await;
    let (url, root, stop, h) = serve_https(t).await;
    let conn = ferro_attest::ServiceConnection::new(&url, &root).unwrap();
    let certs = tempfile::tempdir().unwrap();
    let mut mgr = ferro_attest::CertificateManager::open(certs.path(), Default::default()).unwrap();
    let now = time::OffsetDateTime::now_utc();
    assert_eq!(mgr.next_attempt(now), now, "no certificate: attest now");
    let (outcome, next) = mgr.tick(&a.rot, &conn, now).await;
    assert!(
        matches!(
            outcome,
            Some(Ok(ferro_attest::AttestationOutcome::Trusted { .. }))
        ),
        "{outcome:?}"
    );
    let cert_a = mgr.current().unwrap().clone();
    let half = cert_a.not_before + (cert_a.not_after - cert_a.not_before) / 2;
    assert!(
        next <= half && next >= half - time::Duration::hours(3),
        "{next} vs {half}"
    );
    // The certificate survives a restart.
    let again = ferro_attest::CertificateManager::open(certs.path(), Default::default()).unwrap();
    assert_eq!(again.current(), Some(&cert_a));
    let cert_b = match ferro_attest::attest(&b.rot, &conn).await.unwrap() {
        ferro_attest::AttestationOutcome::Trusted { certificate, .. } => certificate,
        o => panic!("{o:?}"),
    };
    let _ = stop.send(());
    h.await.unwrap().unwrap();

    // Mosquitto trusting tenant A's chain: A's device (key in its RoT) connects and publishes,
    // B's device is refused.
    let broker = mosquitto(&chain(t, &tid, &admin).await);
    let anchors = ferro_attest::pem_certificates(&broker.server_ca).unwrap();
    let config_a =
        ferro_attest::mtls_client_config(&a.rot, cert_a.chain_der().unwrap(), &anchors).unwrap();
    mqtt_publish(broker.port(), config_a)
        .await
        .expect("tenant A's device publishes");
    let config_b =
        ferro_attest::mtls_client_config(&b.rot, cert_b.chain_der().unwrap(), &anchors).unwrap();
    assert!(mqtt_publish(broker.port(), config_b).await.is_err());
    // A certificate for another key than the RoT's is refused locally.
    assert!(
        ferro_attest::mtls_client_config(&b.rot, cert_a.chain_der().unwrap(), &anchors).is_err()
    );
}

/// A device whose root of trust is a TPM 2.0 (swtpm started by the test on loopback), appraised
/// by the real service: Trusted with a certificate, and evidence whose TPM quote does not match
/// (another nonce, another PCR value or selection, no quote) is Untrusted with `quote_mismatch`.
/// Run with `cargo test -p ferro-service --features tpm-tests --test attestation tpm`.
#[cfg(feature = "tpm-tests")]
mod tpm {
    use super::*;
    use ferro_signing::{PublicKey, Purpose, Signer as _, SoftwareSigningKey, sign1};
    use ferro_test_swtpm::Swtpm;
    use ferro_trust::evidence::{Claims, decode_claims, encode_claims};
    use ferro_trust::tpm_attest::{PcrSelection, TPM_ALG_SHA256, marshal_quote, parse_quote};
    use ferro_trust::{TpmConfig, TpmQuote, TpmRootOfTrust};
    use sha2::Digest as _;

    both!(
        tpm_device_is_trusted_and_quote_attacks_refused,
        tpm_device_cannot_downgrade_to_software_evidence,
        tpm_quote_by_a_foreign_attestation_key_is_refused,
        tpm_record_with_another_attestation_key_is_refused,
        tpm_record_without_attestation_key_is_refused,
        tpm_firmware_is_appraised_against_product_references,
    );

    /// The root of trust on a test swtpm.
    fn open(swtpm: &Swtpm) -> TpmRootOfTrust {
        TpmRootOfTrust::open(&TpmConfig {
            tcti: swtpm.tcti(),
            log_path: None,
        })
        .unwrap()
    }

    /// A TPM registration record for `rot` (signed by the TPM-held device key) naming `ak` as
    /// its attestation key (format version 2; `None`: version 1).
    fn tpm_record(rot: &TpmRootOfTrust, ak: Option<PublicKey>) -> Vec<u8> {
        ferro_pki::RegistrationRecord {
            device_key: rot.public_key(),
            root_of_trust: ferro_pki::RootOfTrust::Tpm,
            tpm_ek_certificate: None,
            manufacturing_state: ferro_pki::ManufacturingState::DeviceComplete,
            created_at: time::OffsetDateTime::now_utc(),
            tpm_attestation_key: ak,
        }
        .sign(rot.device_key().as_ref())
        .unwrap()
    }

    /// Register `rot` as a TPM device with its own attestation key and claim it for `tid`.
    async fn register_and_claim(t: &TestApp, rot: &TpmRootOfTrust, tid: &str, admin: &str) {
        register_with_ak_and_claim(t, rot, rot.attestation_key(), tid, admin).await;
    }

    /// Register `rot` as a TPM device whose record names `ak`, and claim it for `tid`.
    async fn register_with_ak_and_claim(
        t: &TestApp,
        rot: &TpmRootOfTrust,
        ak: Option<PublicKey>,
        tid: &str,
        admin: &str,
    ) {
        let r = t
            .post(
                "/v1/manufacturing/registrations",
                &t.operator,
                json!({"records": [b64(&tpm_record(rot, ak))]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let claims = common::claims_of(&r);
        let r = t
            .post(
                &format!("/v1/tenants/{tid}/devices/claim"),
                admin,
                json!({"devices": claims}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let r = t
            .get(
                &format!("/v1/tenants/{tid}/devices/{}", rot.device_id()),
                admin,
            )
            .await;
        assert_eq!(r.body["rootOfTrust"], "Tpm", "{:?}", r.body);
    }

    /// The device's last recorded attestation result and reason codes.
    async fn recorded(t: &TestApp, tid: &str, admin: &str, did: &str) -> (Value, Vec<String>) {
        let r = t
            .get(&format!("/v1/tenants/{tid}/devices/{did}"), admin)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let reasons = r.body["lastAttestationReasons"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| r["code"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        (r.body["lastAttestationResult"].clone(), reasons)
    }

    /// The claims of genuine evidence for `nonce` (base64url).
    fn claims_for(rot: &TpmRootOfTrust, nonce: &str) -> Claims {
        let ev = evidence(rot, nonce);
        decode_claims(
            &ferro_signing::parse_unverified(&ev)
                .unwrap()
                .unverified_payload,
        )
        .unwrap()
    }

    /// Evidence for edited claims, signed again by the device key in the TPM: the COSE
    /// signature is genuine, so only the quote can be wrong.
    fn resign(rot: &TpmRootOfTrust, claims: &Claims) -> Vec<u8> {
        sign1(
            rot.device_key().as_ref(),
            Purpose::AttestationEvidence,
            &encode_claims(claims).unwrap(),
            &[],
        )
        .unwrap()
    }

    async fn os_event(t: &TestApp) -> MeasurementEvent {
        use sqlx::Row;
        let os_id = t.os_release("Retail").await;
        let os_digest: String =
            sqlx::query("SELECT payload_sha256 FROM os_releases WHERE image_id = $1")
                .bind(&os_id)
                .fetch_one(t.db.pool())
                .await
                .unwrap()
                .try_get("payload_sha256")
                .unwrap();
        MeasurementEvent {
            component_id: ferro_image::OS_COMPONENT_ID,
            image_id: os_id.parse().unwrap(),
            version: "1.0.0".into(),
            digest: hex::decode(os_digest).unwrap().try_into().unwrap(),
        }
    }

    async fn tpm_device_is_trusted_and_quote_attacks_refused(t: &TestApp) {
        let (tid, admin) = t.tenant().await;
        let os = os_event(t).await;
        let swtpm = Swtpm::start();
        let rot = open(&swtpm);
        let did = rot.device_id().to_string();
        register_and_claim(t, &rot, &tid, &admin).await;
        rot.extend_measurement(&os).unwrap();

        // Genuine TPM evidence (quote over PCR 15 with the nonce): Trusted, with a certificate
        // for the TPM-held key under the tenant's chain.
        let n = challenge(t, &did).await;
        let genuine = claims_for(&rot, &n);
        assert!(genuine.tpm_quote.is_some());
        assert_eq!(genuine.root_of_trust, ferro_trust::RootOfTrustKind::Tpm);
        let v = submit(t, &did, &n, &resign(&rot, &genuine)).await;
        assert_eq!(v["verdict"], "Trusted", "{v}");
        let cert = ferro_attest::check_certificate(
            &rot,
            v["certificatePem"].as_str().unwrap(),
            v["caChainPem"].as_str().unwrap(),
        )
        .expect("a certificate for the TPM-held key");
        assert!(cert.not_after > time::OffsetDateTime::now_utc());
        let r = t
            .get(&format!("/v1/tenants/{tid}/devices/{did}"), &admin)
            .await;
        assert_eq!(r.body["lastAttestationResult"], "Trusted", "{:?}", r.body);

        // 1. A genuine TPM quote over another nonce (a stale or pre-computed quote).
        let n_old = challenge(t, &did).await;
        let old_quote = claims_for(&rot, &n_old).tpm_quote;
        let n = challenge(t, &did).await;
        let mut c = claims_for(&rot, &n);
        c.tpm_quote = old_quote;
        assert_untrusted(
            &submit(t, &did, &n, &resign(&rot, &c)).await,
            "quote_mismatch",
        );
        // Signed by the device key over the fresh nonce, so recorded on the device.
        assert_eq!(
            recorded(t, &tid, &admin, &did).await,
            (json!("Untrusted"), vec!["quote_mismatch".to_string()])
        );

        // 2. The quote is over another PCR value: the TPM measured a tampered OS but the log
        //    claims the published one.
        let tampered = MeasurementEvent {
            digest: [0xab; 32],
            ..os.clone()
        };
        let evil = Swtpm::start();
        let evil_rot = open(&evil);
        let evil_id = evil_rot.device_id().to_string();
        register_and_claim(t, &evil_rot, &tid, &admin).await;
        evil_rot.extend_measurement(&tampered).unwrap();
        let n = challenge(t, &evil_id).await;
        let honest = claims_for(&evil_rot, &n);
        assert_untrusted(
            &submit(t, &evil_id, &n, &resign(&evil_rot, &honest)).await,
            "unknown_measurement",
        );
        let n = challenge(t, &evil_id).await;
        let mut c = claims_for(&evil_rot, &n);
        c.measurements = vec![os.clone()];
        assert_untrusted(
            &submit(t, &evil_id, &n, &resign(&evil_rot, &c)).await,
            "quote_mismatch",
        );
        // ... or the log drops an event the PCR includes.
        evil_rot.extend_measurement(&os).unwrap();
        let n = challenge(t, &evil_id).await;
        let mut c = claims_for(&evil_rot, &n);
        c.measurements.remove(0);
        assert_untrusted(
            &submit(t, &evil_id, &n, &resign(&evil_rot, &c)).await,
            "quote_mismatch",
        );

        // 3. The genuine quote edited to select another PCR (16): the TPM's signature fails.
        let n = challenge(t, &did).await;
        let mut c = claims_for(&rot, &n);
        let mut q = c.tpm_quote.clone().unwrap();
        let mut info = parse_quote(&q.attest).unwrap();
        info.pcr_selections = vec![PcrSelection {
            hash: TPM_ALG_SHA256,
            pcrs: vec![16],
        }];
        q.attest = marshal_quote(&info);
        c.tpm_quote = Some(q);
        assert_untrusted(
            &submit(t, &did, &n, &resign(&rot, &c)).await,
            "quote_mismatch",
        );

        // 4. A quote over another PCR selection, validly signed by its own (software) AK:
        //    refused, as that is not the registered AK (the selection check itself is tested
        //    in crates/device/trust/tests/tpm.rs with a stand-in registered key).
        let ak = SoftwareSigningKey::generate();
        for pcrs in [vec![16], vec![15, 16], vec![]] {
            let n = challenge(t, &did).await;
            let mut c = claims_for(&rot, &n);
            let mut info = parse_quote(&c.tpm_quote.as_ref().unwrap().attest).unwrap();
            info.pcr_selections = vec![PcrSelection {
                hash: TPM_ALG_SHA256,
                pcrs,
            }];
            let attest = marshal_quote(&info);
            c.tpm_quote = Some(TpmQuote {
                signature: ak.sign(&attest).unwrap().0,
                attest,
                attestation_key: ak.public_key().to_spki_der(),
            });
            assert_untrusted(
                &submit(t, &did, &n, &resign(&rot, &c)).await,
                "unknown_attestation_key",
            );
        }

        // 5. TPM evidence without its quote.
        let n = challenge(t, &did).await;
        let mut c = claims_for(&rot, &n);
        c.tpm_quote = None;
        assert_untrusted(
            &submit(t, &did, &n, &resign(&rot, &c)).await,
            "quote_mismatch",
        );

        // The device still attests Trusted afterwards (nothing was poisoned).
        let n = challenge(t, &did).await;
        let v = submit(t, &did, &n, &evidence(&rot, &n)).await;
        assert_eq!(v["verdict"], "Trusted", "{v}");
        assert_eq!(
            recorded(t, &tid, &admin, &did).await,
            (json!("Trusted"), vec![])
        );

        // Failures that prove nothing about the sender are not recorded: evidence signed by
        // another key, and genuine evidence for another nonce (a replayed capture).
        let n = challenge(t, &did).await;
        assert_untrusted(
            &submit(t, &did, &n, &evidence(&evil_rot, &n)).await,
            "bad_signature",
        );
        let n_old = challenge(t, &did).await;
        let captured = evidence(&rot, &n_old);
        let n = challenge(t, &did).await;
        assert_untrusted(&submit(t, &did, &n, &captured).await, "nonce_mismatch");
        assert_eq!(
            recorded(t, &tid, &admin, &did).await,
            (json!("Trusted"), vec![])
        );
    }

    /// What UEFI measured boot would extend on this board before any OS runs: (PCR, what was
    /// measured); each event extends SHA-256 of its text. swtpm has no firmware, so the test
    /// plays it.
    const FIRMWARE_EVENTS: &[(u8, &str)] = &[
        (0, "EV_S_CRTM_VERSION firmware 1.0"),
        (0, "EV_EFI_PLATFORM_FIRMWARE_BLOB firmware volume"),
        (1, "EV_EFI_VARIABLE_BOOT BootOrder 0001"),
        (4, "EV_EFI_BOOT_SERVICES_APPLICATION shimx64.efi 15.8"),
        (4, "EV_EFI_BOOT_SERVICES_APPLICATION grubx64.efi 2.12"),
        (7, "EV_EFI_VARIABLE_DRIVER_CONFIG SecureBoot 1"),
    ];

    /// Extend `events` as firmware would; returns the PCR 0-7 values they replay to (hex).
    fn measure_firmware(
        rot: &TpmRootOfTrust,
        events: &[(u8, &str)],
        from: [[u8; 32]; 8],
    ) -> Vec<String> {
        let mut pcrs = from;
        for (pcr, what) in events {
            let digest: [u8; 32] = sha2::Sha256::digest(what.as_bytes()).into();
            rot.extend_firmware_pcr(*pcr, &digest).unwrap();
            let slot = &mut pcrs[usize::from(*pcr)];
            let mut h = sha2::Sha256::new();
            h.update(*slot);
            h.update(digest);
            *slot = h.finalize().into();
        }
        assert_eq!(
            rot.firmware_pcrs().unwrap(),
            Some(pcrs),
            "the TPM agrees with the log"
        );
        pcrs.iter().map(hex::encode).collect()
    }

    /// Stage 0 (docs/attestation.md, "Firmware appraisal"): the quote covers PCRs 0-7 as the
    /// (played) firmware extended them; with no reference values for the device's product the
    /// verdict says stage 0 was not appraised; with the device's values registered it is
    /// Matched; another boot loader (PCR 4) is refused with its reason naming PCR 4, and the
    /// old evidence cannot be replayed; registering the new value (a rollout, both values at
    /// once) makes it Trusted again, and deleting the old one changes nothing for it.
    async fn tpm_firmware_is_appraised_against_product_references(t: &TestApp) {
        let (tid, admin) = t.tenant().await;
        let os = os_event(t).await;
        let swtpm = Swtpm::start();
        let rot = open(&swtpm);
        let did = rot.device_id().to_string();
        register_and_claim(t, &rot, &tid, &admin).await;
        let genuine = measure_firmware(&rot, FIRMWARE_EVENTS, [[0; 32]; 8]);
        rot.extend_measurement(&os).unwrap();
        let product = in_a_product(t, &tid, &admin, &did).await;
        let device = |_: &TestApp| async {
            let r = t
                .get(&format!("/v1/tenants/{tid}/devices/{did}"), &admin)
                .await;
            assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
            r.body
        };
        let attest_now = || async {
            let n = challenge(t, &did).await;
            submit(t, &did, &n, &evidence(&rot, &n)).await
        };

        // No reference values: appraised as before, and the record says stage 0 was not.
        let v = attest_now().await;
        assert_eq!(v["verdict"], "Trusted", "{v}");
        let d = device(t).await;
        assert_eq!(d["lastAttestationFirmware"], "NotAppraised", "{d}");
        assert_eq!(d["lastFirmwarePcrs"], json!(genuine), "{d}");

        // The tenant registers the values its known-good device reported.
        let refs = format!("/v1/tenants/{tid}/products/{product}/firmware-references");
        let r = t
            .post(
                &refs,
                &admin,
                json!({"pcrs": genuine, "description": "fw 1.0, shim 15.8"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        let old_ref = r.body["id"].as_str().unwrap().to_string();
        let r = t.post(&refs, &admin, json!({"pcrs": genuine})).await;
        assert_eq!(
            r.status,
            StatusCode::CONFLICT,
            "the same value twice: {:?}",
            r.body
        );
        for bad in [
            json!(genuine[..7]),
            json!(vec!["zz".repeat(32); 8]),
            json!(vec![genuine[0].clone() + "00"; 8]),
        ] {
            let r = t.post(&refs, &admin, json!({"pcrs": bad})).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
        }
        let v = attest_now().await;
        assert_eq!(v["verdict"], "Trusted", "{v}");
        assert_eq!(device(t).await["lastAttestationFirmware"], "Matched");

        // Evidence captured now, with the registered PCRs, for a later replay.
        let n_old = challenge(t, &did).await;
        let captured = evidence(&rot, &n_old);

        // Another boot loader: PCR 4 differs. Refused, no certificate, the reason names PCR 4.
        let updated = measure_firmware(
            &rot,
            &[(4, "EV_EFI_BOOT_SERVICES_APPLICATION grubx64.efi 2.13")],
            rot.firmware_pcrs().unwrap().unwrap(),
        );
        let v = attest_now().await;
        assert_untrusted(&v, "firmware_not_in_reference_set");
        assert!(v["certificatePem"].is_null(), "{v}");
        let message = v["reasons"][0]["message"].as_str().unwrap();
        assert!(
            message.ends_with("differs in PCR 4 (boot loader)"),
            "{message}"
        );
        let d = device(t).await;
        assert_eq!(d["lastAttestationFirmware"], "Refused", "{d}");
        assert_eq!(d["lastFirmwarePcrs"], json!(updated), "{d}");

        // The captured evidence with the old, registered PCRs is refused: its nonce is spent
        // (a newer one was answered), and it signs no other nonce.
        assert_untrusted(&submit(t, &did, &n_old, &captured).await, "nonce_replayed");
        let n = challenge(t, &did).await;
        assert_untrusted(&submit(t, &did, &n, &captured).await, "nonce_mismatch");

        // A rollout: the new value registered beside the old one; both are accepted.
        let r = t
            .post(
                &refs,
                &admin,
                json!({"pcrs": updated, "description": "grub 2.13"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        assert_eq!(t.get(&refs, &admin).await.body.as_array().unwrap().len(), 2);
        let v = attest_now().await;
        assert_eq!(v["verdict"], "Trusted", "{v}");
        // The old value retired: this device is unaffected.
        let r = t.delete(&format!("{refs}/{old_ref}"), &admin).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
        let r = t.delete(&format!("{refs}/{old_ref}"), &admin).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
        let v = attest_now().await;
        assert_eq!(v["verdict"], "Trusted", "{v}");
        assert_eq!(device(t).await["lastAttestationFirmware"], "Matched");
    }

    /// A TPM-registered device that measured a tampered OS, for the attack tests below.
    async fn tampered_tpm_device(t: &TestApp) -> (Swtpm, TpmRootOfTrust, MeasurementEvent) {
        let (tid, admin) = t.tenant().await;
        let os = os_event(t).await;
        let swtpm = Swtpm::start();
        let rot = open(&swtpm);
        register_and_claim(t, &rot, &tid, &admin).await;
        rot.extend_measurement(&MeasurementEvent {
            digest: [0xab; 32],
            ..os.clone()
        })
        .unwrap();
        (swtpm, rot, os)
    }

    /// A compromised OS on a TPM device (which can use the TPM-held device key) sends *software*
    /// evidence without a quote and claims the published OS: refused, because the evidence's
    /// root-of-trust kind must be the one the device was registered with.
    async fn tpm_device_cannot_downgrade_to_software_evidence(t: &TestApp) {
        let (_swtpm, rot, os) = tampered_tpm_device(t).await;
        let did = rot.device_id().to_string();
        let n = challenge(t, &did).await;
        let mut c = claims_for(&rot, &n);
        c.root_of_trust = ferro_trust::RootOfTrustKind::Software;
        c.tpm_quote = None;
        c.measurements = vec![os];
        assert_untrusted(
            &submit(t, &did, &n, &resign(&rot, &c)).await,
            "quote_mismatch",
        );
    }

    /// A compromised OS on a TPM device (which can use the TPM-held device key, but not make
    /// the TPM's restricted attestation key sign a forged `TPMS_ATTEST`) signs its own quote over
    /// the PCR value of a forged log with a software key: refused, because the quote must be by
    /// exactly the attestation key of the device's registration record; and recorded on the
    /// device, since the device key signed it over the fresh nonce.
    async fn tpm_quote_by_a_foreign_attestation_key_is_refused(t: &TestApp) {
        let (tid, admin) = t.tenant().await;
        let os = os_event(t).await;
        let swtpm = Swtpm::start();
        let rot = open(&swtpm);
        register_and_claim(t, &rot, &tid, &admin).await;
        rot.extend_measurement(&MeasurementEvent {
            digest: [0xab; 32],
            ..os.clone()
        })
        .unwrap();
        let did = rot.device_id().to_string();
        let n = challenge(t, &did).await;
        let mut c = claims_for(&rot, &n);
        c.measurements = vec![os.clone()];
        let forged_pcr = ferro_trust::MeasurementLog::from_events([os]).replay();
        let mut info = parse_quote(&c.tpm_quote.as_ref().unwrap().attest).unwrap();
        info.pcr_digest = sha2::Sha256::digest(forged_pcr).to_vec();
        let attest = marshal_quote(&info);
        let ak = SoftwareSigningKey::generate();
        c.tpm_quote = Some(TpmQuote {
            signature: ak.sign(&attest).unwrap().0,
            attest: attest.clone(),
            attestation_key: ak.public_key().to_spki_der(),
        });
        let v = submit(t, &did, &n, &resign(&rot, &c)).await;
        assert_untrusted(&v, "unknown_attestation_key");
        assert_eq!(codes(&v), ["unknown_attestation_key"], "{v}");
        assert_eq!(
            recorded(t, &tid, &admin, &did).await,
            (
                json!("Untrusted"),
                vec!["unknown_attestation_key".to_string()]
            )
        );
        // The same forgery naming the registered AK: its signature does not verify.
        let n = challenge(t, &did).await;
        let mut c2 = claims_for(&rot, &n);
        c2.measurements = c.measurements.clone();
        let mut q = c.tpm_quote.clone().unwrap();
        let mut info = parse_quote(&q.attest).unwrap();
        info.extra_data = Base64UrlUnpadded::decode_vec(&n).unwrap();
        q.attest = marshal_quote(&info);
        q.signature = ak.sign(&q.attest).unwrap().0;
        q.attestation_key = rot.attestation_key().unwrap().to_spki_der();
        c2.tpm_quote = Some(q);
        assert_untrusted(
            &submit(t, &did, &n, &resign(&rot, &c2)).await,
            "quote_mismatch",
        );
        // The honest evidence of the tampered OS is what the device can send: Untrusted for
        // its measurement, not for its key.
        let n = challenge(t, &did).await;
        let v = submit(t, &did, &n, &evidence(&rot, &n)).await;
        assert_eq!(codes(&v), ["unknown_measurement"], "{v}");
    }

    /// The registration record binds the device to one attestation key: a device registered
    /// with another TPM's attestation key (or any other key) cannot attest with this TPM's
    /// genuine quotes, and re-registering the device with another key is a conflict.
    async fn tpm_record_with_another_attestation_key_is_refused(t: &TestApp) {
        let (tid, admin) = t.tenant().await;
        let os = os_event(t).await;
        let swtpm = Swtpm::start();
        let rot = open(&swtpm);
        let other_ak = {
            let other = Swtpm::start();
            open(&other).attestation_key().unwrap()
        };
        assert_ne!(Some(&other_ak), rot.attestation_key().as_ref());
        register_with_ak_and_claim(t, &rot, Some(other_ak), &tid, &admin).await;
        rot.extend_measurement(&os).unwrap();
        let did = rot.device_id().to_string();
        let n = challenge(t, &did).await;
        let v = submit(t, &did, &n, &evidence(&rot, &n)).await;
        assert_untrusted(&v, "unknown_attestation_key");
        assert_eq!(
            recorded(t, &tid, &admin, &did).await,
            (
                json!("Untrusted"),
                vec!["unknown_attestation_key".to_string()]
            )
        );
        // A second record for the device (now with its true AK) does not replace the first.
        let r = t
            .post(
                "/v1/manufacturing/registrations",
                &t.operator,
                json!({"records": [b64(&tpm_record(&rot, rot.attestation_key()))]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
        assert_eq!(r.code(), "registration_conflict");
        let n = challenge(t, &did).await;
        assert_untrusted(
            &submit(t, &did, &n, &evidence(&rot, &n)).await,
            "unknown_attestation_key",
        );
    }

    /// Fail closed without an attestation key: a TPM record without one (format version 1) is
    /// refused at upload, and a TPM device stored without one (registered before version 2;
    /// made here by clearing the column) is refused at appraisal, genuine quote or not.
    async fn tpm_record_without_attestation_key_is_refused(t: &TestApp) {
        let (tid, admin) = t.tenant().await;
        let os = os_event(t).await;
        let swtpm = Swtpm::start();
        let rot = open(&swtpm);
        let did = rot.device_id().to_string();
        let r = t
            .post(
                "/v1/manufacturing/registrations",
                &t.operator,
                json!({"records": [b64(&tpm_record(&rot, None))]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
        assert_eq!(r.code(), "invalid_registration_record");
        assert_eq!(
            r.body["error"]["details"][0]["code"], "missing_attestation_key",
            "{:?}",
            r.body
        );
        assert_eq!(
            t.count(&format!(
                "SELECT COUNT(*) FROM device_registrations WHERE device_id = '{did}'"
            ))
            .await,
            0
        );

        register_and_claim(t, &rot, &tid, &admin).await;
        rot.extend_measurement(&os).unwrap();
        let n = challenge(t, &did).await;
        assert_eq!(
            submit(t, &did, &n, &evidence(&rot, &n)).await["verdict"],
            "Trusted"
        );
        t.exec(&format!(
            "UPDATE device_registrations SET attestation_key = NULL WHERE device_id = '{did}'"
        ))
        .await;
        let n = challenge(t, &did).await;
        let v = submit(t, &did, &n, &evidence(&rot, &n)).await;
        assert_untrusted(&v, "unknown_attestation_key");
        assert!(
            v["reasons"][0]["message"]
                .as_str()
                .unwrap()
                .contains("no TPM attestation key"),
            "{v}"
        );
        assert_eq!(
            recorded(t, &tid, &admin, &did).await,
            (
                json!("Untrusted"),
                vec!["unknown_attestation_key".to_string()]
            )
        );
        // Nor can it fall back to software evidence.
        let n = challenge(t, &did).await;
        let mut c = claims_for(&rot, &n);
        c.root_of_trust = ferro_trust::RootOfTrustKind::Software;
        c.tpm_quote = None;
        assert_untrusted(
            &submit(t, &did, &n, &resign(&rot, &c)).await,
            "quote_mismatch",
        );
    }
}
