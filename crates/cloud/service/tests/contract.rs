//! Contract tests: the checked-in OpenAPI document matches the code; the role-by-route matrix
//! (every route of that document × every kind of caller) matches its golden file on both
//! backends; the migrations make the same schema on SQLite and PostgreSQL.
//!
//! `FERRO_BLESS=1 cargo test -p ferro-service --test contract` rewrites the checked-in files.

mod common;

use axum::http::{Method, StatusCode};
use common::{Backend, PASSWORD, TestApp, uniq};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::PathBuf;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

fn bless() -> bool {
    std::env::var("FERRO_BLESS").is_ok_and(|v| v == "1")
}

/// Compare `actual` with the checked-in file, or rewrite it under FERRO_BLESS=1.
fn golden(path: PathBuf, actual: &str) {
    if bless() {
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected != actual {
        let diff: Vec<String> = {
            let e: BTreeSet<&str> = expected.lines().collect();
            let a: BTreeSet<&str> = actual.lines().collect();
            e.symmetric_difference(&a)
                .take(40)
                .map(|l| {
                    if a.contains(l) {
                        format!("+ {l}")
                    } else {
                        format!("- {l}")
                    }
                })
                .collect()
        };
        panic!(
            "{} is out of date with the code (first differences below; + is what the code does now). \
             If the change is intended, run `FERRO_BLESS=1 cargo test -p ferro-service --test contract` \
             and review the diff.\n{}",
            path.display(),
            diff.join("\n")
        );
    }
}

#[test]
fn openapi_document_is_checked_in() {
    golden(
        repo_root().join("openapi/ferrosphere.json"),
        &ferro_service::openapi_json(),
    );
}

/// Every (method, path template) of the OpenAPI document.
fn routes() -> Vec<(Method, String)> {
    let doc: Value = serde_json::from_str(&ferro_service::openapi_json()).expect("openapi json");
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in ["get", "post", "put", "patch", "delete"] {
            if item.get(m).is_some() {
                out.push((
                    Method::from_bytes(m.to_uppercase().as_bytes()).expect("method"),
                    path.clone(),
                ));
            }
        }
    }
    out.sort_by(|a, b| (&a.1, a.0.as_str()).cmp(&(&b.1, b.0.as_str())));
    assert!(
        out.len() >= 30,
        "the OpenAPI document lists too few routes: {}",
        out.len()
    );
    out
}

const CALLERS: [&str; 7] = [
    "anonymous",
    "bad_token",
    "other_tenant_admin",
    "platform_operator",
    "reader",
    "contributor",
    "administrator",
];

struct Tenant {
    id: String,
    logins: Vec<(&'static str, String)>,
}

async fn matrix_line(
    t: &TestApp,
    ten: &Tenant,
    other_admin: &str,
    method: &Method,
    path: &str,
    caller: &str,
) -> String {
    // A fresh session for the caller (logout must not kill the next request's token).
    let token = match caller {
        "anonymous" => None,
        "bad_token" => Some(format!("fst_{}", "A".repeat(43))),
        "platform_operator" => Some(
            t.login(common::ADMIN, PASSWORD).await.body["token"]
                .as_str()
                .unwrap()
                .to_string(),
        ),
        "other_tenant_admin" => Some(
            t.login(other_admin, PASSWORD).await.body["token"]
                .as_str()
                .unwrap()
                .to_string(),
        ),
        role => {
            let login = &ten.logins.iter().find(|(r, _)| *r == role).expect("role").1;
            Some(
                t.login(login, PASSWORD).await.body["token"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        }
    };
    // Fresh objects for this request.
    let admin = t.login(&ten.logins[2].1, PASSWORD).await.body["token"]
        .as_str()
        .unwrap()
        .to_string();
    let product = t.product(&ten.id, &admin, false).await;
    let group = t
        .get(
            &format!("/v1/tenants/{}/device-groups?product={product}", ten.id),
            &admin,
        )
        .await
        .body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // A Reader of the tenant whose password is PASSWORD (the role routes' `{userId}`).
    let (victim, _, victim_login) = t.user(Some((&ten.id, "Reader", &admin))).await;
    let invitation = t
        .post(
            &format!("/v1/tenants/{}/invitations", ten.id),
            &admin,
            json!({"role": "Reader"}),
        )
        .await;
    let invitation_id = invitation.body["invitation"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let invitation_code = invitation.body["code"].as_str().unwrap().to_string();
    let token_id = match &token {
        Some(tok) if !caller.starts_with("bad") => {
            let r = t
                .post(
                    "/v1/me/tokens",
                    tok,
                    json!({"name": format!("tok {}", uniq())}),
                )
                .await;
            r.body["token"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        }
        _ => uuid::Uuid::now_v7().to_string(),
    };
    let device = t.claimed_device(&ten.id, &admin).await;
    let serial = if path.contains("{serial}") {
        t.get(&format!("/v1/tenants/{}/ca-certificates", ten.id), &admin)
            .await
            .body[0]["serial"]
            .as_str()
            .unwrap()
            .to_string()
    } else {
        String::new()
    };
    // A pending transfer offered to this tenant by another one.
    let transfer = if path.contains("{transferId}") {
        let (from, from_admin) = t.tenant().await;
        let offered = t.claimed_device(&from, &from_admin).await;
        let r = t
            .post(
                &format!("/v1/tenants/{from}/devices/{offered}/transfers"),
                &from_admin,
                json!({"targetTenantId": ten.id}),
            )
            .await;
        r.body["id"].as_str().unwrap().to_string()
    } else {
        String::new()
    };
    // A firmware reference value of the product (made by its Administrator).
    let fresh_pcrs = || {
        let mut pcrs = vec!["00".repeat(32); 8];
        pcrs[4] = format!("{:064x}", uniq());
        pcrs
    };
    let reference = if path.contains("{referenceId}") {
        let r = t
            .post(
                &format!(
                    "/v1/tenants/{}/products/{product}/firmware-references",
                    ten.id
                ),
                &admin,
                json!({"pcrs": fresh_pcrs()}),
            )
            .await;
        r.body["id"].as_str().unwrap().to_string()
    } else {
        String::new()
    };
    let concrete = path
        .replace("{referenceId}", &reference)
        .replace("{transferId}", &transfer)
        .replace("{tenantId}", &ten.id)
        .replace("{deviceId}", &device)
        .replace("{serial}", &serial)
        .replace("{capabilityType}", "FieldServicing")
        .replace("{productId}", &product)
        .replace("{deviceGroupId}", &group)
        .replace("{userId}", &victim)
        .replace("{invitationId}", &invitation_id)
        .replace("{tokenId}", &token_id)
        .replace("{feed}", "RetailEval");
    let (concrete, binary) = images_objects(t, ten, &admin, &group, method, path, concrete).await;
    let key = format!("{method} {path}");
    let body = match key.as_str() {
        "POST /v1/auth/login" => Some(json!({"login": ten.logins[0].1, "password": PASSWORD})),
        "POST /v1/auth/change-password" => Some(
            json!({"login": victim_login, "currentPassword": PASSWORD, "newPassword": "another long password"}),
        ),
        "POST /v1/me/tokens" => Some(json!({"name": format!("new {}", uniq())})),
        "POST /v1/users" => {
            Some(json!({"login": format!("new{}@example.com", uniq()), "displayName": "New"}))
        }
        "POST /v1/tenants" | "PATCH /v1/tenants/{tenantId}" => {
            Some(json!({"name": format!("Tenant {}", uniq())}))
        }
        "PATCH /v1/tenants/{tenantId}/roles/{userId}" => Some(json!({"role": "Contributor"})),
        "POST /v1/tenants/{tenantId}/invitations" => Some(json!({"role": "Reader"})),
        "POST /v1/invitations/accept" => Some(json!({"code": invitation_code})),
        "POST /v1/tenants/{tenantId}/products" => {
            Some(json!({"name": format!("Product {}", uniq())}))
        }
        "PATCH /v1/tenants/{tenantId}/products/{productId}"
        | "PATCH /v1/tenants/{tenantId}/device-groups/{deviceGroupId}" => {
            Some(json!({"description": "changed"}))
        }
        "POST /v1/tenants/{tenantId}/products/{productId}/firmware-references" => {
            Some(json!({"pcrs": fresh_pcrs(), "description": "contract"}))
        }
        "POST /v1/tenants/{tenantId}/device-groups" => {
            Some(json!({"productId": product, "name": format!("Group {}", uniq())}))
        }
        "POST /v1/manufacturing/registrations" => {
            Some(json!({"records": [common::registration_record().1]}))
        }
        "POST /v1/tenants/{tenantId}/devices/claim" => {
            let (id, code) = t.register_device_with_code().await;
            Some(json!({"devices": [{"deviceId": id, "claimCode": code}]}))
        }
        "PATCH /v1/tenants/{tenantId}/devices/{deviceId}" => Some(json!({"deviceGroupId": group})),
        "POST /v1/manufacturing/assignments" => {
            Some(json!({"tenantId": ten.id, "deviceIds": [t.register_device().await]}))
        }
        "POST /v1/manufacturing/devices/{deviceId}/reassign" => {
            Some(json!({"tenantId": ten.id, "reason": "contract test"}))
        }
        "POST /v1/tenants/{tenantId}/devices/{deviceId}/transfers" => {
            Some(json!({"targetTenantId": t.tenant().await.0}))
        }
        "POST /v1/tenants/{tenantId}/devices/{deviceId}/capabilities" => {
            Some(json!({"type": "FieldServicing"}))
        }
        "POST /v1/tenants/{tenantId}/ca-certificates/{serial}/proof" => {
            Some(json!({"verificationCode": "ABC-123"}))
        }
        "POST /v1/tenants/{tenantId}/developer-keys" | "POST /v1/os-release-keys" => Some(
            json!({"publicKeyPem": common::packages::dev_key().1, "name": format!("Key {}", uniq())}),
        ),
        "POST /v1/tenants/{tenantId}/device-groups/{deviceGroupId}/deployments" => {
            Some(json!({"imageIds": [t.image(&ten.id, &admin).await]}))
        }
        "POST /v1/attestation/challenge" => Some(json!({"deviceId": device})),
        "PATCH /v1/os-feeds/{feed}" => Some(json!({"minimumSecurityVersion": 0})),
        "POST /v1/device/events" => Some(json!({"batchId": uuid::Uuid::new_v4(),
            "events": [{"eventType": "AppCrash", "eventClass": "Errors", "eventCategory": "Update",
            "count": 1, "description": "", "start": "2026-01-01T00:00:00Z",
            "end": "2026-01-01T00:00:00Z"}]})),
        "POST /v1/attestation/evidence" => Some(json!({"deviceId": device,
            "nonce": "A".repeat(43), "evidence": "AAAA"})),
        _ => None,
    };
    let r = match binary {
        Some(bytes) => {
            t.post_bytes(
                &concrete,
                token.as_deref(),
                "application/octet-stream",
                bytes,
            )
            .await
        }
        None => {
            t.call(method.clone(), &concrete, token.as_deref(), body)
                .await
        }
    };
    // Every error is the JSON error body.
    if r.status.is_client_error() || r.status.is_server_error() {
        assert!(
            !r.code().is_empty(),
            "{key} as {caller}: error without a code: {:?}",
            r.raw
        );
    }
    assert_ne!(
        r.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{key} as {caller}: {:?}",
        r.body
    );
    format!("{key} {caller} => {}", r.status.as_u16())
}

/// Objects for the image, deployment and OS release routes: fills `{keyId}`, `{imageId}` and
/// `{deploymentId}` in `concrete`, and returns the binary body of the upload routes.
async fn images_objects(
    t: &TestApp,
    ten: &Tenant,
    admin: &str,
    group: &str,
    method: &Method,
    path: &str,
    mut concrete: String,
) -> (String, Option<Vec<u8>>) {
    use common::packages::{app_package, os_package};
    let os = path.starts_with("/v1/os-release");
    if path.contains("{keyId}") {
        let kid = if os {
            t.os_release_key().await
        } else {
            t.developer_key(&ten.id, admin).await
        };
        concrete = concrete.replace("{keyId}", &kid.public_key().key_id().to_string());
    }
    if path.contains("{imageId}") {
        let id = if os {
            t.os_release("RetailEval").await
        } else {
            t.image(&ten.id, admin).await
        };
        concrete = concrete.replace("{imageId}", &id);
    }
    if path.contains("{deploymentId}") {
        let image = t.image(&ten.id, admin).await;
        // The rollout routes need a deployment with a rollout (under way: it can be paused).
        let body = if path.contains("/rollout") {
            json!({"imageIds": [image], "rollout": {"waves": [10, 100], "waveWaitSeconds": 3600,
                "maxFailurePercent": 5}})
        } else {
            json!({"imageIds": [image]})
        };
        let r = t
            .post(
                &format!("/v1/tenants/{}/device-groups/{group}/deployments", ten.id),
                admin,
                body,
            )
            .await;
        concrete = concrete.replace("{deploymentId}", r.body["id"].as_str().unwrap());
    }
    let binary = match (method.as_str(), path) {
        ("POST", "/v1/tenants/{tenantId}/images") => {
            let k = t.developer_key(&ten.id, admin).await;
            Some(app_package(
                &k,
                uuid::Uuid::new_v4(),
                ferro_image::Version::new(1, 0, 0),
            ))
        }
        ("POST", "/v1/os-releases") => {
            concrete.push_str("?feed=RetailEval");
            let k = t.os_release_key().await;
            let patch = u32::try_from(1000 + uniq()).unwrap();
            Some(os_package(&k, ferro_image::Version::new(1, 0, patch)))
        }
        _ => None,
    };
    (concrete, binary)
}

async fn role_matrix(t: &TestApp) {
    // The Administrator of another tenant (one for the whole run; their tenant is never touched).
    let (_, other) = t.tenant().await;
    let other_admin = t.get("/v1/me", &other).await.body["user"]["login"]
        .as_str()
        .unwrap()
        .to_string();
    let mut lines = Vec::new();
    for (method, path) in routes() {
        // A tenant with a Reader, a Contributor and an Administrator for each route.
        let (tid, admin) = t.tenant().await;
        let admin_login = t.get("/v1/me", &admin).await.body["user"]["login"]
            .as_str()
            .unwrap()
            .to_string();
        let (_, _, reader) = t.user(Some((&tid, "Reader", &admin))).await;
        let (_, _, contributor) = t.user(Some((&tid, "Contributor", &admin))).await;
        let ten = Tenant {
            id: tid,
            logins: vec![
                ("reader", reader),
                ("contributor", contributor),
                ("administrator", admin_login),
            ],
        };
        for caller in CALLERS {
            lines.push(matrix_line(t, &ten, &other_admin, &method, &path, caller).await);
        }
    }
    let mut text = String::from(
        "# Role-by-route matrix: METHOD PATH caller => status. Generated from the OpenAPI document's\n\
         # routes by crates/cloud/service/tests/contract.rs on SQLite and PostgreSQL (both must match).\n\
         # Rewrite with FERRO_BLESS=1 cargo test -p ferro-service --test contract, then review.\n",
    );
    for l in lines {
        text.push_str(&l);
        text.push('\n');
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!(
        "tests/golden/role_matrix.txt{}",
        if bless() && t.backend == Backend::Postgres {
            ".postgres"
        } else {
            ""
        }
    ));
    golden(path, &text);
}

both!(role_matrix);

/// Table -> (column, nullable) and index names, as the database reports them.
async fn schema(t: &TestApp) -> (BTreeSet<(String, String, bool)>, BTreeSet<String>) {
    use sqlx::Row;
    let (cols_sql, idx_sql) = match t.backend {
        Backend::Sqlite => (
            "SELECT m.name AS t, p.name AS c, p.\"notnull\" AS nn FROM sqlite_master m \
             JOIN pragma_table_info(m.name) p WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'",
            "SELECT name AS i FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex%'",
        ),
        Backend::Postgres => (
            "SELECT table_name::text AS t, column_name::text AS c, \
             CASE WHEN is_nullable = 'NO' THEN 1::bigint ELSE 0::bigint END AS nn \
             FROM information_schema.columns WHERE table_schema = 'public'",
            "SELECT indexname::text AS i FROM pg_indexes WHERE schemaname = 'public' \
             AND indexname NOT IN (SELECT conname FROM pg_constraint)",
        ),
    };
    let mut cols = BTreeSet::new();
    for r in sqlx::query(cols_sql)
        .fetch_all(t.db.pool())
        .await
        .expect("columns")
    {
        let table: String = r.try_get("t").unwrap();
        if table == "_sqlx_migrations" {
            continue; // sqlx's own table differs per backend by design
        }
        cols.insert((
            table,
            r.try_get("c").unwrap(),
            r.try_get::<i64, _>("nn").unwrap() == 0,
        ));
    }
    let mut idx = BTreeSet::new();
    for r in sqlx::query(idx_sql)
        .fetch_all(t.db.pool())
        .await
        .expect("indexes")
    {
        idx.insert(r.try_get::<String, _>("i").unwrap());
    }
    (cols, idx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_make_the_same_schema_on_both_backends() {
    let lite = TestApp::new(Backend::Sqlite).await;
    let pg = TestApp::new(Backend::Postgres).await;
    let (lc, li) = schema(&lite).await;
    let (pc, pi) = schema(&pg).await;
    assert!(lc.len() > 40, "{lc:?}");
    assert_eq!(
        lc, pc,
        "columns or nullability differ between SQLite and PostgreSQL"
    );
    assert_eq!(li, pi, "indexes differ between SQLite and PostgreSQL");
    lite.finish().await;
    pg.finish().await;
}
