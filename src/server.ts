// ForkServer: the public face of a fork server.

import { LibforksError, describe } from "./errors.ts";
import { ServerConn, type SharedConn, type WaitResult } from "./conn.ts";
import { Child } from "./child.ts";
import { Channel } from "./channel.ts";
import { checkFds } from "./fd-passing.ts";
import { signalNumber } from "./signals.ts";
import { thisProgram, workerEnv } from "./worker.ts";
import type { SpawnOptions } from "./spawn-options.ts";
import { spawnProgram } from "./spawn.ts";
import { forkTarget } from "./fork-target.ts";
import type { SerializedChannel } from "./serialization.ts";
import { argError, argTypeError, argValueError } from "./node-errors.ts";
import { debug, debugEnabled } from "./debug.ts";

export type { SpawnOptions, StdioOption, StdinOption } from "./spawn-options.ts";

/** A native entrypoint: a function pointer mapped when the server started
 * (a `bun:ffi` symbol or its `.ptr`), or a library and symbol to load in
 * the child with dlopen. */
export type Entrypoint =
  | number
  | bigint
  | { ptr: number | bigint }
  | { library: string | null; symbol: string }
  // A bun:ffi symbol: a callable with a `ptr` at run time (bun-types does
  // not declare it, so it is checked at run time).
  | ((...args: never[]) => unknown);

/** Options of `server.fork`. */
export interface ForkOptions {
  /** Give the child a socket: `child.channel` here, `socket_fd` there.
   * @default false (true when `fds` is not empty) */
  socket?: boolean;
  /** Fds to pass to the child: sent as the first message on its socket,
   * with a 4-byte payload holding their count (implies socket).
   * @default [] */
  fds?: number[];
}

/** Options of `ForkServer.start`. */
export interface StartOptions {
  /** "snapshot": the server is a copy of this process, forked
   * now, and children are copies of it: native entrypoints of any kind.
   * "clean": the server is a fresh libforks-server program holding none of
   * this process's memory; children run programs (`spawn`) or
   * `{ library, symbol }` entrypoints only.
   * @default "snapshot" */
  mode?: "snapshot" | "clean";
}

/** Options of `server.spawnWorker`: those of `spawn` (a worker always has
 * a channel), and its arguments. */
export interface WorkerOptions extends Omit<SpawnOptions, "channel"> {
  /** Arguments after the program (the worker's `process.argv.slice(2)`).
   * @default [] */
  args?: string[];
}

/**
 * A fork server: a process forked once, early (a snapshot of this
 * process) or a fresh `libforks-server` program (clean), that forks
 * children on request, reaps every one, reports each exit, and kills them
 * all when this process dies, even by SIGKILL.
 *
 * @example
 * ```ts
 * import { ForkServer } from "libforks";
 *
 * await using server = ForkServer.start();
 * const child = server.spawn(["/bin/sh", "-c", "exit 3"], { channel: false });
 * console.log((await child.exited).exitCode); // 3
 * ```
 */
export class ForkServer {
  readonly #conn: ServerConn;
  #stopping: Promise<void> | null = null;

  private constructor(conn: ServerConn) {
    this.#conn = conn;
  }

  /** What Child.kill() goes through: the server, never kill(2) by pid. */
  readonly #killer = (pid: number, signal: number, tree: boolean): Promise<boolean> => {
    try {
      return this.#live().kill(pid, signal, tree);
    } catch (error) {
      return Promise.reject(error);
    }
  };

  /** Starts a fork server: by default a copy of this process, forked now,
   * that forks children on request (native entrypoints must be loaded
   * before this); with `mode: "clean"` a fresh libforks-server program.
   * @default options `{ mode: "snapshot" }`
   * @throws {LibforksError} `INVALID_ARGUMENT` for bad options;
   *   `FORK_ERROR`, `SOCKET_CREATION_ERROR`, `LOAD_ERROR` (clean:
   *   libforks-server unreadable), ... when the server cannot start.
   * @example
   * ```ts
   * await using server = ForkServer.start({ mode: "clean" });
   * ```
   */
  static start(options: StartOptions = {}): ForkServer {
    if (options === null || typeof options !== "object") throw argTypeError("options", `must be an object, got ${describe(options)}`);
    if (options.mode !== undefined && options.mode !== "snapshot" && options.mode !== "clean") {
      throw argValueError("options.mode", `must be "snapshot" or "clean", got ${describe(options.mode)}`);
    }
    const began = performance.now();
    try {
      const server = new ForkServer(options.mode === "clean" ? ServerConn.startClean() : ServerConn.start());
      debug("start", { server: server.pid, mode: server.mode, ms: (performance.now() - began).toFixed(3) });
      return server;
    } catch (error) {
      debug("start failed", { mode: options.mode ?? "snapshot", error: (error as Error).message });
      throw error;
    }
  }

  /** A token to post to a Worker of this process, where
   * `ForkServer.attach(token)` gives a ForkServer on the same server (one
   * connection, many event loops). Each token must be attached once; the
   * attached server is released with `release()` (or `await using`) and
   * cannot stop the server.
   * @throws {LibforksError} `SERVER_GONE` once stopped.
   * @example
   * ```ts
   * worker.postMessage(server.share());
   * // in the Worker:
   * await using shared = ForkServer.attach(token);
   * ```
   */
  share(): SharedConn {
    return this.#live().share();
  }

  /** The ForkServer of a token made by `share()` in this process.
   * @throws {LibforksError} `INVALID_ARGUMENT` for a token that did not come
   *   from `share()` in this process. */
  static attach(token: SharedConn): ForkServer {
    if (
      token === null ||
      typeof token !== "object" ||
      token.kind !== "libforks-server" ||
      typeof token.handle !== "string" ||
      !/^[1-9][0-9]*$/.test(token.handle)
    ) {
      throw argTypeError("token", `must come from server.share(), got ${describe(token)}`);
    }
    if (token.owner !== process.pid) {
      throw argValueError("token", `was made in process ${token.owner}; it only works in that process (this is ${process.pid})`);
    }
    return new ForkServer(ServerConn.attach(token));
  }

  /** An attached server: lets go of this thread's handle (the server keeps
   * running). On the original this is stop(). */
  async release(): Promise<void> {
    if (!this.#conn.attached) return this.stop();
    this.#stopping ??= Promise.resolve();
    this.#conn.free();
  }

  /** "snapshot" or "clean". */
  get mode(): "snapshot" | "clean" {
    return this.#conn.clean ? "clean" : "snapshot";
  }

  /** Pid of the server process. */
  get pid(): number {
    return this.#conn.pid;
  }

  /** True once stop() or stopServerOnly() was called. */
  get stopped(): boolean {
    return this.#stopping !== null || this.#conn.closed;
  }

  #live(): ServerConn {
    if (this.stopped) throw new LibforksError("SERVER_GONE", "the fork server was stopped");
    return this.#conn;
  }

  /** Forks a child that runs a native entrypoint
   * `void entry(libforks_ServerConn conn, int socket_fd)`. Returns at
   * once; the pid follows (`child.started`).
   * @default options `{ socket: false, fds: [] }`
   * @throws {LibforksError} synchronously `INVALID_ARGUMENT` (a bad
   *   entrypoint, a function pointer on a clean server, bad options),
   *   `LOAD_ERROR` (`{ library, symbol }` that cannot be loaded),
   *   `SERVER_GONE`; `child.started` rejects with `FORK_ERROR` (errno
   *   `EAGAIN`, ...) when the fork fails.
   * @example
   * ```ts
   * const { symbols } = cc({ source: "./work.c", symbols: { work: { args: ["ptr", "i32"], returns: "void" } } });
   * await using server = ForkServer.start(); // after cc(): children are copies of this moment
   * const child = server.fork(symbols.work, { fds: [writeEnd] });
   * ```
   */
  fork(entrypoint: Entrypoint, options: ForkOptions = {}): Child {
    if (options === null || typeof options !== "object") throw argTypeError("options", `must be an object, got ${describe(options)}`);
    const fds = checkFds(options.fds, "options.fds");
    const socket = options.socket === true || fds.length > 0;
    if (options.socket !== undefined && typeof options.socket !== "boolean") {
      throw argTypeError("options.socket", `must be a boolean, got ${describe(options.socket)}`);
    }
    const conn = this.#live();
    let firstMessage: { data: Uint8Array; fds: number[] } | undefined;
    if (fds.length > 0) {
      const count = new Uint8Array(4);
      new DataView(count.buffer).setUint32(0, fds.length, true);
      firstMessage = { data: count, fds };
    }
    const target = forkTarget(conn, entrypoint);
    const began = performance.now();
    const forked = conn.forkAsync(target, socket, firstMessage);
    const channel = forked.socketFd === null ? undefined : new Channel(forked.socketFd);
    const argv = "entrypoint" in target ? [`<native 0x${target.entrypoint.toString(16)}>`] : [`<${target.library ?? "this image"}:${target.symbol}>`];
    const child = Child.create(forked.pid, forked.exit, { channel, argv }, this.#killer);
    this.#track(child);
    if (debugEnabled) {
      child.started.then(
        (pid) => debug("fork", { pid, entry: argv[0], ms: (performance.now() - began).toFixed(3) }),
        (error: Error) => debug("fork failed", { entry: argv[0], error: error.message }),
      );
    }
    return child;
  }

  /** Runs a program in a child of the server (a Bun script included:
   * `[process.execPath, "worker.ts"]`; in a compiled executable use
   * `spawnWorker`), with Bun.spawn's options and defaults (see
   * SpawnOptions). Returns once the program was exec'd. Throws, as
   * Bun.spawn, when it cannot be started: `code` "ENOENT", "EACCES", ...
   * (`result` "EXEC_ERROR").
   * @default options `{ stdin: "ignore", stdout: "pipe", stderr: "inherit", channel: true, env: process.env }`
   * @throws {TypeError | RangeError} `ERR_INVALID_ARG_TYPE` /
   *   `ERR_INVALID_ARG_VALUE` for bad argv or options (naming them);
   *   {LibforksError} `ENOENT`, `EACCES`, ... when the program cannot be
   *   started; `SERVER_GONE`.
   * @example
   * ```ts
   * const child = server.spawn(["/bin/cat"], { stdin: "pipe", channel: false });
   * child.stdin!.write("hello");
   * await child.stdin!.end();
   * console.log(await new Response(child.stdout!).text()); // "hello"
   * ```
   */
  spawn(argv: string[], options: SpawnOptions & { serialization: "json" | "advanced"; channel?: true }): Child & { readonly channel: SerializedChannel };
  spawn(argv: string[], options?: SpawnOptions): Child;
  spawn(argv: string[], options: SpawnOptions = {}): Child {
    try {
      return this.#spawn(argv, options, {});
    } catch (error) {
      debug("spawn failed", { argv: Array.isArray(argv) ? argv : undefined, error: (error as Error).message });
      throw error;
    }
  }

  /**
   * Starts a Bun worker that is this same program run again, with a
   * channel to this process, and `workerName()` giving `name` there: the
   * main module dispatches on it. Works unchanged from source, from a
   * `bun build --outdir` bundle and from a `bun build --compile`
   * executable (which runs itself again: no file beside it is needed).
   * @param name The worker's name, `workerName()` in the worker.
   * @default options `{ stdio: "inherit", args: [], env: process.env }`
   * @throws {LibforksError} `INVALID_ARGUMENT` for a bad name or options;
   *   `WORKER_NOT_DISPATCHED` in a worker that never asked `workerName()`
   *   (it would start copies of itself without end); `LIMIT_ERROR` past
   *   `MAX_WORKER_DEPTH` nested workers; as `spawn` otherwise.
   * @example
   * ```ts
   * import { ForkServer, connectToParent, workerName } from "libforks";
   *
   * if (workerName() === "echo") {
   *   const channel = connectToParent();
   *   for await (const message of channel) await channel.send(message.data);
   * } else {
   *   await using server = ForkServer.start();
   *   const worker = server.spawnWorker("echo");
   *   await worker.channel!.send("ping");
   *   const reply = await worker.channel!.receive();
   *   console.log(new TextDecoder().decode(reply!.data)); // "ping"
   * }
   * ```
   */
  spawnWorker(name: string, options: WorkerOptions = {}): Child {
    const extraEnv = workerEnv(name);
    if (options === null || typeof options !== "object") throw argTypeError("options", `must be an object, got ${describe(options)}`);
    const args = options.args ?? [];
    if (!Array.isArray(args)) throw argTypeError("options.args", `must be an array of strings, got ${describe(args)}`);
    args.forEach((arg, i) => {
      if (typeof arg !== "string") throw argTypeError(`options.args[${i}]`, `must be a string, got ${describe(arg)}`);
    });
    const { args: _args, ...spawnOptions } = options;
    // A worker shares this process's stdio unless told otherwise: a worker
    // that logs must not block on a pipe nobody reads.
    const stdioGiven = ["stdio", "stdin", "stdout", "stderr"].some((key) => key in spawnOptions);
    const stdio: SpawnOptions = stdioGiven ? {} : { stdio: "inherit" };
    return this.#spawn([...thisProgram(), ...args], { ...stdio, ...spawnOptions, channel: true }, extraEnv);
  }

  #spawn(argv: string[], options: SpawnOptions, extraEnv: Record<string, string>): Child {
    const child = spawnProgram(this.#live(), argv, options, extraEnv, this.#killer);
    this.#track(child);
    return child;
  }

  readonly #children = new Set<Child>();

  /** Remembers a running child for children() and the exit trace. */
  #track(child: Child): void {
    this.#children.add(child);
    const began = performance.now();
    const forget = (error?: Error) => {
      this.#children.delete(child);
      if (debugEnabled) {
        const exit = child.exit;
        debug(error ? "exit unknown" : "exit", {
          pid: exit?.pid,
          exitCode: exit?.exitCode ?? undefined,
          signal: exit?.signal ?? undefined,
          error: error?.message,
          ms: (performance.now() - began).toFixed(3),
        });
      }
    };
    child.exited.then(() => forget(), forget);
  }

  /** The children of this server that have not exited (as far as this
   * process has heard): pid, what they run, and when they were asked for.
   * A fork's pid is read as for `child.pid`. */
  children(): { pid: number; argv: string[]; startTime: Date; child: Child }[] {
    return [...this.#children].map((child) => ({ pid: child.pid, argv: child.argv, startTime: new Date(child.startTime), child }));
  }

  /** Sends a signal to every running child, forks made before this call
   * included (even those whose request is still queued), and (Linux) to
   * the orphans of their trees the server adopted; SIGKILL also takes
   * everything in the tree's cgroup when there is one. The server sends
   * it, by pids it has not reaped, so no reused pid is signalled.
   * Resolves once the signal was sent.
   * @default signal `"SIGTERM"`
   * @throws {LibforksError} synchronously `INVALID_ARGUMENT` for an unknown
   *   signal; the promise rejects with `KILL_ERROR` or `SERVER_GONE`. */
  killAll(signal: string | number = "SIGTERM"): Promise<void> {
    try {
      return this.#live().killAll(signalNumber(signal));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** waitpid(2) through the server: the exit of `pid` (or of any child with
   * -1). Resolves null with `noHang` when nothing has exited yet. Rejects
   * WAIT_ERROR (ECHILD) for a pid that is not a child or was already
   * waited for. Does not consume `child.exited`.
   * @default options `{ noHang: false }`
   * @throws {LibforksError} the promise rejects with `INVALID_ARGUMENT` for
   *   a bad pid, `WAIT_ERROR` (errno `ECHILD`), `SERVER_GONE`. */
  wait(pid: number, options: { noHang?: boolean } = {}): Promise<WaitResult | null> {
    if (!Number.isInteger(pid) || (pid <= 0 && pid !== -1)) {
      return Promise.reject(argError("pid", `must be a child's pid or -1, got ${describe(pid)}`, pid, "number"));
    }
    try {
      return this.#live().wait(pid, options.noHang === true);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Resolves once no child is running.
   * @throws {LibforksError} the promise rejects with `SERVER_GONE`. */
  waitAll(): Promise<void> {
    try {
      return this.#live().waitAll();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Stops the server: SIGTERM to every child (SIGKILL 500 ms later to
   * those still running). With `wait` (default) resolves once every child
   * and the server are gone. Idempotent.
   * @default options `{ wait: true }`
   * @throws {LibforksError} the promise rejects with `NOT_OWNER` on a server
   *   attached from a token (use `release()`), `STOP_ERROR`. */
  stop(options: { wait?: boolean } = {}): Promise<void> {
    if (this.#conn.attached) {
      return Promise.reject(new LibforksError("NOT_OWNER", "a server attached from a share() token cannot stop it; release() it instead"));
    }
    if (this.#stopping === null) debug("stop", { server: this.#conn.pid, children: this.#children.size });
    this.#stopping ??= this.#retryable(this.#conn.closed ? Promise.resolve() : this.#conn.stop(options.wait !== false, false));
    return this.#stopping;
  }

  /** A stop that failed left the server running: forget it, so that
   * stop() may be called again. */
  #retryable(stopping: Promise<void>): Promise<void> {
    const settled = stopping.catch((error: unknown) => {
      if (this.#stopping === settled) this.#stopping = null;
      throw error;
    });
    return settled;
  }

  /** Stops the server and leaves its children running. Their `exited`
   * then rejects with SERVER_GONE.
   * @throws {LibforksError} the promise rejects with `NOT_OWNER` on a server
   *   attached from a token. */
  stopServerOnly(): Promise<void> {
    if (this.#conn.attached) {
      return Promise.reject(new LibforksError("NOT_OWNER", "a server attached from a share() token cannot stop it; release() it instead"));
    }
    this.#stopping ??= this.#retryable(this.#conn.closed ? Promise.resolve() : this.#conn.stop(true, true));
    return this.#stopping;
  }

  /** `await using server = ...`: `release()`, which is `stop()` on the
   * server this process started. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.release();
  }

  get [Symbol.toStringTag](): string {
    return "ForkServer";
  }

  [Symbol.for("nodejs.util.inspect.custom")](): string {
    const state = this.stopped ? "stopped" : this.#conn.attached ? "attached" : "running";
    return `ForkServer { pid: ${this.#conn.pid}, mode: "${this.mode}", state: "${state}", children: ${this.#children.size} }`;
  }
}
