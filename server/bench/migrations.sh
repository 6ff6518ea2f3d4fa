#!/bin/bash
# Migration benchmark (see server/README.md, "Migrations on a live database"): loads ROWS
# synthetic records (default 1,000,000; ui.sh's fleet) into its own PostgreSQL at schema
# version 1, then applies migrations 2..7 one at a time as `telem-collector migrate` does
# (MIGRATIONS dir, default server/migrations: the transactional part in one transaction, the
# statements after `-- telem:concurrently` one by one outside it) while pgbench inserts one
# record, then rests 50 ms, over and over (the still-running collector). Prints, per
# migration: wall time, the lock modes the migrator held on `records` (sampled every 0.1 s)
# and the worst latency of the INSERTs that started during it.
# Not part of CI.
#
# Env: ROWS (1000000), PGPORT (55443), MIGRATIONS (dir), KEEP=1 keeps the work dir,
#      COLLECTOR=BIN runs `BIN migrate` instead (one line for all, per-migration times logged),
#      DATA=DIR reuses a loaded data directory (copied) instead of loading.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROWS=${ROWS:-1000000}
PGPORT=${PGPORT:-55443}
MIGRATIONS=${MIGRATIONS:-$HERE/../migrations}
BIN=none
# shellcheck source=lib.sh
. "$HERE/lib.sh"
need_tools "apt-get install -y postgresql" psql pgbench
bench_setup telem-migrations-bench

PGBENCH_PID= SAMPLER_PID=
cleanup() {
  [ -n "$PGBENCH_PID" ] && kill "$PGBENCH_PID" 2>/dev/null || true
  [ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null || true
  as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -m fast stop >/dev/null 2>&1 || true
  [ "${KEEP:-0}" = 1 ] && echo "kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

PSQL=(psql -X -q -t -A -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PGPORT" -U postgres)
if [ -n "${DATA:-}" ]; then
  cp -a "$DATA" "$WORK/data"
else
  as_pg "$PGBIN/initdb" -D "$WORK/data" -U postgres --auth=trust -E UTF8 --no-locale >/dev/null
fi
as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/postgres.log" -w \
  -o "-k $WORK -p $PGPORT -c listen_addresses=127.0.0.1" start >/dev/null
if [ -z "${DATA:-}" ]; then
  "${PSQL[@]}" -d postgres -c "CREATE DATABASE telemetry"
  "${PSQL[@]}" -d telemetry -f "$MIGRATIONS/0001_upstream_schema.sql"
  "${PSQL[@]}" -d telemetry -c "CREATE TABLE telem_collector_migrations (version integer PRIMARY KEY,
      name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());
      INSERT INTO telem_collector_migrations VALUES (1, 'upstream_schema')"
  echo "== loading $ROWS records" >&2
  start=$(date +%s.%N)
  sed -n '/^"\${PSQL\[@\]}" -d telemetry <<SQL$/,/^SQL$/p' "$HERE/ui.sh" | sed '1d;$d' \
    | sed "s/\$ROWS/$ROWS/g" | "${PSQL[@]}" -d telemetry
  printf '   loaded in %.1f s\n' "$(echo "$(date +%s.%N) - $start" | bc)" >&2
  if [ "${KEEP:-0}" = 1 ]; then
    as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -m fast stop >/dev/null
    cp -a "$WORK/data" "$WORK/data.loaded"
    as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/postgres.log" -w \
      -o "-k $WORK -p $PGPORT -c listen_addresses=127.0.0.1" start >/dev/null
  fi
fi

# The running collector: one INSERT, then 50 ms of rest, over and over (the logged latency
# less those 50 ms is the INSERT's own time, waits for locks included).
{ grep -v '^--' "$HERE/pgbench-insert.sql"; echo '\sleep 50 ms'; } >"$WORK/insert.sql"
chmod 644 "$WORK/insert.sql"
(cd "$WORK" && exec pgbench -n -h 127.0.0.1 -p "$PGPORT" -U postgres -c 1 -T 36000 \
  -l --log-prefix="$WORK/pgbench" -f "$WORK/insert.sql" telemetry >"$WORK/pgbench.out" 2>&1) &
PGBENCH_PID=$!
# Lock modes held on records by the migrator (application_name migrator).
(while :; do
  "${PSQL[@]}" -d telemetry -c "SELECT extract(epoch FROM clock_timestamp()), string_agg(DISTINCT l.mode, '+')
    FROM pg_locks l JOIN pg_stat_activity a USING (pid)
    WHERE a.application_name = 'migrator' AND l.relation = 'records'::regclass AND l.granted" \
    2>/dev/null || true
  sleep 0.1
done >"$WORK/locks.log") &
SAMPLER_PID=$!
sleep 3

MIG=(env PGAPPNAME=migrator "${PSQL[@]}" -d telemetry)
: >"$WORK/windows"
if [ -n "${COLLECTOR:-}" ]; then
  # The real thing: `telem-collector migrate` (each migration's time in its log).
  start=$(date +%s.%N)
  TELEM_COLLECTOR_DATABASE_URL="postgres://postgres@127.0.0.1:$PGPORT/telemetry?application_name=migrator" \
    TELEM_COLLECTOR_LOG_LEVEL=info "$COLLECTOR" --config /nonexistent migrate >&2
  echo "telem-collector_migrate $start $(date +%s.%N)" >>"$WORK/windows"
fi
for file in "$MIGRATIONS"/000[2-9]_*.sql; do
  [ -n "${COLLECTOR:-}" ] && break
  version=$((10#$(basename "$file" | cut -c1-4)))
  start=$(date +%s.%N)
  {
    echo "BEGIN; SELECT pg_advisory_xact_lock(7291634);"
    sed '/^-- telem:concurrently/,$d' "$file"
    echo "INSERT INTO telem_collector_migrations (version, name) VALUES ($version, 'bench')"
    echo "  ON CONFLICT DO NOTHING; COMMIT;"
  } | "${MIG[@]}" >/dev/null
  if grep -q '^-- telem:concurrently' "$file"; then
    guard=$(sed -n 's/^-- telem:if-extension \(.*\)$/\1/p' "$file")
    if [ -z "$guard" ] || [ "$("${PSQL[@]}" -d telemetry -c "SELECT count(*) FROM pg_extension WHERE extname = '$guard'")" = 1 ]; then
      sed '1,/^-- telem:concurrently/d' "$file" | grep -v '^--' | tr '\n' ' ' | tr ';' '\n' \
        | while read -r stmt; do [ -n "$stmt" ] && "${MIG[@]}" -c "$stmt"; done
    fi
  fi
  end=$(date +%s.%N)
  echo "$(basename "$file" .sql) $start $end" >>"$WORK/windows"
done
sleep 12 # pgbench writes its log in 4 kB blocks: let the last window's lines out
kill "$PGBENCH_PID"; wait "$PGBENCH_PID" 2>/dev/null || true; PGBENCH_PID=
printf '%-34s %8s  %-44s %s\n' migration seconds "lock on records (sampled)" "worst insert ms"
while read -r name start end; do
  locks=$(awk -v s="$start" -v e="$end" -F'|' '$1 >= s && $1 <= e && $2 != "" {split($2, m, "+"); for (i in m) seen[m[i]] = 1}
    END {for (k in seen) out = out (out ? "+" : "") k; print (out ? out : "-")}' "$WORK/locks.log")
  worst=$(cat "$WORK"/pgbench.* | awk -v s="$start" -v e="$end" \
    '{t = $5 + $6 / 1e6; x = $3 / 1e6} t - x >= s && t - x <= e && x - 0.05 > w {w = x - 0.05}
     END {printf "%.1f", w * 1000}')
  printf '%-34s %8.1f  %-44s %s\n' "$name" "$(echo "$end - $start" | bc)" "$locks" "$worst"
done <"$WORK/windows"
echo "inserts during the run: $(cat "$WORK"/pgbench.* | grep -c . || true) logged" >&2
