-- The chart counts off the commit path. Migration 4's triggers upserted the same
-- record_counts rows (same classification and day) for every batch, so concurrent batches
-- queued on those rows' locks. Now every INSERT, DELETE or UPDATE statement on records only
-- appends its grouped change to record_counts_delta (insert-only, no index, no row another
-- statement locks), and record_counts_fold() moves the appended changes into record_counts in
-- one transaction (the collector calls it every second; anyone may). Readers add the deltas
-- not folded yet, so every count stays exact for every writer (the collector's batches,
-- retention purges, psql) whether or not anything folds.
CREATE TABLE IF NOT EXISTS record_counts_delta (
    classification text NOT NULL,
    build text NOT NULL,
    platform text NOT NULL,        -- host_type, '(none)' for NULL
    arch text NOT NULL,            -- architecture, '(none)' for NULL
    day bigint NOT NULL,           -- floor(timestamp_server / 86400) * 86400
    n bigint NOT NULL              -- records added (negative: removed)
);
-- Rows live about a second; vacuum the dead ones by count, not by a share of a tiny table.
ALTER TABLE record_counts_delta SET (autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 10000);

-- One row per (classification, build, platform, arch, day) a statement changed: a batch of
-- one client's kind of records appends one row. Static SQL, so PL/pgSQL plans it once per
-- connection.
CREATE OR REPLACE FUNCTION record_counts_insert_delta() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO record_counts_delta (classification, build, platform, arch, day, n)
    SELECT classification, build, coalesce(host_type, '(none)'), coalesce(architecture, '(none)'),
           (floor(timestamp_server / 86400) * 86400)::int8, count(*)
    FROM new_rows GROUP BY 1, 2, 3, 4, 5;
    RETURN NULL;
END $fn$;

CREATE OR REPLACE FUNCTION record_counts_delete_delta() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO record_counts_delta (classification, build, platform, arch, day, n)
    SELECT classification, build, coalesce(host_type, '(none)'), coalesce(architecture, '(none)'),
           (floor(timestamp_server / 86400) * 86400)::int8, -count(*)
    FROM old_rows GROUP BY 1, 2, 3, 4, 5;
    RETURN NULL;
END $fn$;

CREATE OR REPLACE FUNCTION record_counts_update_delta() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO record_counts_delta (classification, build, platform, arch, day, n)
    SELECT classification, build, platform, arch, day, sum(n)
    FROM (
        SELECT classification, build, coalesce(host_type, '(none)'),
               coalesce(architecture, '(none)'), (floor(timestamp_server / 86400) * 86400)::int8,
               -1
        FROM old_rows
        UNION ALL
        SELECT classification, build, coalesce(host_type, '(none)'),
               coalesce(architecture, '(none)'), (floor(timestamp_server / 86400) * 86400)::int8,
               1
        FROM new_rows
    ) d(classification, build, platform, arch, day, n)
    GROUP BY 1, 2, 3, 4, 5 HAVING sum(n) <> 0;
    RETURN NULL;
END $fn$;

CREATE OR REPLACE FUNCTION record_counts_truncate() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    TRUNCATE record_counts, record_counts_delta;
    RETURN NULL;
END $fn$;

-- Moves every committed delta into record_counts (the four dimensions of each), drops rows
-- that reach zero, and returns how many delta rows it folded. One folder at a time (a second
-- caller returns 0 at once); the moved deltas and the new counts commit together, so a reader
-- sees a delta either unfolded or folded, never both or neither.
CREATE OR REPLACE FUNCTION record_counts_fold() RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
    folded bigint;
    zeros bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(7291635) THEN
        RETURN 0;
    END IF;
    WITH moved AS (
        DELETE FROM record_counts_delta RETURNING *
    ), keyed AS (
        SELECT 'records' AS dimension, classification, '' AS value, day, n FROM moved
        UNION ALL SELECT 'build', classification, build, day, n FROM moved
        UNION ALL SELECT 'platform', classification, platform, day, n FROM moved
        UNION ALL SELECT 'arch', classification, arch, day, n FROM moved
    ), summed AS (
        SELECT dimension, classification, value, day, sum(n)::int8 AS n
        FROM keyed GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0
    ), upserted AS (
        INSERT INTO record_counts AS c (dimension, classification, value, day, n)
        SELECT * FROM summed ORDER BY 1, 2, 3, 4
        ON CONFLICT (dimension, classification, value, day) DO UPDATE SET n = c.n + EXCLUDED.n
        RETURNING c.n
    )
    SELECT (SELECT count(*) FROM moved), (SELECT count(*) FROM upserted WHERE n = 0)
    INTO folded, zeros;
    IF zeros > 0 THEN
        DELETE FROM record_counts WHERE n = 0;
    END IF;
    RETURN folded;
END $fn$;

DROP TRIGGER IF EXISTS record_counts_insert ON records;
DROP TRIGGER IF EXISTS record_counts_delete ON records;
DROP TRIGGER IF EXISTS record_counts_update ON records;
CREATE TRIGGER record_counts_insert AFTER INSERT ON records
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION record_counts_insert_delta();
CREATE TRIGGER record_counts_delete AFTER DELETE ON records
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION record_counts_delete_delta();
CREATE TRIGGER record_counts_update AFTER UPDATE ON records
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION record_counts_update_delta();
DROP FUNCTION IF EXISTS record_counts_trigger();
