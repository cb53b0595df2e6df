#!/bin/sh
# The whole test suite: one build with AddressSanitizer and
# UndefinedBehaviorSanitizer (clang, so the libFuzzer targets come from the
# same build), warnings as errors, then every test through CTest: unit
# tests, fuzz corpus replays, short fuzzing runs, and integration tests
# against real servers (Postfix, aiosmtpd, our fault injector) on 127.0.0.1.
#
#   MSV_FUZZ_SECONDS  seconds per fuzz target (default 20)
#   MSV_BUILD_DIR     build directory (default build-test; gcc check in *-gcc,
#                     ThreadSanitizer in *-tsan)
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh

BUILD=${MSV_BUILD_DIR:-build-test}
JOBS=$(nproc)
CC=clang cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DMSV_ASAN=ON -DMSV_UBSAN=ON -DMSV_FUZZ=ON -DMSV_WERROR=ON \
    -DMSV_FUZZ_SECONDS="${MSV_FUZZ_SECONDS:-20}" >/dev/null
cmake --build "$BUILD" -j"$JOBS"
# gcc at -O2 sees other warnings (format truncation, flow analysis) than
# clang: compile everything once more with it, warnings as errors.
CC=gcc cmake -S . -B "$BUILD-gcc" -DCMAKE_BUILD_TYPE=Release -DMSV_WERROR=ON >/dev/null
cmake --build "$BUILD-gcc" -j"$JOBS" >/dev/null

# ThreadSanitizer build of the concurrency tests (the pool's threads, the
# driver's cancellation from another thread, the queue's group commit, the
# audit trail's appenders and reader, the OAuth2 token cache).
CC=clang cmake -S . -B "$BUILD-tsan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMSV_TSAN=ON \
    -DMSV_WERROR=ON >/dev/null
cmake --build "$BUILD-tsan" -j"$JOBS" --target unit_pool_test_pool unit_pool_test_pool_clock unit_smtp_test_client \
    unit_queue_test_queue unit_audit_test_chain unit_audit_test_reader unit_oauth2_test_oauth2 \
    missive_cli missived >/dev/null

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export TSAN_OPTIONS=halt_on_error=1
(cd "$BUILD-tsan" && ctest --output-on-failure \
    -R 'pool/test_pool|smtp/test_client|queue/test_queue|audit/test_chain|audit/test_reader|oauth2/test_oauth2')
tests/tsan/pool_tls.sh "$BUILD-tsan/src/cli/missive"
tests/tsan/daemon.sh "$BUILD-tsan"
cd "$BUILD"
ctest --output-on-failure -j"$JOBS"
