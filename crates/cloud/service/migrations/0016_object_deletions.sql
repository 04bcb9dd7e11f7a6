-- Ferrosphere service schema, part 16: image deletion (docs/service/README.md, "Images").
--
-- Portable SQL (docs/service/storage.md).

-- Objects whose last row was deleted. The row that made an object visible (an image) and this
-- intent are written in one transaction; the object is deleted after the commit, then the
-- intent. A process that dies in between leaves the intent, which the service finishes at its
-- next start (and after every later deletion): the quota (the sum of the rows) never counts a
-- deleted image, and no object is left behind for good.
CREATE TABLE object_deletions (
    object_key   TEXT NOT NULL PRIMARY KEY,   -- e.g. images/<package_sha256>
    requested_at BIGINT NOT NULL
);
