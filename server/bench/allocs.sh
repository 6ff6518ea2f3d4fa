#!/bin/bash
# Allocations and instructions per record request, measured with valgrind (not in CI; see
# server/README.md, "Benchmark"). Starts its own PostgreSQL, runs the release collector under
# `valgrind --tool=callgrind` twice: idle, and answering N records (bench/post.lua's record,
# sent one after another on one keep-alive connection by allocs-client.py), each run as long as
# the other. Prints instructions and calls into the allocator (mimalloc's mi_malloc*,
# mi_zalloc*, mi_realloc*: the collector's allocations) per request: (loaded - idle) / N.
#
# Env: N (requests, default 300), PGPORT (55433), COLPORT (58091), BIN (collector binary;
#      built with cargo --release when unset), KEEP=1 keeps the work dir.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
N=${N:-300}
PGPORT=${PGPORT:-55433}
COLPORT=${COLPORT:-58091}

# shellcheck source=lib.sh
. "$HERE/lib.sh"
need_tools "apt-get install -y valgrind postgresql python3" valgrind callgrind_annotate psql python3
bench_setup telem-allocs

COLLECTOR_PID=
cleanup() {
  [ -n "$COLLECTOR_PID" ] && kill "$COLLECTOR_PID" 2>/dev/null && wait "$COLLECTOR_PID" 2>/dev/null || true
  as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -m fast stop >/dev/null 2>&1 || true
  [ "${KEEP:-0}" = 1 ] && echo "kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

as_pg "$PGBIN/initdb" -D "$WORK/data" -U postgres --auth=trust -E UTF8 --no-locale >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/postgres.log" -w \
  -o "-k $WORK -p $PGPORT -c listen_addresses=127.0.0.1 -c synchronous_commit=off" start >/dev/null
psql -X -q -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres -c "CREATE DATABASE telemetry"
export TELEM_COLLECTOR_DATABASE_URL="postgres://postgres@127.0.0.1:$PGPORT/telemetry"
export TELEM_COLLECTOR_LISTEN="127.0.0.1:$COLPORT"
export TELEM_COLLECTOR_LOG_LEVEL=warn
"$BIN" --config /nonexistent migrate >&2

# measure NAME REQUESTS SECONDS: the collector under callgrind for SECONDS (at least),
# REQUESTS records sent meanwhile; prints "allocations instructions seconds".
measure() {
  local name=$1 requests=$2 seconds=$3 started
  valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind-$name.out" "$BIN" --config /nonexistent serve \
    2>"$WORK/valgrind-$name.log" &
  COLLECTOR_PID=$!
  for _ in $(seq 300); do
    curl -fsS "http://127.0.0.1:$COLPORT/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  started=$(date +%s.%N)
  [ "$requests" -gt 0 ] && python3 "$HERE/allocs-client.py" 127.0.0.1 "$COLPORT" "$requests"
  # The idle run lasts as long as the loaded one did (timers, the fold, the allocator janitor).
  while awk -v s="$started" -v now="$(date +%s.%N)" -v d="$seconds" 'BEGIN {exit !(now - s < d)}'; do
    sleep 0.2
  done
  local elapsed; elapsed=$(awk -v s="$started" -v now="$(date +%s.%N)" 'BEGIN {printf "%.1f", now - s}')
  kill "$COLLECTOR_PID"; wait "$COLLECTOR_PID" || true; COLLECTOR_PID=
  python3 - "$WORK/callgrind-$name.out" "$elapsed" <<'PY'
import re, sys
names, calls, total, target, current = {}, 0, 0, None, ""
callers = {}
ALLOC = re.compile(r"^_?mi_(heap_)?(malloc|zalloc|realloc|calloc)")
for line in open(sys.argv[1], errors="replace"):
    if line.startswith("cfn="):
        m = re.match(r"cfn=\((\d+)\)(?: (.*))?", line.strip())
        if m.group(2):
            names[m.group(1)] = m.group(2)
        target = names.get(m.group(1), "")
    elif line.startswith("fn="):
        m = re.match(r"fn=\((\d+)\)(?: (.*))?", line.strip())
        if m and m.group(2):
            names[m.group(1)] = m.group(2)
        current = names.get(m.group(1), "") if m else ""
    elif line.startswith("calls=") and target is not None:
        if ALLOC.match(target) and not ALLOC.match(current):
            n = int(line.split("=")[1].split()[0])
            calls += n
            callers[current] = callers.get(current, 0) + n
        target = None
    elif line.startswith("summary:") or line.startswith("totals:"):
        total = int(line.split()[1])
with open(sys.argv[1] + ".callers", "w") as out:
    for name, n in sorted(callers.items(), key=lambda c: -c[1])[:40]:
        print(n, name, file=out)
print(calls, total, sys.argv[2])
PY
}

echo "== $("$BIN" --version) under valgrind callgrind, $N records" >&2
read -r a1 i1 t1 <<<"$(measure loaded "$N" 0)"
read -r a0 i0 t0 <<<"$(measure idle 0 "$t1")"
stored=$(psql -X -q -t -A -h 127.0.0.1 -p "$PGPORT" -U postgres -d telemetry -c "SELECT count(*) FROM records")
[ "$stored" = "$N" ] || { echo "stored $stored records, sent $N" >&2; exit 1; }
awk -v a0="$a0" -v a1="$a1" -v i0="$i0" -v i1="$i1" -v n="$N" -v t="$t1" 'BEGIN {
  printf "per request (%d records in %.0f s, idle run subtracted): %.1f allocations, %.0f instructions\n",
    n, t, (a1 - a0) / n, (i1 - i0) / n }'
