#!/bin/sh
# Builds examples/compiled/app.ts into a single executable with
# `bun build --compile`, copies it alone to a fresh directory, runs it from
# / and checks what it prints. Exits non-zero on any difference.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bun="$root/node_modules/.bin/bun"

build_dir=$(mktemp -d /tmp/libforks-compiled-build.XXXXXX)
run_dir=$(mktemp -d /tmp/libforks-compiled-run.XXXXXX)
trap 'rm -rf "$build_dir" "$run_dir"' EXIT

echo "building $build_dir/app"
"$bun" build --compile "$here/app.ts" --outfile "$build_dir/app" >/dev/null
cp "$build_dir/app" "$run_dir/app"
rm -rf "$build_dir"

echo "running $run_dir/app from /"
output=$(cd / && "$run_dir/app")
printf '%s\n' "$output" | sed 's/^/  /'

expected='snapshot: sh exited with 3
snapshot: read "through fd 5" (exit 0)
clean: sh exited with 4
ok'
actual=$(printf '%s\n' "$output" | grep -v '^libforks ')
if [ "$actual" != "$expected" ]; then
  echo "FAILED: unexpected output; expected:" >&2
  printf '%s\n' "$expected" | sed 's/^/  /' >&2
  exit 1
fi
printf '%s\n' "$output" | grep -q '^libforks [0-9]' || { echo "FAILED: no version line" >&2; exit 1; }
echo "compiled executable works"
