#!/usr/bin/env bash
# The whole test suite under AddressSanitizer + UndefinedBehaviorSanitizer: configures build-asan/
# with -DSYSTRAIN_SANITIZE=ON (g++, RelWithDebInfo), builds everything and runs ctest there. Extra
# arguments go to ctest (scripts/sanitize.sh -R Idx). Expect 2-4x the normal test time.
#
# Runtime options (override by setting them yourself):
# - ASAN_OPTIONS: leaks are checked, with scripts/lsan.supp suppressing what the uninstrumented
#   libraries (libgomp's thread pool, oneDNN's JIT kernel cache, libhdf5's free lists) keep until
#   exit on purpose; UBSan stops at the first report so a finding fails its test.
# - The fuzz smoke tests run libhdf5 in a checking child process (src/io/h5.h); a report of ASan in
#   such a child is still printed in the test's output.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
build=${SYSTRAIN_ASAN_BUILD:-build-asan}
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSYSTRAIN_SANITIZE=ON "${launcher[@]}" >/dev/null
cmake --build "$build" -j "${SYSTRAIN_ASAN_JOBS:-$(nproc)}"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$here/scripts/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --test-dir "$build" --output-on-failure -j "${SYSTRAIN_ASAN_TEST_JOBS:-2}" "$@"
