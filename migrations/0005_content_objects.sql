-- 0005: content in object storage (docs/decisions/0018). Runs as the owner role, like 0001.
--
-- A version's content lives in exactly one place: the `content` column (the PostgreSQL
-- backend, small deployments) or the object named by `content_object` (the key of
-- `<prefix>/content/<product>/sha256/<digest>` in the S3 bucket the sink and the API are
-- configured with). Tombstones have neither. The sink writes the object before the row that
-- references it, under a shared advisory lock that purge and `bucket sink gc-objects` take
-- exclusively before they delete an unreferenced object, so no row ever names a missing object.
ALTER TABLE artifact_versions ADD COLUMN IF NOT EXISTS content_object text NULL;
ALTER TABLE artifact_versions DROP CONSTRAINT IF EXISTS artifact_versions_content_in_one_place;
ALTER TABLE artifact_versions ADD CONSTRAINT artifact_versions_content_in_one_place
    CHECK (content IS NULL OR content_object IS NULL);
-- "Does any row still reference this product's object?" (purge, the orphan collector).
CREATE INDEX IF NOT EXISTS artifact_versions_by_object
    ON artifact_versions (product_id, content_sha256) WHERE content_object IS NOT NULL;

-- History stays immutable (0001, 0002) with one more exception: `bucket sink migrate-content`
-- (owner role) moves a version's content from its row into an object it has uploaded and
-- checked, with the transaction-local flag `bucket.moving_content` on. Nothing else of the row
-- may change, and a version already in an object cannot be moved again.
CREATE OR REPLACE FUNCTION artifact_versions_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('bucket.purging', true) = 'on' THEN
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'artifact_versions'
       AND current_setting('bucket.moving_content', true) = 'on' THEN
        IF OLD.content IS NOT NULL AND OLD.content_object IS NULL
           AND NEW.content IS NULL AND NEW.content_object IS NOT NULL
           AND (NEW.product_id, NEW.artifact_id, NEW.version, NEW.intent_id, NEW.artifact_class,
                NEW.owner_id, NEW.requester_id, NEW.integration_id, NEW.operation, NEW.deleted,
                NEW.content_sha256, NEW.content_size, NEW.content_type, NEW.metadata,
                NEW.purpose, NEW.client_time, NEW.client_time_ms, NEW.decided_at,
                NEW.decided_at_ms, NEW.policy_version, NEW.source_partition, NEW.source_offset,
                NEW.stored_at)
               IS NOT DISTINCT FROM
               (OLD.product_id, OLD.artifact_id, OLD.version, OLD.intent_id, OLD.artifact_class,
                OLD.owner_id, OLD.requester_id, OLD.integration_id, OLD.operation, OLD.deleted,
                OLD.content_sha256, OLD.content_size, OLD.content_type, OLD.metadata,
                OLD.purpose, OLD.client_time, OLD.client_time_ms, OLD.decided_at,
                OLD.decided_at_ms, OLD.policy_version, OLD.source_partition, OLD.source_offset,
                OLD.stored_at) THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
