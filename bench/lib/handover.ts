// Case 2's design probe: what running a program could cost without the
// server hop. posix_spawn runs in this process (glibc and musl start the
// program with clone(CLONE_VM | CLONE_VFORK), which is safe in a
// multithreaded process; Bun.spawn starts programs the same way), and only
// the program's supervision is handed to another process: its pidfd goes
// over a socket to bench/native/handover_supervisor.c, which writes a
// record on an event pipe once the program ended; this process, its
// parent, then reaps it with waitid(P_PIDFD). That is one message out and
// one record back per program, with nobody waiting for the other.
//
// Not a libforks feature, and lighter than one would be: no fd mapping, no
// cgroup to join, no signal state to reset, no option checking, stdio
// inherited (as server.spawn's default; Bun.spawn's pipes stdout). The
// environment is encoded per call, as Bun.spawn and server.spawn do.

import { dlopen, FFIType, ptr } from "bun:ffi";
import { closeSync } from "node:fs";
import { join } from "node:path";
import { lib } from "../../src/native.ts";
import { socketPair, pipe } from "../../src/fds.ts";
import { isMusl } from "../../src/libc.ts";
import { NATIVE_DIR } from "./bench.ts";

const SYS_pidfd_open = 434; // the same on every architecture (Linux 5.3)
const P_PIDFD = 3;
const WEXITED = 4;
const RECORD_SIZE = 16;

const libc = dlopen(isMusl() ? "libc.so" : "libc.so.6", {
  posix_spawn: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  syscall: { args: [FFIType.i64, FFIType.i64, FFIType.i64], returns: FFIType.i64 },
  waitid: { args: [FFIType.i32, FFIType.u32, FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
}).symbols;

function cStrings(strings: string[]): { pointers: BigUint64Array; keep: Buffer } {
  const joined = Buffer.from(`${strings.join("\0")}\0`);
  const pointers = new BigUint64Array(strings.length + 1);
  const base = BigInt(ptr(joined));
  let offset = 0;
  strings.forEach((s, i) => {
    pointers[i] = base + BigInt(offset);
    offset += Buffer.byteLength(s) + 1;
  });
  return { pointers, keep: joined };
}

export interface Handover {
  /** Starts `argv` and resolves once it ended and was reaped: its status. */
  run(argv: string[]): Promise<number>;
  close(): Promise<void>;
}

export function startHandover(): Handover {
  const [ours, theirs] = socketPair();
  const [eventsRead, eventsWrite] = pipe();
  const supervisor = Bun.spawn([join(NATIVE_DIR, "handover_supervisor")], { stdio: ["ignore", "inherit", "inherit", theirs, eventsWrite] });
  closeSync(theirs);
  closeSync(eventsWrite);
  const waiting = new Map<number, () => void>();
  const reader = Bun.file(eventsRead).stream().getReader();
  const pumped = (async () => {
    let pending = new Uint8Array(0);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      const bytes = pending.length ? Buffer.concat([pending, value]) : value;
      let at = 0;
      for (; at + RECORD_SIZE <= bytes.length; at += RECORD_SIZE) {
        const tag = Number(new DataView(bytes.buffer, bytes.byteOffset + at).getBigUint64(0, true));
        waiting.get(tag)?.();
        waiting.delete(tag);
      }
      pending = bytes.slice(at);
    }
  })();
  let nextTag = 1;
  const pidOut = new Int32Array(1);
  const siginfo = new Uint8Array(128);
  const message = new ArrayBuffer(16);
  const messageView = new DataView(message);
  const fdOut = new Int32Array(1);
  return {
    run(argv: string[]): Promise<number> {
      const args = cStrings(argv);
      const env = cStrings(Object.entries(process.env).map(([k, v]) => `${k}=${v}`));
      const err = libc.posix_spawn(ptr(pidOut), args.keep, null, null, ptr(args.pointers), ptr(env.pointers));
      if (err !== 0) throw new Error(`posix_spawn: errno ${err}`);
      const pid = pidOut[0]!;
      const pidfd = Number(libc.syscall(SYS_pidfd_open, pid, 0));
      if (pidfd < 0) throw new Error("pidfd_open failed");
      const tag = nextTag++;
      messageView.setBigUint64(0, BigInt(tag), true);
      messageView.setInt32(8, pid, true);
      fdOut[0] = pidfd;
      if (lib.libforks_write_socket_fds(ours, ptr(message), 16, ptr(fdOut), 1) !== 16) throw new Error("handover send failed");
      return new Promise<number>((resolve, reject) => {
        waiting.set(tag, () => {
          const rc = libc.waitid(P_PIDFD, pidfd, ptr(siginfo), WEXITED);
          closeSync(pidfd);
          if (rc !== 0) reject(new Error("waitid failed"));
          else resolve(new DataView(siginfo.buffer).getInt32(24, true)); // si_status
        });
      });
    },
    async close() {
      closeSync(ours);
      await supervisor.exited;
      await pumped;
      try {
        closeSync(eventsRead);
      } catch {
        // Bun's reader closed it at end-of-file.
      }
    },
  };
}
