-- 0003: storage enforces no uniqueness of intent ids (docs/decisions/0006). Runs as the owner
-- role, like 0001.
--
-- Every constraint the database enforces must follow from a rule the gate enforces; otherwise
-- the gate accepts a version (and tells the producer so) that the sink then cannot store.
-- 0001 made `artifact_versions.intent_id` UNIQUE across all products. The gate's replay rule is
-- narrower on two counts (docs/reason-codes.md, REPLAYED_INTENT):
--   - it is per product: two products may each send an intent with the same id, and both are
--     accepted;
--   - it is bounded: a product's intent id is remembered for `replay_window` decisions of its
--     partition, so an id reused after that is a new intent and may be accepted again.
-- Under the old constraint the second such version was refused (SQLSTATE 23505) and
-- quarantined in `sink_undecodable`: accepted but never stored. Neither "UNIQUE (product_id,
-- intent_id)" follows from the bounded rule, so the uniqueness goes and a plain index keeps the
-- lookups by intent fast. What storage still enforces, one row per (product, artifact, version),
-- follows from the gate's version rule, which is unbounded.
--
-- Versions quarantined under the old constraint are not moved back by this migration:
-- `bucket sink reconcile` lists them as missing_in_storage, and docs/runbook.md ("Accepted
-- version quarantined") says how to store them (a replay of bucket.accepted is idempotent).
ALTER TABLE artifact_versions DROP CONSTRAINT IF EXISTS artifact_versions_intent_id_key;
CREATE INDEX IF NOT EXISTS artifact_versions_by_intent
    ON artifact_versions (product_id, intent_id);
