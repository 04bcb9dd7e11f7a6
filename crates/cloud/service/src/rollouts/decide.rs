//! The rollout decisions, as plain functions over a rollout's row, its group's devices and
//! `now`: how many devices the waves include and how many failed, when failures pause a
//! rollout, whether an operator may pause or resume it, what a new deployment does to the
//! group's previous rollout, and the API's view of where a rollout stands.

use ferro_wire::{RolloutPause, RolloutState, RolloutStatus, UpdateState};

use super::request::wire;
use super::schedule::{FULL, bucket, percent_of};
use crate::datastore::rollouts::{DeviceMark, RolloutRow};
use crate::datastore::update_reports::LastReport;
use crate::db;

/// Device counts of a rollout at `now`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Devices in the group now.
    pub in_group: u64,
    /// Of those, in the waves reached.
    pub included: u64,
    /// Given a target set with this deployment's images.
    pub targeted: u64,
    /// Included devices whose last report is `Failed` for such a set, since `failures_since`.
    pub failed: u64,
}

impl Counts {
    /// Whether the failures exceed `max_failure` basis points of the included devices.
    pub fn exceeds(&self, max_failure: u32) -> bool {
        u128::from(self.failed) * u128::from(FULL)
            > u128::from(max_failure) * u128::from(self.included)
    }

    /// The failed share of the included devices, in percent (display only).
    pub fn failure_percent(&self) -> f64 {
        if self.included == 0 {
            0.0
        } else {
            (self.failed as f64) * 100.0 / (self.included as f64)
        }
    }
}

/// Count the group's devices (`marks`: each device's ID and what it holds of the rollout's
/// deployment) for the rollout at `now`; each device is hashed into its wave.
pub fn tally<'a>(
    row: &RolloutRow,
    marks: impl IntoIterator<Item = (&'a str, DeviceMark)>,
    now: i64,
) -> Counts {
    let percent = row.schedule.percent(now);
    let deployment = row.id.to_string();
    let mut c = Counts::default();
    for (device, mark) in marks {
        let included = bucket(&deployment, device) < percent;
        c.in_group += 1;
        c.included += u64::from(included);
        c.targeted += u64::from(mark != DeviceMark::Other);
        c.failed += u64::from(included && mark == DeviceMark::Failed);
    }
    c
}

/// After a failure report: the detail of the pause the service makes, if the rollout's counted
/// failures now exceed its threshold (`None`: it goes on). A complete rollout never pauses.
pub fn failure_pause(row: &RolloutRow, counts: Counts, now: i64) -> Option<String> {
    if row.schedule.complete(now) || !counts.exceeds(row.max_failure) {
        return None;
    }
    Some(format!(
        "{} of {} devices in the rollout ({:.1} %) reported Failed for this deployment; more than \
         the {} % allowed",
        counts.failed,
        counts.included,
        counts.failure_percent(),
        percent_of(row.max_failure)
    ))
}

/// Why an operator may not pause or resume a rollout now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotActive {
    /// A newer deployment of the group froze it.
    Superseded,
    /// Its last wave has started (and it is not paused).
    Complete,
}

impl NotActive {
    /// What the operator is told.
    pub fn message(self) -> &'static str {
        match self {
            NotActive::Superseded => {
                "a newer deployment of the group superseded this one: its rollout is frozen where \
                 it stood; deploy again to change what the group runs"
            }
            NotActive::Complete => {
                "this rollout is complete: every device of the group is included; deploy again to \
                 change what the group runs"
            }
        }
    }
}

/// Whether an operator may pause or resume the rollout at `now`.
pub fn check_active(row: &RolloutRow, now: i64) -> Result<(), NotActive> {
    if row.superseded_at.is_some() {
        return Err(NotActive::Superseded);
    }
    if row.paused.is_none() && row.schedule.complete(now) {
        return Err(NotActive::Complete);
    }
    Ok(())
}

/// The state of the rollout at `now`.
pub fn state(row: &RolloutRow, now: i64) -> RolloutState {
    if row.superseded_at.is_some() {
        RolloutState::Superseded
    } else if row.paused.is_some() {
        RolloutState::Paused
    } else if row.schedule.complete(now) {
        RolloutState::Complete
    } else {
        RolloutState::Rolling
    }
}

/// The API's view of a rollout at `now`.
pub fn status(row: &RolloutRow, counts: Counts, now: i64) -> RolloutStatus {
    let s = &row.schedule;
    let reached = s.reached(now);
    RolloutStatus {
        deployment_id: row.id,
        device_group_id: row.group,
        rollout: wire(&s.waves, s.wait, row.max_failure),
        state: state(row, now),
        current_wave: u32::try_from(reached + 1).unwrap_or(u32::MAX),
        current_percent: percent_of(s.percent(now)),
        next_wave_at: s.next_wave_at(now).map(db::ts),
        devices_in_group: counts.in_group,
        devices_included: counts.included,
        devices_targeted: counts.targeted,
        devices_failed: counts.failed,
        failure_percent: counts.failure_percent(),
        failures_counted_since: db::ts(row.failures_since),
        pause: row.paused.as_ref().map(|p| RolloutPause {
            at: db::ts(p.at),
            reason: p.reason,
            detail: p.detail.clone(),
            by: p.by,
        }),
        superseded_at: row.superseded_at.map(db::ts),
    }
}

/// What creating a deployment does to the group's previous one ([`supersede`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Supersession {
    /// The previous deployment's rollout to freeze at this wave (index), if it is under way or
    /// paused.
    pub freeze: Option<(ferro_wire::DeploymentId, usize)>,
    /// The group's newest deployment that has reached every device: the base of a rollout that
    /// starts now.
    pub base: Option<String>,
}

/// Given the group's newest deployment (its ID and its rollout, if it has one) when a new one
/// is created at `now`: freeze its rollout where it stands if it is under way or paused (devices
/// it included keep its images unless the new deployment includes them; the others keep what
/// they had), and find the base for a new rollout. The base is fixed for good: an older rollout
/// is complete now, or frozen and never completes.
pub fn supersede(
    newest: Option<(ferro_wire::DeploymentId, Option<&RolloutRow>)>,
    now: i64,
) -> Supersession {
    match newest {
        None => Supersession::default(),
        // No rollout: it reached every device.
        Some((id, None)) => Supersession {
            freeze: None,
            base: Some(id.to_string()),
        },
        Some((id, Some(row)))
            if row.paused.is_none()
                && row.superseded_at.is_none()
                && row.schedule.complete(now) =>
        {
            Supersession {
                freeze: None,
                base: Some(id.to_string()),
            }
        }
        Some((id, Some(row))) => Supersession {
            freeze: Some((id, row.schedule.reached(now))),
            base: row.schedule.base.clone(),
        },
    }
}

/// The wave (index) a pause at `now` freezes the rollout at.
pub fn pause_wave(row: &RolloutRow, now: i64) -> usize {
    row.schedule.reached(now)
}

/// Whether a device's report turned its update state to `Failed` (for this target version):
/// only such a report re-counts the rollout; repeated reports do not. `before`: the device's
/// stored state and target version, if it has a row.
pub fn newly_failed(
    reported: UpdateState,
    reported_version: Option<i64>,
    before: Option<&LastReport>,
) -> bool {
    reported == UpdateState::Failed
        && before.is_some_and(|b| {
            b.state.as_deref() != Some(UpdateState::Failed.as_str())
                || b.target_version != reported_version
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datastore::rollouts::Pause;
    use crate::rollouts::schedule::Schedule;
    use ferro_wire::{DeploymentId, DeviceGroupId, PauseReason, TenantId};

    fn row(waves: &[u32], wait: i64, max_failure: u32) -> RolloutRow {
        RolloutRow {
            id: DeploymentId::new(),
            tenant: TenantId::new(),
            group: DeviceGroupId::new(),
            schedule: Schedule {
                waves: waves.to_vec(),
                wait,
                wave: 0,
                wave_at: 1000,
                frozen: false,
                base: Some("0190-base".into()),
            },
            max_failure,
            failures_since: 1000,
            paused: None,
            superseded_at: None,
        }
    }

    fn paused(mut r: RolloutRow) -> RolloutRow {
        r.paused = Some(Pause {
            at: 1010,
            reason: PauseReason::Operator,
            detail: "paused by an operator".into(),
            by: None,
        });
        r.schedule.frozen = true;
        r
    }

    fn superseded(mut r: RolloutRow) -> RolloutRow {
        r.superseded_at = Some(1010);
        r.schedule.frozen = true;
        r
    }

    fn counts(failed: u64, included: u64) -> Counts {
        Counts {
            in_group: 200,
            included,
            targeted: included,
            failed,
        }
    }

    #[test]
    fn the_threshold_is_exceeded_strictly() {
        // (failed, included, threshold in basis points, exceeded, why)
        for (failed, included, max, want, why) in [
            (1, 20, 500, false, "5 % of 20 is 1: not more"),
            (2, 20, 500, true, "2 of 20 is over 5 %"),
            (0, 0, 0, false, "nothing included, nothing failed"),
            (1, 20, 0, true, "0 %: any failure pauses"),
            (20, 20, 10000, false, "100 %: never pauses"),
        ] {
            assert_eq!(counts(failed, included).exceeds(max), want, "{why}");
        }
    }

    #[test]
    fn failures_pause_a_rollout_under_way_only() {
        let r = row(&[1000, 5000, 10000], 60, 500);
        // (row, counts, now, pauses, why)
        let cases = [
            (
                &r,
                counts(2, 20),
                1000,
                true,
                "over the threshold in the first wave",
            ),
            (&r, counts(1, 20), 1000, false, "at the threshold"),
            (&r, counts(20, 20), 1120, false, "complete: never pauses"),
            (
                &r,
                counts(2, 20),
                1119,
                true,
                "a second before the last wave",
            ),
        ];
        for (row, c, now, want, why) in cases {
            let detail = failure_pause(row, c, now);
            assert_eq!(detail.is_some(), want, "{why}");
        }
        let detail = failure_pause(&r, counts(2, 20), 1000).unwrap();
        assert_eq!(
            detail,
            "2 of 20 devices in the rollout (10.0 %) reported Failed for this deployment; more \
             than the 5 % allowed"
        );
    }

    #[test]
    fn operators_may_pause_and_resume_active_rollouts_only() {
        let r = row(&[1000, 10000], 60, 500);
        // (row, now, answer, state, why)
        let cases = [
            (r.clone(), 1000, Ok(()), RolloutState::Rolling, "under way"),
            (
                r.clone(),
                1060,
                Err(NotActive::Complete),
                RolloutState::Complete,
                "complete",
            ),
            (
                paused(r.clone()),
                99_999,
                Ok(()),
                RolloutState::Paused,
                "paused: resumable",
            ),
            (
                superseded(r.clone()),
                1000,
                Err(NotActive::Superseded),
                RolloutState::Superseded,
                "superseded",
            ),
            (
                superseded(paused(r)),
                1000,
                Err(NotActive::Superseded),
                RolloutState::Superseded,
                "paused, then superseded",
            ),
        ];
        for (row, now, want, st, why) in cases {
            assert_eq!(check_active(&row, now), want, "{why}");
            assert_eq!(state(&row, now), st, "{why}");
        }
    }

    #[test]
    fn a_new_deployment_freezes_a_rollout_under_way() {
        let r = row(&[1000, 5000, 10000], 60, 500);
        let id = r.id;
        // (newest of the group, now, expected, why)
        let cases = [
            (
                None,
                1000,
                Supersession::default(),
                "the group's first deployment",
            ),
            (
                Some((id, None)),
                1000,
                Supersession {
                    freeze: None,
                    base: Some(id.to_string()),
                },
                "no rollout: it reached every device, so it is the base",
            ),
            (
                Some((id, Some(&r))),
                1120,
                Supersession {
                    freeze: None,
                    base: Some(id.to_string()),
                },
                "a complete rollout is the base",
            ),
            (
                Some((id, Some(&r))),
                1060,
                Supersession {
                    freeze: Some((id, 1)),
                    base: Some("0190-base".into()),
                },
                "under way: frozen at the wave reached; its base stays the base",
            ),
        ];
        for (newest, now, want, why) in cases {
            assert_eq!(supersede(newest, now), want, "{why}");
        }
        let p = paused(r);
        assert_eq!(
            supersede(Some((id, Some(&p))), 99_999),
            Supersession {
                freeze: Some((id, 0)),
                base: Some("0190-base".into()),
            },
            "paused: frozen where it was paused"
        );
    }

    #[test]
    fn tally_hashes_each_device_into_its_wave() {
        let r = row(&[5000, 10000], 60, 500);
        let devices: Vec<String> = (0..1000u32).map(|i| format!("{i:0128x}")).collect();
        let marks = devices.iter().enumerate().map(|(i, d)| {
            let m = match i % 3 {
                0 => DeviceMark::Other,
                1 => DeviceMark::Targeted,
                _ => DeviceMark::Failed,
            };
            (d.as_str(), m)
        });
        let c = tally(&r, marks, 1000);
        assert_eq!(c.in_group, 1000);
        assert!((400..=600).contains(&c.included), "{c:?}");
        assert_eq!(c.targeted, 666);
        let deployment = r.id.to_string();
        let want_failed = devices
            .iter()
            .enumerate()
            .filter(|(i, d)| i % 3 == 2 && bucket(&deployment, d) < 5000)
            .count();
        assert_eq!(c.failed, want_failed as u64);
        let all = tally(
            &r,
            devices.iter().map(|d| (d.as_str(), DeviceMark::Failed)),
            1060,
        );
        assert_eq!(
            (all.included, all.failed),
            (1000, 1000),
            "the last wave includes all"
        );
    }

    #[test]
    fn only_a_report_that_turns_to_failed_counts() {
        let f = UpdateState::Failed;
        let last = |state: Option<&str>, version: Option<i64>| {
            Some(LastReport {
                state: state.map(str::to_string),
                target_version: version,
            })
        };
        // (reported state, reported version, stored report, counts, why)
        let cases = [
            (
                f,
                Some(3),
                last(Some("Installing"), Some(3)),
                true,
                "turned to Failed",
            ),
            (f, Some(3), last(Some("Failed"), Some(3)), false, "repeated"),
            (
                f,
                Some(4),
                last(Some("Failed"), Some(3)),
                true,
                "failed again, a newer set",
            ),
            (f, Some(3), last(None, None), true, "first report"),
            (f, Some(3), None, false, "no device row"),
            (
                UpdateState::Installed,
                Some(3),
                last(None, None),
                false,
                "not a failure",
            ),
        ];
        for (state, version, before, want, why) in cases {
            assert_eq!(newly_failed(state, version, before.as_ref()), want, "{why}");
        }
    }
}
