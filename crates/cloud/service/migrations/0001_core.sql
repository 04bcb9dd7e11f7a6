-- Ferrosphere service schema, part 1: identities, tenants, products, device groups, audit.
--
-- Portable SQL: this one file runs on SQLite and PostgreSQL (docs/service/storage.md).
-- IDs are UUID text (lowercase, hyphenated; UUIDv7, so text order is creation order).
-- Times are BIGINT Unix seconds (UTC). Booleans are BIGINT 0/1 with a CHECK.
-- Names keep their case in `name` and are unique case-insensitively through `name_key`.

CREATE TABLE platform_meta (
    key   TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE users (
    id                       TEXT NOT NULL PRIMARY KEY,
    login                    TEXT NOT NULL UNIQUE,
    display_name             TEXT NOT NULL,
    password_hash            TEXT NOT NULL,
    password_change_required BIGINT NOT NULL CHECK (password_change_required IN (0, 1)),
    platform_operator        BIGINT NOT NULL CHECK (platform_operator IN (0, 1)),
    created_at               BIGINT NOT NULL
);

CREATE TABLE tenants (
    id         TEXT NOT NULL PRIMARY KEY,
    name       TEXT NOT NULL,
    name_key   TEXT NOT NULL UNIQUE,
    -- bumped by every write in the tenant: takes the tenant's row lock, serialising writers
    version    BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE tenant_roles (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('Reader', 'Contributor', 'Administrator')),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX tenant_roles_by_user ON tenant_roles (user_id);

-- Session and API tokens. Only the SHA-256 of the secret is stored (hex).
CREATE TABLE tokens (
    id           TEXT NOT NULL PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL CHECK (kind IN ('session', 'api')),
    name         TEXT,
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX tokens_by_user ON tokens (user_id, kind);

-- Failed logins, for rate limiting across replicas. scope_key is 'login:<name>' or 'ip:<addr>'.
CREATE TABLE login_failures (
    id        TEXT NOT NULL PRIMARY KEY,
    scope_key TEXT NOT NULL,
    at        BIGINT NOT NULL
);
CREATE INDEX login_failures_by_key ON login_failures (scope_key, at);

CREATE TABLE products (
    id          TEXT NOT NULL PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    name        TEXT NOT NULL,
    name_key    TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (tenant_id, name_key)
);

CREATE TABLE device_groups (
    id                           TEXT NOT NULL PRIMARY KEY,
    tenant_id                    TEXT NOT NULL REFERENCES tenants (id),
    product_id                   TEXT NOT NULL REFERENCES products (id),
    name                         TEXT NOT NULL,
    name_key                     TEXT NOT NULL,
    description                  TEXT NOT NULL,
    os_feed                      TEXT NOT NULL CHECK (os_feed IN ('Retail', 'RetailEval')),
    update_policy                TEXT NOT NULL CHECK (update_policy IN ('UpdateAll', 'No3rdPartyAppUpdates')),
    allow_crash_dumps_collection BIGINT NOT NULL CHECK (allow_crash_dumps_collection IN (0, 1)),
    created_at                   BIGINT NOT NULL,
    UNIQUE (product_id, name_key)
);
CREATE INDEX device_groups_by_tenant ON device_groups (tenant_id, id);

-- Devices: the device-side work extends this table. A device is in at most one group; a group
-- (and so its product) with devices cannot be deleted (RESTRICT, and checked by the service).
CREATE TABLE devices (
    id              TEXT NOT NULL PRIMARY KEY,  -- device ID: 128 lowercase hex (SHA-512 of the public key)
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    device_group_id TEXT REFERENCES device_groups (id) ON DELETE RESTRICT,
    claimed_at      BIGINT NOT NULL
);
CREATE INDEX devices_by_group ON devices (device_group_id);
CREATE INDEX devices_by_tenant ON devices (tenant_id, id);

-- Every write appends here in the same transaction. tenant_id is NULL for platform events.
CREATE TABLE audit_log (
    id          TEXT NOT NULL PRIMARY KEY,
    tenant_id   TEXT REFERENCES tenants (id),
    at          BIGINT NOT NULL,
    actor       TEXT,
    action      TEXT NOT NULL,
    object_type TEXT NOT NULL,
    object_id   TEXT NOT NULL,
    details     TEXT NOT NULL
);
CREATE INDEX audit_log_by_tenant ON audit_log (tenant_id, id);
