#!/usr/bin/env bash
# `npm test`: installs the toolchain if needed, rebuilds lib/, and runs every
# suite: the Zig unit tests, the linters (scripts/lint.sh), the C tests
# (tests/c/run.sh), the Bun tests
# (tests/bun), the type check, the package build and the install check
# (scripts/check-install.sh). Each suite's output is shown as it runs; its
# counts are read from that output. The last line is `N passed, N failed`
# over all suites; the exit status is 1 when anything failed or a suite
# could not run.
#
# Time limits per step, in seconds (environment): LIBFORKS_BUILD_TIMEOUT
# (900), LIBFORKS_UNIT_TIMEOUT (600), LIBFORKS_C_TIMEOUT (900),
# LIBFORKS_BUN_TIMEOUT (900), LIBFORKS_TARGET_TIMEOUT (720 per target
# suite), LIBFORKS_DARWIN_PATHS_TIMEOUT (1800), LIBFORKS_CHECK_TIMEOUT (300).
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
ROOT=$PWD

export NO_COLOR=1 # plain logs: bun test and tsc print no ANSI colours
BIN=$ROOT/node_modules/.bin
ZIG=(python3 -m ziglang)

LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/libforks-test.XXXXXX")
CURRENT_PID=
cleanup() {
  [[ -n "$CURRENT_PID" ]] && kill -TERM "$CURRENT_PID" 2>/dev/null
  rm -rf "$LOGDIR"
}
trap cleanup EXIT
trap 'echo "test.sh: interrupted" >&2; exit 130' INT TERM

TOTAL_PASSED=0
TOTAL_FAILED=0
RESULTS=()

# record NAME PASSED FAILED [NOTE]
record() {
  local name=$1 passed=$2 failed=$3 note=${4:-}
  TOTAL_PASSED=$((TOTAL_PASSED + passed))
  TOTAL_FAILED=$((TOTAL_FAILED + failed))
  local verdict=ok
  ((failed > 0)) && verdict=FAILED
  local line
  line=$(printf '  %-15s %-6s %4d pass %4d fail' "$name" "$verdict" "$passed" "$failed")
  [[ -n "$note" ]] && line+="  ($note)"
  RESULTS+=("$line")
  echo "--> $name: $verdict, $passed pass, $failed fail${note:+ ($note)}"
}

# run NAME TIMEOUT CMD...: runs CMD from the repository root with no stdin,
# shows its output (stdout and stderr) as it comes, keeps it in
# $LOGDIR/NAME.log, and returns its exit status (124 on time-out). The
# output goes to a file, not a pipe, so a stray process that keeps the
# output open cannot hold up the run.
run() {
  local name=$1 limit=$2
  shift 2
  local log=$LOGDIR/$name.log
  echo
  echo "==> $name: $*"
  local start=$SECONDS
  : >"$log"
  timeout --kill-after=30 "$limit" "$@" </dev/null >"$log" 2>&1 &
  CURRENT_PID=$!
  tail -n +1 -f --pid="$CURRENT_PID" "$log"
  wait "$CURRENT_PID"
  local status=$?
  CURRENT_PID=
  ((status == 124)) && echo "--> $name: timed out after ${limit}s"
  echo "--> $name: exit status $status after $((SECONDS - start))s"
  return "$status"
}

# why STATUS: how a step that gave no counts ended.
why() {
  if (($1 == 124)); then echo "timed out"; else echo "exit status $1"; fi
}

# Output of the last run, without ANSI escapes.
plain() {
  sed -E 's/\x1b\[[0-9;?]*[A-Za-z]//g' "$LOGDIR/$1.log"
}

echo "==> toolchain: scripts/toolchain.sh"
if ! bash scripts/toolchain.sh </dev/null; then
  echo "--> toolchain: FAILED, nothing can run"
  echo "0 passed, 1 failed"
  exit 1
fi

# --- Native build: rebuilds lib/<platform>/ --------------------------------------
# Not a test in the counts, but a failure counts as one.
run build "${LIBFORKS_BUILD_TIMEOUT:-900}" "${ZIG[@]}" build --summary all --color off
status=$?
((status == 0)) || record build 0 1 "zig build: $(why "$status"), lib/ was not rebuilt"

# --- Zig unit tests ---------------------------------------------------------------
# `zig build unit --summary all` ends with a line such as
#   Build Summary: 3/3 steps succeeded; 9/9 tests passed[; 1 skipped][; 2 failed][; 1 leaked]
run unit "${LIBFORKS_UNIT_TIMEOUT:-600}" "${ZIG[@]}" build unit --summary all --color off
status=$?
summary=$(plain unit | grep -E '^Build Summary:' | tail -n 1)
if [[ "$summary" =~ ([0-9]+)/([0-9]+)\ tests\ passed(.*)$ ]]; then
  pass=${BASH_REMATCH[1]} total=${BASH_REMATCH[2]} rest=${BASH_REMATCH[3]}
  skip=0 leak=0
  [[ "$rest" =~ ^\;\ ([0-9]+)\ skipped ]] && skip=${BASH_REMATCH[1]}
  [[ "$rest" =~ ([0-9]+)\ leaked ]] && leak=${BASH_REMATCH[1]}
  # passed counts leaking tests too; they fail the step.
  pass=$((pass - leak))
  fail=$((total - pass - skip))
  note=
  ((skip > 0)) && note="$skip skipped"
  if ((status != 0 && fail == 0)); then
    fail=1
    note=$(why "$status")
  fi
  record "zig unit" "$pass" "$fail" "$note"
else
  record "zig unit" 0 1 "no test results, $(why "$status")"
fi

# --- Suites that print `N passed, N failed` ------------------------------------------
# suite NAME TIMEOUT SCRIPT [ARG...]: runs `bash SCRIPT ARG...` if SCRIPT
# exists and records the counts of its last `N passed, N failed` line (a
# `word:` may precede it).
suite() {
  local name=$1 limit=$2 script=$3
  shift 3
  if [[ ! -f "$script" ]]; then
    echo
    echo "==> $name: skipped, $script does not exist"
    RESULTS+=("$(printf '  %-15s %-6s' "$name" absent)")
    return
  fi
  run "$name" "$limit" bash "$script" "$@"
  local status=$?
  local line
  line=$(plain "$name" | grep -E '^([A-Za-z_-]+: *)?[0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)? *$' | tail -n 1)
  if [[ "$line" =~ ([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
    local pass=${BASH_REMATCH[1]} fail=${BASH_REMATCH[2]} note=
    if ((status != 0 && fail == 0)); then
      fail=1
      note=$(why "$status")
    fi
    record "$name" "$pass" "$fail" "$note"
  else
    record "$name" 0 1 "no 'N passed, N failed' line, $(why "$status")"
  fi
}

# The linters (scripts/lint.sh): import cycles, zig fmt, ShellCheck, Biome.
suite lint "${LIBFORKS_CHECK_TIMEOUT:-300}" scripts/lint.sh

# The C tests; then again under ASan + UBSan and valgrind; then the fuzzer
# over the server's request decoder (1,000,000 executions).
suite c "${LIBFORKS_C_TIMEOUT:-900}" tests/c/run.sh
suite c-sanitizers "${LIBFORKS_C_TIMEOUT:-900}" tests/c/sanitize.sh
suite fuzz "${LIBFORKS_FUZZ_TIMEOUT:-600}" tests/fuzz/run.sh

# --- Bun tests ---------------------------------------------------------------------
# bun test ends with lines such as ` 12 pass`, ` 1 skip`, ` 2 fail`, ` 1 error`.
if [[ -d tests/bun ]] && [[ -n "$(find tests/bun -type f -regextype posix-extended -regex '.*[._](test|spec)\.(ts|tsx|js|jsx|mjs|cjs|mts|cts)$' -print -quit)" ]]; then
  run bun "${LIBFORKS_BUN_TIMEOUT:-900}" "$BIN/bun" test tests/bun
  status=$?
  count() { plain bun | grep -E "^ *[0-9]+ $1\$" | tail -n 1 | tr -dc '0-9'; }
  pass=$(count pass) fail=$(count fail) errors=$(count 'errors?') skip=$(count skip) todo=$(count todo)
  pass=${pass:-0} fail=${fail:-0} errors=${errors:-0}
  note=
  [[ -n "$skip$todo" ]] && note="${skip:-0} skipped, ${todo:-0} todo"
  if ((status != 0 && fail == 0)); then
    fail=$((errors > 0 ? errors : 1))
    note=$(why "$status")
    ((errors > 0)) && note+=", $errors errors"
  elif ((status == 0 && pass == 0 && fail == 0)); then
    fail=1
    note="no test ran"
  fi
  record "bun" "$pass" "$fail" "$note"
else
  echo
  echo "==> bun: skipped, no test files in tests/bun"
  RESULTS+=("$(printf '  %-15s %-6s' bun absent)")
fi

# --- The other Linux targets ----------------------------------------------------------
# scripts/test-targets.sh runs the C suite and the Bun suite of each target's
# prebuilt library in a root holding that target's C library: musl natively
# (under a minute each), arm64 under qemu-user (C suite 1.5 to 3 min, Bun
# suite 5 to 7 min on a shared 2-core machine; all six took 15 min).
# LIBFORKS_TARGETS lists the targets and LIBFORKS_TARGET_SUITES the suites
# (c, bun); by default every target runs both. The 720 s limit per suite
# is 1.7 times the slowest seen (420 s), and six of them at their limit
# would still end within 72 min. An empty LIBFORKS_TARGETS leaves them
# out, and the summary says so.
targets=${LIBFORKS_TARGETS-linux-x64-musl linux-arm64 linux-arm64-musl}
target_suites=${LIBFORKS_TARGET_SUITES-c bun}
if [[ -z "$targets" ]]; then
  echo
  echo "==> targets: left out, LIBFORKS_TARGETS is empty"
  RESULTS+=("$(printf '  %-15s %-6s' targets "left out (LIBFORKS_TARGETS is empty)")")
fi
for target in $targets; do
  for target_suite in $target_suites; do
    suite "$target_suite-${target#linux-}" "${LIBFORKS_TARGET_TIMEOUT:-720}" scripts/test-targets.sh "$target" "$target_suite"
  done
done

# --- macOS's code paths, on Linux -----------------------------------------------------
# tests/darwin-paths/run.sh: the darwin-paths build (-Ddarwin-paths=true,
# into zig-out/darwin-paths/) under an emulation of XNU's datagram socket
# limits: the emulation's own check, the Zig unit tests, the C suite (its
# known failures, listed with their reasons, counted apart), the Bun
# suite (the same, known-failures-bun), and the check that lib/'s dylibs
# export the C API only.
suite darwin-paths "${LIBFORKS_DARWIN_PATHS_TIMEOUT:-1800}" tests/darwin-paths/run.sh

# --- Type check: one test ------------------------------------------------------------
if run typecheck "${LIBFORKS_CHECK_TIMEOUT:-300}" "$BIN/tsc" --noEmit -p . --pretty false; then
  record typecheck 1 0
elif (($? == 124)); then
  record typecheck 0 1 "timed out"
else
  errors=$(plain typecheck | grep -cE '^[^ ].*\([0-9]+,[0-9]+\): error TS')
  record typecheck 0 1 "$errors type errors"
fi

# --- Package build: one test -----------------------------------------------------------
# scripts/check-package.sh: tsup, then dist/index.js and dist/index.d.ts exist,
# dist/index.js imports ../lib/... with { type: "file" }, and Bun loads it.
if run package "${LIBFORKS_CHECK_TIMEOUT:-300}" bash scripts/check-package.sh; then
  record package 1 0
else
  status=$?
  record package 0 1 "$( ((status == 124)) && why "$status")"
fi

# --- The package as users get it ----------------------------------------------------
# scripts/check-install.sh: packs the tarball, installs it into an empty
# project with no compiler on PATH, type-checks a strict program against it
# and runs it from source, as a bundle from / and as a compiled executable
# without TMPDIR (about 30 s).
suite install "${LIBFORKS_CHECK_TIMEOUT:-300}" scripts/check-install.sh

# --- Summary ---------------------------------------------------------------------------
echo
echo "==> summary"
printf '%s\n' "${RESULTS[@]}"
if ((TOTAL_PASSED == 0 && TOTAL_FAILED == 0)); then
  echo "  no test ran"
  TOTAL_FAILED=1
fi
echo "$TOTAL_PASSED passed, $TOTAL_FAILED failed"
((TOTAL_FAILED == 0))
