#!/usr/bin/env bash
# Builds and runs the C tests against lib/<platform>/libforks.so and the
# public header. Each tests/c/test_*.c is one program; it passes when it
# exits 0 within its time limit. Ends with `N passed, N failed` (programs).
# CC, CFLAGS_EXTRA (e.g. "-fsanitize=address,undefined"),
# LIBFORKS_LIB_DIR and LIBFORKS_TEST_RUNNER (a command prefix that runs
# each test, e.g. "chroot DIR": scripts/test-targets.sh) may be set.
# Arguments, if any, name the tests to run (test_kill or
# tests/c/test_kill.c); by default all run. Run from anywhere.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
root=$PWD
case "$(uname -m)" in
  x86_64) platform=linux-x64 ;;
  aarch64) platform=linux-arm64 ;;
  *) echo "run.sh: unsupported machine $(uname -m)"; echo "0 passed, 1 failed"; exit 1 ;;
esac
lib_dir=${LIBFORKS_LIB_DIR:-$root/lib/$platform}
cc=${CC:-cc} # may be a command with arguments ("zig cc -target ..."): used unquoted
out=$root/tests/c/build${BUILD_SUFFIX:-}
mkdir -p "$out"

# A shared library for the fork_symbol tests.
$cc -shared -fPIC -O1 -o "$out/libentry.so" tests/c/fixtures/entry_lib.c || exit 1

passed=0
failed=0
failures=()
sources=(tests/c/test_*.c)
if (($# > 0)); then
  sources=()
  for name in "$@"; do
    name=$(basename "$name" .c)
    [[ -f tests/c/$name.c ]] || { echo "run.sh: no test tests/c/$name.c"; echo "0 passed, 1 failed"; exit 1; }
    sources+=("tests/c/$name.c")
  done
fi
for source in "${sources[@]}"; do
  name=$(basename "$source" .c)
  if ! $cc -O1 -g -Wall -Wextra -Werror -rdynamic ${CFLAGS_EXTRA:-} -I lib/include -o "$out/$name" "$source" \
      -L "$lib_dir" -lforks -Wl,-rpath,"$lib_dir" -lpthread -ldl; then
    echo "FAIL $name (does not compile)"
    failed=$((failed + 1)); failures+=("$name"); continue
  fi
  start=$(date +%s%N)
  # shellcheck disable=SC2086 # LIBFORKS_TEST_RUNNER is a command prefix
  if LIBFORKS_TEST_DIR="$out" timeout --kill-after=5 "${LIBFORKS_TEST_TIMEOUT:-120}" ${LIBFORKS_TEST_RUNNER:-} "$out/$name" </dev/null; then
    elapsed_ms=$((($(date +%s%N) - start) / 1000000))
    printf 'PASS %s (%d.%01ds)\n' "$name" $((elapsed_ms / 1000)) $((elapsed_ms % 1000 / 100))
    passed=$((passed + 1))
  else
    echo "FAIL $name (exit status $?)"
    failed=$((failed + 1)); failures+=("$name")
  fi
done
((failed > 0)) && echo "failed: ${failures[*]}"
echo "$passed passed, $failed failed"
((failed == 0))
