-- Ferrosphere service schema, part 6: device event uploads (POST /v1/device/events; failure
-- reporting, docs/service/README.md "Error report").
--
-- Portable SQL (docs/service/storage.md).

-- When the device last uploaded events. The upload updates it first, which also takes the
-- device's row lock on PostgreSQL: one device's uploads run one after the other, so the
-- duplicate check and the per-device cap below see every earlier upload of the device.
ALTER TABLE devices ADD COLUMN events_uploaded_at BIGINT;

-- Batches of events devices uploaded, by the batch ID the device chose: a re-sent batch (a
-- retry after a lost answer) is recognised and stores nothing twice. `event_count` (rows the
-- batch stored) feeds the per-device cap on events per rolling 24 hours. Rows older than the
-- error report's reach are deleted by later uploads of the same device.
CREATE TABLE device_event_batches (
    device_id   TEXT NOT NULL REFERENCES devices (id),
    batch_id    TEXT NOT NULL,  -- UUID, lowercase hyphenated
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    event_count BIGINT NOT NULL CHECK (event_count >= 1),
    received_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, batch_id)
);
CREATE INDEX device_event_batches_by_time ON device_event_batches (device_id, received_at);
