//! Who may own a device (docs/service/README.md, "Claiming and ownership"), on SQLite and
//! PostgreSQL, each test an attack that must fail: claiming without the claim code or with a
//! wrong one, assignments and reassignments by anyone but a platform operator, transfers created
//! or accepted by the wrong tenant or role, an expired transfer offer accepted, the old tenant
//! keeping a transferred device, and a registration body read for a caller who may not register.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use base64ct::{Base64, Encoding};
use common::device_https::{Server, certified, json_of, send};
use common::devices::attest;
use common::{Resp, TestApp, registration_record};
use ferro_pki::PlatformKeyRole;
use ferro_signing::PublicKey;
use ferro_trust::RootOfTrust;
use serde_json::{Value, json};

both!(
    registration_is_authorized_before_its_body_is_read,
    claims_need_the_claim_code,
    operators_assign_devices_in_bulk,
    transfers_need_both_tenants_administrators,
    transfer_offers_expire,
    a_transferred_device_leaves_its_old_tenant,
    operator_reassignment_needs_a_reason_and_is_audited,
    a_waiting_device_hears_of_its_new_owner_at_once,
);

async fn claim(t: &TestApp, tid: &str, token: &str, devices: &[(&str, &str)]) -> Resp {
    let devices: Vec<Value> = devices
        .iter()
        .map(|(id, code)| json!({ "deviceId": id, "claimCode": code }))
        .collect();
    t.post(
        &format!("/v1/tenants/{tid}/devices/claim"),
        token,
        json!({ "devices": devices }),
    )
    .await
}

/// A registration request with a raw body and headers, as `token`.
async fn register_raw(t: &TestApp, token: &str, body: Vec<u8>, length: Option<u64>) -> Resp {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri("/v1/manufacturing/registrations")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json");
    if let Some(n) = length {
        req = req.header("content-length", n.to_string());
    }
    t.send(req.body(Body::from(body)).unwrap()).await
}

/// Issue 16 item 8: a caller who is not a platform operator must be refused before the service
/// reads (up to 24 MiB of) the body, so the answer is 403 whatever the body is: malformed JSON
/// of several MiB, a declared length over the limit, or a valid upload (which stores nothing).
async fn registration_is_authorized_before_its_body_is_read(t: &TestApp) {
    let (_, admin) = t.tenant().await;
    let before = t.count("SELECT COUNT(*) FROM device_registrations").await;
    // Malformed JSON: parsed, this would be 422 malformed_json.
    let r = register_raw(t, &admin, vec![b'{'; 4 * 1024 * 1024], None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert_eq!(r.code(), "forbidden");
    // A declared length over the limit: read, this would be 413 payload_too_large.
    let r = register_raw(t, &admin, b"{}".to_vec(), Some(100 * 1024 * 1024)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    // A valid upload: refused, nothing stored.
    let body = serde_json::to_vec(&json!({ "records": [registration_record().1] })).unwrap();
    let r = register_raw(t, &admin, body, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert_eq!(
        t.count("SELECT COUNT(*) FROM device_registrations").await,
        before
    );
    // Without a token: 401 before the body too.
    let req = Request::builder()
        .method(Method::POST)
        .uri("/v1/manufacturing/registrations")
        .header("content-type", "application/json")
        .body(Body::from(vec![b'['; 1024 * 1024]))
        .unwrap();
    assert_eq!(t.send(req).await.status, StatusCode::UNAUTHORIZED);
    // The operator's malformed body is still parsed and refused as such.
    let r = register_raw(t, &t.operator.clone(), b"{".to_vec(), None).await;
    assert_eq!(r.code(), "malformed_json", "{:?}", r.body);
}

/// Issue 16 item 3: knowing a device ID (factory lists, registration records, the device's local
/// API) is not enough to claim it; the claim code is, once, and a wrong code tells nothing.
async fn claims_need_the_claim_code(t: &TestApp) {
    let (ta, admin_a) = t.tenant().await;
    let (tb, admin_b) = t.tenant().await;
    let (id, code) = t.register_device_with_code().await;
    // The code is 128 random bits, shown once; only its SHA-256 is stored.
    assert_eq!(
        ferro_wire::parse_claim_code(&code).map(|b| b.len()),
        Some(16)
    );
    let stored = t
        .count(&format!(
            "SELECT COUNT(*) FROM device_registrations WHERE device_id = '{id}' \
             AND claim_code_sha256 IS NOT NULL AND claim_code_sha256 <> '{code}'"
        ))
        .await;
    assert_eq!(stored, 1);
    // The claim without a code, as before: refused, and so is the old request shape.
    let r = t
        .post(
            &format!("/v1/tenants/{ta}/devices/claim"),
            &admin_a,
            json!({ "deviceIds": [id] }),
        )
        .await;
    assert!(r.status.is_client_error(), "{:?}", r.body);
    let r = t
        .post(
            &format!("/v1/tenants/{ta}/devices/claim"),
            &admin_a,
            json!({ "devices": [{ "deviceId": id }] }),
        )
        .await;
    assert!(r.status.is_client_error(), "{:?}", r.body);
    // A wrong code answers exactly as an unknown device does (no oracle).
    let mut wrong = ferro_wire::parse_claim_code(&code).unwrap();
    wrong[15] ^= 1;
    let wrong = ferro_wire::format_claim_code(&wrong);
    let (unknown, _) = registration_record();
    let w = claim(t, &ta, &admin_a, &[(&id, &wrong)]).await;
    let u = claim(t, &ta, &admin_a, &[(&unknown, &wrong)]).await;
    assert_eq!(w.status, StatusCode::NOT_FOUND, "{:?}", w.body);
    assert_eq!(w.code(), "device_not_registered");
    let strip = |r: &Resp| {
        let mut b = r.body.clone();
        b["error"]["details"][0]["id"] = Value::Null;
        b
    };
    assert_eq!((w.status, strip(&w)), (u.status, strip(&u)));
    assert_eq!(t.count("SELECT COUNT(*) FROM devices").await, 0);
    // The right code claims it (hyphens, spaces and case do not matter) ...
    let typed = code.replace('-', " ").to_uppercase();
    let r = claim(t, &ta, &admin_a, &[(&id, &typed)]).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body, json!({"claimed": 1, "alreadyOwned": 0}));
    // ... once: the code is used up, so whoever else saw it cannot take the device.
    let r = claim(t, &tb, &admin_b, &[(&id, &code)]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
    assert_eq!(r.code(), "device_not_registered");
    assert_eq!(
        t.count(&format!(
            "SELECT COUNT(*) FROM device_registrations WHERE device_id = '{id}' \
             AND claim_code_sha256 IS NULL"
        ))
        .await,
        1
    );
    // The owner's repeat is idempotent.
    let r = claim(t, &ta, &admin_a, &[(&id, &code)]).await;
    assert_eq!(r.body, json!({"claimed": 0, "alreadyOwned": 1}));
    // A device registered before claim codes (no hash) cannot be claimed with any code.
    let (old, old_code) = t.register_device_with_code().await;
    t.exec(&format!(
        "UPDATE device_registrations SET claim_code_sha256 = NULL WHERE device_id = '{old}'"
    ))
    .await;
    let r = claim(t, &tb, &admin_b, &[(&old, &old_code)]).await;
    assert_eq!(r.code(), "device_not_registered");
    // A Reader cannot claim, even with the code.
    let (d2, c2) = t.register_device_with_code().await;
    let (_, reader, _) = t.user(Some((&tb, "Reader", &admin_b))).await;
    let r = claim(t, &tb, &reader, &[(&d2, &c2)]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Codes never reach the audit log.
    let audit = t
        .get(&format!("/v1/tenants/{ta}/audit-log"), &admin_a)
        .await;
    assert!(!String::from_utf8_lossy(&audit.raw).contains(&code[..8]));
    // A repeated registration shows no code (it was shown once).
    let _ = t.register_device_with_code().await;
}

/// The manufacturer's bulk flow: a platform operator assigns registered devices to a tenant
/// without codes; no one else may, and a device another tenant holds is not taken this way.
async fn operators_assign_devices_in_bulk(t: &TestApp) {
    let (ta, admin_a) = t.tenant().await;
    let (tb, admin_b) = t.tenant().await;
    let mut devices = Vec::new();
    for _ in 0..3 {
        devices.push(t.register_device_with_code().await);
    }
    let ids: Vec<&str> = devices.iter().map(|(id, _)| id.as_str()).collect();
    let body = json!({ "tenantId": ta, "deviceIds": ids });
    // A tenant administrator is not a platform operator.
    let r = t
        .post("/v1/manufacturing/assignments", &admin_a, body.clone())
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(t.count("SELECT COUNT(*) FROM devices").await, 0);
    // An unknown tenant.
    let r = t
        .post(
            "/v1/manufacturing/assignments",
            &t.operator,
            json!({ "tenantId": uuid::Uuid::now_v7(), "deviceIds": ids }),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
    let r = t
        .post("/v1/manufacturing/assignments", &t.operator, body.clone())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body, json!({"claimed": 3, "alreadyOwned": 0}));
    let r = t
        .get(&format!("/v1/tenants/{ta}/devices/count"), &admin_a)
        .await;
    assert_eq!(r.body["count"], 3);
    // Idempotent; the codes are used up; B cannot be assigned A's devices in bulk.
    let r = t
        .post("/v1/manufacturing/assignments", &t.operator, body)
        .await;
    assert_eq!(r.body, json!({"claimed": 0, "alreadyOwned": 3}));
    let r = claim(t, &tb, &admin_b, &[(&devices[0].0, &devices[0].1)]).await;
    assert_eq!(r.code(), "device_not_registered");
    let r = t
        .post(
            "/v1/manufacturing/assignments",
            &t.operator,
            json!({ "tenantId": tb, "deviceIds": [ids[0]] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert_eq!(r.code(), "already_claimed");
    assert!(
        t.count(&format!(
            "SELECT COUNT(*) FROM audit_log WHERE tenant_id = '{ta}' AND action = 'device.assign'"
        ))
        .await
            >= 1
    );
}

async fn offer(t: &TestApp, from: &str, token: &str, device: &str, to: &str) -> Resp {
    t.post(
        &format!("/v1/tenants/{from}/devices/{device}/transfers"),
        token,
        json!({ "targetTenantId": to }),
    )
    .await
}

async fn act(t: &TestApp, tid: &str, token: &str, transfer: &str, what: &str) -> Resp {
    t.call(
        Method::POST,
        &format!("/v1/tenants/{tid}/device-transfers/{transfer}/{what}"),
        Some(token),
        None,
    )
    .await
}

/// A transfer needs an Administrator of the sending tenant to offer and one of the receiving
/// tenant to accept; no one else can do either, and a cancelled offer cannot be accepted.
async fn transfers_need_both_tenants_administrators(t: &TestApp) {
    let (ta, admin_a) = t.tenant().await;
    let (tb, admin_b) = t.tenant().await;
    let (tc, admin_c) = t.tenant().await;
    let (_, contributor_a, _) = t.user(Some((&ta, "Contributor", &admin_a))).await;
    let (_, contributor_b, _) = t.user(Some((&tb, "Contributor", &admin_b))).await;
    let device = t.claimed_device(&ta, &admin_a).await;
    // Creating: not a Contributor of A, not B for A's device (even naming its own tenant), not
    // for a device A does not hold, not to A itself.
    let r = offer(t, &ta, &contributor_a, &device, &tb).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    let r = offer(t, &ta, &admin_b, &device, &tb).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
    let r = offer(t, &tb, &admin_b, &device, &tb).await;
    assert!(r.status.is_client_error(), "{:?}", r.body);
    let r = offer(t, &tb, &admin_b, &device, &ta).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
    let r = offer(t, &ta, &admin_a, &device, &ta).await;
    assert_eq!(r.code(), "invalid_body");
    assert_eq!(t.count("SELECT COUNT(*) FROM device_transfers").await, 0);
    // A's Administrator offers it to B; one pending offer per device.
    let r = offer(t, &ta, &admin_a, &device, &tb).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["state"], "Pending");
    let transfer = r.body["id"].as_str().unwrap().to_string();
    let r = offer(t, &ta, &admin_a, &device, &tc).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    // Accepting: not the sender, not a third tenant (through its own path or A's or B's), not
    // B's Contributor.
    for (tid, token, status) in [
        (&ta, &admin_a, StatusCode::NOT_FOUND),
        (&tc, &admin_c, StatusCode::NOT_FOUND),
        (&tb, &admin_c, StatusCode::NOT_FOUND),
        (&ta, &admin_c, StatusCode::NOT_FOUND),
        (&tb, &contributor_b, StatusCode::FORBIDDEN),
    ] {
        let r = act(t, tid, token, &transfer, "accept").await;
        assert_eq!(r.status, status, "{tid}: {:?}", r.body);
    }
    let r = t
        .get(&format!("/v1/tenants/{ta}/devices/{device}"), &admin_a)
        .await;
    assert_eq!(r.status, StatusCode::OK, "still A's: {:?}", r.body);
    // C cannot cancel it either; B declines it; a declined offer cannot be accepted.
    let r = act(t, &tc, &admin_c, &transfer, "cancel").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = act(t, &tb, &admin_b, &transfer, "cancel").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["state"], "Cancelled");
    let r = act(t, &tb, &admin_b, &transfer, "accept").await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    // A new offer, accepted by B's Administrator.
    let r = offer(t, &ta, &admin_a, &device, &tb).await;
    let transfer = r.body["id"].as_str().unwrap().to_string();
    let r = t
        .get(&format!("/v1/tenants/{tb}/device-transfers"), &admin_b)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body[0]["id"], transfer);
    let r = t
        .get(
            &format!("/v1/tenants/{tb}/device-transfers"),
            &contributor_b,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = act(t, &tb, &admin_b, &transfer, "accept").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["state"], "Accepted");
    let r = act(t, &tb, &admin_b, &transfer, "accept").await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = t
        .get(&format!("/v1/tenants/{tb}/devices/{device}"), &admin_b)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["tenantId"], tb);
    // A no longer sees or acts on it, and cannot offer it again.
    let r = t
        .get(&format!("/v1/tenants/{ta}/devices/{device}"), &admin_a)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = t
        .patch(
            &format!("/v1/tenants/{ta}/devices/{device}"),
            &admin_a,
            json!({ "blocked": true }),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = offer(t, &ta, &admin_a, &device, &tc).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Audited on both sides.
    for tid in [&ta, &tb] {
        assert_eq!(
            t.count(&format!(
                "SELECT COUNT(*) FROM audit_log WHERE tenant_id = '{tid}' \
                 AND action = 'device.transfer.accept'"
            ))
            .await,
            1
        );
    }
}

/// Issue 16 item 3: a transfer offer expires (`expiresInDays`, 1 to 90, default 14, on the
/// service's clock). An expired offer cannot be accepted (`transfer_expired`, nothing changes:
/// the device stays the sender's, nothing is audited as accepted) nor cancelled, is listed as
/// Expired on both sides, and no longer blocks a new offer of the device.
async fn transfer_offers_expire(t: &TestApp) {
    const DAY: i64 = 86_400;
    let (ta, admin_a) = t.tenant().await;
    let (tb, admin_b) = t.tenant().await;
    let (tc, admin_c) = t.tenant().await;
    let device = t.claimed_device(&ta, &admin_a).await;
    let offer_for = |days: Value| {
        let (ta, admin_a, device, tb) = (ta.clone(), admin_a.clone(), device.clone(), tb.clone());
        async move {
            t.post(
                &format!("/v1/tenants/{ta}/devices/{device}/transfers"),
                &admin_a,
                json!({ "targetTenantId": tb, "expiresInDays": days }),
            )
            .await
        }
    };
    // The bounds of `expiresInDays`: refused with a message naming them, nothing stored.
    for days in [
        json!(0),
        json!(91),
        json!(-1),
        json!(1.5),
        json!("7"),
        json!(u64::MAX),
    ] {
        let r = offer_for(days.clone()).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{days}: {:?}",
            r.body
        );
        assert_eq!(r.code(), "invalid_body", "{days}: {:?}", r.body);
        if days.is_u64() && days.as_u64() < Some(1000) {
            let message = r.body["error"]["message"].as_str().unwrap();
            assert!(
                message.contains("`expiresInDays` must be 1 to 90"),
                "{message}"
            );
        }
    }
    assert_eq!(t.count("SELECT COUNT(*) FROM device_transfers").await, 0);
    let lifetime = |r: &Resp| {
        let at = |k: &str| {
            time::OffsetDateTime::parse(
                r.body[k].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap()
            .unix_timestamp()
        };
        at("expiresAt") - at("createdAt")
    };
    // The longest offer, cancelled; then the shortest.
    let r = offer_for(json!(90)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(lifetime(&r), 90 * DAY);
    let id = r.body["id"].as_str().unwrap().to_string();
    let r = act(t, &ta, &admin_a, &id, "cancel").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = offer_for(json!(1)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(lifetime(&r), DAY);
    assert_eq!(r.body["state"], "Pending");
    let expired = r.body["id"].as_str().unwrap().to_string();
    // Just before the expiry it is still pending (and blocks another offer); at it, expired.
    t.state
        .clock
        .advance(std::time::Duration::from_secs(DAY as u64 - 60));
    let r = offer(t, &ta, &admin_a, &device, &tc).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    t.state.clock.advance(std::time::Duration::from_secs(60));
    let r = act(t, &tb, &admin_b, &expired, "accept").await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert_eq!(r.code(), "transfer_expired", "{:?}", r.body);
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("new offer"), "{message}");
    // Nothing changed: the device is A's, nothing accepted, the row still as stored.
    let r = t
        .get(&format!("/v1/tenants/{ta}/devices/{device}"), &admin_a)
        .await;
    assert_eq!(r.status, StatusCode::OK, "still A's: {:?}", r.body);
    assert_eq!(r.body["tenantId"], ta);
    let r = t
        .get(&format!("/v1/tenants/{tb}/devices/{device}"), &admin_b)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
    assert_eq!(
        t.count("SELECT COUNT(*) FROM audit_log WHERE action = 'device.transfer.accept'")
            .await,
        0
    );
    assert_eq!(
        t.count(&format!(
            "SELECT COUNT(*) FROM device_transfers WHERE id = '{expired}' \
             AND state = 'Pending' AND closed_at IS NULL"
        ))
        .await,
        1
    );
    // Neither side can cancel it; both list it as Expired.
    for (tid, token) in [(&ta, &admin_a), (&tb, &admin_b)] {
        let r = act(t, tid, token, &expired, "cancel").await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
        assert_eq!(r.code(), "transfer_expired", "{:?}", r.body);
        let r = t
            .get(&format!("/v1/tenants/{tid}/device-transfers"), token)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        assert_eq!(r.body[0]["id"], expired);
        assert_eq!(r.body[0]["state"], "Expired");
        assert_eq!(r.body[0]["closedAt"], Value::Null);
    }
    // A new offer (default lifetime) to C, accepted; the expired one stays Expired.
    let r = offer(t, &ta, &admin_a, &device, &tc).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(lifetime(&r), 14 * DAY);
    let fresh = r.body["id"].as_str().unwrap().to_string();
    let r = act(t, &tc, &admin_c, &fresh, "accept").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["state"], "Accepted");
    let r = t
        .get(&format!("/v1/tenants/{tb}/device-transfers"), &admin_b)
        .await;
    assert_eq!(r.body[0]["id"], expired);
    assert_eq!(r.body[0]["state"], "Expired");
    let r = act(t, &tb, &admin_b, &expired, "accept").await;
    assert_eq!(r.code(), "transfer_expired", "{:?}", r.body);
    let r = t
        .get(&format!("/v1/tenants/{tc}/devices/{device}"), &admin_c)
        .await;
    assert_eq!(r.status, StatusCode::OK, "C's now: {:?}", r.body);
}

/// After a transfer the old tenant's grip is gone: its group, capabilities and block are
/// cleared, the certificate the device holds (naming the old tenant) no longer opens the device
/// routes, and at its next attestation the device gets the new tenant's certificate and an
/// ownership document that a device holding the old one accepts (a newer ownership epoch).
async fn a_transferred_device_leaves_its_old_tenant(t: &TestApp) {
    let (ta, admin_a) = t.tenant().await;
    let (tb, admin_b) = t.tenant().await;
    let product = t.product(&ta, &admin_a, false).await;
    let groups = t
        .get(
            &format!("/v1/tenants/{ta}/device-groups?product={product}"),
            &admin_a,
        )
        .await;
    let group = groups.body["items"][0]["id"].as_str().unwrap().to_string();
    let s = Server::start(t).await;
    let d = certified(t, &s, &ta, &admin_a).await;
    let did = d.id().to_string();
    let r = t
        .patch(
            &format!("/v1/tenants/{ta}/devices/{did}"),
            &admin_a,
            json!({ "deviceGroupId": group }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = t
        .post(
            &format!("/v1/tenants/{ta}/devices/{did}/capabilities"),
            &admin_a,
            json!({ "type": "FieldServicing" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    // Before: A's documents, which the device accepts and pins.
    let url = format!("{}/v1/device/target-set", s.url);
    let (status, _, raw) = send(d.http.get(&url)).await;
    assert_eq!(status, StatusCode::OK);
    let before = json_of(&raw);
    let root_key =
        PublicKey::from_spki_der(t.state.platform.root.subject_public_key_info()).unwrap();
    let list = ferro_pki::verify_key_list(&t.state.platform.key_list, &root_key).unwrap();
    let device_dir = tempfile::tempdir().unwrap();
    let updates = ferro_update::UpdateDir::open(device_dir.path().join("update")).unwrap();
    let accept = |body: &Value| {
        ferro_update::accept_target_set(
            &updates,
            &d.dev.rot,
            &list,
            &Base64::decode_vec(body["targetSet"].as_str().unwrap()).unwrap(),
            &Base64::decode_vec(body["ownership"].as_str().unwrap()).unwrap(),
            None,
        )
    };
    let held = accept(&before).unwrap();
    assert_eq!(held.ownership().tenant_id().to_string(), ta);

    // The transfer.
    let r = offer(t, &ta, &admin_a, &did, &tb).await;
    let transfer = r.body["id"].as_str().unwrap().to_string();
    let r = act(t, &tb, &admin_b, &transfer, "accept").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = t
        .get(&format!("/v1/tenants/{tb}/devices/{did}"), &admin_b)
        .await;
    assert_eq!(r.body["deviceGroupId"], Value::Null, "{:?}", r.body);
    assert_eq!(r.body["blocked"], false);
    assert_eq!(
        t.count(&format!(
            "SELECT COUNT(*) FROM device_capabilities WHERE device_id = '{did}' \
             AND revoked_at IS NULL"
        ))
        .await,
        0
    );
    // The old certificate names A: refused on the device routes at once.
    let (status, _, raw) = send(d.http.get(&url)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{:?}", json_of(&raw));
    // The next attestation: B's certificate, chain and documents.
    let v = attest(t, &d.dev).await;
    assert_eq!(v["verdict"], "Trusted", "{v}");
    let cert = ferro_service::platform::pem_body(v["certificatePem"].as_str().unwrap()).unwrap();
    let parsed = ferro_pki::DeviceCertificate::parse(&cert).unwrap();
    assert_eq!(parsed.tenant_id.to_string(), tb, "the certificate names B");
    let http = s.client(Some((cert, d.dev.rot.device_key())));
    let (status, _, raw) = send(http.get(&url)).await;
    assert_eq!(status, StatusCode::OK, "{:?}", json_of(&raw));
    let after = json_of(&raw);
    // The device, pinned to A, accepts B's documents (epoch 1), and A's old ones no longer.
    let moved = accept(&after).unwrap();
    assert_eq!(moved.ownership().tenant_id().to_string(), tb);
    assert_eq!(moved.ownership().document().ownership_epoch, 1);
    let err = accept(&before).unwrap_err();
    assert!(
        matches!(err, ferro_update::UpdateError::TenantChanged { .. }),
        "{err:?}"
    );
    // The endorsement key is the platform's, as for any ownership document.
    let endorsement = list.trusted(PlatformKeyRole::TenantEndorsement);
    assert!(
        ferro_pki::verify_ownership(
            &Base64::decode_vec(after["ownership"].as_str().unwrap()).unwrap(),
            &endorsement,
            &d.dev.rot.device_id()
        )
        .is_ok()
    );
    s.stop().await;
}

/// Disputes: only a platform operator reassigns or unclaims a device, only with a reason, and
/// the platform's and both tenants' audit logs keep it; an unclaimed device gets a new code.
async fn operator_reassignment_needs_a_reason_and_is_audited(t: &TestApp) {
    let (ta, admin_a) = t.tenant().await;
    let (tb, admin_b) = t.tenant().await;
    let device = t.claimed_device(&ta, &admin_a).await;
    let path = format!("/v1/manufacturing/devices/{device}/reassign");
    let r = t
        .post(&path, &admin_a, json!({ "tenantId": tb, "reason": "mine" }))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = t
        .post(&path, &admin_b, json!({ "tenantId": tb, "reason": "mine" }))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    for reason in ["", "   ", &"x".repeat(1001)] {
        let r = t
            .post(
                &path,
                &t.operator,
                json!({ "tenantId": tb, "reason": reason }),
            )
            .await;
        assert_eq!(r.code(), "invalid_body", "{:?}", r.body);
    }
    let r = t.post(&path, &t.operator, json!({ "tenantId": tb })).await;
    assert!(r.status.is_client_error());
    let r = t
        .get(&format!("/v1/tenants/{ta}/devices/{device}"), &admin_a)
        .await;
    assert_eq!(r.status, StatusCode::OK, "nothing changed yet");
    // Reassigned to B, with the reason in the audit logs.
    let reason = "ticket 4711: sold to B, A's claim was a mistake";
    let r = t
        .post(
            &path,
            &t.operator,
            json!({ "tenantId": tb, "reason": reason }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["fromTenantId"], ta);
    assert_eq!(r.body["toTenantId"], tb);
    let r = t
        .get(&format!("/v1/tenants/{ta}/devices/{device}"), &admin_a)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = t
        .get(&format!("/v1/tenants/{tb}/devices/{device}"), &admin_b)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    for (tid, token) in [(&ta, &admin_a), (&tb, &admin_b)] {
        let log = t.get(&format!("/v1/tenants/{tid}/audit-log"), token).await;
        assert!(
            String::from_utf8_lossy(&log.raw).contains("ticket 4711"),
            "{tid}: {:?}",
            log.body
        );
    }
    assert_eq!(
        t.count(
            "SELECT COUNT(*) FROM audit_log WHERE tenant_id IS NULL \
             AND action = 'manufacturing.reassign'"
        )
        .await,
        1
    );
    // Unclaimed: B loses it, a new code is shown, the old holders' codes do not work.
    let r = t
        .post(
            &path,
            &t.operator,
            json!({ "tenantId": null, "reason": "ticket 4712: returned" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["toTenantId"], Value::Null);
    let code = r.body["claimCode"].as_str().unwrap().to_string();
    let r = t
        .get(&format!("/v1/tenants/{tb}/devices/{device}"), &admin_b)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = claim(t, &ta, &admin_a, &[(&device, &code)]).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    // An unknown device.
    let (unknown, _) = registration_record();
    let r = t
        .post(
            &format!("/v1/manufacturing/devices/{unknown}/reassign"),
            &t.operator,
            json!({ "tenantId": tb, "reason": "x" }),
        )
        .await;
    assert_eq!(r.code(), "device_not_registered");
}

/// A device waiting on its update-now long poll when it changes owner (here an operator's
/// reassignment; a transfer's acceptance and an unclaim go through the same
/// `ownership::change_owner`) is answered at once with 401, so that it attests again for its new
/// tenant's certificate instead of learning of the move at its next update check; a new long poll
/// with the old certificate is 401 too. Another device of the old tenant keeps waiting.
async fn a_waiting_device_hears_of_its_new_owner_at_once(t: &TestApp) {
    let (ta, admin_a) = t.tenant().await;
    let (tb, _admin_b) = t.tenant().await;
    let s = Server::start(t).await;
    let moved = certified(t, &s, &ta, &admin_a).await;
    let stays = certified(t, &s, &ta, &admin_a).await;
    let url = format!("{}/v1/device/update-signal?since=&waitSeconds=60", s.url);
    let poll = |http: reqwest::Client| {
        let url = url.clone();
        tokio::spawn(async move {
            let (status, _, raw) = send(http.get(&url)).await;
            (status, json_of(&raw))
        })
    };
    let moved_poll = poll(moved.http.clone());
    let stays_poll = poll(stays.http.clone());
    t.state.signals.wait_for_waiters(2).await;
    let r = t
        .post(
            &format!("/v1/manufacturing/devices/{}/reassign", moved.id()),
            &t.operator,
            json!({ "tenantId": tb, "reason": "ticket 4712" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let (status, body) = tokio::time::timeout(std::time::Duration::from_secs(10), moved_poll)
        .await
        .expect("the long poll ends within seconds of the reassignment, not after 60 s")
        .unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "unauthenticated", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("changed owner") && message.contains("Attest again"),
        "{message}"
    );
    // The old certificate's next long poll is refused at once.
    let (status, _, raw) = send(moved.http.get(&url)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{}", json_of(&raw));
    // The other device was woken too, found itself still A's, and waits on.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(
        !stays_poll.is_finished(),
        "a device that did not move keeps waiting"
    );
    stays_poll.abort();
    s.stop().await;
}
