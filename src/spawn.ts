// spawn: running a program in a child of the server, with Bun.spawn's
// options. The spec usually travels with the fork request
// (spawn-request.ts); a larger one goes on the program's socket.

import { ptr } from "bun:ffi";
import { closeSync } from "node:fs";
import { lib } from "./native.ts";
import { LibforksError, errnoName } from "./errors.ts";
import { failure, type ExitSource, type ServerConn, type SpawnSpec } from "./conn.ts";
import type { PendingPid } from "./pending-pid.ts";
import { Child, type Killer } from "./child.ts";
import { MAX_FDS } from "./fd-passing.ts";
import { CHANNEL_FD_ENV } from "./parent-channel.ts";
import { socketPair } from "./fds.ts";
import { PipeWriter } from "./stdio.ts";
import { WORKER_DEPTH_ENV, WORKER_ENV } from "./worker.ts";
import { checkSpawn, type CheckedSpawn, type SpawnOptions } from "./spawn-options.ts";
import { closeAll, outputReaders, prepareStdio, pumpStdin } from "./spawn-stdio.ts";
import { supervision } from "./spawn-supervise.ts";
import { channelFor } from "./serialization.ts";
import { argValueError, systemError } from "./node-errors.ts";
import { debug, debugEnabled } from "./debug.ts";

const EXEC_STEPS = ["", "receive spec", "map fds", "chdir", "execve"];

/** The error of a program that could not start, shaped as Node's and
 * Bun's (code "ENOENT", errno, syscall, path, spawnargs); a failed chdir
 * names the directory. */
function execError(spec: CheckedSpawn, step: string, errno: number): LibforksError {
  const name = errnoName(errno);
  const program = spec.argv[0]!;
  if (step === "chdir") {
    return new LibforksError("EXEC_ERROR", `cannot run ${program}: cannot change to directory ${spec.cwd}`, {
      errno,
      syscall: "chdir",
      path: spec.cwd ?? undefined,
      spawnargs: spec.argv.slice(1),
    });
  }
  if (step === "execve" && name) {
    return systemError(name, `cannot run ${program}: execve of ${spec.file} failed`, {
      syscall: `spawn ${program}`,
      path: spec.file,
      spawnargs: spec.argv.slice(1),
      result: "EXEC_ERROR",
    });
  }
  return new LibforksError("EXEC_ERROR", `cannot run ${program}: ${step} failed`, { errno, syscall: "libforks_exec_entrypoint" });
}

/** Checks the options, starts the program, and returns its Child (see
 * ForkServer.spawn). */
export function spawnProgram(conn: ServerConn, argv: string[], options: SpawnOptions, extraEnv: Record<string, string>, killer: Killer): Child {
  const spec = checkSpawn(argv, options);
  if (spec.signal?.aborted) {
    // As Bun.spawn: nothing starts, and the reason is the cause.
    const error = new DOMException("The operation was aborted.", "AbortError");
    Object.defineProperty(error, "cause", { value: spec.signal.reason, configurable: true, writable: true });
    throw error;
  }
  const began = performance.now();
  const stdio = prepareStdio(spec.stdio);
  const { opened, kept } = stdio;
  try {
    const mapped = stdio.mapped;
    for (const [target, fd] of spec.fds) mapped.set(target, fd);

    const env = { ...spec.env };
    // Ours, not the program's: without a channel it must not believe
    // that fd 3 is one (it would be if this process was spawned too).
    delete env[CHANNEL_FD_ENV];
    // A program is a worker only when spawnWorker() says so.
    delete env[WORKER_ENV];
    delete env[WORKER_DEPTH_ENV];
    Object.assign(env, extraEnv);
    let channelFd: number | undefined;
    if (spec.channel) {
      const [parentEnd, childEnd] = socketPair();
      opened.push(childEnd);
      kept.push(parentEnd);
      channelFd = parentEnd;
      let target = 3;
      while (mapped.has(target) || spec.stdio[target] !== undefined) target++;
      mapped.set(target, childEnd);
      env[CHANNEL_FD_ENV] = String(target);
    }
    if (mapped.size > MAX_FDS) throw argValueError("options.fds", `maps ${mapped.size} fds; at most ${MAX_FDS}`);

    const envList = Object.entries(env).map(([k, v]) => `${k}=${v}`);
    const { pid, exitFd } = startProgram(conn, spec, { file: spec.file, argv: spec.argv, env: envList, cwd: spec.cwd, mapped });
    const supervised = supervision(spec);
    const outputs = outputReaders(stdio, supervised.onBytes);
    const stdin = stdio.stdin === undefined || stdio.stdinData ? undefined : new PipeWriter(stdio.stdin);
    const child = Child.create(
      pid,
      exitFd,
      {
        channel: channelFd === undefined ? undefined : channelFor(channelFd, spec.serialization),
        stdin,
        stdout: outputs.stdout?.stream,
        stderr: outputs.stderr?.stream,
        stdio: stdio.extra,
        refs: [outputs.stdout, outputs.stderr, stdin].filter((ref) => ref !== undefined),
        argv: spec.argv,
      },
      killer,
    );
    kept.length = 0;
    if (stdio.stdin !== undefined && stdio.stdinData) void pumpStdin(stdio.stdin, stdio.stdinData());
    if (debugEnabled) debug("spawn", { pid: child.pid, argv: spec.argv, ms: (performance.now() - began).toFixed(3) });
    supervised.attach(child, [outputs.stdout, outputs.stderr]);
    return child;
  } finally {
    closeAll(opened);
    closeAll(kept);
  }
}

/** Starts the program: its pid and where its exit comes, once it is
 * exec'd. Throws the fork's error, or the exec's (that child exits 127
 * and is still reaped). */
function startProgram(conn: ServerConn, spec: CheckedSpawn, request: SpawnSpec): { pid: number; exitFd: ExitSource } {
  // The owner's programs on Linux: the server starts them in place and
  // answers once it knows whether they were exec'd, so no control socket.
  if (conn.outcomeInAnswer()) {
    const inline = conn.spawnInline(-1, request);
    if (inline !== null) {
      const pid = inline.pid.get();
      const failed = inline.pid.execFailure();
      if (failed !== null) {
        Child.create(pid, inline.exit);
        throw execError(spec, EXEC_STEPS[failed.step] ?? "exec", failed.errno);
      }
      return { pid, exitFd: inline.exit };
    }
  }
  // Otherwise the outcome comes on a control socket. A spec that fits the
  // socket is queued before the fork: the server then starts the program
  // without copying itself (spec_queued). `control` has one owner at a
  // time: this function until libforks_read_exec_result, which closes it.
  const [control, childControl] = socketPair();
  let forked: { pid: number | PendingPid; exitFd: ExitSource } | null = null;
  let queued = true;
  try {
    // Usually the whole spec travels with the request; a larger one is
    // queued on the socket first, or sent after the fork.
    const inline = conn.spawnInline(childControl, request);
    if (inline !== null) {
      forked = { pid: inline.pid, exitFd: inline.exit };
    } else {
      queued = specFitsQueue(request.file, request.argv, request.env, request.cwd);
      // A failed send may have sent part of the spec: nothing to fork.
      if (queued) sendSpec(control, request.file, request.argv, request.env, request.cwd, request.mapped);
      forked = conn.forkExec(childControl, queued);
    }
  } catch (error) {
    closeSync(control);
    throw error;
  } finally {
    closeSync(childControl);
  }
  const exitFd = forked.exitFd;
  if (!queued) {
    try {
      sendSpec(control, request.file, request.argv, request.env, request.cwd, request.mapped);
    } catch (error) {
      closeSync(control);
      // The child sees its socket close and exits 127; keep reaping it.
      Child.create(forked.pid, exitFd);
      throw error;
    }
  }
  const step = new Int32Array(1);
  const result = lib.libforks_read_exec_result(control, ptr(step)); // closes control
  const errno = lib.libforks_last_errno();
  // The server's copy of the socket also closes when the fork itself
  // failed: then the answer on the stream says why.
  const pid = typeof forked.pid === "number" ? forked.pid : forked.pid.get();
  if (result !== 0) {
    // The child exits with 127; its exit is still reaped and reported.
    Child.create(pid, exitFd);
    throw execError(spec, EXEC_STEPS[step[0]!] ?? "exec", errno);
  }
  return { pid, exitFd };
}

function cStrings(strings: string[]): { pointers: BigUint64Array; keep: Buffer[] } {
  const keep = strings.map((s) => Buffer.from(`${s}\0`));
  const pointers = new BigUint64Array(strings.length + 1);
  for (const [i, buffer] of keep.entries()) pointers[i] = BigInt(ptr(buffer));
  return { pointers, keep };
}

/** libforks_ForkRequest.spec_queued limits: 64 KiB of strings, 4,096 of
 * them (UTF-8 lengths, NULs included). */
function specFitsQueue(file: string, argv: string[], env: string[], cwd: string | null): boolean {
  const strings = [file, ...argv, ...env, ...(cwd === null ? [] : [cwd])];
  if (strings.length > 4096) return false;
  let bytes = 0;
  for (const string of strings) bytes += Buffer.byteLength(string) + 1;
  return bytes <= 64 * 1024;
}

function sendSpec(control: number, file: string, argv: string[], env: string[], cwd: string | null, mapped: Map<number, number>): void {
  const args = cStrings(argv);
  const envp = cStrings(env);
  const fileBytes = Buffer.from(`${file}\0`);
  const cwdBytes = cwd === null ? null : Buffer.from(`${cwd}\0`);
  const targets = new Int32Array([...mapped.keys()]);
  const sources = new Int32Array([...mapped.values()]);
  const result = lib.libforks_send_exec_spec(
    control,
    ptr(fileBytes),
    ptr(args.pointers),
    ptr(envp.pointers),
    cwdBytes ? ptr(cwdBytes) : null,
    sources.length ? ptr(sources) : null,
    targets.length ? ptr(targets) : null,
    targets.length,
  );
  // Keep the string buffers alive until the call returned.
  void args.keep;
  void envp.keep;
  // The caller closes control: it alone knows whether it still owns it.
  if (result !== 0) throw failure(result, `cannot send the exec spec of ${argv[0]}`, "libforks_send_exec_spec");
}
