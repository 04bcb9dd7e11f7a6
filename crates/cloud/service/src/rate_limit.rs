//! Per-address request rate limits on the unauthenticated attestation routes
//! (docs/attestation.md, "Rate limits").
//!
//! Anyone may ask for a challenge and send evidence for any registered device ID, and each
//! evidence request costs the service a database read and an ECDSA verification before it knows
//! the sender holds the device key. These limits cap what one client address can make the
//! service spend: a token bucket (GCRA, the `governor` crate) per address, in this process.
//!
//! Keys, of the client address ([`crate::client_addr`]: the peer's, or a trusted proxy's
//! `X-Forwarded-For` client): an IPv4 address, or an IPv6 address's /64 prefix (one host is
//! given a whole /64, so per-/128 keys would let it multiply its allowance); an IPv4-mapped IPv6
//! address counts as its IPv4 address. Requests with no socket address (only in-process callers: tests, benchmarks)
//! share one key, so they are limited too.
//!
//! Like the authentication cache, this is bounded, derived state of one replica, not data:
//! N replicas behind a balancer allow up to N times the rate. Addresses whose bucket is full
//! again are dropped every [`PRUNE_EVERY`] checks, so memory follows the addresses of the last
//! few seconds (burst / rate), not every address ever seen.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use ferro_wire::ErrorCode;
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Checks between two prunings of addresses whose bucket is full again.
pub const PRUNE_EVERY: u64 = 4096;

/// What one client address may send: `per_second` requests sustained, `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressRate {
    /// Sustained requests per second; 0 turns the limit off.
    pub per_second: u32,
    /// Requests allowed at once (at least 1 while the limit is on).
    pub burst: u32,
}

impl AddressRate {
    /// The default for the attestation routes: a device makes two requests per attestation and
    /// attests about twice a day, so this lets 60 devices behind one address attest at once and
    /// 10 more every second after that (a site's fleet after a power cut gets through within
    /// minutes, spread by the devices' jittered backoff), while one host cannot make the service
    /// verify more than 20 signatures a second.
    pub const ATTESTATION_DEFAULT: AddressRate = AddressRate {
        per_second: 20,
        burst: 120,
    };

    /// No limit.
    pub const OFF: AddressRate = AddressRate {
        per_second: 0,
        burst: 0,
    };

    /// The limiter this rate describes: `Ok(None)` when it is off, an error when the burst is 0.
    pub fn limiter(self) -> Result<Option<AddressLimiter>, &'static str> {
        let Some(per_second) = NonZeroU32::new(self.per_second) else {
            return Ok(None);
        };
        let burst = NonZeroU32::new(self.burst)
            .ok_or("`burst` must be at least 1 while `per_second` is above 0")?;
        Ok(Some(AddressLimiter {
            limiter: DefaultKeyedRateLimiter::keyed(
                Quota::per_second(per_second).allow_burst(burst),
            ),
            checks: AtomicU64::new(0),
        }))
    }
}

/// Token buckets by client address ([module docs](self)).
pub struct AddressLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    checks: AtomicU64,
}

impl std::fmt::Debug for AddressLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddressLimiter")
            .field("addresses", &self.limiter.len())
            .finish()
    }
}

impl AddressLimiter {
    /// Take one request from `addr`'s bucket, or say how long until one is allowed.
    pub fn check(&self, addr: Option<IpAddr>) -> Result<(), Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter
            .check_key(&key(addr))
            .map_err(|not_until| not_until.wait_time_from(self.limiter.clock().now()))
    }

    /// Addresses currently tracked.
    pub fn addresses(&self) -> usize {
        self.limiter.len()
    }
}

/// One request's place in its address's attestation bucket: an extractor that answers
/// `429 rate_limited` with `Retry-After` when the bucket is empty. It runs before the body is
/// read, so a refused request costs no parsing, database read or signature check.
#[derive(Debug)]
pub struct AttestationAllowance;

impl FromRequestParts<AppState> for AttestationAllowance {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(limiter) = &state.attestation_limiter else {
            return Ok(AttestationAllowance);
        };
        limiter
            .check(crate::extract::client_addr(
                parts,
                &state.config.trusted_proxies,
            ))
            .map(|()| AttestationAllowance)
            .map_err(|wait| {
                let secs = retry_after_secs(wait);
                ApiError::Client {
                    code: ErrorCode::RateLimited,
                    message: format!(
                        "too many attestation requests from this address; try again in {secs} s"
                    ),
                    retry_after: Some(secs),
                }
            })
    }
}

/// The bucket an address counts against ([module docs](self)).
pub fn key(addr: Option<IpAddr>) -> IpAddr {
    match addr {
        None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        Some(IpAddr::V4(v4)) => IpAddr::V4(v4),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(
                u128::from(v6) & 0xffff_ffff_ffff_ffff_0000_0000_0000_0000,
            )),
        },
    }
}

/// Whole seconds to tell a client in `Retry-After` (rounded up, at least 1).
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_group_what_one_host_controls() {
        let k = |s: &str| key(Some(s.parse().unwrap())).to_string();
        // Each IPv4 address is its own key; a mapped one is the same address.
        assert_eq!(k("192.0.2.7"), "192.0.2.7");
        assert_eq!(k("::ffff:192.0.2.7"), "192.0.2.7");
        assert_ne!(k("192.0.2.7"), k("192.0.2.8"));
        // One /64 is one key, whatever the interface ID.
        assert_eq!(k("2001:db8:1:2::1"), "2001:db8:1:2::");
        assert_eq!(k("2001:db8:1:2:ffff:ffff:ffff:ffff"), "2001:db8:1:2::");
        assert_ne!(k("2001:db8:1:2::1"), k("2001:db8:1:3::1"));
        // No address: one shared key, never a free pass.
        assert_eq!(key(None), key(None));
    }

    #[test]
    fn a_burst_then_refusal_then_others_unaffected() {
        let limiter = AddressRate {
            per_second: 1,
            burst: 3,
        }
        .limiter()
        .unwrap()
        .unwrap();
        let a = Some("198.51.100.1".parse().unwrap());
        let b = Some("198.51.100.2".parse().unwrap());
        for _ in 0..3 {
            limiter.check(a).unwrap();
        }
        let wait = limiter.check(a).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        limiter.check(b).unwrap();
        limiter.check(None).unwrap();
        assert_eq!(limiter.addresses(), 3);
    }

    #[test]
    fn settings() {
        assert!(
            AddressRate::OFF.limiter().unwrap().is_none(),
            "0 per second turns the limit off"
        );
        assert!(
            AddressRate {
                per_second: 5,
                burst: 0
            }
            .limiter()
            .is_err()
        );
        assert!(
            AddressRate::ATTESTATION_DEFAULT
                .limiter()
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn pruning_forgets_refilled_addresses() {
        let limiter = AddressRate {
            per_second: 1_000_000,
            burst: 1,
        }
        .limiter()
        .unwrap()
        .unwrap();
        for i in 0..PRUNE_EVERY - 1 {
            let addr = std::net::Ipv4Addr::from(0x0a00_0000 + u32::try_from(i).unwrap());
            limiter.check(Some(IpAddr::V4(addr))).unwrap();
        }
        assert_eq!(limiter.addresses(), 4095);
        // Every bucket refills within a microsecond; the next check prunes them.
        std::thread::sleep(Duration::from_millis(5));
        limiter.check(None).unwrap();
        assert!(limiter.addresses() <= 1, "{}", limiter.addresses());
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
    }
}
