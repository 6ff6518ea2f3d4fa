-- Pre-aggregation for the web UI's charts (Builds, Stats, Overview): the number of records per
-- value of classification, build, platform (host_type) and architecture, per hour received.
-- A statement-level trigger keeps it exact for every writer (the collector's batches,
-- retention purges, the legacy web UI, psql): one grouped upsert per INSERT, DELETE or UPDATE
-- statement. On 1,000,000 records an unfiltered chart reads a few thousand rows here instead
-- of scanning the records table (1-2 s).
CREATE TABLE IF NOT EXISTS record_counts (
    dimension text NOT NULL,   -- classification | build | platform | arch
    value text NOT NULL,       -- '(none)' for NULL
    hour bigint NOT NULL,      -- floor(timestamp_server / 3600) * 3600
    n bigint NOT NULL,
    PRIMARY KEY (dimension, value, hour)
);

CREATE OR REPLACE FUNCTION record_counts_trigger() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    changed text := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT 1 AS sign, * FROM new_rows'
        WHEN 'DELETE' THEN 'SELECT -1 AS sign, * FROM old_rows'
        ELSE 'SELECT -1 AS sign, * FROM old_rows UNION ALL SELECT 1, * FROM new_rows'
    END;
BEGIN
    -- Keys are upserted in order, so concurrent statements lock them in the same order.
    EXECUTE format($q$
        INSERT INTO record_counts AS c (dimension, value, hour, n)
        SELECT d.dimension, d.value, (floor(d.ts / 3600) * 3600)::int8, sum(d.sign)
        FROM (
            SELECT 'classification', classification::text, timestamp_server, sign FROM (%1$s) r
            UNION ALL SELECT 'build', build::text, timestamp_server, sign FROM (%1$s) r
            UNION ALL SELECT 'platform', coalesce(host_type::text, '(none)'), timestamp_server, sign
                FROM (%1$s) r
            UNION ALL SELECT 'arch', coalesce(architecture::text, '(none)'), timestamp_server, sign
                FROM (%1$s) r
        ) d(dimension, value, ts, sign)
        GROUP BY 1, 2, 3 HAVING sum(d.sign) <> 0 ORDER BY 1, 2, 3
        ON CONFLICT (dimension, value, hour) DO UPDATE SET n = c.n + EXCLUDED.n$q$, changed);
    IF TG_OP <> 'INSERT' THEN
        DELETE FROM record_counts WHERE n = 0;
    END IF;
    RETURN NULL;
END $fn$;

-- No record is written while the counts are filled.
LOCK TABLE records IN SHARE ROW EXCLUSIVE MODE;

DROP TRIGGER IF EXISTS record_counts_insert ON records;
DROP TRIGGER IF EXISTS record_counts_delete ON records;
DROP TRIGGER IF EXISTS record_counts_update ON records;
CREATE TRIGGER record_counts_insert AFTER INSERT ON records
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION record_counts_trigger();
CREATE TRIGGER record_counts_delete AFTER DELETE ON records
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION record_counts_trigger();
CREATE TRIGGER record_counts_update AFTER UPDATE ON records
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION record_counts_trigger();

CREATE OR REPLACE FUNCTION record_counts_truncate() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    TRUNCATE record_counts;
    RETURN NULL;
END $fn$;
DROP TRIGGER IF EXISTS record_counts_truncate ON records;
CREATE TRIGGER record_counts_truncate AFTER TRUNCATE ON records
    FOR EACH STATEMENT EXECUTE FUNCTION record_counts_truncate();

TRUNCATE record_counts;
INSERT INTO record_counts (dimension, value, hour, n)
SELECT d.dimension, d.value, (floor(d.ts / 3600) * 3600)::int8, count(*)
FROM (
    SELECT 'classification', classification::text, timestamp_server FROM records
    UNION ALL SELECT 'build', build::text, timestamp_server FROM records
    UNION ALL SELECT 'platform', coalesce(host_type::text, '(none)'), timestamp_server FROM records
    UNION ALL SELECT 'arch', coalesce(architecture::text, '(none)'), timestamp_server FROM records
) d(dimension, value, ts)
GROUP BY 1, 2, 3;
