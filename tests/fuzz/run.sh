#!/usr/bin/env bash
# Fuzzes the server's request decoder (zig/fuzz_decode.zig) with libFuzzer.
# Usage: tests/fuzz/run.sh [RUNS]   (default 1,000,000 executions)
# Needs clang-14 and its libFuzzer runtime (Debian: clang-14,
# libclang-rt-14-dev); installs them with apt-get when run as root in CI.
# Prints "fuzz: N passed, N failed" (1 passed when no input crashed).
set -euo pipefail
cd "$(dirname "$0")/../.."
runs="${1:-1000000}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if ! command -v clang-14 >/dev/null || [ ! -e /usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer-x86_64.a ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "fuzz: installing clang-14 and libFuzzer"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang-14 libclang-rt-14-dev) >"$work/apt.log" 2>&1 ||
      { cat "$work/apt.log"; echo "fuzz: 0 passed, 1 failed"; exit 1; }
  else
    echo "fuzz: clang-14 with libFuzzer is missing (apt-get install clang-14 libclang-rt-14-dev)"
    echo "fuzz: 0 passed, 1 failed"
    exit 1
  fi
fi

# The target is instrumented by Zig (-ffuzz); the harness is not, so only
# the decoder's coverage guides the search.
# zig/sys.zig reads the build's options (build.zig): the Linux code paths.
printf 'pub const darwin_paths = false;\n' >"$work/build_options.zig"
python3 -m ziglang build-lib -ffuzz -OReleaseSafe -fPIC -lc -fcompiler-rt \
  --dep build_options -Mroot=zig/fuzz_decode.zig -Mbuild_options="$work/build_options.zig" \
  --name fuzz_decode -femit-bin="$work/libfuzz_decode.a" --cache-dir .zig-cache
clang-14 -c -O1 tests/fuzz/harness.c -o "$work/harness.o"
clang-14 -fsanitize=fuzzer "$work/harness.o" "$work/libfuzz_decode.a" -o "$work/fuzz_decode"

mkdir -p "$work/corpus"
cp tests/fuzz/corpus/* "$work/corpus/"
if (cd "$work" && ./fuzz_decode -runs="$runs" -max_len=6000 -print_final_stats=1 corpus >fuzz.log 2>&1); then
  grep -E "^Done|number_of_executed_units|new_units_added" "$work/fuzz.log" | sed 's/^/fuzz: /'
  echo "fuzz: 1 passed, 0 failed"
else
  tail -40 "$work/fuzz.log"
  for crash in "$work"/crash-*; do [ -e "$crash" ] && echo "crashing input (base64): $(base64 -w0 "$crash")"; done
  echo "fuzz: 0 passed, 1 failed"
  exit 1
fi
