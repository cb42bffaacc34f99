#!/usr/bin/env bash
# The C tests under AddressSanitizer + UndefinedBehaviorSanitizer (all of
# them), then under valgrind's memcheck (those that do not crash children on
# purpose or measure time). Ends with `N passed, N failed` over both.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

passed=0
failed=0
echo "==> C tests under ASan and UBSan"
if BUILD_SUFFIX=-asan CFLAGS_EXTRA="-fsanitize=address,undefined -fno-sanitize-recover=undefined" \
   ASAN_OPTIONS=detect_leaks=0:handle_segv=0:handle_abort=0:abort_on_error=1 \
   bash tests/c/run.sh >/tmp/libforks-asan.$$ 2>&1; then :; fi
cat /tmp/libforks-asan.$$
summary=$(tail -n 1 /tmp/libforks-asan.$$)
rm -f /tmp/libforks-asan.$$
if [[ "$summary" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
  passed=$((passed + BASH_REMATCH[1])); failed=$((failed + BASH_REMATCH[2]))
else
  failed=$((failed + 1))
fi

echo "==> C tests under valgrind"
if ! command -v valgrind >/dev/null; then
  echo "valgrind missing"; failed=$((failed + 1))
else
  # valgrind runs the plain build (run.sh without sanitizers).
  bash tests/c/run.sh >/dev/null 2>&1 || true
  # test_clean is left out: valgrind cannot follow fexecve of a memfd.
  for name in test_seed_api test_wait test_errors test_exec test_hygiene test_fork_symbol test_doorbell test_async_fork \
      test_share_token test_peer_writes test_no_abstract_name; do
    if LIBFORKS_TEST_DIR=tests/c/build timeout 300 valgrind -q --error-exitcode=99 \
        tests/c/build/$name >/tmp/libforks-vg.$$ 2>&1; then
      echo "PASS $name (valgrind)"; passed=$((passed + 1))
    else
      echo "FAIL $name (valgrind)"; grep -v "unhandled amd64-linux syscall: 434\|write your own handler\|README_MISSING_SYSCALL\|Nevertheless we consider\|valgrind.org/support" /tmp/libforks-vg.$$ | tail -30
      failed=$((failed + 1))
    fi
  done
  rm -f /tmp/libforks-vg.$$
fi
echo "$passed passed, $failed failed"
((failed == 0))
