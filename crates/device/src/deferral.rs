//! Update deferral (SoftwareUpdateDeferral, DESIGN section 3 step 5): before the update agent
//! switches to a downloaded and checked set, apps that may defer are told (`sysevent.pending-update`)
//! and get a notice period; any of them may push the switch back (`defer-update`) by minutes, up
//! to a limit counted from the first notice (by default OS updates 24 hours, app updates 7 days,
//! as Azure Sphere's; configurable), and may let it go early (`resume-update`). Devices without
//! such apps switch at once.
//!
//! The state lives in memory: a restart of the device re-announces the update with a fresh
//! notice, and the limits count again from then. That is fail-safe for the device (an update is
//! never lost) but lets a device that restarts often defer for longer than the limit; the
//! service sees each deferral as the `Deferred` state with its end.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ferro_runtime::{AppId, PendingUpdate};
use time::OffsetDateTime;
use tokio::sync::Notify;

/// How long apps have to ask for a deferral before a switch, by default.
pub const DEFAULT_NOTICE: Duration = Duration::from_secs(10);
/// Longest deferral of an OS update, from the first notice.
pub const MAX_OS_DEFERRAL: Duration = Duration::from_secs(24 * 3600);
/// Longest deferral of an app update, from the first notice.
pub const MAX_APP_DEFERRAL: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Debug)]
struct Pending {
    version: u64,
    os: bool,
    first_notice: OffsetDateTime,
    notice_until: OffsetDateTime,
    deferrals: BTreeMap<AppId, OffsetDateTime>,
}

impl Pending {
    fn until(&self) -> OffsetDateTime {
        self.deferrals
            .values()
            .copied()
            .fold(self.notice_until, OffsetDateTime::max)
    }
}

/// The deferral state shared by the update agent and the apps' device services.
#[derive(Debug)]
pub struct Deferrals {
    pending: Mutex<Option<Pending>>,
    /// Apps installed that may defer (the app manager keeps it current).
    deferrers: AtomicUsize,
    notice: Duration,
    /// Longest deferral from the first notice: (OS updates, app updates).
    limits: (Duration, Duration),
    /// Told when an app withdraws its deferral (the agent may switch now).
    resumed: Notify,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Deferrals {
    /// Deferrals with a notice period of `notice` and the default limits.
    pub fn new(notice: Duration) -> Deferrals {
        Deferrals::with_limits(notice, MAX_OS_DEFERRAL, MAX_APP_DEFERRAL)
    }

    /// Deferrals whose OS updates wait at most `max_os` and app updates `max_app` from the
    /// first notice.
    pub fn with_limits(notice: Duration, max_os: Duration, max_app: Duration) -> Deferrals {
        Deferrals {
            pending: Mutex::new(None),
            deferrers: AtomicUsize::new(0),
            notice,
            limits: (max_os, max_app),
            resumed: Notify::new(),
        }
    }

    /// How many installed apps may defer updates.
    pub fn set_deferrers(&self, count: usize) {
        self.deferrers.store(count, Ordering::Relaxed);
    }

    /// Before switching to set `version` (`os`: it changes the OS): `None` to go ahead, or when
    /// to ask again. The first call for a version announces it to the apps.
    pub fn gate(&self, version: u64, os: bool, now: OffsetDateTime) -> Option<OffsetDateTime> {
        if self.deferrers.load(Ordering::Relaxed) == 0 {
            *lock(&self.pending) = None;
            return None;
        }
        let mut pending = lock(&self.pending);
        match pending.as_ref() {
            Some(p) if p.version == version && p.os == os => {
                let until = p.until();
                if now >= until {
                    *pending = None;
                    None
                } else {
                    Some(until)
                }
            }
            _ => {
                let notice_until = now + self.notice;
                *pending = Some(Pending {
                    version,
                    os,
                    first_notice: now,
                    notice_until,
                    deferrals: BTreeMap::new(),
                });
                tracing::info!(
                    version,
                    os,
                    "update announced to the apps that may defer it"
                );
                Some(notice_until)
            }
        }
    }

    /// The update apps are told about, if any.
    pub fn pending_update(&self, now: OffsetDateTime) -> Option<PendingUpdate> {
        lock(&self.pending).as_ref().map(|p| PendingUpdate {
            os: p.os,
            seconds_until_apply: u32::try_from((p.until() - now).whole_seconds().max(0))
                .unwrap_or(u32::MAX),
        })
    }

    /// `app` defers the pending update by `minutes` (capped by the limit from the first notice).
    pub fn defer(&self, app: AppId, minutes: u32, now: OffsetDateTime) -> Result<(), String> {
        let mut pending = lock(&self.pending);
        let p = pending
            .as_mut()
            .ok_or_else(|| "no update is pending".to_owned())?;
        let limit = p.first_notice + if p.os { self.limits.0 } else { self.limits.1 };
        // Checked: an app may ask for u32::MAX minutes, which no clock can add.
        let until = now
            .checked_add(time::Duration::minutes(i64::from(minutes)))
            .map_or(limit, |wanted| wanted.min(limit));
        tracing::info!(%app, minutes, until = %until, "an app deferred the update");
        p.deferrals.insert(app, until);
        Ok(())
    }

    /// `app` withdraws its deferral.
    pub fn resume(&self, app: AppId) -> Result<(), String> {
        let mut pending = lock(&self.pending);
        let p = pending
            .as_mut()
            .ok_or_else(|| "no update is pending".to_owned())?;
        if p.deferrals.remove(&app).is_some() {
            tracing::info!(%app, "an app let the update proceed");
            self.resumed.notify_one();
        }
        Ok(())
    }

    /// Resolves when an app withdraws its deferral.
    pub async fn resumed(&self) {
        self.resumed.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + secs).expect("time")
    }

    fn app(n: u128) -> AppId {
        AppId::from(uuid::Uuid::from_u128(n))
    }

    #[test]
    fn without_deferring_apps_updates_go_at_once() {
        let d = Deferrals::new(DEFAULT_NOTICE);
        assert_eq!(d.gate(3, true, at(0)), None);
        assert_eq!(d.pending_update(at(0)), None);
    }

    #[test]
    fn a_notice_then_deferrals_up_to_the_limit() {
        let d = Deferrals::new(Duration::from_secs(10));
        d.set_deferrers(1);
        assert_eq!(d.gate(3, false, at(0)), Some(at(10)));
        assert_eq!(
            d.pending_update(at(4)),
            Some(PendingUpdate {
                os: false,
                seconds_until_apply: 6
            })
        );
        d.defer(app(1), 5, at(5)).expect("defer");
        assert_eq!(d.gate(3, false, at(11)), Some(at(305)));
        // An OS update: at most 24 hours from the first notice, however often it is deferred.
        assert_eq!(d.gate(4, true, at(400)), Some(at(410)));
        d.defer(app(1), u32::MAX, at(401)).expect("defer");
        assert_eq!(d.gate(4, true, at(500)), Some(at(400 + 24 * 3600)));
        assert_eq!(d.gate(4, true, at(400 + 24 * 3600)), None);
    }

    #[test]
    fn limits_are_configurable() {
        let d = Deferrals::with_limits(
            Duration::from_secs(10),
            Duration::from_secs(600),
            Duration::from_secs(60),
        );
        d.set_deferrers(1);
        d.gate(1, false, at(0));
        d.defer(app(1), 30, at(1)).expect("defer");
        assert_eq!(d.gate(1, false, at(20)), Some(at(60)));
        d.gate(2, true, at(100));
        d.defer(app(1), 30, at(101)).expect("defer");
        assert_eq!(d.gate(2, true, at(120)), Some(at(700)));
    }

    #[test]
    fn resuming_lets_the_update_go_after_the_notice() {
        let d = Deferrals::new(Duration::from_secs(10));
        d.set_deferrers(2);
        d.gate(7, false, at(0));
        d.defer(app(1), 60, at(1)).expect("defer");
        d.defer(app(2), 30, at(1)).expect("defer");
        d.resume(app(1)).expect("resume");
        assert_eq!(d.gate(7, false, at(20)), Some(at(1 + 30 * 60)));
        d.resume(app(2)).expect("resume");
        assert_eq!(d.gate(7, false, at(20)), None);
        assert!(
            d.defer(app(1), 1, at(21)).is_err(),
            "nothing pending any more"
        );
    }
}
