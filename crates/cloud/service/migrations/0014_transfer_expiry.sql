-- Ferrosphere service schema, part 14: device transfer offers expire (docs/service/README.md,
-- "Claiming and ownership").
--
-- Portable SQL (docs/service/storage.md).

-- When the offer expires (Unix seconds). A Pending row past it reads as Expired (the state is
-- computed from the time when read; nothing rewrites the row): it can no longer be accepted or
-- cancelled, and no longer blocks a new offer for the device. The default 0 only fills the
-- column for the UPDATE below; the service always writes the expiry (a row without one would be
-- expired at once: fail closed).
ALTER TABLE device_transfers ADD COLUMN expires_at BIGINT NOT NULL DEFAULT 0;

-- Offers made before this migration expire 14 days (the default lifetime) after they were made.
UPDATE device_transfers SET expires_at = created_at + 1209600;
