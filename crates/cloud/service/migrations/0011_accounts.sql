-- Ferrosphere service schema, part 11: accounts that cannot be hijacked (docs/service/accounts.md).
--
-- Tenant membership is an invitation that the account holder accepts with their own
-- credentials: the code's SHA-256 is stored (hex), never the code. An invitation may be
-- restricted to one login name; it is single-use, expires, and can be revoked.
CREATE TABLE tenant_invitations (
    id          TEXT NOT NULL PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('Reader', 'Contributor', 'Administrator')),
    login       TEXT,
    code_hash   TEXT NOT NULL UNIQUE,
    created_by  TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    accepted_by TEXT REFERENCES users (id) ON DELETE SET NULL,
    accepted_at BIGINT,
    revoked_at  BIGINT
);
CREATE INDEX tenant_invitations_by_tenant ON tenant_invitations (tenant_id, id);

-- One-time passwords expire: the time after which the password (while
-- password_change_required = 1) no longer logs in. NULL for passwords the user chose.
ALTER TABLE users ADD COLUMN password_expires_at BIGINT;

-- API token scopes: one tenant (NULL: every tenant of the user), a maximum role (NULL: the
-- user's role), read-only (only GET and HEAD). Sessions have none of these.
ALTER TABLE tokens ADD COLUMN scope_tenant_id TEXT;
ALTER TABLE tokens ADD COLUMN max_role TEXT CHECK (max_role IN ('Reader', 'Contributor', 'Administrator'));
ALTER TABLE tokens ADD COLUMN read_only BIGINT NOT NULL DEFAULT 0 CHECK (read_only IN (0, 1));

-- One row per login-limit key ('login:<name>', 'ip:<prefix>'): the row a reservation locks
-- (UPDATE) before it counts the key's attempts in login_failures, so that concurrent attempts
-- on PostgreSQL are counted one after the other (SQLite has one writer anyway).
CREATE TABLE login_limit_keys (
    scope_key  TEXT NOT NULL PRIMARY KEY,
    touched_at BIGINT NOT NULL
);
-- The periodic prune of stale rows (`login_guard::prune_stale`) by time alone.
CREATE INDEX login_limit_keys_by_time ON login_limit_keys (touched_at);
CREATE INDEX login_failures_by_time ON login_failures (at);
