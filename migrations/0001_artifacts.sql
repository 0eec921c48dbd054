-- 0001: artifact versions, the quarantine for records the sink cannot store, and the roles that
-- make history append-only in the database itself. Runs as the owner role (`bucket`, CREATEROLE)
-- inside one transaction that holds the migration advisory lock. Unqualified names land in the
-- first schema of the search_path, so tests can run the same file in a throwaway schema.

-- One row per accepted artifact version. The primary key is the sink's idempotency key: a replay
-- of bucket.accepted inserts nothing.
CREATE TABLE IF NOT EXISTS artifact_versions (
    product_id       text        NOT NULL,
    artifact_id      text        NOT NULL,
    version          bigint      NOT NULL,
    intent_id        text        NOT NULL UNIQUE,
    artifact_class   text        NOT NULL,
    owner_id         text        NOT NULL,
    requester_id     text        NOT NULL,
    integration_id   text        NOT NULL,
    operation        text        NOT NULL CHECK (operation IN ('CREATE', 'UPDATE', 'DELETE')),
    deleted          boolean     NOT NULL,
    content          bytea       NULL,
    content_sha256   text        NOT NULL,
    content_size     bigint      NOT NULL,
    content_type     text        NOT NULL,
    metadata         text        NOT NULL,
    purpose          text        NOT NULL,
    -- NULL when the millisecond value is outside PostgreSQL's timestamp range; the raw value is
    -- always kept in the *_ms column.
    client_time      timestamptz NULL,
    client_time_ms   bigint      NOT NULL,
    decided_at       timestamptz NULL,
    decided_at_ms    bigint      NOT NULL,
    policy_version   text        NOT NULL,
    source_partition integer     NOT NULL,
    source_offset    bigint      NOT NULL,
    stored_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (product_id, artifact_id, version)
);

-- Records of bucket.accepted the sink could not store as a version: undecodable bytes, a version
-- that conflicts with a stored one, or a row the database refused. Kept so nothing is lost and
-- the partition never stalls; (topic, partition, offset) makes replays no-ops.
CREATE TABLE IF NOT EXISTS sink_undecodable (
    topic       text        NOT NULL,
    "partition" integer     NOT NULL,
    "offset"    bigint      NOT NULL,
    raw         bytea       NULL,
    error       text        NOT NULL,
    stored_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, "partition", "offset")
);

-- Belt and braces: history rows cannot change, whoever asks (the owner included).
CREATE OR REPLACE FUNCTION artifact_versions_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'artifact_versions is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

DROP TRIGGER IF EXISTS artifact_versions_no_update_delete ON artifact_versions;
CREATE TRIGGER artifact_versions_no_update_delete
    BEFORE UPDATE OR DELETE ON artifact_versions
    FOR EACH ROW EXECUTE FUNCTION artifact_versions_immutable();

DROP TRIGGER IF EXISTS artifact_versions_no_truncate ON artifact_versions;
CREATE TRIGGER artifact_versions_no_truncate
    BEFORE TRUNCATE ON artifact_versions
    FOR EACH STATEMENT EXECUTE FUNCTION artifact_versions_immutable();

-- Roles are cluster-wide: create them only when missing, and tolerate a concurrent creator in
-- another database. They get no password here: `bucket sink migrate --sink-role-password
-- file:… --reader-role-password file:…` sets them from Secrets (docs/deploying.md,
-- "Database roles"); until then they cannot log in with a password.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bucket_sink') THEN
        BEGIN
            CREATE ROLE bucket_sink LOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bucket_reader') THEN
        BEGIN
            CREATE ROLE bucket_reader LOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END;
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO bucket_sink, bucket_reader', current_schema());
END;
$$;

-- The sink appends; the reader reads; neither may rewrite history.
REVOKE ALL ON artifact_versions, sink_undecodable FROM PUBLIC;
REVOKE ALL ON artifact_versions, sink_undecodable FROM bucket_sink, bucket_reader;
GRANT SELECT, INSERT ON artifact_versions, sink_undecodable TO bucket_sink;
GRANT SELECT ON artifact_versions, sink_undecodable TO bucket_reader;
