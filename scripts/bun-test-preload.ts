// Preloaded by `bun test` (bunfig.toml [test] preload): sets the default
// per-test timeout, which bunfig.toml cannot set. Tests fork and spawn real
// processes, and on a loaded 2-core machine a cold start can take seconds,
// so Bun's default of 5 s is too short. LIBFORKS_TEST_TIMEOUT (ms) changes
// it; an explicit `bun test --timeout N` is left alone; a test's own timeout
// argument always wins.

import { setDefaultTimeout } from "bun:test";
import { readFileSync } from "node:fs";

const DEFAULT_TIMEOUT_MS = 30_000;

/** Whether bun was started with --timeout (process.argv does not show it). */
function timeoutOnCommandLine(): boolean {
  try {
    return readFileSync("/proc/self/cmdline", "utf8")
      .split("\0")
      .some((arg) => arg === "--timeout" || arg.startsWith("--timeout="));
  } catch {
    return false; // no /proc (macOS)
  }
}

if (!timeoutOnCommandLine()) {
  const fromEnv = Number(process.env.LIBFORKS_TEST_TIMEOUT);
  setDefaultTimeout(Number.isFinite(fromEnv) && fromEnv > 0 ? fromEnv : DEFAULT_TIMEOUT_MS);
}
