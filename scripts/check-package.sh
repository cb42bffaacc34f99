#!/usr/bin/env bash
# The package build check (a step of scripts/test.sh): tsup builds
# dist/index.js and dist/index.d.ts; dist/index.js must import the prebuilt
# native files relative to itself ("../lib/<platform>/...", dist/ sits beside
# lib/) with their `with { type: "file" }` attribute, and must load in Bun.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=node_modules/.bin

fail() {
  echo "package: $*"
  exit 1
}

# On a tsup failure, check what was built anyway, then fail.
tsup_status=0
"$BIN/tsup" || tsup_status=$?

[[ -s dist/index.js ]] || fail "dist/index.js was not built"

imports=$(grep -E '^import .* from "\.\./lib/' dist/index.js || true)
total=$(grep -c . <<<"$imports" || true)
with_file=$(grep -cE ' with \{ type: "file" \};$' <<<"$imports" || true)
((total > 0)) || fail "dist/index.js imports nothing from ../lib/"
if ((with_file != total)); then
  echo "$imports"
  fail "only $with_file of the $total imports from ../lib/ in dist/index.js keep with { type: \"file\" }"
fi
grep -qF 'from "../lib/linux-x64/libforks.so" with { type: "file" };' dist/index.js ||
  fail 'dist/index.js does not import "../lib/linux-x64/libforks.so" with { type: "file" }'
echo "package: dist/index.js imports its $total prebuilt files from ../lib/ with { type: \"file\" }"

version=$("$BIN/bun" -e 'import("./dist/index.js").then((m) => console.log(m.nativeVersion))') ||
  fail "bun cannot load dist/index.js"
[[ -n "$version" ]] || fail "bun loads dist/index.js, but its nativeVersion is empty"
echo "package: bun loads dist/index.js, nativeVersion $version"

[[ -s dist/index.d.ts ]] || fail "dist/index.d.ts was not built"
((tsup_status == 0)) || fail "tsup failed (exit status $tsup_status)"
echo "package: dist/index.js and dist/index.d.ts built"
