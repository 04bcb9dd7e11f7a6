//! The local device API (`ferro_wire::device_api`): what the `ferro` CLI on the developer's
//! machine asks of one attached device, as Azure Sphere's device REST API. It listens on a Unix
//! socket in the data directory's `run/` (mode 0700, the socket 0600): whoever may read the
//! device's data directory may use it, and nobody else, with no network exposure at all.
//! Sideloading still needs an appDevelopment capability for this device and a developer key it
//! names (the capability, not the socket, is what allows code onto the device).

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ferro_wire::device_api as api;
use ferro_wire::{ErrorBody, ErrorCode, ErrorDetail};
use serde::Deserialize;
use tokio::sync::Notify;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::apps::{AppError, AppManager, LOG_POLL};
use crate::identity::DeviceContext;

/// What the handlers share.
#[derive(Clone, Debug)]
pub struct LocalApi {
    ctx: DeviceContext,
    apps: Arc<AppManager>,
    device: Arc<Mutex<api::AttachedDevice>>,
    restart: Arc<Notify>,
}

impl LocalApi {
    /// The API of `ctx`'s device; `device` is the snapshot the agent keeps current.
    pub fn new(
        ctx: DeviceContext,
        apps: Arc<AppManager>,
        device: Arc<Mutex<api::AttachedDevice>>,
        restart: Arc<Notify>,
    ) -> LocalApi {
        LocalApi {
            ctx,
            apps,
            device,
            restart,
        }
    }
}

/// An error of the local API: the service's JSON error body.
struct ApiError(StatusCode, ErrorCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.1,
                message: self.2,
                details: Vec::new(),
            },
        };
        (self.0, axum::Json(body)).into_response()
    }
}

impl From<AppError> for ApiError {
    fn from(error: AppError) -> Self {
        let (status, code) = match &error {
            AppError::NotInDevelopmentMode => (StatusCode::FORBIDDEN, ErrorCode::Forbidden),
            AppError::UntrustedDeveloperKey(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::UntrustedSigningKey,
            ),
            AppError::BadDeveloperKey(_) | AppError::InvalidCapability(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidBody)
            }
            AppError::InvalidImage(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidImage)
            }
            AppError::WrongImageType(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::WrongImageType)
            }
            AppError::NoSuchApp(_) | AppError::Board(_) => {
                (StatusCode::NOT_FOUND, ErrorCode::NotFound)
            }
            AppError::NotSideloaded(_) | AppError::Runtime(_) => {
                (StatusCode::CONFLICT, ErrorCode::Conflict)
            }
            AppError::Device(_) => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal),
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(%error, "local API request failed");
        }
        ApiError(status, code, error.to_string())
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Run a blocking manager call off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AppError> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| {
            ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                format!("the request's task failed: {e}"),
            )
        })?
        .map_err(ApiError::from)
}

fn component(id: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| {
        ApiError(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidId,
            format!(
                "{id:?} is not a component ID (a GUID such as 1689d8b2-c835-2e27-27ad-e894d6d15fa9)"
            ),
        )
    })
}

/// A request body, or the service's `payload_too_large` (as JSON, like every other error).
fn body_or_413(body: Result<Bytes, BytesRejection>) -> ApiResult<Bytes> {
    body.map_err(|e| {
        let status = e.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            ErrorCode::PayloadTooLarge
        } else {
            ErrorCode::InvalidBody
        };
        ApiError(status, code, e.body_text())
    })
}

/// A query string, or the service's `invalid_query`.
fn query_or_400<T>(
    query: Result<Query<T>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<T> {
    query.map(|Query(q)| q).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidQuery,
            e.body_text(),
        )
    })
}

/// A JSON body, read as the service reads one (`ferro_wire::parse_json_body`): the same codes,
/// statuses and messages for bad ones.
fn json_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    ferro_wire::parse_json_body(bytes).map_err(|e| {
        let status = StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        ApiError(status, e.code, e.message)
    })
}

/// The OpenAPI schema of a binary body (an image package, a capability file).
#[derive(Debug, utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
struct Binary(Vec<u8>);

#[derive(OpenApi)]
#[openapi(info(
    title = "Ferrosphere local device API",
    version = "1",
    description = "What the `ferro` CLI asks of one attached device, as Azure Sphere's device REST \
        API, over the Unix socket `run/device-api.sock` in the device's data directory (mode 0600: \
        the file permissions are the access control; no network exposure). Errors are the \
        service's `{\"error\": {\"code\", \"message\"}}` with its stable codes."
))]
struct LocalApiDoc;

/// Every route. Adding a route = writing the handler with `#[utoipa::path]` and listing it here;
/// the OpenAPI document (`openapi/device-local.json`) and its drift test pick it up from there.
fn api_router() -> OpenApiRouter<LocalApi> {
    // Image packages are larger than the 64 KiB every other body may be (the innermost limit wins).
    let sideload = OpenApiRouter::new()
        .routes(routes!(sideload))
        .layer(DefaultBodyLimit::max(api::MAX_SIDELOAD_BYTES));
    OpenApiRouter::with_openapi(LocalApiDoc::openapi())
        .routes(routes!(show_device))
        .routes(routes!(restart))
        .routes(routes!(apply_capability, remove_capability))
        .routes(routes!(list_images))
        .merge(sideload)
        .routes(routes!(delete_sideloaded))
        .routes(routes!(list_apps))
        .routes(routes!(app_status))
        .routes(routes!(start_app))
        .routes(routes!(stop_app))
        .routes(routes!(app_quota))
        .routes(routes!(app_memory))
        .routes(routes!(app_logs))
        .routes(routes!(board))
        .routes(routes!(press_button))
        .routes(routes!(set_temperature))
        .routes(routes!(uart_peer))
}

/// The OpenAPI document of the local device API, as checked in at `openapi/device-local.json`
/// (pretty JSON with a trailing newline).
pub fn openapi_json() -> String {
    let mut s = api_router()
        .split_for_parts()
        .1
        .to_pretty_json()
        .unwrap_or_else(|_| "{}".into());
    s.push('\n');
    s
}

/// The router.
pub fn router(state: LocalApi) -> Router {
    let (router, _) = api_router().split_for_parts();
    router
        .fallback(|| async {
            ApiError(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                "no such route on the local device API (is the CLI newer than the device?)".into(),
            )
        })
        .layer(DefaultBodyLimit::max(64 * 1024))
        .with_state(state)
}

/// Bind the socket at `path` (replacing a stale one), private to the device's user, and serve
/// until `shutdown` resolves.
pub async fn serve(
    path: PathBuf,
    state: LocalApi,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), crate::DeviceError> {
    let listener = bind(&path)?;
    tracing::info!(socket = %path.display(), "local device API listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(crate::DeviceError::io(&path))?;
    let _ = std::fs::remove_file(&path);
    Ok(())
}

fn bind(path: &Path) -> Result<tokio::net::UnixListener, crate::DeviceError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    crate::layout::create_private_dir(dir)?;
    if std::fs::symlink_metadata(path).is_ok() {
        std::fs::remove_file(path).map_err(crate::DeviceError::io(path))?;
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(crate::DeviceError::io(path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(crate::DeviceError::io(path))?;
    }
    Ok(listener)
}

#[utoipa::path(get, path = "/v1/device", tag = "device",
    responses((status = 200, description = "OK", body = api::AttachedDevice),
        (status = 500, description = "The device failed to read its state", body = ErrorBody)))]
async fn show_device(State(s): State<LocalApi>) -> ApiResult<axum::Json<api::AttachedDevice>> {
    let apps = s.apps.clone();
    let development = blocking(move || Ok(apps.development_mode())).await?;
    let mut device = s
        .device
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    device.development = development;
    Ok(axum::Json(device))
}

#[utoipa::path(post, path = "/v1/device/restart", tag = "device",
    responses((status = 202, description = "The device restarts")))]
async fn restart(State(s): State<LocalApi>) -> StatusCode {
    tracing::info!("restart requested through the local device API");
    s.restart.notify_one();
    StatusCode::ACCEPTED
}

#[utoipa::path(put, path = "/v1/capability", tag = "device",
    request_body(content = Binary, content_type = "application/octet-stream",
        description = "A capability file for this device (COSE_Sign1 bytes, as the service issues it)"),
    responses((status = 200, description = "Development mode after the capability", body = api::DevelopmentMode),
        (status = 413, description = "`payload_too_large`: over 64 KiB", body = ErrorBody),
        (status = 422, description = "`invalid_body`: not a valid capability file for this device", body = ErrorBody),
        (status = 500, description = "The device failed to store it", body = ErrorBody)))]
async fn apply_capability(
    State(s): State<LocalApi>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<axum::Json<api::DevelopmentMode>> {
    let body = body_or_413(body)?;
    let apps = s.apps.clone();
    blocking(move || apps.apply_capability(&body))
        .await
        .map(axum::Json)
}

#[utoipa::path(delete, path = "/v1/capability", tag = "device",
    responses((status = 200, description = "Development mode without a capability", body = api::DevelopmentMode),
        (status = 409, description = "`conflict`: the runtime refused to stop the sideloaded apps", body = ErrorBody),
        (status = 500, description = "The device failed to remove it", body = ErrorBody)))]
async fn remove_capability(
    State(s): State<LocalApi>,
) -> ApiResult<axum::Json<api::DevelopmentMode>> {
    let (apps, ctx) = (s.apps.clone(), s.ctx.clone());
    blocking(move || apps.remove_capability(&ctx))
        .await
        .map(axum::Json)
}

#[utoipa::path(get, path = "/v1/images", tag = "images",
    responses((status = 200, description = "OK", body = api::InstalledImages)))]
async fn list_images(State(s): State<LocalApi>) -> axum::Json<api::InstalledImages> {
    axum::Json(s.apps.images())
}

/// Query of `POST /v1/sideload`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SideloadQuery {
    /// Install without starting: the app waits for `ferro device app start`.
    #[serde(default)]
    manual_start: bool,
}

#[utoipa::path(post, path = "/v1/sideload", tag = "images",
    params(SideloadQuery,
        ("ferro-developer-key" = String, Header, description = "The developer's public key: base64 of its DER SubjectPublicKeyInfo; the applied appDevelopment capability must name its key ID")),
    request_body(content = Binary, content_type = "application/octet-stream",
        description = "A test-signed image package (at most 32 MiB)"),
    responses((status = 201, description = "Installed (and started unless `manualStart`)", body = api::SideloadResult),
        (status = 400, description = "`invalid_query`: a query parameter is malformed or unknown", body = ErrorBody),
        (status = 403, description = "`forbidden`: the device is not in development mode", body = ErrorBody),
        (status = 409, description = "`conflict`: the runtime refused the app", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: over 32 MiB", body = ErrorBody),
        (status = 422, description = "`invalid_body` (missing or bad developer key), `untrusted_signing_key`, `invalid_image` or `wrong_image_type`", body = ErrorBody),
        (status = 500, description = "The device failed to store it", body = ErrorBody)))]
async fn sideload(
    State(s): State<LocalApi>,
    query: Result<Query<SideloadQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, axum::Json<api::SideloadResult>)> {
    let body = body_or_413(body)?;
    let query = query_or_400(query)?;
    let key = headers
        .get(api::DEVELOPER_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| ApiError::from(AppError::BadDeveloperKey("missing".into())))?;
    let (apps, ctx) = (s.apps.clone(), s.ctx.clone());
    let result = blocking(move || apps.sideload(&ctx, &body, &key, query.manual_start)).await?;
    Ok((StatusCode::CREATED, axum::Json(result)))
}

#[utoipa::path(delete, path = "/v1/sideload/{component}", tag = "images",
    params(("component" = Uuid, Path, description = "The app's component ID")),
    responses((status = 204, description = "Removed"), (status = 400, description = "`invalid_id`: the component ID is not a GUID", body = ErrorBody), (status = 404, description = "No such app", body = ErrorBody),
        (status = 409, description = "`conflict`: the app is not sideloaded", body = ErrorBody),
        (status = 500, description = "The device failed to remove it", body = ErrorBody)))]
async fn delete_sideloaded(
    State(s): State<LocalApi>,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<StatusCode> {
    let id = component(&id)?;
    let (apps, ctx) = (s.apps.clone(), s.ctx.clone());
    blocking(move || apps.delete_sideloaded(&ctx, id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/apps", tag = "apps",
    responses((status = 200, description = "OK", body = api::AppStatusList)))]
async fn list_apps(State(s): State<LocalApi>) -> axum::Json<api::AppStatusList> {
    axum::Json(s.apps.statuses())
}

#[utoipa::path(get, path = "/v1/apps/{component}", tag = "apps",
    params(("component" = Uuid, Path, description = "The app's component ID")),
    responses((status = 200, description = "OK", body = api::AppStatus), (status = 400, description = "`invalid_id`: the component ID is not a GUID", body = ErrorBody), (status = 404, description = "No such app", body = ErrorBody),
        (status = 409, description = "`conflict`: the app is not running in the runtime, or the runtime refused", body = ErrorBody)))]
async fn app_status(
    State(s): State<LocalApi>,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<axum::Json<api::AppStatus>> {
    Ok(axum::Json(s.apps.status(component(&id)?)?))
}

#[utoipa::path(post, path = "/v1/apps/{component}/start", tag = "apps",
    params(("component" = Uuid, Path, description = "The app's component ID")),
    responses((status = 200, description = "OK", body = api::AppStatus), (status = 400, description = "`invalid_id`: the component ID is not a GUID", body = ErrorBody), (status = 404, description = "No such app", body = ErrorBody),
        (status = 409, description = "`conflict`: the runtime refused to start it", body = ErrorBody)))]
async fn start_app(
    State(s): State<LocalApi>,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<axum::Json<api::AppStatus>> {
    let id = component(&id)?;
    let apps = s.apps.clone();
    blocking(move || apps.start(id)).await.map(axum::Json)
}

#[utoipa::path(post, path = "/v1/apps/{component}/stop", tag = "apps",
    params(("component" = Uuid, Path, description = "The app's component ID")),
    responses((status = 200, description = "OK", body = api::AppStatus), (status = 400, description = "`invalid_id`: the component ID is not a GUID", body = ErrorBody), (status = 404, description = "No such app", body = ErrorBody),
        (status = 409, description = "`conflict`: the runtime refused to stop it", body = ErrorBody)))]
async fn stop_app(
    State(s): State<LocalApi>,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<axum::Json<api::AppStatus>> {
    let id = component(&id)?;
    let apps = s.apps.clone();
    blocking(move || apps.stop(id)).await.map(axum::Json)
}

#[utoipa::path(get, path = "/v1/apps/{component}/quota", tag = "apps",
    params(("component" = Uuid, Path, description = "The app's component ID")),
    responses((status = 200, description = "OK", body = api::AppQuota), (status = 400, description = "`invalid_id`: the component ID is not a GUID", body = ErrorBody), (status = 404, description = "No such app", body = ErrorBody),
        (status = 409, description = "`conflict`: the app is not running in the runtime, or the runtime refused", body = ErrorBody)))]
async fn app_quota(
    State(s): State<LocalApi>,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<axum::Json<api::AppQuota>> {
    Ok(axum::Json(s.apps.quota(component(&id)?)?))
}

#[utoipa::path(get, path = "/v1/apps/{component}/memory", tag = "apps",
    params(("component" = Uuid, Path, description = "The app's component ID")),
    responses((status = 200, description = "OK", body = api::AppMemoryStats), (status = 400, description = "`invalid_id`: the component ID is not a GUID", body = ErrorBody), (status = 404, description = "No such app", body = ErrorBody),
        (status = 409, description = "`conflict`: the app is not running in the runtime, or the runtime refused", body = ErrorBody)))]
async fn app_memory(
    State(s): State<LocalApi>,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<axum::Json<api::AppMemoryStats>> {
    Ok(axum::Json(s.apps.memory(component(&id)?)?))
}

/// Query of `GET /v1/apps/{component}/logs`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LogQuery {
    /// Keep the answer open and stream new lines until the client goes away.
    #[serde(default)]
    follow: bool,
}

/// The kept lines, then (with `follow`) new lines as they come, one JSON object a line, until
/// the client goes away.
#[utoipa::path(get, path = "/v1/apps/{component}/logs", tag = "apps",
    params(("component" = Uuid, Path, description = "The app's component ID"), LogQuery),
    responses((status = 200, description = "The kept lines, then (with `follow`) new ones as they come: one `LogLine` JSON object a line",
            content_type = "application/x-ndjson", body = api::LogLine),
        (status = 400, description = "`invalid_id` (the component ID is not a GUID) or `invalid_query`", body = ErrorBody), (status = 404, description = "No such app", body = ErrorBody),
        (status = 409, description = "`conflict`: the app is not running in the runtime, or the runtime refused", body = ErrorBody),
        (status = 500, description = "The device could not follow the log", body = ErrorBody)))]
async fn app_logs(
    State(s): State<LocalApi>,
    UrlPath(id): UrlPath<String>,
    query: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let query = query_or_400(query)?;
    let id = component(&id)?;
    // Subscribe before reading the kept lines so nothing falls between the two.
    let follower = if query.follow {
        Some(s.apps.follow_logs(id)?)
    } else {
        None
    };
    let kept = s.apps.logs(id)?;
    let last_seq = kept.iter().map(|l| l.seq).max().unwrap_or(0);
    let mut text = String::new();
    for line in &kept {
        text.push_str(&serde_json::to_string(line).unwrap_or_default());
        text.push('\n');
    }
    let Some(mut follower) = follower else {
        return Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], text).into_response());
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let _ = tx.try_send(Bytes::from(text));
    std::thread::Builder::new()
        .name(format!("log-follow-{id}"))
        .spawn(move || {
            while !tx.is_closed() {
                if let Some(line) = follower.next_timeout(LOG_POLL) {
                    if line.seq <= last_seq {
                        continue;
                    }
                    let mut json = serde_json::to_string(&line).unwrap_or_default();
                    json.push('\n');
                    if tx.blocking_send(Bytes::from(json)).is_err() {
                        break;
                    }
                }
            }
        })
        .map_err(|e| {
            ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                format!("cannot follow the log: {e}"),
            )
        })?;
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}

#[utoipa::path(get, path = "/v1/board", tag = "board",
    responses((status = 200, description = "OK", body = api::BoardState),
        (status = 404, description = "`not_found`: the device has no virtual board", body = ErrorBody)))]
async fn board(State(s): State<LocalApi>) -> ApiResult<axum::Json<api::BoardState>> {
    Ok(axum::Json(s.apps.board_state()?))
}

#[utoipa::path(put, path = "/v1/board/buttons/{name}", tag = "board",
    params(("name" = String, Path, description = "The button's name in the board's hardware definition")),
    request_body = api::ButtonPress,
    responses((status = 200, description = "OK", body = api::BoardState),
        (status = 404, description = "`not_found`: no such button, or no virtual board", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: over 64 KiB", body = ErrorBody),
        (status = 422, description = "`malformed_json` (not well-formed JSON) or `invalid_body` (the wrong shape)", body = ErrorBody)))]
async fn press_button(
    State(s): State<LocalApi>,
    UrlPath(name): UrlPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<axum::Json<api::BoardState>> {
    let body = body_or_413(body)?;
    let press: api::ButtonPress = json_body(&body)?;
    Ok(axum::Json(s.apps.set_button(&name, press.pressed)?))
}

#[utoipa::path(put, path = "/v1/board/temperature", tag = "board",
    request_body = api::TemperatureSetting,
    responses((status = 200, description = "OK", body = api::BoardState),
        (status = 404, description = "`not_found`: no virtual board with a temperature sensor", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: over 64 KiB", body = ErrorBody),
        (status = 422, description = "`malformed_json` (not well-formed JSON) or `invalid_body` (the wrong shape)", body = ErrorBody)))]
async fn set_temperature(
    State(s): State<LocalApi>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<axum::Json<api::BoardState>> {
    let body = body_or_413(body)?;
    let setting: api::TemperatureSetting = json_body(&body)?;
    Ok(axum::Json(s.apps.set_temperature(setting.millicelsius)?))
}

#[utoipa::path(post, path = "/v1/board/uarts/{name}/peer", tag = "board",
    params(("name" = String, Path, description = "The UART's AppManifestValue (e.g. ISU1)")),
    request_body = api::UartPeerSend,
    responses((status = 200, description = "OK: the bytes sent to the app, what it wrote", body = api::UartPeerExchange),
        (status = 404, description = "`not_found`: no such UART, or no virtual board", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: over 64 KiB", body = ErrorBody),
        (status = 422, description = "`malformed_json` (not well-formed JSON) or `invalid_body` (the wrong shape, or more than 4096 bytes)", body = ErrorBody)))]
async fn uart_peer(
    State(s): State<LocalApi>,
    UrlPath(name): UrlPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<axum::Json<api::UartPeerExchange>> {
    let body = body_or_413(body)?;
    let send: api::UartPeerSend = json_body(&body)?;
    if send.data.len() > api::MAX_UART_PEER_SEND {
        return Err(ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidBody,
            format!(
                "data holds {} bytes; one exchange sends at most {}",
                send.data.len(),
                api::MAX_UART_PEER_SEND
            ),
        ));
    }
    Ok(axum::Json(s.apps.uart_peer(&name, &send.data)?))
}
