//! `/v1/os-feeds`: the OS feeds' policies (docs/attestation.md, "OS appraisal"). Each feed has
//! a minimum security version: target sets never offer, and the appraisal never trusts, a release
//! below its feed's minimum.

use crate::auth::Caller;
use crate::datastore::os_releases;
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use ferro_wire::{ErrorBody, ErrorCode, OsFeed, OsFeedPolicy, SetOsFeedPolicyRequest};
use serde_json::json;

fn feed_param(raw: &str) -> ApiResult<OsFeed> {
    raw.parse().map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidId,
            "the feed must be `Retail` or `RetailEval`",
        )
    })
}

/// The OS feeds' policies (any authenticated user): both feeds, with their minimum security
/// versions (0 when never set).
#[utoipa::path(get, path = "/v1/os-feeds", tag = "os-releases",
    responses((status = 200, body = Vec<OsFeedPolicy>), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_os_feeds(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<Json<Vec<OsFeedPolicy>>> {
    Ok(Json(os_releases::feed_policies(&state.db).await?))
}

/// Set a feed's minimum security version (platform operator). Devices of the feed's groups (and,
/// for Retail, devices in no group) are then offered only releases at or above it, and attest
/// Untrusted (`os_below_minimum_security_version`) while they run an older one. It may not
/// exceed the highest security version of the feed's releases that are not revoked (409), so
/// the feed always has an OS to offer. Lowering it is allowed (to undo a mistake) and audited.
#[utoipa::path(patch, path = "/v1/os-feeds/{feed}", tag = "os-releases",
    params(("feed" = String, Path, description = "Retail or RetailEval")),
    request_body = SetOsFeedPolicyRequest,
    responses((status = 200, body = OsFeedPolicy), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "No release of the feed that is not revoked has that security version", body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_os_feed_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path(feed): Path<String>,
    JsonBody(req): JsonBody<SetOsFeedPolicyRequest>,
) -> ApiResult<Json<OsFeedPolicy>> {
    caller.require_operator()?;
    let feed = feed_param(&feed)?;
    let minimum = req.minimum_security_version;
    let mut tx = state.db.begin_write().await?;
    os_releases::lock(&mut tx).await?;
    let highest = os_releases::highest_security_version_in(&mut tx, feed).await?;
    if minimum > 0 && highest.is_none_or(|h| h < i64::from(minimum)) {
        return Err(ApiError::conflict(format!(
            "no {} release that is not revoked has security version {minimum} or higher (the \
             highest is {}); publish (or promote) such a release first, then raise the minimum",
            feed.as_str(),
            highest.map_or_else(|| "none".to_string(), |h| h.to_string())
        )));
    }
    let now = db::now();
    os_releases::set_feed_minimum(&mut tx, feed, minimum, caller.user.id, now).await?;
    db::audit(
        &mut tx,
        None,
        Some(&caller.uid()),
        "os_feed.set_minimum_security_version",
        "os_feed",
        feed.as_str(),
        json!({ "minimumSecurityVersion": minimum }),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(
        feed = feed.as_str(),
        minimum,
        "OS feed minimum security version set"
    );
    Ok(Json(OsFeedPolicy {
        feed,
        minimum_security_version: minimum,
        updated_by: Some(caller.user.id),
        updated_at: Some(db::ts(now)),
    }))
}
