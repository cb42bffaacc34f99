// The options of server.spawn: their types, their defaults (Bun.spawn's),
// and their validation. Everything here runs before a child exists, so a
// bad option costs no process and names itself.

import type { BunFile } from "bun";
import { fstatSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { invalidArgType, invalidArgValue, systemError } from "./node-errors.ts";
import { signalNumber } from "./signals.ts";
import type { Child } from "./child.ts";
import type { Serialization } from "./serialization.ts";

/** Where one of the program's fds comes from or goes to.
 * - `"pipe"`: a pipe to this process (`child.stdin` / `child.stdout` /
 *   `child.stderr`); at index 3 or more a socket, whose end here is
 *   `child.stdio[i]` (yours to close).
 * - `"inherit"`: this process's fd of the same number.
 * - `"ignore"` or `null`: /dev/null for 0-2, nothing at 3 or more.
 * - a number: that fd of this process.
 * - a `BunFile` (`Bun.file(path)`): the file, opened for reading (stdin)
 *   or writing (created if missing, not truncated, as Bun.spawn does). */
export type StdioOption = "inherit" | "pipe" | "ignore" | null | number | BunFile;

/** stdin may also be data, written to a pipe as the program reads it. */
export type StdinOption = StdioOption | ArrayBufferView | Blob | Response | Request | ReadableStream<Uint8Array>;

/** Options of `server.spawn`: Bun.spawn's (with its defaults), plus
 * `fds`, `channel` and `serialization`. An unknown name is an error. */
export interface SpawnOptions {
  /** Working directory (default: this process's). */
  cwd?: string;
  /** The environment (default: process.env). Undefined values are left out. */
  env?: Record<string, string | undefined>;
  /** The program's stdin. Default `"ignore"` (/dev/null), as Bun.spawn. */
  stdin?: StdinOption;
  /** The program's stdout. Default `"pipe"` (`child.stdout`), as Bun.spawn. */
  stdout?: StdioOption;
  /** The program's stderr. Default `"inherit"`, as Bun.spawn. */
  stderr?: StdioOption;
  /** `[stdin, stdout, stderr, ...more]`, overriding those three keys (a
   * missing entry keeps its default); entry `i` becomes the program's fd
   * `i`. Or one option for all three. */
  stdio?: StdioOption | [StdinOption?, StdioOption?, StdioOption?, ...StdioOption[]];
  /** Extra fds for the program: `{ 5: fd }` makes `fd` its fd 5. */
  fds?: Record<number, number>;
  /** Give the program a channel to this process (default true): its fd
   * number is in the LIBFORKS_CHANNEL_FD environment variable (3 unless
   * that fd is taken), and `connectToParent()` opens it. */
  channel?: boolean;
  /** How `child.channel` encodes messages: `"bytes"` (default: strings and
   * bytes as they are), `"json"` or `"advanced"` (bun:jsc's structured
   * clone). The program passes the same to `connectToParent()`. */
  serialization?: Serialization;
  /** Milliseconds the program may run; then it gets `killSignal`. */
  timeout?: number;
  /** Signal for `timeout`, `signal` and `maxBuffer` (default "SIGTERM"). */
  killSignal?: NodeJS.Signals | number;
  /** Kills the program with `killSignal` when aborted. Already aborted:
   * spawn throws an AbortError and starts nothing. */
  signal?: AbortSignal;
  /** Called once the program exited (`error` set, codes null, when the
   * server went away first and the status is unknown). */
  onExit?(child: Child, exitCode: number | null, signalCode: NodeJS.Signals | number | null, error?: Error): void | Promise<void>;
  /** argv[0] as the program sees it (default: the first element of argv,
   * which still names the file to run). */
  argv0?: string;
  /** Most bytes the program may write to its stdout and stderr pipes
   * together; past that it gets `killSignal`. */
  maxBuffer?: number;
}

/** One of the program's fds, resolved. */
export type StdioSpec =
  | { kind: "inherit" }
  | { kind: "ignore" }
  | { kind: "pipe" }
  | { kind: "fd"; fd: number }
  | { kind: "file"; path: string }
  | { kind: "data"; source: () => ReadableStream<Uint8Array> };

export interface CheckedSpawn {
  file: string;
  argv: string[];
  env: Record<string, string>;
  cwd: string | null;
  /** Index i is the program's fd i; undefined entries are left out. */
  stdio: (StdioSpec | undefined)[];
  fds: Map<number, number>;
  channel: boolean;
  serialization: Serialization;
  timeout: number | null;
  killSignal: number;
  signal: AbortSignal | null;
  onExit: SpawnOptions["onExit"] | null;
  maxBuffer: number | null;
}

const OPTIONS = [
  "cwd",
  "env",
  "stdin",
  "stdout",
  "stderr",
  "stdio",
  "fds",
  "channel",
  "serialization",
  "timeout",
  "killSignal",
  "signal",
  "onExit",
  "argv0",
  "maxBuffer",
] as const satisfies readonly (keyof SpawnOptions)[];

/** Bun.spawn options that server.spawn does not take, and what to do instead. */
const BUN_ONLY: Record<string, string> = {
  cmd: "pass the command as the first argument: server.spawn(argv, options)",
  ipc: "use child.channel (serialization: \"advanced\" for structured messages)",
  onDisconnect: "await child.channel.receive(), which gives null once the program closed its end",
  detached: "children of a fork server are supervised: they are killed with it",
  uid: "not supported",
  gid: "not supported",
  cgroup: "not supported",
  lazy: "pipes are read as data arrives",
  terminal: "not supported",
  windowsHide: "Windows only",
  windowsVerbatimArguments: "Windows only",
};

export function checkSpawn(argv: unknown, options: unknown): CheckedSpawn {
  if (!Array.isArray(argv)) throw invalidArgType("argv", "an array of strings", argv);
  if (argv.length === 0) throw invalidArgValue("argv", argv, "must not be empty");
  argv.forEach((arg, i) => {
    if (typeof arg !== "string") throw invalidArgType(`argv[${i}]`, "a string", arg);
    if (arg.includes("\0")) throw invalidArgValue(`argv[${i}]`, arg, "must not contain NUL");
  });
  if (options === null || typeof options !== "object" || Array.isArray(options)) throw invalidArgType("options", "an object", options);
  const o = options as SpawnOptions;
  checkNames(o);

  const envSource = o.env ?? process.env;
  if (envSource === null || typeof envSource !== "object") throw invalidArgType("options.env", "an object", envSource);
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(envSource)) {
    if (value === undefined) continue;
    if (typeof value !== "string") throw invalidArgType(`options.env.${key}`, "a string", value);
    if (key.length === 0 || key.includes("=") || key.includes("\0") || value.includes("\0")) {
      throw invalidArgValue(`options.env.${key}`, value, "must have a non-empty name without '=' or NUL, and a value without NUL");
    }
    env[key] = value;
  }

  if (o.cwd !== undefined && typeof o.cwd !== "string") throw invalidArgType("options.cwd", "a directory path", o.cwd);
  if (o.cwd === "") throw invalidArgValue("options.cwd", o.cwd, "must be a directory path");
  if (typeof o.cwd === "string" && o.cwd.includes("\0")) throw invalidArgValue("options.cwd", o.cwd, "must not contain NUL");
  const cwd = o.cwd ?? null;

  if (o.argv0 !== undefined && typeof o.argv0 !== "string") throw invalidArgType("options.argv0", "a string", o.argv0);
  if (o.argv0?.includes("\0")) throw invalidArgValue("options.argv0", o.argv0, "must not contain NUL");

  const stdio = checkStdio(o);

  const fds = new Map<number, number>();
  if (o.fds !== undefined) {
    if (o.fds === null || typeof o.fds !== "object" || Array.isArray(o.fds)) {
      throw invalidArgType("options.fds", "an object mapping fd numbers in the program to fds here", o.fds);
    }
    for (const [key, fd] of Object.entries(o.fds)) {
      const target = Number(key);
      if (!Number.isInteger(target) || target < 3) throw invalidArgValue(`options.fds[${key}]`, key, "must map an fd number of 3 or more (use stdio for 0-2)");
      if (stdio[target] !== undefined) throw invalidArgValue(`options.fds[${key}]`, key, `is also options.stdio[${target}]; give it once`);
      fds.set(target, checkOpenFd(`options.fds[${key}]`, fd));
    }
  }
  if (o.channel !== undefined && typeof o.channel !== "boolean") throw invalidArgType("options.channel", "a boolean", o.channel);
  const serialization = o.serialization ?? "bytes";
  if (serialization !== "bytes" && serialization !== "json" && serialization !== "advanced") {
    throw invalidArgValue("options.serialization", serialization, 'must be "bytes", "json" or "advanced"');
  }

  let timeout: number | null = null;
  if (o.timeout !== undefined) {
    if (typeof o.timeout !== "number") throw invalidArgType("options.timeout", "a number of milliseconds", o.timeout);
    if (!(o.timeout >= 0) || !Number.isFinite(o.timeout)) throw invalidArgValue("options.timeout", o.timeout, "must be a finite number of milliseconds, 0 or more");
    timeout = o.timeout;
  }
  const killSignal = o.killSignal === undefined ? 15 : signalNumber(o.killSignal, "options.killSignal");
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) throw invalidArgType("options.signal", "an AbortSignal", o.signal);
  if (o.onExit !== undefined && typeof o.onExit !== "function") throw invalidArgType("options.onExit", "a function", o.onExit);
  let maxBuffer: number | null = null;
  if (o.maxBuffer !== undefined) {
    if (typeof o.maxBuffer !== "number") throw invalidArgType("options.maxBuffer", "a number of bytes", o.maxBuffer);
    if (!(o.maxBuffer >= 0)) throw invalidArgValue("options.maxBuffer", o.maxBuffer, "must be a number of bytes, 0 or more");
    maxBuffer = o.maxBuffer;
  }

  const command = argv[0] as string;
  const file = resolveProgram(command, argv as string[], env.PATH ?? process.env.PATH ?? "", cwd);
  const args = o.argv0 === undefined ? (argv as string[]) : [o.argv0, ...(argv as string[]).slice(1)];
  return {
    file,
    argv: args,
    env,
    cwd,
    stdio,
    fds,
    channel: o.channel !== false,
    serialization,
    timeout,
    killSignal,
    signal: o.signal ?? null,
    onExit: o.onExit ?? null,
    maxBuffer,
  };
}

/** Unknown option names are errors: a misspelt option must not be silently
 * ignored (`stdoutt: "pipe"` would leave stdout at its default). */
function checkNames(options: object): void {
  for (const name of Object.keys(options)) {
    if ((OPTIONS as readonly string[]).includes(name)) continue;
    const bunOnly = BUN_ONLY[name];
    if (bunOnly !== undefined) {
      throw invalidArgValue(`options.${name}`, (options as Record<string, unknown>)[name], `is a Bun.spawn option that server.spawn does not take: ${bunOnly}`);
    }
    const near = closest(name, OPTIONS);
    throw invalidArgValue(
      `options.${name}`,
      (options as Record<string, unknown>)[name],
      `is not an option of server.spawn${near ? ` (did you mean ${near}?)` : ""}; it takes ${OPTIONS.join(", ")}`,
    );
  }
}

function closest(name: string, candidates: readonly string[]): string | null {
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(name.length / 3)) ? best : null;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}

function checkStdio(o: SpawnOptions): (StdioSpec | undefined)[] {
  const entries: unknown[] = [o.stdin, o.stdout, o.stderr];
  const names = ["options.stdin", "options.stdout", "options.stderr"];
  if (o.stdio !== undefined) {
    if (Array.isArray(o.stdio)) {
      o.stdio.forEach((entry, i) => {
        if (i < 3) {
          if (entry !== undefined) entries[i] = entry;
          names[i] = `options.stdio[${i}]`;
        } else {
          entries[i] = entry;
          names[i] = `options.stdio[${i}]`;
        }
      });
    } else {
      if (typeof o.stdio !== "number" && o.stdio !== "inherit" && o.stdio !== "pipe" && o.stdio !== "ignore" && o.stdio !== null) {
        throw invalidArgValue("options.stdio", o.stdio, 'must be "inherit", "pipe", "ignore", null, an fd or an array');
      }
      entries[0] = entries[1] = entries[2] = o.stdio;
      names[0] = names[1] = names[2] = "options.stdio";
    }
  }
  const defaults = ["ignore", "pipe", "inherit"];
  return entries.map((entry, i) => checkStdioEntry(names[i]!, entry === undefined && i < 3 ? defaults[i] : entry, i));
}

function checkStdioEntry(name: string, value: unknown, target: number): StdioSpec | undefined {
  if (value === "inherit") {
    if (target >= 3) checkOpenFd(name, target);
    return { kind: "inherit" };
  }
  if (value === "ignore" || value === null || value === undefined) return target < 3 ? { kind: "ignore" } : undefined;
  if (value === "pipe") return { kind: "pipe" };
  if (typeof value === "number") return { kind: "fd", fd: checkOpenFd(name, value) };
  if (isBunFile(value)) return { kind: "file", path: value.name! };
  if (typeof value === "string") throw invalidArgValue(name, value, 'must be "inherit", "pipe", "ignore", null, an fd or a Bun.file()');
  if (target === 0) {
    const source = dataSource(value);
    if (source) return { kind: "data", source };
    throw invalidArgType(name, '"inherit", "pipe", "ignore", null, an fd, a Bun.file(), a Blob, a Response, a Request, a ReadableStream or an ArrayBufferView', value);
  }
  throw invalidArgType(name, '"inherit", "pipe", "ignore", null, an fd or a Bun.file(path)', value);
}

/** Bun.file(path): a Blob that is not a File and names a path. */
function isBunFile(value: unknown): value is BunFile {
  return value instanceof Blob && !(value instanceof File) && typeof (value as { name?: unknown }).name === "string";
}

function dataSource(value: unknown): (() => ReadableStream<Uint8Array>) | null {
  if (value instanceof ReadableStream) {
    if (value.locked) throw invalidArgValue("options.stdin", value, "is a locked ReadableStream");
    return () => value as ReadableStream<Uint8Array>;
  }
  if (value instanceof Blob) return () => value.stream();
  if (value instanceof Response || value instanceof Request) {
    if (value.bodyUsed) throw invalidArgValue("options.stdin", value, "has a body that was already read");
    return () => value.body ?? new Blob([]).stream();
  }
  if (ArrayBuffer.isView(value)) {
    // Copied now: the caller may reuse its buffer once spawn returned.
    const bytes = new Uint8Array(value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength) as ArrayBuffer);
    return () => new Blob([bytes]).stream();
  }
  if (value instanceof ArrayBuffer) {
    const bytes = new Uint8Array(value.slice(0));
    return () => new Blob([bytes]).stream();
  }
  return null;
}

/** An fd argument that must also be open (checked before forking, so a
 * bad one costs no child). */
export function checkOpenFd(name: string, fd: unknown): number {
  if (typeof fd !== "number") throw invalidArgType(name, "a file descriptor", fd);
  if (!Number.isInteger(fd) || fd < 0 || fd > 0x7fffffff) throw invalidArgValue(name, fd, "must be a file descriptor (a non-negative integer)");
  try {
    fstatSync(fd);
  } catch {
    throw invalidArgValue(name, fd, "must be an open fd");
  }
  return fd;
}

/** PATH search done here, where an error can be thrown synchronously. */
function resolveProgram(command: string, argv: string[], path: string, cwd: string | null): string {
  if (command.includes("/")) return isAbsolute(command) ? command : resolve(cwd ?? process.cwd(), command);
  const found = Bun.which(command, { PATH: path, cwd: cwd ?? undefined });
  if (!found) {
    throw systemError("ENOENT", `cannot run ${command}: not found in PATH`, {
      syscall: `spawn ${command}`,
      path: command,
      spawnargs: argv.slice(1),
      result: "EXEC_ERROR",
    });
  }
  return found;
}
