#!/bin/bash
# Fresh-Debian-root sandboxes for end-to-end tests. See README.md for the full story.
#
#   sandbox.sh start NAME [--systemd] [--apt-relay]   new overlay + long-lived namespaces
#   sandbox.sh exec NAME [-e KEY[=VAL]]... [--] CMD... run CMD inside as root (stdio + exit code pass)
#   sandbox.sh strace NAME OUTFILE [-e KEY[=VAL]]... [--] CMD...
#                                                   exec under host `strace -f -e trace=execve`
#                                                   (other calls: TELEM_SANDBOX_STRACE_TRACE=LIST)
#   sandbox.sh cp NAME SRC DST                      copy a host file (or directory) into the sandbox
#   sandbox.sh root NAME | upper NAME | pid NAME    merged root / overlay upper dir / host PID of PID 1
#   sandbox.sh changes NAME                         "A|M|D /path" for everything in the upper dir
#   sandbox.sh relay NAME                           start the apt relay (same as start --apt-relay)
#   sandbox.sh stop NAME                            kill, unmount, clean up (idempotent)
#   sandbox.sh list | gc                            list sandboxes / stop those whose owner died
#
# NAME: [A-Za-z0-9][A-Za-z0-9.-]{0,62}. State lives in $TELEM_SANDBOX_RUN/NAME (default
# /tmp/telem-sandbox/NAME). `-e KEY` without a value takes the value from this script's
# environment, so a secret never shows up in any argv.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { sed -n '2,18s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2; exit 2; }

sdir() { echo "$SANDBOX_RUN/$1"; }

# pid_start PID -> the process start time (to detect PID reuse)
pid_start() { awk '{ sub(/^.*\) /, ""); print $20 }' "/proc/$1/stat" 2>/dev/null || true; }
# save_pid FILE PID
save_pid() { echo "$2 $(pid_start "$2")" >"$1"; }
# live_pid FILE -> prints the PID if that very process still runs
live_pid() {
    local p s
    [ -f "$1" ] || return 1
    read -r p s <"$1" || return 1
    [ -n "$p" ] && [ -d "/proc/$p" ] && [ "$(pid_start "$p")" = "$s" ] || return 1
    echo "$p"
}

load() {
    D=$(sdir "$1")
    [ -f "$D/mode" ] || die "no sandbox named '$1' (start it first)"
    MODE=$(cat "$D/mode")
    P=$(live_pid "$D/pid") || die "sandbox '$1' is not running (its PID 1 is gone)"
}

# ---------------------------------------------------------------------------------------------
cmd_start() {
    local name=${1:-} systemd=0 relay=0
    [ -n "$name" ] || usage
    shift
    valid_name "$name"
    while [ $# -gt 0 ]; do
        case $1 in
        --systemd) systemd=1 ;;
        --apt-relay) relay=1 ;;
        *) die "start: unknown option $1" ;;
        esac
        shift
    done
    [ "$(id -u)" = 0 ] || die "must run as root"
    D=$(sdir "$name")
    [ ! -e "$D" ] || die "sandbox '$name' already exists ($D): stop it first"
    need unshare util-linux
    need nsenter util-linux
    need ip iproute2
    need perl perl-base
    [ $systemd = 0 ] || need systemd-nspawn systemd-container
    [ $relay = 0 ] || need socat socat

    local t0 t1
    t0=$(now)
    bash "$SANDBOX_DIR/base.sh" || die "building the base failed"
    t1=$(now)

    mkdir -p -m 700 "$SANDBOX_RUN"
    mkdir -m 700 "$D"
    # From here on, any failure tears everything down again.
    trap 'rc=$?; [ $rc = 0 ] || { log "start failed, cleaning up"; cmd_stop "$name" || true; }' EXIT
    echo "$([ $systemd = 1 ] && echo systemd || echo plain)" >"$D/mode"
    echo "${TELEM_SANDBOX_OWNER:-$PPID}" >"$D/owner"
    mkdir "$D/upper" "$D/work" "$D/root" "$D/debs-upper" "$D/debs-work" "$D/debs"

    # Resolve and mount the base under a shared lock so a concurrent rebuild cannot delete it.
    local V lower
    exec 8<"$SANDBOX_CACHE/.lock"
    flock -s 8
    V=$(current_version)
    [ -n "$V" ] && [ -d "$V/base" ] || die "no base in $SANDBOX_CACHE"
    echo "$V" >"$D/version"
    lower=$V/base
    [ $systemd = 0 ] || lower=$V/systemd:$V/base
    mount -t overlay overlay -o "lowerdir=$lower,upperdir=$D/upper,workdir=$D/work" "$D/root"
    # The deb cache gets its own overlay: apt may write lock/partial/ (or apt-get clean) privately.
    mount -t overlay overlay -o "lowerdir=$V/debs,upperdir=$D/debs-upper,workdir=$D/debs-work" "$D/debs"
    flock -u 8
    exec 8<&-

    if [ $systemd = 0 ]; then
        start_plain "$name"
    else
        start_systemd "$name"
    fi
    [ $relay = 0 ] || cmd_relay "$name"
    trap - EXIT
    log "$(printf 'started %s (%s) in %ss (base check %ss) root=%s' "$name" "$(cat "$D/mode")" \
        "$(elapsed "$t0")" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')" "$D/root")"
}

start_plain() {
    local name=$1 launcher i
    setsid unshare --mount --pid --uts --ipc --net --fork --kill-child --propagation private \
        env -i PATH="$SANDBOX_PATH" SANDBOX_HOSTNAME="$SANDBOX_HOSTNAME" \
        bash "$SANDBOX_DIR/init.sh" hold "$D/root" "$D/debs" "$D/ready" </dev/null >"$D/holder.log" 2>&1 &
    launcher=$!
    disown
    save_pid "$D/launcher" "$launcher"
    for i in $(seq 1000); do
        [ -e "$D/ready" ] && break
        [ -d "/proc/$launcher" ] || break
        sleep 0.01
    done
    [ -e "$D/ready" ] || { cat "$D/holder.log" >&2; die "sandbox PID 1 did not come up"; }
    local child
    child=$(cat "/proc/$launcher/task/$launcher/children" 2>/dev/null | awk '{ print $1 }')
    [ -n "$child" ] || die "cannot find the sandbox's PID 1 (child of $launcher)"
    save_pid "$D/pid" "$child"
}

cgroup_dirs() {
    local cg=telem-sandbox-$1
    if [ -d /sys/fs/cgroup/unified ]; then # hybrid: v2 tree + the named systemd v1 hierarchy
        echo "/sys/fs/cgroup/unified/$cg"
        [ -d /sys/fs/cgroup/systemd ] && echo "/sys/fs/cgroup/systemd/$cg"
    elif [ -f /sys/fs/cgroup/cgroup.controllers ]; then # pure cgroup v2
        echo "/sys/fs/cgroup/$cg"
    else # legacy v1 only
        [ -d /sys/fs/cgroup/systemd ] && echo "/sys/fs/cgroup/systemd/$cg"
    fi
}

start_systemd() {
    local name=$1 launcher cgs=() c i
    mapfile -t cgs < <(cgroup_dirs "$name")
    for c in "${cgs[@]}"; do mkdir -p "$c"; done
    printf '%s\n' "${cgs[@]}" >"$D/cgroups"
    # nspawn must not write into the root (--resolv-conf/--timezone off, no journal link) so the
    # upper dir shows what the booted system and the test did. --register=no --keep-unit because
    # the host has no systemd/dbus; own cgroups so nothing is left in the host's tree.
    SBX_CGS="${cgs[*]}" setsid bash -c 'for c in $SBX_CGS; do echo $$ >"$c/cgroup.procs"; done
        unset SBX_CGS; exec "$@"' _ \
        "$(command -v systemd-nspawn)" -q -D "$D/root" -M "$name" --hostname="$SANDBOX_HOSTNAME" \
        --boot --register=no --keep-unit --private-network --console=passive \
        --resolv-conf=off --timezone=off --link-journal=no \
        --bind="$D/debs:/var/cache/apt/archives" </dev/null >"$D/holder.log" 2>&1 &
    launcher=$!
    disown
    save_pid "$D/launcher" "$launcher"
    # The container's PID 1 is the descendant of nspawn whose innermost PID is 1.
    local p found=
    for i in $(seq 1500); do
        for c in "${cgs[@]}"; do
            for p in $(find "$c" -name cgroup.procs -exec cat {} + 2>/dev/null); do
                if [ "$(awk '/^NSpid:/ { print $NF }' "/proc/$p/status" 2>/dev/null)" = 1 ] &&
                    [ "$p" != "$launcher" ]; then
                    found=$p
                    break 3
                fi
            done
        done
        [ -d "/proc/$launcher" ] || break
        sleep 0.01
    done
    [ -n "$found" ] || { cat "$D/holder.log" >&2; die "systemd-nspawn did not start a PID 1"; }
    save_pid "$D/pid" "$found"
    P=$found
    # Until systemd has exec'ed and opened its private bus, systemctl says "offline": retry.
    local state deadline=$((SECONDS + 120))
    while :; do
        state=$(timeout 120 env -i PATH="$SANDBOX_PATH" nsenter -t "$P" --all --root --wd \
            systemctl is-system-running --wait 2>&1) || true
        case $state in running | degraded) break ;; esac
        [ -d "/proc/$P" ] && [ $SECONDS -lt $deadline ] || break
        sleep 0.05
    done
    case $state in
    running) ;;
    degraded)
        log "systemd is degraded; failed units:"
        env -i PATH="$SANDBOX_PATH" nsenter -t "$P" --all --root --wd systemctl --failed --no-legend >&2 || true
        ;;
    *)
        tail -20 "$D/holder.log" >&2
        die "systemd did not boot (is-system-running: $state)"
        ;;
    esac
}

# ---------------------------------------------------------------------------------------------
# parse_env ARGS... -> sets ENVS (KEY list, values exported into this shell) and REST (command)
parse_env() {
    ENVS=()
    REST=()
    local kv
    while [ $# -gt 0 ]; do
        case $1 in
        -e | --env)
            [ $# -ge 2 ] || die "-e needs KEY=VAL"
            kv=$2
            shift 2
            ;;
        -e?* | --env=*)
            kv=${1#-e}
            kv=${kv#--env=}
            shift
            ;;
        --)
            shift
            break
            ;;
        *) break ;;
        esac
        [[ ${kv%%=*} =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "bad environment variable '${kv%%=*}'"
        if [[ $kv == *=* ]]; then
            printf -v "_sbx_env_${kv%%=*}" '%s' "${kv#*=}"
        else
            [ -n "${!kv+x}" ] || die "-e $kv: not set in the environment"
            printf -v "_sbx_env_$kv" '%s' "${!kv}"
        fi
        ENVS+=("${kv%%=*}")
    done
    REST=("$@")
    [ ${#REST[@]} -gt 0 ] || die "no command given"
}

# run_inside: replace this shell by the command inside sandbox $D/$MODE/$P. Values travel in the
# environment only (never argv): plain mode execs nsenter+chroot with exactly the clean env;
# systemd mode passes names to `systemd-run -E NAME`, which reads the values from its own env.
run_inside() {
    local v k vals=() names=() sr=()
    for k in "${ENVS[@]}"; do
        v=_sbx_env_$k
        vals+=("$k=${!v}")
        names+=("$k")
    done
    # Wipe the environment (builtins only: no process sees the values in its argv).
    for v in $(compgen -e); do unset "$v" 2>/dev/null || true; done
    for v in $(compgen -v _sbx_env_); do unset "$v"; done
    export PATH=$SANDBOX_PATH HOME=/root LANG=C.UTF-8
    for v in "${vals[@]+"${vals[@]}"}"; do export "${v?}"; done
    if [ "$MODE" = plain ]; then
        exec nsenter -t "$P" -m -p -u -i -n -- chroot "$D/root" /usr/bin/env -u _ -u SHLVL "${REST[@]}"
    fi
    for k in "${names[@]+"${names[@]}"}"; do sr+=(-E "$k"); done
    exec nsenter -t "$P" --all --root --wd -- systemd-run --wait --pipe --quiet --collect \
        --service-type=exec -E PATH -E HOME -E LANG "${sr[@]+"${sr[@]}"}" -- "${REST[@]}"
}

cmd_exec() {
    [ $# -ge 1 ] || usage
    load "$1"
    shift
    parse_env "$@"
    run_inside
}

cmd_strace() {
    [ $# -ge 2 ] || usage
    load "$1"
    local out=$2
    shift 2
    parse_env "$@"
    need strace strace
    local fifo spid cpid target rc=0 i
    fifo=$(mktemp -u "$D/strace.XXXXXX")
    mkfifo -m 600 "$fifo"
    exec 3<&0
    if [ "$MODE" = plain ]; then
        # A child that blocks (in a builtin, no exec) until strace is attached, then becomes the
        # command: everything it runs, daemons included, is traced until the command returns.
        (
            read -r _ <"$fifo"
            run_inside
        ) <&3 &
        cpid=$!
        target=$cpid
    else
        # Commands are forked by the container's systemd: trace it (and thus every new process).
        target=$P
    fi
    strace -f -qq -e "trace=${TELEM_SANDBOX_STRACE_TRACE:-execve}" -e signal=none -s 4096 -o "$out" -p "$target" 2>"$D/strace.err" &
    spid=$!
    for i in $(seq 1000); do
        [ "$(awk '/^TracerPid:/ { print $2 }' "/proc/$target/status" 2>/dev/null)" = "$spid" ] && break
        [ -d "/proc/$spid" ] || { cat "$D/strace.err" >&2; die "strace failed"; }
        sleep 0.01
    done
    if [ "$MODE" = plain ]; then
        echo go >"$fifo"
        wait "$cpid" || rc=$?
    else
        (run_inside) <&3 || rc=$?
    fi
    # Detach after a short grace (children the command left behind may still be exec'ing);
    # daemons keep running, untraced. strace flushes its file on SIGINT.
    sleep "${TELEM_SANDBOX_STRACE_GRACE:-0.3}"
    kill -INT "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
    rm -f "$fifo"
    return $rc
}

cmd_cp() {
    [ $# = 3 ] || usage
    local name=$1 src=$2 dst=$3
    load "$name"
    [ -e "$src" ] || die "cp: $src does not exist"
    if [ -d "$src" ]; then
        tar -C "$src" -cf - . | cmd_exec "$name" -- /bin/sh -c 'mkdir -p "$1" && tar -C "$1" -xpf - --no-same-owner' sh "$dst"
    else
        cmd_exec "$name" -- /bin/sh -c 'set -e
            dst=$1
            case $dst in */) dst=$dst$3 ;; esac
            [ -d "$dst" ] && dst=$dst/$3
            mkdir -p "$(dirname "$dst")"
            tmp=$dst.sbx-tmp.$$
            cat >"$tmp"
            chmod "$2" "$tmp"
            mv -f "$tmp" "$dst"' sh "$dst" "$(stat -c %a "$src")" "$(basename "$src")" <"$src"
    fi
}

cmd_relay() {
    local name=$1 port host hport sock i
    load "$name"
    need socat socat
    [ -s "$(cat "$D/version")/relays" ] || die "no http mirror to relay to"
    while read -r port host hport; do
        sock=$D/relay-$port.sock
        [ -S "$sock" ] && continue
        setsid socat "UNIX-LISTEN:$sock,fork,mode=600" "TCP:$host:$hport" </dev/null >>"$D/relay.log" 2>&1 &
        save_pid "$D/relay-host-$port.pid" $!
        for i in $(seq 500); do [ -S "$sock" ] && break; sleep 0.01; done
        setsid nsenter -t "$P" --net socat "TCP-LISTEN:$port,bind=127.0.0.1,fork,reuseaddr" \
            "UNIX-CONNECT:$sock" </dev/null >>"$D/relay.log" 2>&1 &
        save_pid "$D/relay-in-$port.pid" $!
        for i in $(seq 500); do
            nsenter -t "$P" --net ss -Hltn "sport = :$port" 2>/dev/null | grep -q . && break
            sleep 0.01
        done
        log "apt relay: 127.0.0.1:$port in $name -> $host:$hport"
    done <"$(cat "$D/version")/relays"
}

# ---------------------------------------------------------------------------------------------
cmd_stop() {
    local name=${1:-} D p f c i
    [ -n "$name" ] || usage
    valid_name "$name"
    D=$(sdir "$name")
    [ -d "$D" ] || return 0
    for f in "$D"/relay-*.pid; do
        [ -e "$f" ] || continue
        p=$(live_pid "$f") && kill -KILL "$p" 2>/dev/null || true
    done
    local pid1 launcher
    pid1=$(live_pid "$D/pid") || pid1=
    launcher=$(live_pid "$D/launcher") || launcher=
    if [ "$(cat "$D/mode" 2>/dev/null)" = systemd ] && [ -n "$pid1" ]; then
        timeout 5 env -i PATH="$SANDBOX_PATH" nsenter -t "$pid1" --all --root --wd \
            systemctl poweroff --no-block >/dev/null 2>&1 || true
        for i in $(seq 500); do
            [ -n "$launcher" ] && [ -d "/proc/$launcher" ] || break
            sleep 0.01
        done
    fi
    # Killing PID 1 of a PID namespace kills everything in it.
    [ -z "$pid1" ] || kill -KILL "$pid1" 2>/dev/null || true
    [ -z "$launcher" ] || kill -KILL "$launcher" 2>/dev/null || true
    for i in $(seq 500); do
        { [ -z "$pid1" ] || [ ! -d "/proc/$pid1" ]; } && { [ -z "$launcher" ] || [ ! -d "/proc/$launcher" ]; } && break
        sleep 0.01
    done
    if [ -f "$D/cgroups" ]; then
        # Anything left in the sandbox's cgroups dies too; then remove them, deepest first.
        while read -r c; do
            [ -d "$c" ] || continue
            for p in $(find "$c" -name cgroup.procs -exec cat {} + 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
        done <"$D/cgroups"
        for i in $(seq 300); do
            local left=0
            while read -r c; do
                [ -d "$c" ] || continue
                find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null || true
                [ ! -d "$c" ] || left=1
            done <"$D/cgroups"
            [ $left = 0 ] && break
            sleep 0.01
        done
    fi
    # Unmount everything under D (deepest first); lazily if something still holds it.
    local m
    for i in 1 2 3; do
        m=$(awk -v d="$D/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
        [ -n "$m" ] || break
        for f in $m; do umount "$f" 2>/dev/null || { [ $i = 3 ] && umount -l "$f"; } || true; done
    done
    if awk -v d="$D/" 'index($5, d) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
        die "stop $name: mounts left under $D"
    fi
    rm -rf --one-file-system "$D"
}

cmd_list() {
    local d n
    for d in "$SANDBOX_RUN"/*/; do
        [ -f "$d/mode" ] || continue
        n=$(basename "$d")
        printf '%s %s pid=%s owner=%s %s\n' "$n" "$(cat "$d/mode")" "$(live_pid "$d/pid" || echo dead)" \
            "$(cat "$d/owner" 2>/dev/null)" "$d"
    done
}

cmd_gc() {
    local d o
    for d in "$SANDBOX_RUN"/*/; do
        [ -d "$d" ] || continue
        o=$(cat "$d/owner" 2>/dev/null || true)
        if [ -z "$o" ] || [ ! -d "/proc/$o" ] || ! live_pid "$d/pid" >/dev/null; then
            log "gc: stopping $(basename "$d")"
            cmd_stop "$(basename "$d")" || true
        fi
    done
}

cmd_changes() {
    [ $# = 1 ] || usage
    valid_name "$1"
    D=$(sdir "$1")
    [ -d "$D/upper" ] && [ -f "$D/version" ] || die "no sandbox named '$1'"
    local V lowers=() p rel l state
    V=$(cat "$D/version")
    [ "$(cat "$D/mode")" = systemd ] && lowers+=("$V/systemd")
    lowers+=("$V/base")
    (cd "$D/upper" && find . -mindepth 1 -printf '%y %p\n') | LC_ALL=C sort -k2 | while read -r t p; do
        rel=${p#.}
        if [ "$t" = c ] && [ "$(stat -c %t:%T "$D/upper$rel")" = 0:0 ]; then
            echo "D $rel"
            continue
        fi
        state=A
        for l in "${lowers[@]}"; do
            if [ -c "$l$rel" ] && [ "$(stat -c %t:%T "$l$rel")" = 0:0 ]; then break; fi # whiteout
            if [ -e "$l$rel" ] || [ -L "$l$rel" ]; then state=M; break; fi
        done
        # Directories that exist below are just copied-up parents of a change: not listed.
        [ "$t" = d ] && [ $state = M ] && continue
        echo "$state $rel"
    done
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case $cmd in
start) cmd_start "$@" ;;
exec) cmd_exec "$@" ;;
strace) cmd_strace "$@" ;;
cp) cmd_cp "$@" ;;
root) [ $# = 1 ] || usage; load "$1"; echo "$D/root" ;;
upper) [ $# = 1 ] || usage; load "$1"; echo "$D/upper" ;;
pid) [ $# = 1 ] || usage; load "$1"; echo "$P" ;;
changes) cmd_changes "$@" ;;
relay) [ $# = 1 ] || usage; cmd_relay "$1" ;;
stop) [ $# = 1 ] || usage; cmd_stop "$1" ;;
list) cmd_list ;;
gc) cmd_gc ;;
*) usage ;;
esac
