//! OS feed policies: the minimum security version of each feed (`/v1/os-feeds`).

use crate::{OsFeed, UserId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// What a feed accepts: releases at or above `minimumSecurityVersion` that are not revoked.
/// Devices of groups on this feed (and, for `Retail`, devices in no group) are offered and
/// accepted at attestation only such releases.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct OsFeedPolicy {
    /// The feed.
    pub feed: OsFeed,
    /// Releases with a lower security version are neither offered nor trusted (0: none set).
    pub minimum_security_version: u32,
    /// Who set it last (absent: never set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<UserId>,
    /// When it was set last (absent: never set).
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub updated_at: Option<OffsetDateTime>,
}

/// `PATCH /v1/os-feeds/{feed}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetOsFeedPolicyRequest {
    /// The new minimum security version; at most the highest security version of a release of
    /// the feed that is not revoked (a higher one would leave its devices no OS to run).
    pub minimum_security_version: u32,
}
