// struct rusage, as the server reports it with a child's exit, in the
// shape of Bun's ResourceUsage (subprocess.resourceUsage()).

import type { ResourceUsage } from "bun";
import { Rusage } from "./abi.ts";

/** sizeof(struct rusage) on 64-bit Linux and macOS (glibc, musl). */
export const RUSAGE_SIZE = Rusage.size;

/** Decodes `bytes` (struct rusage: two timevals, then 14 longs). */
export function decodeRusage(bytes: Uint8Array): ResourceUsage {
  const view = new DataView(bytes.buffer, bytes.byteOffset, RUSAGE_SIZE);
  const long = (name: keyof typeof Rusage.offset) => view.getBigInt64(Rusage.offset[name], true);
  const field = (name: keyof typeof Rusage.offset) => Number(long(name));
  const user = long("utime_sec") * 1_000_000n + long("utime_usec");
  const system = long("stime_sec") * 1_000_000n + long("stime_usec");
  // ru_maxrss is in kilobytes on Linux, bytes on macOS; Bun reports bytes.
  const maxRSS = process.platform === "darwin" ? field("maxrss") : field("maxrss") * 1024;
  return {
    contextSwitches: { voluntary: field("nvcsw"), involuntary: field("nivcsw") },
    cpuTime: { user, system, total: user + system },
    maxRSS,
    messages: { sent: field("msgsnd"), received: field("msgrcv") },
    ops: { in: field("inblock"), out: field("oublock") },
    shmSize: field("ixrss"),
    signalCount: field("nsignals"),
    swapCount: field("nswap"),
  };
}
