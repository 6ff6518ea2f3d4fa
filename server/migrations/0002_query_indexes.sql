-- Indexes for the query API, the web UI and retention purges.
CREATE INDEX IF NOT EXISTS records_timestamp_server_idx ON records (timestamp_server);
CREATE INDEX IF NOT EXISTS records_classification_idx ON records (classification);
CREATE INDEX IF NOT EXISTS records_machine_id_idx ON records (machine_id);
CREATE INDEX IF NOT EXISTS records_build_idx ON records (build);

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
CREATE UNIQUE INDEX IF NOT EXISTS records_format4_resend_idx
    ON records (machine_id, event_id, timestamp_client)
    WHERE record_version = 4;
