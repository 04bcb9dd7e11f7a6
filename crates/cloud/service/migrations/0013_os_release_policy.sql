-- Ferrosphere service schema, part 13: what the attestation appraisal and the target sets accept
-- of the OS releases (docs/attestation.md, "OS appraisal"; docs/updates.md).
-- A revoked release (`ferro os-release revoke`) is never offered again and a device that runs
-- it is Untrusted; revocation is permanent (a fixed build is a new release).
ALTER TABLE os_releases ADD COLUMN revoked_at BIGINT;
ALTER TABLE os_releases ADD COLUMN revoked_by TEXT;

-- The minimum security version of each OS feed (`ferro os-release set-minimum-security-version`):
-- releases below it are neither offered nor accepted for devices of groups on that feed. No row:
-- minimum 0. It may not exceed the newest live release of its feed (devices would have no OS to run).
CREATE TABLE os_feed_policies (
    feed                     TEXT NOT NULL PRIMARY KEY CHECK (feed IN ('Retail', 'RetailEval')),
    minimum_security_version BIGINT NOT NULL,
    updated_by               TEXT NOT NULL,
    updated_at               BIGINT NOT NULL
);
