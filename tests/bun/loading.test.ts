// Loading the native library: every failure at import is a LibforksError
// with a code; the library and libforks-server load from a `bun build
// --outdir` bundle run from any directory, and libforks-server runs
// without its exec bit. (Installed packages and compiled executables are
// checked from a packed tarball by scripts/check-install.sh.)

import { describe, expect, test } from "bun:test";
import { chmodSync, copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { ForkServer, libraryPath } from "../../src/index.ts";
import { platformKey } from "../../src/native.ts";
import { MINIMUM_BUN } from "../../src/version.ts";
import { buildNoMemfd, emulated, fixtures, runProgram } from "./helpers.ts";

const run = runProgram;

/** How importing the package ends in a Bun process with `env` changes. */
async function importResult(env: Record<string, string | undefined>, preload?: string) {
  const argv = [process.execPath, ...(preload ? ["--preload", preload] : []), join(fixtures, "load-report.ts")];
  const { code, out, err } = await run(argv, { env: { ...process.env, ...env } });
  expect(err).toBe("");
  expect(code).toBe(0);
  return JSON.parse(out) as { ok: boolean; name?: string; code?: string; message?: string; version?: string };
}

function scratch(): string {
  return mkdtempSync(join(tmpdir(), "libforks-loading-"));
}

describe("loading", () => {
  test("the oldest Bun the code accepts is package.json's engines.bun", async () => {
    const pkg = (await Bun.file(join(import.meta.dir, "..", "..", "package.json")).json()) as { engines: { bun: string } };
    expect(pkg.engines.bun).toBe(`>=${MINIMUM_BUN}`);
  });

  test("a LIBFORKS_PATH that names no file: LibforksError LOAD_ERROR naming LIBFORKS_PATH", async () => {
    const result = await importResult({ LIBFORKS_PATH: "/nonexistent/libforks.so" });
    expect(result).toMatchObject({ ok: false, name: "LibforksError", code: "LOAD_ERROR" });
    expect(result.message).toContain("LIBFORKS_PATH is /nonexistent/libforks.so, which does not exist");
  }, 30000);

  test("a LIBFORKS_PATH that is not a library: LibforksError LOAD_ERROR", async () => {
    const dir = scratch();
    try {
      writeFileSync(join(dir, "not-a-library.so"), "plain text\n");
      const result = await importResult({ LIBFORKS_PATH: join(dir, "not-a-library.so") });
      expect(result).toMatchObject({ ok: false, name: "LibforksError", code: "LOAD_ERROR" });
      expect(result.message).toContain(`cannot load LIBFORKS_PATH ${join(dir, "not-a-library.so")}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30000);

  test("a platform with no prebuilt library: LibforksError UNSUPPORTED_PLATFORM naming it", async () => {
    const result = await importResult({ LIBFORKS_PATH: undefined }, join(fixtures, "arch-riscv64.ts"));
    expect(result).toMatchObject({ ok: false, name: "LibforksError", code: "UNSUPPORTED_PLATFORM" });
    expect(result.message).toContain("no prebuilt library for linux-riscv64");
    expect(result.message).toContain("LIBFORKS_PATH");
  }, 30000);

  test("a prebuilt library that is missing (a bundle whose library file was deleted): LibforksError LOAD_ERROR", async () => {
    const dir = scratch();
    try {
      const out = join(dir, "out");
      const built = await run([process.execPath, "build", "--target=bun", join(fixtures, "load-report.ts"), "--outdir", out]);
      expect(built.code).toBe(0);
      // This platform's library as the package ships it (LIBFORKS_PATH,
      // which the bundle is run without, may name another build): the
      // asset with its bytes.
      const bytes = readFileSync(join(import.meta.dir, "../../lib", platformKey(), "libforks.so"));
      const library = readdirSync(out).find((name) => name.endsWith(".so") && readFileSync(join(out, name)).equals(bytes));
      expect(library).toBeDefined();
      rmSync(join(out, library!));
      const { code, out: printed, err } = await run([process.execPath, join(out, "load-report.js")], { cwd: "/", env: { ...process.env, LIBFORKS_PATH: undefined } });
      expect(err).toBe("");
      expect(code).toBe(0);
      const result = JSON.parse(printed) as { ok: boolean; name?: string; code?: string; message?: string };
      expect(result).toMatchObject({ ok: false, name: "LibforksError", code: "LOAD_ERROR" });
      expect(result.message).toContain(`the prebuilt library ${join(out, library!)} is missing`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30000);

  test("a clean server runs a libforks-server that lacks the exec bit (as bun build --outdir writes it)", async () => {
    const dir = scratch();
    const saved = process.env.LIBFORKS_PATH;
    try {
      // LIBFORKS_PATH's clean server is the libforks-server beside it.
      const library = join(dir, basename(libraryPath()));
      const copy = join(dir, "libforks-server");
      copyFileSync(libraryPath(), library);
      copyFileSync(join(dirname(libraryPath()), "libforks-server"), copy);
      chmodSync(copy, 0o644);
      process.env.LIBFORKS_PATH = library;
      if (process.env.LIBFORKS_DARWIN_PATHS === "1") {
        // macOS has no memfd: such a libforks-server cannot run there,
        // and the error says what to set instead.
        expect(() => ForkServer.start({ mode: "clean" })).toThrow(/not executable and needs a memfd.*set LIBFORKS_PATH/);
        return;
      }
      await using server = ForkServer.start({ mode: "clean" });
      const event = await server.spawn(["/bin/sh", "-c", "exit 4"], { channel: false }).exited;
      expect(event.exitCode).toBe(4);
    } finally {
      if (saved === undefined) delete process.env.LIBFORKS_PATH;
      else process.env.LIBFORKS_PATH = saved;
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30000);

  test("a bun build --outdir bundle, run from /, loads the library and runs snapshot and clean servers", async () => {
    const dir = scratch();
    try {
      const built = await run([process.execPath, "build", "--target=bun", join(fixtures, "workers-app.ts"), "--outdir", join(dir, "out")]);
      expect(built.code).toBe(0);
      for (const mode of ["snapshot", "clean"]) {
        const { code, out, err } = await run([process.execPath, join(dir, "out", "workers-app.js"), mode], { cwd: "/" });
        expect(err).toBe("");
        expect(code).toBe(0);
        for (const i of [1, 2, 3]) expect(out).toMatch(new RegExp(`^writer-${i} pid \\d+ argv \\["arg-${i}"\\] exit 0$`, "m"));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60000);

  test("a compiled executable loads its embedded library from a memfd: no TMPDIR needed; without memfds, Bun's extraction, else an error saying what to set", async () => {
    const dir = scratch();
    try {
      const app = join(dir, "app");
      const built = await run([process.execPath, "build", "--compile", join(fixtures, "load-report.ts"), "--outfile", app]);
      expect(built.code).toBe(0);
      const noMemfd = buildNoMemfd();
      const launch = async (argv: string[], tmpdir: string, more: Record<string, string> = {}) => {
        const { code, out, err } = await run(argv, { cwd: dir, env: { PATH: "/usr/bin:/bin", HOME: dir, TMPDIR: tmpdir, ...more } });
        expect(err).toBe("");
        expect(code).toBe(0);
        return JSON.parse(out) as { ok: boolean; code?: string; message?: string; clean?: { ok: boolean; code?: string; message?: string; exitCode?: number } };
      };
      const missing = join(dir, "missing");

      // TMPDIR names a missing directory: the memfd needs none.
      expect(await launch([app, "clean"], missing)).toMatchObject({ ok: true, clean: { ok: true, exitCode: 4 } });

      // No memfd_create: Bun extracts the library into TMPDIR; a clean
      // server cannot run the embedded libforks-server and says what to set.
      const extracted = await launch([noMemfd, app, "clean"], dir);
      expect(extracted).toMatchObject({ ok: true, clean: { ok: false, code: "LOAD_ERROR" } });
      expect(extracted.clean!.message).toContain("set LIBFORKS_PATH");

      // No memfd_create and no usable TMPDIR: the error says what to set.
      // Under qemu-user the missing directory is BUN_TMPDIR (which Bun
      // prefers), not TMPDIR: qemu serves the program's reads of
      // /proc/self/maps from a memfd of its own, else from a file in
      // TMPDIR, and with neither the read fails and Bun aborts at start.
      const failed = emulated ? await launch([noMemfd, app], dir, { BUN_TMPDIR: missing }) : await launch([noMemfd, app], missing);
      expect(failed).toMatchObject({ ok: false, code: "LOAD_ERROR" });
      expect(failed.message).toContain("through a memfd: memfd_create failed (ENOSYS)");
      expect(failed.message).toContain("Set BUN_TMPDIR (or TMPDIR) to an existing, writable directory on a filesystem mounted with exec");
      expect(failed.message).toContain("or LIBFORKS_PATH");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60000);
});
