//! Tenant CA rotation, on SQLite and PostgreSQL: when the tenant's only CA nears its end, the
//! next one is made on first use, exactly once even under concurrent requests, and both are in
//! the chain during the overlap.

mod common;

use axum::http::StatusCode;
use base64ct::{Base64, Encoding};
use common::TestApp;
use ferro_pki::{TENANT_CA_ROTATION_MARGIN, TENANT_CA_VALIDITY, create_tenant_ca};
use time::{Duration, OffsetDateTime};

both!(next_ca_is_made_once_before_expiry);

/// Replaces the tenant's CAs by one that expires in `remaining`.
async fn plant_ageing_ca(t: &TestApp, tid: &str, remaining: Duration) -> String {
    let not_before = OffsetDateTime::now_utc() - TENANT_CA_VALIDITY + remaining;
    let tenant = tid.parse().expect("tenant UUID");
    let ca =
        create_tenant_ca(&*t.state.platform.keys, tenant, "Ageing", not_before).expect("ageing CA");
    t.exec(&format!(
        "UPDATE tenant_cas SET status = 'revoked' WHERE tenant_id = '{tid}'"
    ))
    .await;
    t.exec(&format!(
        "INSERT INTO tenant_cas (tenant_id, serial, der, sha1_thumbprint, sha256_thumbprint, \
         not_before, not_after, status, created_at) VALUES ('{tid}', '{}', '{}', '{}', '{}', {}, {}, 'active', {})",
        ca.serial_hex(),
        Base64::encode_string(ca.der()),
        ca.sha1_thumbprint(),
        ca.sha256_thumbprint(),
        ca.not_before().unix_timestamp(),
        ca.not_after().unix_timestamp(),
        OffsetDateTime::now_utc().unix_timestamp(),
    ))
    .await;
    ca.serial_hex()
}

async fn next_ca_is_made_once_before_expiry(t: &TestApp) {
    let (tid, admin) = t.tenant().await;
    // Inside the rotation margin, but still able to issue (before the cut-over).
    let remaining = TENANT_CA_ROTATION_MARGIN - Duration::days(15);
    let old_serial = plant_ageing_ca(t, &tid, remaining).await;
    let path = format!("/v1/tenants/{tid}/ca-certificates");

    // Concurrent first uses: one new CA, never two.
    let lists = futures_util::future::join_all((0..6).map(|_| t.get(&path, &admin))).await;
    for list in &lists {
        assert_eq!(list.status, StatusCode::OK, "{:?}", list.body);
    }
    let active = t
        .count(&format!(
            "SELECT COUNT(*) FROM tenant_cas WHERE tenant_id = '{tid}' AND status = 'active'"
        ))
        .await;
    assert_eq!(active, 2, "exactly one successor");

    let list = t.get(&path, &admin).await;
    let items = list.body.as_array().expect("list");
    assert_eq!(items.len(), 2, "{:?}", list.body);
    let old = items
        .iter()
        .find(|ca| ca["serial"] == old_serial.as_str())
        .expect("the ageing CA is listed");
    let new = items
        .iter()
        .find(|ca| ca["serial"] != old_serial.as_str())
        .expect("its successor is listed");
    let new_not_after = OffsetDateTime::parse(
        new["notAfter"].as_str().expect("notAfter"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("RFC 3339");
    assert!(new_not_after > OffsetDateTime::now_utc() + TENANT_CA_VALIDITY - Duration::days(2));
    let statuses = [old["status"].as_str(), new["status"].as_str()];
    assert!(statuses.contains(&Some("Current")), "{statuses:?}");

    // During the overlap, the chain holds both, so brokers trust devices of either generation.
    let chain = t.get(&format!("{path}/chain"), &admin).await;
    assert_eq!(chain.status, StatusCode::OK);
    let pem = String::from_utf8(chain.raw.clone()).expect("PEM");
    assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 2, "{pem}");
}
