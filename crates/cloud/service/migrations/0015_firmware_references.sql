-- Ferrosphere service schema, part 15: firmware (stage 0) reference values per product
-- (docs/attestation.md, "Firmware appraisal").
--
-- Portable SQL (docs/service/storage.md).

-- The values of TPM PCRs 0-7 (SHA-256 bank) a genuine device of the product shows after UEFI
-- measured boot. A device of the product attests Trusted only with firmware PCRs equal to one
-- row; several rows at once let a firmware rollout move devices from one value to the next.
CREATE TABLE firmware_references (
    id          TEXT NOT NULL PRIMARY KEY,             -- UUIDv7
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    product_id  TEXT NOT NULL REFERENCES products (id),
    pcrs        TEXT NOT NULL,                         -- PCRs 0..7: 8 x 64 lowercase hex, joined by ','
    description TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    UNIQUE (product_id, pcrs)
);

-- What the last appraisal found of the device's firmware ('Matched', 'NotAppraised',
-- 'Refused'; NULL until evidence verified), and the firmware PCRs it reported (same text form as
-- firmware_references.pcrs; NULL for software roots of trust).
ALTER TABLE devices ADD COLUMN last_attestation_firmware TEXT;
ALTER TABLE devices ADD COLUMN last_firmware_pcrs TEXT;
