-- Ferrosphere service schema, part 4: device attestation (docs/attestation.md).
--
-- Portable SQL (docs/service/storage.md).

-- Single-use attestation challenges. Only SHA-256 of the nonce is stored, so a copy of the
-- database cannot answer an outstanding challenge. Unknown device IDs get nonces too (the
-- challenge route is no registration oracle), hence no foreign key. Expired rows are deleted
-- by later challenges.
CREATE TABLE attestation_nonces (
    nonce_sha256 TEXT NOT NULL PRIMARY KEY,  -- hex SHA-256 of the 32 nonce bytes
    device_id    TEXT NOT NULL,              -- 128 lowercase hex, as asked for
    created_ms   BIGINT NOT NULL,            -- Unix milliseconds (TTLs are seconds long)
    expires_ms   BIGINT NOT NULL,
    used_ms      BIGINT                      -- set once, in the evidence transaction
);
CREATE INDEX attestation_nonces_by_device ON attestation_nonces (device_id, expires_ms);
CREATE INDEX attestation_nonces_by_expiry ON attestation_nonces (expires_ms);

-- Claimed devices: an administrative block (refuses attestation), and the reasons of the last
-- attestation (JSON array of {code, message}; '[]' when trusted).
ALTER TABLE devices ADD COLUMN blocked BIGINT NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN last_attestation_reasons TEXT;

-- Capability files the service issued (the files themselves are not kept). Appraisal accepts
-- images unknown to the tenant (test-signed) only from a device with an AppDevelopment
-- capability issued by its current tenant and not revoked.
CREATE TABLE device_capabilities (
    id                TEXT NOT NULL PRIMARY KEY,  -- UUIDv7
    tenant_id         TEXT NOT NULL REFERENCES tenants (id),
    device_id         TEXT NOT NULL REFERENCES devices (id),
    capability_type   TEXT NOT NULL CHECK (capability_type IN ('AppDevelopment', 'FieldServicing')),
    developer_key_ids TEXT NOT NULL,              -- JSON array of key IDs
    issued_at         BIGINT NOT NULL,
    issued_by         TEXT NOT NULL,
    revoked_at        BIGINT
);
CREATE INDEX device_capabilities_by_device ON device_capabilities (device_id, capability_type);
