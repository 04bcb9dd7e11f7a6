//! Operations endpoints: liveness and readiness (unauthenticated: they say nothing but "up"),
//! and Prometheus metrics, which need a platform operator's token (a read-only API token is
//! the one to give a scraper: `ferro api-token create --read-only`).

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use ferro_wire::Health;

/// Longest `/readyz` waits for the object store's answer.
pub const OBJECT_STORE_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Liveness: the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, body = Health)), security(()))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Readiness: the database answers and is fully migrated (503 otherwise). The object store is
/// checked too and reported in `status` (`"ok; object store unavailable"`), without taking the
/// replica out: every replica shares the store, so an outage there would take them all out,
/// and attestations, update checks and everything but image uploads and downloads work
/// without it (docs/service/storage.md, "When S3 is down").
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Health), (status = 503, body = Health)), security(()))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let (db, objects) = tokio::join!(state.db.ready(), async {
        tokio::time::timeout(OBJECT_STORE_CHECK_TIMEOUT, state.objects.check()).await
    });
    match db {
        Ok(()) => {
            let status = match objects {
                Ok(Ok(())) => "ok".to_string(),
                Ok(Err(e)) => {
                    tracing::warn!(store = state.objects.kind(), error = %e, "object store unavailable");
                    "ok; object store unavailable".to_string()
                }
                Err(_) => {
                    tracing::warn!(store = state.objects.kind(), "object store check timed out");
                    "ok; object store unavailable".to_string()
                }
            };
            (StatusCode::OK, Json(Health { status }))
        }
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Health {
                    status: "database not ready".into(),
                }),
            )
        }
    }
}

/// Prometheus text exposition (platform operators): `http_requests_total` and
/// `http_request_duration_seconds` by method, route template and status, and the service's own
/// counters. Route templates and counts tell an outsider what the fleet does, so they are not
/// public.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain"),
        (status = 401, body = ferro_wire::ErrorBody), (status = 403, body = ferro_wire::ErrorBody)),
    security(("bearer" = [])))]
pub async fn metrics(caller: Caller) -> ApiResult<impl IntoResponse> {
    caller.require_operator()?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::app::metrics_handle().render(),
    ))
}
