#!/usr/bin/env bash
# Runs every test of the workspace against real etcd, mesos-lite and the built binaries.
# Installs missing system packages first. Usage: ./scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_system_packages --with-browser
ensure_tansu

# The end-to-end tests run the workspace binaries, so build them all first (once).
cargo build --workspace --bins --locked
cargo test --workspace --locked "$@"
