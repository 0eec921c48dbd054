-- First start of the compose PostgreSQL: the schema registry's own role and database (Apicurio
-- stores its schemas here). The bucket roles (bucket_sink, bucket_reader, bucket_purger) are
-- created by `bucket sink migrate` (migrations/), run by the init service, which also sets their
-- passwords (BUCKET_PG_*_ROLE_PASSWORD).
CREATE ROLE apicurio LOGIN PASSWORD 'apicurio';
CREATE DATABASE apicurio OWNER apicurio;
