-- Ferrosphere service schema: rollouts in waves (docs/updates.md, "Rollout waves").
--
-- Portable SQL (docs/service/storage.md). A deployment without rollout_waves has no rollout: it
-- reaches every device of its group at once, as before. Progress is derived at read time from
-- rollout_wave, rollout_wave_at and rollout_wait (crates/service/src/rollouts.rs); these
-- columns change only on a pause, a resume, or when a newer deployment supersedes the rollout.

-- Cumulative basis points of the group's devices per wave, e.g. '1000,5000,10000'.
ALTER TABLE deployments ADD COLUMN rollout_waves TEXT;
-- Seconds between the starts of two waves.
ALTER TABLE deployments ADD COLUMN rollout_wait BIGINT;
-- Basis points of the included devices that may report Failed before the rollout pauses.
ALTER TABLE deployments ADD COLUMN rollout_max_failure BIGINT;
-- The wave (0-based) reached at rollout_wave_at (the creation, a pause, or the last resume).
ALTER TABLE deployments ADD COLUMN rollout_wave BIGINT;
ALTER TABLE deployments ADD COLUMN rollout_wave_at BIGINT;
-- The group's newest deployment that had reached every device when this one was created (NULL:
-- none): devices outside this rollout's waves that hold nothing newer of the group get it. Fixed
-- at creation: an older rollout is either complete then, or frozen (superseded) for good.
ALTER TABLE deployments ADD COLUMN rollout_base_id TEXT;
-- Failures reported before this are not counted (the creation, or the last resume).
ALTER TABLE deployments ADD COLUMN rollout_failures_since BIGINT;
-- The pause, while paused: when, why ('FailureThreshold' or 'Operator'), the detail, and the
-- operator (NULL: the service paused it).
ALTER TABLE deployments ADD COLUMN rollout_paused_at BIGINT;
ALTER TABLE deployments ADD COLUMN rollout_pause_reason TEXT;
ALTER TABLE deployments ADD COLUMN rollout_pause_detail TEXT;
ALTER TABLE deployments ADD COLUMN rollout_paused_by TEXT;
-- When a newer deployment of the group froze this rollout where it stood.
ALTER TABLE deployments ADD COLUMN rollout_superseded_at BIGINT;

-- Per device: the deployment whose images its stored target set names (NULL: none), and the
-- first target set version that named them. A device outside a rollout's waves keeps this
-- deployment; a Failed report for a version at or above it counts against that rollout.
ALTER TABLE devices ADD COLUMN target_deployment_id TEXT;
ALTER TABLE devices ADD COLUMN target_deployment_version BIGINT;
