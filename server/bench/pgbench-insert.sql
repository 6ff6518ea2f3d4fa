-- pgbench script: the same record as bench/post.lua, one transaction per INSERT. run.sh
-- rewrites the table (records or plain_records) and the rows per INSERT (generate_series).
INSERT INTO records (record_version, severity, classification, machine_id, timestamp_client,
    architecture, host_type, build, kernel_version, payload_version, system_name, board_name,
    cpu_model, bios_version, event_id, external, payload, timestamp_server, processed)
SELECT 4, 2, 'org.clearlinux/bench/pgbench', '05510b6cfbd41f2f7220d73f24a0a1ea', 1795758044,
    'x86_64', 'Intel Corporation|NUC7i5BNH|J31144-313', '31870', '6.18.44-fc-v657', 1,
    'clear-linux-os', 'NUC7i5BNB|Intel Corporation', 'Intel(R) Core(TM) i5-7260U CPU @ 2.20GHz',
    'BNKBL357.86A.0062.2018.0222.1644', md5(random()::text || clock_timestamp()::text || i), false,
    'bench payload from wrk' || chr(10), round(extract(epoch FROM clock_timestamp()), 6), false
FROM generate_series(1, 1) i;
