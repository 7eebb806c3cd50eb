#!/usr/bin/env bash
# Builds the cargo-fuzz targets on a stable toolchain with libFuzzer's coverage
# instrumentation (what `cargo fuzz build --sanitizer none` does; AddressSanitizer needs
# nightly) plus debug assertions and overflow checks, then runs each for SECONDS.
# Usage: fuzz/stable.sh [SECONDS] [TARGET...]   (default 60 s, every target)
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
shift || true
triple="$(rustc -vV | sed -n 's/^host: //p')"
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
# --target keeps the flags off build scripts and proc macros.
cargo build --release --target "$triple" --bins
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(wire_frames operator_protocol recordio mesos_json topology_yaml gitrepository_yaml api_query)
fi
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  "target/$triple/release/$t" "corpus/$t" -max_total_time="$secs" -rss_limit_mb=2048 \
    -max_len=65536 -timeout=10 -artifact_prefix="artifacts/$t/"
done
