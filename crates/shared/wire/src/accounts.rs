//! Invitations: how an account joins a tenant (docs/service/accounts.md). A tenant
//! Administrator creates an invitation and hands its code to the person by their own channel;
//! the person accepts it while logged in with their own credentials. Nobody is given a role
//! without presenting the code, and nobody can create an account another tenant later trusts.

use crate::{InvitationId, Role, TenantId, UserId};
use serde::{Deserialize, Serialize};
use std::fmt;
use time::OffsetDateTime;

/// Longest life of an invitation, in days (also the default).
pub const MAX_INVITATION_DAYS: u32 = 7;

/// `POST /v1/tenants/{tenantId}/invitations` (Administrator).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateInvitationRequest {
    /// The role the accepting account receives.
    pub role: Role,
    /// Only the account with this login name may accept it (a further restriction: the code
    /// is what proves the invitation, a login name proves nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    /// Life in days, 1 to 7 (default 7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<u32>,
}

/// A pending (or past) invitation, without its code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Invitation {
    /// ID.
    pub id: InvitationId,
    /// The tenant it invites to.
    pub tenant_id: TenantId,
    /// The role it grants.
    pub role: Role,
    /// The only login that may accept it, if restricted.
    pub login: Option<String>,
    /// Who created it.
    pub created_by: Option<UserId>,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
    /// Expiry.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub expires_at: OffsetDateTime,
}

/// The invitation created, with its code (shown only here).
#[derive(Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CreatedInvitation {
    /// The invitation.
    pub invitation: Invitation,
    /// The code (`fsi_...`): give it to the person by a channel you trust; they accept it
    /// with `POST /v1/invitations/accept` (`ferro role accept`) while logged in.
    pub code: String,
}

impl fmt::Debug for CreatedInvitation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedInvitation")
            .field("invitation", &self.invitation)
            .field("code", &"<redacted>")
            .finish()
    }
}

/// `POST /v1/invitations/accept`: the logged-in caller accepts an invitation.
#[derive(Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AcceptInvitationRequest {
    /// The invitation code.
    pub code: String,
}

impl fmt::Debug for AcceptInvitationRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcceptInvitationRequest")
            .finish_non_exhaustive()
    }
}

/// `POST /v1/users/{userId}/one-time-password` (platform operators): a fresh one-time
/// password for an account (the old password stops working; sessions and API tokens are
/// revoked).
#[derive(Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct OneTimePassword {
    /// The password: the user must change it at first login, before it expires.
    pub one_time_password: String,
    /// When it stops working.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub expires_at: OffsetDateTime,
}

impl fmt::Debug for OneTimePassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OneTimePassword")
            .field("one_time_password", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}
