# Shared set-up of the benchmarks (sourced by run.sh and ui.sh): tool checks, the PostgreSQL
# server binaries, the release collector and a work directory PostgreSQL may write to.

# need_tools HINT TOOL...: exit 2 naming the first missing tool and how to install it.
need_tools() {
  local hint=$1; shift
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "missing $tool: $hint" >&2; exit 2; }
  done
}

# Sets PGBIN (newest /usr/lib/postgresql/*/bin), BIN (the collector; built with cargo
# --release unless BIN is set) and WORK (a fresh directory, owned by postgres when root).
bench_setup() {
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -x "$PGBIN/initdb" ] || { echo "PostgreSQL server binaries not found (apt-get install -y postgresql)" >&2; exit 2; }
  if [ -z "${BIN:-}" ]; then
    local target=${CARGO_TARGET_DIR:-$HERE/../../target}
    (cd "$HERE/.." && cargo build --release -p telem-collector >&2)
    BIN=$target/release/telem-collector
  fi
  WORK=$(mktemp -d "/tmp/$1.XXXXXX")
  chmod 755 "$WORK"
  [ "$(id -u)" = 0 ] && chown postgres: "$WORK"
  return 0
}

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
