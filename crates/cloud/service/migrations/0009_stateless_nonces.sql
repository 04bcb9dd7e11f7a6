-- Ferrosphere service schema, part 9: attestation nonces without rows (docs/attestation.md,
-- "Nonces"). A nonce now carries its issue time and device, authenticated by the service's
-- nonce key, so the challenge route writes nothing. Single use is the device's floor: the issue
-- time (Unix microseconds) of the last nonce its key answered, raised in the same conditional
-- UPDATE that records the verdict. Outstanding challenges of the old kind are dropped: a device
-- that held one asks again (its next attempt at most a minute later).
ALTER TABLE devices ADD COLUMN attestation_nonce_floor BIGINT;
DROP INDEX attestation_nonces_by_device;
DROP INDEX attestation_nonces_by_expiry;
DROP TABLE attestation_nonces;
