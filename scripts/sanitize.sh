#!/usr/bin/env bash
# The whole test suite under AddressSanitizer + UndefinedBehaviorSanitizer: configures build-asan/
# with -DSYSTRAIN_SANITIZE=ON (g++, RelWithDebInfo), builds everything and runs ctest there. Extra
# arguments go to ctest (scripts/sanitize.sh -R Idx). On 2 cores: about 25 min to build from
# scratch, 35 min to test (the exhaustive 2^32-pattern format tests take 3-25 min each under ASan).
#
# Runtime options (override by setting them yourself): leaks are checked (no suppressions are
# needed: oneDNN's JIT, libgomp's thread pool and libhdf5 report nothing), UBSan stops at the first
# report so a finding fails its test. The HDF5 readers hand untrusted files to libhdf5 in a child
# process (src/io/h5.h) whose stderr goes to /dev/null: the files of tests/fuzz/libhdf5/ crash the
# library there (ASan ends that child, silently), and the parent turns it into a UserError.
# Last full run (2026-11-29, 2 cores, loaded): 848/849 in 21 min, 0 UBSan / LSan reports; the one
# failure (that child's report breaking a one-line message) is fixed.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
build=${SYSTRAIN_ASAN_BUILD:-build-asan}
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSYSTRAIN_SANITIZE=ON "${launcher[@]}" >/dev/null
cmake --build "$build" -j "${SYSTRAIN_ASAN_JOBS:-$(nproc)}"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# RoundArray.VectorizedEqualsScalarForEveryPattern alone takes ~25 min under ASan on 2 cores.
ctest --test-dir "$build" --output-on-failure --timeout 3600 -j "${SYSTRAIN_ASAN_TEST_JOBS:-2}" "$@"
