#!/bin/bash
# sshd in a sandbox, for the SSH transport's tests. See README.md ("sshd in a sandbox").
#
#   sshd.sh layer                         print the cached openssh-server layer (a tar; built
#                                         once per base version, flock-protected)
#   sshd.sh start NAME PUBKEY [PORT [ADDR]...]
#                                         install openssh-server offline into sandbox NAME,
#                                         authorize PUBKEY (a file) for root, start sshd on
#                                         the ADDRs (default 127.0.0.1 and ::1) port PORT (2222)
#                                         in the sandbox's network namespace; print its ed25519
#                                         host key line
#   sshd.sh kill NAME                     kill every sshd process in the sandbox (the listener
#                                         and the sessions): a lost connection
#
# openssh-server is not in the base's package list on purpose: changing that list rebuilds the
# base for every test run; its .debs and the installed result are cached next to the base
# version they were resolved against instead.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SB=$SANDBOX_DIR/sandbox.sh

usage() { sed -n '2,14s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2; exit 2; }

# The cache of this base version: its .debs, then the installed layer (a tar of a sandbox's
# upper dir after `dpkg -i`: extracting it takes well under a second, installing 5-15 s).
cache_dir() {
    local v
    v=$(current_version)
    [ -n "$v" ] || die "no base version"
    echo "$SANDBOX_CACHE/extra/openssh-server-$(basename "$v")"
}

# A throw-away sandbox for building, stopped on exit.
scratch() {
    local name=$1
    shift
    TELEM_SANDBOX_OWNER=$$ bash "$SB" start "$name" "$@" >/dev/null 2>&1 ||
        die "cannot start the sandbox $name $*"
    # shellcheck disable=SC2064
    trap "bash '$SB' stop '$name' >/dev/null 2>&1 || true" EXIT
}

cmd_layer() {
    [ "$(id -u)" = 0 ] || die "must run as root"
    bash "$SANDBOX_DIR/base.sh" || die "building the base failed"
    local dir tmp name t
    dir=$(cache_dir)
    if [ -f "$dir/layer.tar" ]; then
        echo "$dir/layer.tar"
        return
    fi
    mkdir -p "$SANDBOX_CACHE/extra"
    exec 8>"$SANDBOX_CACHE/extra/.lock"
    flock 8
    if [ ! -f "$dir/layer.tar" ]; then
        t=$(now)
        tmp=$dir.tmp.$$
        rm -rf "$tmp"
        mkdir -p "$tmp"
        name=sshd-debs-$$
        scratch "$name" --apt-relay
        bash "$SB" exec "$name" -- bash -c 'mkdir -p /root/sshdebs/partial &&
            apt-get install -y -q --download-only --no-install-recommends \
                -o Dir::Cache::archives=/root/sshdebs openssh-server' >"$tmp/download.log" 2>&1 ||
            { tail -20 "$tmp/download.log" >&2; die "downloading openssh-server failed (the mirror is needed once per base version)"; }
        mkdir "$tmp/debs"
        cp "$(bash "$SB" root "$name")"/root/sshdebs/*.deb "$tmp/debs/"
        bash "$SB" stop "$name" >/dev/null 2>&1 || true

        name=sshd-layer-$$
        scratch "$name"
        bash "$SB" cp "$name" "$tmp/debs" /tmp/sshdebs
        # dpkg, not apt: every dependency is either in the base or among these .debs.
        bash "$SB" exec "$name" -- bash -c '
            set -e
            printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
            DEBIAN_FRONTEND=noninteractive dpkg -i /tmp/sshdebs/*.deb
            rm -rf /tmp/sshdebs /usr/sbin/policy-rc.d /etc/ssh/ssh_host_*' >"$tmp/install.log" 2>&1 ||
            { tail -20 "$tmp/install.log" >&2; die "installing openssh-server failed"; }
        # Files, directories and links only (a whiteout is a character device).
        (cd "$(bash "$SB" upper "$name")" && find . -mindepth 1 ! -type c -print0 |
            tar --null --no-recursion -T - -cpf "$tmp/layer.tar")
        bash "$SB" stop "$name" >/dev/null 2>&1 || true
        trap - EXIT
        rm -rf "$dir"
        mv "$tmp" "$dir"
        # Layers of base versions that are gone go with them.
        for old in "$SANDBOX_CACHE"/extra/openssh-server-*; do
            [ -d "$SANDBOX_CACHE/roots/${old##*/openssh-server-}" ] || rm -rf "$old"
        done
        log "openssh-server layer cached in $dir ($(elapsed "$t")s)"
    fi
    echo "$dir/layer.tar"
}

cmd_start() {
    local name=${1:-} pubkey=${2:-} port=${3:-2222} layer listen='' a
    [ -n "$name" ] && [ -f "$pubkey" ] || usage
    shift $(($# < 3 ? $# : 3))
    [ $# -gt 0 ] || set -- 127.0.0.1 ::1
    for a in "$@"; do
        [[ $a =~ ^[0-9A-Fa-f.:]+$ ]] || die "start: not an IP address: $a"
        listen+=" 'ListenAddress $a'"
    done
    layer=$(cmd_layer)
    bash "$SB" cp "$name" "$layer" /tmp/sshd-layer.tar
    bash "$SB" cp "$name" "$pubkey" /root/.ssh/authorized_keys
    bash "$SB" exec "$name" -- bash -c "
        set -e
        tar -xpf /tmp/sshd-layer.tar -C / && rm /tmp/sshd-layer.tar
        chmod 700 /root/.ssh && chmod 600 /root/.ssh/authorized_keys
        # A host key of this sandbox's own (the layer has none).
        ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
        mkdir -p /run/sshd && chmod 755 /run/sshd
        printf '%s\n' 'Port $port'$listen \
            'HostKey /etc/ssh/ssh_host_ed25519_key' 'PasswordAuthentication no' \
            'KbdInteractiveAuthentication no' 'PermitRootLogin prohibit-password' \
            > /etc/ssh/sshd_config.d/telem-test.conf
        /usr/sbin/sshd -t
        /usr/sbin/sshd < /dev/null > /dev/null 2>&1
        # sshd forks into the background before it binds: ready once port $port listens
        # (state 0A in /proc/net/tcp*), at most 10 s.
        hex=\$(printf '%04X' $port)
        for i in \$(seq 200); do
            grep -qE \":\$hex [0-9A-F]+:[0-9A-F]{4} 0A \" /proc/net/tcp /proc/net/tcp6 2>/dev/null && break
            [ \$i = 200 ] && { echo 'sshd does not listen on port $port' >&2; exit 1; }
            sleep 0.05
        done
        cat /etc/ssh/ssh_host_ed25519_key.pub
    "
}

cmd_kill() {
    local name=${1:-}
    [ -n "$name" ] || usage
    # Only inside the sandbox's own PID namespace: every sshd there is this test's.
    bash "$SB" exec "$name" -- bash -c '
        for p in /proc/[0-9]*; do
            [ "$(cat "$p/comm" 2>/dev/null)" = sshd ] && echo "${p#/proc/}"
        done | xargs -r kill -KILL'
}

case ${1:-} in
layer) cmd_layer ;;
start) shift; cmd_start "$@" ;;
kill) shift; cmd_kill "$@" ;;
*) usage ;;
esac
