#!/usr/bin/env bash
# The package as users get it (a suite of scripts/test.sh): packs the
# tarball, installs it with `bun add ./libforks-<version>.tgz` into an empty
# project whose PATH holds no C compiler and no Zig, type-checks a strict
# user program (tests/install/) against it, and runs that program from
# source, as a `bun build --outdir` bundle from /, and as a `bun build
# --compile` executable copied alone into an empty directory with a fresh
# HOME and TMPDIR unset, missing, or mounted noexec. The program is its own
# worker: it spawns three Bun workers of itself and reads what they write
# through the pipes it passed them. Also: package-lock.json is in sync
# (`npm ci`), the tarball holds what a user needs and nothing else, its
# index.d.ts declares the public API only, and Node.js gets a clear error.
# Ends with `N passed, N failed`; 25 to 70 s here, depending on the load
# (the two type checks take most of it).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
ROOT=$PWD
export NO_COLOR=1

BUN=$(readlink -f "$ROOT/node_modules/.bin/bun")
NODE=$(command -v node)
TSC=$ROOT/node_modules/typescript/bin/tsc
VERSION=$("$NODE" -p 'require("./package.json").version')

WORK=$(mktemp -d "${TMPDIR:-/tmp}/libforks-install.XXXXXX")
trap 'chmod -R u+w "$WORK" 2>/dev/null; rm -rf "$WORK"' EXIT
LOG=$WORK/log
PASSED=0
FAILED=0

# check NAME CMD...: runs CMD in a subshell (its cd stays there), output
# in $LOG; counts and reports it.
check() {
  local name=$1 start=$SECONDS
  shift
  if ("$@") >"$LOG" 2>&1; then
    PASSED=$((PASSED + 1))
    echo "ok      $name ($((SECONDS - start))s)"
  else
    FAILED=$((FAILED + 1))
    echo "FAILED  $name ($((SECONDS - start))s)"
    sed 's/^/    /' "$LOG" | tail -n 40
  fi
}

# A PATH as a user without build tools has: bun, node and the basic
# commands, no cc/gcc/clang/tcc/zig.
BIN=$WORK/bin
mkdir -p "$BIN"
ln -s "$BUN" "$BIN/bun"
ln -s "$NODE" "$BIN/node"
for tool in sh bash env cat ls cp mkdir rm tar gzip grep sed; do
  found=$(command -v "$tool") && ln -s "$found" "$BIN/$tool"
done
USER_PATH=$BIN
# as_user CMD...: runs CMD with that PATH, a fresh HOME and its own TMPDIR.
as_user() {
  env -i PATH="$USER_PATH" HOME="$WORK/home" TMPDIR="$WORK/tmp" NO_COLOR=1 "$@"
}
mkdir -p "$WORK/home" "$WORK/tmp"

no_build_tools() {
  local tool
  for tool in cc gcc clang tcc zig; do
    if as_user sh -c "command -v $tool"; then
      echo "$tool is on the user's PATH"
      return 1
    fi
  done
}

lock_in_sync() {
  mkdir -p "$WORK/lock"
  cp package.json package-lock.json "$WORK/lock/"
  # Offline with an empty cache: only the two files decide.
  (cd "$WORK/lock" && npm_config_cache="$WORK/npm-cache" npm ci --dry-run --ignore-scripts --offline --no-audit --no-fund)
}

TARBALL=$WORK/libforks-$VERSION.tgz
pack() {
  npm pack --pack-destination "$WORK" --loglevel=error && [[ -s "$TARBALL" ]]
}

tarball_contents() {
  local listing missing=0 path
  listing=$(tar -tzf "$TARBALL" | sed 's|^package/||' | sort)
  for path in package.json README.md LICENSE NOTICE CHANGELOG.md dist/index.js dist/index.d.ts dist/node.js \
    lib/include/libforks.h lib/include/libforks_ext.h lib/linux-x64/libforks.so lib/linux-x64/libforks-server lib/linux-arm64/libforks.so \
    lib/linux-x64-musl/libforks.so lib/linux-arm64-musl/libforks.so lib/darwin-x64/libforks.dylib lib/darwin-arm64/libforks.dylib; do
    grep -qxF "$path" <<<"$listing" || { echo "missing from the tarball: $path"; missing=1; }
  done
  local extra
  extra=$(grep -vE '^(package\.json|README\.md|LICENSE|NOTICE|CHANGELOG\.md|dist/(index\.js|index\.d\.ts|node\.js)|lib/(include/libforks(_ext)?\.h|[a-z0-9-]+/(libforks\.(so|dylib)|libforks-server)))$' <<<"$listing")
  [[ -z "$extra" ]] || { echo "the tarball holds files a user does not need:"; echo "$extra"; missing=1; }
  # The prebuilt programs keep their exec bit.
  tar -tvzf "$TARBALL" package/lib/linux-x64/libforks-server | grep -q '^-rwx' || { echo "libforks-server lost its exec bit"; missing=1; }
  echo "$(wc -l <<<"$listing") files, $(du -k "$TARBALL" | cut -f1) KiB"
  return "$missing"
}

APP=$WORK/app
install_tarball() {
  mkdir -p "$APP"
  cp tests/install/app.ts tests/install/writer.ts tests/install/tsconfig.json "$APP/"
  printf '{ "name": "user-app", "private": true, "type": "module" }\n' >"$APP/package.json"
  cp "$TARBALL" "$APP/"
  (cd "$APP" && as_user bun add "./libforks-$VERSION.tgz") || return 1
  # Only the package itself: no devDependencies, tests, bench or sources.
  local installed
  # npm package names: no newline or glob character to trip over.
  # shellcheck disable=SC2010
  installed=$(cd "$APP/node_modules" && ls -A | grep -vxE '\.bin|\.cache' | tr '\n' ' ')
  [[ "$installed" == "libforks " ]] || { echo "node_modules holds: $installed"; return 1; }
  for dir in tests bench src zig examples node_modules; do
    [[ ! -e "$APP/node_modules/libforks/$dir" ]] || { echo "node_modules/libforks/$dir was installed"; return 1; }
  done
}

# The user brings TypeScript and Bun's types; the shared install has both.
typecheck() {
  local resolution=$1
  mkdir -p "$APP/node_modules/@types"
  ln -sfn "$ROOT/node_modules/@types/bun" "$APP/node_modules/@types/bun"
  if [[ "$resolution" == bundler ]]; then
    (cd "$APP" && as_user node "$TSC" -p tsconfig.json --pretty false)
  else
    # Node's resolution reads the same "types" condition of exports.
    sed -e 's/"module": "ESNext"/"module": "NodeNext"/' -e 's/"moduleResolution": "bundler"/"moduleResolution": "nodenext"/' \
      -e 's/"allowImportingTsExtensions": true,/"allowImportingTsExtensions": true, "rewriteRelativeImportExtensions": false,/' \
      "$APP/tsconfig.json" >"$APP/tsconfig.nodenext.json"
    (cd "$APP" && as_user node "$TSC" -p tsconfig.nodenext.json --pretty false)
  fi
}

EXPECTED=$(
  cat <<'EOF'
snapshot: sh exited with 3
clean: sh exited with 4
writer-1: writer-1 (argv WRITER-1) wrote this through its pipe (exit 0)
writer-2: writer-2 (argv WRITER-2) wrote this through its pipe (exit 0)
writer-3: writer-3 (argv WRITER-3) wrote this through its pipe (exit 0)
bad mode: ERR_INVALID_ARG_VALUE
ok
EOF
)

# expect_output CMD...: CMD prints the version line, then EXPECTED.
expect_output() {
  local output
  output=$("$@") || { echo "exit status $?; output:"; echo "$output"; return 1; }
  echo "$output"
  grep -qE "^libforks [0-9]+\.[0-9]+\.[0-9]+ on linux-" <<<"$output" || { echo "no version line"; return 1; }
  if [[ "$(grep -v '^libforks ' <<<"$output")" != "$EXPECTED" ]]; then
    echo "expected:"
    echo "$EXPECTED"
    return 1
  fi
}

run_source() {
  cd "$APP" && expect_output as_user bun app.ts
}

run_bundle() {
  (cd "$APP" && as_user bun build --target=bun app.ts --outdir "$WORK/bundle") || return 1
  cd / && expect_output as_user bun "$WORK/bundle/app.js"
}

EXE_DIR=$WORK/alone
compile() {
  (cd "$APP" && as_user bun build --compile app.ts --outfile "$WORK/compiled/app") || return 1
  mkdir -p "$EXE_DIR"
  cp "$WORK/compiled/app" "$EXE_DIR/app"
  rm -rf "$WORK/compiled"
  [[ "$(ls -A "$EXE_DIR")" == app ]]
}

# The executable alone, fresh HOME, TMPDIR as given ("unset" or a path).
run_compiled() {
  local tmpdir=$1 home
  home=$(mktemp -d "$WORK/home.XXXXXX")
  cd "$EXE_DIR" || return 1
  if [[ "$tmpdir" == unset ]]; then
    expect_output env -i PATH="$USER_PATH" HOME="$home" ./app
  else
    expect_output env -i PATH="$USER_PATH" HOME="$home" TMPDIR="$tmpdir" ./app
  fi
}

# TMPDIR on a filesystem mounted noexec, in a private mount namespace
# (needs the right to make one: root, or user namespaces).
run_compiled_noexec() {
  local dir=$WORK/noexec home
  home=$(mktemp -d "$WORK/home.XXXXXX")
  mkdir -p "$dir"
  cd "$EXE_DIR" || return 1
  unshare -m sh -c 'mount -t tmpfs -o noexec,mode=1777 tmpfs "$1" && shift && exec "$@"' sh "$dir" \
    env -i PATH="$USER_PATH" HOME="$home" TMPDIR="$dir" "$BIN/sh" -c \
    'grep -q " $TMPDIR tmpfs [^ ]*noexec" /proc/self/mounts || { echo "TMPDIR is not mounted noexec"; exit 1; }; exec ./app' >"$WORK/noexec.out" 2>&1
  local status=$?
  expect_output cat "$WORK/noexec.out" && ((status == 0))
}

node_error() {
  local output
  output=$(cd "$APP" && as_user node -e 'import("libforks").catch((e) => { console.log(`${e.name} ${e.code}: ${e.message}`); process.exit(3); })')
  local status=$?
  echo "$output"
  ((status == 3)) && grep -q '^LibforksError UNSUPPORTED_RUNTIME: libforks requires Bun >= 1.4.4' <<<"$output"
}

start=$SECONDS
check "no C compiler and no Zig on the user's PATH" no_build_tools
check "package-lock.json is in sync with package.json (npm ci)" lock_in_sync
check "npm pack builds dist/ (prepack)" pack
check "the tarball holds dist/, lib/, the header, README, LICENSE, NOTICE, CHANGELOG and nothing else" tarball_contents
if [[ -s "$TARBALL" ]]; then
  check "bun add ./libforks-$VERSION.tgz installs the package alone" install_tarball
  check "its index.d.ts declares the public API only, every export documented" \
    "$BUN" scripts/check-docs.ts "$APP/node_modules/libforks/dist/index.d.ts"
  check "a strict user program type-checks against it (bundler resolution, skipLibCheck false)" typecheck bundler
  check "a strict user program type-checks against it (nodenext resolution)" typecheck nodenext
  check "the program runs from source with bun (three workers of itself)" run_source
  check "the program runs as a bun build --outdir bundle, from /" run_bundle
  check "bun build --compile makes one executable, copied alone into an empty directory" compile
  check "the compiled executable runs with TMPDIR unset and a fresh HOME" run_compiled unset
  check "the compiled executable runs with TMPDIR naming a missing directory" run_compiled "$WORK/missing"
  if unshare -m true 2>/dev/null; then
    check "the compiled executable runs with TMPDIR on a filesystem mounted noexec" run_compiled_noexec
  else
    echo "skipped the noexec TMPDIR check: no private mount namespace here (unshare -m)"
  fi
  check "under Node.js the import throws UNSUPPORTED_RUNTIME: libforks requires Bun >= 1.4.4" node_error
else
  echo "FAILED  no tarball: the install checks did not run"
  FAILED=$((FAILED + 1))
fi
echo "install checks took $((SECONDS - start))s"
echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
