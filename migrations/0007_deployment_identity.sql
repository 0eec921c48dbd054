-- 0007: this database's identity, so one object-store prefix serves one database (ADR 0018).
-- Runs as the owner role, like 0001.
--
-- `bucket sink gc-objects` and purge delete every content object under the prefix that this
-- database does not reference; a second database sharing the prefix would lose its content.
-- The sink writes this id into `<prefix>/deployment` the first time it uses a prefix, and every
-- command that deletes objects refuses a prefix whose marker names another database.
CREATE TABLE IF NOT EXISTS deployment_identity (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO deployment_identity (id)
SELECT gen_random_uuid() WHERE NOT EXISTS (SELECT 1 FROM deployment_identity);
REVOKE ALL ON deployment_identity FROM PUBLIC;
GRANT SELECT ON deployment_identity TO bucket_sink, bucket_reader, bucket_purger;
