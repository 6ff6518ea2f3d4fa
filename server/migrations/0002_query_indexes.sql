-- Indexes for the query API, the web UI and retention purges.
CREATE INDEX IF NOT EXISTS records_timestamp_server_idx ON records (timestamp_server);
CREATE INDEX IF NOT EXISTS records_classification_idx ON records (classification);
CREATE INDEX IF NOT EXISTS records_machine_id_idx ON records (machine_id);
CREATE INDEX IF NOT EXISTS records_build_idx ON records (build);

-- A format-4 record resent after a lost acknowledgement must not be stored twice.
CREATE UNIQUE INDEX IF NOT EXISTS records_format4_resend_idx
    ON records (machine_id, event_id, timestamp_client)
    WHERE record_version = 4;
