//! The HTTP application: routes (from the handlers' OpenAPI annotations), middleware (request
//! IDs, tracing, metrics, timeouts, panic catching, JSON fallbacks) and the OpenAPI document.

use crate::error::error_response;
use crate::routes::{
    attestation, deployments, developer_keys, device_groups, images, invitations, os_releases,
    ownership,
};
use crate::routes::{
    auth, ca, device_events, devices, error_report, firmware_references, me, ops, pki, products,
    tenants, updates, users,
};
use crate::routes::{capabilities, device_updates, os_feeds, os_release_keys, registrations};
use crate::state::AppState;
use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use ferro_wire::ErrorCode;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock, OnceLock, RwLock};
use std::time::Instant;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Header carrying the request ID (set if the client sent none, echoed in the response).
pub const REQUEST_ID: &str = "x-request-id";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ferrosphere security service",
        version = "1",
        description = "Tenants, users and roles, products and device groups. Errors are \
            `{\"error\": {\"code\", \"message\"}}` with a stable snake_case code. List routes take \
            `limit` and `continuation` and answer `{items, continuationToken}`. Authenticate with \
            `Authorization: Bearer <token>` (a session token from /v1/auth/login or an API token)."
    ),
    modifiers(&SecurityAddon),
    tags(
        (name = "auth", description = "Login, logout, passwords"),
        (name = "me", description = "The caller and their API tokens"),
        (name = "users", description = "Platform-level user management"),
        (name = "tenants", description = "Tenants and their audit logs"),
        (name = "roles", description = "Users' roles in a tenant, and the invitations through which accounts join a tenant"),
        (name = "products", description = "Products"),
        (name = "device-groups", description = "Device groups"),
        (name = "operations", description = "Health, readiness, metrics"),
        (name = "developer-keys", description = "Developer keys a tenant accepts on uploaded images"),
        (name = "images", description = "Image upload (verified, re-signed for production), listing, download"),
        (name = "deployments", description = "Immutable image sets deployed to device groups"),
        (name = "os-releases", description = "OS feeds: OS release build keys, publishing, promotion, download"),
        (name = "platform", description = "The platform root certificate and key list"),
        (name = "manufacturing", description = "Device registration records"),
        (name = "devices", description = "Claiming, devices, capability files, error reports, device event uploads (POST /v1/device/events authenticates with the device certificate in TLS)"),
        (name = "ca-certificates", description = "Tenant CA certificates"),
        (name = "attestation", description = "Device attestation: challenges, evidence, device certificates (no bearer token: the evidence signature authenticates)"),
        (name = "updates", description = "Over-the-air updates: target sets, downloads, status (device routes authenticate with the device certificate in TLS)"),
    )
)]
struct ApiDoc;

struct SecurityAddon;

impl Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "Session token (fss_...) from POST /v1/auth/login, or API token (fst_...)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "deviceCertificate",
            SecurityScheme::MutualTls {
                description: Some(
                    "The device's 24-hour certificate (from POST /v1/attestation/evidence) in the \
                     TLS handshake"
                        .to_string(),
                ),
                extensions: None,
                deprecated: None,
            },
        );
    }
}

/// Every route. Adding a route = writing the handler with `#[utoipa::path]` and listing it here;
/// the OpenAPI document, the role matrix test and the drift test pick it up from there.
fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .routes(routes!(auth::login))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::change_password))
        .routes(routes!(me::get_me))
        .routes(routes!(me::create_token, me::list_tokens))
        .routes(routes!(me::revoke_token))
        .routes(routes!(users::create_user, users::list_users))
        .routes(routes!(users::delete_user))
        .routes(routes!(users::reset_password))
        .routes(routes!(tenants::create_tenant, tenants::list_tenants))
        .routes(routes!(tenants::get_tenant, tenants::update_tenant))
        .routes(routes!(tenants::list_roles))
        .routes(routes!(
            tenants::get_role,
            tenants::update_role,
            tenants::delete_role
        ))
        .routes(routes!(
            invitations::create_invitation,
            invitations::list_invitations
        ))
        .routes(routes!(invitations::revoke_invitation))
        .routes(routes!(invitations::accept_invitation))
        .routes(routes!(tenants::audit_log))
        .routes(routes!(products::create_product, products::list_products))
        .routes(routes!(
            products::get_product,
            products::update_product,
            products::delete_product
        ))
        .routes(routes!(products::create_defaults))
        .routes(routes!(
            firmware_references::create_firmware_reference,
            firmware_references::list_firmware_references
        ))
        .routes(routes!(firmware_references::delete_firmware_reference))
        .routes(routes!(
            device_groups::create_group,
            device_groups::list_groups
        ))
        .routes(routes!(
            device_groups::get_group,
            device_groups::update_group,
            device_groups::delete_group
        ))
        .routes(routes!(pki::root_certificate))
        .routes(routes!(pki::key_list))
        .routes(routes!(registrations::register))
        .routes(routes!(devices::claim))
        .routes(routes!(devices::list_devices))
        .routes(routes!(devices::count_devices))
        .routes(routes!(devices::get_device, devices::update_device))
        .routes(routes!(capabilities::create_capability))
        .routes(routes!(capabilities::revoke_capabilities))
        .routes(routes!(ownership::assign))
        .routes(routes!(ownership::reassign))
        .routes(routes!(ownership::create_transfer))
        .routes(routes!(ownership::list_transfers))
        .routes(routes!(ownership::accept_transfer))
        .routes(routes!(ownership::cancel_transfer))
        .routes(routes!(error_report::error_report))
        .routes(routes!(ca::list_cas))
        .routes(routes!(ca::get_chain))
        .routes(routes!(ca::get_ca))
        .routes(routes!(ca::create_proof))
        .routes(routes!(
            developer_keys::add_developer_key,
            developer_keys::list_developer_keys
        ))
        .routes(routes!(developer_keys::delete_developer_key))
        .routes(routes!(images::upload_image, images::list_images))
        .routes(routes!(images::get_image, images::delete_image))
        .routes(routes!(images::get_image_content))
        .routes(routes!(
            deployments::create_deployment,
            deployments::list_deployments
        ))
        .routes(routes!(deployments::get_deployment))
        .routes(routes!(deployments::get_rollout))
        .routes(routes!(deployments::pause_rollout))
        .routes(routes!(deployments::resume_rollout))
        .routes(routes!(
            os_release_keys::add_os_release_key,
            os_release_keys::list_os_release_keys
        ))
        .routes(routes!(os_release_keys::delete_os_release_key))
        .routes(routes!(
            os_releases::publish_os_release,
            os_releases::list_os_releases
        ))
        .routes(routes!(os_releases::get_os_release))
        .routes(routes!(os_releases::promote_os_release))
        .routes(routes!(os_releases::revoke_os_release))
        .routes(routes!(os_feeds::list_os_feeds))
        .routes(routes!(os_feeds::set_os_feed_policy))
        .routes(routes!(os_releases::get_os_release_content))
        .routes(routes!(attestation::challenge))
        .routes(routes!(attestation::evidence))
        .routes(routes!(device_updates::device_target_set))
        .routes(routes!(device_updates::device_image))
        .routes(routes!(device_updates::device_update_status))
        .routes(routes!(device_updates::device_update_signal))
        .routes(routes!(device_events::device_events))
        .routes(routes!(updates::deployment_status))
        .routes(routes!(updates::targeted_images))
        .routes(routes!(updates::group_update_now))
        .routes(routes!(updates::device_update_now))
}

/// The OpenAPI document of the service, as checked in at `openapi/ferrosphere.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api_router().split_for_parts().1;
    crate::openapi::Contract.modify(&mut doc);
    doc
}

/// The OpenAPI document as pretty JSON with a trailing newline (the checked-in form).
pub fn openapi_json() -> String {
    let mut s = openapi().to_pretty_json().unwrap_or_else(|_| "{}".into());
    s.push('\n');
    s
}

/// The process-wide Prometheus recorder (metrics are per replica by nature; Prometheus scrapes
/// each one).
pub fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("http_request_duration_seconds".into()),
                &[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0,
                ],
            )
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder is installed; then our metrics are not recorded.
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed");
        }
        handle
    })
}

/// Routes whose body is an image package upload: they get `Config::upload_timeout` instead of
/// `Config::request_timeout` (a 512 MiB body takes longer than 30 s on most links).
const UPLOAD_ROUTES: [&str; 2] = ["/v1/tenants/{tenantId}/images", "/v1/os-releases"];

/// The update-signal long poll waits up to `waitSeconds` (at most
/// [`ferro_wire::MAX_SIGNAL_WAIT_SECONDS`]) by design: it gets that on top of
/// `Config::request_timeout`, else every wait longer than the request timeout would end in 504.
const LONG_POLL_ROUTE: &str = "/v1/device/update-signal";

/// The metric handles of one (method, route, status), registered once.
struct RouteMetrics {
    method: Method,
    route: Box<str>,
    status: u16,
    requests: metrics::Counter,
    duration: metrics::Histogram,
}

/// Registered handles by a hash of (method, route, status): a request records through a handle
/// it looks up here instead of building the metric keys (three label strings, two key
/// allocations, two registry look-ups) every time. Bounded by the routes times the methods and
/// statuses they answer; unmatched paths share one `unmatched` route.
static ROUTE_METRICS: LazyLock<RwLock<HashMap<u64, Vec<Arc<RouteMetrics>>>>> =
    LazyLock::new(Default::default);

fn route_metrics(method: &Method, route: &str, status: u16) -> Arc<RouteMetrics> {
    let mut h = std::hash::DefaultHasher::new();
    (method.as_str(), route, status).hash(&mut h);
    let key = h.finish();
    let same =
        |m: &&Arc<RouteMetrics>| m.status == status && m.method == method && *m.route == *route;
    if let Ok(map) = ROUTE_METRICS.read()
        && let Some(m) = map.get(&key).and_then(|v| v.iter().find(same))
    {
        return m.clone();
    }
    let labels = [
        ("method", method.as_str().to_string()),
        ("route", route.to_string()),
        ("status", status.to_string()),
    ];
    let m = Arc::new(RouteMetrics {
        method: method.clone(),
        route: route.into(),
        status,
        requests: metrics::counter!("http_requests_total", &labels),
        duration: metrics::histogram!("http_request_duration_seconds", &labels),
    });
    if let Ok(mut map) = ROUTE_METRICS.write() {
        let list = map.entry(key).or_default();
        match list.iter().find(same) {
            Some(existing) => return existing.clone(),
            None => list.push(m.clone()),
        }
    }
    m
}

/// Per request: the timeout (one of three limits by route), then the metrics of the answer
/// (`http_requests_total` and `http_request_duration_seconds` by method, route and status,
/// timeouts included). One middleware for both: one boxed future and one clone of the inner
/// service per request instead of two.
async fn timeout_and_metrics(
    axum::extract::State((normal, upload)): axum::extract::State<(
        std::time::Duration,
        std::time::Duration,
    )>,
    req: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let path = route.as_ref().map(MatchedPath::as_str);
    let method = req.method().clone();
    let is_upload = method == Method::POST && path.is_some_and(|p| UPLOAD_ROUTES.contains(&p));
    let limit = if is_upload {
        upload
    } else if path == Some(LONG_POLL_ROUTE) {
        normal.saturating_add(std::time::Duration::from_secs(
            ferro_wire::MAX_SIGNAL_WAIT_SECONDS,
        ))
    } else {
        normal
    };
    let resp = match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => error_response(
            ErrorCode::Timeout,
            "the request took too long and was abandoned; retry later".into(),
        ),
    };
    let m = route_metrics(&method, path.unwrap_or("unmatched"), resp.status().as_u16());
    m.requests.increment(1);
    m.duration.record(start.elapsed().as_secs_f64());
    resp
}

/// Request IDs for requests that come without one: random UUIDs (version 4 format), from a
/// per-thread generator seeded once from the OS (no system call per request). They correlate
/// log lines; they are no secret.
#[derive(Clone, Copy)]
struct MakeRequestId;

impl tower_http::request_id::MakeRequestId for MakeRequestId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let id = uuid::Builder::from_random_bytes(next_random().to_le_bytes()).into_uuid();
        let text = id.hyphenated().encode_lower(&mut buf);
        HeaderValue::from_str(text).ok().map(RequestId::new)
    }
}

/// 128 random bits from a per-thread SplitMix64 stream seeded from the OS (or, should that
/// fail, from the clock and the thread's ID).
fn next_random() -> u128 {
    thread_local! {
        static STATE: std::cell::Cell<u64> = std::cell::Cell::new({
            let mut seed = [0u8; 8];
            if getrandom::fill(&mut seed).is_err() {
                let mut h = std::hash::DefaultHasher::new();
                std::thread::current().id().hash(&mut h);
                std::time::SystemTime::now().hash(&mut h);
                seed = h.finish().to_le_bytes();
            }
            u64::from_le_bytes(seed)
        });
    }
    STATE.with(|state| {
        let half = || {
            let s = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
            state.set(s);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        (u128::from(half()) << 64) | u128::from(half())
    })
}

async fn not_found() -> Response {
    error_response(
        ErrorCode::NotFound,
        "no such route; see openapi/ferrosphere.json for the API".into(),
    )
}

async fn method_not_allowed() -> Response {
    error_response(
        ErrorCode::MethodNotAllowed,
        "this route does not take this method; see openapi/ferrosphere.json".into(),
    )
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("handler panicked");
    error_response(
        ErrorCode::Internal,
        "internal error; report the x-request-id response header to the operator".into(),
    )
    .into_response()
}

/// Build the application with its middleware.
pub fn build_app(state: AppState) -> Router {
    let _ = metrics_handle();
    let request_timeout = (state.config.request_timeout, state.config.upload_timeout);
    let (router, _) = api_router().split_for_parts();
    let request_id = HeaderName::from_static(REQUEST_ID);
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            request_timeout,
            timeout_and_metrics,
        ))
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestId))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(|req: &Request| {
                            let id = req
                                .headers()
                                .get(REQUEST_ID)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("");
                            // The path only: never headers (Authorization) or bodies.
                            tracing::info_span!("request", method = %req.method(),
                                path = %req.uri().path(), request_id = %id)
                        })
                        .on_response(
                            tower_http::trace::DefaultOnResponse::new().level(tracing::Level::INFO),
                        ),
                )
                .layer(PropagateRequestIdLayer::new(request_id))
                .layer(CatchPanicLayer::custom(panic_response)),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower_http::request_id::MakeRequestId as _;

    /// Generated request IDs are distinct version 4 UUIDs.
    #[test]
    fn request_ids_are_distinct_uuids() {
        let req = axum::http::Request::new(());
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let id = MakeRequestId.make_request_id(&req).unwrap();
            let text = id.header_value().to_str().unwrap().to_string();
            let uuid = uuid::Uuid::parse_str(&text).unwrap();
            assert_eq!(uuid.get_version_num(), 4);
            assert_eq!(uuid.hyphenated().to_string(), text);
            assert!(seen.insert(text));
        }
    }

    /// One registration per (method, route, status); the same handles afterwards.
    #[test]
    fn route_metrics_are_registered_once() {
        let a = route_metrics(&Method::GET, "/test/{x}", 200);
        let b = route_metrics(&Method::GET, "/test/{x}", 200);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(
            &a,
            &route_metrics(&Method::GET, "/test/{x}", 404)
        ));
        assert!(!Arc::ptr_eq(
            &a,
            &route_metrics(&Method::POST, "/test/{x}", 200)
        ));
        assert!(!Arc::ptr_eq(
            &a,
            &route_metrics(&Method::GET, "/test/{y}", 200)
        ));
    }
}
