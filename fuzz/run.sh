#!/usr/bin/env bash
# Run one fuzz target at low priority: fuzz/run.sh <target> <seconds> <max_len>
# Build first (`cargo +nightly fuzz build -O <target>`); this runs the built binary directly so a
# long run is not tied to the state of the working tree. Log: $FUZZ_LOG_DIR/<target>.log
# (default fuzz/artifacts/<target>.log); crashes land in fuzz/artifacts/<target>/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
t="$1"; secs="${2:-900}"; max_len="${3:-65536}"
logs="${FUZZ_LOG_DIR:-$here/artifacts}"
bin="$here/target/x86_64-unknown-linux-gnu/release/$t"
mkdir -p "$logs" "$here/corpus/$t" "$here/artifacts/$t"
cd "$here"
ASAN_OPTIONS="detect_odr_violation=0" exec nice -n 15 "$bin" \
  -artifact_prefix="$here/artifacts/$t/" -max_total_time="$secs" -max_len="$max_len" \
  -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 "corpus/$t" >"$logs/$t.log" 2>&1
