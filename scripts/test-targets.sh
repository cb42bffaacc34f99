#!/usr/bin/env bash
# scripts/test-targets.sh TARGET SUITE [TEST...]: runs one suite ("c" or
# "bun"; it may be narrowed to some C tests or Bun test files) of the
# prebuilt library of TARGET (linux-x64-musl, linux-arm64, linux-arm64-musl)
# on this x86-64 Linux machine, as a user of that platform would run it:
#
#  - inside a root directory holding that target's C library as its only
#    one (chroot), so the Bun package must pick the right library by itself
#    (no LIBFORKS_PATH) and nothing of the host's glibc can be loaded;
#  - arm64 programs under qemu-user, through a binfmt_misc entry with flags
#    POCF (the kernel opens the binary, so fexecve of a close-on-exec memfd
#    works; F preloads the emulator, so it runs inside the root).
#
# The musl roots lay musl out as Debian does: /lib/ld-musl-<arch>.so.1 is a
# symlink to libc.so, so /proc/self/maps never shows "ld-musl-". The C
# suite runs on the oldest musl supported (1.2.3, Debian 12), the Bun suite
# on musl 1.2.5 (Debian 13), which Bun's musl build needs. arm64 glibc is
# Debian 12's (2.36).
#
# Everything comes from the registries at pinned versions: Debian packages
# (apt-get download, unpacked with dpkg -x, never installed), Bun's builds
# from npm, musl builds of libstdc++ and libgcc_s from a PyPI wheel. They
# are kept in $LIBFORKS_TARGETS_CACHE (default ~/.cache/libforks-targets).
# The root's mounts (the repository, /proc, /dev, a fresh /tmp) and the
# binfmt_misc mount live in a private mount namespace (unshare -m) that
# ends with this script, and the binfmt_misc entry with them: nothing stays
# mounted or registered on the host.
#
# The C tests are compiled on the host with `zig cc` for the target; the Bun
# suite's own C fixtures are compiled inside the root by a `gcc` that is
# `zig cc -target <target>`. Output ends with `N passed, N failed`.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
ROOT=$(pwd -P)

target=${1:-}
suite=${2:-}
die() {
  echo "test-targets: $*" >&2
  echo "0 passed, 1 failed"
  exit 1
}
case "$target" in
  linux-x64-musl) arch=x86_64 deb_arch=amd64 zig_target=x86_64-linux-musl ;;
  linux-arm64) arch=aarch64 deb_arch=arm64 zig_target=aarch64-linux-gnu.2.17 ;;
  linux-arm64-musl) arch=aarch64 deb_arch=arm64 zig_target=aarch64-linux-musl ;;
  *) die "usage: scripts/test-targets.sh linux-x64-musl|linux-arm64|linux-arm64-musl c|bun" ;;
esac
case "$suite" in c | bun) ;; *) die "usage: scripts/test-targets.sh $target c|bun" ;; esac
[[ "$(uname -m)" == x86_64 && "$(uname -s)" == Linux ]] || die "runs on x86-64 Linux only"
((EUID == 0)) || die "needs root (chroot, mounts, binfmt_misc)"

# --- Pinned versions ---------------------------------------------------------------
BUN_VERSION=1.4.4
QEMU_DEB=1:10.0.13+ds-0+deb13u1      # qemu-user (static binaries), Debian 13: Debian 12's qemu 7.2
                                     # refuses PR_SET_CHILD_SUBREAPER with EINVAL
BUSYBOX_DEB=1:1.35.0-4+deb12u1+b1    # busybox-static, Debian 12 (x86-64: runs natively)
GLIBC_DEB=2.36-9+deb12u14            # libc6:arm64, Debian 12
MUSL_OLD_DEB=1.2.3-1                 # musl, Debian 12
MUSL_NEW_DEB=1.2.5-3.1~deb13u1       # musl, Debian 13
GREENLET_WHEEL=3.5.6                 # its musllinux_1_2 wheels carry libstdc++/libgcc_s (GCC 14)

CACHE=${LIBFORKS_TARGETS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/libforks-targets}
ZIG_DIR=$(python3 -c 'import ziglang, os; print(os.path.dirname(ziglang.__file__))') || die "Zig (python3 -m ziglang) is not installed"
mkdir -p "$CACHE/debs" "$CACHE/npm" "$CACHE/pypi" "$CACHE/zig-cache" || die "cannot create $CACHE"
log=$(mktemp "${TMPDIR:-/tmp}/libforks-targets.XXXXXX")
trap 'rm -f "$log"' EXIT

quiet() { # runs a command, showing its output only when it fails
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    return 1
  fi
}

# --- Downloads ---------------------------------------------------------------------
# A private apt configuration for another release or architecture: lists,
# cache and status of its own, the host's keyring and mirror. The host's
# own configuration and package database are never changed.
mirror() {
  local uri
  uri=$(sed -nE 's/^URIs: *([^ ]+).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -n 1)
  [[ -z "$uri" ]] && uri=$(sed -nE 's/^deb +(\[[^]]*\] +)?([^ ]+) +[a-z]+ +main.*/\2/p' /etc/apt/sources.list 2>/dev/null | grep -v security | head -n 1)
  [[ -n "$uri" ]] || return 1
  echo "$uri"
}

# apt_private SUITE ARCH: sets APT_OPTS for apt-get with a private state in
# $CACHE/apt-SUITE-ARCH, updated once.
apt_private() {
  local suite=$1 deb_arch=$2 dir=$CACHE/apt-$1-$2 uri
  uri=$(mirror) || die "no Debian mirror in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list"
  mkdir -p "$dir/etc/apt/sources.list.d" "$dir/etc/apt/preferences.d" "$dir/etc/apt/apt.conf.d" "$dir/lists/partial" "$dir/cache/archives/partial"
  : >"$dir/status"
  echo "deb [arch=$deb_arch signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri $suite main" >"$dir/etc/apt/sources.list"
  APT_OPTS=(-o "Dir::Etc=$dir/etc/apt" -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir/cache"
    -o "Dir::State::status=$dir/status" -o "APT::Architecture=$deb_arch" -o "APT::Architectures::=$deb_arch"
    -o "Debug::NoLocking=1" -o "Acquire::Languages=none" -o "APT::Sandbox::User=root")
  if [[ ! -f "$dir/updated" ]]; then
    quiet apt-get "${APT_OPTS[@]}" update || die "apt-get update for $suite/$deb_arch failed"
    touch "$dir/updated"
  fi
}

# deb SUITE ARCH PACKAGE VERSION: the .deb file, downloaded once.
deb() {
  local suite=$1 deb_arch=$2 package=$3 version=$4
  local file=$CACHE/debs/${package}_${version//:/%3a}_${deb_arch}.deb
  if [[ ! -f "$file" ]]; then
    apt_private "$suite" "$deb_arch"
    (cd "$CACHE/debs" && quiet apt-get "${APT_OPTS[@]}" download "$package:$deb_arch=$version") ||
      die "cannot download $package:$deb_arch=$version ($suite)"
    [[ -f "$file" ]] || die "apt-get download gave no $file"
  fi
  echo "$file"
}

# unpacked DEB: the package's files, unpacked once.
unpacked() {
  local dir=${1%.deb}
  if [[ ! -d "$dir" ]]; then
    local new=$dir.partial.$$
    mkdir -p "$new" && dpkg -x "$1" "$new" || die "cannot unpack $1"
    mv -T "$new" "$dir" 2>/dev/null || rm -rf "$new" # a concurrent run was first
  fi
  echo "$dir"
}

# bun_build PACKAGE: Bun's executable from the npm package, once.
bun_build() {
  local dir=$CACHE/npm/$1-$BUN_VERSION
  if [[ ! -x "$dir/package/bin/bun" ]]; then
    local new=$dir.partial.$$
    mkdir -p "$new" || die "cannot create $new"
    (cd "$new" && quiet npm pack --silent "@oven/$1@$BUN_VERSION") || die "cannot download @oven/$1@$BUN_VERSION"
    tar xzf "$new"/*.tgz -C "$new" && chmod +x "$new/package/bin/bun" || die "cannot unpack @oven/$1"
    mv -T "$new" "$dir" 2>/dev/null || rm -rf "$new"
  fi
  echo "$dir/package/bin/bun"
}

# musl_cxx_libs ARCH: the directory holding musl builds of libstdc++ and
# libgcc_s (from the wheel), once.
musl_cxx_libs() {
  local dir=$CACHE/pypi/greenlet-$GREENLET_WHEEL-$1
  if [[ ! -d "$dir/greenlet.libs" ]]; then
    local new=$dir.partial.$$
    mkdir -p "$new" || die "cannot create $new"
    quiet python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
      --platform "musllinux_1_2_$1" --python-version 3.12 -d "$new" "greenlet==$GREENLET_WHEEL" ||
      die "cannot download greenlet==$GREENLET_WHEEL (musllinux_1_2_$1)"
    (cd "$new" && python3 -m zipfile -e ./*.whl .) || die "cannot unpack the greenlet wheel"
    mv -T "$new" "$dir" 2>/dev/null || rm -rf "$new"
  fi
  echo "$dir/greenlet.libs"
}

# --- The root ----------------------------------------------------------------------
# Built once per target, C library, pinned versions and version of the code
# that builds it (build_root and its helpers, not the rest of this script),
# then reused.
if [[ "$target" == linux-arm64 ]]; then
  libc=glibc-$GLIBC_DEB
elif [[ "$suite" == c ]]; then
  libc=musl-$MUSL_OLD_DEB
else
  libc=musl-$MUSL_NEW_DEB
fi

build_root() {
  local new=$root.partial.$$
  mkdir -p "$new"/{bin,sbin,usr/bin,usr/sbin,usr/lib,usr/include,lib,etc,tmp,proc,dev,opt/bun,var/cache/zig} || return 1
  local busybox
  busybox=$(unpacked "$(deb bookworm amd64 busybox-static "$BUSYBOX_DEB")")
  cp "$busybox/bin/busybox" "$new/bin/busybox" || return 1
  chroot "$new" /bin/busybox --install -s || return 1
  printf '%s\n' "root:x:0:0:root:/root:/bin/sh" "nobody:x:65534:65534:nobody:/nonexistent:/bin/false" >"$new/etc/passwd"
  printf '%s\n' "root:x:0:" "nogroup:x:65534:" >"$new/etc/group"

  local headers_libc
  case "$libc" in
    glibc-*)
      local glibc
      glibc=$(unpacked "$(deb bookworm arm64 libc6 "$GLIBC_DEB")")
      cp -a "$glibc/lib/." "$new/lib/" || return 1
      [[ -d "$glibc/usr/lib" ]] && cp -a "$glibc/usr/lib/." "$new/usr/lib/"
      headers_libc=(generic-glibc "$arch-linux-gnu")
      ln -s "/lib/$arch-linux-gnu/libc.so.6" "$new/usr/lib/libc.so" || return 1 # TinyCC links with -lc
      [[ "$suite" == bun ]] && cp "$(bun_build bun-linux-aarch64)" "$new/opt/bun/bun"
      ;;
    musl-*)
      local version=${libc#musl-} release=bookworm musl triplet=$arch-linux-musl
      [[ "$version" == "$MUSL_NEW_DEB" ]] && release=trixie
      musl=$(unpacked "$(deb "$release" "$deb_arch" musl "$version")")
      # Debian 12 ships libc.so in /lib/<triplet>, Debian 13 in /usr/lib/<triplet>.
      local libc_so
      libc_so=$(find "$musl" -name libc.so -type f | head -n 1)
      [[ -n "$libc_so" ]] || return 1
      mkdir -p "$new/usr/lib/$triplet" && cp "$libc_so" "$new/usr/lib/$triplet/libc.so" || return 1
      # Debian's layout: the loader is a symlink to libc.so.
      ln -s "/usr/lib/$triplet/libc.so" "$new/lib/ld-musl-$arch.so.1" || return 1
      ln -s "ld-musl-$arch.so.1" "$new/lib/libc.musl-$arch.so.1" || return 1
      ln -s "$triplet/libc.so" "$new/usr/lib/libc.so" || return 1 # TinyCC links with -lc
      headers_libc=(generic-musl "$triplet")
      if [[ "$suite" == bun ]]; then
        local cxx name
        cxx=$(musl_cxx_libs "$arch") || return 1
        for name in "$cxx"/*; do cp "$name" "$new/usr/lib/" || return 1; done
        ln -s "$(basename "$cxx"/libstdc++-*)" "$new/usr/lib/libstdc++.so.6" || return 1
        ln -s "$(basename "$cxx"/libgcc_s-*)" "$new/usr/lib/libgcc_s.so.1" || return 1
        if [[ "$arch" == x86_64 ]]; then
          cp "$(bun_build bun-linux-x64-musl)" "$new/opt/bun/bun" || return 1
        else
          cp "$(bun_build bun-linux-aarch64-musl)" "$new/opt/bun/bun" || return 1
        fi
      fi
      ;;
  esac
  if [[ "$suite" == bun ]]; then
    # Headers for bun:ffi's cc() (TinyCC reads /usr/include): the target's C
    # library and Linux headers, as Zig ships them, most specific last.
    local kernel_arch=$arch dir
    [[ "$arch" == x86_64 ]] && kernel_arch=x86
    for dir in any-linux-any "$kernel_arch-linux-any" "${headers_libc[@]}"; do
      [[ -d "$ZIG_DIR/lib/libc/include/$dir" ]] && cp -a "$ZIG_DIR/lib/libc/include/$dir/." "$new/usr/include/"
    done
    # The fixtures' gcc: Zig's C compiler for the target (Zig is a static
    # x86-64 program, mounted at its host path).
    cat >"$new/usr/bin/gcc" <<EOF
#!/bin/sh
exec "$ZIG_DIR/zig" cc -target $zig_target "\$@"
EOF
    chmod +x "$new/usr/bin/gcc" "$new/opt/bun/bun" || return 1
    # Under emulation also a compiler for this machine: a seccomp filter
    # (the no-memfd fixture) can only be installed by a native program,
    # since qemu-user refuses PR_SET_SECCOMP to the programs it runs.
    if [[ "$arch" != x86_64 ]]; then
      cat >"$new/usr/bin/host-gcc" <<EOF
#!/bin/sh
exec "$ZIG_DIR/zig" cc -target x86_64-linux-musl "\$@"
EOF
      chmod +x "$new/usr/bin/host-gcc" || return 1
    fi
    # What the README's code blocks are checked with: `cc` for the C block,
    # and `node` for tsc's `#!/usr/bin/env node` (Bun run as node).
    ln -s gcc "$new/usr/bin/cc" && ln -s /opt/bun/bun "$new/usr/bin/node" || return 1
  fi
  mv -T "$new" "$root" 2>/dev/null || rm -rf "$new" # a concurrent run was first
}

stamp=$( (echo "$target $libc $suite $BUN_VERSION $BUSYBOX_DEB $GLIBC_DEB $MUSL_OLD_DEB $MUSL_NEW_DEB $GREENLET_WHEEL"
  declare -f build_root deb unpacked bun_build musl_cxx_libs) | sha256sum | cut -c1-12)
root=$CACHE/roots/$target-$suite-$stamp
if [[ ! -d "$root" ]]; then
  # Roots made by older versions of this script.
  for old in "$CACHE/roots/$target-$suite-"*; do
    [[ -d "$old" && "$old" != *.partial.* ]] && rm -rf "$old"
  done
  echo "==> building the $target root ($libc) in $root"
  start=$SECONDS
  build_root || die "could not build the $target root"
  echo "--> root built in $((SECONDS - start))s"
fi
qemu=
if [[ "$arch" == aarch64 ]]; then
  qemu=$(unpacked "$(deb trixie amd64 qemu-user "$QEMU_DEB")")/usr/bin/qemu-aarch64
  [[ -x "$qemu" ]] || die "no $qemu"
fi

# --- Inside a private mount namespace -------------------------------------------------
# The namespace's mounts: binfmt_misc (arm64), the repository and Zig at
# their host paths, the shared node_modules if it is a symlink, /dev,
# /proc and a fresh /tmp. All vanish when the namespace's last process ends.
inner() {
  set -uo pipefail
  mount --make-rprivate / || exit 1
  if [[ -n "$qemu" ]]; then
    local misc=/proc/sys/fs/binfmt_misc
    if [[ ! -e "$misc/register" ]]; then
      mount -t binfmt_misc binfmt_misc "$misc" || { echo "cannot mount binfmt_misc"; exit 1; }
    fi
    # Idempotent: a concurrent run may already have registered the entry.
    if [[ ! -e "$misc/libforks-aarch64" ]]; then
      printf '%s' ":libforks-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:$qemu:POCF" >"$misc/register" ||
        [[ -e "$misc/libforks-aarch64" ]] || { echo "cannot register qemu-aarch64 with binfmt_misc"; exit 1; }
    fi
  fi
  # The root a mount point of its own, as / is: `unshare --mount-proc`
  # (tree.test.ts) makes / private, which fails where / is no mount.
  mount --bind "$root" "$root" || exit 1
  # The fresh /tmp first: the repository (a clone in /tmp, say) and the
  # caches may live below it, and must not be hidden by it.
  mount -t tmpfs -o mode=1777 tmpfs "$root/tmp" || exit 1
  local path
  for path in "$ROOT" "$ZIG_DIR" "$CACHE/zig-cache"; do
    mkdir -p "$root$path" && mount --bind "$path" "$root$path" || exit 1
  done
  if [[ -L "$ROOT/node_modules" ]]; then
    path=$(readlink -f "$ROOT/node_modules")
    mkdir -p "$root$path" && mount --bind "$path" "$root$path" || exit 1
  fi
  mount --rbind /dev "$root/dev" || exit 1
  mount -t proc proc "$root/proc" || exit 1
  # node_modules/.bin/bun is this target's Bun here (examples/compiled runs it).
  if [[ "$suite" == bun && -e "$ROOT/node_modules/.bin/bun" ]]; then
    path=$(readlink -f "$ROOT/node_modules/.bin/bun")
    mount --bind "$root/opt/bun/bun" "$root$path" || exit 1
  fi
  export ZIG_GLOBAL_CACHE_DIR=$CACHE/zig-cache ZIG_LOCAL_CACHE_DIR=$CACHE/zig-cache
  if [[ -n "${LIBFORKS_TARGET_COMMAND:-}" ]]; then
    # For debugging: a shell command in the root instead of the suite.
    chroot "$root" /bin/sh -c "cd '$ROOT' && $LIBFORKS_TARGET_COMMAND"
    return
  fi
  local bun_tests c_tests
  read -r -a bun_tests <<<"$BUN_TESTS"
  read -r -a c_tests <<<"$C_TESTS"
  if [[ "$suite" == c ]]; then
    [[ -n "$qemu" ]] && export LIBFORKS_TEST_EMULATED=1
    CC="$ZIG_DIR/zig cc -target $zig_target" LIBFORKS_LIB_DIR="$ROOT/lib/$target" BUILD_SUFFIX="-$target" \
      LIBFORKS_TEST_RUNNER="chroot $root" LIBFORKS_TEST_TIMEOUT="${LIBFORKS_TARGET_TEST_TIMEOUT:-300}" \
      bash tests/c/run.sh "${c_tests[@]}"
  else
    # bun test ends with lines such as " 12 pass", " 2 fail", " 1 error";
    # they become the `N passed, N failed` line.
    local out=$root/tmp/bun-test.log
    # Under emulation also on the command line: a test file's first test
    # was seen to run under Bun's own 5 s default despite the preload.
    local timeout_option=()
    [[ -n "$qemu" ]] && timeout_option=(--timeout "${LIBFORKS_TARGET_BUN_TEST_TIMEOUT:-150000}")
    # Zig builds the target's C library once (a minute on a cold cache),
    # before any test's time limit runs.
    chroot "$root" /bin/sh -c 'cd "$1" && gcc -O1 -o /tmp/warm tests/bun/fixtures/listfds.c && gcc -shared -fPIC -O1 -o /tmp/warm.so tests/bun/fixtures/libentry.c' sh "$ROOT" ||
      { echo "the root's gcc (zig cc) does not work"; echo "0 passed, 1 failed"; return 1; }
    env -i PATH=/usr/bin:/bin:/usr/sbin:/sbin HOME=/tmp TMPDIR=/tmp NO_COLOR=1 CI="${CI:-}" \
      LIBFORKS_TEST_EMULATED="$([[ -n "$qemu" ]] && echo 1)" \
      ZIG_GLOBAL_CACHE_DIR="$CACHE/zig-cache" ZIG_LOCAL_CACHE_DIR="$CACHE/zig-cache" \
      LIBFORKS_TEST_TIMEOUT="${LIBFORKS_TARGET_BUN_TEST_TIMEOUT:-$([[ -n "$qemu" ]] && echo 150000)}" \
      chroot "$root" /bin/sh -c 'cd "$1" && shift && exec /opt/bun/bun test "$@"' sh "$ROOT" "${timeout_option[@]}" "${bun_tests[@]}" 2>&1 | tee "$out"
    local status=${PIPESTATUS[0]}
    count() { grep -E "^ *[0-9]+ $1\$" "$out" | tail -n 1 | tr -dc '0-9'; }
    local pass fail errors
    pass=$(count pass) fail=$(count fail) errors=$(count 'errors?')
    pass=${pass:-0} fail=${fail:-0} errors=${errors:-0}
    ((status != 0 && fail == 0)) && fail=$((errors > 0 ? errors : 1))
    ((status == 0 && pass == 0)) && fail=1
    echo "$pass passed, $fail failed"
    return "$status"
  fi
}
# Tests to run (all by default): arguments after SUITE, Bun test files or
# C test names.
bun_tests=("${@:3}")
((${#bun_tests[@]} > 0)) || bun_tests=(tests/bun)
export BUN_TESTS="${bun_tests[*]}" C_TESTS="${*:3}"
export -f inner
export ROOT root qemu suite target zig_target ZIG_DIR CACHE LIBFORKS_TARGET_COMMAND
start=$SECONDS
unshare -m --propagation private bash -c inner
status=$?
echo "--> $target $suite: exit status $status after $((SECONDS - start))s"
exit "$status"
