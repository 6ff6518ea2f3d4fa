# Common code of the recording shims (sourced by every script in bin/). See README.md.
#
# Every shim appends its argv as one tab-separated line to $SHIM_LOG, keeps its state under
# $SHIM_STATE, and makes the real effect happen on the Debian sandbox (apt-get from the offline
# cache, initdb/pg_ctl, nginx, the collector). Whatever a shim runs gets the plain system PATH,
# so the guards in bin/ (apt-get, dpkg, ...) only ever catch calls made by telem-deploy itself.

SHIM_HOME=${SHIM_HOME:-/opt/telem-shims}
SHIM_LOG_DIR=/var/log/telem-shims
SHIM_LOG=$SHIM_LOG_DIR/calls.log            # one line per shim call: name<TAB>arg<TAB>arg...
SHIM_EFFECTS=$SHIM_LOG_DIR/effects.log      # what the shims did, with the output of real tools
SHIM_FORBIDDEN=$SHIM_LOG_DIR/forbidden.log  # calls of real package tools that bypassed the shims
SHIM_STATE=/var/lib/telem-shims             # distro, installed packages, enabled units, ...
SHIM_RUN=/run/telem-shims                   # pid files of the daemons started by systemctl
SYS_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

SHIM_NAME=${SHIM_NAME:-$(basename "$0")}

shim_record() {
    [ "${SHIM_QUIET:-}" != 1 ] || return 0 # a shim calling another one (not telem-deploy)
    mkdir -p "$SHIM_LOG_DIR"
    local line=$SHIM_NAME a
    for a in "$@"; do
        a=${a//\\/\\\\}
        a=${a//$'\t'/\\t}
        a=${a//$'\n'/\\n}
        line+=$'\t'$a
    done
    printf '%s\n' "$line" >>"$SHIM_LOG"
}

# Record the call, then continue with a clean PATH (the shims dir removed).
shim_init() {
    shim_record "$@"
    export PATH=$SYS_PATH
    unset TELEM_DB_PASSWORD SHIM_QUIET
    cd / || exit 1
    DISTRO=$(cat "$SHIM_STATE/distro" 2>/dev/null || true)
    [ -n "$DISTRO" ] || { echo "$SHIM_NAME (shim): $SHIM_STATE/distro is missing: run $SHIM_HOME/setup first" >&2; exit 90; }
}

effect() { printf '%s: %s\n' "$SHIM_NAME" "$*" >>"$SHIM_EFFECTS"; }

# --- the release's catalogue (catalog/<release>.txt, chosen by setup) -------------------------
# One package or bundle a line: NAME [key=value ...] (units=, files=, requires=, socket=, ...);
# `module NAME:STREAM ...` lines list dnf module streams. The shims know exactly these names,
# so a name the real distribution does not have fails here as it would there.
cat_file() { echo "$SHIM_HOME/catalog/$(cat "$SHIM_STATE/release").txt"; }
cat_names() { grep -vE '^(#|module |[[:space:]]*$)' "$(cat_file)" | awk '{print $1}'; }
cat_has() { cat_names | grep -qxF -- "$1"; }
cat_attr() { # NAME KEY: the value (comma-separated lists stay as they are)
    awk -v n="$1" -v k="$2" '$1 == n { for (i = 2; i <= NF; i++) if (index($i, k "=") == 1) print substr($i, length(k) + 2) }' "$(cat_file)"
}
cat_list() { cat_attr "$1" "$2" | tr ',' '\n' | grep -v '^$'; }
cat_streams() { awk -v m="$1" '$1 == "module" { for (i = 2; i <= NF; i++) if (index($i, m ":") == 1) print substr($i, length(m) + 2) }' "$(cat_file)"; }
# Units provided by the installed packages (and what they require).
installed_units() {
    local p
    while read -r p; do
        [ -n "$p" ] && cat_list "$p" units
    done <"$(pkg_db)" 2>/dev/null | sort -u
}

# run CMD... with its output in the effects log; on failure its tail goes to stderr. The output
# goes through a file, never a pipe: a daemon that keeps its stdio must not block anybody.
run_logged() {
    local tmp rc
    effect "run: $*"
    tmp=$(mktemp /tmp/.telem-shim.XXXXXX)
    "$@" >"$tmp" 2>&1 </dev/null
    rc=$?
    cat "$tmp" >>"$SHIM_EFFECTS"
    if [ $rc != 0 ]; then
        effect "exit $rc: $*"
        tail -n 15 "$tmp" >&2
    fi
    rm -f "$tmp"
    return $rc
}

# real_apt ARGS...: the real apt-get. TELEM_SHIM_APT lets it (and the dpkg it runs) past the
# guards that setup put in place of the real tools; the -o Telem::Shim=NAME marks it in a trace,
# the /bin/true afterwards marks the end of the window in which dpkg may run.
real_apt() {
    local rc
    run_logged env -i PATH=$SYS_PATH HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
        TELEM_SHIM_APT="$SHIM_NAME" /usr/bin/apt-get -o "Telem::Shim=$SHIM_NAME" -q -y \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
    rc=$?
    /bin/true telem-shim-apt-done
    return $rc
}

# --- installed packages / bundles ------------------------------------------------------------
pkg_db() { echo "$SHIM_STATE/installed"; }
pkg_installed() { grep -qxF -- "$1" "$(pkg_db)" 2>/dev/null; }
pkg_add() { pkg_installed "$1" || echo "$1" >>"$(pkg_db)"; }
pkg_del() {
    local db
    db=$(pkg_db)
    grep -vxF -- "$1" "$db" >"$db.tmp" || true
    mv "$db.tmp" "$db"
}

pg_version() {
    local d
    for d in /usr/lib/postgresql/*/bin/postgres; do
        [ -x "$d" ] || continue
        d=${d#/usr/lib/postgresql/}
        echo "${d%%/*}"
    done | sort -n | tail -n 1
}
pg_bin() { echo "/usr/lib/postgresql/$(pg_version)/bin"; }

# Debian packages behind the distro's packages (the parts the recipe needs).
apt_install_postgres() {
    # Like CentOS and Clear Linux: installing the server creates no cluster.
    mkdir -p /etc/postgresql-common
    [ -f /etc/postgresql-common/createcluster.conf ] ||
        echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
    real_apt install "$@"
}
apt_remove_postgres() {
    local v
    v=$(pg_version)
    real_apt remove postgresql ${v:+postgresql-$v} "$@"
}

ensure_user() { # NAME HOME
    id -u "$1" >/dev/null 2>&1 && return 0
    run_logged useradd --system --user-group --home-dir "$2" --no-create-home --shell /sbin/nologin "$1"
}

as_user() { # USER CMD...: run as USER (uid, gid, supplementary groups), without PAM
    local u=$1
    shift
    setpriv --reuid="$u" --regid="$(id -g "$u")" --init-groups -- "$@"
}

# --- PostgreSQL data directory (shared by systemctl and postgresql-setup) ----------------------
PGDATA_DIR=/var/lib/pgsql/data
PG_LOGFILE=/var/lib/pgsql/logfile

# Where the release's PostgreSQL puts its socket (catalogue: socket=; PostgreSQL's own default
# is /tmp, which Clear Linux and EL both patch to /run/postgresql).
pg_socket_dir() {
    local p s
    for p in postgresql postgresql-server database-basic; do
        s=$(cat_attr "$p" socket)
        [ -n "$s" ] && { echo "$s"; return; }
    done
    echo /run/postgresql
}

pg_initdb() { # extra initdb args...
    mkdir -p /var/lib/pgsql
    chown postgres:postgres /var/lib/pgsql
    install -d -o postgres -g postgres -m 0700 "$PGDATA_DIR"
    run_logged as_user postgres "$(pg_bin)/initdb" -D "$PGDATA_DIR" "$@"
}
