//! The authentication cache (`ferro_service::auth_cache`): bounded staleness across replicas,
//! immediate effect on the replica that made the change, and no secrets in memory.

mod common;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::TestApp;
use serde_json::json;
use std::time::{Duration, Instant};
use tower::ServiceExt;

both!(
    changes_reach_other_replicas_within_the_ttl,
    changes_take_effect_at_once_on_the_same_replica,
    the_cache_never_holds_tokens_or_password_hashes,
);

/// A second replica on the same database, with its own (empty) cache.
async fn replica(t: &TestApp) -> Router {
    let state = ferro_service::setup::state(
        &t.dir.path().join("data"),
        t.db.clone(),
        common::test_config(),
    )
    .await
    .expect("state");
    ferro_service::build_app(state)
}

async fn status(app: &Router, path: &str, token: &str) -> StatusCode {
    let req = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request");
    app.clone().oneshot(req).await.expect("infallible").status()
}

/// Poll `path` on `app` until it answers `want`; returns how long that took. Fails after 5 s.
async fn until(app: &Router, path: &str, token: &str, want: StatusCode) -> Duration {
    let start = Instant::now();
    loop {
        if status(app, path, token).await == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{path} never answered {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn changes_reach_other_replicas_within_the_ttl(t: &TestApp) {
    let ttl = t.state.auth_cache.ttl();
    assert!(ttl > Duration::ZERO && ttl <= ferro_service::auth_cache::MAX_TTL);
    // Allowed: the TTL, plus scheduling slack of a loaded test machine.
    let bound = ttl + Duration::from_millis(750);
    let b = replica(t).await;
    let (tenant, admin) = t.tenant().await;
    let (uid, session, _) = t.user(Some((&tenant, "Reader", &admin))).await;
    let tenant_path = format!("/v1/tenants/{tenant}");
    let api = t
        .post("/v1/me/tokens", &session, json!({"name": "cached"}))
        .await;
    assert_eq!(api.status, StatusCode::CREATED, "{:?}", api.body);
    let secret = api.body["secret"].as_str().unwrap().to_string();
    let token_id = api.body["token"]["id"]
        .as_str()
        .or_else(|| api.body["id"].as_str())
        .unwrap()
        .to_string();
    // Replica B caches the role and the API token.
    assert_eq!(status(&b, &tenant_path, &session).await, StatusCode::OK);
    assert_eq!(status(&b, "/v1/me", &secret).await, StatusCode::OK);

    // A role removed through replica A stops working on B within the TTL.
    let r = t
        .call(
            Method::DELETE,
            &format!("/v1/tenants/{tenant}/roles/{uid}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let took = until(&b, &tenant_path, &session, StatusCode::NOT_FOUND).await;
    assert!(
        took <= bound,
        "role removal took {took:?} on another replica"
    );

    // An API token revoked through A stops working on B within the TTL.
    let r = t
        .call(
            Method::DELETE,
            &format!("/v1/me/tokens/{token_id}"),
            Some(&session),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let took = until(&b, "/v1/me", &secret, StatusCode::UNAUTHORIZED).await;
    assert!(took <= bound, "revocation took {took:?} on another replica");

    // A logout through A ends the session on B within the TTL.
    assert_eq!(status(&b, "/v1/me", &session).await, StatusCode::OK);
    let r = t
        .call(Method::POST, "/v1/auth/logout", Some(&session), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let took = until(&b, "/v1/me", &session, StatusCode::UNAUTHORIZED).await;
    assert!(took <= bound, "logout took {took:?} on another replica");

    // A password changed through A ends the user's sessions on B within the TTL.
    let (_, session, login) = t.user(None).await;
    assert_eq!(status(&b, "/v1/me", &session).await, StatusCode::OK);
    let r = t
        .call(
            Method::POST,
            "/v1/auth/change-password",
            None,
            Some(json!({"login": login, "currentPassword": common::PASSWORD,
                "newPassword": "another long password for this test"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let took = until(&b, "/v1/me", &session, StatusCode::UNAUTHORIZED).await;
    assert!(
        took <= bound,
        "a password change took {took:?} on another replica"
    );
}

async fn changes_take_effect_at_once_on_the_same_replica(t: &TestApp) {
    let (tenant, admin) = t.tenant().await;
    let tenant_path = format!("/v1/tenants/{tenant}");
    // A user without a role: 404 (and that answer is cached) ...
    let (uid, session, _) = t.user(None).await;
    assert_eq!(
        t.get(&tenant_path, &session).await.status,
        StatusCode::NOT_FOUND
    );
    // ... until an invitation is accepted: at once.
    let code = t.invite(&tenant, "Reader", &admin).await;
    t.accept(&code, &session).await;
    assert_eq!(t.get(&tenant_path, &session).await.status, StatusCode::OK);
    // A removed role: at once.
    let r = t
        .call(
            Method::DELETE,
            &format!("/v1/tenants/{tenant}/roles/{uid}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        t.get(&tenant_path, &session).await.status,
        StatusCode::NOT_FOUND
    );
    // A revoked API token: at once.
    let api = t
        .post("/v1/me/tokens", &session, json!({"name": "local"}))
        .await;
    let secret = api.body["secret"].as_str().unwrap().to_string();
    let token_id = api.body["token"]["id"]
        .as_str()
        .or_else(|| api.body["id"].as_str())
        .unwrap()
        .to_string();
    assert_eq!(t.get("/v1/me", &secret).await.status, StatusCode::OK);
    let r = t
        .call(
            Method::DELETE,
            &format!("/v1/me/tokens/{token_id}"),
            Some(&session),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        t.get("/v1/me", &secret).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Logout: at once.
    assert_eq!(t.get("/v1/me", &session).await.status, StatusCode::OK);
    let r = t
        .call(Method::POST, "/v1/auth/logout", Some(&session), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        t.get("/v1/me", &session).await.status,
        StatusCode::UNAUTHORIZED
    );
    // A deleted user: at once.
    let (victim, victim_session, _) = t.user(None).await;
    assert_eq!(
        t.get("/v1/me", &victim_session).await.status,
        StatusCode::OK
    );
    let r = t
        .call(
            Method::DELETE,
            &format!("/v1/users/{victim}"),
            Some(&t.operator),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    assert_eq!(
        t.get("/v1/me", &victim_session).await.status,
        StatusCode::UNAUTHORIZED
    );
}

async fn the_cache_never_holds_tokens_or_password_hashes(t: &TestApp) {
    let (tenant, admin) = t.tenant().await;
    let (_, session, _) = t.user(Some((&tenant, "Reader", &admin))).await;
    for token in [&admin, &session, &t.operator] {
        assert_eq!(t.get("/v1/me", token).await.status, StatusCode::OK);
        assert_eq!(
            t.get(&format!("/v1/tenants/{tenant}"), token).await.status,
            if *token == t.operator {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::OK
            }
        );
    }
    let cache = &t.state.auth_cache;
    assert!(!cache.is_empty(), "the cache is in use");
    for token in [&admin, &session, &t.operator] {
        assert!(!cache.debug_contains(token), "a raw token is cached");
        // Nor the base64 part alone.
        assert!(!cache.debug_contains(&token[4..]), "a raw token is cached");
    }
    assert!(
        !cache.debug_contains("$argon2"),
        "a password hash is cached"
    );
}
