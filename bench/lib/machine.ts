// What the results were measured on, for latest.json and latest.md.

import { cpus, release, totalmem, version as osVersion } from "node:os";
import { readFileSync } from "node:fs";

export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  bun: string;
  zig: string;
  libforks: string;
  commit: string;
  date: string;
}

function run(argv: string[], cwd: string): string {
  try {
    const result = Bun.spawnSync(argv, { cwd, stdout: "pipe", stderr: "ignore" });
    return result.exitCode === 0 ? result.stdout.toString().trim() : "unknown";
  } catch {
    return "unknown";
  }
}

function cpuModel(): string {
  try {
    const match = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"));
    if (match) return match[1]!.trim();
  } catch {
    // not Linux
  }
  return cpus()[0]?.model ?? "unknown";
}

export function describeMachine(root: string, libforksVersion: string): Machine {
  const commit = run(["git", "rev-parse", "--short", "HEAD"], root);
  // The results a run rewrites are not a change to what it measures.
  const dirty = run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)bench/results"], root);
  return {
    cpu: cpuModel(),
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 1024 ** 3),
    kernel: `${release()} (${osVersion()})`,
    bun: `${Bun.version} (${Bun.revision.slice(0, 9)})`,
    zig: run(["python3", "-m", "ziglang", "version"], root),
    libforks: libforksVersion,
    commit: commit === "unknown" ? commit : `${commit}${dirty && dirty !== "unknown" ? " (with uncommitted changes)" : ""}`,
    date: new Date().toISOString(),
  };
}
