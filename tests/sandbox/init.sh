#!/bin/bash
# PID 1 of a sandbox's namespaces (started by `unshare --mount --pid --fork ...`). Host binaries
# only; the sandbox root is never executed from here except through chroot.
#
#   init.sh hold ROOT DEBS READYFILE       mount the API file systems under ROOT, bring lo up,
#                                          touch READYFILE, then reap orphans forever
#   init.sh run  ROOT DEBS -- CMD...       same mounts, then run CMD (a bash -c string, or argv)
#                                          chrooted in ROOT with a clean environment
#
# DEBS is a directory bind-mounted on ROOT/var/cache/apt/archives, or "-" for none.
# Nothing is written to ROOT itself: all mount points already exist in a debootstrap root.
set -euo pipefail
mode=$1 root=$2 debs=$3
shift 3

mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$root/sys"
mount -t tmpfs -o mode=755,nosuid,size=16m tmpfs "$root/dev"
(
    cd "$root/dev"
    mknod -m 666 null c 1 3
    mknod -m 666 zero c 1 5
    mknod -m 666 full c 1 7
    mknod -m 666 random c 1 8
    mknod -m 666 urandom c 1 9
    mknod -m 666 tty c 5 0
    mkdir -m 755 pts
    mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5,nosuid,noexec devpts pts
    ln -s pts/ptmx ptmx
    mkdir -m 1777 shm
    mount -t tmpfs -o mode=1777,nosuid,nodev shm shm
    mkdir -m 755 mqueue
    ln -s /proc/self/fd fd
    ln -s /proc/self/fd/0 stdin
    ln -s /proc/self/fd/1 stdout
    ln -s /proc/self/fd/2 stderr
    ln -s /proc/kcore core
)
mount -t tmpfs -o mode=755,nosuid,nodev,size=20% tmpfs "$root/run"
mkdir -m 1777 "$root/run/lock"
if [ "$debs" != - ]; then
    mount --bind "$debs" "$root/var/cache/apt/archives"
fi

case $mode in
hold)
    ready=$1
    ip link set lo up
    hostname "${SANDBOX_HOSTNAME:-sandbox}"
    touch "$ready"
    # PID 1 must reap orphans (daemons double-fork; a zombie postmaster still answers kill -0).
    exec perl -e '$0 = "telem-sandbox-init"; while (1) { sleep 1 if wait() == -1 }'
    ;;
run)
    [ "${1:-}" = -- ] && shift
    if ip link show lo 2>/dev/null | grep -q 'state DOWN'; then ip link set lo up || true; fi
    exec chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
    ;;
*)
    echo "init.sh: unknown mode $mode" >&2
    exit 2
    ;;
esac
