// struct rusage, as the server reports it with a child's exit, in the
// shape of Bun's ResourceUsage (subprocess.resourceUsage()).

import type { ResourceUsage } from "bun";

/** sizeof(struct rusage) on 64-bit Linux and macOS (glibc, musl). */
export const RUSAGE_SIZE = 144;

/** Decodes `bytes` (struct rusage: two timevals, then 14 longs). */
export function decodeRusage(bytes: Uint8Array): ResourceUsage {
  const view = new DataView(bytes.buffer, bytes.byteOffset, RUSAGE_SIZE);
  const long = (i: number) => view.getBigInt64(i * 8, true);
  const user = long(0) * 1_000_000n + long(1);
  const system = long(2) * 1_000_000n + long(3);
  const field = (i: number) => Number(long(4 + i));
  // ru_maxrss is in kilobytes on Linux, bytes on macOS; Bun reports bytes.
  const maxRSS = process.platform === "darwin" ? field(0) : field(0) * 1024;
  return {
    contextSwitches: { voluntary: field(12), involuntary: field(13) },
    cpuTime: { user, system, total: user + system },
    maxRSS,
    messages: { sent: field(9), received: field(10) },
    ops: { in: field(7), out: field(8) },
    shmSize: field(1),
    signalCount: field(11),
    swapCount: field(6),
  };
}
