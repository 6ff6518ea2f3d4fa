#!/bin/bash
# Load benchmark of telem-collector behind nginx (see server/README.md, "Benchmark").
#
# Starts its own PostgreSQL (stock settings: fsync and synchronous_commit on), the collector
# (release build) and nginx configured like templates/nginx.conf.tera, then runs wrk with
# bench/post.lua at 8 and 64 connections, pgbench's single-row INSERT at -c 8 -j 2 into the same
# table, and (for comparison) the collector with group commit disabled (batch_max_records = 1).
# Reports records/s, p50/p99 latency, non-2xx answers, the collector's peak RSS and checks that
# rows stored = 2xx answers (allowing for requests in flight when wrk stops).
#
# Env: DURATION (s, default 20), PGPORT (55432), COLPORT (58090), NGPORT (58080), NGINX_KEEPALIVE (16),
#      BENCH_UNIX=1 (collector listens on a unix socket, as `listen = "unix:..."` deploys it),
#      BIN (collector binary; built with cargo --release when unset), KEEP=1 keeps the work dir.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
DURATION=${DURATION:-20}
PGPORT=${PGPORT:-55432}
COLPORT=${COLPORT:-58090}
NGPORT=${NGPORT:-58080}
NGINX_KEEPALIVE=${NGINX_KEEPALIVE:-16}   # upstream keepalive; 16 as in templates/nginx.conf.tera
BENCH_UNIX=${BENCH_UNIX:-0}              # 1: nginx reaches the collector over a unix socket

# shellcheck source=lib.sh
. "$HERE/lib.sh"
need_tools "apt-get install -y wrk nginx-light postgresql" wrk nginx pgbench psql
bench_setup telem-bench
mkdir -p "$WORK/nginx"

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
  -o "-k $WORK -p $PGPORT -c listen_addresses=127.0.0.1" start >/dev/null
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
# CPU seconds (user + system) the collector used so far: contention-proof cost per record.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$COLLECTOR_PID/stat"; }
peak_rss_mb() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$COLLECTOR_PID/status"; }

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
    upstream telem_collector {
        server $UPSTREAM;
        keepalive $NGINX_KEEPALIVE;
    }
    server {
        listen 127.0.0.1:$NGPORT default_server;
        server_name bench.test;
        underscores_in_headers on;
        client_max_body_size 1m;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host \$host;
        proxy_set_header X-Real-IP \$remote_addr;
        proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto \$scheme;
        proxy_redirect off;
        proxy_connect_timeout 5s;
        proxy_read_timeout 30s;
        location = /v2/collector { proxy_pass http://telem_collector; }
        location = /v3/collector { proxy_pass http://telem_collector; }
        location = /healthz { proxy_pass http://telem_collector; }
        location / { proxy_pass http://telem_collector; }
    }
}
NGINX
nginx -t -q -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx"
nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx"

rows() { "${PSQL[@]}" -d telemetry -c "SELECT count(*) FROM records WHERE classification = '$1'"; }

RUN=0
# wrk_run LABEL CONNECTIONS THREADS: one wrk run through nginx; prints a report line.
wrk_run() {
  local label=$1 conns=$2 threads=$3
  RUN=$((RUN + 1))
  local before out reqs non2xx rps p50 p99 ok after stored
  before=$(rows org.clearlinux/bench/wrk)
  local ticks0; ticks0=$(cpu_ticks)
  out=$(wrk -t "$threads" -c "$conns" -d "${DURATION}s" --latency -s "$HERE/post.lua" \
        "http://127.0.0.1:$NGPORT/v2/collector" -- "$RUN")
  echo "$out" >"$WORK/wrk-$RUN.txt"
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}'); non2xx=${non2xx:-0}
  rps=$(echo "$out" | awk '/Requests\/sec/ {printf "%.0f", $2}')
  p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
  p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
  ok=$((reqs - non2xx))
  local us_per_record
  us_per_record=$(awk -v t="$(( $(cpu_ticks) - ticks0 ))" -v hz="$(getconf CLK_TCK)" -v n="$reqs" \
    'BEGIN {printf "%.0f", n ? t / hz * 1e6 / n : 0}')
  after=$(rows org.clearlinux/bench/wrk)
  stored=$((after - before))
  local verdict="OK"
  if [ "$stored" -lt "$ok" ] || [ "$stored" -gt $((ok + conns)) ]; then verdict="MISMATCH"; fi
  printf '%-24s %6s rec/s  p50 %-8s p99 %-8s non-2xx %-4s rss %s MB  cpu %s us/rec  rows %s = 2xx %s (+<=%s in flight): %s\n' \
    "$label" "$rps" "$p50" "$p99" "$non2xx" "$(peak_rss_mb)" "$us_per_record" "$stored" "$ok" "$conns" "$verdict"
  LAST_RPS=$rps
}

echo "== collector $("$BIN" --version) behind nginx, ${DURATION}s per run" >&2
start_collector
wrk_run "group commit, 8 conns" 8 2
wrk_run "group commit, 64 conns" 64 2
RPS64=$LAST_RPS
stop_collector

TELEM_COLLECTOR_BATCH_MAX_RECORDS=1 start_collector
wrk_run "no batching, 64 conns" 64 2
stop_collector

PGB=$(pgbench -n -c 8 -j 2 -T "$DURATION" -f "$HERE/pgbench-insert.sql" -h 127.0.0.1 -p "$PGPORT" -U postgres telemetry 2>&1)
echo "$PGB" >"$WORK/pgbench.txt"
TPS=$(echo "$PGB" | awk '/^tps/ {printf "%.0f", $3; exit}')
printf '%-28s %7s rows/s (one transaction per row)\n' "pgbench -c 8 -j 2" "$TPS"
awk -v a="$RPS64" -v b="$TPS" 'BEGIN {printf "ratio collector@64 / pgbench: %.2fx\n", a / b}'

# What the web UI's search index and chart counts cost ingestion: the same 64-connection run
# without the payload trigram index (migration 5) and the record_counts triggers (migration 4).
"${PSQL[@]}" -d telemetry -c "DROP INDEX IF EXISTS records_payload_trgm_idx" \
  -c "ALTER TABLE records DISABLE TRIGGER USER" >/dev/null
start_collector
wrk_run "64 conns, no UI indexes" 64 2
stop_collector
awk -v a="$RPS64" -v b="$LAST_RPS" 'BEGIN {printf "with / without the UI indexes: %.2fx\n", a / b}'
