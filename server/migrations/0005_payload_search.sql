-- The web UI's payload search (`q`, a case-insensitive substring: payload ILIKE '%q%') from a
-- trigram index instead of a scan of every payload (10 s for a rare word in 1,000,000 records).
-- pg_trgm ships with PostgreSQL (Debian: in the server package; EL: postgresql-contrib) and is
-- a trusted extension since PostgreSQL 13, so the database owner may create it. Where it is
-- missing or may not be created, searches keep working by scanning, and this says so.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        RAISE WARNING 'pg_trgm is not installed: payload searches scan every record';
        RETURN;
    END IF;
    BEGIN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
    EXCEPTION WHEN insufficient_privilege OR feature_not_supported THEN
        RAISE WARNING 'cannot create extension pg_trgm (%): payload searches scan every record',
            SQLERRM;
        RETURN;
    END;
END $$;

-- Built outside the transaction, without blocking INSERTs, where pg_trgm is installed.
-- telem:concurrently
-- telem:if-extension pg_trgm
CREATE INDEX CONCURRENTLY IF NOT EXISTS records_payload_trgm_idx
    ON records USING gin (payload gin_trgm_ops);
