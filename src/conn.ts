// ServerConn: the typed wrapper of a libforks_ServerConn. Every call maps
// to one C function; calls that can wait return promises that settle on
// this event loop's event stream (events.ts). The raw pointer never
// leaves this class.

import { ptr, type Pointer } from "bun:ffi";
import { closeSync } from "node:fs";
import { constants as osConstants } from "node:os";
import { lib } from "./native.ts";
import { serverExecutable } from "./server-executable.ts";
import { LibforksError } from "./errors.ts";
import { ForkRequest, modes, Reply, Result, StartOptions } from "./abi.ts";
import { argValueError } from "./node-errors.ts";
import { pipe, socketPair } from "./fds.ts";
import { sendFds } from "./fd-passing.ts";
import type { ExitEvent } from "./exit-event.ts";
import { adoptConn, adoptFd, releaseConn } from "./owned.ts";
import { codeRanges, inCode, type CodeRanges } from "./code-map.ts";
import { EVENT_OP, EventStream, type EventRecord } from "./events.ts";
import { packSpawn } from "./spawn-request.ts";
import { PendingPid } from "./pending-pid.ts";
import { ForkQueue } from "./fork-queue.ts";
import { failure, readStopReply, replyFailure, replyOf, type Reply as ReplyFields } from "./wire.ts";

export { failure };


/** @internal What spawnInline sends. */
export interface SpawnSpec {
  file: string;
  argv: string[];
  env: string[];
  cwd: string | null;
  /** Target fd number in the program -> fd here. */
  mapped: Map<number, number>;
}

/** What the server answered to a wait. */
export interface WaitResult {
  /** Pid of the child that exited. */
  pid: number;
  /** Its raw `waitpid(2)` status. */
  status: number;
  /** The status decoded. */
  event: ExitEvent;
  /** User and system CPU time of the child, in microseconds. */
  rusage: { userMicros: number; systemMicros: number; maxRssKiB: number };
}

/** A token for `ForkServer.attach()` in another thread (a Worker) of this
 * process, made by `server.share()`; structured-clone-able. */
export interface SharedConn {
  /** Always `"libforks-server"`. */
  kind: "libforks-server";
  /** The shared connection's reference, as a decimal string. */
  handle: string;
  /** Pid of the process that made it: it is valid there only. */
  owner: number;
  /** Pid of the server. */
  server: number;
  /** True for a clean server. */
  clean: boolean;
}

/** @internal What to run in a forked child. */
export type ForkTarget = { entrypoint: number } | { library: string | null; symbol: string };

/** @internal Where a child's exit is reported: an exit pipe's read end,
 * or a record on this loop's event stream. */
export type ExitSource = number | { stream: EventStream; tag: number; record: Promise<EventRecord> };

/** @internal A fork whose pid is still on its way (see ServerConn.forkAsync). */
export interface StartedFork {
  /** The caller's end of the child's socket, or null. */
  socketFd: number | null;
  /** Its exit, on the event stream. */
  exit: ExitSource;
  /** The fork's outcome. */
  pid: PendingPid;
}




/** Only this module makes ServerConns: the constructor takes a native
 * pointer, which must never come from a caller. */
const fromNative = Symbol("ServerConn from native");

/**
 * The typed wrapper of a `libforks_ServerConn`, one method per C call, with
 * the C semantics (raw fds, numeric signals), for those who want them;
 * `ForkServer` is the convenient form.
 *
 * @example
 * ```ts
 * const conn = ServerConn.start();
 * console.log(conn.pid); // the server's pid
 * await conn.waitAll(); // no child is running
 * await conn.stop(true, false);
 * ```
 */
export class ServerConn {
  #conn: Pointer | null;
  /** Pid of the server process. */
  readonly pid: number;
  /** Executable memory when the server started: children are copies of
   * this process then, so only addresses in it can be entrypoints. */
  readonly #code: CodeRanges;
  /** Tokens made by share() and not attached yet: dropped when this
   * connection goes, so none keeps the connection alive. */
  readonly #tokens = new Set<bigint>();

  private constructor(key: symbol, conn: Pointer, clean: boolean) {
    if (key !== fromNative) throw new LibforksError("INVALID_ARGUMENT", "ServerConn is made by ServerConn.start(), startClean() or attach(), not by new");
    this.#conn = conn;
    this.clean = clean;
    this.pid = lib.libforks_get_server_pid(conn);
    this.#code = clean ? [] : codeRanges();
    try {
      adoptConn(conn);
    } catch (error) {
      lib.libforks_free_conn(conn);
      throw error;
    }
  }

  /** libforks_start: a snapshot server, a copy of this process now.
   * @throws {LibforksError} `FORK_ERROR`, `SOCKET_CREATION_ERROR`, ... */
  static start(): ServerConn {
    const out = new BigUint64Array(1);
    const result = lib.libforks_start(ptr(out));
    if (result !== 0) throw failure(result, "cannot start the fork server", "libforks_start");
    return new ServerConn(fromNative, Number(out[0]) as Pointer, false);
  }

  /** libforks_start_ex in clean mode: the server runs libforks-server
   * (from a memfd when it is embedded or not executable).
   * @throws {LibforksError} `LOAD_ERROR` when libforks-server cannot be
   *   read; `EXEC_ERROR`, `FORK_ERROR`, ... when it cannot start. */
  static startClean(): ServerConn {
    const { path, memfd } = serverExecutable();
    const fromMemfd = memfd >= 0;
    const pathBytes = Buffer.from(`${path}\0`);
    const options = new ArrayBuffer(StartOptions.size);
    const view = new DataView(options);
    view.setBigUint64(StartOptions.offset.size, BigInt(StartOptions.size), true);
    view.setInt32(StartOptions.offset.mode, modes.clean, true);
    view.setBigUint64(StartOptions.offset.server_path, fromMemfd ? 0n : BigInt(ptr(pathBytes)), true);
    view.setInt32(StartOptions.offset.server_fd, memfd, true);
    const out = new BigUint64Array(1);
    const result = lib.libforks_start_ex(ptr(out), ptr(options));
    if (memfd >= 0) closeSync(memfd);
    if (result !== 0) throw failure(result, `cannot start a clean fork server (${path})`, "libforks_start_ex");
    return new ServerConn(fromNative, Number(out[0]) as Pointer, true);
  }

  /** True for a clean server (children run only symbols and programs). */
  readonly clean: boolean;

  /** True for a handle made by attach(): it may not stop the server. */
  readonly attached: boolean = false;

  /** libforks_conn_token: a reference for another thread (a Worker), as
   * a structured-clone-able token. The token is a key into the native
   * library's table, not an address; it is taken once by attach(). */
  share(): SharedConn {
    const out = new BigUint64Array(1);
    const result = lib.libforks_conn_token(this.#handle(), ptr(out));
    if (result !== 0) throw failure(result, "cannot share the connection", "libforks_conn_token");
    this.#tokens.add(out[0]!);
    return { kind: "libforks-server", handle: String(out[0]), owner: process.pid, server: this.pid, clean: this.clean };
  }

  /** Takes the reference of a token made by share() in this process: once
   * per token, checked by the native library. */
  static attach(token: SharedConn): ServerConn {
    const handle = token?.handle;
    if (typeof handle !== "string" || !/^[1-9][0-9]{0,15}$/.test(handle)) {
      throw new LibforksError("INVALID_ARGUMENT", "token must come from server.share()");
    }
    const out = new BigUint64Array(1);
    const result = lib.libforks_conn_attach(BigInt(handle), ptr(out));
    if (result === Result.NOT_OWNER) throw failure(result, "token was made in another process", "libforks_conn_attach");
    if (result !== 0) throw failure(result, "token is not a live share() token of this process: unknown, already attached, or dropped when its server stopped", "libforks_conn_attach");
    const conn = new ServerConn(fromNative, Number(out[0]) as Pointer, token.clean === true);
    (conn as { attached: boolean }).attached = true;
    return conn;
  }

  #dropTokens(): void {
    // A token already attached is no longer in the table: dropping it is
    // refused, harmlessly.
    for (const token of this.#tokens) lib.libforks_conn_token_drop(token);
    this.#tokens.clear();
  }

  /** Checks a native entrypoint address (see code-map.ts). */
  checkEntrypoint(address: number, name: string): void {
    if (!inCode(this.#code, address)) {
      throw argValueError(
        name,
        `(0x${address.toString(16)}) is not in executable memory mapped when the server started: its children are copies of this process then`,
      );
    }
  }

  /** True once stopped or freed. */
  get closed(): boolean {
    return this.#conn === null;
  }

  #handle(): Pointer {
    if (this.#conn === null) throw new LibforksError("SERVER_GONE", "the fork server was stopped");
    return this.#conn;
  }

  #events: EventStream | null = null;
  #outcomeInAnswer: boolean | undefined;
  readonly #forks = new ForkQueue(() => this.#conn);

  /** @internal Sends queued forks up to and including `pid`'s, blocking:
   * for a caller that needs that pid now. */
  flushUntil(pid: PendingPid): void {
    this.#forks.flushUntil(pid);
  }

  /** This connection's event stream, opened at first use. */
  #stream(): EventStream {
    this.#events ??= new EventStream(this.#handle() as unknown as number);
    return this.#events;
  }

  /** Sends a wait, kill or kill_all answered on the event stream. */
  async #ask(op: number, fields: { pid?: number; signal?: number; flags?: number }, what: string, syscall: string): Promise<ReplyFields> {
    const stream = this.#stream();
    const { tag, result } = stream.send(this.#handle() as unknown as number, op, fields);
    if (result !== 0) throw failure(result, what, syscall);
    return replyOf(await stream.reply(tag));
  }

  /** @internal Forks libforks_exec_entrypoint on `childControl` (the caller keeps
   * and closes it) and waits for the pid. With `specQueued`, the spec is
   * already in the socket and the server starts the program in place. */
  forkExec(childControl: number, specQueued: boolean): { pid: number; exitFd: number } {
    const handle = this.#handle();
    const [exitRead, exitWrite] = pipe();
    const request = new ArrayBuffer(ForkRequest.size);
    const view = new DataView(request);
    view.setBigUint64(ForkRequest.offset.size, BigInt(ForkRequest.size), true);
    view.setBigUint64(ForkRequest.offset.entrypoint, BigInt((lib.libforks_exec_entrypoint as unknown as { ptr: number }).ptr), true);
    view.setInt32(ForkRequest.offset.socket_fd, childControl, true);
    view.setInt32(ForkRequest.offset.exit_fd, exitWrite, true);
    view.setUint8(ForkRequest.offset.nonblocking, 0); // blocking send
    view.setUint8(ForkRequest.offset.spec_queued, specQueued ? 1 : 0);
    view.setUint8(ForkRequest.offset.exit_rusage, 1); // resourceUsage() after the exit
    const out = new Int32Array(1);
    const result = lib.libforks_fork_async(handle, ptr(request), ptr(out));
    closeSync(exitWrite);
    if (result !== 0) {
      closeSync(exitRead);
      throw failure(result, "cannot fork", "libforks_fork_async");
    }
    const reply = new ArrayBuffer(Reply.size);
    const replied = lib.libforks_reply_read(out[0]!, ptr(reply)); // closes it
    if (replied !== 0) {
      closeSync(exitRead);
      throw failure(replied, "cannot fork", "fork");
    }
    return { pid: new DataView(reply).getInt32(Reply.offset.pid, true), exitFd: adoptFd(exitRead) };
  }

  /** @internal Whether spawnInline may go without a control socket
   * (childControl -1): the owner's connection on Linux, whose programs the
   * server starts in place and answers for with their outcome. */
  outcomeInAnswer(): boolean {
    this.#outcomeInAnswer ??= lib.libforks_spawn_outcome_in_answer(this.#handle());
    return this.#outcomeInAnswer;
  }

  /** @internal libforks_spawn_async: the spec travels with the request,
   * `childControl` (the caller keeps and closes it) gets the outcome, and
   * the pid and the exit come on the event stream. `childControl` -1 when
   * outcomeInAnswer(): then the answer says whether the program started
   * (PendingPid.execFailure). Null when the spec is too large to travel
   * with it (then use forkExec). */
  spawnInline(childControl: number, spec: SpawnSpec): { pid: PendingPid; exit: ExitSource } | null {
    const handle = this.#handle();
    const stream = this.#stream();
    const tag = stream.tag();
    const packed = packSpawn(spec.file, spec.argv, spec.env, spec.cwd, spec.mapped, childControl, stream.handle, tag);
    if (packed === null) return null;
    const exit: ExitSource = { stream, tag, record: stream.exit(tag) };
    exit.record.catch(() => {});
    const pid = new PendingPid(this, stream, tag, "cannot fork");
    const result = lib.libforks_spawn_async(handle, ptr(packed.request));
    void packed.keep;
    if (result !== 0) {
      const errno = lib.libforks_last_errno();
      const error = failure(result, "cannot fork", "libforks_spawn_async");
      pid.fail(error);
      // A message socket with a small limit (macOS's datagrams) refuses
      // the whole message, so nothing was sent: the socket path remains.
      if ((result === Result.WRITE_ERROR || result === Result.WOULD_BLOCK) && (errno === osConstants.errno.EMSGSIZE || errno === osConstants.errno.ENOBUFS)) return null;
      throw error;
    }
    return { pid, exit };
  }

  /** @internal libforks_fork_async: returns at once; the pid follows. Requests are
   * sent in call order; when the connection's queue is full they wait here
   * (not in a blocked system call) until the server catches up. */
  forkAsync(target: ForkTarget, socket: boolean, firstMessage?: { data: Uint8Array; fds: number[] }): StartedFork {
    const handle = this.#handle();
    const keep: Buffer[] = [];
    const request = new ArrayBuffer(ForkRequest.size);
    const view = new DataView(request);
    view.setBigUint64(ForkRequest.offset.size, BigInt(ForkRequest.size), true);
    if ("entrypoint" in target) {
      this.checkEntrypoint(target.entrypoint, "entrypoint");
      view.setBigUint64(ForkRequest.offset.entrypoint, BigInt(target.entrypoint), true);
    } else {
      if (target.library !== null) keep.push(Buffer.from(`${target.library}\0`));
      keep.push(Buffer.from(`${target.symbol}\0`));
      if (target.library !== null) view.setBigUint64(ForkRequest.offset.library, BigInt(ptr(keep[0]!)), true);
      view.setBigUint64(ForkRequest.offset.symbol, BigInt(ptr(keep[keep.length - 1]!)), true);
    }
    const stream = this.#stream();
    let parentSocket: number | null = null;
    let childSocket = -1;
    if (socket) {
      try {
        [parentSocket, childSocket] = socketPair();
        // Queued in the socket before the child exists, so it is there
        // whenever the child reads, and sending cannot fail because the
        // child already exited.
        if (firstMessage) sendFds(parentSocket, firstMessage.data, firstMessage.fds);
      } catch (error) {
        if (parentSocket !== null) closeSync(parentSocket);
        if (childSocket >= 0) closeSync(childSocket);
        throw error;
      }
    }
    const tag = stream.tag();
    view.setInt32(ForkRequest.offset.socket_fd, childSocket, true);
    view.setInt32(ForkRequest.offset.exit_fd, -1, true);
    view.setUint8(ForkRequest.offset.nonblocking, 1);
    view.setUint8(ForkRequest.offset.exit_event, 1); // the exit (and its rusage) on the stream
    view.setUint32(ForkRequest.offset.events, stream.handle, true);
    view.setBigUint64(ForkRequest.offset.tag, BigInt(tag), true);
    const childFds = childSocket >= 0 ? [childSocket] : [];
    const what =
      "entrypoint" in target
        ? "cannot fork"
        : `symbol ${target.symbol}${target.library === null ? "" : ` of ${target.library}`}`;
    // Both awaited before the request goes: the answers may come at once.
    const exit: ExitSource = { stream, tag, record: stream.exit(tag) };
    exit.record.catch(() => {});
    const pid = new PendingPid(this, stream, tag, what);
    const sent = this.#forks.submit(handle, { request, keep, childFds, pid, what });
    if (sent instanceof Error) {
      if (parentSocket !== null) closeSync(parentSocket);
      throw sent;
    }
    return { socketFd: parentSocket, exit, pid };
  }

  /** libforks_kill_all_async, after the forks queued before it.
   * @throws {LibforksError} the promise rejects with `KILL_ERROR`,
   *   `SERVER_GONE`. */
  async killAll(signal: number): Promise<void> {
    await this.#forks.sent();
    const reply = await this.#ask(EVENT_OP.killAll, { signal }, `cannot send signal ${signal} to the children`, "libforks_kill_all");
    if (reply.result !== 0) throw replyFailure(reply, `cannot send signal ${signal} to the children`, "libforks_kill_all");
  }

  /** libforks_kill_async: signals one child through the server, which
   * does it only while the child is in its table (running, or a zombie it
   * has not reaped), so a pid reused by another process is never
   * signalled. With `tree`, the child's descendants too. Resolves false
   * when the child was already reaped (ESRCH: nothing was sent). */
  async kill(pid: number, signal: number, tree: boolean): Promise<boolean> {
    const reply = await this.#ask(EVENT_OP.kill, { pid, signal, flags: tree ? 1 : 0 }, `cannot send signal ${signal} to ${pid}`, "libforks_kill");
    if (reply.result === Result.KILL_ERROR && reply.errno === osConstants.errno.ESRCH) return false;
    if (reply.result !== 0) throw replyFailure(reply, `cannot send signal ${signal} to ${pid}`, "libforks_kill");
    return true;
  }

  /** libforks_wait_async; resolves null for WNOHANG with nothing to report.
   * @throws {LibforksError} the promise rejects with `WAIT_ERROR` (errno
   *   `ECHILD`) for a pid that is not a child or was already waited for. */
  async wait(pid: number, noHang: boolean): Promise<WaitResult | null> {
    await this.#forks.sent();
    const reply = await this.#ask(EVENT_OP.wait, { pid, flags: noHang ? 1 : 0 }, `cannot wait for ${pid}`, "libforks_wait");
    if (reply.result === Result.WOULD_BLOCK) return null;
    if (reply.result !== 0) throw replyFailure(reply, `cannot wait for ${pid}`, "libforks_wait");
    return reply.wait!;
  }

  /** libforks_wait_all_async: resolves once no child runs.
   * @throws {LibforksError} the promise rejects with `SERVER_GONE`. */
  async waitAll(): Promise<void> {
    await this.#forks.sent();
    const reply = await this.#ask(EVENT_OP.waitAll, {}, "cannot wait for the children", "libforks_wait_all");
    if (reply.result !== 0) throw replyFailure(reply, "cannot wait for the children", "libforks_wait_all");
  }

  /** libforks_stop_async then libforks_stop_finish. Invalidates the conn
   * unless the caller is not the owner.
   * @throws {LibforksError} `NOT_OWNER` when this process did not start the
   *   server; the promise rejects with `STOP_ERROR`. */
  async stop(wait: boolean, serverOnly: boolean): Promise<void> {
    const handle = this.#handle();
    const out = new Int32Array(1);
    const result = lib.libforks_stop_async(handle, wait, serverOnly, ptr(out));
    if (result === Result.NOT_OWNER) throw failure(result, "only the process that started the server may stop it", "libforks_stop");
    // A stop that was not sent, or that the server refused, leaves the
    // server running and this connection usable: the caller may retry.
    if (result !== 0 && result !== Result.SERVER_GONE) throw failure(result, "cannot stop the fork server", "libforks_stop");
    if (result === 0) {
      // The server answers a stop only once the exits it reaped are all
      // on this loop's stream: that needs this loop to read it meanwhile.
      if (wait && !serverOnly) this.#events?.drain();
      const reply = await readStopReply(out[0]!);
      if (reply.result !== 0 && reply.result !== Result.SERVER_GONE) throw replyFailure(reply, "cannot stop the fork server", "libforks_stop");
    }
    if (this.#conn !== handle) return; // stopped meanwhile by a concurrent call
    this.#conn = null;
    releaseConn(handle);
    this.#dropTokens();
    this.#forks.failAll();
    this.#events?.close();
    // The server exits right after its reply: this returns at once.
    lib.libforks_stop_finish(handle);
  }

  /** libforks_free_conn: the server shuts down as if its owner died. */
  free(): void {
    if (this.#conn === null) return;
    releaseConn(this.#conn);
    this.#dropTokens();
    this.#events?.close();
    lib.libforks_free_conn(this.#conn);
    this.#conn = null;
    this.#forks.failAll();
  }
}
