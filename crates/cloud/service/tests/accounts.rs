//! Attacks on accounts, logins and tokens (issue 16, items 1, 2, 4 and the small items of 8),
//! each performed as an attacker would against the service; each fails without its fix.
//! Design: docs/service/accounts.md.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::{PASSWORD, TestApp, test_config, uniq};
use ferro_service::Config;
use ferro_service::state::TenantCreation;
use serde_json::json;

both!(
    account_takeover_through_the_login_namespace_is_closed,
    one_time_passwords_expire,
    tenant_creation_is_the_operators_setting,
    parallel_wrong_passwords_are_counted_before_they_are_checked,
    api_tokens_are_scoped_and_cannot_mint_tokens,
    a_password_change_revokes_api_tokens,
    ambiguous_or_oddly_cased_authorization,
    metrics_need_an_operator,
    a_spray_of_login_names_does_not_grow_the_limit_tables,
);

/// Item 1, as the review ran it: Mallory makes `alice@victim.example` in a tenant of his own,
/// Victim's Administrator then "adds" Alice, and Mallory logs in as an Administrator of Victim.
async fn account_takeover_through_the_login_namespace_is_closed(t: &TestApp) {
    // A self-service platform, the setting under which the attack ran (any user makes tenants).
    let t = &TestApp::with_config(
        t.backend,
        Config {
            tenant_creation: TenantCreation::AnyUser,
            ..test_config()
        },
    )
    .await;
    let (_, mallory, _) = t.user(None).await;
    let r = t
        .post(
            "/v1/tenants",
            &mallory,
            json!({"name": format!("Evil {}", uniq())}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let evil = r.body["id"].as_str().unwrap().to_string();
    let alice = format!("alice{}@victim.example", uniq());
    // Mallory, Administrator of Evil, cannot mint the identity, with or without a role (the
    // old request shape is refused by name, not ignored).
    for body in [
        json!({"login": alice, "displayName": "Alice"}),
        json!({"login": alice, "displayName": "Alice", "tenantId": evil, "role": "Reader"}),
    ] {
        let r = t.post("/v1/users", &mallory, body).await;
        assert!(
            r.status == StatusCode::FORBIDDEN || r.code() == "unknown_field",
            "{:?}",
            r.body
        );
    }
    assert_eq!(
        t.count(&format!(
            "SELECT COUNT(*) FROM users WHERE login = '{alice}'"
        ))
        .await,
        0
    );
    // Victim's tenant and Administrator; Alice's real account exists (made by the operator).
    let (victim, victim_admin) = t.tenant().await;
    let (_, otp) = t.account(&alice).await;
    let alice_session = t.activate(&alice, &otp).await;
    // The old way to add a member by login is gone: nothing grants a role by naming a login.
    let r = t
        .post(
            &format!("/v1/tenants/{victim}/roles"),
            &victim_admin,
            json!({"login": alice, "role": "Administrator"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{:?}", r.body);
    // Victim invites Alice by login. Mallory, even holding the code (leaked), cannot accept an
    // invitation made for another login: the same answer as a wrong code.
    let r = t
        .post(
            &format!("/v1/tenants/{victim}/invitations"),
            &victim_admin,
            json!({"role": "Administrator", "login": alice}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let code = r.body["code"].as_str().unwrap().to_string();
    let stolen = t
        .post("/v1/invitations/accept", &mallory, json!({"code": code}))
        .await;
    let wrong = t
        .post(
            "/v1/invitations/accept",
            &mallory,
            json!({"code": format!("fsi_{}", "A".repeat(43))}),
        )
        .await;
    assert_eq!(stolen.status, StatusCode::NOT_FOUND);
    assert_eq!(stolen.raw, wrong.raw, "no oracle about which codes exist");
    assert_eq!(
        t.get(&format!("/v1/tenants/{victim}"), &mallory)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // Alice accepts with her own session and is the only one who gained anything.
    t.accept(&code, &alice_session).await;
    let r = t
        .get(&format!("/v1/tenants/{victim}"), &alice_session)
        .await;
    assert_eq!(r.body["role"], "Administrator");
    let r = t
        .get(&format!("/v1/tenants/{victim}/audit-log"), &mallory)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Answers do not tell which logins exist: logging in as a known and an unknown login with
    // a wrong password get the same body.
    let known = t.login(&alice, "wrong password, long").await;
    let unknown = t
        .login("nobody@victim.example", "wrong password, long")
        .await;
    assert_eq!((known.status, &known.raw), (unknown.status, &unknown.raw));
}

async fn one_time_passwords_expire(t: &TestApp) {
    let login = format!("late{}@example.com", uniq());
    let (uid, otp) = t.account(&login).await;
    // Its life ends (moved into the past as time would move it).
    t.exec(&format!(
        "UPDATE users SET password_expires_at = {} WHERE id = '{uid}'",
        ferro_service::db::now() - 1
    ))
    .await;
    let r = t.login(&login, &otp).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "invalid_credentials")
    );
    let r = t
        .call(
            Method::POST,
            "/v1/auth/change-password",
            None,
            Some(json!({"login": login, "currentPassword": otp, "newPassword": PASSWORD})),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "invalid_credentials")
    );
    // An operator issues a new one, which works (only once changed).
    let r = t
        .post(
            &format!("/v1/users/{uid}/one-time-password"),
            &t.operator,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let otp = r.body["oneTimePassword"].as_str().unwrap().to_string();
    let session = t.activate(&login, &otp).await;
    assert_eq!(t.get("/v1/me", &session).await.status, StatusCode::OK);
    // A chosen password does not expire.
    assert_eq!(
        t.count(&format!(
            "SELECT COUNT(*) FROM users WHERE id = '{uid}' AND password_expires_at IS NULL"
        ))
        .await,
        1
    );
    // A reset revokes what the account had: its session ends.
    let r = t
        .post(
            &format!("/v1/users/{uid}/one-time-password"),
            &session,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "only operators reset");
    t.post(
        &format!("/v1/users/{uid}/one-time-password"),
        &t.operator,
        json!({}),
    )
    .await;
    assert_eq!(
        t.get("/v1/me", &session).await.status,
        StatusCode::UNAUTHORIZED
    );
}

async fn tenant_creation_is_the_operators_setting(t: &TestApp) {
    // The default: only platform operators.
    let (_, user, _) = t.user(None).await;
    let r = t
        .post(
            "/v1/tenants",
            &user,
            json!({"name": format!("Mine {}", uniq())}),
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "forbidden"));
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("operator")
    );
    let r = t
        .post(
            "/v1/tenants",
            &t.operator,
            json!({"name": format!("Ops {}", uniq())}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    // Self-service, with a quota of two per user.
    let t = &TestApp::with_config(
        t.backend,
        Config {
            tenant_creation: TenantCreation::AnyUser,
            max_tenants_per_user: 2,
            ..test_config()
        },
    )
    .await;
    let (_, user, _) = t.user(None).await;
    for _ in 0..2 {
        let r = t
            .post(
                "/v1/tenants",
                &user,
                json!({"name": format!("Mine {}", uniq())}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    }
    let before = t.count("SELECT COUNT(*) FROM tenants").await;
    let r = t
        .post(
            "/v1/tenants",
            &user,
            json!({"name": format!("Mine {}", uniq())}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "quota_exceeded"),
        "{:?}",
        r.body
    );
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("2 tenants") && message.contains("(2)"),
        "{message}"
    );
    assert_eq!(t.count("SELECT COUNT(*) FROM tenants").await, before);
}

/// Item 2: the limit is checked, Argon2 runs, and only then was the failure recorded, so
/// parallel guesses all got checked. Now each attempt is reserved first.
async fn parallel_wrong_passwords_are_counted_before_they_are_checked(t: &TestApp) {
    let (_, _, login) = t.user(None).await;
    let checks_before = t.state.password_gate.checks();
    let attempts = 200;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..attempts {
        let app = t.app.clone();
        let login = login.clone();
        tasks.spawn(async move {
            use tower::ServiceExt;
            let req = Request::builder()
                .method(Method::POST)
                .uri("/v1/auth/login")
                .header("content-type", "application/json")
                .body(Body::from(
                    json!({"login": login, "password": format!("wrong guess {i:04}")}).to_string(),
                ))
                .unwrap();
            app.oneshot(req).await.unwrap().status()
        });
    }
    let (mut unauthorized, mut limited, mut other) = (0, 0, Vec::new());
    while let Some(status) = tasks.join_next().await {
        match status.unwrap() {
            StatusCode::UNAUTHORIZED => unauthorized += 1,
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            s => other.push(s),
        }
    }
    let limit = t.state.config.rate_limit.per_login;
    assert!(other.is_empty(), "unexpected answers: {other:?}");
    assert_eq!(
        (unauthorized, limited),
        (limit, attempts - limit),
        "exactly the allowed attempts are checked"
    );
    let checks = t.state.password_gate.checks() - checks_before;
    assert_eq!(
        checks, limit as u64,
        "Argon2 ran only for reserved attempts"
    );
    // The right password is refused too while the login is limited.
    let r = t.login(&login, PASSWORD).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers.get("retry-after").is_some());
}

async fn api_tokens_are_scoped_and_cannot_mint_tokens(t: &TestApp) {
    let (tenant, admin) = t.tenant().await;
    let (other, other_admin) = t.tenant().await;
    // The same person administers both tenants.
    let code = t.invite(&other, "Administrator", &other_admin).await;
    t.accept(&code, &admin).await;
    let mint = |token: String, body: serde_json::Value| async move {
        t.post("/v1/me/tokens", &token, body).await
    };
    // A token for one tenant, Reader at most, read-only.
    let r = mint(
        admin.clone(),
        json!({"name": "scoped", "tenantId": tenant, "maxRole": "Reader", "readOnly": true}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["token"]["maxRole"], "Reader");
    let scoped = r.body["secret"].as_str().unwrap().to_string();
    // It reads its tenant, as a Reader ...
    let r = t.get(&format!("/v1/tenants/{tenant}"), &scoped).await;
    assert_eq!(
        (r.status, r.body["role"].as_str()),
        (StatusCode::OK, Some("Reader"))
    );
    // ... never the other tenant of its user ...
    let r = t.get(&format!("/v1/tenants/{other}"), &scoped).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = t.get("/v1/tenants", &scoped).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    // ... writes nothing (read-only; and Reader at most even where its user is Administrator) ...
    let r = t
        .post(
            &format!("/v1/tenants/{tenant}/products"),
            &scoped,
            json!({"name": "Nope"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = mint(
        admin.clone(),
        json!({"name": "writer", "tenantId": tenant, "maxRole": "Reader"}),
    )
    .await;
    let reader_token = r.body["secret"].as_str().unwrap().to_string();
    let r = t
        .post(
            &format!("/v1/tenants/{tenant}/products"),
            &reader_token,
            json!({"name": "Nope"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "forbidden"));
    let r = t
        .post(
            &format!("/v1/tenants/{tenant}/invitations"),
            &reader_token,
            json!({"role": "Administrator"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "no Administrator powers");
    // ... and no API token mints another, however broad.
    let r = mint(admin.clone(), json!({"name": "broad"})).await;
    let broad = r.body["secret"].as_str().unwrap().to_string();
    for token in [&broad, &reader_token] {
        let r = mint(token.clone(), json!({"name": format!("child {}", uniq())})).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::FORBIDDEN, "reauthentication_required"),
            "{:?}",
            r.body
        );
    }
    // An old session (not a fresh password login) cannot either.
    t.exec(&format!(
        "UPDATE tokens SET created_at = created_at - 3600 WHERE kind = 'session' AND token_hash = '{}'",
        ferro_service::auth::token_hash(&admin)
    ))
    .await;
    t.state.auth_cache.clear();
    let r = mint(admin.clone(), json!({"name": "late"})).await;
    assert_eq!(r.code(), "reauthentication_required");
    // Lives: at most 90 days.
    let me = t.get("/v1/me", &admin).await;
    let login = me.body["user"]["login"].as_str().unwrap();
    let fresh = t.login(login, PASSWORD).await.body["token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = mint(fresh.clone(), json!({"name": "long", "expiresInDays": 91})).await;
    assert_eq!(r.code(), "invalid_body");
    let r = mint(fresh, json!({"name": "default"})).await;
    let created = time::OffsetDateTime::parse(
        r.body["token"]["createdAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let expires = time::OffsetDateTime::parse(
        r.body["token"]["expiresAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!((expires - created).whole_days(), 30);
    // A narrowed token never acts as a platform operator.
    let op = t
        .post(
            "/v1/me/tokens",
            &t.operator,
            json!({"name": "ops-read", "readOnly": true}),
        )
        .await;
    let ops_read = op.body["secret"].as_str().unwrap().to_string();
    assert_eq!(t.get("/v1/users", &ops_read).await.status, StatusCode::OK);
    assert_eq!(
        t.post(
            "/v1/users",
            &ops_read,
            json!({"login": format!("x{}@example.com", uniq()), "displayName": "X"})
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    let op = t
        .post(
            "/v1/me/tokens",
            &t.operator,
            json!({"name": "ops-reader", "maxRole": "Reader"}),
        )
        .await;
    let narrowed = op.body["secret"].as_str().unwrap().to_string();
    assert_eq!(
        t.get("/v1/users", &narrowed).await.status,
        StatusCode::FORBIDDEN
    );
}

async fn a_password_change_revokes_api_tokens(t: &TestApp) {
    let (_, session, login) = t.user(None).await;
    let r = t
        .post("/v1/me/tokens", &session, json!({"name": "automation"}))
        .await;
    let token = r.body["secret"].as_str().unwrap().to_string();
    assert_eq!(t.get("/v1/me", &token).await.status, StatusCode::OK);
    let change = |current: &str, new: &str, keep: bool| {
        json!({"login": login, "currentPassword": current, "newPassword": new,
            "keepApiTokens": keep})
    };
    // Kept when asked ...
    let r = t
        .call(
            Method::POST,
            "/v1/auth/change-password",
            None,
            Some(change(PASSWORD, "a second long password", true)),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    assert_eq!(t.get("/v1/me", &token).await.status, StatusCode::OK);
    // ... revoked by default, with every session.
    let r = t
        .call(
            Method::POST,
            "/v1/auth/change-password",
            None,
            Some(
                json!({"login": login, "currentPassword": "a second long password",
                "newPassword": PASSWORD}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    assert_eq!(
        t.get("/v1/me", &token).await.status,
        StatusCode::UNAUTHORIZED
    );
}

async fn ambiguous_or_oddly_cased_authorization(t: &TestApp) {
    let send = |headers: Vec<String>| async move {
        let mut req = Request::builder().method(Method::GET).uri("/v1/me");
        for h in headers {
            req = req.header("authorization", h);
        }
        t.send(req.body(Body::empty()).unwrap()).await
    };
    let good = format!("Bearer {}", t.operator);
    let forged = format!("Bearer fss_{}", "A".repeat(43));
    assert_eq!(send(vec![good.clone()]).await.status, StatusCode::OK);
    // A valid token followed by a forged one (or the reverse) is ambiguous: refused.
    for pair in [
        vec![good.clone(), forged.clone()],
        vec![forged.clone(), good.clone()],
    ] {
        let r = send(pair).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNAUTHORIZED, "unauthenticated")
        );
    }
    // The scheme name is case-insensitive (RFC 9110).
    for scheme in ["bearer", "BEARER", "bEaReR"] {
        let r = send(vec![format!("{scheme} {}", t.operator)]).await;
        assert_eq!(r.status, StatusCode::OK, "{scheme}");
    }
    assert_eq!(
        send(vec![format!("Basic {}", t.operator)]).await.status,
        StatusCode::UNAUTHORIZED
    );
}

async fn metrics_need_an_operator(t: &TestApp) {
    let r = t.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let (_, admin) = t.tenant().await;
    assert_eq!(
        t.get("/metrics", &admin).await.status,
        StatusCode::FORBIDDEN
    );
    let r = t.get("/metrics", &t.operator).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&r.raw).contains("http_requests_total"));
}

/// Every failed login leaves rows keyed by its login name; a reservation prunes only its own
/// keys, so a spray of distinct names would grow the tables for ever. The process prunes every
/// key's stale rows (older than the window) at most every minute, on a login attempt.
async fn a_spray_of_login_names_does_not_grow_the_limit_tables(t: &TestApp) {
    let window = t.state.config.rate_limit.window_secs;
    let stale = ferro_service::db::now() - window - 1;
    for i in 0..50 {
        t.exec(&format!(
            "INSERT INTO login_failures (id, scope_key, at) VALUES ('{}', 'login:spray{i}@example.com', {stale})",
            uuid::Uuid::now_v7()
        ))
        .await;
        t.exec(&format!(
            "INSERT INTO login_limit_keys (scope_key, touched_at) VALUES ('login:spray{i}@example.com', {stale})"
        ))
        .await;
    }
    // A failure inside the window stays (it still counts).
    let (_, _, login) = t.user(None).await;
    assert_eq!(
        t.login(&login, "a wrong password").await.status,
        StatusCode::UNAUTHORIZED
    );
    // The next minute's first attempt prunes (the clock of the prune moved back a minute).
    t.state.password_gate.forget_last_prune();
    assert_eq!(t.login(&login, PASSWORD).await.status, StatusCode::OK);
    assert_eq!(
        t.count("SELECT COUNT(*) FROM login_failures WHERE scope_key LIKE 'login:spray%'")
            .await,
        0
    );
    assert_eq!(
        t.count("SELECT COUNT(*) FROM login_limit_keys WHERE scope_key LIKE 'login:spray%'")
            .await,
        0
    );
    assert_eq!(
        t.count(&format!(
            "SELECT COUNT(*) FROM login_limit_keys WHERE scope_key = 'login:{login}'"
        ))
        .await,
        1,
        "live keys stay"
    );
}
