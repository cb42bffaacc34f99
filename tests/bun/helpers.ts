// Shared by the Bun test files: native entrypoints compiled with bun:ffi
// cc() (at import time, so before any ForkServer starts: children are
// copies of the process as it was at start), programs and libraries built
// with gcc, and small process/fd utilities.

import { cc, FFIType } from "bun:ffi";
import { expect } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, readSync, renameSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { LibforksError, libraryPath } from "../../src/index.ts";

export const fixtures = join(import.meta.dir, "fixtures");

const entry = { args: [FFIType.ptr, FFIType.i32], returns: FFIType.void } as const;

/** The entrypoints of fixtures/entries.c. */
export const native = cc({
  source: join(fixtures, "entries.c"),
  library: ["forks"],
  flags: [`-L${dirname(libraryPath())}`],
  symbols: {
    exit0: entry,
    exit7: entry,
    return_normally: entry,
    sleep200ms: entry,
    sleep_long: entry,
    write_to_passed_fds: entry,
    libc_in_child: entry,
    exit_with_received_code: entry,
    channel_echo: entry,
    send_pipe_to_parent: entry,
    ignore_sigterm: entry,
    wait_for_release: entry,
    read_fds_exit0: entry,
    dup_inheritable: { args: [FFIType.i32], returns: FFIType.i32 },
  },
}).symbols;

/** The address of a bun:ffi symbol (`.ptr` exists at run time, but
 * bun-types does not declare it). */
export function pointerOf(symbol: unknown): number {
  return Number((symbol as { ptr: number | bigint }).ptr);
}

// Built files live in one directory per user, named by a hash of their
// source: reused by later runs, never piling up, safe for concurrent runs
// (each builds to a private name, then renames).
const buildDir = join(tmpdir(), `libforks-bun-tests-${process.getuid?.() ?? "user"}`);

function gccOnce(source: string, name: string, flags: string[], compiler = "gcc"): string {
  const hash = new Bun.CryptoHasher("sha256").update(readFileSync(source)).update(`${compiler} ${flags.join(" ")}`).digest("hex").slice(0, 16);
  const out = join(buildDir, `${name}-${hash}`);
  if (existsSync(out)) return out;
  mkdirSync(buildDir, { recursive: true });
  const partial = `${out}.${process.pid}.tmp`;
  const result = Bun.spawnSync([compiler, ...flags, "-o", partial, source], { stderr: "pipe", stdout: "pipe" });
  if (result.exitCode !== 0) throw new Error(`${compiler} ${source} failed:\n${result.stderr.toString()}`);
  renameSync(partial, out);
  return out;
}

/** fixtures/libentry.c built as a shared library (lib_exit42 exits 42,
 * lib_exit0 exits 0, ...). */
export function buildSharedLibrary(): string {
  return gccOnce(join(fixtures, "libentry.c"), "libentry.so", ["-shared", "-fPIC", "-O1"]);
}

/** fixtures/listfds.c built as a program: prints "<fd> <target>" lines and
 * "sigign <hex mask>", "sigblk <hex mask>". */
export function buildListFds(): string {
  return gccOnce(join(fixtures, "listfds.c"), "listfds", ["-O1"]);
}

/** fixtures/no-memfd.c built as a program: runs its arguments with
 * memfd_create(2) failing with ENOSYS (a seccomp filter). Under qemu-user
 * it is built for this machine (host-gcc, scripts/test-targets.sh): qemu
 * refuses PR_SET_SECCOMP (EINVAL) to the programs it runs, so that they
 * cannot forbid the calls it needs; a native launcher's filter holds for
 * the emulator it then execs, and the memfd_create the emulator makes for
 * the program fails the same way. */
export function buildNoMemfd(): string {
  return gccOnce(join(fixtures, "no-memfd.c"), "no-memfd", ["-O1"], emulated ? "host-gcc" : "gcc");
}

/** Open fds of this process. */
export function fdCount(): number {
  return readdirSync("/proc/self/fd").length;
}

/** Open fds of this process: fd -> link target ("pipe:[123]", a path...). */
export function openFds(): Map<number, string> {
  const fds = new Map<number, string>();
  for (const name of readdirSync("/proc/self/fd")) {
    try {
      fds.set(Number(name), readlinkSync(`/proc/self/fd/${name}`));
    } catch {
      // closed meanwhile (or the directory's own fd)
    }
  }
  return fds;
}

/** Fds open now that were not open in `before` ("fd target" strings). */
export function fdsOpenedSince(before: Map<number, string>): string[] {
  const added: string[] = [];
  for (const [fd, target] of openFds()) {
    if (before.get(fd) !== target) added.push(`${fd} ${target}`);
  }
  return added;
}

/** Threads of this process. */
export function threadCount(): number {
  return readdirSync("/proc/self/task").length;
}

/** True when `pid` names no process (ESRCH). */
export function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    if ((error as { code?: string }).code === "ESRCH") return true;
    throw error;
  }
}

/** The state letter of `pid` in /proc ("R", "S", "Z", ...), or "gone". */
export function processState(pid: number): string {
  return statFields(pid)?.[0] ?? "gone";
}

/** The parent's pid of `pid`, or 0 once it is gone. */
export function parentPid(pid: number): number {
  return Number(statFields(pid)?.[1] ?? 0);
}

/** /proc/<pid>/stat after the command name (state, ppid, ...), or null. */
function statFields(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return null;
  }
}

/** True when `pid` is gone or a zombie (has exited, its parent has not
 * reaped it yet). */
export function processExited(pid: number): boolean {
  if (processGone(pid)) return true;
  const state = processState(pid);
  return state === "Z" || state === "gone";
}

/** Polls `condition` every 5 ms until true or `ms` elapsed. */
export async function eventually(condition: () => boolean, ms = 2000): Promise<boolean> {
  const deadline = performance.now() + ms;
  while (performance.now() < deadline) {
    if (condition()) return true;
    await Bun.sleep(5);
  }
  return condition();
}

/** True under qemu-user (scripts/test-targets.sh sets LIBFORKS_TEST_EMULATED=1
 * for the arm64 targets), where every system call and fork is slower. */
export const emulated = process.env.LIBFORKS_TEST_EMULATED === "1";

/** The darwin-paths suite (tests/darwin-paths/run.sh): the macOS build's
 * code paths on Linux. A check that cannot hold on macOS is adjusted where
 * it runs, saying so with notOnDarwin(), and checks what macOS does
 * instead. */
export const darwinPaths = process.env.LIBFORKS_DARWIN_PATHS === "1";

export function notOnDarwin(why: string): void {
  console.log(`darwin paths: not checked: ${why}`);
}

/** A time limit for a "does not hang" claim: five times longer under
 * emulation. */
export function patience(ms: number): number {
  return emulated ? ms * 5 : ms;
}

/** The argv of process `pid`. Under qemu-user (binfmt_misc flag P) the
 * kernel runs "<emulator> <program path> <argv...>": those two go. */
export function argvOf(pid: number): string[] {
  const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").slice(0, -1);
  const first = argv[0] ?? "";
  return first.slice(first.lastIndexOf("/") + 1).startsWith("qemu-") ? argv.slice(2) : argv;
}

/** Rejects if `promise` has not settled within `ms` (patience(ms): these
 * limits say "does not hang"). */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: Timer | undefined;
  const limit = patience(ms);
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not settled within ${limit} ms`)), limit);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The first line a program writes to its piped stdout (a JSON report of
 * the pids it started, in the owner fixtures), or what it wrote before it
 * ended; rejects if no line comes within `ms`. */
export async function firstLine(stdout: ReadableStream<Uint8Array>, ms: number, what: string): Promise<string> {
  const reader = stdout.getReader();
  const decoder = new TextDecoder();
  let text = "";
  try {
    while (!text.includes("\n")) {
      const { value, done } = await within(reader.read(), ms, what);
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
  } finally {
    reader.releaseLock();
  }
  return text.slice(0, text.includes("\n") ? text.indexOf("\n") : text.length);
}

/** Reads a (blocking) fd to end-of-file. */
export function readAllSync(fd: number): string {
  const chunks: Buffer[] = [];
  const buffer = Buffer.alloc(65536);
  while (true) {
    const n = readSync(fd, buffer);
    if (n === 0) break;
    chunks.push(Buffer.from(buffer.subarray(0, n)));
  }
  return Buffer.concat(chunks).toString();
}

/** Asserts that `fn` throws (synchronously) a LibforksError with `code`
 * (or, for a failed system call, with result `code` and the errno's name
 * as its code), and, if given, a message containing `messagePart`.
 * "INVALID_ARGUMENT" stands for a Node-shaped argument error (TypeError /
 * RangeError). Returns the error. */
export function expectThrowsLibforks(fn: () => unknown, code: string, messagePart?: string): LibforksError {
  let caught: unknown = null;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  return checkLibforksError(caught, code, messagePart);
}

/** Asserts that `promise` rejects with a LibforksError with `code`. */
export async function expectRejectsLibforks(promise: Promise<unknown>, code: string, messagePart?: string): Promise<LibforksError> {
  let caught: unknown = null;
  try {
    await promise;
  } catch (error) {
    caught = error;
  }
  return checkLibforksError(caught, code, messagePart);
}

function checkLibforksError(caught: unknown, code: string, messagePart?: string): LibforksError {
  if (code === "INVALID_ARGUMENT") {
    // A bad argument is Node-shaped: TypeError ERR_INVALID_ARG_TYPE for
    // its type, RangeError ERR_INVALID_ARG_VALUE for its value.
    expect(caught instanceof TypeError || caught instanceof RangeError).toBe(true);
    const error = caught as Error & { code: string };
    expect(error.code).toBe(caught instanceof TypeError ? "ERR_INVALID_ARG_TYPE" : "ERR_INVALID_ARG_VALUE");
    if (messagePart !== undefined) expect(error.message).toContain(messagePart);
    return error as unknown as LibforksError;
  }
  expect(caught).toBeInstanceOf(LibforksError);
  const error = caught as LibforksError;
  expect(error.name).toBe("LibforksError");
  if (error.result === code && error.errnoCode !== undefined && error.code !== code) {
    // A failed system call: `code` is its errno name, as Node's
    // SystemError; the libforks result is kept in `result`.
    expect(error.code).toBe(error.errnoCode);
    expect(error.errno).toBeLessThan(0);
  } else {
    expect(error.code).toBe(code as LibforksError["code"]);
  }
  if (messagePart !== undefined) expect(error.message).toContain(messagePart);
  return error;
}

/** Asserts that `fn` throws a Node-shaped argument error: `type`
 * (TypeError or RangeError), `code` (ERR_INVALID_ARG_TYPE / _VALUE), a
 * message naming the argument. */
export function expectThrowsArgument(
  fn: () => unknown,
  type: typeof TypeError | typeof RangeError,
  code: "ERR_INVALID_ARG_TYPE" | "ERR_INVALID_ARG_VALUE",
  messagePart: string,
): Error & { code: string; argument: string } {
  let caught: unknown = null;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(type);
  const error = caught as Error & { code: string; argument: string };
  expect(error.code).toBe(code);
  expect(error.message).toContain(messagePart);
  return error;
}

/** Collects a ReadableStream to text. */
export async function streamText(stream: ReadableStream<Uint8Array> | undefined): Promise<string> {
  expect(stream).toBeDefined();
  return await new Response(stream).text();
}

/** Runs a program to its end (killed after 25 s) and gives its exit code
 * and output. */
export async function runProgram(
  argv: string[],
  options: { cwd?: string; env?: Record<string, string | undefined> } = {},
): Promise<{ code: number; out: string; err: string }> {
  const proc = Bun.spawn(argv, { cwd: options.cwd, env: options.env ?? process.env, stdout: "pipe", stderr: "pipe" });
  try {
    const [code, out, err] = await within(
      Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]),
      25000,
      argv.join(" "),
    );
    return { code, out, err };
  } finally {
    proc.kill("SIGKILL");
  }
}
