-- Serializes ensure_table calls across every Quiver process sharing this database (released at
-- the end of the transaction), so concurrent CREATE SCHEMA / CREATE INDEX never race.
SELECT pg_advisory_xact_lock(hashtext('quiver.offline_store.ddl'))
