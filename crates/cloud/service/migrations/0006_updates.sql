-- Ferrosphere service schema, part 5: over-the-air updates (docs/updates.md).
--
-- Portable SQL (docs/service/storage.md). Binary values (COSE) are standard base64 TEXT.

-- Per claimed device: the newest signed target set and what it was computed from (so an
-- unchanged set is answered from this row without signing), the ownership document, and the
-- device's last update status report.
ALTER TABLE devices ADD COLUMN target_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN target_inputs TEXT;
ALTER TABLE devices ADD COLUMN target_set TEXT;
ALTER TABLE devices ADD COLUMN target_expires_at BIGINT;
ALTER TABLE devices ADD COLUMN ownership_doc TEXT;
ALTER TABLE devices ADD COLUMN ownership_inputs TEXT;
ALTER TABLE devices ADD COLUMN update_state TEXT;
ALTER TABLE devices ADD COLUMN update_target_version BIGINT;
ALTER TABLE devices ADD COLUMN update_detail TEXT;
ALTER TABLE devices ADD COLUMN update_deferred_until BIGINT;
ALTER TABLE devices ADD COLUMN update_reported_at BIGINT;
ALTER TABLE devices ADD COLUMN update_installed TEXT;

-- update-now requests: for a whole device group, or one device. IDs are UUIDv7, so the
-- greatest ID is the newest signal.
CREATE TABLE update_signals (
    id              TEXT NOT NULL PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    device_group_id TEXT REFERENCES device_groups (id) ON DELETE CASCADE,
    device_id       TEXT REFERENCES devices (id),
    created_by      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    CHECK ((device_group_id IS NULL) <> (device_id IS NULL))
);
CREATE INDEX update_signals_by_group ON update_signals (device_group_id, id);
CREATE INDEX update_signals_by_device ON update_signals (device_id, id);
