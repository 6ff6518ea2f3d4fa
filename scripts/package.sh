#!/usr/bin/env bash
# Build the Debian package of telem-deploy and the telem-collector it ships:
#   target/debian/telem-deploy_<version>-1_<arch>.deb
# Usage: scripts/package.sh [PROFILE]
#   PROFILE  cargo profile, default `release` (LTO, stripped). scripts/test.sh packages the
#            `dev` build it has just made (no LTO, no second compile, to stay within the CI
#            budget; cargo-deb warns that it is meant for releases, and strips the binaries).
# Installs cargo-deb (from crates.io, into ~/.cargo/bin) when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-release}
CARGO_DEB_VERSION=3.8.0
if ! cargo deb --version 2>/dev/null | grep -qF "$CARGO_DEB_VERSION"; then
    echo "package.sh: installing cargo-deb $CARGO_DEB_VERSION" >&2
    cargo install --locked --quiet --version "$CARGO_DEB_VERSION" cargo-deb
fi
cargo build --profile "$profile" --workspace --bins
# The man pages and completions under doc/ are generated from the CLIs and kept fresh by
# tests/it/docs.rs (UPDATE_GOLDEN=1 cargo test --test it docs).
rm -f target/debian/telem-deploy_*.deb
fast=()
[ "$profile" = release ] || fast=(--fast)
cargo deb -p telem-deploy --no-build --profile "$profile" "${fast[@]}" --output target/debian/
ls target/debian/telem-deploy_*.deb
