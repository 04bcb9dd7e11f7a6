//! Behaviour of the API, each scenario on SQLite and on PostgreSQL.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::{ADMIN, Backend, PASSWORD, TestApp, test_config, uniq};
use serde_json::{Value, json};

both!(
    login_flow,
    rate_limit_is_in_the_database,
    rate_limit_per_ip,
    api_tokens,
    other_tenants_objects_are_missing_objects,
    bad_input,
    failed_write_leaves_nothing,
    products_and_device_groups,
    pagination,
    roles_and_last_administrator,
    users_model,
    audit_log_records_writes,
);

async fn login_flow(t: &TestApp) {
    // The operator made a user: their one-time password cannot be used to log in.
    let login = format!("otp{}@example.com", uniq());
    let r = t
        .post(
            "/v1/users",
            &t.operator,
            json!({"login": login, "displayName": "O T"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let otp = r.body["oneTimePassword"].as_str().unwrap().to_string();
    assert_eq!(r.body["user"]["passwordChangeRequired"], true);
    let r = t.login(&login, &otp).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "password_change_required");
    assert!(r.body.get("token").is_none());
    // Weak new password.
    let r = t
        .call(
            Method::POST,
            "/v1/auth/change-password",
            None,
            Some(json!({"login": login, "currentPassword": otp, "newPassword": "short"})),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "weak_password")
    );
    // Wrong current password.
    let r = t
        .call(
            Method::POST,
            "/v1/auth/change-password",
            None,
            Some(json!({"login": login, "currentPassword": "nope", "newPassword": PASSWORD})),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "invalid_credentials")
    );
    let token = t.activate(&login, &otp).await;
    assert!(token.starts_with("fss_"));
    // The one-time password no longer works.
    assert_eq!(t.login(&login, &otp).await.status, StatusCode::UNAUTHORIZED);
    let me = t.get("/v1/me", &token).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["user"]["login"], login.as_str());
    assert_eq!(me.body["user"]["passwordChangeRequired"], false);
    // Unknown login and wrong password answer identically.
    let a = t.login("nobody@example.com", PASSWORD).await;
    let b = t.login(&login, "wrong password!!").await;
    assert_eq!((a.status, &a.body), (b.status, &b.body));
    // Logout kills the token.
    let r = t
        .call(Method::POST, "/v1/auth/logout", Some(&token), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = t.get("/v1/me", &token).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "unauthenticated")
    );
    // Changing the password ends all sessions.
    let s1 = t.login(&login, PASSWORD).await.body["token"]
        .as_str()
        .unwrap()
        .to_string();
    let new_pw = "another long password";
    let r = t
        .call(
            Method::POST,
            "/v1/auth/change-password",
            None,
            Some(json!({"login": login, "currentPassword": PASSWORD, "newPassword": new_pw})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(t.get("/v1/me", &s1).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(t.login(&login, new_pw).await.status, StatusCode::OK);
    // Secrets never stored in clear.
    let clear = t
        .count(&format!(
            "SELECT COUNT(*) FROM tokens WHERE token_hash = '{s1}'"
        ))
        .await;
    assert_eq!(clear, 0);
    let n = t.count(&format!("SELECT COUNT(*) FROM users WHERE password_hash LIKE '$argon2id$%' AND login = '{login}'")).await;
    assert_eq!(n, 1);
}

async fn rate_limit_is_in_the_database(t: &TestApp) {
    let (_, _, login) = t.user(None).await;
    for _ in 0..5 {
        let r = t.login(&login, "wrong password!!").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = t.login(&login, "wrong password!!").await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    // Even the right password is refused now.
    assert_eq!(
        t.login(&login, PASSWORD).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // A second replica on the same database sees the same lockout.
    let state2 =
        ferro_service::setup::state(&t.dir.path().join("data"), t.db.clone(), test_config())
            .await
            .unwrap();
    let app2 = ferro_service::build_app(state2);
    let req = Request::post("/v1/auth/login")
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"login": login, "password": PASSWORD}).to_string(),
        ))
        .unwrap();
    let resp = tower::ServiceExt::oneshot(app2, req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    // Other users are unaffected.
    let (_, _, other) = t.user(None).await;
    assert_eq!(t.login(&other, PASSWORD).await.status, StatusCode::OK);
    // The window passing (simulated by ageing the rows) lifts the limit.
    t.exec("UPDATE login_failures SET at = at - 1000").await;
    assert_eq!(t.login(&login, PASSWORD).await.status, StatusCode::OK);
}

async fn rate_limit_per_ip(t: &TestApp) {
    // In-process requests have no socket: all come from the address "unknown".
    let mut cfg = test_config();
    cfg.rate_limit.per_ip = 3;
    let state = ferro_service::setup::state(&t.dir.path().join("data"), t.db.clone(), cfg)
        .await
        .unwrap();
    let app = ferro_service::build_app(state);
    let send = |login: String| {
        let app = app.clone();
        async move {
            let req = Request::post("/v1/auth/login")
                .header("content-type", "application/json")
                .body(Body::from(
                    json!({"login": login, "password": "wrong password!!"}).to_string(),
                ))
                .unwrap();
            tower::ServiceExt::oneshot(app, req).await.unwrap().status()
        }
    };
    // Failures of the setup's own logins do not exist; three failures on three names...
    for i in 0..3 {
        assert_eq!(
            send(format!("x{i}-{}@example.com", uniq())).await,
            StatusCode::UNAUTHORIZED
        );
    }
    // ...and the fourth name from the same address is refused.
    assert_eq!(
        send(format!("y{}@example.com", uniq())).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

async fn api_tokens(t: &TestApp) {
    let (_, session, _) = t.user(None).await;
    let r = t
        .post(
            "/v1/me/tokens",
            &session,
            json!({"name": "ci", "expiresInDays": 7}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let secret = r.body["secret"].as_str().unwrap().to_string();
    let id = r.body["token"]["id"].as_str().unwrap().to_string();
    assert!(secret.starts_with("fst_") && secret.len() == 47, "{secret}");
    // Only the hash is stored.
    let n = t
        .count(&format!(
            "SELECT COUNT(*) FROM tokens WHERE token_hash = '{secret}' OR name = '{secret}'"
        ))
        .await;
    assert_eq!(n, 0);
    assert_eq!(t.get("/v1/me", &secret).await.status, StatusCode::OK);
    // Listed without the secret.
    let list = t.get("/v1/me/tokens", &session).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    assert!(
        !list
            .raw
            .windows(secret.len())
            .any(|w| w == secret.as_bytes())
    );
    // Duplicate live name.
    let r = t
        .post("/v1/me/tokens", &session, json!({"name": "ci"}))
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "conflict"));
    let r = t
        .post(
            "/v1/me/tokens",
            &session,
            json!({"name": "x", "expiresInDays": 0}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body")
    );
    // Another user cannot revoke it.
    let (_, other, _) = t.user(None).await;
    let r = t
        .call(
            Method::DELETE,
            &format!("/v1/me/tokens/{id}"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = t
        .call(
            Method::DELETE,
            &format!("/v1/me/tokens/{id}"),
            Some(&session),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        t.get("/v1/me", &secret).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Expired tokens are refused.
    let r = t
        .post("/v1/me/tokens", &session, json!({"name": "old"}))
        .await;
    let old = r.body["secret"].as_str().unwrap().to_string();
    t.exec("UPDATE tokens SET expires_at = 1 WHERE name = 'old'")
        .await;
    assert_eq!(t.get("/v1/me", &old).await.status, StatusCode::UNAUTHORIZED);
    // Malformed and unknown tokens.
    for bad in ["", "Bearer", "fst_", "fst_AAAA", "garbage"] {
        let r = t.call(Method::GET, "/v1/me", Some(bad), None).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNAUTHORIZED, "unauthenticated"),
            "{bad}"
        );
    }
}

async fn other_tenants_objects_are_missing_objects(t: &TestApp) {
    let (ta, admin_a) = t.tenant().await;
    let (tb, admin_b) = t.tenant().await;
    let pa = t.product(&ta, &admin_a, false).await;
    let ga = t
        .get(&format!("/v1/tenants/{ta}/device-groups"), &admin_a)
        .await
        .body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let missing = uuid::Uuid::now_v7().to_string();
    // Through B's own tenant: A's product answers exactly as a missing one.
    let theirs = t
        .get(&format!("/v1/tenants/{tb}/products/{pa}"), &admin_b)
        .await;
    let none = t
        .get(&format!("/v1/tenants/{tb}/products/{missing}"), &admin_b)
        .await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    assert_eq!((theirs.status, &theirs.raw), (none.status, &none.raw));
    let theirs = t
        .get(&format!("/v1/tenants/{tb}/device-groups/{ga}"), &admin_b)
        .await;
    let none = t
        .get(
            &format!("/v1/tenants/{tb}/device-groups/{missing}"),
            &admin_b,
        )
        .await;
    assert_eq!((theirs.status, &theirs.raw), (none.status, &none.raw));
    // Through A's tenant: A's tenant answers exactly as a missing tenant.
    for suffix in [
        "",
        "/products",
        &format!("/products/{pa}"),
        "/device-groups",
        "/roles",
        "/audit-log",
    ] {
        let theirs = t.get(&format!("/v1/tenants/{ta}{suffix}"), &admin_b).await;
        let none = t
            .get(&format!("/v1/tenants/{missing}{suffix}"), &admin_b)
            .await;
        assert_eq!(theirs.status, StatusCode::NOT_FOUND, "{suffix}");
        assert_eq!(
            (theirs.status, &theirs.raw),
            (none.status, &none.raw),
            "{suffix}"
        );
    }
    // Writes too.
    let theirs = t
        .call(
            Method::DELETE,
            &format!("/v1/tenants/{tb}/products/{pa}"),
            Some(&admin_b),
            None,
        )
        .await;
    let none = t
        .call(
            Method::DELETE,
            &format!("/v1/tenants/{tb}/products/{missing}"),
            Some(&admin_b),
            None,
        )
        .await;
    assert_eq!((theirs.status, &theirs.raw), (none.status, &none.raw));
    let r = t
        .post(
            &format!("/v1/tenants/{tb}/device-groups"),
            &admin_b,
            json!({"productId": pa, "name": "Sneaky"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // A's product is untouched.
    assert_eq!(
        t.get(&format!("/v1/tenants/{ta}/products/{pa}"), &admin_a)
            .await
            .status,
        StatusCode::OK
    );
}

async fn raw(
    t: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    ctype: Option<&str>,
    body: Vec<u8>,
) -> common::Resp {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"));
    if let Some(c) = ctype {
        req = req.header("content-type", c);
    }
    t.send(req.body(Body::from(body)).unwrap()).await
}

async fn bad_input(t: &TestApp) {
    let (tid, admin) = t.tenant().await;
    let products = format!("/v1/tenants/{tid}/products");
    let json = Some("application/json");
    let check = |r: &common::Resp, status: StatusCode, code: &str| {
        assert_eq!((r.status, r.code()), (status, code), "{:?}", r.body);
        assert!(!r.body["error"]["message"].as_str().unwrap_or("").is_empty());
    };
    let r = raw(
        t,
        Method::POST,
        &products,
        &admin,
        json,
        b"{\"name\": ".to_vec(),
    )
    .await;
    check(&r, StatusCode::BAD_REQUEST, "malformed_json");
    let r = raw(t, Method::POST, &products, &admin, json, b"[1,2".to_vec()).await;
    check(&r, StatusCode::BAD_REQUEST, "malformed_json");
    let big = format!(
        "{{\"name\":\"x\",\"description\":\"{}\"}}",
        "a".repeat(1024 * 1024 + 10)
    );
    let r = raw(t, Method::POST, &products, &admin, json, big.into_bytes()).await;
    check(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let r = raw(
        t,
        Method::POST,
        &products,
        &admin,
        json,
        br#"{"name":"ok","colour":"red"}"#.to_vec(),
    )
    .await;
    check(&r, StatusCode::BAD_REQUEST, "unknown_field");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`colour`")
    );
    let r = raw(
        t,
        Method::POST,
        &products,
        &admin,
        json,
        br#"{"name":42}"#.to_vec(),
    )
    .await;
    check(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`name`")
    );
    let r = raw(t, Method::POST, &products, &admin, json, br#"{}"#.to_vec()).await;
    check(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    let r = raw(
        t,
        Method::POST,
        &products,
        &admin,
        Some("text/plain"),
        br#"{"name":"a"}"#.to_vec(),
    )
    .await;
    check(
        &r,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    for name in [
        "",
        " lead",
        "semi;colon",
        "slash/no",
        &"x".repeat(51),
        "émoji",
    ] {
        let r = t.post(&products, &admin, json!({"name": name})).await;
        check(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_name");
        let r = t
            .post("/v1/tenants", &t.operator, json!({"name": name}))
            .await;
        check(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_name");
    }
    let pid = t.product(&tid, &admin, true).await;
    let r = t
        .post(
            &format!("/v1/tenants/{tid}/device-groups"),
            &admin,
            json!({"productId": pid, "name": "G", "osFeed": "Beta"}),
        )
        .await;
    check(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    let r = t
        .post(
            &format!("/v1/tenants/{tid}/device-groups"),
            &admin,
            json!({"productId": "not-a-uuid", "name": "G"}),
        )
        .await;
    check(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    // IDs.
    let r = t
        .get(&format!("/v1/tenants/{tid}/products/not-a-uuid"), &admin)
        .await;
    check(&r, StatusCode::BAD_REQUEST, "invalid_id");
    let r = t
        .get(
            &format!("/v1/tenants/{}/products/{}", tid, uuid::Uuid::now_v7()),
            &admin,
        )
        .await;
    check(&r, StatusCode::NOT_FOUND, "not_found");
    let r = t
        .get(
            &format!("/v1/tenants/{}/device-groups/{}", tid, uuid::Uuid::now_v7()),
            &admin,
        )
        .await;
    check(&r, StatusCode::NOT_FOUND, "not_found");
    let r = t
        .post(
            &format!("/v1/tenants/{tid}/device-groups"),
            &admin,
            json!({"productId": uuid::Uuid::now_v7(), "name": "G"}),
        )
        .await;
    check(&r, StatusCode::NOT_FOUND, "not_found");
    // Query strings.
    for q in [
        "limit=0",
        "limit=501",
        "limit=abc",
        "bogus=1",
        "continuation=%%%",
        "continuation=AAAA",
    ] {
        let r = t.get(&format!("{products}?{q}"), &admin).await;
        check(&r, StatusCode::BAD_REQUEST, "invalid_query");
    }
    // Routes and methods.
    let r = t.get("/v1/nothing-here", &admin).await;
    check(&r, StatusCode::NOT_FOUND, "not_found");
    let r = t.call(Method::PUT, &products, Some(&admin), None).await;
    check(&r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    // Nothing was half-written by all of that.
    assert_eq!(
        t.count(&format!(
            "SELECT COUNT(*) FROM products WHERE tenant_id = '{tid}'"
        ))
        .await,
        1
    );
    // Every response carries a request ID.
    assert!(r.headers.contains_key("x-request-id"));
}

async fn failed_write_leaves_nothing(t: &TestApp) {
    let (tid, admin) = t.tenant().await;
    // Make the third default device group's insert fail inside the product's transaction.
    match t.backend {
        Backend::Sqlite => {
            t.exec(
                "CREATE TRIGGER fail_groups BEFORE INSERT ON device_groups \
                 WHEN NEW.name = 'Production' BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
            )
            .await
        }
        Backend::Postgres => {
            t.exec(
                "CREATE FUNCTION fail_groups() RETURNS trigger AS $$ BEGIN \
                 IF NEW.name = 'Production' THEN RAISE EXCEPTION 'injected failure'; END IF; \
                 RETURN NEW; END $$ LANGUAGE plpgsql",
            )
            .await;
            t.exec("CREATE TRIGGER fail_groups BEFORE INSERT ON device_groups FOR EACH ROW EXECUTE FUNCTION fail_groups()").await;
        }
    }
    let audit_before = t.count("SELECT COUNT(*) FROM audit_log").await;
    let r = t
        .post(
            &format!("/v1/tenants/{tid}/products"),
            &admin,
            json!({"name": "Doomed"}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::INTERNAL_SERVER_ERROR, "internal")
    );
    assert!(
        !r.raw.windows(8).any(|w| w == b"injected"),
        "error leaks internals"
    );
    assert_eq!(
        t.count("SELECT COUNT(*) FROM products WHERE name = 'Doomed'")
            .await,
        0
    );
    assert_eq!(
        t.count(&format!(
            "SELECT COUNT(*) FROM device_groups WHERE tenant_id = '{tid}'"
        ))
        .await,
        0
    );
    assert_eq!(
        t.count("SELECT COUNT(*) FROM audit_log").await,
        audit_before
    );
    // The database and the service are fine afterwards.
    let r = t
        .post(
            &format!("/v1/tenants/{tid}/products"),
            &admin,
            json!({"name": "Fine", "noDefaultDeviceGroups": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
}

async fn products_and_device_groups(t: &TestApp) {
    let (tid, admin) = t.tenant().await;
    let pid = t.product(&tid, &admin, false).await;
    let groups = t
        .get(
            &format!("/v1/tenants/{tid}/device-groups?product={pid}"),
            &admin,
        )
        .await;
    let items = groups.body["items"].as_array().unwrap();
    let mut got: Vec<(String, String, String)> = items
        .iter()
        .map(|g| {
            (
                g["name"].as_str().unwrap().into(),
                g["osFeed"].as_str().unwrap().into(),
                g["updatePolicy"].as_str().unwrap().into(),
            )
        })
        .collect();
    got.sort();
    let mut want: Vec<(String, String, String)> = [
        ("Development", "Retail", "No3rdPartyAppUpdates"),
        ("Field Test", "Retail", "UpdateAll"),
        ("Field Test OS Evaluation", "RetailEval", "UpdateAll"),
        ("Production", "Retail", "UpdateAll"),
        ("Production OS Evaluation", "RetailEval", "UpdateAll"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    want.sort();
    assert_eq!(got, want);
    // create-defaults is idempotent.
    let r = t
        .post(
            &format!("/v1/tenants/{tid}/products/{pid}/device-groups/create-defaults"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.as_array().unwrap().len(), 5);
    // Opt-out, then create-defaults fills in.
    let bare = t.product(&tid, &admin, true).await;
    let n = t
        .get(
            &format!("/v1/tenants/{tid}/device-groups?product={bare}"),
            &admin,
        )
        .await;
    assert_eq!(n.body["items"].as_array().unwrap().len(), 0);
    let r = t
        .call(
            Method::POST,
            &format!("/v1/tenants/{tid}/products/{bare}/device-groups/create-defaults"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.body.as_array().unwrap().len(), 5);
    // Names are unique per tenant (products) and per product (groups), case-insensitively.
    let r = t
        .get(&format!("/v1/tenants/{tid}/products/{pid}"), &admin)
        .await;
    let pname = r.body["name"].as_str().unwrap().to_uppercase();
    let r = t
        .post(
            &format!("/v1/tenants/{tid}/products"),
            &admin,
            json!({"name": pname}),
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "conflict"));
    let groups = format!("/v1/tenants/{tid}/device-groups");
    let r = t
        .post(
            &groups,
            &admin,
            json!({"productId": pid, "name": "production"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "conflict"));
    let r = t.post(&groups, &admin, json!({"productId": pid, "name": "Lab", "osFeed": "RetailEval",
        "updatePolicy": "No3rdPartyAppUpdates", "allowCrashDumpsCollection": true, "description": "bench"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let gid = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["allowCrashDumpsCollection"], true);
    // PATCH.
    let r = t
        .call(
            Method::PATCH,
            &format!("{groups}/{gid}"),
            Some(&admin),
            Some(json!({"osFeed": "Retail", "name": "Lab 2"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        (
            r.body["osFeed"].as_str(),
            r.body["name"].as_str(),
            r.body["updatePolicy"].as_str()
        ),
        (Some("Retail"), Some("Lab 2"), Some("No3rdPartyAppUpdates"))
    );
    let r = t
        .call(
            Method::PATCH,
            &format!("/v1/tenants/{tid}/products/{pid}"),
            Some(&admin),
            Some(json!({"description": "new"})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["description"].as_str()),
        (StatusCode::OK, Some("new"))
    );
    // A group with a device cannot go, nor can its product.
    t.exec(&format!("INSERT INTO devices (id, tenant_id, device_group_id, claimed_at) VALUES ('{}', '{tid}', '{gid}', 0)", "ab".repeat(64))).await;
    let r = t
        .call(
            Method::DELETE,
            &format!("{groups}/{gid}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "not_empty"));
    let r = t
        .call(
            Method::DELETE,
            &format!("/v1/tenants/{tid}/products/{pid}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "not_empty"));
    assert_eq!(
        t.count(&format!(
            "SELECT COUNT(*) FROM device_groups WHERE product_id = '{pid}'"
        ))
        .await,
        6
    );
    t.exec("DELETE FROM devices").await;
    let r = t
        .call(
            Method::DELETE,
            &format!("{groups}/{gid}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = t
        .call(
            Method::DELETE,
            &format!("/v1/tenants/{tid}/products/{pid}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        t.count(&format!(
            "SELECT COUNT(*) FROM device_groups WHERE product_id = '{pid}'"
        ))
        .await,
        0
    );
    assert_eq!(
        t.get(&format!("/v1/tenants/{tid}/products/{pid}"), &admin)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

async fn pagination(t: &TestApp) {
    let (tid, admin) = t.tenant().await;
    let mut made = Vec::new();
    for _ in 0..5 {
        made.push(t.product(&tid, &admin, true).await);
    }
    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    let mut pages = 0;
    loop {
        let q = match &next {
            Some(c) => format!("?limit=2&continuation={c}"),
            None => "?limit=2".into(),
        };
        let r = t
            .get(&format!("/v1/tenants/{tid}/products{q}"), &admin)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        pages += 1;
        for p in r.body["items"].as_array().unwrap() {
            seen.push(p["id"].as_str().unwrap().to_string());
        }
        match &r.body["continuationToken"] {
            Value::String(s) => next = Some(s.clone()),
            Value::Null => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, made, "pages in creation order, no gaps or repeats");
}

async fn roles_and_last_administrator(t: &TestApp) {
    let (tid, admin) = t.tenant().await;
    let me = t.get("/v1/me", &admin).await;
    let admin_id = me.body["user"]["id"].as_str().unwrap().to_string();
    let roles = format!("/v1/tenants/{tid}/roles");
    // Last Administrator cannot leave.
    let r = t
        .call(
            Method::DELETE,
            &format!("{roles}/{admin_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "last_administrator")
    );
    // A member joins by invitation, which they accept with their own session.
    let (uid, utoken, _) = t.user(None).await;
    assert_eq!(
        t.get(&format!("/v1/tenants/{tid}"), &utoken).await.status,
        StatusCode::NOT_FOUND
    );
    let code = t.invite(&tid, "Reader", &admin).await;
    t.accept(&code, &utoken).await;
    // A code is single-use.
    let (_, other, _) = t.user(None).await;
    let r = t
        .post("/v1/invitations/accept", &other, json!({"code": code}))
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found"));
    let r = t.get(&format!("/v1/tenants/{tid}"), &utoken).await;
    assert_eq!(
        (r.status, r.body["role"].as_str()),
        (StatusCode::OK, Some("Reader"))
    );
    // A Reader cannot write.
    let r = t
        .post(
            &format!("/v1/tenants/{tid}/products"),
            &utoken,
            json!({"name": "Nope"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "forbidden"));
    let r = t.get(&format!("{roles}/{uid}"), &admin).await;
    assert_eq!(r.body["role"], "Reader");
    // Remove, then a new invitation brings them back.
    let r = t
        .call(
            Method::DELETE,
            &format!("{roles}/{uid}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        t.get(&format!("/v1/tenants/{tid}"), &utoken).await.status,
        StatusCode::NOT_FOUND
    );
    let code = t.invite(&tid, "Reader", &admin).await;
    t.accept(&code, &utoken).await;
    // Promote to Administrator (PATCH); then the first may leave.
    let r = t
        .patch(
            &format!("{roles}/{uid}"),
            &admin,
            json!({"role": "Administrator"}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["role"].as_str()),
        (StatusCode::OK, Some("Administrator"))
    );
    // The last Administrator cannot demote themselves either.
    let r = t
        .call(
            Method::DELETE,
            &format!("{roles}/{admin_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = t
        .patch(
            &format!("{roles}/{uid}"),
            &utoken,
            json!({"role": "Reader"}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "last_administrator")
    );
    assert_eq!(
        t.get(&format!("/v1/tenants/{tid}"), &admin).await.status,
        StatusCode::NOT_FOUND
    );
    let list = t.get(&roles, &utoken).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
}

async fn users_model(t: &TestApp) {
    let (tid, admin) = t.tenant().await;
    // An invited account holds the role it accepted.
    let (uid, utoken, _) = t.user(Some((&tid, "Contributor", &admin))).await;
    let r = t.get(&format!("/v1/tenants/{tid}"), &utoken).await;
    assert_eq!(r.body["role"], "Contributor");
    // Tenant Administrators create no accounts: not alone, not with a role (the old shape is
    // refused by name), not operators.
    let r = t
        .post(
            "/v1/users",
            &admin,
            json!({"login": format!("a{}@x.io", uniq()), "displayName": "A"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "forbidden"));
    let r = t
        .post(
            "/v1/users",
            &admin,
            json!({"login": format!("a{}@x.io", uniq()), "displayName": "A",
        "tenantId": tid, "role": "Reader"}),
        )
        .await;
    assert_eq!(r.code(), "unknown_field");
    let r = t
        .post(
            "/v1/users",
            &admin,
            json!({"login": format!("a{}@x.io", uniq()), "displayName": "A", "platformOperator": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Login names: pattern and uniqueness.
    let r = t
        .post(
            "/v1/users",
            &t.operator,
            json!({"login": "Not An Email", "displayName": "A"}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_name")
    );
    let r = t
        .post(
            "/v1/users",
            &t.operator,
            json!({"login": ADMIN, "displayName": "A"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "conflict"));
    // Operators list and delete users; deletion ends their sessions.
    let r = t.get("/v1/users?limit=500", &t.operator).await;
    assert!(r.body["items"].as_array().unwrap().len() >= 3);
    let r = t
        .call(
            Method::DELETE,
            &format!("/v1/users/{uid}"),
            Some(&t.operator),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        t.get("/v1/me", &utoken).await.status,
        StatusCode::UNAUTHORIZED
    );
    // The tenant's only Administrator cannot be deleted; nor can the operator delete themselves.
    let admin_id = t.get("/v1/me", &admin).await.body["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = t
        .call(
            Method::DELETE,
            &format!("/v1/users/{admin_id}"),
            Some(&t.operator),
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "last_administrator")
    );
    let op_id = t.get("/v1/me", &t.operator).await.body["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = t
        .call(
            Method::DELETE,
            &format!("/v1/users/{op_id}"),
            Some(&t.operator),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    // The operator has no access to tenants by virtue of being an operator.
    assert_eq!(
        t.get(&format!("/v1/tenants/{tid}"), &t.operator)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

async fn audit_log_records_writes(t: &TestApp) {
    let (tid, admin) = t.tenant().await;
    let pid = t.product(&tid, &admin, false).await;
    t.call(
        Method::PATCH,
        &format!("/v1/tenants/{tid}"),
        Some(&admin),
        Some(json!({"name": format!("Renamed {}", uniq())})),
    )
    .await;
    let r = t.get(&format!("/v1/tenants/{tid}/audit-log"), &admin).await;
    assert_eq!(r.status, StatusCode::OK);
    let actions: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    // The tenant's making (operator creates, invites, the Administrator joins, the operator
    // leaves), then the writes.
    assert_eq!(
        actions,
        [
            "tenant.create",
            "invitation.create",
            "invitation.accept",
            "role.delete",
            "product.create",
            "tenant.update"
        ]
    );
    assert_eq!(r.body["items"][4]["objectId"], pid.as_str());
    assert_eq!(r.body["items"][4]["details"]["defaultDeviceGroups"], 5);
}
