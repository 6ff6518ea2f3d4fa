#!/bin/bash
# COPY against the collector's multi-row `unnest` INSERT (not in CI; server/README.md,
# "Benchmark"). Its own PostgreSQL, the collector's schema (migrations, triggers, indexes);
# BATCHES batches of ROWS records (bench/post.lua's record), one transaction each, from one
# psql session with synchronous_commit off (so the figures are the database's CPU, not WAL
# flushes): `EXECUTE` of a prepared `INSERT INTO records (...) SELECT * FROM
# unnest($1::int4[], ...) ON CONFLICT ... DO NOTHING RETURNING id` (the writer's statement,
# parameters as text here, binary in the collector); `COPY records (...) FROM STDIN` (the
# bare COPY: no resend dedupe, no ids, so not enough for the writer); and what the writer
# would need with COPY: BEGIN, COPY into a temporary table, INSERT ... SELECT ... ON CONFLICT
# ... RETURNING id, COMMIT. Every kind runs twice, interleaved; prints µs per row of the
# backend's CPU (user + system) and the load average.
#
# Env: BATCHES (2000), ROWS (16), PGPORT (55434), BIN (collector binary; built with cargo
#      --release when unset), KEEP=1 keeps the work dir.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
BATCHES=${BATCHES:-2000}
ROWS=${ROWS:-16}
PGPORT=${PGPORT:-55434}

# shellcheck source=lib.sh
. "$HERE/lib.sh"
need_tools "apt-get install -y postgresql python3" psql python3
bench_setup telem-copy
cleanup() {
  as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -m fast stop >/dev/null 2>&1 || true
  [ "${KEEP:-0}" = 1 ] && echo "kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT
as_pg "$PGBIN/initdb" -D "$WORK/data" -U postgres --auth=trust -E UTF8 --no-locale >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/postgres.log" -w \
  -o "-k $WORK -p $PGPORT -c listen_addresses=127.0.0.1" start >/dev/null
PSQL=(psql -X -q -t -A -h 127.0.0.1 -p "$PGPORT" -U postgres)
"${PSQL[@]}" -d postgres -c "CREATE DATABASE telemetry"
TELEM_COLLECTOR_DATABASE_URL="postgres://postgres@127.0.0.1:$PGPORT/telemetry" \
  "$BIN" --config /nonexistent migrate >&2

python3 - "$WORK" "$BATCHES" "$ROWS" <<'PY'
import sys
work, batches, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cols = ("record_version severity classification machine_id timestamp_client architecture "
        "host_type build kernel_version payload_version system_name board_name cpu_model "
        "bios_version event_id external payload timestamp_server processed").split()
types = ("int4 int4 text text int8 text text text text int4 text text text text text bool "
         "text numeric bool").split()
def row(b, i):
    return ["4", "2", "org.clearlinux/bench/copy", "05510b6cfbd41f2f7220d73f24a0a1ea",
            "1795758044", "x86_64", "Intel Corporation|NUC7i5BNH|J31144-313", "31870",
            "6.18.44-fc-v657", "1", "clear-linux-os", "NUC7i5BNB|Intel Corporation",
            "Intel(R) Core(TM) i5-7260U CPU @ 2.20GHz", "BNKBL357.86A.0062.2018.0222.1644",
            f"{b:016x}{i:016x}", "f", "bench payload from wrk\\n", "1795758044.123456", "f"]
head = ("SET synchronous_commit = off;\nSELECT pg_backend_pid() AS pid \\gset\n"
        "\\setenv BENCH_BACKEND :pid\n")
tail = "\\! awk '{print $14 + $15}' /proc/$BENCH_BACKEND/stat > %s/ticks-%%s\n" % work
with open(f"{work}/copy.sql", "w") as f:
    f.write(head)
    for b in range(batches):
        f.write(f"COPY records ({', '.join(cols)}) FROM STDIN;\n")
        for i in range(rows):
            f.write("\t".join(row(b, i)) + "\n")
        f.write("\\.\n")
    f.write(tail % "copy")
# What the writer would need with COPY: the batch into a temporary table, then one INSERT ...
# SELECT with the resend dedupe and the ids, in one transaction.
with open(f"{work}/copytemp.sql", "w") as f:
    f.write(head)
    f.write(f"CREATE TEMP TABLE batch ON COMMIT DELETE ROWS AS SELECT {', '.join(cols)} "
            "FROM records WITH NO DATA;\n")
    for b in range(batches):
        f.write("BEGIN;\n")
        f.write(f"COPY batch ({', '.join(cols)}) FROM STDIN;\n")
        for i in range(rows):
            f.write("\t".join(row(b + 2 * 10**6, i)) + "\n")
        f.write("\\.\n")
        f.write(f"INSERT INTO records ({', '.join(cols)}) SELECT {', '.join(cols)} FROM batch "
                "ON CONFLICT (machine_id, event_id, timestamp_client) WHERE record_version = 4 "
                "DO NOTHING RETURNING id \\g /dev/null\n")
        f.write("COMMIT;\n")
    f.write(tail % "copytemp")
def arr(values):
    return "'{" + ",".join('"' + v.replace("\\n", "\\\\n") + '"' for v in values) + "}'"
with open(f"{work}/unnest.sql", "w") as f:
    f.write(head)
    params = ", ".join(f"${n + 1}::{t}[]" for n, t in enumerate(types))
    f.write(f"PREPARE ins AS INSERT INTO records ({', '.join(cols)}) "
            f"SELECT * FROM unnest({params}) "
            "ON CONFLICT (machine_id, event_id, timestamp_client) WHERE record_version = 4 "
            "DO NOTHING RETURNING id;\n")
    for b in range(batches + 1000000):
        if b >= batches:
            break
        rs = [row(b + 10**6, i) for i in range(rows)]
        f.write("EXECUTE ins(" + ", ".join(arr([r[c] for r in rs]) for c in range(len(cols))) + ") \\g /dev/null\n")
    f.write(tail % "unnest")
PY

HZ=$(getconf CLK_TCK)
for round in 1 2; do
  for kind in unnest copy copytemp; do
    "${PSQL[@]}" -d telemetry -c "TRUNCATE records" >/dev/null
    load=$(cut -d' ' -f1 /proc/loadavg)
    start=$(date +%s.%N)
    "${PSQL[@]}" -d telemetry -v ON_ERROR_STOP=1 -f "$WORK/$kind.sql" >/dev/null
    wall=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {print e - s}')
    stored=$("${PSQL[@]}" -d telemetry -c "SELECT count(*) FROM records")
    [ "$stored" = $((BATCHES * ROWS)) ] || { echo "$kind stored $stored rows" >&2; exit 1; }
    awk -v t="$(cat "$WORK/ticks-$kind")" -v hz="$HZ" -v n="$stored" -v w="$wall" -v k="$kind" -v l="$load" -v r="$ROWS" \
      'BEGIN {printf "round '"$round"' %-6s %d batches of %d rows: backend CPU %.1f us/row, wall %.1f us/row  load %s\n", k, n / r, r, t / hz * 1e6 / n, w * 1e6 / n, l}'
  done
done
