#!/usr/bin/env bash
# Fuzzes every reader with libFuzzer: builds tests/fuzz/fuzz_*.cpp with clang-14, libFuzzer and
# ASan + UBSan in build-fuzz/ (its own build directory), then runs each target for SECONDS on one
# core. The growing corpus is kept in build-fuzz/corpus/<name>/ (seeded from tests/fuzz/corpus/<name>/),
# findings in build-fuzz/artifacts/<name>/. Add a finding to tests/fuzz/corpus/<name>/ once fixed.
#
#   scripts/fuzz.sh [SECONDS=60] [TARGET...]        e.g. scripts/fuzz.sh 600 idx h5_dataset
#
# Needs clang-14 and libclang-rt-14-dev (Debian 12 ships libFuzzer's runtime there; libfuzzer-14-dev
# adds its headers); installed here with apt-get when missing, not by scripts/setup.sh.
# The HDF5 readers (h5_dataset, checkpoint) run in libFuzzer's fork mode and keep going after a
# crash: libhdf5 1.10 crashes and hangs on some malformed files by itself (the policy is in
# src/io/h5.h, the known cases in tests/fuzz/libhdf5/); triage every artifact
# (`build-fuzz/fuzz_<name> ARTIFACT` shows the stack) and keep only crashes of our code open.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
secs=${1:-60}
[ $# -gt 0 ] && shift
build=${SYSTRAIN_FUZZ_BUILD:-build-fuzz}

rt=/usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer-x86_64.a
if ! command -v clang++-14 >/dev/null || [ ! -e "$rt" ]; then
  echo "fuzz: installing clang-14, libclang-rt-14-dev, libfuzzer-14-dev" >&2
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends clang-14 libclang-rt-14-dev libfuzzer-14-dev
fi

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
      -DSYSTRAIN_LIBFUZZER=ON -DSYSTRAIN_SANITIZE=ON "${launcher[@]}" >/dev/null
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in tests/fuzz/fuzz_*.cpp; do n=$(basename "$f" .cpp); targets+=("${n#fuzz_}"); done
fi
cmake --build "$build" -j "${SYSTRAIN_FUZZ_JOBS:-1}" --target "${targets[@]/#/fuzz_}"

# ASan: libhdf5 and oneDNN are not instrumented and keep some memory to the end: no leak report.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
summary=()
for t in "${targets[@]}"; do
  corpus="$build/corpus/$t" artifacts="$build/artifacts/$t/"
  mkdir -p "$corpus" "$artifacts"
  log="$build/fuzz_$t.log"
  extra=() timeout=10
  # libhdf5's own hangs would cost 10 s each; the seed files read in milliseconds.
  case "$t" in h5_dataset|checkpoint) extra=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1) timeout=3 ;; esac
  echo "fuzz: $t for $secs s (log $log)" >&2
  set +e
  "$build/fuzz_$t" -max_total_time="$secs" -timeout="$timeout" -rss_limit_mb=4096 -max_len=65536 \
      -print_final_stats=1 -artifact_prefix="$artifacts" "${extra[@]}" "$corpus" "tests/fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  set -e
  execs=$( (grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" || true) | grep -Eo '[0-9]+$' | tail -1 || true)
  # Fork mode prints no final stats: its last "#N" status line counts the executions.
  [ -z "$execs" ] && execs=$( (grep -Eo '^#[0-9]+' "$log" || true) | tail -1 | tr -d '#')
  found=$(find "$artifacts" -type f | wc -l)
  summary+=("$(printf '%-20s exit %-3s executions %-10s artifacts %s' "$t" "$rc" "${execs:-?}" "$found")")
done
printf '%s\n' "${summary[@]}"
