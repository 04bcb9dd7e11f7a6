//! Tenant CA rotation, on SQLite and PostgreSQL: when the tenant's only CA nears its end, the
//! next one is made on first use, exactly once even under concurrent requests, and both are in
//! the chain during the overlap.

mod common;

use axum::http::StatusCode;
use base64ct::{Base64, Encoding};
use common::TestApp;
use ferro_pki::{TENANT_CA_ROTATION_MARGIN, TENANT_CA_VALIDITY, create_tenant_ca};
use time::{Duration, OffsetDateTime};

both!(
    next_ca_is_made_once_before_expiry,
    another_replicas_ca_change_is_used_at_once
);

/// Replaces the tenant's CAs by one that expires in `remaining`, as another replica's
/// transaction would (raising the tenant's CA generation).
async fn plant_ageing_ca(t: &TestApp, tid: &str, remaining: Duration) -> String {
    let not_before = OffsetDateTime::now_utc() - TENANT_CA_VALIDITY + remaining;
    plant_ca(t, tid, not_before).await
}

/// Replaces the tenant's CAs by a new one valid from `not_before` (see [`plant_ageing_ca`]).
async fn plant_ca(t: &TestApp, tid: &str, not_before: OffsetDateTime) -> String {
    let tenant = tid.parse().expect("tenant UUID");
    let ca =
        create_tenant_ca(&*t.state.platform.keys, tenant, "Planted", not_before).expect("a CA");
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
    t.exec(&format!(
        "UPDATE tenants SET ca_generation = ca_generation + 1 WHERE id = '{tid}'"
    ))
    .await;
    ca.serial_hex()
}

/// The serial (lowercase hex) of the CA in `chain_pem` that signed `cert_pem` (verified).
fn issuer_serial_of(chain_pem: &str, cert_pem: &str) -> String {
    let cas: Vec<_> = pem::parse_many(chain_pem)
        .expect("chain PEM")
        .iter()
        .map(|block| ferro_pki::TenantCa::from_der(block.contents()).expect("CA"))
        .collect();
    let cert = pem::parse(cert_pem).expect("certificate PEM");
    ferro_pki::verify_device_certificate(cert.contents(), &cas, OffsetDateTime::now_utc())
        .expect("the certificate verifies under the returned chain")
        .ca_serial()
        .to_string()
}

async fn another_replicas_ca_change_is_used_at_once(t: &TestApp) {
    let (tid, admin) = t.tenant().await;
    let d = common::devices::claimed(t, &tid, &admin).await;
    // The first attestation fills this process's CA cache for the tenant.
    let first = common::devices::attest(t, &d).await;
    assert_eq!(first["verdict"], "Trusted", "{first}");
    let old = t
        .get(&format!("/v1/tenants/{tid}/ca-certificates"), &admin)
        .await;
    let old_serial = old.body[0]["serial"].as_str().expect("serial").to_string();
    // Another replica replaces the tenant's CAs (as a revocation with its successor would).
    let new_serial = plant_ca(t, &tid, OffsetDateTime::now_utc() - Duration::hours(1)).await;
    assert_ne!(new_serial, old_serial);
    // The next attestation here signs with the new CA and returns only its chain.
    let next = common::devices::attest(t, &d).await;
    assert_eq!(next["verdict"], "Trusted", "{next}");
    let chain = next["caChainPem"].as_str().expect("chain");
    assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 1, "{chain}");
    let cert = next["certificatePem"].as_str().expect("certificate");
    assert_eq!(issuer_serial_of(chain, cert), new_serial);
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
