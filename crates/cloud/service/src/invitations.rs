//! Invitations (docs/service/accounts.md): the only way an account gains a role in a tenant it
//! does not administer. The rules an invitation meets, as plain functions over its row: what a
//! code looks like, who may accept it, and what accepting does to the role the account holds.
//! The SQL is `crate::datastore::invitations`; the routes are `routes/invitations.rs`.

use crate::error::{ApiError, ApiResult};
use ferro_wire::{ErrorCode, Invitation, MAX_INVITATION_DAYS, Role};

/// Prefix of invitation codes (secret scanners can look for `fsi_` + 43 base64url).
pub const INVITATION_PREFIX: &str = "fsi_";

/// The life of a new invitation in days: the requested one, or [`MAX_INVITATION_DAYS`]; 1 to
/// [`MAX_INVITATION_DAYS`].
pub fn life_days(requested: Option<u32>) -> ApiResult<u32> {
    crate::extract::expires_in_days(requested, MAX_INVITATION_DAYS, MAX_INVITATION_DAYS)
}

/// When an invitation made at `now` for `days` expires (Unix seconds).
pub fn expires_at(now: i64, days: u32) -> i64 {
    crate::extract::days_after(now, days)
}

/// Whether `code` could be an invitation code at all (anything else is not looked up).
pub fn plausible_code(code: &str) -> bool {
    code.starts_with(INVITATION_PREFIX) && code.len() <= 100
}

/// Whether the account `login` may accept `invitation` (an open one: the lookup found it
/// unused, unrevoked and unexpired): one restricted to a login only by that login.
pub fn may_accept(invitation: &Invitation, login: &str) -> bool {
    invitation.login.as_deref().is_none_or(|l| l == login)
}

/// What accepting an invitation does to the account's role in its tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    /// No role yet: this one is given.
    Give(Role),
    /// A weaker role: raised to this one.
    Raise(Role),
    /// The same or a stronger role: kept.
    Keep(Role),
}

impl Grant {
    /// The role held afterwards.
    pub fn role(self) -> Role {
        match self {
            Grant::Give(r) | Grant::Raise(r) | Grant::Keep(r) => r,
        }
    }
}

/// Accepting an invitation to `invited` while holding `current`: the account keeps the
/// stronger of the two.
pub fn grant(current: Option<Role>, invited: Role) -> Grant {
    match current {
        None => Grant::Give(invited),
        Some(c) if c < invited => Grant::Raise(invited),
        Some(c) => Grant::Keep(c),
    }
}

/// The one answer for every code that cannot be accepted: unknown, used, revoked, expired,
/// restricted to another login (no oracle about which).
pub fn no_such_invitation() -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        "no open invitation has this code (it is wrong, used, revoked, expired, or for another \
         login); ask the tenant's Administrator for a new one",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use Role::{Administrator as A, Contributor as C, Reader as R};
    use ferro_wire::{InvitationId, TenantId};

    #[test]
    fn accepting_keeps_the_stronger_role() {
        let cases = [
            (None, R, Grant::Give(R)),
            (None, A, Grant::Give(A)),
            (Some(R), C, Grant::Raise(C)),
            (Some(R), A, Grant::Raise(A)),
            (Some(C), C, Grant::Keep(C)),
            (Some(A), R, Grant::Keep(A)),
            (Some(C), R, Grant::Keep(C)),
        ];
        for (current, invited, want) in cases {
            let got = grant(current, invited);
            assert_eq!(got, want, "{current:?} + {invited:?}");
            assert_eq!(got.role(), current.map_or(invited, |c| c.max(invited)));
        }
    }

    #[test]
    fn only_the_named_login_accepts_a_restricted_invitation() {
        let invitation = |login: Option<&str>| Invitation {
            id: InvitationId::new(),
            tenant_id: TenantId::new(),
            role: R,
            login: login.map(str::to_string),
            created_by: None,
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            expires_at: time::OffsetDateTime::UNIX_EPOCH,
        };
        let cases = [
            (None, "a@x", true),
            (Some("a@x"), "a@x", true),
            (Some("a@x"), "b@x", false),
            // Logins are stored lowercase; a differently cased one is another login.
            (Some("a@x"), "A@x", false),
        ];
        for (restricted, login, want) in cases {
            assert_eq!(
                may_accept(&invitation(restricted), login),
                want,
                "{restricted:?} {login}"
            );
        }
    }

    #[test]
    fn codes_and_lives() {
        for (code, want) in [
            ("fsi_abc", true),
            ("fst_abc", false),
            ("", false),
            (&format!("fsi_{}", "a".repeat(96)) as &str, true),
            (&format!("fsi_{}", "a".repeat(97)), false),
        ] {
            assert_eq!(plausible_code(code), want, "{code}");
        }
        for (requested, want) in [
            (None, Some(7)),
            (Some(1), Some(1)),
            (Some(7), Some(7)),
            (Some(0), None),
            (Some(8), None),
        ] {
            assert_eq!(life_days(requested).ok(), want, "{requested:?}");
        }
        assert_eq!(expires_at(1000, 2), 1000 + 2 * 86_400);
    }
}
