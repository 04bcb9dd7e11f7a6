-- Ferrosphere service schema, part 12: proof of ownership for claims, transfers between tenants
-- and the platform operator's reassignments (docs/service/README.md, "Claiming and ownership").
--
-- Portable SQL (docs/service/storage.md).

-- The SHA-256 (hex) of the device's claim code: made when the record is first stored, shown
-- once to the manufacturer, cleared when the device is claimed or assigned (a claim code works
-- once). NULL: the device cannot be claimed with a code (records stored before this migration,
-- and claimed devices); a platform operator assigns such devices, or reassigns with a new code.
ALTER TABLE device_registrations ADD COLUMN claim_code_sha256 TEXT;

-- Grows by one every time the device changes tenant (transfer or reassignment), and is never
-- reset (unclaiming keeps it): the ownership document carries it, so that a device accepts a
-- new tenant only under a newer epoch than the one it holds (docs/identity-documents.md).
ALTER TABLE device_registrations ADD COLUMN ownership_epoch BIGINT NOT NULL DEFAULT 0;

-- Offers of a device from its tenant to another. At most one pending offer per device.
CREATE TABLE device_transfers (
    id             TEXT NOT NULL PRIMARY KEY,   -- UUIDv7
    device_id      TEXT NOT NULL REFERENCES device_registrations (device_id),
    from_tenant_id TEXT NOT NULL REFERENCES tenants (id),
    to_tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    state          TEXT NOT NULL CHECK (state IN ('Pending', 'Accepted', 'Cancelled')),
    created_by     TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    closed_by      TEXT,
    closed_at      BIGINT
);
CREATE INDEX device_transfers_by_device ON device_transfers (device_id, state);
CREATE INDEX device_transfers_from ON device_transfers (from_tenant_id, id);
CREATE INDEX device_transfers_to ON device_transfers (to_tenant_id, id);
