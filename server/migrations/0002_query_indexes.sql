-- Indexes for the query API, the web UI and retention purges (built online, below).

-- A format-4 record resent after a lost acknowledgement must not be stored twice.
-- A database the old Python collector filled (deploy.sh) may already hold such resends: all
-- but the first copy of each are moved to records_duplicates (same columns; nothing is
-- deleted), so the index can be created. Rows with a NULL key never conflict and stay.
CREATE TABLE IF NOT EXISTS records_duplicates (LIKE records INCLUDING DEFAULTS);
WITH resent AS (
    SELECT id FROM (
        SELECT id, row_number() OVER (
            PARTITION BY machine_id, event_id, timestamp_client ORDER BY id) AS copy
        FROM records
        WHERE record_version = 4 AND machine_id IS NOT NULL AND event_id IS NOT NULL
          AND timestamp_client IS NOT NULL
    ) numbered
    WHERE copy > 1
), moved AS (
    DELETE FROM records r USING resent WHERE r.id = resent.id RETURNING r.*
)
INSERT INTO records_duplicates SELECT * FROM moved;

-- Built outside the transaction, without blocking INSERTs (server/README.md, "Migrations on a
-- live database"). Should a resend slip in between the move above and the unique index's
-- build, the build fails, the migration is not recorded, and the next `migrate` moves it too.
-- telem:concurrently
CREATE INDEX CONCURRENTLY IF NOT EXISTS records_timestamp_server_idx ON records (timestamp_server);
CREATE INDEX CONCURRENTLY IF NOT EXISTS records_classification_idx ON records (classification);
CREATE INDEX CONCURRENTLY IF NOT EXISTS records_machine_id_idx ON records (machine_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS records_build_idx ON records (build);
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS records_format4_resend_idx
    ON records (machine_id, event_id, timestamp_client)
    WHERE record_version = 4;
