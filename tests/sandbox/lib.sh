# shellcheck shell=bash
# Shared helpers for the sandbox harness (sourced by base.sh, sandbox.sh, selftest.sh).

SANDBOX_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SANDBOX_CACHE=${TELEM_SANDBOX_CACHE:-/var/cache/telem-deploy-sandbox}
SANDBOX_RUN=${TELEM_SANDBOX_RUN:-/tmp/telem-sandbox}
SANDBOX_SUITE=bookworm
SANDBOX_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
SANDBOX_HOSTNAME=sandbox
export LC_ALL=C

log() { echo "sandbox: $*" >&2; }
die() { echo "sandbox: error: $*" >&2; exit 1; }

now() { date +%s.%N; }
# elapsed START -> "12.3"
elapsed() { awk -v s="$1" -v e="$(now)" 'BEGIN { printf "%.1f", e - s }'; }

# need BINARY PACKAGE: make sure a host binary exists, installing its package if not.
need() {
    command -v "$1" >/dev/null 2>&1 && return 0
    [ "$(id -u)" = 0 ] || die "$1 is missing (package $2) and we are not root"
    log "installing host package $2 (for $1)"
    local apt=(apt-get -y -q -o DPkg::Lock::Timeout=600 install --no-install-recommends "$2")
    if ! DEBIAN_FRONTEND=noninteractive "${apt[@]}" >&2; then
        DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600 update >&2 || true
        DEBIAN_FRONTEND=noninteractive "${apt[@]}" >&2 || die "could not install host package $2"
    fi
    command -v "$1" >/dev/null 2>&1 || die "$1 still missing after installing $2"
}

# host_mirrors: print the host's Debian mirrors, one "URI" per line, main mirror(s) first and
# security mirror(s) after, as "main URI" / "security URI". Parsed from the deb822 file
# /etc/apt/sources.list.d/*.sources and from one-line sources.list files. Nothing hard-coded.
host_mirrors() {
    local f
    {
        for f in /etc/apt/sources.list.d/*.sources; do
            [ -r "$f" ] || continue
            # deb822: a stanza is a paragraph; take URIs of stanzas whose Types contain "deb".
            awk '
                BEGIN { IGNORECASE = 1 }
                /^[ \t]*#/ { next }
                /^[ \t]*$/ { if (deb && uris != "") print uris; deb = 0; uris = ""; next }
                tolower($1) == "types:" { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
                tolower($1) == "uris:" { uris = ""; for (i = 2; i <= NF; i++) uris = uris " " $i }
                tolower($1) == "enabled:" && tolower($2) == "no" { deb = 0; uris = "" }
                END { if (deb && uris != "") print uris }
            ' "$f" | tr ' ' '\n'
        done
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
            [ -r "$f" ] || continue
            # "deb [opts] URI suite comp..."
            sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" | awk '$1 == "deb" { print $2 }'
        done
    } | grep -E '^https?://' | sed 's:/*$::' | awk '!seen[$0]++' | awk '
        /security/ { sec[++ns] = $0; next } { print "main " $0 }
        END { for (i = 1; i <= ns; i++) print "security " sec[i] }'
}

# main_mirror / security_mirror: first of each kind (TELEM_SANDBOX_MIRROR overrides the main one).
main_mirror() {
    if [ -n "${TELEM_SANDBOX_MIRROR:-}" ]; then echo "$TELEM_SANDBOX_MIRROR"; return; fi
    host_mirrors | awk '$1 == "main" { print $2; exit }'
}
security_mirror() {
    if [ -n "${TELEM_SANDBOX_SECURITY_MIRROR+x}" ]; then echo "$TELEM_SANDBOX_SECURITY_MIRROR"; return; fi
    host_mirrors | awk '$1 == "security" { print $2; exit }'
}

# url_hostport URL -> "host port"
url_hostport() {
    local rest=${1#*://} scheme=${1%%://*} hp port
    hp=${rest%%/*}
    port=80; [ "$scheme" = https ] && port=443
    case $hp in *:*) port=${hp##*:}; hp=${hp%:*} ;; esac
    echo "$hp $port"
}

# current_version: path of the base version in use (resolved symlink), or empty.
current_version() {
    [ -L "$SANDBOX_CACHE/current" ] || return 0
    readlink -f "$SANDBOX_CACHE/current"
}

valid_name() {
    [[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$ ]] || die "bad sandbox name '$1' (use [A-Za-z0-9.-], max 63)"
}
