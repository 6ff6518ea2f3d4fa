#!/bin/bash
# Web UI benchmark (see server/README.md, "Web UI"): loads ROWS records (default 1,000,000)
# into its own PostgreSQL (stock settings), runs the release collector and times every UI page
# and the CSV of a filtered 10,000-record set with curl (best of RUNS, default 3).
# Not part of CI.
#
# Env: ROWS (1000000), RUNS (3), PGPORT (55442), COLPORT (58091),
#      BIN (collector binary; built with cargo --release when unset), KEEP=1 keeps the work dir.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROWS=${ROWS:-1000000}
RUNS=${RUNS:-3}
PGPORT=${PGPORT:-55442}
COLPORT=${COLPORT:-58091}

# shellcheck source=lib.sh
. "$HERE/lib.sh"
need_tools "apt-get install -y postgresql curl" psql curl
bench_setup telem-ui-bench

COLLECTOR_PID=
cleanup() {
  [ -n "$COLLECTOR_PID" ] && kill "$COLLECTOR_PID" 2>/dev/null && wait "$COLLECTOR_PID" 2>/dev/null || true
  as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -m fast stop >/dev/null 2>&1 || true
  [ "${KEEP:-0}" = 1 ] && echo "kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

echo "== PostgreSQL ($PGBIN, stock settings) on 127.0.0.1:$PGPORT" >&2
as_pg "$PGBIN/initdb" -D "$WORK/data" -U postgres --auth=trust -E UTF8 --no-locale >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/postgres.log" -w \
  -o "-k $WORK -p $PGPORT -c listen_addresses=127.0.0.1" start >/dev/null
PSQL=(psql -X -q -t -A -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PGPORT" -U postgres)
"${PSQL[@]}" -d postgres -c "CREATE DATABASE telemetry"

export TELEM_COLLECTOR_DATABASE_URL="postgres://postgres@127.0.0.1:$PGPORT/telemetry"
export TELEM_COLLECTOR_LISTEN="127.0.0.1:$COLPORT"
export TELEM_COLLECTOR_LOG_LEVEL=warn
"$BIN" --config /nonexistent migrate >&2
# Loaded like an existing database that gets migrations 4 (chart counts) and 5 (payload search
# index) afterwards, which also times them on a big table; one INSERT keeping a trigram index
# and the counts up to date row by row takes several times longer.
"${PSQL[@]}" -d telemetry -c "ALTER TABLE records DISABLE TRIGGER USER" \
  -c "DROP INDEX IF EXISTS records_payload_trgm_idx" \
  -c "DELETE FROM telem_collector_migrations WHERE version >= 4" >/dev/null

# Synthetic fleet: 5,000 machines, 120 builds, 40 classifications (one of them,
# org.clearlinux/bench/tenk, on every 100th record: the 10,000-record CSV set), 12 platforms,
# 3 architectures, payloads of 200-1,700 characters, reception times spread over 30 days,
# one record in 100,000 mentioning "needle".
echo "== loading $ROWS records" >&2
start=$(date +%s.%N)
"${PSQL[@]}" -d telemetry <<SQL
INSERT INTO records (architecture, bios_version, board_name, build, classification, cpu_model,
    event_id, external, host_type, kernel_version, machine_id, payload_version, record_version,
    severity, system_name, timestamp_client, timestamp_server, payload)
SELECT (ARRAY['x86_64','aarch64','i686'])[1 + i % 3],
       'bios' || (i % 7), 'board' || (i % 11),
       (31000 + (i::int8 * 7919) % 120)::text,
       CASE WHEN i % 100 = 0 THEN 'org.clearlinux/bench/tenk'
            ELSE (ARRAY['org.clearlinux','com.example','org.kernel','io.fleet'])[1 + i % 4]
                 || '/' || (ARRAY['crash','hello','swupd','oops','bert'])[1 + (i / 4) % 5]
                 || '/' || (ARRAY['kernel','user'])[1 + (i / 20) % 2] END,
       'cpu' || (i % 5), md5(i::text), false,
       'Vendor' || (i % 12) || '|Model' || (i % 12) || '|1',
       '6.1.' || (i % 50) || '-bench',
       md5((i % 5000)::text), 1, 4, 1 + (i::int8 * 31) % 4,
       (ARRAY['clear-linux-os','debian','fedora'])[1 + (i / 3) % 3],
       extract(epoch FROM now())::int8 - ($ROWS - i::int8) * (30 * 86400) / $ROWS - 60,
       extract(epoch FROM now())::int8 - ($ROWS - i::int8) * (30 * 86400) / $ROWS,
       CASE WHEN i % 100000 = 7 THEN 'found the needle here ' ELSE '' END
         || repeat('frame ' || md5(i::text) || ' at module_' || (i % 97) || E'\n', 5 + i % 40)
FROM generate_series(1, $ROWS) AS i;
VACUUM ANALYZE records;
SQL
printf '   loaded in %.1f s\n' "$(echo "$(date +%s.%N) - $start" | bc)" >&2
start=$(date +%s.%N)
"$BIN" --config /nonexistent migrate >&2
"${PSQL[@]}" -d telemetry -c "ANALYZE records" -c "ANALYZE record_counts"
printf '   migrations 4 to 6 on %s records: %.1f s; table + indexes: %s, payload index: %s, counts: %s rows\n' \
  "$ROWS" "$(echo "$(date +%s.%N) - $start" | bc)" \
  "$("${PSQL[@]}" -d telemetry -c "SELECT pg_size_pretty(pg_total_relation_size('records'))")" \
  "$("${PSQL[@]}" -d telemetry -c "SELECT coalesce(pg_size_pretty(pg_relation_size(to_regclass('records_payload_trgm_idx'))), 'none')")" \
  "$("${PSQL[@]}" -d telemetry -c "SELECT count(*) FROM record_counts")" >&2

"$BIN" --config /nonexistent serve 2>>"$WORK/collector.log" &
COLLECTOR_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$COLPORT/readyz" >/dev/null && break; sleep 0.1; done

MID=$(( ROWS / 2 ))
MACHINE=$("${PSQL[@]}" -d telemetry -c "SELECT md5('1234')")
PAGES=(
  "/"
  "/records?classification=org.clearlinux/crash/*"
  "/records?classification=*/oops/kernel"
  "/records?severity=4"
  "/records?build=31042"
  "/records?machine_id=$MACHINE"
  "/records?system_name=debian&severity=3"
  "/records?since=24h"
  "/records?from=2000-01-01&to=2000-01-02"
  "/records?q=needle"
  "/records?q=module_42"
  "/records?before=$MID"
  "/records?after=$MID"
  "/records?classification=org.clearlinux/bench/tenk&before=$MID"
  "/records/$MID"
  "/builds"
  "/builds?since=7d"
  "/stats"
  "/stats?classification=org.clearlinux/*"
  "/overview"
  "/records.csv?classification=org.clearlinux/bench/tenk"
)
echo "== first request and best of $RUNS, seconds (collector $("$BIN" --version), $ROWS records)" >&2
printf '%-62s %8s %8s %10s %s\n' page first best bytes status
for page in "${PAGES[@]}"; do
  best= first=
  for _ in $(seq "$RUNS"); do
    out=$(curl -s -o "$WORK/body" -w '%{time_total} %{size_download} %{http_code}' \
      "http://127.0.0.1:$COLPORT$page")
    read -r t size code <<<"$out"
    [ -n "$first" ] || first=$t
    if [ -z "$best" ] || [ "$(echo "$t < $best" | bc)" = 1 ]; then best=$t; fi
  done
  printf '%-62s %8.3f %8.3f %10s %s\n' "$page" "$first" "$best" "$size" "$code"
done
echo "   CSV records: $(grep -c "^[0-9]*,[0-9-]* [0-9:]* UTC," "$WORK/body")" >&2
