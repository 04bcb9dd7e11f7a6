//! Where a rollout stands at a given time, and which devices its waves include: plain
//! functions over a [`Schedule`] (read from the deployment's row) and `now`.

use sha2::{Digest, Sha256};

/// 100 % in basis points: buckets are `0..FULL`, wave percentages `1..=FULL`.
pub const FULL: u32 = 10_000;

/// A rollout's course: the waves and where they stand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// Cumulative basis points, strictly increasing, the last one [`FULL`].
    pub waves: Vec<u32>,
    /// Seconds between waves.
    pub wait: i64,
    /// The wave (index) reached at `wave_at`.
    pub wave: usize,
    /// When that wave started (creation or the last resume), Unix seconds.
    pub wave_at: i64,
    /// Paused or superseded: the rollout stays at `wave`.
    pub frozen: bool,
    /// The deployment devices outside the waves get when they hold nothing newer of the group:
    /// the group's newest deployment that had reached every device when this one was created.
    pub base: Option<String>,
}

impl Schedule {
    fn last(&self) -> usize {
        self.waves.len().saturating_sub(1)
    }

    /// The wave (index) reached at `now`.
    pub fn reached(&self, now: i64) -> usize {
        let last = self.last();
        if self.frozen {
            return self.wave.min(last);
        }
        if self.wait <= 0 {
            return last;
        }
        let steps = now.saturating_sub(self.wave_at).max(0) / self.wait;
        self.wave
            .saturating_add(usize::try_from(steps).unwrap_or(usize::MAX))
            .min(last)
    }

    /// The cumulative basis points reached at `now`.
    pub fn percent(&self, now: i64) -> u32 {
        self.waves.get(self.reached(now)).copied().unwrap_or(FULL)
    }

    /// Whether the last wave has started by `now` (every device of the group is included).
    pub fn complete(&self, now: i64) -> bool {
        self.reached(now) >= self.last()
    }

    /// When the next wave starts, if nothing pauses the rollout first.
    pub fn next_wave_at(&self, now: i64) -> Option<i64> {
        let reached = self.reached(now);
        if self.frozen || reached >= self.last() {
            return None;
        }
        let waves_ahead = i64::try_from(reached + 1 - self.wave).ok()?;
        Some(
            self.wave_at
                .saturating_add(waves_ahead.saturating_mul(self.wait)),
        )
    }

    /// Whether `device_id` is in the waves of deployment `deployment_id` reached at `now`.
    pub fn includes(&self, deployment_id: &str, device_id: &str, now: i64) -> bool {
        bucket(deployment_id, device_id) < self.percent(now)
    }
}

/// A device's place in a deployment's rollout, `0..FULL`: stable, and independent between
/// deployments.
pub fn bucket(deployment_id: &str, device_id: &str) -> u32 {
    let mut h = Sha256::new();
    h.update(b"ferrosphere rollout bucket v1\0");
    h.update(deployment_id.as_bytes());
    h.update(b"\0");
    h.update(device_id.as_bytes());
    let d = h.finalize();
    let x = u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
    u32::try_from(x % u64::from(FULL)).unwrap_or(0)
}

/// Basis points as the API's percentage.
pub fn percent_of(bp: u32) -> f64 {
    f64::from(bp) / 100.0
}

/// The deployment whose images a device is given: the group's current deployment when it has
/// no rollout or its rollout includes the device; otherwise the newer of what the device was
/// given before in this group (`kept`) and the rollout's base (the group's newest deployment that
/// had reached every device when the rollout began), so a device outside the waves keeps what it
/// has and is never told to go back.
pub fn effective_deployment(
    device_id: &str,
    current: Option<(String, Option<Schedule>)>,
    kept: Option<String>,
    now: i64,
) -> Option<String> {
    let (id, schedule) = current?;
    match schedule {
        None => Some(id),
        Some(s) if s.includes(&id, device_id, now) => Some(id),
        // Deployment IDs are UUIDv7: text order is creation order.
        Some(s) => kept.max(s.base),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(waves: &[u32], wait: i64, wave: usize, wave_at: i64, frozen: bool) -> Schedule {
        Schedule {
            waves: waves.to_vec(),
            wait,
            wave,
            wave_at,
            frozen,
            base: None,
        }
    }

    #[test]
    fn waves_advance_with_time_unless_frozen() {
        let running = schedule(&[1000, 5000, 10000], 60, 0, 1000, false);
        let frozen = schedule(&[1000, 5000, 10000], 60, 1, 1000, true);
        let resumed = schedule(&[1000, 5000, 10000], 60, 1, 5000, false);
        let at_once = schedule(&[1000, 10000], 0, 0, 1000, false);
        // (schedule, now, wave reached, percent, next wave at, complete, why)
        type Case<'a> = (&'a Schedule, i64, usize, u32, Option<i64>, bool, &'a str);
        let cases: &[Case] = &[
            (
                &running,
                0,
                0,
                1000,
                Some(1060),
                false,
                "a clock before the start",
            ),
            (&running, 1000, 0, 1000, Some(1060), false, "the start"),
            (
                &running,
                1059,
                0,
                1000,
                Some(1060),
                false,
                "a second before the wait",
            ),
            (
                &running,
                1060,
                1,
                5000,
                Some(1120),
                false,
                "the second wave",
            ),
            (
                &running,
                1070,
                1,
                5000,
                Some(1120),
                false,
                "during the second wave",
            ),
            (
                &running,
                1119,
                1,
                5000,
                Some(1120),
                false,
                "a second before the last",
            ),
            (&running, 1120, 2, 10000, None, true, "the last wave"),
            (
                &running,
                999_999,
                2,
                10000,
                None,
                true,
                "capped at the last",
            ),
            (&frozen, 999_999, 1, 5000, None, false, "frozen stays"),
            (
                &resumed,
                5059,
                1,
                5000,
                Some(5060),
                false,
                "a resume restarts the wait",
            ),
            (&resumed, 5060, 2, 10000, None, true, "then continues"),
            (
                &at_once,
                1000,
                1,
                10000,
                None,
                true,
                "no wait: every wave at once",
            ),
        ];
        for (s, now, wave, percent, next, complete, why) in cases {
            assert_eq!(s.reached(*now), *wave, "{why}");
            assert_eq!(s.percent(*now), *percent, "{why}");
            assert_eq!(s.next_wave_at(*now), *next, "{why}");
            assert_eq!(s.complete(*now), *complete, "{why}");
        }
    }

    #[test]
    fn buckets_are_stable_uniform_and_per_deployment() {
        let devices: Vec<String> = (0..20_000u32).map(|i| format!("{i:0128x}")).collect();
        let a = "0190c1a8-3c7a-7c4e-9b1e-2f4d5a6b7c8d";
        let b = "0190c1a8-3c7a-7c4e-9b1e-2f4d5a6b7c8e";
        let in_a = devices.iter().filter(|d| bucket(a, d) < 1000).count();
        assert!((1700..=2300).contains(&in_a), "{in_a} of 20,000 in 10 %");
        let both = devices
            .iter()
            .filter(|d| bucket(a, d) < 1000 && bucket(b, d) < 1000)
            .count();
        assert!(both < 400, "deployments draw independent samples: {both}");
        assert_eq!(bucket(a, &devices[7]), bucket(a, &devices[7]));
        assert!(devices.iter().all(|d| bucket(a, d) < FULL));
    }

    #[test]
    fn devices_outside_the_waves_keep_what_they_have() {
        let cur = "0190c1a8-0000-7000-8000-000000000003".to_string();
        let old = Some("0190c1a8-0000-7000-8000-000000000001".to_string());
        let older = Some("0190c1a8-0000-7000-8000-000000000000".to_string());
        let none_yet = Schedule {
            base: older.clone(),
            ..schedule(&[1, 10000], 3600, 0, 0, false)
        };
        let device = (0..)
            .map(|i: u32| format!("{i:0128x}"))
            .find(|d| !none_yet.includes(&cur, d, 0))
            .unwrap();
        let no_base = Schedule {
            base: None,
            ..none_yet.clone()
        };
        let rolling = Some((cur.clone(), Some(none_yet)));
        // (current deployment, kept, now, expected, why)
        let cases = [
            (
                rolling.clone(),
                old.clone(),
                0,
                old.clone(),
                "what it has, when newer than the base",
            ),
            (
                rolling.clone(),
                None,
                0,
                older.clone(),
                "the base, with nothing of the group",
            ),
            (
                Some((cur.clone(), Some(no_base))),
                None,
                0,
                None,
                "no base, nothing kept",
            ),
            (
                rolling,
                old.clone(),
                3600,
                Some(cur.clone()),
                "the last wave includes everyone",
            ),
            (
                Some((cur.clone(), None)),
                old,
                0,
                Some(cur.clone()),
                "no rollout",
            ),
            (None, older, 0, None, "no deployment"),
        ];
        for (current, kept, now, want, why) in cases {
            assert_eq!(
                effective_deployment(&device, current, kept, now),
                want,
                "{why}"
            );
        }
    }
}
