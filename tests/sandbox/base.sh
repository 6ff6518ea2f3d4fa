#!/bin/bash
# Build (or reuse) the cached Debian base root for the sandbox harness. See README.md.
#
#   base.sh [--force]      make sure $TELEM_SANDBOX_CACHE/current is fresh; print timings on stderr
#   base.sh --status       print the state of the cache and exit
#
# Layout under $TELEM_SANDBOX_CACHE (default /var/cache/telem-deploy-sandbox):
#   current -> roots/<id>          the version new sandboxes use (switched atomically)
#   roots/<id>/base/               debootstrap --variant=minbase bookworm root (apt lists kept)
#   roots/<id>/systemd/            overlay upper dir: systemd layer, use lowerdir=systemd:base
#   roots/<id>/debs/               pre-downloaded .debs for $PACKAGES (for base and systemd layer)
#   roots/<id>/relays              "PORT HOST HOSTPORT" lines for the optional apt relay
#   roots/<id>/stamp, timings      build key/date and measured timings
# A version is rebuilt when older than $TELEM_SANDBOX_MAX_AGE_DAYS (3) days or when the package
# lists, suite, mirrors or build format changed. Old versions are deleted once no sandbox uses them.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Everything the deploy tool may install on the Debian/Ubuntu recipes (pre-downloaded, offline).
PACKAGES=${TELEM_SANDBOX_PACKAGES:-"nginx postgresql postgresql-contrib uwsgi uwsgi-plugin-python3 python3-venv python3-pip redis-server git ca-certificates curl"}
# The systemd layer (for the systemd-nspawn --boot variant).
SYSTEMD_PACKAGES="systemd systemd-sysv dbus libpam-systemd iproute2 procps"
MAX_AGE_DAYS=${TELEM_SANDBOX_MAX_AGE_DAYS:-3}
FORMAT=1 # bump whenever the build recipe below changes

force=0
case ${1:-} in
--force) force=1 ;;
--status) status=1 ;;
"") ;;
*) die "usage: base.sh [--force|--status]" ;;
esac

[ "$(id -u)" = 0 ] || die "must run as root"
mkdir -p "$SANDBOX_CACHE/roots"
chmod 755 "$SANDBOX_CACHE"

MIRROR=$(main_mirror)
SECURITY=$(security_mirror)
[ -n "$MIRROR" ] || die "no http(s) Debian mirror found in /etc/apt/sources.list{,.d/} (set TELEM_SANDBOX_MIRROR)"
KEY=$(printf '%s\n' "format=$FORMAT" "suite=$SANDBOX_SUITE" "mirror=$MIRROR" "security=$SECURITY" \
    "packages=$(echo $PACKAGES | tr ' ' '\n' | sort | tr '\n' ' ')" \
    "systemd=$(echo $SYSTEMD_PACKAGES | tr ' ' '\n' | sort | tr '\n' ' ')" | sha256sum | cut -c1-16)

stamp_get() { sed -n "s/^$2=//p" "$1/stamp" 2>/dev/null; }

# up_to_date VERSION_DIR -> 0 fresh, 1 stale (age), 2 wrong key / missing
up_to_date() {
    local v=$1 built
    [ -n "$v" ] && [ -f "$v/stamp" ] && [ -d "$v/base" ] && [ -d "$v/systemd" ] && [ -d "$v/debs" ] || return 2
    [ "$(stamp_get "$v" key)" = "$KEY" ] || return 2
    built=$(stamp_get "$v" built)
    [ $(($(date +%s) - ${built:-0})) -lt $((MAX_AGE_DAYS * 86400)) ] || return 1
    return 0
}

if [ "${status:-0}" = 1 ]; then
    v=$(current_version)
    rc=0; up_to_date "$v" || rc=$?
    echo "cache:   $SANDBOX_CACHE"
    echo "current: ${v:-none} ($(case $rc in 0) echo fresh ;; 1) echo stale ;; *) echo missing/outdated ;; esac))"
    echo "mirror:  $MIRROR${SECURITY:+ + $SECURITY}"
    echo "key:     $KEY"
    [ -f "$v/timings" ] && cat "$v/timings"
    exit 0
fi

# One builder at a time; everybody else waits here and then sees a fresh version.
exec 9>"$SANDBOX_CACHE/.lock"
flock 9

v=$(current_version)
rc=0; up_to_date "$v" || rc=$?
if [ $rc = 0 ] && [ $force = 0 ]; then
    log "base up to date: $v"
    exit 0
fi

need debootstrap debootstrap
need unshare util-linux
need ip iproute2
need perl perl-base

T0=$(now)
id=$(date -u +%Y%m%dT%H%M%SZ)-$$
V=$SANDBOX_CACHE/roots/$id
T=$V.tmp
rm -rf "$T"
mkdir -p "$T"

cleanup_build() {
    local m
    for m in "$T/mnt" "$T/verify/root"; do
        mountpoint -q "$m" 2>/dev/null && umount -l "$m"
    done
    [ -d "$T" ] && rm -rf --one-file-system "$T"
    true
}
trap cleanup_build EXIT

# in_root [--net] ROOT DEBS CMD: run a bash command chrooted in ROOT in fresh mount+pid namespaces
# (host network unless --net), with proc/sys/dev/run mounted and DEBS on /var/cache/apt/archives.
in_root() {
    local net=()
    if [ "$1" = --net ]; then net=(--net); shift; fi
    unshare --mount --pid --fork --kill-child --propagation private "${net[@]}" \
        bash "$SANDBOX_DIR/init.sh" run "$1" "$2" -- bash -c "set -e; $3" 9>&-
}

timing() { echo "$1 $2" >>"$T/timings"; log "$(printf '%-22s %6ss' "$1" "$2")"; }
stale_msg=$([ $rc = 1 ] && echo " (current one is older than $MAX_AGE_DAYS days)" || true)
log "building base $id from $MIRROR$stale_msg"

build() {
    local t R=$T/base
    t=$(now)
    debootstrap --variant=minbase --components=main "$SANDBOX_SUITE" "$R" "$MIRROR" >"$T/debootstrap.log" 2>&1 ||
        { tail -20 "$T/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
    timing debootstrap "$(elapsed "$t")"

    t=$(now)
    printf '%s\n' "127.0.0.1	localhost" "127.0.1.1	$SANDBOX_HOSTNAME" \
        "::1	localhost ip6-localhost ip6-loopback" "ff02::1	ip6-allnodes" "ff02::2	ip6-allrouters" >"$R/etc/hosts"
    echo "$SANDBOX_HOSTNAME" >"$R/etc/hostname"
    {
        echo "deb $MIRROR $SANDBOX_SUITE main"
        echo "deb $MIRROR $SANDBOX_SUITE-updates main"
        [ -z "$SECURITY" ] || echo "deb $SECURITY $SANDBOX_SUITE-security main"
    } >"$R/etc/apt/sources.list"
    mkdir -p "$T/debs/partial"
    in_root "$R" - "apt-get -q update && apt-get -y -q dist-upgrade && apt-get clean" >"$T/update.log" 2>&1 ||
        { tail -20 "$T/update.log" >&2; die "apt-get update/dist-upgrade in the base failed"; }
    timing apt-update "$(elapsed "$t")"

    t=$(now)
    # shellcheck disable=SC2086
    in_root "$R" "$T/debs" "apt-get -y -q install --download-only $PACKAGES" >"$T/download.log" 2>&1 ||
        { tail -20 "$T/download.log" >&2; die "pre-downloading packages failed"; }
    timing download-debs "$(elapsed "$t")"

    t=$(now)
    mkdir -p "$T/systemd" "$T/systemd.work" "$T/mnt"
    mount -t overlay overlay -o "lowerdir=$R,upperdir=$T/systemd,workdir=$T/systemd.work" "$T/mnt"
    printf '#!/bin/sh\nexit 101\n' >"$T/mnt/usr/sbin/policy-rc.d"
    chmod 755 "$T/mnt/usr/sbin/policy-rc.d"
    # The systemd layer may resolve dependencies differently: download for it too (same debs dir).
    in_root "$T/mnt" "$T/debs" "apt-get -y -q install $SYSTEMD_PACKAGES && apt-get -y -q install --download-only $PACKAGES &&
        rm -f /usr/sbin/policy-rc.d && apt-cache gencaches" >"$T/systemd.log" 2>&1 ||
        { tail -20 "$T/systemd.log" >&2; die "building the systemd layer failed"; }
    umount "$T/mnt"
    rm -rf "$T/systemd.work"
    timing systemd-layer "$(elapsed "$t")"

    # apt proxy per mirror host, used only when the sandbox is started with --apt-relay (the relay
    # listens on 127.0.0.1:PORT inside the sandbox); without it apt fails fast (connection refused).
    local port=3142 url hp conf=$R/etc/apt/apt.conf.d/01telem-sandbox-relay seen=" "
    : >"$T/relays"
    {
        echo "// telem-deploy sandbox harness: apt reaches the mirror only through the optional relay"
        for url in $MIRROR $SECURITY; do
            case $url in http://*) ;; *) continue ;; esac
            hp=$(url_hostport "$url")
            case $seen in *" ${hp%% *} "*) continue ;; esac
            seen="$seen${hp%% *} "
            echo "Acquire::http::Proxy::${hp%% *} \"http://127.0.0.1:$port\";"
            echo "$port $hp" >>"$T/relays"
            port=$((port + 1))
        done
    } >"$conf"
    in_root "$R" - "apt-cache gencaches" >/dev/null 2>&1

    # Verify: both layers can install $PACKAGES with no network at all, from the debs dir alone.
    t=$(now)
    local lower
    for lower in "$R" "$T/systemd:$R"; do
        rm -rf "$T/verify"
        mkdir -p "$T/verify/upper" "$T/verify/work" "$T/verify/root"
        mount -t overlay overlay -o "lowerdir=$lower,upperdir=$T/verify/upper,workdir=$T/verify/work" "$T/verify/root"
        if ! in_root --net "$T/verify/root" "$T/debs" "apt-get -y -q install --download-only $PACKAGES" >"$T/verify.log" 2>&1 ||
            ! grep -q '^Need to get 0 B' "$T/verify.log"; then
            tail -20 "$T/verify.log" >&2
            die "offline install check failed for lowerdir=$lower"
        fi
        umount "$T/verify/root"
        rm -rf "$T/verify"
    done
    rm -f "$T/debs/lock"
    timing verify-offline "$(elapsed "$t")"

    printf '%s\n' "key=$KEY" "built=$(date +%s)" "mirror=$MIRROR" "security=$SECURITY" \
        "packages=$PACKAGES" "systemd_packages=$SYSTEMD_PACKAGES" >"$T/stamp"
    timing total "$(elapsed "$T0")"
    echo "sizes base=$(du -sm "$R" | cut -f1)M systemd=$(du -sm "$T/systemd" | cut -f1)M debs=$(du -sm "$T/debs" | cut -f1)M" >>"$T/timings"
    rmdir "$T/mnt"
    mv "$T" "$V"
    ln -sfn "roots/$id" "$SANDBOX_CACHE/current.new"
    mv -T "$SANDBOX_CACHE/current.new" "$SANDBOX_CACHE/current"
}

set +e
(set -e; build)
brc=$?
set -e
if [ $brc != 0 ]; then
    if [ $rc = 1 ] && [ $force = 0 ]; then
        log "WARNING: rebuilding the stale base failed; keeping $v"
        exit 0
    fi
    die "building the base failed"
fi
trap - EXIT
log "base ready: $V"

# Garbage-collect older versions that no mounted sandbox still uses.
for old in "$SANDBOX_CACHE"/roots/*; do
    [ "$old" = "$V" ] && continue
    # (*.tmp dirs are leftovers of crashed builds: we hold the builder lock)
    if grep -qF "$old/" /proc/self/mountinfo || grep -qsxF "$old" "$SANDBOX_RUN"/*/version; then
        log "keeping $old (in use)"
        continue
    fi
    rm -rf --one-file-system "$old"
done
