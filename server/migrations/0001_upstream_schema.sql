-- The upstream telemetryui schema at alembic revision ac1c5921bf2f, created only where missing
-- so an existing upstream database is adopted as it is.
CREATE TABLE IF NOT EXISTS guilty (
    id serial PRIMARY KEY,
    function varchar,
    module varchar,
    comment varchar,
    hide boolean NOT NULL DEFAULT false,
    UNIQUE (function, module)
);

CREATE TABLE IF NOT EXISTS guilty_blacklisted (
    id serial PRIMARY KEY,
    function varchar,
    module varchar
);

CREATE TABLE IF NOT EXISTS records (
    id serial PRIMARY KEY,
    architecture varchar,
    bios_version varchar,
    board_name varchar,
    build varchar NOT NULL,
    classification varchar NOT NULL,
    cpu_model varchar,
    event_id varchar,
    external boolean,
    host_type varchar,
    kernel_version varchar,
    machine_id varchar,
    payload_version integer,
    record_version integer,
    severity integer,
    system_name varchar,
    timestamp_client numeric,
    timestamp_server numeric NOT NULL,
    payload text NOT NULL,
    processed boolean DEFAULT false,
    guilty_id integer REFERENCES guilty (id)
);

-- Stamp the alembic revision so the upstream web UI accepts this database.
CREATE TABLE IF NOT EXISTS alembic_version (
    version_num varchar(32) NOT NULL PRIMARY KEY
);
INSERT INTO alembic_version (version_num)
SELECT 'ac1c5921bf2f' WHERE NOT EXISTS (SELECT 1 FROM alembic_version);
