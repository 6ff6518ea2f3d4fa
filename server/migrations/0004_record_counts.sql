-- Pre-aggregation for the web UI's charts (Builds, Stats, Overview): the number of records per
-- day received and classification, in all ('records') and by build, platform (host_type) and
-- architecture. A statement-level trigger keeps it exact for every writer (the collector's
-- batches, retention purges, the legacy web UI, psql): one grouped upsert per INSERT, DELETE
-- or UPDATE statement. On 1,000,000 records a chart, unfiltered or filtered by classification
-- (exact or glob), reads these counts instead of scanning the records (1-4 s).
CREATE TABLE IF NOT EXISTS record_counts (
    dimension text NOT NULL,       -- records | build | platform | arch
    classification text NOT NULL,
    value text NOT NULL,           -- '' for records; '(none)' for NULL
    day bigint NOT NULL,           -- floor(timestamp_server / 86400) * 86400
    n bigint NOT NULL,
    PRIMARY KEY (dimension, classification, value, day)
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
        INSERT INTO record_counts AS c (dimension, classification, value, day, n)
        SELECT d.dimension, d.classification, d.value, (floor(d.ts / 86400) * 86400)::int8,
               sum(d.sign)
        FROM (
            SELECT 'records', classification::text, '', timestamp_server, sign FROM (%1$s) r
            UNION ALL SELECT 'build', classification::text, build::text, timestamp_server, sign
                FROM (%1$s) r
            UNION ALL SELECT 'platform', classification::text, coalesce(host_type::text, '(none)'),
                timestamp_server, sign FROM (%1$s) r
            UNION ALL SELECT 'arch', classification::text, coalesce(architecture::text, '(none)'),
                timestamp_server, sign FROM (%1$s) r
        ) d(dimension, classification, value, ts, sign)
        GROUP BY 1, 2, 3, 4 HAVING sum(d.sign) <> 0 ORDER BY 1, 2, 3, 4
        ON CONFLICT (dimension, classification, value, day) DO UPDATE SET n = c.n + EXCLUDED.n$q$,
        changed);
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
INSERT INTO record_counts (dimension, classification, value, day, n)
SELECT d.dimension, d.classification, d.value, (floor(d.ts / 86400) * 86400)::int8, count(*)
FROM (
    SELECT 'records', classification::text, '', timestamp_server FROM records
    UNION ALL SELECT 'build', classification::text, build::text, timestamp_server FROM records
    UNION ALL SELECT 'platform', classification::text, coalesce(host_type::text, '(none)'),
        timestamp_server FROM records
    UNION ALL SELECT 'arch', classification::text, coalesce(architecture::text, '(none)'),
        timestamp_server FROM records
) d(dimension, classification, value, ts)
GROUP BY 1, 2, 3, 4;
