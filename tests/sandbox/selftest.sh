#!/bin/bash
# Smoke test of the sandbox harness itself (run as root): base build, offline apt install of
# nginx + postgresql, daemons surviving between commands, port 80 inside, host ports untouched,
# empty upper dir after a no-op, strace, parallel sandboxes, the systemd variant, clean stop.
#   tests/sandbox/selftest.sh            (SKIP_SYSTEMD=1 to skip the nspawn part)
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
S=$SANDBOX_DIR/sandbox.sh
export TELEM_SANDBOX_OWNER=$$
tag=self$$
names=()
timings=()
fail() { echo "SELFTEST FAILED: $*" >&2; exit 1; }
ok() { echo "ok - $*"; }
t() { timings+=("$(printf '%-34s %6ss' "$1" "$2")"); }
cleanup() { for n in "${names[@]}"; do "$S" stop "$n" >/dev/null 2>&1 || true; done; }
trap cleanup EXIT

host_ports() { ss -Hltn 2>/dev/null | awk '{ print $4 }' | grep -E ':(80|5432)$' | sort || true; }
need ss iproute2
ports_before=$(host_ports)
cg_before=$(grep cgroup /proc/self/mountinfo | awk '{ print $5, $6 }' | sort)

s=$(now); bash "$SANDBOX_DIR/base.sh"; t "base.sh (cached or build)" "$(elapsed "$s")"
V=$(current_version)
[ -f "$V/timings" ] && while read -r k v; do [ "$k" = sizes ] && continue; t "  base build: $k" "$v"; done <"$V/timings"

# --- plain sandbox ---------------------------------------------------------------------------
A=$tag-a; names+=("$A")
s=$(now); "$S" start "$A" 2>/dev/null; t "start (plain)" "$(elapsed "$s")"
s=$(now); "$S" exec "$A" -- true; t "exec true" "$(elapsed "$s")"
upper=$("$S" upper "$A")
[ -z "$(find "$upper" -mindepth 1 -print -quit)" ] || { find "$upper"; fail "upper dir not empty after a no-op"; }
[ -z "$("$S" changes "$A")" ] || fail "changes not empty after a no-op"
ok "upper dir empty after 'true'"

out=$("$S" exec "$A" -e FOO='a b' -- /usr/bin/env)
[ "$(echo "$out" | sort | tr '\n' ' ')" = "FOO=a b HOME=/root LANG=C.UTF-8 PATH=$SANDBOX_PATH " ] || fail "env: $out"
[ "$(echo hi | "$S" exec "$A" -- cat)" = hi ] || fail "stdin"
rc=0; "$S" exec "$A" -- sh -c 'echo err >&2; exit 42' 2>/dev/null || rc=$?
[ $rc = 42 ] || fail "exit code $rc"
[ "$("$S" exec "$A" -- cat /proc/1/comm)" != systemd ] || fail "PID 1"
[ "$("$S" exec "$A" -- hostname)" = "$SANDBOX_HOSTNAME" ] || fail "hostname"
[ ! -e "$("$S" root "$A")/run/systemd/system" ] || fail "/run/systemd/system exists"
ok "exec: clean env, stdin, exit code, own PID 1 and hostname"

s=$(now)
"$S" exec "$A" -e DEBIAN_FRONTEND=noninteractive -- apt-get install -y -q nginx postgresql >"/tmp/$tag-apt.log" 2>&1 ||
    { tail "/tmp/$tag-apt.log"; fail "offline apt-get install"; }
t "apt-get install nginx postgresql" "$(elapsed "$s")"
grep -q '^Need to get 0 B' "/tmp/$tag-apt.log" || fail "apt downloaded something"
ok "offline apt-get install nginx postgresql ($(grep -c '^Setting up' "/tmp/$tag-apt.log") packages)"

s=$(now); "$S" exec "$A" -- pg_ctlcluster 15 main start; t "pg_ctlcluster 15 main start" "$(elapsed "$s")"
"$S" exec "$A" -- nginx
[ "$("$S" exec "$A" -- runuser -u postgres -- psql -tAc 'select 40+2')" = 42 ] || fail "psql"
status=$("$S" exec "$A" -- bash -c 'exec 3<>/dev/tcp/127.0.0.1/80; printf "GET / HTTP/1.0\r\nHost: localhost\r\n\r\n" >&3; head -1 <&3')
[[ $status == "HTTP/1.1 200 OK"* ]] || fail "nginx answered: $status"
ok "postgres and nginx run inside and survive between commands; port 80 answers"
[ "$(host_ports)" = "$ports_before" ] || fail "host ports 80/5432 changed: $(host_ports)"
ok "host ports 80/5432 untouched (${ports_before:-none listening})"

export SELFTEST_SECRET='pw with spaces $ ; " \ é'
"$S" strace "$A" "/tmp/$tag.strace" -e SELFTEST_SECRET -- sh -c '/bin/echo "$SELFTEST_SECRET" >/dev/null'
grep -qF 'execve("/bin/echo", ["/bin/echo", "pw with spaces $ ; \" \\ \303\251"]' "/tmp/$tag.strace" ||
    grep -qF '"/bin/echo", ["/bin/echo", "pw with spaces' "/tmp/$tag.strace" || { cat "/tmp/$tag.strace"; fail "strace"; }
grep -q 'nsenter' "/tmp/$tag.strace" || fail "strace misses the host side"
ok "strace records every argv (value passed by -e NAME is in no host argv: $(grep -c 'pw with' "/tmp/$tag.strace") hit, the echo)"
rm -f "/tmp/$tag.strace" "/tmp/$tag-apt.log"

s=$(now); "$S" stop "$A"; t "stop (after apt install)" "$(elapsed "$s")"
[ ! -e "$SANDBOX_RUN/$A" ] || fail "run dir left"
! grep -q "$SANDBOX_RUN/$A" /proc/self/mountinfo || fail "mounts left"
"$S" stop "$A" || fail "second stop"
ok "stop: no mounts, no dir, idempotent"

# --- parallel sandboxes ----------------------------------------------------------------------
s=$(now)
"$S" start "$tag-p1" 2>/dev/null & p1=$!
"$S" start "$tag-p2" 2>/dev/null & p2=$!
names+=("$tag-p1" "$tag-p2")
wait $p1 && wait $p2 || fail "parallel start"
for n in p1 p2; do
    "$S" exec "$tag-$n" -- sh -c 'echo x >/tmp/mine' || fail "exec $n"
done
[ "$("$S" changes "$tag-p1")" = "A /tmp/mine" ] || fail "p1 changes"
"$S" stop "$tag-p1" & "$S" stop "$tag-p2" & wait
t "2 parallel start + exec + stop" "$(elapsed "$s")"
ok "parallel sandboxes are independent"

# --- systemd variant -------------------------------------------------------------------------
if [ "${SKIP_SYSTEMD:-0}" != 1 ]; then
    B=$tag-sd; names+=("$B")
    s=$(now); "$S" start "$B" --systemd 2>/dev/null; t "start --systemd (boot to running)" "$(elapsed "$s")"
    state=$("$S" exec "$B" -- systemctl is-system-running || true)
    [[ $state == running || $state == degraded ]] || fail "systemd state $state"
    [ "$("$S" exec "$B" -- cat /proc/1/comm)" = systemd ] || fail "PID 1 is not systemd"
    [ "$(echo hi | "$S" exec "$B" -e X=1 -- sh -c 'cat; echo $X; exit 3' || echo rc=$?)" = "hi
1
rc=3" ] || fail "systemd exec stdio/env/exit code"
    ok "systemd boots ($state); exec passes stdin, env and the exit code"
    "$S" changes "$B" | sed 's/^/  boot changes: /'
    s=$(now); "$S" stop "$B"; t "stop --systemd" "$(elapsed "$s")"
    ls /sys/fs/cgroup/unified/ /sys/fs/cgroup/systemd/ /sys/fs/cgroup/ 2>/dev/null | grep -q "telem-sandbox-$B" && fail "cgroups left"
    [ "$(grep cgroup /proc/self/mountinfo | awk '{ print $5, $6 }' | sort)" = "$cg_before" ] || fail "host cgroup mounts changed"
    ok "systemd stop: cgroups removed, host cgroup mounts unchanged"
fi

[ "$(host_ports)" = "$ports_before" ] || fail "host ports changed"
echo
echo "timings:"
printf '  %s\n' "${timings[@]}"
echo "SELFTEST PASSED"
