//! What stands between a password guesser and Argon2 (docs/service/accounts.md, "Login limits"):
//!
//! 1. **Reservations.** Every password check first reserves an attempt for its login name and
//!    its client address ([`reserve`]), in one write transaction that locks the key's row in
//!    `login_limit_keys`, counts the key's attempts inside the window and inserts the new one
//!    only while the count is under the limit. Concurrent attempts are therefore counted one
//!    after the other on both engines, and the limit holds under parallel load: of a hundred
//!    parallel guesses for one login, five are checked, the rest are `rate_limited`. A
//!    successful check gives its reservations back ([`Reservation::release`]); a failed one
//!    keeps them (they are the failure records).
//! 2. **The password gate.** At most [`PasswordGate`]'s permits Argon2 computations run at once
//!    (each holds its memory cost, 19 MiB by default), and at most its queue length wait for a
//!    permit; past that a request is refused with 503 `unavailable` and `Retry-After` before any
//!    hashing. Memory spent on password hashing is bounded whatever arrives.
//!
//! Client addresses are keyed as the attestation limiter keys them
//! ([`crate::rate_limit::key`]: IPv4 address, IPv6 /64), so one host cannot spread its guesses
//! over the addresses of its own prefix.
//!
//! The decision is [`admit`], a plain function of a key's attempts; the rows are
//! `crate::datastore::login_limits`'s. Depends on the datastore, `db`, `error` and
//! `rate_limit`'s key function, on nothing of the routes.

use crate::datastore::login_limits::{self, KeyAttempts};
use crate::db::{self, Tx};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use ferro_wire::ErrorCode;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use tokio::sync::Semaphore;

/// The rate-limit key of a client address (`ip:<address or /64 prefix>`); `ip:unknown` without
/// a socket (in-process callers share one key: limited, never exempt).
pub fn address_key(addr: Option<IpAddr>) -> String {
    match addr {
        None => "ip:unknown".to_string(),
        Some(a) => format!("ip:{}", crate::rate_limit::key(Some(a))),
    }
}

/// The rate-limit key of a login name.
pub fn login_key(login: &str) -> String {
    format!("login:{login}")
}

/// Attempts reserved before one password check (one per key).
#[derive(Debug)]
#[must_use = "a reservation is kept as a failure unless released"]
pub struct Reservation {
    ids: Vec<String>,
    login: String,
}

impl Reservation {
    /// The check succeeded: forget the login name's failures (the user proved the password)
    /// and give back this attempt's reservation of the address key. Inside the caller's
    /// transaction, so the success and the release commit together.
    pub async fn release(self, tx: &mut Tx) -> ApiResult<()> {
        login_limits::forget_key_in(tx, &login_key(&self.login)).await?;
        for id in &self.ids {
            login_limits::delete_attempt_in(tx, id).await?;
        }
        Ok(())
    }
}

/// What a reservation does with one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Under the limit: reserve an attempt.
    Reserve,
    /// The key used its attempts of the window: refuse, and say when to retry (seconds, at
    /// least 1: when the oldest attempt leaves the window).
    Refuse {
        /// Seconds until an attempt leaves the window.
        retry_after: u64,
    },
}

/// The decision for a key with `attempts` inside the window of `window_secs`, at most `max`
/// attempts allowed, at `now` (Unix seconds).
pub fn admit(attempts: KeyAttempts, max: i64, now: i64, window_secs: i64) -> Admission {
    if attempts.count < max {
        return Admission::Reserve;
    }
    let retry = (attempts.oldest.unwrap_or(now) + window_secs - now).max(1);
    Admission::Refuse {
        retry_after: u64::try_from(retry).unwrap_or(1),
    }
}

/// Reserve one attempt for `login` and for the address key, or answer 429 `rate_limited` with
/// `Retry-After` when either key has used its attempts of the window. Atomic per key: the key's
/// row in `login_limit_keys` is locked (an UPDATE) before its attempts are counted.
pub async fn reserve(
    state: &AppState,
    login: &str,
    addr: Option<IpAddr>,
) -> ApiResult<Reservation> {
    let limit = state.config.rate_limit;
    let now = db::now();
    let since = now - limit.window_secs;
    if state.password_gate.prune_due(now) {
        prune_stale(state, since).await?;
    }
    let mut tx = state.db.begin_write().await?;
    let mut ids = Vec::with_capacity(2);
    for (key, max) in [
        (login_key(login), limit.per_login),
        (address_key(addr), limit.per_ip),
    ] {
        let attempts = login_limits::lock_and_count_in(&mut tx, &key, now, since).await?;
        if let Admission::Refuse { retry_after } = admit(attempts, max, now, limit.window_secs) {
            // Dropping the transaction rolls back the other key's reservation.
            return Err(ApiError::Client {
                code: ErrorCode::RateLimited,
                message: format!(
                    "too many failed attempts; wait {retry_after} seconds before trying again"
                ),
                retry_after: Some(retry_after),
            });
        }
        let id = uuid::Uuid::now_v7().to_string();
        login_limits::insert_attempt_in(&mut tx, &id, &key, now).await?;
        ids.push(id);
    }
    tx.commit().await?;
    Ok(Reservation {
        ids,
        login: login.to_string(),
    })
}

/// How often (seconds) a process prunes the login-limit rows of keys nobody tried since their
/// window ended ([`prune_stale`]).
pub const PRUNE_EVERY_SECS: i64 = 60;

/// Forget attempts older than the window, and the lock rows of keys untouched since, for every
/// key (a reservation prunes only its own keys): a spray of distinct login names must not grow
/// the tables without bound. Runs at most every [`PRUNE_EVERY_SECS`] per process.
pub async fn prune_stale(state: &AppState, since: i64) -> ApiResult<()> {
    let mut tx = state.db.begin_write().await?;
    login_limits::prune_in(&mut tx, since).await?;
    tx.commit().await?;
    Ok(())
}

/// Bounds the Argon2 computations of this process: `permits` at once, `queue` more waiting.
/// Also remembers when this process last pruned stale login-limit rows.
#[derive(Debug)]
pub struct PasswordGate {
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    queue: usize,
    checks: AtomicU64,
    last_prune: AtomicI64,
}

/// The gate's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GateSize {
    /// Argon2 computations at once.
    pub concurrent: usize,
    /// Requests that may wait for one; more are refused with 503.
    pub queue: usize,
}

impl Default for GateSize {
    /// Two at once (38 MiB at the default cost) and 32 waiting: a login takes ~25 ms of CPU,
    /// so a full queue drains in well under a second.
    fn default() -> Self {
        GateSize {
            concurrent: 2,
            queue: 32,
        }
    }
}

impl PasswordGate {
    /// A gate of `size` (a zero `concurrent` counts as one).
    pub fn new(size: GateSize) -> PasswordGate {
        PasswordGate {
            permits: Arc::new(Semaphore::new(size.concurrent.max(1))),
            waiting: AtomicUsize::new(0),
            queue: size.queue,
            checks: AtomicU64::new(0),
            last_prune: AtomicI64::new(i64::MIN),
        }
    }

    /// Whether this process should prune now (at most every [`PRUNE_EVERY_SECS`]; of
    /// concurrent callers, one is told yes).
    fn prune_due(&self, now: i64) -> bool {
        let last = self.last_prune.load(Ordering::Acquire);
        now.saturating_sub(last) >= PRUNE_EVERY_SECS
            && self
                .last_prune
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// Run the CPU- and memory-heavy `f` (a hash or a verification) on the blocking pool once a
    /// permit is free; 503 `unavailable` with `Retry-After: 1` when the queue is full.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> ApiResult<T> {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue {
                    self.waiting.fetch_sub(1, Ordering::AcqRel);
                    metrics::counter!("ferro_password_checks_refused_total").increment(1);
                    return Err(ApiError::Client {
                        code: ErrorCode::Unavailable,
                        message: "too many password checks are under way; retry in a second".into(),
                        retry_after: Some(1),
                    });
                }
                let p = self.permits.clone().acquire_owned().await;
                self.waiting.fetch_sub(1, Ordering::AcqRel);
                p.map_err(|_| ApiError::Internal("password gate closed".into()))?
            }
        };
        self.checks.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("ferro_password_checks_total").increment(1);
        let out = tokio::task::spawn_blocking(move || {
            let out = f();
            drop(permit);
            out
        })
        .await
        .map_err(|e| ApiError::Internal(format!("password task: {e}")))?;
        Ok(out)
    }

    /// Let the next reservation prune at once (as if the last prune were a minute old).
    pub fn forget_last_prune(&self) {
        self.last_prune.store(i64::MIN, Ordering::Release);
    }

    /// How many computations this gate has let through (tests and metrics).
    pub fn checks(&self) -> u64 {
        self.checks.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn address_keys_group_an_ipv6_prefix() {
        let a = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 3, 4, 5, 6));
        let b = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 9, 9, 9, 9));
        let c = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 3, 3, 4, 5, 6));
        assert_eq!(address_key(Some(a)), address_key(Some(b)));
        assert_ne!(address_key(Some(a)), address_key(Some(c)));
        let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped());
        assert_eq!(address_key(Some(v4)), address_key(Some(mapped)));
        assert_eq!(address_key(None), "ip:unknown");
    }

    #[test]
    fn a_key_is_refused_once_its_attempts_are_used() {
        let (now, window) = (10_000, 900);
        let at = |count, oldest| KeyAttempts { count, oldest };
        // (attempts in the window, most allowed, decision)
        let cases = [
            (at(0, None), 5, Admission::Reserve),
            (at(4, Some(now - 10)), 5, Admission::Reserve),
            // The fifth of five is used: wait until the oldest leaves the window.
            (
                at(5, Some(now - 100)),
                5,
                Admission::Refuse { retry_after: 800 },
            ),
            (
                at(7, Some(now - 899)),
                5,
                Admission::Refuse { retry_after: 1 },
            ),
            (at(5, Some(now)), 5, Admission::Refuse { retry_after: 900 }),
            // Never less than a second, even for an attempt at the window's edge.
            (
                at(5, Some(now - 900)),
                5,
                Admission::Refuse { retry_after: 1 },
            ),
            (
                at(5, Some(now - 5000)),
                5,
                Admission::Refuse { retry_after: 1 },
            ),
            // No attempts allowed at all: refused for a whole window.
            (at(0, None), 0, Admission::Refuse { retry_after: 900 }),
        ];
        for (attempts, max, want) in cases {
            assert_eq!(
                admit(attempts, max, now, window),
                want,
                "{attempts:?} of {max}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_gate_bounds_concurrency_and_refuses_past_its_queue() {
        let gate = Arc::new(PasswordGate::new(GateSize {
            concurrent: 1,
            queue: 2,
        }));
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let release_rx = Arc::new(std::sync::Mutex::new(release_rx));
        // One running (blocked until released), two waiting: the fourth is refused at once.
        let mut running = Vec::new();
        for _ in 0..3 {
            let g = gate.clone();
            let rx = release_rx.clone();
            running.push(tokio::spawn(async move {
                g.run(move || {
                    let _ = rx.lock().map(|r| r.recv());
                })
                .await
            }));
        }
        // Wait until the first holds the permit and two wait.
        while gate.waiting.load(Ordering::Acquire) < 2 {
            tokio::task::yield_now().await;
        }
        let refused = gate.run(|| ()).await.unwrap_err();
        assert_eq!(refused.code(), ErrorCode::Unavailable);
        for _ in 0..3 {
            release_tx.send(()).unwrap();
        }
        for r in running {
            r.await.unwrap().unwrap();
        }
        assert_eq!(gate.checks(), 3);
        gate.run(|| ()).await.unwrap();
    }
}
