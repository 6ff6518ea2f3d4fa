#!/bin/bash
# Load benchmark of telem-collector behind nginx (see server/README.md, "Benchmark").
#
# One run, one machine, everything side by side (absolute figures move with the machine's
# load; the ratios within one run are what to compare, so every line quotes the load average):
#   - its own PostgreSQL, stock settings (fsync and synchronous_commit on);
#   - nginx rendered from templates/nginx.conf.tera (render-site.py; only `listen` is changed to
#     a local port), the release collector behind it, wrk with bench/post.lua;
#   - pgbench, one INSERT per transaction and 100-row INSERTs, at the same client counts, into
#     the collector's `records` (its indexes and triggers) and into `plain_records`, a table of
#     the same columns with only its primary key (upstream's own table);
#   - for every run the CPU split: collector, PostgreSQL (every backend), nginx, the load
#     generator, in µs per record, and peak RSS of the collector;
#   - the collector with the chart counts' triggers and the payload index dropped (what the
#     UI's derived data costs ingestion) and with batching off (`batch_max_records = 1`);
#   - ratios: collector / pgbench on the plain table, with / without the UI's derived data.
# Checks rows stored = 2xx answers (allowing for requests in flight when wrk stops).
#
# Env: DURATION (s, default 20), PGPORT (55432), COLPORT (58090), NGPORT (58080),
#      BENCH_UNIX=1 (collector listens on a unix socket, as `listen = "unix:..."` deploys it),
#      WRITERS (writer_connections for the collector runs; the collector's default when unset),
#      WRITERS_SWEEP="1 2 4 8" also measures the collector at 8 and 64 connections with each of these
#      writer_connections (batches committing at once),
#      PERF=1 samples the collector with perf during the 64-connection run (kernel/user split),
#      INDEX_COSTS=1 also measures the collector at 64 connections with each secondary index
#      dropped in turn (the README's index table),
#      TRGM_OPTIONS="fastupdate = off" (or "gin_pending_list_limit = 256") sets storage options of
#      the payload trigram index (its GIN pending list),
#      BIN (collector binary; built with cargo --release when unset), KEEP=1 keeps the work dir,
#      CHECKPOINT_FIRST=0 does not start each run with a CHECKPOINT (then a checkpoint the
#      previous runs' WAL began may end inside a run and set its p99).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
DURATION=${DURATION:-20}
PGPORT=${PGPORT:-55432}
COLPORT=${COLPORT:-58090}
NGPORT=${NGPORT:-58080}
BENCH_UNIX=${BENCH_UNIX:-0}
INDEX_COSTS=${INDEX_COSTS:-0}

# shellcheck source=lib.sh
. "$HERE/lib.sh"
need_tools "apt-get install -y wrk nginx-light postgresql python3" wrk nginx pgbench psql python3
bench_setup telem-bench
mkdir -p "$WORK/nginx"
[ -n "${WRITERS:-}" ] && export TELEM_COLLECTOR_WRITER_CONNECTIONS=$WRITERS

COLLECTOR_PID=
cleanup() {
  [ -n "$COLLECTOR_PID" ] && kill "$COLLECTOR_PID" 2>/dev/null && wait "$COLLECTOR_PID" 2>/dev/null || true
  [ -f "$WORK/nginx/nginx.pid" ] && kill -QUIT "$(cat "$WORK/nginx/nginx.pid")" 2>/dev/null || true
  as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -m fast stop >/dev/null 2>&1 || true
  [ "${KEEP:-0}" = 1 ] && echo "kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

echo "== PostgreSQL ($PGBIN, stock settings) on 127.0.0.1:$PGPORT" >&2
as_pg "$PGBIN/initdb" -D "$WORK/data" -U postgres --auth=trust -E UTF8 --no-locale >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/postgres.log" -w \
  -o "-k $WORK -p $PGPORT -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
PG_PID=$(head -1 "$WORK/data/postmaster.pid")
PSQL=(psql -X -q -t -A -h 127.0.0.1 -p "$PGPORT" -U postgres)
"${PSQL[@]}" -d postgres -c "CREATE DATABASE telemetry"
"${PSQL[@]}" -d postgres -c "SHOW fsync" -c "SHOW synchronous_commit" | paste -sd' ' | sed 's/^/   fsync, synchronous_commit: /' >&2

export TELEM_COLLECTOR_DATABASE_URL="postgres://postgres@127.0.0.1:$PGPORT/telemetry"
if [ "$BENCH_UNIX" = 1 ]; then
  export TELEM_COLLECTOR_LISTEN="unix:$WORK/collector.sock"
  UPSTREAM="unix:$WORK/collector.sock"
  HEALTH=(curl -fsS --unix-socket "$WORK/collector.sock" http://collector/healthz)
else
  export TELEM_COLLECTOR_LISTEN="127.0.0.1:$COLPORT"
  UPSTREAM="127.0.0.1:$COLPORT"
  HEALTH=(curl -fsS "http://127.0.0.1:$COLPORT/healthz")
fi
export TELEM_COLLECTOR_LOG_LEVEL=warn
"$BIN" --config /nonexistent migrate >&2
if [ -n "${TRGM_OPTIONS:-}" ]; then
  # Storage options of the payload trigram index (its GIN pending list), to compare.
  psql -X -q -h 127.0.0.1 -p "$PGPORT" -U postgres -d telemetry \
    -c "ALTER INDEX records_payload_trgm_idx SET ($TRGM_OPTIONS)" >&2
fi

# upstream's own table: the same columns, its primary key, no secondary index, no trigger.
"${PSQL[@]}" -d telemetry -c "CREATE SEQUENCE plain_records_id_seq" \
  -c "CREATE TABLE plain_records (LIKE records INCLUDING DEFAULTS)" \
  -c "ALTER TABLE plain_records ALTER id SET DEFAULT nextval('plain_records_id_seq'), ADD PRIMARY KEY (id)"

start_collector() {
  "$BIN" --config /nonexistent serve 2>>"$WORK/collector.log" &
  COLLECTOR_PID=$!
  for _ in $(seq 100); do
    "${HEALTH[@]}" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "collector did not start" >&2; cat "$WORK/collector.log" >&2; exit 1
}
stop_collector() { kill "$COLLECTOR_PID"; wait "$COLLECTOR_PID" || true; COLLECTOR_PID=; }
peak_rss_mb() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$COLLECTOR_PID/status"; }

# CPU ticks (user + system) of a process, its live children and the children it reaped: a
# backend or worker that exited during a run still counts (in its parent's cutime/cstime).
tree_ticks() {
  local pid=$1 total=0 child
  [ -r "/proc/$pid/stat" ] || { echo 0; return; }
  total=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$pid/stat")
  for child in $(cat "/proc/$pid/task/"*/children 2>/dev/null); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$child/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
pg_children() { cat "/proc/$PG_PID/task/"*/children 2>/dev/null | wc -w; }
NGINX_PID=
# "collector postgres nginx" ticks now.
split_ticks() {
  local c=0
  [ -n "$COLLECTOR_PID" ] && c=$(awk '{print $14 + $15}' "/proc/$COLLECTOR_PID/stat")
  echo "$c $(tree_ticks "$PG_PID") $(tree_ticks "$NGINX_PID")"
}
HZ=$(getconf CLK_TCK)
load() { cut -d' ' -f1 /proc/loadavg; }
# us_per TICKS RECORDS: CPU µs per record.
us_per() { awk -v t="$1" -v hz="$HZ" -v n="$2" 'BEGIN {printf "%.0f", n ? t / hz * 1e6 / n : 0}'; }
# CPU seconds this shell's reaped children used (the `times` builtin's second line), into
# CHILD_SECS: wrk's, once it has exited. `times` must run in this shell, not in $(...).
child_secs() {
  times >"$WORK/times"
  CHILD_SECS=$(tail -1 "$WORK/times" | awk '{u=$1; s=$2; sub(/m/, " ", u); sub(/s/, "", u); sub(/m/, " ", s); sub(/s/, "", s); split(u, a, " "); split(s, b, " "); printf "%.3f", a[1]*60+a[2]+b[1]*60+b[2]}')
}

python3 "$HERE/render-site.py" "$HERE/../../templates/nginx.conf.tera" domain=bench.test \
  ui_auth=false tls=false tls_only=false webapp_enabled=false "collector.listen=$UPSTREAM" |
  sed -e "s/listen 80 default_server;/listen 127.0.0.1:$NGPORT default_server;/" \
      -e '/listen \[::\]:80/d' >"$WORK/nginx/site.conf"
grep -q "listen 127.0.0.1:$NGPORT" "$WORK/nginx/site.conf" || { echo "the template's listen line changed" >&2; exit 1; }
cat >"$WORK/nginx/nginx.conf" <<NGINX
worker_processes auto;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    include $WORK/nginx/site.conf;
}
NGINX
nginx -t -q -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx"
nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx"
for _ in $(seq 50); do [ -s "$WORK/nginx/nginx.pid" ] && break; sleep 0.1; done
NGINX_PID=$(cat "$WORK/nginx/nginx.pid")
echo "   nginx: templates/nginx.conf.tera ($(grep -c . "$WORK/nginx/site.conf") lines, $(grep -o 'keepalive [0-9]*' "$WORK/nginx/site.conf"))" >&2

# Rows of a table, counted by a scan of the table (an index switched off for a run misses rows).
rows() { "${PSQL[@]}" -d telemetry -c "SET enable_indexscan = off" -c "SET enable_bitmapscan = off" -c "SET enable_indexonlyscan = off" -c "SELECT count(*) FROM $1"; }

# Each run starts right after a CHECKPOINT (CHECKPOINT_FIRST=0: not), so no run gets the end
# (the fsyncs) of a checkpoint the previous runs' WAL started: with stock settings those come
# every 5-30 s here and put 30-60 ms into whichever run's p99 they fall in. `ckpt +N` in a
# line: checkpoints that still began during the run (WAL-triggered: max_wal_size reached).
checkpoints() { "${PSQL[@]}" -d telemetry -c "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter"; }
fresh_checkpoint() {
  [ "${CHECKPOINT_FIRST:-1}" = 1 ] && "${PSQL[@]}" -d telemetry -c CHECKPOINT >/dev/null
  CKPT0=$(checkpoints)
}
ckpts_since() { echo "ckpt +$(( $(checkpoints) - CKPT0 ))"; }

declare -A RESULT
RUN=0
# wrk_run KEY LABEL CONNECTIONS: one wrk run through nginx; prints a report line, keeps
# records/s in RESULT[KEY].
wrk_run() {
  local key=$1 label=$2 conns=$3
  RUN=$((RUN + 1))
  local before out reqs non2xx rps p50 p99 ok after stored t0 t1 gen0 gen1 load0
  before=$(rows records)
  fresh_checkpoint
  load0=$(load)
  child_secs; gen0=$CHILD_SECS
  t0=$(split_ticks)
  local perf_pid=
  if [ "${PERF:-0}" = 1 ] && [ "$key" = c64 ]; then
    perf record -q -F 499 -g -p "$COLLECTOR_PID" -o "$WORK/perf.data" -- sleep $((DURATION / 2)) 2>/dev/null &
    perf_pid=$!
  fi
  out=$(wrk -t 2 -c "$conns" -d "${DURATION}s" --latency -s "$HERE/post.lua" \
        "http://127.0.0.1:$NGPORT/v2/collector" -- "$RUN")
  t1=$(split_ticks)
  child_secs; gen1=$CHILD_SECS
  echo "$out" >"$WORK/wrk-$RUN.txt"
  [ -n "$perf_pid" ] && { wait "$perf_pid" || true; }
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}'); non2xx=${non2xx:-0}
  rps=$(echo "$out" | awk '/Requests\/sec/ {printf "%.0f", $2}')
  p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
  p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
  ok=$((reqs - non2xx))
  local ckpt; ckpt=$(ckpts_since)
  after=$(rows records)
  stored=$((after - before))
  local verdict="OK"
  if [ "$stored" -lt "$ok" ] || [ "$stored" -gt $((ok + conns)) ]; then verdict="MISMATCH"; fi
  read -r c0 p0 n0 <<<"$t0"; read -r c1 p1 n1 <<<"$t1"
  local gen_us
  gen_us=$(awk -v a="$gen0" -v b="$gen1" -v n="$reqs" 'BEGIN {printf "%.0f", n ? (b - a) * 1e6 / n : 0}')
  printf '%-30s %6s rec/s  p50 %-8s p99 %-8s non-2xx %-3s rss %5s MB  us/rec: collector %4s postgres %4s nginx %4s wrk %4s  rows %s = 2xx %s (+<=%s): %s  %s  load %s\n' \
    "$label" "$rps" "$p50" "$p99" "$non2xx" "$(peak_rss_mb)" "$(us_per $((c1 - c0)) "$reqs")" \
    "$(us_per $((p1 - p0)) "$reqs")" "$(us_per $((n1 - n0)) "$reqs")" "$gen_us" "$stored" "$ok" \
    "$conns" "$verdict" "$ckpt" "$load0"
  if [ -n "$perf_pid" ]; then
    perf report -i "$WORK/perf.data" --no-children -g none --sort dso --stdio 2>/dev/null |
      grep -E '^ +[0-9.]+%' | head -4 | sed 's/^/   collector CPU samples by object: /'
  fi
  RESULT[$key]=$rps
}

# pgbench_run KEY TABLE CLIENTS ROWS: one pgbench run (ROWS rows per INSERT, one transaction
# each) into TABLE; keeps rows/s in RESULT[KEY].
pgbench_run() {
  local key=$1 table=$2 clients=$3 per=$4 script out tps t0 t1 load0 rowsps n
  script="$WORK/pgbench-$table-$per.sql"
  sed -e "s/INTO records/INTO $table/" -e "s/FROM generate_series(1, 1)/FROM generate_series(1, $per)/" \
    "$HERE/pgbench-insert.sql" >"$script"
  fresh_checkpoint
  load0=$(load)
  t0=$(split_ticks)
  local backends; backends=$(pg_children)
  out=$(pgbench -n -c "$clients" -j 2 -T "$DURATION" -f "$script" -h 127.0.0.1 -p "$PGPORT" -U postgres telemetry 2>&1)
  # pgbench's backends count once the postmaster reaped them (its cutime): wait for that.
  for _ in $(seq 100); do [ "$(pg_children)" -le "$backends" ] && break; sleep 0.05; done
  t1=$(split_ticks)
  echo "$out" >"$WORK/pgbench-$key.txt"
  tps=$(echo "$out" | awk '/^tps/ {print $3; exit}')
  rowsps=$(awk -v t="$tps" -v r="$per" 'BEGIN {printf "%.0f", t * r}')
  n=$(awk -v r="$rowsps" -v d="$DURATION" 'BEGIN {printf "%.0f", r * d}')
  read -r _ p0 _ <<<"$t0"; read -r _ p1 _ <<<"$t1"
  printf '%-30s %6s rows/s (%s per INSERT)  us/row: postgres %4s  %s  load %s\n' \
    "pgbench -c $clients $table" "$rowsps" "$per" "$(us_per $((p1 - p0)) "$n")" "$(ckpts_since)" "$load0"
  RESULT[$key]=$rowsps
}

ratio() { awk -v a="${RESULT[$2]}" -v b="${RESULT[$3]}" -v l="$1" 'BEGIN {printf "  %-58s %.2fx\n", l, b ? a / b : 0}'; }

echo "== $("$BIN" --version) behind nginx, ${DURATION}s per run, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
pgbench_run pg1_plain_8 plain_records 8 1
pgbench_run pg1_plain_64 plain_records 64 1
pgbench_run pg1_rec_64 records 64 1
pgbench_run pg100_plain_8 plain_records 8 100
pgbench_run pg100_rec_8 records 8 100
start_collector
wrk_run c8 "collector, 8 conns" 8
wrk_run c64 "collector, 64 conns" 64
stop_collector

# What the web UI's derived data costs ingestion: the chart counts' triggers (migrations 4
# and 6) and the payload trigram index (migration 5) dropped.
"${PSQL[@]}" -d telemetry -c "ALTER TABLE records DISABLE TRIGGER USER" \
  -c "ALTER INDEX records_payload_trgm_idx RENAME TO records_payload_trgm_idx_off" >/dev/null
"${PSQL[@]}" -d telemetry -c "UPDATE pg_index SET indisready = false, indisvalid = false WHERE indexrelid = 'records_payload_trgm_idx_off'::regclass" >/dev/null
start_collector
wrk_run c64_bare "64 conns, no counts nor trgm" 64
stop_collector
if [ "$INDEX_COSTS" = 1 ]; then
  # Each index alone off (neither maintained on insert nor used: indisready, indisvalid
  # false), the others on.
  for idx in records_payload_trgm_idx_off records_timestamp_server_idx records_classification_id_idx \
      records_build_id_idx records_machine_id_id_idx; do
    "${PSQL[@]}" -d telemetry -c "ALTER TABLE records ENABLE TRIGGER USER" \
      -c "UPDATE pg_index SET indisready = (indexrelid <> '$idx'::regclass), indisvalid = (indexrelid <> '$idx'::regclass) WHERE indrelid = 'records'::regclass AND NOT indisprimary AND NOT indisunique" >/dev/null
    start_collector
    wrk_run "c64_no_$idx" "64 conns, without ${idx#records_}" 64
    stop_collector
  done
  "${PSQL[@]}" -d telemetry -c "UPDATE pg_index SET indisready = true, indisvalid = true WHERE indrelid = 'records'::regclass" \
    -c "ALTER TABLE records DISABLE TRIGGER USER" >/dev/null
  start_collector
  wrk_run c64_no_counts "64 conns, without counts triggers" 64
  stop_collector
fi
"${PSQL[@]}" -d telemetry -c "ALTER TABLE records ENABLE TRIGGER USER" \
  -c "UPDATE pg_index SET indisready = true, indisvalid = true WHERE indrelid = 'records'::regclass" >/dev/null

TELEM_COLLECTOR_BATCH_MAX_RECORDS=1 start_collector
wrk_run c64_nobatch "no batching, 64 conns" 64
stop_collector

# The commit pipeline's depth: the collector at 8 and 64 connections with each
# writer_connections.
for w in ${WRITERS_SWEEP:-}; do
  TELEM_COLLECTOR_WRITER_CONNECTIONS=$w start_collector
  wrk_run "c8_w$w" "8 conns, writer_connections $w" 8
  wrk_run "c64_w$w" "64 conns, writer_connections $w" 64
  stop_collector
done

echo "== ratios (same run)"
ratio "collector@64 / pgbench single-row @64 into plain_records" c64 pg1_plain_64
ratio "collector@8 / pgbench single-row @8 into plain_records" c8 pg1_plain_8
ratio "collector@64 / pgbench 100-row @8 into plain_records" c64 pg100_plain_8
ratio "with / without the UI's derived data (counts, trgm)" c64 c64_bare
ratio "pgbench single-row @64: records / plain_records" pg1_rec_64 pg1_plain_64
ratio "pgbench 100-row @8: records / plain_records" pg100_rec_8 pg100_plain_8
ratio "group commit / no batching @64" c64 c64_nobatch
if [ "$INDEX_COSTS" = 1 ]; then
  for k in "${!RESULT[@]}"; do
    case $k in c64_no_*) ratio "with / without ${k#c64_no_}" c64 "$k" ;; esac
  done
fi
