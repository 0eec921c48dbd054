-- 0004: indexes for decision receipts (the read API's /v1/products/{product}/decisions routes,
-- docs/api.md "Decision receipts"). Runs as the owner role, like 0001. The reader role already
-- has SELECT on audit_decisions (0002); indexes need no grant.
--
-- A receipt by intent id: the first decision of (product, intent id) in audit order.
CREATE INDEX IF NOT EXISTS audit_decisions_by_intent
    ON audit_decisions (product_id, intent_id)
    WHERE kind = 'DECISION';
-- A product's decisions page by audit partition and offset, each partition from its cursor
-- position (and the loose index scan that finds the product's partitions).
CREATE INDEX IF NOT EXISTS audit_decisions_by_product_partition
    ON audit_decisions (product_id, "partition", "offset")
    WHERE kind = 'DECISION';
