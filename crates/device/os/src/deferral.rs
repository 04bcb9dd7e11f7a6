//! Update deferral (SoftwareUpdateDeferral, docs/design.md §3.5): before the update agent
//! switches to a downloaded and checked set, apps that may defer are told (`sysevent.pending-update`)
//! and get a notice period; any of them may push the switch back (`defer-update`) by minutes, up
//! to a limit counted from the first notice (by default OS updates 24 hours, app updates 7 days,
//! as Azure Sphere's; configurable), and may let it go early (`resume-update`). Devices without
//! such apps switch at once.
//!
//! The first-notice time of the update being announced survives restarts: with a state file
//! ([`Deferrals::with_state_file`], `update/deferral.json` on a device) it is written (atomic,
//! fsynced) when a target version is first announced and read back when the same version is
//! announced after a restart, so an app that defers and then reboots the device (ForceReboot)
//! cannot reset the limit. After a restart the apps get a new notice period, but never past the
//! limit, and once the limit is spent the update goes ahead at once. A state file that cannot be
//! read or parsed, or whose first notice lies in the future, fails closed: the update counts as
//! announced long ago (no more deferral), never as just announced. The per-app deferrals
//! themselves stay in memory (a restart ends them: apps ask again). The service sees each
//! deferral as the `Deferred` state with its end.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ferro_runtime::{AppId, PendingUpdate, ServiceError};
use time::OffsetDateTime;
use tokio::sync::Notify;

/// How long apps have to ask for a deferral before a switch, by default.
pub const DEFAULT_NOTICE: Duration = Duration::from_secs(10);
/// Longest deferral of an OS update, from the first notice.
pub const MAX_OS_DEFERRAL: Duration = Duration::from_secs(24 * 3600);
/// Longest deferral of an app update, from the first notice.
pub const MAX_APP_DEFERRAL: Duration = Duration::from_secs(7 * 24 * 3600);

/// The state file: when the target set `version` (an OS update or not) was first announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FirstNotice {
    version: u64,
    os: bool,
    /// Unix time, seconds.
    first_notice: i64,
}

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
    /// Where the first notice of the announced version is kept across restarts.
    state_file: Option<PathBuf>,
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
            state_file: None,
        }
    }

    /// Keep the first notice of the announced version in `path` (created with its directory
    /// on first use), so the limits hold across restarts.
    pub fn with_state_file(mut self, path: impl Into<PathBuf>) -> Deferrals {
        self.state_file = Some(path.into());
        self
    }

    fn limit(&self, os: bool) -> Duration {
        if os { self.limits.0 } else { self.limits.1 }
    }

    /// When `version` was first announced: from the state file if it was announced before a
    /// restart, else `now` (recorded). Fails closed: a state file that cannot be read, parsed
    /// or written, or that names a first notice in the future, gives the Unix epoch (the limit
    /// is spent).
    fn first_notice(&self, version: u64, os: bool, now: OffsetDateTime) -> OffsetDateTime {
        let Some(path) = &self.state_file else {
            return now;
        };
        let spent = OffsetDateTime::UNIX_EPOCH;
        if std::fs::symlink_metadata(path).is_ok() {
            match crate::layout::read_json::<FirstNotice>(path) {
                Ok(stored) if stored.version == version && stored.os == os => {
                    return match OffsetDateTime::from_unix_timestamp(stored.first_notice) {
                        Ok(at) if at <= now => at,
                        _ => {
                            tracing::warn!(
                                path = %path.display(),
                                "deferral state names a first notice in the future; no more \
                                 deferral for this update"
                            );
                            spent
                        }
                    };
                }
                Ok(_) => {} // another update: this one is announced now
                Err(error) => {
                    tracing::warn!(
                        %error,
                        "deferral state unreadable; no more deferral for this update"
                    );
                    // Record it as spent, so the next restart agrees.
                    let _ = self.record(path, version, os, spent);
                    return spent;
                }
            }
        }
        match self.record(path, version, os, now) {
            Ok(()) => now,
            Err(error) => {
                tracing::warn!(
                    %error,
                    "could not record the update's first notice; no deferral for this update"
                );
                spent
            }
        }
    }

    fn record(
        &self,
        path: &std::path::Path,
        version: u64,
        os: bool,
        at: OffsetDateTime,
    ) -> Result<(), crate::DeviceError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::layout::create_private_dir(dir)?;
        }
        crate::layout::write_json(
            path,
            &FirstNotice {
                version,
                os,
                first_notice: at.unix_timestamp(),
            },
        )?;
        Ok(())
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
                let first_notice = self.first_notice(version, os, now);
                let limit = first_notice + self.limit(os);
                if now >= limit {
                    // Announced before a restart and its limit is spent (or the state failed
                    // closed): no new notice period.
                    *pending = None;
                    tracing::info!(
                        version,
                        os,
                        "the update's deferral limit is spent; applying it without notice"
                    );
                    return None;
                }
                let notice_until = (now + self.notice).min(limit);
                *pending = Some(Pending {
                    version,
                    os,
                    first_notice,
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
    pub fn defer(&self, app: AppId, minutes: u32, now: OffsetDateTime) -> Result<(), ServiceError> {
        let mut pending = lock(&self.pending);
        let p = pending.as_mut().ok_or(ServiceError::NoPendingUpdate)?;
        let limit = p.first_notice + self.limit(p.os);
        // Checked: an app may ask for u32::MAX minutes, which no clock can add.
        let until = now
            .checked_add(time::Duration::minutes(i64::from(minutes)))
            .map_or(limit, |wanted| wanted.min(limit));
        tracing::info!(%app, minutes, until = %until, "an app deferred the update");
        p.deferrals.insert(app, until);
        Ok(())
    }

    /// `app` withdraws its deferral.
    pub fn resume(&self, app: AppId) -> Result<(), ServiceError> {
        let mut pending = lock(&self.pending);
        let p = pending.as_mut().ok_or(ServiceError::NoPendingUpdate)?;
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

    /// Issue 16: an app with SoftwareUpdateDeferral and ForceReboot defers, reboots the
    /// device and defers again, forever. Each boot is a new `Deferrals` on the same state file;
    /// the limit counts from the first notice before the first boot, so the OS update goes
    /// ahead once 24 hours have passed, however many reboots there were.
    #[test]
    fn a_reboot_loop_does_not_reset_the_deferral_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("update").join("deferral.json");
        let boot = || {
            let d = Deferrals::new(Duration::from_secs(10)).with_state_file(&state);
            d.set_deferrers(1);
            d
        };
        let limit = 24 * 3600;
        let mut t = 0;
        let mut boots = 0;
        loop {
            let d = boot();
            boots += 1;
            match d.gate(9, true, at(t)) {
                None => break,
                Some(until) => {
                    assert!(until <= at(limit), "boot {boots}: {until} past the limit");
                    // The app defers as long as it may, then reboots the device.
                    d.defer(app(1), u32::MAX, at(t + 1)).expect("defer");
                    assert_eq!(d.gate(9, true, at(t + 2)), Some(at(limit)));
                }
            }
            t += 1800; // a reboot every half hour
            assert!(boots < 1000, "the update never went ahead");
        }
        assert!(t >= limit, "went ahead at {t}, before the limit");
        assert!(t < limit + 1800, "went ahead at {t}, long after the limit");
        assert_eq!(boots, 49);
        // A boot after that applies it at once, without a new notice period.
        assert_eq!(boot().gate(9, true, at(limit + 5000)), None);
        // A new target version is announced afresh.
        assert_eq!(
            boot().gate(10, true, at(limit + 6000)),
            Some(at(limit + 6010))
        );
    }

    /// Within the limit, a restart gives the apps a new notice period, but not past the limit.
    #[test]
    fn the_notice_after_a_restart_ends_at_the_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("deferral.json");
        let boot = || {
            let d = Deferrals::with_limits(
                Duration::from_secs(600),
                Duration::from_secs(3600),
                Duration::from_secs(3600),
            )
            .with_state_file(&state);
            d.set_deferrers(1);
            d
        };
        assert_eq!(boot().gate(4, false, at(0)), Some(at(600)));
        assert_eq!(boot().gate(4, false, at(3300)), Some(at(3600)));
    }

    /// A malformed, tampered or unreadable state file means "announced long ago": no deferral
    /// at all, never a fresh notice period.
    #[test]
    fn a_bad_state_file_fails_closed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("deferral.json");
        let boot = || {
            let d = Deferrals::new(Duration::from_secs(10)).with_state_file(&state);
            d.set_deferrers(1);
            d
        };
        assert_eq!(boot().gate(5, true, at(0)), Some(at(10)));
        let now = at(100);
        let bad: [&[u8]; 5] = [
            b"",
            b"{not json",
            br#"{"version":5,"os":true,"firstNotice":"yesterday"}"#,
            br#"{"version":5,"os":true,"firstNotice":1800000000,"extra":1}"#,
            // Tampered to a first notice in the future, to stretch the limit.
            br#"{"version":5,"os":true,"firstNotice":1900000000}"#,
        ];
        for bytes in bad {
            std::fs::write(&state, bytes).expect("write");
            let d = boot();
            assert_eq!(
                d.gate(5, true, now),
                None,
                "{}",
                String::from_utf8_lossy(bytes)
            );
            assert_eq!(
                d.defer(app(1), 60, now),
                Err(ServiceError::NoPendingUpdate),
                "nothing to defer"
            );
            // ... and stays so at the next boot.
            assert_eq!(boot().gate(5, true, at(101)), None);
        }
        // Too large to be a state file.
        std::fs::write(&state, vec![b' '; 65 * 1024]).expect("write");
        assert_eq!(boot().gate(5, true, now), None);
        // A state file that cannot be written (its directory is a file): no deferral either.
        let blocked = dir.path().join("file");
        std::fs::write(&blocked, b"").expect("write");
        let d = Deferrals::new(Duration::from_secs(10)).with_state_file(blocked.join("x.json"));
        d.set_deferrers(1);
        assert_eq!(d.gate(1, false, now), None);
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
        assert_eq!(
            d.defer(app(1), 1, at(21)),
            Err(ServiceError::NoPendingUpdate),
            "nothing pending any more"
        );
    }
}
