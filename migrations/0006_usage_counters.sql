-- 0006: per-product usage counters, so `GET /v1/products/{p}/usage` reads a few rows instead of
-- scanning every version of the product (docs/api.md). Runs as the owner role, like 0001.
--
-- One row per (product, source partition): sinks writing different partitions of one product
-- never wait on each other's counter row; the API sums a product's rows. Statement triggers
-- keep the counters in the same transaction as the rows they count:
--   - an insert adds the new version and, for the live figures, replaces its predecessor
--     (version - 1 of the same artifact) as the artifact's latest;
--   - a delete (only `bucket_purge` deletes, see 0002) removes stored versions; purge removes
--     superseded versions and artifacts whose latest version is a tombstone, neither of which
--     is live, so the live figures do not move.
-- The functions are SECURITY DEFINER: the sink role needs no grant on the counters.
CREATE TABLE IF NOT EXISTS product_usage (
    product_id       text    NOT NULL,
    source_partition integer NOT NULL,
    live_artifacts   bigint  NOT NULL DEFAULT 0,
    live_bytes       bigint  NOT NULL DEFAULT 0,
    stored_versions  bigint  NOT NULL DEFAULT 0,
    stored_bytes     bigint  NOT NULL DEFAULT 0,
    PRIMARY KEY (product_id, source_partition)
);

CREATE OR REPLACE FUNCTION bucket_usage_inserted() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO product_usage AS u (product_id, source_partition, live_artifacts, live_bytes,
                                    stored_versions, stored_bytes)
    SELECT n.product_id, n.source_partition,
           sum(CASE WHEN n.deleted THEN 0 ELSE 1 END
               - CASE WHEN p.deleted IS NULL OR p.deleted THEN 0 ELSE 1 END),
           sum(CASE WHEN n.deleted THEN 0 ELSE n.content_size END
               - CASE WHEN p.deleted IS NULL OR p.deleted THEN 0 ELSE p.content_size END),
           count(*), sum(n.content_size)
    FROM bucket_inserted_versions n
    LEFT JOIN artifact_versions p ON p.product_id = n.product_id
        AND p.artifact_id = n.artifact_id AND p.version = n.version - 1
    GROUP BY n.product_id, n.source_partition
    ON CONFLICT (product_id, source_partition) DO UPDATE SET
        live_artifacts = u.live_artifacts + EXCLUDED.live_artifacts,
        live_bytes = u.live_bytes + EXCLUDED.live_bytes,
        stored_versions = u.stored_versions + EXCLUDED.stored_versions,
        stored_bytes = u.stored_bytes + EXCLUDED.stored_bytes;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION bucket_usage_deleted() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO product_usage AS u (product_id, source_partition, stored_versions, stored_bytes)
    SELECT product_id, source_partition, -count(*), -sum(content_size)
    FROM bucket_deleted_versions
    GROUP BY product_id, source_partition
    ON CONFLICT (product_id, source_partition) DO UPDATE SET
        stored_versions = u.stored_versions + EXCLUDED.stored_versions,
        stored_bytes = u.stored_bytes + EXCLUDED.stored_bytes;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS artifact_versions_usage_inserted ON artifact_versions;
CREATE TRIGGER artifact_versions_usage_inserted AFTER INSERT ON artifact_versions
    REFERENCING NEW TABLE AS bucket_inserted_versions
    FOR EACH STATEMENT EXECUTE FUNCTION bucket_usage_inserted();
DROP TRIGGER IF EXISTS artifact_versions_usage_deleted ON artifact_versions;
CREATE TRIGGER artifact_versions_usage_deleted AFTER DELETE ON artifact_versions
    REFERENCING OLD TABLE AS bucket_deleted_versions
    FOR EACH STATEMENT EXECUTE FUNCTION bucket_usage_deleted();

-- The counters of what is already stored (the triggers above lock the table until commit, so
-- no insert slips between this count and them).
DELETE FROM product_usage;
INSERT INTO product_usage (product_id, source_partition, stored_versions, stored_bytes)
SELECT product_id, source_partition, count(*), sum(content_size)
FROM artifact_versions GROUP BY product_id, source_partition;
WITH latest AS (
    SELECT DISTINCT ON (product_id, artifact_id) product_id, source_partition, deleted,
           content_size
    FROM artifact_versions ORDER BY product_id, artifact_id, version DESC
)
INSERT INTO product_usage AS u (product_id, source_partition, live_artifacts, live_bytes)
SELECT product_id, source_partition, count(*), sum(content_size)
FROM latest WHERE NOT deleted GROUP BY product_id, source_partition
ON CONFLICT (product_id, source_partition) DO UPDATE SET
    live_artifacts = EXCLUDED.live_artifacts, live_bytes = EXCLUDED.live_bytes;

REVOKE ALL ON product_usage FROM PUBLIC;
GRANT SELECT ON product_usage TO bucket_sink, bucket_reader;
REVOKE ALL ON FUNCTION bucket_usage_inserted() FROM PUBLIC;
REVOKE ALL ON FUNCTION bucket_usage_deleted() FROM PUBLIC;
