-- Ferrosphere service schema, part 17: deleting an image that only superseded deployments list
-- (docs/service/README.md, "Images").
--
-- Portable SQL (docs/service/storage.md).
--
-- contract: rebuilds deployment_images (image_row_id nullable, the history columns NOT NULL);
-- a replica of an earlier release inserts rows without them and fails to create deployments,
-- so the upgrade to the release that brings this migration is not rolling (docs/service/
-- scale-out.md, "Upgrades that are not rolling"): it was written before the rolling rule existed.

-- A deployment's images keep what the history shows of each (image ID, name, type, version)
-- on their own row, so that the image row can go when no device can still be given it. Until
-- then `image_row_id` names the stored image; the deletion sets it to NULL and `deleted_at` to
-- its time in the same transaction as it deletes the image row (the foreign key refuses a
-- deletion that left a reference). The table is rebuilt because neither engine can make a
-- column nullable the same way.
CREATE TABLE deployment_images_history (
    deployment_id TEXT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    image_row_id  TEXT REFERENCES images (id),   -- NULL: the image was deleted
    component_id  TEXT NOT NULL,
    image_id      TEXT NOT NULL,
    name          TEXT NOT NULL,
    image_type    TEXT NOT NULL,
    version       TEXT NOT NULL,
    deleted_at    BIGINT,
    -- one image per component in a deployment
    PRIMARY KEY (deployment_id, component_id),
    CHECK ((image_row_id IS NULL) = (deleted_at IS NOT NULL))
);
INSERT INTO deployment_images_history (deployment_id, image_row_id, component_id, image_id, name,
    image_type, version, deleted_at)
SELECT di.deployment_id, di.image_row_id, di.component_id, i.image_id, i.name, i.image_type,
    CAST(i.version_major AS TEXT) || '.' || CAST(i.version_minor AS TEXT) || '.' ||
    CAST(i.version_patch AS TEXT), NULL
FROM deployment_images di JOIN images i ON i.id = di.image_row_id;
DROP TABLE deployment_images;
ALTER TABLE deployment_images_history RENAME TO deployment_images;
CREATE INDEX deployment_images_by_image ON deployment_images (image_row_id);
