// Every code block of README.md runs as written. TypeScript blocks are
// saved in a scratch directory where "libforks" resolves to this package
// (a node_modules/libforks link, as after `npm install libforks`),
// type-checked together, then each is run with Bun from the repository
// root; it must exit 0 without writing to stderr. A block after the line
// `<!-- readme-file: NAME -->` is saved as NAME (a worker the next blocks
// spawn) and not run by itself. The C block is compiled against the
// header and the prebuilt library, and run.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { libraryPath } from "../../src/index.ts";
import { within } from "./helpers.ts";

const root = join(import.meta.dir, "..", "..");

interface Block {
  lang: string;
  code: string;
  line: number;
  file: string | null;
}

function blocks(markdown: string): Block[] {
  const found: Block[] = [];
  const lines = markdown.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const fence = /^```(\w+)\s*$/.exec(lines[i]!);
    if (!fence) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && lines[i] !== "```"; i++) body.push(lines[i]!);
    const marker = /^<!-- readme-file: ([\w.-]+) -->$/.exec(lines[start - 1] ?? "");
    found.push({ lang: fence[1]!, code: `${body.join("\n")}\n`, line: start + 1, file: marker?.[1] ?? null });
  }
  return found;
}

const all = blocks(readFileSync(join(root, "README.md"), "utf8"));
const typescript = all.filter((block) => block.lang === "ts");
const runnable = typescript.filter((block) => block.file === null);
let scratch: string;

beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), "libforks-readme-"));
  mkdirSync(join(scratch, "node_modules"));
  symlinkSync(root, join(scratch, "node_modules", "libforks"));
  for (const block of typescript) writeFileSync(join(scratch, block.file ?? `block-${block.line}.ts`), block.code);
  writeFileSync(
    join(scratch, "tsconfig.json"),
    JSON.stringify({
      extends: join(root, "tsconfig.json"),
      compilerOptions: { paths: { libforks: [join(root, "src", "index.ts")] }, typeRoots: [join(root, "node_modules", "@types")] },
      include: ["*.ts", join(root, "src", "native-libs.d.ts")],
    }),
  );
});

afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

describe("README.md code blocks", () => {
  test("there are blocks to check: TypeScript, worker files and C", () => {
    expect(runnable.length).toBeGreaterThanOrEqual(4);
    expect(typescript.some((block) => block.file !== null)).toBe(true);
    expect(all.some((block) => block.lang === "c")).toBe(true);
  });

  test("the TypeScript blocks type-check", async () => {
    const check = Bun.spawn([join(root, "node_modules", ".bin", "tsc"), "--noEmit", "--pretty", "false", "-p", join(scratch, "tsconfig.json")], {
      stdout: "pipe",
      stderr: "pipe",
    });
    const [out, err] = await Promise.all([new Response(check.stdout).text(), new Response(check.stderr).text()]);
    expect(`${out}${err}`).toBe("");
    expect(await check.exited).toBe(0);
  }, 120_000);

  for (const block of runnable) {
    test(`the block at README.md:${block.line} runs`, async () => {
      const run = Bun.spawn([process.execPath, join(scratch, `block-${block.line}.ts`)], { cwd: root, stdout: "pipe", stderr: "pipe" });
      try {
        const [out, err, code] = await within(
          Promise.all([new Response(run.stdout).text(), new Response(run.stderr).text(), run.exited]),
          30_000,
          `README.md:${block.line}`,
        );
        expect({ err, code }).toEqual({ err: "", code: 0 });
        expect(out.length).toBeGreaterThan(0);
      } finally {
        run.kill("SIGKILL");
      }
    }, 40_000);
  }

  test("the C block compiles against the header and runs", async () => {
    const c = all.find((block) => block.lang === "c")!;
    const source = join(scratch, "readme.c");
    writeFileSync(source, c.code);
    const libDir = dirname(libraryPath());
    const binary = join(scratch, "readme-c");
    const build = Bun.spawnSync(["cc", "-Wall", "-I", join(root, "lib", "include"), source, "-o", binary, "-L", libDir, "-lforks", `-Wl,-rpath,${libDir}`], {
      stderr: "pipe",
    });
    expect(build.stderr.toString()).toBe("");
    expect(build.exitCode).toBe(0);
    const run = Bun.spawn([binary], { stdout: "pipe", stderr: "pipe" });
    expect(await within(run.exited, 20_000, "readme-c")).toBe(0);
  }, 40_000);
});
