//! A short-lived, bounded, in-process cache of bearer-token checks: SHA-256 of the token (and the
//! tenant of the path) to the caller and their role there.
//!
//! It is **derived state**: every entry is a copy of database rows that any replica rebuilds with
//! one query, so it is compatible with "handlers keep no state in the process" under these rules
//! (`docs/service/README.md`, "Authentication cache"):
//!
//! - **Hard TTL**: an entry is used for at most [`AuthCache::ttl`] (default 1 s, never more than
//!   [`MAX_TTL`]) after the database answered; then the next request queries again. So a
//!   revocation, a password change, a deleted user or a removed role made through **another
//!   replica** takes effect here within the TTL.
//! - **Local invalidation**: writes that change authentication state on this replica (logout,
//!   API token revocation, password change, role added or removed, user deleted) call
//!   [`AuthCache::invalidate_user`] after their commit, so they take effect at once here. A
//!   generation counter keeps a lookup that read the database before the write from re-inserting
//!   its stale answer afterwards.
//! - **Never the token**: keys are the 32-byte SHA-256 digest of the token (what the database
//!   stores), never the token; entries never hold the password hash.
//! - **Bounded**: at most [`AuthCache::capacity`] entries; when full, expired entries are
//!   dropped, and if it is still full, new answers are simply not cached.
//! - Token expiry is checked on every hit (an entry never outlives its token).

use crate::auth::Caller;
use ferro_wire::Role;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The longest TTL the cache accepts; larger configured values are clamped to it.
pub const MAX_TTL: Duration = Duration::from_secs(2);

/// Default TTL: how long a replica may act on a token check it made.
pub const DEFAULT_TTL: Duration = Duration::from_secs(1);

/// Default bound on entries (token x tenant pairs seen within one TTL).
pub const DEFAULT_CAPACITY: usize = 10_000;

/// Cache key: the SHA-256 digest of the token and the tenant of the path (`None` for routes
/// outside a tenant).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AuthKey {
    token_sha256: [u8; 32],
    tenant: Option<uuid::Uuid>,
}

impl AuthKey {
    /// A key from the token's digest and the tenant.
    pub fn new(token_sha256: [u8; 32], tenant: Option<uuid::Uuid>) -> AuthKey {
        AuthKey {
            token_sha256,
            tenant,
        }
    }
}

#[derive(Debug)]
struct Entry {
    at: Instant,
    token_expires_at: i64,
    caller: Caller,
    role: Option<Role>,
}

#[derive(Debug, Default)]
struct Inner {
    generation: u64,
    map: HashMap<AuthKey, Entry>,
}

/// See the module documentation.
#[derive(Debug)]
pub struct AuthCache {
    ttl: Duration,
    capacity: usize,
    inner: Mutex<Inner>,
}

impl Default for AuthCache {
    fn default() -> Self {
        AuthCache::new(DEFAULT_TTL, DEFAULT_CAPACITY)
    }
}

/// A snapshot of the invalidation generation, taken before a database lookup.
#[derive(Clone, Copy, Debug)]
pub struct Generation(u64);

impl AuthCache {
    /// A cache keeping answers for `ttl` (clamped to [`MAX_TTL`]; zero disables it) and at most
    /// `capacity` entries.
    pub fn new(ttl: Duration, capacity: usize) -> AuthCache {
        AuthCache {
            ttl: ttl.min(MAX_TTL),
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The effective TTL.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The bound on entries.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn enabled(&self) -> bool {
        !self.ttl.is_zero() && self.capacity > 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map inconsistent (single operations).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached answer for `key`, if it is younger than the TTL and its token has not expired
    /// at `now` (Unix seconds).
    pub fn get(&self, key: &AuthKey, now: i64) -> Option<(Caller, Option<Role>)> {
        if !self.enabled() {
            return None;
        }
        let mut inner = self.lock();
        let fresh = match inner.map.get(key) {
            None => return None,
            Some(e) => e.at.elapsed() < self.ttl && e.token_expires_at > now,
        };
        if fresh {
            inner.map.get(key).map(|e| (e.caller.clone(), e.role))
        } else {
            inner.map.remove(key);
            None
        }
    }

    /// Take before querying the database; pass to [`AuthCache::insert`].
    pub fn generation(&self) -> Generation {
        Generation(self.lock().generation)
    }

    /// Cache a checked answer, unless an invalidation happened since `generation` was taken (the
    /// answer may predate it) or the cache is full of live entries.
    pub fn insert(
        &self,
        key: AuthKey,
        generation: Generation,
        token_expires_at: i64,
        caller: &Caller,
        role: Option<Role>,
    ) {
        if !self.enabled() {
            return;
        }
        let mut inner = self.lock();
        if inner.generation != generation.0 {
            return;
        }
        if inner.map.len() >= self.capacity && !inner.map.contains_key(&key) {
            let ttl = self.ttl;
            inner.map.retain(|_, e| e.at.elapsed() < ttl);
            if inner.map.len() >= self.capacity {
                return;
            }
        }
        let mut caller = caller.clone();
        caller.user.password_hash = String::new();
        inner.map.insert(
            key,
            Entry {
                at: Instant::now(),
                token_expires_at,
                caller,
                role,
            },
        );
    }

    /// Forget every entry of user `uid` (stored form) and refuse inserts of answers read before
    /// now. Call after committing a change to the user's tokens, roles, password or existence.
    pub fn invalidate_user(&self, uid: &str) {
        let mut inner = self.lock();
        inner.generation = inner.generation.wrapping_add(1);
        inner.map.retain(|_, e| e.caller.uid() != uid);
    }

    /// Forget everything.
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.generation = inner.generation.wrapping_add(1);
        inner.map.clear();
    }

    /// Number of entries (for tests).
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether any key or entry contains `needle` (tests: the cache must never hold a raw token
    /// or a password hash). Scans the debug form of every key and entry.
    #[doc(hidden)]
    pub fn debug_contains(&self, needle: &str) -> bool {
        let inner = self.lock();
        inner
            .map
            .iter()
            .any(|(k, e)| format!("{k:?} {e:?}").contains(needle))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::UserRow;

    fn caller(uid: uuid::Uuid) -> Caller {
        Caller {
            user: UserRow {
                id: uid.into(),
                login: "a@b".into(),
                display_name: "A".into(),
                password_hash: "$argon2id$secret".into(),
                password_change_required: false,
                password_expires_at: None,
                platform_operator: false,
                created_at: 0,
            },
            scope: crate::auth::TokenScope::default(),
            token_id: "t".into(),
        }
    }

    #[test]
    fn hit_expiry_invalidation_and_bounds() {
        let c = AuthCache::new(Duration::from_millis(200), 2);
        let u = uuid::Uuid::now_v7();
        let k = AuthKey::new([1; 32], None);
        let g = c.generation();
        c.insert(k, g, i64::MAX, &caller(u), Some(Role::Reader));
        let (got, role) = c.get(&k, 0).unwrap();
        assert_eq!(role, Some(Role::Reader));
        assert!(got.user.password_hash.is_empty(), "no password hash cached");
        assert!(!c.debug_contains("$argon2id$"));
        // The token's own expiry wins over the TTL.
        assert!(c.get(&k, i64::MAX).is_none());
        // A stale generation is not inserted.
        let old = c.generation();
        c.invalidate_user(&u.to_string());
        c.insert(k, old, i64::MAX, &caller(u), None);
        assert!(c.get(&k, 0).is_none());
        // Bounded.
        let g = c.generation();
        for i in 0..5u8 {
            c.insert(AuthKey::new([i; 32], None), g, i64::MAX, &caller(u), None);
        }
        assert_eq!(c.len(), 2);
        // TTL.
        std::thread::sleep(Duration::from_millis(250));
        assert!(c.get(&AuthKey::new([0; 32], None), 0).is_none());
        // Clamped.
        assert_eq!(AuthCache::new(Duration::from_secs(60), 1).ttl(), MAX_TTL);
        // Disabled.
        let off = AuthCache::new(Duration::ZERO, 10);
        off.insert(k, off.generation(), i64::MAX, &caller(u), None);
        assert!(off.get(&k, 0).is_none());
    }
}
