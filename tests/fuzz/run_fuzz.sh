#!/usr/bin/env bash
# Builds fuzz_gguf with clang (ASan + UBSan + libFuzzer) in build-fuzz/ and fuzzes the GGUF
# reader for N seconds in one process.
#   tests/fuzz/run_fuzz.sh [seconds=60] [extra libFuzzer flags...]
# The corpus grows in build-fuzz/fuzz/corpus_gguf; crashes land in build-fuzz/fuzz/ as
# crash-<sha1>. Reproduce one with: build-fuzz/tests/fuzz/fuzz_gguf <file>
set -euo pipefail
secs="${1:-60}"
[[ $# -gt 0 ]] && shift
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${LMS_FUZZ_BUILD:-$root/build-fuzz}"

if [[ ! -f "$build/CMakeCache.txt" ]]; then
  CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DLMS_FUZZ=ON -DLMS_CUDA=OFF \
    -DLMS_GUI=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
cmake --build "$build" --target fuzz_gguf gguf_fuzz_seeds

work="$build/fuzz"
mkdir -p "$work/corpus_gguf" "$work/seeds_gguf"
"$build/tests/fuzz/gguf_fuzz_seeds" "$work/seeds_gguf"
exec "$build/tests/fuzz/fuzz_gguf" -max_total_time="$secs" -rss_limit_mb=2048 \
  -dict="$root/tests/fuzz/gguf.dict" -artifact_prefix="$work/" -print_final_stats=1 \
  "$@" "$work/corpus_gguf" "$work/seeds_gguf"
