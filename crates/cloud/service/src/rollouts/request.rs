//! A rollout as an operator asks for it (`CreateDeploymentRequest.rollout`), checked.

use ferro_wire::{ErrorCode, MAX_ROLLOUT_WAVES, MAX_WAVE_WAIT_SECONDS, Rollout, RolloutRequest};

use super::schedule::{FULL, percent_of};
use crate::error::ApiError;

/// A rollout as the API takes it, checked: (waves in basis points, wait, threshold in basis
/// points).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidRollout {
    /// Cumulative basis points.
    pub waves: Vec<u32>,
    /// Seconds between waves.
    pub wait: i64,
    /// Basis points of the included devices that may fail without pausing the rollout.
    pub max_failure: u32,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidRollout, message)
}

/// A percentage with at most two decimals as basis points.
fn basis_points(p: f64) -> Option<u32> {
    if !p.is_finite() || !(0.0..=100.0).contains(&p) {
        return None;
    }
    let bp = (p * 100.0).round();
    if (p * 100.0 - bp).abs() > 1e-6 {
        return None;
    }
    // 0..=10,000, checked above.
    Some(bp as u32)
}

/// Check a requested rollout; every refusal is `422 invalid_rollout` naming the rule.
pub fn validate(req: &RolloutRequest) -> Result<ValidRollout, ApiError> {
    if req.waves.is_empty() || req.waves.len() > MAX_ROLLOUT_WAVES {
        return Err(invalid(format!(
            "`rollout.waves` must list 1 to {MAX_ROLLOUT_WAVES} cumulative percentages, such as \
             [10, 50, 100]"
        )));
    }
    let mut waves = Vec::with_capacity(req.waves.len());
    for (i, p) in req.waves.iter().enumerate() {
        let bp = basis_points(*p).filter(|bp| *bp > 0).ok_or_else(|| {
            invalid(format!(
                "`rollout.waves[{i}]` must be a percentage above 0 and at most 100, with at most \
                 two decimals"
            ))
        })?;
        if let Some(prev) = waves.last()
            && bp <= *prev
        {
            return Err(invalid(format!(
                "`rollout.waves` must increase: `rollout.waves[{i}]` is not above the wave before \
                 it (the percentages are cumulative)"
            )));
        }
        waves.push(bp);
    }
    if waves.last() != Some(&FULL) {
        return Err(invalid(
            "`rollout.waves` must end at 100 (the last wave reaches every device of the group)",
        ));
    }
    if req.wave_wait_seconds < 0 {
        return Err(invalid("`rollout.waveWaitSeconds` must not be negative"));
    }
    if req.wave_wait_seconds > MAX_WAVE_WAIT_SECONDS {
        return Err(invalid(format!(
            "`rollout.waveWaitSeconds` must be at most {MAX_WAVE_WAIT_SECONDS} (30 days)"
        )));
    }
    let max_failure = basis_points(req.max_failure_percent).ok_or_else(|| {
        invalid(
            "`rollout.maxFailurePercent` must be a percentage from 0 to 100, with at most two \
             decimals",
        )
    })?;
    Ok(ValidRollout {
        waves,
        wait: req.wave_wait_seconds,
        max_failure,
    })
}

impl ValidRollout {
    /// The API's view of it.
    pub fn wire(&self) -> Rollout {
        wire(&self.waves, self.wait, self.max_failure)
    }
}

/// The API's view of a rollout's configuration (waves and threshold in basis points).
pub fn wire(waves: &[u32], wait: i64, max_failure: u32) -> Rollout {
    Rollout {
        waves: waves.iter().copied().map(percent_of).collect(),
        wave_wait_seconds: u64::try_from(wait).unwrap_or(0),
        max_failure_percent: percent_of(max_failure),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(waves: &[f64], wait: i64, fail: f64) -> RolloutRequest {
        RolloutRequest {
            waves: waves.to_vec(),
            wave_wait_seconds: wait,
            max_failure_percent: fail,
        }
    }

    #[test]
    fn rollouts_are_validated() {
        let ok = validate(&req(&[0.5, 10.0, 50.0, 100.0], 3600, 5.0)).unwrap();
        assert_eq!(ok.waves, vec![50, 1000, 5000, 10000]);
        assert_eq!(ok.max_failure, 500);
        assert!(validate(&req(&[100.0], 0, 0.0)).is_ok());
        assert!(validate(&req(&[10.0, 100.0], MAX_WAVE_WAIT_SECONDS, 100.0)).is_ok());
        for (bad, why) in [
            (req(&[], 60, 5.0), "empty"),
            (req(&[10.0, 10.0, 100.0], 60, 5.0), "not increasing"),
            (req(&[50.0, 10.0, 100.0], 60, 5.0), "decreasing"),
            (req(&[10.0, 50.0], 60, 5.0), "not ending at 100"),
            (req(&[0.0, 100.0], 60, 5.0), "zero"),
            (req(&[-5.0, 100.0], 60, 5.0), "negative"),
            (req(&[10.0, 100.5], 60, 5.0), "over 100"),
            (req(&[10.001, 100.0], 60, 5.0), "three decimals"),
            (req(&[f64::NAN, 100.0], 60, 5.0), "NaN"),
            (req(&[1.0; 11], 60, 5.0), "too many"),
            (req(&[10.0, 100.0], -1, 5.0), "negative wait"),
            (
                req(&[10.0, 100.0], MAX_WAVE_WAIT_SECONDS + 1, 5.0),
                "wait too long",
            ),
            (req(&[10.0, 100.0], 60, -1.0), "negative threshold"),
            (req(&[10.0, 100.0], 60, 100.5), "threshold over 100"),
        ] {
            let e = validate(&bad).expect_err(why);
            assert_eq!(e.code(), ErrorCode::InvalidRollout, "{why}");
        }
    }

    #[test]
    fn the_wire_view_round_trips_the_request() {
        let r = req(&[0.5, 10.0, 100.0], 3600, 2.5);
        let w = validate(&r).unwrap().wire();
        assert_eq!(
            (w.waves, w.wave_wait_seconds, w.max_failure_percent),
            (r.waves, 3600, 2.5)
        );
    }
}
