-- Ferrosphere service schema, part 3: developer keys, images, deployments, OS release keys and
-- OS releases.
--
-- Portable SQL (docs/service/storage.md). Package bytes live in the object store under
-- `images/<package_sha256>`; a row here is what makes an object visible through the API.
-- Hashes and key IDs are lowercase hex TEXT. Versions are three BIGINT columns so they order
-- numerically.

-- Public keys whose signatures a tenant accepts on uploaded images (developer test keys).
CREATE TABLE developer_keys (
    id             TEXT NOT NULL PRIMARY KEY,   -- UUIDv7: list order
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    key_id         TEXT NOT NULL,               -- SHA-256 of the DER SPKI, 64 hex
    name           TEXT NOT NULL,
    public_key_pem TEXT NOT NULL,
    created_by     TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    UNIQUE (tenant_id, key_id)
);

-- A tenant's images: the production packages the service re-signed with the tenant image key.
CREATE TABLE images (
    id                     TEXT NOT NULL PRIMARY KEY,   -- UUIDv7 row ID: list order
    tenant_id              TEXT NOT NULL REFERENCES tenants (id),
    image_id               TEXT NOT NULL,               -- from the package metadata
    component_id           TEXT NOT NULL,
    name                   TEXT NOT NULL,
    image_type             TEXT NOT NULL CHECK (image_type IN ('App', 'RtApp', 'BoardConfig')),
    version_major          BIGINT NOT NULL,
    version_minor          BIGINT NOT NULL,
    version_patch          BIGINT NOT NULL,
    security_version       BIGINT NOT NULL,
    target_runtime_version BIGINT NOT NULL,
    debug                  BIGINT NOT NULL CHECK (debug IN (0, 1)),
    payload_size           BIGINT NOT NULL,
    payload_sha256         TEXT NOT NULL,
    package_sha256         TEXT NOT NULL,               -- object key images/<package_sha256>
    package_size           BIGINT NOT NULL,
    signer_key_id          TEXT NOT NULL,               -- the tenant image key
    uploaded_signer_key_id TEXT NOT NULL,               -- the developer key of the upload
    uploaded_sha256        TEXT NOT NULL,               -- the uploaded file (idempotent re-upload)
    uploaded_by            TEXT NOT NULL,
    uploaded_at            BIGINT NOT NULL,
    UNIQUE (tenant_id, image_id)
);
CREATE INDEX images_by_component ON images (tenant_id, component_id, id);

-- Deployments: immutable sets of images per device group; the newest is the current one.
-- Deleting a device group deletes its deployment history (the audit log keeps the record).
CREATE TABLE deployments (
    id              TEXT NOT NULL PRIMARY KEY,          -- UUIDv7: newest = greatest
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    device_group_id TEXT NOT NULL REFERENCES device_groups (id) ON DELETE CASCADE,
    deployed_by     TEXT NOT NULL,
    deployed_at     BIGINT NOT NULL
);
CREATE INDEX deployments_by_group ON deployments (device_group_id, id);

CREATE TABLE deployment_images (
    deployment_id TEXT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    image_row_id  TEXT NOT NULL REFERENCES images (id),
    component_id  TEXT NOT NULL,
    -- one image per component in a deployment
    PRIMARY KEY (deployment_id, component_id)
);
CREATE INDEX deployment_images_by_image ON deployment_images (image_row_id);

-- Build keys whose signatures the platform accepts on uploaded OS bundles (platform operator).
CREATE TABLE os_release_keys (
    id             TEXT NOT NULL PRIMARY KEY,   -- UUIDv7: list order
    key_id         TEXT NOT NULL UNIQUE,
    name           TEXT NOT NULL,
    public_key_pem TEXT NOT NULL,
    created_by     TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);

-- OS releases, signed by the platform OS release key. Every release is in RetailEval; those
-- with retail_at are in Retail too. Versions grow with every publication, so id order (UUIDv7)
-- is version order.
CREATE TABLE os_releases (
    id                     TEXT NOT NULL PRIMARY KEY,   -- UUIDv7: newest = greatest
    image_id               TEXT NOT NULL UNIQUE,
    name                   TEXT NOT NULL,
    version_major          BIGINT NOT NULL,
    version_minor          BIGINT NOT NULL,
    version_patch          BIGINT NOT NULL,
    security_version       BIGINT NOT NULL,
    target_runtime_version BIGINT NOT NULL,
    payload_sha256         TEXT NOT NULL,
    package_sha256         TEXT NOT NULL,
    package_size           BIGINT NOT NULL,
    signer_key_id          TEXT NOT NULL,
    uploaded_signer_key_id TEXT NOT NULL,
    uploaded_sha256        TEXT NOT NULL,
    published_by           TEXT NOT NULL,
    published_at           BIGINT NOT NULL,
    retail_at              BIGINT,
    UNIQUE (version_major, version_minor, version_patch)
);
CREATE INDEX os_releases_retail ON os_releases (retail_at, id);

-- The row OS release writers lock (UPDATE) so "newer than every release" is checked and written
-- by one writer at a time across replicas.
INSERT INTO platform_meta (key, value) VALUES ('os_release_lock', '0');
