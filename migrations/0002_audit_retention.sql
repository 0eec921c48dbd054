-- 0002: the audit index the read API serves an artifact's decisions from, and retention: legal
-- holds, the purge function (the only way a history row can ever be deleted), the log of purged
-- versions and one summary row per purge run. Runs as the owner role, like 0001.

-- One row per record of bucket.audit, written by the sink's audit indexer (read_committed).
-- (topic, partition, offset) makes a replay a no-op. Governance events have no decision fields.
CREATE TABLE IF NOT EXISTS audit_decisions (
    topic            text        NOT NULL,
    "partition"      integer     NOT NULL,
    "offset"         bigint      NOT NULL,
    seq              bigint      NOT NULL,
    hash             text        NOT NULL,
    prev_hash        text        NOT NULL,
    recorded_at_ms   bigint      NOT NULL,
    gate_id          text        NOT NULL,
    policy_version   text        NOT NULL,
    kind             text        NOT NULL CHECK (kind IN ('DECISION', 'GOVERNANCE')),
    outcome          text        NULL CHECK (outcome IN ('ACCEPTED', 'REJECTED')),
    reasons          text[]      NOT NULL DEFAULT '{}',
    threats          text[]      NOT NULL DEFAULT '{}',
    detail           text        NOT NULL DEFAULT '',
    intent_id        text        NULL,
    product_id       text        NULL,
    integration_id   text        NULL,
    owner_id         text        NULL,
    requester_id     text        NULL,
    artifact_id      text        NULL,
    artifact_class   text        NULL,
    operation        text        NULL,
    version          bigint      NULL,
    deleted          boolean     NOT NULL DEFAULT false,
    content_size     bigint      NOT NULL DEFAULT 0,
    size_delta       bigint      NOT NULL DEFAULT 0,
    content_sha256   text        NULL,
    source_partition integer     NULL,
    source_offset    bigint      NULL,
    event_type       text        NULL,
    stored_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, "partition", "offset")
);
CREATE INDEX IF NOT EXISTS audit_decisions_by_artifact
    ON audit_decisions (product_id, artifact_id, recorded_at_ms, "partition", "offset");

-- Legal holds: while a row exists, nothing of that product ('' artifact) or artifact is purged.
CREATE TABLE IF NOT EXISTS legal_holds (
    product_id  text        NOT NULL,
    artifact_id text        NOT NULL DEFAULT '',
    reason      text        NOT NULL,
    placed_by   text        NOT NULL DEFAULT current_user,
    placed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (product_id, artifact_id)
);

-- One row per purge run (dry runs included): the summary compliance asks for.
CREATE TABLE IF NOT EXISTS purge_runs (
    run_id            bigserial   PRIMARY KEY,
    started_at        timestamptz NOT NULL DEFAULT now(),
    cutoff            timestamptz NOT NULL,
    window_seconds    bigint      NOT NULL,
    dry_run           boolean     NOT NULL,
    purged_versions   bigint      NOT NULL,
    purged_tombstones bigint      NOT NULL,
    purged_bytes      bigint      NOT NULL,
    held_versions     bigint      NOT NULL,
    run_by            text        NOT NULL DEFAULT session_user
);

-- What was purged (no content): reconcile treats these as expected absences.
CREATE TABLE IF NOT EXISTS purged_versions (
    product_id     text        NOT NULL,
    artifact_id    text        NOT NULL,
    version        bigint      NOT NULL,
    intent_id      text        NOT NULL,
    deleted        boolean     NOT NULL,
    content_sha256 text        NOT NULL,
    content_size   bigint      NOT NULL,
    stored_at      timestamptz NOT NULL,
    run_id         bigint      NOT NULL REFERENCES purge_runs (run_id),
    purged_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (product_id, artifact_id, version)
);

-- History stays immutable; the one exception is a DELETE made while bucket_purge() runs (it
-- sets the transaction-local flag). Roles without DELETE privilege never reach this trigger.
CREATE OR REPLACE FUNCTION artifact_versions_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('bucket.purging', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

DROP TRIGGER IF EXISTS audit_decisions_no_update_delete ON audit_decisions;
CREATE TRIGGER audit_decisions_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_decisions
    FOR EACH ROW EXECUTE FUNCTION artifact_versions_immutable();

-- Purges, in one transaction: prior versions superseded before the cutoff and every version of
-- an artifact whose tombstone is older than the cutoff, except under a legal hold. Records each
-- purged version and one summary row, which it returns. SECURITY DEFINER: callers need only
-- EXECUTE (granted to bucket_purger), never DELETE on history.
CREATE OR REPLACE FUNCTION bucket_purge(window_seconds bigint, dry_run boolean)
RETURNS purge_runs
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    cutoff timestamptz := now() - make_interval(secs => window_seconds);
    run purge_runs;
BEGIN
    IF window_seconds < 0 THEN
        RAISE EXCEPTION 'window_seconds must not be negative' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    CREATE TEMP TABLE IF NOT EXISTS bucket_purge_candidates (
        product_id text, artifact_id text, version bigint, intent_id text, deleted boolean,
        content_sha256 text, content_size bigint, stored_at timestamptz, held boolean
    ) ON COMMIT DROP;
    TRUNCATE bucket_purge_candidates;
    INSERT INTO bucket_purge_candidates
    SELECT c.product_id, c.artifact_id, c.version, c.intent_id, c.deleted, c.content_sha256,
           c.content_size, c.stored_at,
           EXISTS (SELECT 1 FROM legal_holds h WHERE h.product_id = c.product_id
                   AND h.artifact_id IN ('', c.artifact_id))
    FROM (
        SELECT v.*,
               lead(v.stored_at) OVER w AS superseded_at,
               max(v.version) OVER a AS latest_version,
               first_value(v.deleted) OVER (a ORDER BY v.version DESC) AS latest_deleted,
               first_value(v.stored_at) OVER (a ORDER BY v.version DESC) AS latest_stored_at
        FROM artifact_versions v
        WINDOW a AS (PARTITION BY v.product_id, v.artifact_id),
               w AS (a ORDER BY v.version)
    ) c
    WHERE (c.version < c.latest_version AND c.superseded_at < cutoff)
       OR (c.latest_deleted AND c.latest_stored_at < cutoff);

    INSERT INTO purge_runs (cutoff, window_seconds, dry_run, purged_versions, purged_tombstones,
                            purged_bytes, held_versions)
    SELECT cutoff, window_seconds, dry_run,
           count(*) FILTER (WHERE NOT held AND NOT deleted),
           count(*) FILTER (WHERE NOT held AND deleted),
           coalesce(sum(content_size) FILTER (WHERE NOT held), 0),
           count(*) FILTER (WHERE held)
    FROM bucket_purge_candidates
    RETURNING * INTO run;

    IF NOT dry_run THEN
        INSERT INTO purged_versions (product_id, artifact_id, version, intent_id, deleted,
                                     content_sha256, content_size, stored_at, run_id)
        SELECT product_id, artifact_id, version, intent_id, deleted, content_sha256,
               content_size, stored_at, run.run_id
        FROM bucket_purge_candidates WHERE NOT held
        ON CONFLICT DO NOTHING;
        PERFORM set_config('bucket.purging', 'on', true);
        DELETE FROM artifact_versions v USING bucket_purge_candidates c
        WHERE NOT c.held AND v.product_id = c.product_id AND v.artifact_id = c.artifact_id
          AND v.version = c.version;
        PERFORM set_config('bucket.purging', 'off', true);
    END IF;
    RETURN run;
END;
$$;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bucket_purger') THEN
        BEGIN
            -- No password here: `bucket sink migrate --purger-role-password file:…` sets it.
            CREATE ROLE bucket_purger LOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END;
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO bucket_purger', current_schema());
END;
$$;

REVOKE ALL ON FUNCTION bucket_purge(bigint, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION bucket_purge(bigint, boolean) TO bucket_purger;

REVOKE ALL ON audit_decisions, legal_holds, purge_runs, purged_versions FROM PUBLIC;
GRANT SELECT, INSERT ON audit_decisions TO bucket_sink;
GRANT SELECT ON purged_versions, purge_runs TO bucket_sink;
GRANT SELECT ON audit_decisions, legal_holds, purge_runs, purged_versions TO bucket_reader;
GRANT SELECT ON artifact_versions, legal_holds, purge_runs, purged_versions TO bucket_purger;
