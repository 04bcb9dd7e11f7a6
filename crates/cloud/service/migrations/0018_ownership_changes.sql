-- Ferrosphere service schema, part 18: telling waiting devices that they changed owner
-- (docs/updates.md, "Update-now").
--
-- Portable SQL (docs/service/storage.md).

-- One row per ownership change of a device (a transfer accepted, an operator's reassignment or
-- unclaim), written in the change's transaction. The process-wide watch of update-now signals
-- (`update_signals.rs`) also watches the newest row here, so a device's open long poll ends at
-- once with 401 when its certificate's tenant no longer owns it, and the device attests again.
-- Rows older than an hour are pruned at each change: only the newest matters.
CREATE TABLE ownership_changes (
    id         TEXT NOT NULL PRIMARY KEY,   -- UUIDv7: newest = greatest
    device_id  TEXT NOT NULL,
    changed_at BIGINT NOT NULL
);
CREATE INDEX ownership_changes_by_time ON ownership_changes (changed_at);
