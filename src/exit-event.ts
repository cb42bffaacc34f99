// ExitEvent: the typed form of libforks_ExitEvent.

import { signalName } from "./signals.ts";
import { ExitEvent as layout } from "./abi.ts";

/**
 * How a child ended: the typed form of `libforks_ExitEvent` (its pid and
 * `waitpid(2)` status), as `child.exited` resolves it.
 *
 * @example
 * ```ts
 * const event = await child.exited;
 * if (event.signal !== null) console.log(`killed by ${event.signal}`);
 * else console.log(`exited with ${event.exitCode}`);
 * ```
 */
export class ExitEvent {
  /** Pid of the child. */
  readonly pid: number;
  /** The raw status from waitpid(2). */
  readonly status: number;
  /** Exit code, or null when the child was killed by a signal. */
  readonly exitCode: number | null;
  /** Name of the signal that killed the child ("SIGKILL"), or null. */
  readonly signal: string | null;
  /** Number of that signal, or null. */
  readonly signalNumber: number | null;

  /** Decodes a raw `waitpid(2)` status of `pid`. */
  constructor(pid: number, status: number) {
    this.pid = pid;
    this.status = status;
    // The encoding of wait statuses shared by Linux and macOS.
    const termination = status & 0x7f;
    if (termination === 0) {
      this.exitCode = (status >> 8) & 0xff;
      this.signalNumber = null;
      this.signal = null;
    } else {
      this.exitCode = null;
      this.signalNumber = termination;
      this.signal = signalName(termination) ?? `SIG${termination}`;
    }
  }

  /** Decodes the libforks_ExitEvent written on an exit fd. */
  static fromBytes(bytes: Uint8Array): ExitEvent {
    const view = new DataView(bytes.buffer, bytes.byteOffset, layout.size);
    return new ExitEvent(view.getInt32(layout.offset.pid, true), view.getInt32(layout.offset.wait_status, true));
  }

  /** True when the child exited with code 0. */
  get success(): boolean {
    return this.exitCode === 0;
  }

  /** `"pid 42 exited with 0"` or `"pid 42 killed by SIGKILL"`. */
  toString(): string {
    return this.signal ? `pid ${this.pid} killed by ${this.signal}` : `pid ${this.pid} exited with ${this.exitCode}`;
  }
}
