-- Ferrosphere service schema, part 2: tenant CAs, device registrations, claimed devices'
-- attestation placeholders, device events (error reports).
--
-- Portable SQL (docs/service/storage.md). Binary values (DER, COSE) are standard base64 TEXT.

-- Tenant CA generations (DESIGN section 2). The key of each lives in the key store as
-- `tenants/<tenant>/ca/<serial>`; the certificate is here. Current/next/previous is derived from
-- the validity periods at read time (ferro_pki::current_tenant_ca); `status` records
-- administrative state ('active'; 'revoked' is reserved for later).
CREATE TABLE tenant_cas (
    tenant_id         TEXT NOT NULL REFERENCES tenants (id),
    serial            TEXT NOT NULL,  -- lowercase hex
    der               TEXT NOT NULL,  -- base64 DER
    sha1_thumbprint   TEXT NOT NULL,
    sha256_thumbprint TEXT NOT NULL,
    not_before        BIGINT NOT NULL,
    not_after         BIGINT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
    created_at        BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, serial)
);

-- Verified registration records (DESIGN section 3.1), uploaded by a platform operator. A device
-- ID has exactly one record: repeating the same bytes is idempotent, different bytes are a
-- conflict.
CREATE TABLE device_registrations (
    device_id           TEXT NOT NULL PRIMARY KEY,  -- 128 lowercase hex
    device_key          TEXT NOT NULL,              -- base64 DER SubjectPublicKeyInfo
    root_of_trust       TEXT NOT NULL CHECK (root_of_trust IN ('Software', 'Tpm')),
    ek_certificate      TEXT,                       -- base64 DER (TPM only)
    manufacturing_state TEXT NOT NULL CHECK (manufacturing_state IN ('Blank', 'Module1Complete', 'DeviceComplete')),
    record              TEXT NOT NULL,              -- base64 of the signed record (evidence)
    record_sha256       TEXT NOT NULL,              -- hex SHA-256 of the record bytes
    record_created_at   BIGINT NOT NULL,
    registered_at       BIGINT NOT NULL,
    registered_by       TEXT REFERENCES users (id) ON DELETE SET NULL
);

-- Claimed devices (table from 0001): attestation results, null until devices attest.
ALTER TABLE devices ADD COLUMN last_attested_at BIGINT;
ALTER TABLE devices ADD COLUMN last_attestation_result TEXT;

-- Events devices report (app crashes, update and attestation failures), aggregated per device,
-- type and period; the error report lists them with Azure Sphere's CSV columns.
CREATE TABLE device_events (
    id             TEXT NOT NULL PRIMARY KEY,  -- UUIDv7
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    device_id      TEXT NOT NULL REFERENCES devices (id),
    event_type     TEXT NOT NULL,
    event_class    TEXT NOT NULL,
    event_category TEXT NOT NULL,
    event_count    BIGINT NOT NULL CHECK (event_count >= 1),
    description    TEXT NOT NULL,
    start_time     BIGINT NOT NULL,
    end_time       BIGINT NOT NULL CHECK (end_time >= start_time),
    received_at    BIGINT NOT NULL
);
CREATE INDEX device_events_by_tenant ON device_events (tenant_id, end_time);
CREATE INDEX device_events_by_device ON device_events (device_id);
