#!/usr/bin/env bash
# The darwin-paths suite: macOS's code paths, run on Linux. Builds the
# darwin-paths library (python3 -m ziglang build -Ddarwin-paths=true, into
# zig-out/darwin-paths/), then runs, with xnu_dgram.so preloaded (XNU's
# AF_UNIX datagram limits, see xnu_dgram.c):
#   1. test_xnu_dgram.c, the check of the emulation itself;
#   2. the Zig unit tests of the darwin-paths build;
#   3. the C suite (tests/c/run.sh) against that library;
#   4. the Bun suite (DARWIN_PATHS_BUN_FILES, default tests/bun), whose
#      known failures are listed, with their causes, in
#      known-failures-bun.
# LIBFORKS_DARWIN_PATHS=1 tells the tests which checks cannot hold on macOS
# (each says why where it is adjusted). Tests listed in known-failures (C)
# or known-failures-bun are counted apart; one of them that passes counts
# as a failure. Ends
# with `darwin-paths: N passed, N failed` over all four (programs for 1-3
# count one each, Bun tests one each). DARWIN_PATHS_PARTS (default
# "shim unit c bun exports") picks the parts; exports checks that the
# committed macOS dylibs in lib/ export the C API only (check_exports.py).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
root=$PWD
parts=${DARWIN_PATHS_PARTS:-shim unit c bun exports}
export NO_COLOR=1

work=$(mktemp -d "${TMPDIR:-/tmp}/libforks-darwin-paths.XXXXXX")
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
known_failures=()
note() { echo "darwin-paths: $*"; }

if ! python3 -m ziglang build -Ddarwin-paths=true --color off; then
  note "the darwin-paths build failed"
  echo "darwin-paths: 0 passed, 1 failed"
  exit 1
fi
lib_dir=$root/zig-out/darwin-paths
shim=$work/xnu_dgram.so
if ! cc -O1 -Wall -Wextra -Werror -shared -fPIC -o "$shim" tests/darwin-paths/xnu_dgram.c -ldl; then
  echo "darwin-paths: 0 passed, 1 failed"
  exit 1
fi
# One accounting table per part, so a part's leftovers never reach the next.
table() { echo "$work/table-$1"; }
preload() { env LD_PRELOAD="$shim" XNU_DGRAM_TABLE="$(table "$1")" LIBFORKS_DARWIN_PATHS=1 "${@:2}"; }

# The emulation's counters (xnu_dgram.c, struct header) after a part: they
# show the limits were met, not only configured.
stats() {
  local file
  file=$(table "$1")
  [[ -f "$file" ]] || return 0
  python3 - "$file" "$1" <<'EOF'
import struct, sys
with open(sys.argv[1], "rb") as f:
    head = f.read(64)
magic, slots, pairs, sends, emsgsize, enobufs, resets, overwritten, untracked = struct.unpack("<II7Q", head)
print(f"darwin-paths: {sys.argv[2]}: {pairs} datagram pairs, {sends} sends, {emsgsize} EMSGSIZE, {enobufs} ENOBUFS, "
      f"{resets} queue counts reset, {overwritten} slots taken over from earlier sockets (closed or live), "
      f"{untracked} sends to untracked peers")
EOF
}

start=$SECONDS
for part in $parts; do
  case $part in
    shim)
      if cc -O1 -Wall -Wextra -Werror -o "$work/test_xnu_dgram" tests/darwin-paths/test_xnu_dgram.c &&
        preload shim timeout 60 "$work/test_xnu_dgram"; then
        passed=$((passed + 1))
      else
        note "FAIL test_xnu_dgram"
        failed=$((failed + 1))
      fi
      ;;
    unit)
      log=$work/unit.log
      preload unit python3 -m ziglang build unit -Ddarwin-paths=true --summary all --color off >"$log" 2>&1
      status=$?
      cat "$log"
      summary=$(grep -E '^Build Summary:' "$log" | tail -n 1)
      if [[ "$summary" =~ ([0-9]+)/([0-9]+)\ tests\ passed ]]; then
        passed=$((passed + BASH_REMATCH[1]))
        failed=$((failed + BASH_REMATCH[2] - BASH_REMATCH[1]))
        [[ "$summary" =~ ([0-9]+)\ skipped ]] && failed=$((failed - BASH_REMATCH[1])) && note "unit: ${BASH_REMATCH[1]} skipped"
        ((status != 0)) && [[ ! "$summary" =~ failed ]] && failed=$((failed + 1))
      else
        note "unit: no test results (exit status $status)"
        failed=$((failed + 1))
      fi
      ;;
    c)
      log=$work/c.log
      LIBFORKS_LIB_DIR=$lib_dir BUILD_SUFFIX=-darwin-paths \
        LIBFORKS_TEST_RUNNER="env LD_PRELOAD=$shim XNU_DGRAM_TABLE=$(table c) LIBFORKS_DARWIN_PATHS=1" \
        bash tests/c/run.sh >"$log" 2>&1
      cat "$log"
      # macOS has no PR_SET_PDEATHSIG: children of a server a test killed
      # outlive it (README, Platforms). Those are this run's programs,
      # known by their path: end them so that none outlives the suite.
      left=0
      for exe in /proc/[0-9]*/exe; do
        if [[ $(readlink "$exe" 2>/dev/null) == "$root/tests/c/build-darwin-paths/"* ]]; then
          pid=${exe#/proc/}
          kill -KILL "${pid%/exe}" 2>/dev/null && left=$((left + 1))
        fi
      done
      ((left > 0)) && note "c: ended $left processes of this run that outlived their server"
      if ! grep -qE '^[0-9]+ passed, [0-9]+ failed' "$log"; then
        note "c: no 'N passed, N failed' line"
        failed=$((failed + 1))
      fi
      known=$(grep -vE '^(#|$)' tests/darwin-paths/known-failures | awk '{print $1}')
      while read -r verdict name _; do
        if grep -qxF "$name" <<<"$known"; then
          if [[ $verdict == PASS ]]; then
            note "c: $name passes now: take it out of tests/darwin-paths/known-failures"
            failed=$((failed + 1))
          else
            known_failures+=("$name")
          fi
        elif [[ $verdict == PASS ]]; then
          passed=$((passed + 1))
        else
          failed=$((failed + 1))
        fi
      done < <(grep -E '^(PASS|FAIL) test_' "$log")
      ;;
    bun)
      log=$work/bun.log
      # shellcheck disable=SC2086 # a list of files
      preload bun env LIBFORKS_PATH="$lib_dir/libforks.so" "$root/node_modules/.bin/bun" test ${DARWIN_PATHS_BUN_FILES:-tests/bun} >"$log" 2>&1
      status=$?
      cat "$log"
      # Each test once (bun repeats the failures at the end), by its full
      # name; known ones are counted apart, as the C suite's.
      verdicts=$work/bun-verdicts
      sed -nE 's/^\((pass|fail)\) (.*) \[[0-9.]+m?s\]$/\1\t\2/p' "$log" | sort -u >"$verdicts"
      known=$work/bun-known flaky=$work/bun-flaky
      grep -vE '^(#|$)' tests/darwin-paths/known-failures-bun | cut -f2- | sort -u >"$known"
      grep -E $'^FLAKY\t' tests/darwin-paths/known-failures-bun | cut -f2- | sort -u >"$flaky"
      pass=0 fail=0
      while IFS=$'\t' read -r verdict name; do
        if grep -qxF -- "$name" "$known"; then
          if [[ $verdict == pass ]] && grep -qxF -- "$name" "$flaky"; then
            pass=$((pass + 1))
            note "bun: \"$name\" (listed as flaky) passed this time"
          elif [[ $verdict == pass ]]; then
            note "bun: \"$name\" passes now: take it out of tests/darwin-paths/known-failures-bun"
            fail=$((fail + 1))
          else
            known_failures+=("bun: $name")
          fi
        elif [[ $verdict == pass ]]; then
          pass=$((pass + 1))
        else
          fail=$((fail + 1))
        fi
      done <"$verdicts"
      # What bun counts beyond the tests named (an error between tests),
      # or a run that ended without its summary, is one failure more.
      reported=$(grep -E '^ *[0-9]+ fail$' "$log" | tail -n 1 | tr -dc '0-9')
      named=$(grep -c $'^fail\t' "$verdicts")
      if [[ -z "$reported" ]]; then
        ((status != 0)) && fail=$((fail + 1))
      elif ((reported > named)); then
        fail=$((fail + reported - named))
      fi
      ((pass == 0)) && fail=$((fail + 1))
      passed=$((passed + pass))
      failed=$((failed + fail))
      ;;
    exports)
      for dylib in lib/darwin-x64/libforks.dylib lib/darwin-arm64/libforks.dylib; do
        if python3 tests/darwin-paths/check_exports.py "$dylib"; then
          passed=$((passed + 1))
        else
          failed=$((failed + 1))
        fi
      done
      ;;
    *)
      note "unknown part $part"
      failed=$((failed + 1))
      ;;
  esac
  stats "$part"
done
((${#known_failures[@]} > 0)) && note "${#known_failures[@]} known failures (tests/darwin-paths/known-failures*): $(printf '%s; ' "${known_failures[@]}")"
note "$((SECONDS - start))s"
echo "darwin-paths: $passed passed, $failed failed"
((failed == 0))
