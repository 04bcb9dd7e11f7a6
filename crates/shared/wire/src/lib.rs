//! Ferrosphere's wire types: what crosses the HTTP boundary between the security service
//! (`ferro-service`) and its clients (the `ferro` CLI, automation, later devices).
//!
//! This crate owns the JSON shape of the `/v1` API: typed IDs ([`TenantId`], [`UserId`], ...),
//! [`Role`], request and response bodies, pagination ([`Page`], [`PageQuery`]) and the error body
//! ([`ErrorBody`] with a stable [`ErrorCode`]). It is serde only: no HTTP, no database. It depends
//! on one other Ferrosphere crate, `ferro-signing`, for the one [`DeviceId`] type (its feature
//! `serde`), and must depend on nothing else of the tree, so anything (including code that runs
//! on a device) may depend on it. The `openapi` feature adds `utoipa::ToSchema` derives and [`schema`], the
//! patterns of string formats, for the OpenAPI documents of the service and of the local device
//! API (`ferro-service` and `ferro-device`'s agent turn it on); clients leave it off.
//!
//! Conventions: field names are camelCase; enums are PascalCase strings as Azure Sphere's API
//! uses them (`"Administrator"`, `"RetailEval"`); error codes are snake_case; timestamps are
//! RFC 3339 strings in UTC; request bodies reject unknown fields.

use serde::{Deserialize, Serialize};
use std::fmt;

#[macro_use]
mod names;

pub mod device_api;
mod devices;
/// The one device ID type of the tree (`ferro-signing`'s, a JSON string on the wire).
pub use ferro_signing::{DeviceId, DeviceIdError};
#[cfg(feature = "openapi")]
pub mod schema;
pub use devices::*;
use std::str::FromStr;
use time::OffsetDateTime;
use uuid::Uuid;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered (UUIDv7) ID.
            #[must_use]
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }
    };
}

typed_id!(
    /// A tenant: the unit of isolation (devices, products, users' roles, keys).
    TenantId
);
typed_id!(
    /// A user (a person or an automation identity); users are platform-wide and hold roles per tenant.
    UserId
);
typed_id!(
    /// A product: a kind of device a tenant makes.
    ProductId
);
typed_id!(
    /// A device group inside a product.
    DeviceGroupId
);
typed_id!(
    /// A firmware reference value of a product (docs/attestation.md, "Firmware appraisal").
    FirmwareReferenceId
);
typed_id!(
    /// An API token (the ID is public; the secret is shown once at creation).
    ApiTokenId
);
typed_id!(
    /// One entry of a tenant's audit log.
    AuditEventId
);
typed_id!(
    /// An invitation to a role in a tenant (the ID is public; the code is shown once).
    InvitationId
);

// Images, deployments, OS releases (after `typed_id!`, which they use).
mod images;
pub use images::*;
mod attestation;
pub use attestation::*;
mod updates;
pub use updates::*;
mod events;
pub use events::*;
mod accounts;
pub use accounts::*;
mod claims;
pub use claims::*;
mod os_feeds;
pub use os_feeds::*;
mod body;
pub use body::{BodyError, is_json_content_type, parse_json_body};

named_enum! {
    /// A role a user holds in one tenant, with Azure Sphere's meaning.
    ///
    /// Ordered by power: `Reader < Contributor < Administrator`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    pub enum Role {
        /// Reads everything in the tenant.
        Reader => "Reader",
        /// Reader, plus manages products, device groups, deployments, images and devices.
        Contributor => "Contributor",
        /// Contributor, plus manages the tenant itself, users and their roles, and reads the audit log.
        Administrator => "Administrator",
    }
}

/// A string did not name a variant of the enum it was parsed as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownVariant;

impl fmt::Display for UnknownVariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown variant")
    }
}

impl std::error::Error for UnknownVariant {}

named_enum! {
    /// The OS feed a device group follows.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    pub enum OsFeed {
        /// Released OS versions.
        Retail => "Retail",
        /// Release candidates, published ahead of Retail for evaluation.
        RetailEval => "RetailEval",
    }
}

named_enum! {
    /// Which updates a device group's devices receive.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    pub enum UpdatePolicy {
        /// OS and app updates.
        UpdateAll => "UpdateAll",
        /// OS updates only; the tenant's apps are not updated (development devices).
        No3rdPartyAppUpdates => "No3rdPartyAppUpdates",
    }
}

// ---------------------------------------------------------------------------------------------
// Names

/// Longest tenant, product or device group name, in characters (as Azure Sphere).
pub const MAX_NAME_LEN: usize = 50;

/// Whether `name` is a valid tenant, product or device group name: 1 to 50 characters, each an
/// ASCII letter, digit, space, `-` or `_`, not starting or ending with a space.
#[must_use]
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with(' ')
        && !name.ends_with(' ')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b' ' | b'-' | b'_'))
}

/// Longest login name, in bytes.
pub const MAX_LOGIN_LEN: usize = 254;

/// Whether `login` is a valid login name: email-like `local@domain`, lowercase ASCII letters,
/// digits and `._%+-` in the local part, letters, digits, `.` and `-` in the domain, at most 254
/// bytes. Logins are compared as given, so clients should lowercase them.
#[must_use]
pub fn is_valid_login(login: &str) -> bool {
    let Some((local, domain)) = login.split_once('@') else {
        return false;
    };
    login.len() <= MAX_LOGIN_LEN
        && !local.is_empty()
        && !domain.is_empty()
        && !domain.starts_with(['.', '-'])
        && !domain.ends_with(['.', '-'])
        && local
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._%+-".contains(&b))
        && domain
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b".-".contains(&b))
}

/// Shortest password accepted, in characters.
pub const MIN_PASSWORD_LEN: usize = 12;
/// Longest password accepted, in bytes (bounds hashing cost).
pub const MAX_PASSWORD_LEN: usize = 1024;

// ---------------------------------------------------------------------------------------------
// Errors

/// The body of every error response: `{ "error": { "code": "...", "message": "..." } }`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    /// Stable machine-readable code; scripts match on this, never on the message.
    pub code: ErrorCode,
    /// Human-readable explanation saying what to do. Never contains secrets.
    pub message: String,
    /// Per-item errors of a bulk request (which items failed and why); absent otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<ErrorItem>,
}

/// One failed item of a bulk request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ErrorItem {
    /// Index of the item in the request (0-based).
    pub index: u32,
    /// The item's ID when it could be read (e.g. a device ID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Stable snake_case code of this item's failure.
    pub code: String,
    /// What is wrong with the item.
    pub message: String,
}

named_enum! {
    /// Stable error codes. Adding a code is compatible; renaming or removing one is not.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(rename_all = "snake_case")]
    #[non_exhaustive]
    pub enum ErrorCode {
        /// 401: no credentials, or a token that is unknown, expired or revoked.
        Unauthenticated => "unauthenticated",
        /// 401: login name or password wrong (never says which).
        InvalidCredentials => "invalid_credentials",
        /// 403: the password is a one-time password or expired; change it with `POST /v1/auth/change-password`.
        PasswordChangeRequired => "password_change_required",
        /// 403: the caller's role in this tenant does not allow the operation.
        Forbidden => "forbidden",
        /// 404: no such object, or it belongs to a tenant the caller cannot see (indistinguishable).
        NotFound => "not_found",
        /// 405: the route exists but not with this method.
        MethodNotAllowed => "method_not_allowed",
        /// 409: a name is taken, or the object is in a state that forbids the operation.
        Conflict => "conflict",
        /// 409: the object still holds others (a product with device groups that are not empty).
        NotEmpty => "not_empty",
        /// 409: the operation would leave a tenant without an Administrator.
        LastAdministrator => "last_administrator",
        /// 422: a device registration record was refused (bad signature, wrong key, malformed...);
        /// `details` lists each refused record by index.
        InvalidRegistrationRecord => "invalid_registration_record",
        /// 409: a different registration record is already stored for this device ID.
        RegistrationConflict => "registration_conflict",
        /// 404: no registration record for this device ID (the manufacturer must register it first).
        DeviceNotRegistered => "device_not_registered",
        /// 409: the device is claimed by another tenant; claiming is permanent.
        AlreadyClaimed => "already_claimed",
        /// 422: the package is signed by a key this tenant (or, for OS releases, the platform) has
        /// not registered: register it (`ferro developer-key add`) and upload again.
        UntrustedSigningKey => "untrusted_signing_key",
        /// 422: the body is not a valid image package (truncated, tampered, malformed, bad manifest);
        /// the message names the check that failed.
        InvalidImage => "invalid_image",
        /// 422: the package is of a type this route does not take (an OS image uploaded as a tenant
        /// image, an app published as an OS release).
        WrongImageType => "wrong_image_type",
        /// 416: the `Range` header asks for bytes outside the object.
        RangeNotSatisfiable => "range_not_satisfiable",
        /// 400: the body is not well-formed JSON.
        MalformedJson => "malformed_json",
        /// 400: the body has a field the API does not know (the message names it).
        UnknownField => "unknown_field",
        /// 400: a path parameter is not a well-formed ID.
        InvalidId => "invalid_id",
        /// 400: a query parameter is malformed (the message names it).
        InvalidQuery => "invalid_query",
        /// 413: the body is larger than the limit.
        PayloadTooLarge => "payload_too_large",
        /// 415: the body is not `application/json`.
        UnsupportedMediaType => "unsupported_media_type",
        /// 422: well-formed JSON of the wrong shape: missing field, wrong type, unknown enum value.
        InvalidBody => "invalid_body",
        /// 422: a name outside the allowed pattern.
        InvalidName => "invalid_name",
        /// 422: a password that does not meet the policy.
        WeakPassword => "weak_password",
        /// 429: too many failed attempts; retry after the `Retry-After` header's seconds.
        RateLimited => "rate_limited",
        /// 503: the service cannot reach its database or is shutting down; retry later.
        Unavailable => "unavailable",
        /// 503: the image store (the service's object store, for example S3) cannot be reached:
        /// nothing was stored; retry after the `Retry-After` header's seconds.
        ObjectStoreUnavailable => "object_store_unavailable",
        /// 504: the request took too long; retry later.
        Timeout => "timeout",
        /// 500: a bug or an unexpected failure; the message carries a request ID for the operator.
        Internal => "internal",
        /// 422: a deployment's rollout is not acceptable: waves not increasing, not ending at 100,
        /// out of range or too many; a negative or too long wait; a threshold out of range.
        InvalidRollout => "invalid_rollout",
        /// 404: the deployment has no rollout (it went to every device of its group at once).
        NoRollout => "no_rollout",
        /// 409: the rollout cannot be paused or resumed: it is complete, or a newer deployment
        /// superseded it.
        RolloutNotActive => "rollout_not_active",
        /// 403: the operation needs a fresh password login (a session younger than 15 minutes),
        /// not an API token or an older session: log in again and retry.
        ReauthenticationRequired => "reauthentication_required",
        /// 409: a quota of the platform is used up (tenants per user, ...); the message says the
        /// usage, the limit and what to do.
        QuotaExceeded => "quota_exceeded",
        /// 409: storing the upload would take the tenant over its image storage quota; the message
        /// says the usage and the limit (the service's `tenant_image_quota_bytes`).
        StorageQuotaExceeded => "storage_quota_exceeded",
        /// 409: the device transfer offer expired before it was accepted; ask the sending
        /// tenant's Administrator for a new offer.
        TransferExpired => "transfer_expired",
        /// 409: the image cannot be deleted while a deployment of the tenant lists it (and so a
        /// device's target set may name it); the message says which deployments.
        ImageInUse => "image_in_use",
    }
}

impl ErrorCode {
    /// The HTTP status that carries this code.
    #[must_use]
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::Unauthenticated | ErrorCode::InvalidCredentials => 401,
            ErrorCode::PasswordChangeRequired
            | ErrorCode::Forbidden
            | ErrorCode::ReauthenticationRequired => 403,
            ErrorCode::NotFound | ErrorCode::DeviceNotRegistered | ErrorCode::NoRollout => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Conflict
            | ErrorCode::NotEmpty
            | ErrorCode::LastAdministrator
            | ErrorCode::RegistrationConflict
            | ErrorCode::AlreadyClaimed
            | ErrorCode::RolloutNotActive
            | ErrorCode::QuotaExceeded
            | ErrorCode::StorageQuotaExceeded
            | ErrorCode::TransferExpired
            | ErrorCode::ImageInUse => 409,
            ErrorCode::MalformedJson
            | ErrorCode::UnknownField
            | ErrorCode::InvalidId
            | ErrorCode::InvalidQuery => 400,
            ErrorCode::UntrustedSigningKey
            | ErrorCode::InvalidImage
            | ErrorCode::WrongImageType => 422,
            ErrorCode::RangeNotSatisfiable => 416,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::InvalidBody
            | ErrorCode::InvalidName
            | ErrorCode::WeakPassword
            | ErrorCode::InvalidRegistrationRecord
            | ErrorCode::InvalidRollout => 422,
            ErrorCode::RateLimited => 429,
            ErrorCode::Unavailable | ErrorCode::ObjectStoreUnavailable => 503,
            ErrorCode::Timeout => 504,
            ErrorCode::Internal => 500,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pagination

/// Largest page a list route returns.
pub const MAX_PAGE_LIMIT: u32 = 500;
/// Page size when `limit` is not given.
pub const DEFAULT_PAGE_LIMIT: u32 = 100;

/// Query parameters of every list route: `?limit=N&continuation=TOKEN`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams, utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Items per page, 1 to 500 (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        param(minimum = 1, maximum = 500),
        schema(minimum = 1, maximum = 500)
    )]
    pub limit: Option<u32>,
    /// The `continuationToken` of the previous page; absent for the first page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuation: Option<String>,
}

/// One page of a list, as Azure Sphere's API returns them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    /// The items of this page, in a stable order (creation order).
    pub items: Vec<T>,
    /// Pass as `continuation` to get the next page; `null` on the last page.
    pub continuation_token: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Auth

/// `POST /v1/auth/login`.
#[derive(Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginRequest {
    /// Login name (email-like).
    pub login: String,
    /// Password.
    pub password: String,
}

impl fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginRequest")
            .field("login", &self.login)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A session token issued by login.
#[derive(Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct LoginResponse {
    /// Bearer token (`fss_...`); send as `Authorization: Bearer <token>`. Shown only here.
    pub token: String,
    /// When the session ends.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub expires_at: OffsetDateTime,
    /// The user logged in.
    pub user: User,
}

impl fmt::Debug for LoginResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginResponse")
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("user", &self.user)
            .finish()
    }
}

/// `POST /v1/auth/change-password`: authenticated by the current (or one-time) password, so a
/// user whose login answered `password_change_required` can use it.
#[derive(Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangePasswordRequest {
    /// Login name.
    pub login: String,
    /// Current or one-time password.
    pub current_password: String,
    /// New password: at least 12 characters, different from the current one.
    pub new_password: String,
    /// Keep the user's API tokens valid. By default a password change revokes every session and
    /// every API token of the user (a leaked password may have minted tokens).
    #[serde(default)]
    pub keep_api_tokens: bool,
}

impl fmt::Debug for ChangePasswordRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangePasswordRequest")
            .field("login", &self.login)
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------------------------
// Users and tokens

/// A user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// ID.
    pub id: UserId,
    /// Login name (email-like, unique on the platform).
    pub login: String,
    /// Display name.
    pub display_name: String,
    /// Whether the user operates the platform (OS releases, manufacturing). Grants no tenant access.
    pub platform_operator: bool,
    /// Whether the user must change the password before logging in.
    pub password_change_required: bool,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
}

/// `GET /v1/me`: the caller and their roles.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Me {
    /// The caller.
    pub user: User,
    /// The caller's role in each tenant where they hold one.
    pub roles: Vec<TenantRole>,
}

/// A role in a tenant, seen from the user's side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TenantRole {
    /// Tenant.
    pub tenant_id: TenantId,
    /// Tenant name.
    pub tenant_name: String,
    /// Role.
    pub role: Role,
}

/// `POST /v1/users` (platform operators only): create an account, which receives a one-time
/// password that expires. Accounts hold no role anywhere until they accept an invitation
/// (`POST /v1/invitations/accept`); tenant Administrators invite, they never create accounts.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateUserRequest {
    /// Login name (email-like, lowercase).
    pub login: String,
    /// Display name, 1 to 100 characters.
    pub display_name: String,
    /// Make the user a platform operator.
    #[serde(default)]
    pub platform_operator: bool,
}

/// The user created, with their one-time password (shown only here).
#[derive(Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CreatedUser {
    /// The user.
    pub user: User,
    /// One-time password: the user must change it at first login, before it expires.
    pub one_time_password: String,
    /// When the one-time password stops working (a platform operator can issue a new one).
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub one_time_password_expires_at: OffsetDateTime,
}

impl fmt::Debug for CreatedUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedUser")
            .field("user", &self.user)
            .field("one_time_password", &"<redacted>")
            .finish()
    }
}

/// Longest life of an API token, in days.
pub const MAX_API_TOKEN_DAYS: u32 = 90;
/// Life of an API token when none is asked for, in days.
pub const DEFAULT_API_TOKEN_DAYS: u32 = 30;

/// `POST /v1/me/tokens`: a named API token for automation. Needs a fresh password login (a
/// session younger than 15 minutes); an API token cannot make another.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateApiTokenRequest {
    /// Name (same pattern as tenant names), unique among the caller's live tokens.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::Name))]
    pub name: String,
    /// Lifetime in days, 1 to 90 (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<u32>,
    /// The one tenant the token reaches (the caller must hold a role there); absent: every
    /// tenant of the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<TenantId>,
    /// The strongest role the token acts with; absent: the caller's role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_role: Option<Role>,
    /// Only reads (`GET`, `HEAD`).
    #[serde(default)]
    pub read_only: bool,
}

/// An API token (without its secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ApiToken {
    /// ID (used to revoke it).
    pub id: ApiTokenId,
    /// Name.
    pub name: String,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
    /// Expiry.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub expires_at: OffsetDateTime,
    /// The one tenant it reaches; `null`: every tenant of its user.
    pub tenant_id: Option<TenantId>,
    /// The strongest role it acts with; `null`: its user's role.
    pub max_role: Option<Role>,
    /// Whether it only reads.
    pub read_only: bool,
}

/// The API token created, with its secret (shown only here).
#[derive(Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CreatedApiToken {
    /// The token's metadata.
    pub token: ApiToken,
    /// The secret (`fst_...`); send as `Authorization: Bearer <secret>`.
    pub secret: String,
}

impl fmt::Debug for CreatedApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedApiToken")
            .field("token", &self.token)
            .field("secret", &"<redacted>")
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Tenants and roles

/// A tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    /// ID.
    pub id: TenantId,
    /// Name (unique on the platform).
    pub name: String,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
    /// The caller's role in it.
    pub role: Role,
}

/// `POST /v1/tenants`: the caller becomes its Administrator.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTenantRequest {
    /// Name: letters, digits, spaces, `-`, `_`; at most 50 characters.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::Name))]
    pub name: String,
}

/// `PATCH /v1/tenants/{tenantId}`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateTenantRequest {
    /// New name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::schema::Name>))]
    pub name: Option<String>,
}

/// A user's role in a tenant, seen from the tenant's side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RoleAssignment {
    /// User.
    pub user_id: UserId,
    /// User's login name.
    pub login: String,
    /// User's display name.
    pub display_name: String,
    /// Role.
    pub role: Role,
}

/// `PATCH /v1/tenants/{tenantId}/roles/{userId}`: change a member's role. New members join
/// through invitations (`POST /v1/tenants/{tenantId}/invitations`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateRoleRequest {
    /// The new role.
    pub role: Role,
}

/// One entry of a tenant's audit log: who did what to which object, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// ID.
    pub id: AuditEventId,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: OffsetDateTime,
    /// Who (absent for the system itself).
    pub actor: Option<UserId>,
    /// What, e.g. `product.create`.
    pub action: String,
    /// Kind of object, e.g. `product`.
    pub object_type: String,
    /// Object ID.
    pub object_id: String,
    /// Non-secret details of the change.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub details: serde_json::Value,
}

// ---------------------------------------------------------------------------------------------
// Products and device groups

/// A product.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Product {
    /// ID.
    pub id: ProductId,
    /// Tenant.
    pub tenant_id: TenantId,
    /// Name (unique in the tenant).
    pub name: String,
    /// Description.
    pub description: String,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
}

/// `POST /v1/tenants/{tenantId}/products`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateProductRequest {
    /// Name: letters, digits, spaces, `-`, `_`; at most 50 characters.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::Name))]
    pub name: String,
    /// Description, at most 1024 characters.
    #[serde(default)]
    pub description: String,
    /// Skip creating the five default device groups (they are created unless this is true).
    #[serde(default)]
    pub no_default_device_groups: bool,
}

/// `PATCH /v1/tenants/{tenantId}/products/{productId}`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateProductRequest {
    /// New name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::schema::Name>))]
    pub name: Option<String>,
    /// New description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A device group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct DeviceGroup {
    /// ID.
    pub id: DeviceGroupId,
    /// Tenant.
    pub tenant_id: TenantId,
    /// Product.
    pub product_id: ProductId,
    /// Name (unique in the product).
    pub name: String,
    /// Description.
    pub description: String,
    /// OS feed.
    pub os_feed: OsFeed,
    /// Update policy.
    pub update_policy: UpdatePolicy,
    /// Whether crash dumps are collected from its devices.
    pub allow_crash_dumps_collection: bool,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
}

/// `POST /v1/tenants/{tenantId}/device-groups`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateDeviceGroupRequest {
    /// Product.
    pub product_id: ProductId,
    /// Name: letters, digits, spaces, `-`, `_`; at most 50 characters.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::Name))]
    pub name: String,
    /// Description, at most 1024 characters.
    #[serde(default)]
    pub description: String,
    /// OS feed (default Retail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_feed: Option<OsFeed>,
    /// Update policy (default UpdateAll).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_policy: Option<UpdatePolicy>,
    /// Collect crash dumps (default false).
    #[serde(default)]
    pub allow_crash_dumps_collection: bool,
}

/// `PATCH /v1/tenants/{tenantId}/device-groups/{deviceGroupId}`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateDeviceGroupRequest {
    /// New name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::schema::Name>))]
    pub name: Option<String>,
    /// New description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// New OS feed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_feed: Option<OsFeed>,
    /// New update policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_policy: Option<UpdatePolicy>,
    /// New crash dump setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_crash_dumps_collection: Option<bool>,
}

/// Query of `GET /v1/tenants/{tenantId}/device-groups`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct DeviceGroupQuery {
    /// Only the groups of this product.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>, format = Uuid))]
    pub product: Option<ProductId>,
    /// Items per page, 1 to 500 (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 500))]
    pub limit: Option<u32>,
    /// The `continuationToken` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuation: Option<String>,
}

/// The default device groups Azure Sphere creates for a product: name, description, OS feed,
/// update policy.
pub const DEFAULT_DEVICE_GROUPS: [(&str, &str, OsFeed, UpdatePolicy); 5] = [
    (
        "Development",
        "Default development device group",
        OsFeed::Retail,
        UpdatePolicy::No3rdPartyAppUpdates,
    ),
    (
        "Field Test",
        "Default test device group",
        OsFeed::Retail,
        UpdatePolicy::UpdateAll,
    ),
    (
        "Production",
        "Default production device group",
        OsFeed::Retail,
        UpdatePolicy::UpdateAll,
    ),
    (
        "Production OS Evaluation",
        "Default Production OS Evaluation device group",
        OsFeed::RetailEval,
        UpdatePolicy::UpdateAll,
    ),
    (
        "Field Test OS Evaluation",
        "Default Field Test OS Evaluation device group",
        OsFeed::RetailEval,
        UpdatePolicy::UpdateAll,
    ),
];

// ---------------------------------------------------------------------------------------------
// Operations

/// `GET /healthz` and `GET /readyz`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// `ok`, or what is wrong.
    pub status: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_valid_name("Contoso"));
        assert!(is_valid_name("Field Test OS Evaluation"));
        assert!(is_valid_name("a-b_c 1"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name(" lead"));
        assert!(!is_valid_name("trail "));
        assert!(!is_valid_name("semi;colon"));
        assert!(!is_valid_name("é"));
        assert!(is_valid_name(&"x".repeat(50)));
        assert!(!is_valid_name(&"x".repeat(51)));
    }

    #[test]
    fn logins() {
        assert!(is_valid_login("alice@example.com"));
        assert!(is_valid_login("a.b+c@localhost"));
        assert!(!is_valid_login("Alice@example.com"));
        assert!(!is_valid_login("alice"));
        assert!(!is_valid_login("@example.com"));
        assert!(!is_valid_login("alice@"));
        assert!(!is_valid_login("alice@.com"));
        assert!(!is_valid_login("a lice@example.com"));
    }

    #[test]
    fn error_codes_round_trip_and_are_snake_case() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            let back: ErrorCode = serde_json::from_str(&json).unwrap();
            assert_eq!(back, *code);
            assert!((400..600).contains(&code.http_status()));
        }
    }

    /// Every enum of `named_enum!`: serde's name of each variant is its `as_str()`, `Display`
    /// writes it, `FromStr` reads it back, and any other name is refused.
    #[test]
    fn named_enums_agree_with_serde_in_both_directions() {
        macro_rules! check {
            ($($t:ty),+ $(,)?) => {$(
                for v in <$t>::ALL {
                    let json = serde_json::to_string(v).unwrap();
                    assert_eq!(json, format!("\"{}\"", v.as_str()), "{}", stringify!($t));
                    assert_eq!(v.to_string(), v.as_str());
                    assert_eq!(v.as_str().parse::<$t>(), Ok(*v));
                }
                let other = format!("{}x", <$t>::ALL[0].as_str());
                assert_eq!(other.parse::<$t>(), Err(UnknownVariant), "{}", stringify!($t));
                assert_eq!("".parse::<$t>(), Err(UnknownVariant), "{}", stringify!($t));
            )+};
        }
        check!(
            Role,
            OsFeed,
            UpdatePolicy,
            ErrorCode,
            TransferState,
            AttestationVerdict,
            FirmwareAppraisal,
            RootOfTrustKind,
            ManufacturingState,
            CapabilityType,
            ImageType,
            PauseReason,
            UpdateState,
        );
    }

    #[test]
    fn error_body_shape() {
        let body = ErrorBody {
            error: ErrorDetail {
                code: ErrorCode::NotFound,
                message: "no such product".into(),
                details: vec![],
            },
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"error": {"code": "not_found", "message": "no such product"}})
        );
    }

    #[test]
    fn requests_reject_unknown_fields() {
        let err = serde_json::from_str::<CreateTenantRequest>(r#"{"name":"a","x":1}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `x`"));
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let req = LoginRequest {
            login: "a@b".into(),
            password: "hunter2hunter2".into(),
        };
        assert!(!format!("{req:?}").contains("hunter2"));
    }

    #[test]
    fn roles_order_by_power() {
        assert!(Role::Reader < Role::Contributor);
        assert!(Role::Contributor < Role::Administrator);
        for r in [Role::Reader, Role::Contributor, Role::Administrator] {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
    }
}
