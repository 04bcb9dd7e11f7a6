//! Devices and the platform PKI, on SQLite and PostgreSQL: registration attacks, claiming,
//! devices, capability files, tenant CAs (checked with `openssl verify`), error reports, and
//! HTTPS under the platform root.

mod common;

use axum::http::{Method, StatusCode};
use common::{TestApp, b64, registration_record};
use ferro_pki::{FileKeyStore, KeyName, KeyStore, RegistrationRecord};
use ferro_signing::{Purpose, SoftwareSigningKey};
use serde_json::json;
use std::process::Command;

both!(
    registration_records_are_verified,
    claiming_is_permanent_and_all_or_nothing,
    devices_list_get_patch,
    capability_files_bind_one_device,
    tenant_ca_chain_verifies_device_certificates,
    error_report_is_safe_csv,
    https_under_the_platform_root,
);

fn record_for(key: &SoftwareSigningKey, created: i64) -> RegistrationRecord {
    RegistrationRecord {
        device_key: key.public_key().clone(),
        root_of_trust: ferro_pki::RootOfTrust::Software,
        tpm_ek_certificate: None,
        manufacturing_state: ferro_pki::ManufacturingState::DeviceComplete,
        created_at: time::OffsetDateTime::from_unix_timestamp(created).unwrap(),
        tpm_attestation_key: None,
    }
}

async fn register(t: &TestApp, records: Vec<String>) -> common::Resp {
    t.post(
        "/v1/manufacturing/registrations",
        &t.operator,
        json!({ "records": records }),
    )
    .await
}

async fn registration_records_are_verified(t: &TestApp) {
    let n_before = t.count("SELECT COUNT(*) FROM device_registrations").await;
    let key = SoftwareSigningKey::generate();
    let good = record_for(&key, 1_770_000_000);
    let good_bytes = good.sign(&key).unwrap();
    // Signed by another key than the device key it contains.
    let other = SoftwareSigningKey::generate();
    let foreign = ferro_signing::sign1(
        &other,
        Purpose::RegistrationRecord,
        &good.to_cbor().unwrap(),
        &[],
    )
    .unwrap();
    // Tampered: one bit of the signature flipped.
    let mut tampered = good_bytes.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    // Wrong device ID: the payload names another device, signed by the right key.
    let mut payload = good.to_cbor().unwrap();
    let id = good.device_id();
    let pos = payload
        .windows(64)
        .position(|w| w == id.as_bytes())
        .expect("device id in payload");
    payload[pos] ^= 0xff;
    let wrong_id =
        ferro_signing::sign1(&key, Purpose::RegistrationRecord, &payload, &[]).expect("sign");
    let (_, fresh) = registration_record();
    let r = register(
        t,
        vec![
            fresh.clone(),
            b64(&foreign),
            b64(&tampered),
            b64(&wrong_id),
            "not base64!".into(),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.code(), "invalid_registration_record");
    let codes: Vec<(u64, &str)> = r.body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["index"].as_u64().unwrap(), d["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        codes,
        vec![
            (1, "not_signed_by_device_key"),
            (2, "bad_signature"),
            (3, "device_id_mismatch"),
            (4, "invalid_base64"),
        ]
    );
    // All or nothing: the good record was not stored either.
    assert_eq!(
        t.count("SELECT COUNT(*) FROM device_registrations").await,
        n_before
    );
    // Stored, then idempotent.
    let r = register(t, vec![b64(&good_bytes), fresh.clone()]).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["registered"], 2);
    assert_eq!(r.body["devices"][0]["deviceId"], id.to_string());
    assert_eq!(r.body["devices"][0]["rootOfTrust"], "Software");
    assert_eq!(r.body["devices"][0]["manufacturingState"], "DeviceComplete");
    let r = register(t, vec![b64(&good_bytes)]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        (r.body["registered"].clone(), r.body["unchanged"].clone()),
        (json!(0), json!(1))
    );
    // A different record for the same device: 409, nothing stored.
    let newer = record_for(&key, 1_770_000_001).sign(&key).unwrap();
    let (_, another) = registration_record();
    let r = register(t, vec![another, b64(&newer)]).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert_eq!(r.code(), "registration_conflict");
    assert_eq!(r.body["error"]["details"][0]["index"], 1);
    assert_eq!(
        t.count("SELECT COUNT(*) FROM device_registrations").await,
        n_before + 2
    );
    // Limits and roles.
    let r = register(t, vec![]).await;
    assert_eq!(r.code(), "invalid_body");
    let (_, admin) = t.tenant().await;
    let r = t
        .post(
            "/v1/manufacturing/registrations",
            &admin,
            json!({"records": [registration_record().1]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Audit row for the platform event.
    assert!(
        t.count("SELECT COUNT(*) FROM audit_log WHERE action = 'manufacturing.register'")
            .await
            >= 2
    );
}

async fn claiming_is_permanent_and_all_or_nothing(t: &TestApp) {
    let (ta, admin_a) = t.tenant().await;
    let (tb, admin_b) = t.tenant().await;
    let claim = |tenant: String, token: String, devices: Vec<(String, String)>| async move {
        let devices: Vec<_> = devices
            .into_iter()
            .map(|(id, code)| json!({ "deviceId": id, "claimCode": code }))
            .collect();
        t.post(
            &format!("/v1/tenants/{tenant}/devices/claim"),
            &token,
            json!({ "devices": devices }),
        )
        .await
    };
    let any_code = "00000000-00000000-00000000-00000000".to_string();
    // Unregistered device.
    let (unregistered, _) = registration_record();
    let r = claim(
        ta.clone(),
        admin_a.clone(),
        vec![(unregistered.clone(), any_code.clone())],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
    assert_eq!(r.code(), "device_not_registered");
    assert_eq!(r.body["error"]["details"][0]["id"], unregistered);
    // Claimed by A; A again is idempotent (upper case accepted).
    let d1 = t.register_device_with_code().await;
    let r = claim(ta.clone(), admin_a.clone(), vec![d1.clone()]).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body, json!({"claimed": 1, "alreadyOwned": 0}));
    let r = claim(
        ta.clone(),
        admin_a.clone(),
        vec![(d1.0.to_uppercase(), d1.1.to_uppercase())],
    )
    .await;
    assert_eq!(r.body, json!({"claimed": 0, "alreadyOwned": 1}));
    // B cannot take it, even with its (used) code, and is not told who holds it.
    let r = claim(tb.clone(), admin_b.clone(), vec![d1.clone()]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "device_not_registered");
    assert!(!String::from_utf8_lossy(&r.raw).contains(&ta));
    // Bulk with one bad device writes nothing.
    let d2 = t.register_device_with_code().await;
    let d3 = t.register_device_with_code().await;
    let before = t.count("SELECT COUNT(*) FROM devices").await;
    for bad in [
        (unregistered.clone(), any_code.clone()),
        d1.clone(),
        ("xyz".to_string(), any_code.clone()),
        (d2.0.clone(), "not a code".to_string()),
    ] {
        let r = claim(
            tb.clone(),
            admin_b.clone(),
            vec![d2.clone(), bad, d3.clone()],
        )
        .await;
        assert!(r.status.is_client_error(), "{:?}", r.body);
        assert_eq!(r.body["error"]["details"][0]["index"], 1, "{:?}", r.body);
    }
    assert_eq!(t.count("SELECT COUNT(*) FROM devices").await, before);
    let r = claim(tb.clone(), admin_b.clone(), vec![d2.clone(), d3.clone()]).await;
    assert_eq!(r.body["claimed"], 2);
    // Count limits.
    let r = claim(tb.clone(), admin_b.clone(), vec![]).await;
    assert_eq!(r.code(), "invalid_body");
    let many: Vec<(String, String)> = (0..1001)
        .map(|_| ("a".repeat(128), any_code.clone()))
        .collect();
    let r = claim(tb.clone(), admin_b.clone(), many).await;
    assert_eq!(r.code(), "invalid_body");
    // Another tenant's device answers exactly as a missing one.
    let d1 = d1.0;
    let (missing, _) = registration_record();
    let a = t
        .get(&format!("/v1/tenants/{tb}/devices/{d1}"), &admin_b)
        .await;
    let m = t
        .get(&format!("/v1/tenants/{tb}/devices/{missing}"), &admin_b)
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!((a.status, a.raw.clone()), (m.status, m.raw.clone()));
    assert!(
        t.count(&format!(
            "SELECT COUNT(*) FROM audit_log WHERE tenant_id = '{tb}' AND action = 'device.claim'"
        ))
        .await
            == 1
    );
}

async fn devices_list_get_patch(t: &TestApp) {
    let (tid, admin) = t.tenant().await;
    let (other, other_admin) = t.tenant().await;
    let product = t.product(&tid, &admin, false).await;
    let groups = t
        .get(
            &format!("/v1/tenants/{tid}/device-groups?product={product}"),
            &admin,
        )
        .await;
    let group = groups.body["items"][0]["id"].as_str().unwrap().to_string();
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(t.claimed_device(&tid, &admin).await);
    }
    ids.sort();
    let (_, reader, _) = t.user(Some((&tid, "Reader", &admin))).await;
    let r = t
        .get(&format!("/v1/tenants/{tid}/devices/{}", ids[0]), &reader)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["deviceId"], ids[0]);
    assert_eq!(r.body["deviceGroupId"], json!(null));
    assert_eq!(r.body["lastAttestedAt"], json!(null));
    assert_eq!(r.body["manufacturingState"], "DeviceComplete");
    // Move two into the group.
    for id in &ids[..2] {
        let r = t
            .call(
                Method::PATCH,
                &format!("/v1/tenants/{tid}/devices/{id}"),
                Some(&admin),
                Some(json!({ "deviceGroupId": group })),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        assert_eq!(r.body["productId"], product);
    }
    // Reader may not; a group of another tenant is missing; an empty body is refused.
    let path = format!("/v1/tenants/{tid}/devices/{}", ids[2]);
    let r = t
        .call(
            Method::PATCH,
            &path,
            Some(&reader),
            Some(json!({"deviceGroupId": group})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let op = t.product(&other, &other_admin, false).await;
    let og = t
        .get(
            &format!("/v1/tenants/{other}/device-groups?product={op}"),
            &other_admin,
        )
        .await
        .body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = t
        .call(
            Method::PATCH,
            &path,
            Some(&admin),
            Some(json!({"deviceGroupId": og})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = t
        .call(Method::PATCH, &path, Some(&admin), Some(json!({})))
        .await;
    assert_eq!(r.code(), "invalid_body");
    // Filters, count, pages.
    let r = t
        .get(
            &format!("/v1/tenants/{tid}/devices?deviceGroup={group}"),
            &reader,
        )
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
    let r = t
        .get(
            &format!("/v1/tenants/{tid}/devices/count?product={product}"),
            &reader,
        )
        .await;
    assert_eq!(r.body, json!({"count": 2}));
    let r = t
        .get(&format!("/v1/tenants/{tid}/devices/count"), &reader)
        .await;
    assert_eq!(r.body, json!({"count": 5}));
    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let url = match &next {
            Some(c) => format!("/v1/tenants/{tid}/devices?limit=2&continuation={c}"),
            None => format!("/v1/tenants/{tid}/devices?limit=2"),
        };
        let r = t.get(&url, &reader).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        for d in r.body["items"].as_array().unwrap() {
            seen.push(d["deviceId"].as_str().unwrap().to_string());
        }
        match r.body["continuationToken"].as_str() {
            Some(c) => next = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let r = t
        .get(
            &format!("/v1/tenants/{tid}/devices?continuation=bogus"),
            &reader,
        )
        .await;
    assert_eq!(r.code(), "invalid_query");
    let r = t
        .get(&format!("/v1/tenants/{tid}/devices/nothex"), &reader)
        .await;
    assert_eq!(r.code(), "invalid_id");
    // A group with devices cannot be deleted; removing them (null) allows it.
    let r = t
        .call(
            Method::DELETE,
            &format!("/v1/tenants/{tid}/device-groups/{group}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.code(), "not_empty");
    for id in &ids[..2] {
        let r = t
            .call(
                Method::PATCH,
                &format!("/v1/tenants/{tid}/devices/{id}"),
                Some(&admin),
                Some(json!({ "deviceGroupId": null })),
            )
            .await;
        assert_eq!(r.body["deviceGroupId"], json!(null));
    }
    let r = t
        .call(
            Method::DELETE,
            &format!("/v1/tenants/{tid}/device-groups/{group}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
}

async fn capability_files_bind_one_device(t: &TestApp) {
    let (tid, admin) = t.tenant().await;
    let dev = t.claimed_device(&tid, &admin).await;
    let other_dev = t.claimed_device(&tid, &admin).await;
    let dk = SoftwareSigningKey::generate().key_id().to_string();
    let url = format!("/v1/tenants/{tid}/devices/{dev}/capabilities");
    let r = t
        .post(
            &url,
            &admin,
            json!({"type": "AppDevelopment", "developerKeyIds": [dk]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["developerKeyIds"], json!([dk]));
    let file = {
        use base64ct::Encoding;
        base64ct::Base64::decode_vec(r.body["capabilityFile"].as_str().unwrap()).unwrap()
    };
    // Verify with the capability key from the published key list.
    let root = t.get("/v1/platform/root-certificate", &admin).await;
    let root_der =
        ferro_service::platform::pem_body(std::str::from_utf8(&root.raw).unwrap()).unwrap();
    let root_cert = ferro_pki::Certificate::from_der(&root_der).unwrap();
    let root_key =
        ferro_signing::PublicKey::from_spki_der(root_cert.subject_public_key_info()).unwrap();
    let kl = t.get("/v1/platform/key-list", &admin).await;
    let list = ferro_pki::verify_key_list(&kl.raw, &root_key).expect("key list verifies");
    let trusted = list.trusted(ferro_pki::PlatformKeyRole::Capability);
    let this: ferro_signing::DeviceId = dev.parse().unwrap();
    let that: ferro_signing::DeviceId = other_dev.parse().unwrap();
    let v = ferro_pki::verify_capability(&file, &trusted, &this).expect("verifies for the device");
    assert!(v.allows_test_key(&dk.parse().unwrap()));
    let e = ferro_pki::verify_capability(&file, &trusted, &that).unwrap_err();
    assert_eq!(e.code(), "wrong-device");
    // FieldServicing; bad inputs.
    let r = t
        .post(&url, &admin, json!({"type": "FieldServicing"}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // Without developerKeyIds: the tenant's registered developer keys (none yet: refused).
    let r = t
        .post(&url, &admin, json!({"type": "AppDevelopment"}))
        .await;
    assert_eq!(r.code(), "invalid_body", "{:?}", r.body);
    let uid = t.get("/v1/me", &admin).await.body["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    t.exec(&format!(
        "INSERT INTO developer_keys (id, tenant_id, key_id, name, public_key_pem, created_by, created_at) \
         VALUES ('{}', '{tid}', '{dk}', 'dev', 'x', '{uid}', 0)",
        uuid::Uuid::now_v7()
    ))
    .await;
    let r = t
        .post(&url, &admin, json!({"type": "AppDevelopment"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["developerKeyIds"], json!([dk]));
    for body in [
        json!({"type": "AppDevelopment", "developerKeyIds": ["zz"]}),
        json!({"type": "FieldServicing", "developerKeyIds": [dk]}),
        json!({"type": "Everything"}),
    ] {
        let r = t.post(&url, &admin, body).await;
        assert_eq!(r.code(), "invalid_body", "{:?}", r.body);
    }
    // Another tenant's device is missing.
    let (tb, admin_b) = t.tenant().await;
    let r = t
        .post(
            &format!("/v1/tenants/{tb}/devices/{dev}/capabilities"),
            &admin_b,
            json!({"type": "FieldServicing"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

fn openssl_verify(dir: &std::path::Path, ca: &str, cert: &str) -> (bool, String) {
    let out = Command::new("openssl")
        .args(["verify", "-x509_strict", "-CAfile"])
        .arg(dir.join(ca))
        .arg(dir.join(cert))
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

async fn tenant_ca_chain_verifies_device_certificates(t: &TestApp) {
    let (tid, admin) = t.tenant().await;
    let (tb, admin_b) = t.tenant().await;
    let r = t
        .get(&format!("/v1/tenants/{tid}/ca-certificates"), &admin)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let list = r.body.as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["status"], "Current");
    let serial = list[0]["serial"].as_str().unwrap().to_string();
    assert_eq!(
        t.count(&format!(
            "SELECT COUNT(*) FROM tenant_cas WHERE tenant_id = '{tid}'"
        ))
        .await,
        1,
        "no rotation for a fresh CA"
    );
    let chain = t
        .get(&format!("/v1/tenants/{tid}/ca-certificates/chain"), &admin)
        .await;
    assert!(
        chain.headers["content-type"]
            .to_str()
            .unwrap()
            .contains("pem")
    );
    let pem = t
        .get(
            &format!("/v1/tenants/{tid}/ca-certificates/{serial}"),
            &admin,
        )
        .await;
    let der = t
        .get(
            &format!("/v1/tenants/{tid}/ca-certificates/{serial}?format=der"),
            &admin,
        )
        .await;
    assert_eq!(
        ferro_service::platform::pem_body(std::str::from_utf8(&pem.raw).unwrap()).unwrap(),
        der.raw
    );
    // Issue a device certificate with the tenant's CA key (as attestation will), check it
    // against the downloaded chain with openssl, and against tenant B's chain (must fail).
    let keys = FileKeyStore::open(&t.dir.path().join("data/keys")).unwrap();
    let ca = ferro_pki::TenantCa::from_der(&der.raw).unwrap();
    assert!(keys.exists(&KeyName::tenant_image(ca.tenant_id())).unwrap());
    assert!(
        keys.exists(&KeyName::tenant_metadata(ca.tenant_id()))
            .unwrap()
    );
    let device_key = SoftwareSigningKey::generate();
    let device_id = ferro_signing::DeviceId::from_public_key(device_key.public_key());
    let cert = ferro_pki::issue_device_certificate(
        &ca,
        &keys,
        &device_id,
        ca.tenant_id(),
        device_key.public_key(),
        time::OffsetDateTime::now_utc(),
        ferro_pki::DEVICE_CERT_VALIDITY,
    )
    .unwrap();
    let chain_b = t
        .get(&format!("/v1/tenants/{tb}/ca-certificates/chain"), &admin_b)
        .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("chain.pem"), &chain.raw).unwrap();
    std::fs::write(dir.path().join("chain_b.pem"), &chain_b.raw).unwrap();
    std::fs::write(dir.path().join("device.pem"), cert.pem()).unwrap();
    let (ok, out) = openssl_verify(dir.path(), "chain.pem", "device.pem");
    assert!(ok, "{out}");
    let (ok, out) = openssl_verify(dir.path(), "chain_b.pem", "device.pem");
    assert!(!ok, "{out}");
    // Proof of possession: CN = the code, signed by the CA.
    let r = t
        .post(
            &format!("/v1/tenants/{tid}/ca-certificates/{serial}/proof"),
            &admin,
            json!({"verificationCode": "0123ABCD"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    std::fs::write(dir.path().join("proof.pem"), &r.raw).unwrap();
    let (ok, out) = openssl_verify(dir.path(), "chain.pem", "proof.pem");
    assert!(ok, "{out}");
    let subject = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-in"])
        .arg(dir.path().join("proof.pem"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&subject.stdout).contains("0123ABCD"));
    let r = t
        .post(
            &format!("/v1/tenants/{tid}/ca-certificates/{serial}/proof"),
            &admin,
            json!({"verificationCode": "bad code!"}),
        )
        .await;
    assert_eq!(r.code(), "invalid_body");
    // Another tenant's serial is a missing one; a malformed serial is invalid_id.
    let r = t
        .get(
            &format!("/v1/tenants/{tb}/ca-certificates/{serial}"),
            &admin_b,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = t
        .get(&format!("/v1/tenants/{tid}/ca-certificates/xyz"), &admin)
        .await;
    assert_eq!(r.code(), "invalid_id");
}

async fn error_report_is_safe_csv(t: &TestApp) {
    use ferro_service::device_events::{DeviceEvent, record_device_events};
    let (tid, admin) = t.tenant().await;
    let (tb, admin_b) = t.tenant().await;
    // The scope a device of each tenant acts in (as its certificate gives it).
    let scope_of = |t: &str| ferro_service::authz::service_scope(t.parse().unwrap());
    let (scope, scope_b) = (scope_of(&tid), scope_of(&tb));
    let dev = t.claimed_device(&tid, &admin).await;
    let now = ferro_service::db::now();
    let dev_id: ferro_wire::DeviceId = dev.parse().expect("a device ID");
    let ev = |description: &str, ty: &str| DeviceEvent {
        device_id: dev_id,
        event_type: ty.into(),
        event_class: "Errors".into(),
        event_category: "AppExit".into(),
        count: 3,
        description: description.into(),
        start: now - 3600,
        end: now,
    };
    let mut tx = t.db.begin_write().await.unwrap();
    record_device_events(
        &mut tx,
        &scope,
        &[
            ev("=HYPERLINK(\"http://evil\",\"x\")", "AppCrash"),
            ev("exit code 1, \"quoted\"", "+cmd"),
        ],
    )
    .await
    .unwrap();
    // Events of another tenant's device are refused.
    let err = record_device_events(&mut tx, &scope_b, &[ev("x", "y")])
        .await
        .unwrap_err();
    assert_eq!(err.code(), ferro_wire::ErrorCode::NotFound);
    tx.rollback().await.unwrap();
    let mut tx = t.db.begin_write().await.unwrap();
    record_device_events(
        &mut tx,
        &scope,
        &[
            ev("=HYPERLINK(\"http://evil\",\"x\")", "AppCrash"),
            ev("exit code 1, \"quoted\"", "+cmd"),
        ],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let r = t
        .get(
            &format!("/v1/tenants/{tid}/error-report?format=csv"),
            &admin,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = String::from_utf8(r.raw).unwrap();
    let lines: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(
        lines[0],
        "Device ID,Event Type,Event Class,Event Category,Event Count,Description,Start Time,End Time"
    );
    let start = ferro_service::db::ts(now - 3600)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let end = ferro_service::db::ts(now)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    assert_eq!(
        lines[1],
        format!(
            "{dev},AppCrash,Errors,AppExit,3,\"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\",{start},{end}"
        )
    );
    assert_eq!(
        lines[2],
        format!("{dev},'+cmd,Errors,AppExit,3,\"exit code 1, \"\"quoted\"\"\",{start},{end}")
    );
    assert_eq!(lines.len(), 4);
    // Tenant B sees only its header.
    let r = t
        .get(&format!("/v1/tenants/{tb}/error-report"), &admin_b)
        .await;
    assert_eq!(String::from_utf8(r.raw).unwrap().lines().count(), 1);
    let r = t
        .get(
            &format!("/v1/tenants/{tid}/error-report?format=xml"),
            &admin,
        )
        .await;
    assert_eq!(r.code(), "invalid_query");
}

fn tls_client(root_pem: &[u8]) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let der = ferro_service::platform::pem_body(std::str::from_utf8(root_pem).unwrap()).unwrap();
    let config = ferro_tls::client_config(&[der.into()], None).unwrap();
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .build()
        .unwrap()
}

async fn https_under_the_platform_root(t: &TestApp) {
    let data = t.dir.path().join("data");
    let (chain, signer) =
        ferro_service::platform::service_tls(&data, &t.state.platform, &[]).unwrap();
    let config = ferro_service::server::tls_config(&chain, signer).unwrap();
    let listener = ferro_service::server::bind("127.0.0.1:0", Some(config))
        .await
        .unwrap();
    assert_eq!(listener.scheme(), "https");
    let port = listener.local_addr().port();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let h = tokio::spawn(ferro_service::server::serve(
        listener,
        ferro_service::build_app(t.state.clone()),
        async {
            let _ = rx.await;
        },
    ));
    let root = std::fs::read(data.join("pki/platform-root.pem")).unwrap();
    let good = tls_client(&root);
    for host in ["localhost", "127.0.0.1"] {
        let r = good
            .get(format!("https://{host}:{port}/healthz"))
            .send()
            .await
            .expect("trusted root connects");
        assert_eq!(r.status(), 200);
    }
    // The root served by the API is the same file.
    let served = good
        .get(format!(
            "https://127.0.0.1:{port}/v1/platform/root-certificate"
        ))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(served.as_ref(), root.as_slice());
    // A client trusting another root is refused.
    let other_key = SoftwareSigningKey::generate();
    let other_root =
        ferro_pki::issue_platform_root_certificate(&other_key, time::OffsetDateTime::now_utc())
            .unwrap();
    let bad = tls_client(other_root.pem().as_bytes());
    assert!(
        bad.get(format!("https://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .is_err()
    );
    // Plain HTTP to the TLS port gets nothing useful.
    let _ = stop.send(());
    h.await.unwrap().unwrap();
    // Plain HTTP is for loopback only.
    let e = ferro_service::server::bind("0.0.0.0:0", None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("loopback"), "{e}");
}
