#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine, as root:
#   installs what the tests need (PostgreSQL binaries, debootstrap, systemd-container, strace,
#   socat, openssh-client, ...), then runs fmt, clippy and every test of the workspace, end-to-end sandboxes
#   included. Long benchmarks and fuzzing are separate (see README.md).
# Environment: TELEM_E2E_REQUIRED=1 makes a missing sandbox a failure instead of a skip (CI).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use. chromium is for the web UI's browser test.
PACKAGES=(postgresql nginx-light debootstrap systemd-container strace socat openssh-client iproute2 curl ca-certificates util-linux procps chromium chromium-driver)

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "test.sh: installing ${missing[*]}" >&2
        apt-get update -q >/dev/null
        # Installing must not start daemons on this machine (nginx would listen on port 80).
        policy=/usr/sbin/policy-rc.d
        [ -e "$policy" ] || { printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"; trap 'rm -f "$policy"' EXIT; }
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
        rm -f "$policy"; trap - EXIT
    fi
else
    echo "test.sh: not root (or no apt): not installing test dependencies; sandboxed tests will say why they skip" >&2
fi

# Tools and tests that need system binaries find PostgreSQL's here.
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
[ -n "$pgbin" ] && export PATH="$PATH:$pgbin"

ulimit -n 65536 2>/dev/null || true

start=$(date +%s)
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace
# The Debian package the package test installs (tests/it/package.rs), from the build above.
./scripts/package.sh dev
cargo test --workspace --all-targets --no-fail-fast -- --test-threads="${TELEM_TEST_THREADS:-4}"
echo "test.sh: all tests passed in $(( $(date +%s) - start )) s" >&2
