//! The HTTP application: routes (from the handlers' OpenAPI annotations), middleware (request
//! IDs, tracing, metrics, timeouts, panic catching, JSON fallbacks) and the OpenAPI document.

use crate::error::error_response;
use crate::routes::{attestation, deployments, developer_keys, images, os_releases};
use crate::routes::{
    auth, ca, devices, error_reports, me, ops, pki, products, tenants, updates, users,
};
use crate::state::AppState;
use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::HeaderName;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use ferro_wire::ErrorCode;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Instant;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
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
        (name = "roles", description = "Users' roles in a tenant"),
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
        .routes(routes!(tenants::create_tenant, tenants::list_tenants))
        .routes(routes!(tenants::get_tenant, tenants::update_tenant))
        .routes(routes!(tenants::list_roles, tenants::add_role))
        .routes(routes!(tenants::get_role, tenants::delete_role))
        .routes(routes!(tenants::audit_log))
        .routes(routes!(products::create_product, products::list_products))
        .routes(routes!(
            products::get_product,
            products::update_product,
            products::delete_product
        ))
        .routes(routes!(products::create_defaults))
        .routes(routes!(products::create_group, products::list_groups))
        .routes(routes!(
            products::get_group,
            products::update_group,
            products::delete_group
        ))
        .routes(routes!(pki::root_certificate))
        .routes(routes!(pki::key_list))
        .routes(routes!(devices::register))
        .routes(routes!(devices::claim))
        .routes(routes!(devices::list_devices))
        .routes(routes!(devices::count_devices))
        .routes(routes!(devices::get_device, devices::update_device))
        .routes(routes!(devices::create_capability))
        .routes(routes!(error_reports::error_report))
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
        .routes(routes!(images::get_image))
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
            os_releases::add_os_release_key,
            os_releases::list_os_release_keys
        ))
        .routes(routes!(os_releases::delete_os_release_key))
        .routes(routes!(
            os_releases::publish_os_release,
            os_releases::list_os_releases
        ))
        .routes(routes!(os_releases::get_os_release))
        .routes(routes!(os_releases::promote_os_release))
        .routes(routes!(os_releases::get_os_release_content))
        .routes(routes!(attestation::challenge))
        .routes(routes!(attestation::evidence))
        .routes(routes!(updates::device_target_set))
        .routes(routes!(updates::device_image))
        .routes(routes!(updates::device_update_status))
        .routes(routes!(updates::device_update_signal))
        .routes(routes!(error_reports::device_events))
        .routes(routes!(updates::deployment_status))
        .routes(routes!(updates::targeted_images))
        .routes(routes!(updates::group_update_now))
        .routes(routes!(updates::device_update_now))
}

/// The OpenAPI document of the service, as checked in at `openapi/ferrosphere.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_router().split_for_parts().1
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

async fn track_metrics(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = req.method().to_string();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(start.elapsed().as_secs_f64());
    resp
}

/// Routes whose body is an image package upload: they get `Config::upload_timeout` instead of
/// `Config::request_timeout` (a 512 MiB body takes longer than 30 s on most links).
const UPLOAD_ROUTES: [&str; 2] = ["/v1/tenants/{tenantId}/images", "/v1/os-releases"];

/// The update-signal long poll waits up to `waitSeconds` (at most
/// [`ferro_wire::MAX_SIGNAL_WAIT_SECONDS`]) by design: it gets that on top of
/// `Config::request_timeout`, else every wait longer than the request timeout would end in 504.
const LONG_POLL_ROUTE: &str = "/v1/device/update-signal";

async fn timeout(
    axum::extract::State((normal, upload)): axum::extract::State<(
        std::time::Duration,
        std::time::Duration,
    )>,
    req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let is_upload = req.method() == axum::http::Method::POST
        && route.is_some_and(|p| UPLOAD_ROUTES.contains(&p));
    let limit = if is_upload {
        upload
    } else if route == Some(LONG_POLL_ROUTE) {
        normal.saturating_add(std::time::Duration::from_secs(
            ferro_wire::MAX_SIGNAL_WAIT_SECONDS,
        ))
    } else {
        normal
    };
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => error_response(
            ErrorCode::Timeout,
            "the request took too long and was abandoned; retry later".into(),
        ),
    }
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
        .layer(middleware::from_fn_with_state(request_timeout, timeout))
        .layer(middleware::from_fn(track_metrics))
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
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
