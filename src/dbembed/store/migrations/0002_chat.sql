-- Chat history, per-user semantic memory (issue 6) and API keys.
--
-- Fixes document 003's design bug: its history table had `userid ... UNIQUE`, which allows
-- one row per user.  Here a turn is keyed by (tenant, user, chat, turn number).
-- Memory vectors have model-dependent dimensions, so memory lives in one table per
-- "memory space" (model id + dimensions, registered in chat_memory_spaces), created by
-- dbembed.chat.spaces exactly like the file index's per-collection chunk tables.

CREATE TABLE dbembed.chat_turns (
    id            bigserial PRIMARY KEY,
    tenant_id     text NOT NULL DEFAULT 'default' CHECK (tenant_id <> ''),
    user_id       text NOT NULL CHECK (user_id <> ''),
    theme         text NOT NULL DEFAULT '',
    chat_id       bigint NOT NULL CHECK (chat_id >= 0),
    turn_no       integer NOT NULL CHECK (turn_no >= 0),
    user_input    text NOT NULL DEFAULT '',
    bot_response  text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, user_id, chat_id, turn_no)
);
-- A user's chats, newest first; and time-based scans (retention, sync ordering).
CREATE INDEX chat_turns_user_recent ON dbembed.chat_turns (tenant_id, user_id, created_at DESC);
CREATE INDEX chat_turns_created ON dbembed.chat_turns (created_at);

CREATE TABLE dbembed.chat_memory_spaces (
    id           serial PRIMARY KEY,
    name         text NOT NULL UNIQUE,
    model        text NOT NULL,
    dimensions   integer NOT NULL CHECK (dimensions > 0),
    vector_type  text NOT NULL CHECK (vector_type IN ('halfvec', 'vector')),
    -- Retention horizon: turns older than this were expired and are never synced again.
    horizon      timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE dbembed.api_keys (
    id             text PRIMARY KEY,            -- public prefix id, shown by `dbembed keys list`
    tenant_id      text NOT NULL CHECK (tenant_id <> ''),
    user_id        text CHECK (user_id <> ''),  -- NULL: a tenant service key (acts for any user of its tenant)
    name           text NOT NULL DEFAULT '',
    secret_sha256  text NOT NULL,               -- sha256 of the whole token; the token itself is never stored
    created_at     timestamptz NOT NULL DEFAULT now(),
    revoked_at     timestamptz,
    last_used_at   timestamptz
);
CREATE INDEX api_keys_tenant ON dbembed.api_keys (tenant_id);

-- The role API requests run as (SET LOCAL ROLE).  Not a superuser and not BYPASSRLS, so
-- row-level security applies to it.  Roles are cluster-wide: tolerate an existing one.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dbembed_app') THEN
        BEGIN
            CREATE ROLE dbembed_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- created concurrently by a migration of another database
        END;
    END IF;
    -- The migrating (and API connecting) role must be able to SET ROLE dbembed_app.
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('GRANT dbembed_app TO %I', current_user);
    END IF;
END
$$;

GRANT USAGE ON SCHEMA dbembed TO dbembed_app;
GRANT SELECT ON dbembed.chat_memory_spaces TO dbembed_app;

-- The second wall: row-level security on every chat table.  API requests run as
-- dbembed_app with dbembed.tenant_id / dbembed.user_id set per transaction
-- (set_config(..., true)); a query that forgets its user filter still sees only that
-- user's rows.  Other roles (the owner running migrations, sync and retention as batch
-- jobs) keep full access through the maintenance policy.
CREATE FUNCTION dbembed.chat_apply_rls(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
    EXECUTE format(
        'CREATE POLICY tenant_user_isolation ON %s TO dbembed_app '
        'USING (tenant_id = current_setting(''dbembed.tenant_id'', true) '
        '   AND user_id = current_setting(''dbembed.user_id'', true)) '
        'WITH CHECK (tenant_id = current_setting(''dbembed.tenant_id'', true) '
        '   AND user_id = current_setting(''dbembed.user_id'', true))', tbl);
    EXECUTE format(
        'CREATE POLICY maintenance ON %s TO PUBLIC '
        'USING (current_user <> ''dbembed_app'') WITH CHECK (current_user <> ''dbembed_app'')', tbl);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO dbembed_app', tbl);
END
$$;

SELECT dbembed.chat_apply_rls('dbembed.chat_turns');
GRANT USAGE ON SEQUENCE dbembed.chat_turns_id_seq TO dbembed_app;
