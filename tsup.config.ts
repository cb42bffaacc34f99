import { defineConfig, type Options } from "tsup";

type EsbuildPlugin = NonNullable<Options["esbuildPlugins"]>[number];

// dist/ is the ESM build of src/ for Node-style resolvers and bundlers (Bun
// itself loads src/ through the "bun" export condition). The prebuilt
// native files stay out of the bundle: src/native.ts imports each one as
// "../lib/<platform>/<file>" with { type: "file" }, which under Bun yields
// the file's path and makes `bun build --compile` embed the file. dist/ sits
// beside src/, so the same relative paths are right from dist/index.js.

/** Keeps every "../lib/..." import external, path and attributes as written. */
const prebuiltLibraries: EsbuildPlugin = {
  name: "libforks-prebuilt-external",
  setup(build) {
    build.onResolve({ filter: /^\.\.\/lib\// }, (args) => ({ path: args.path, external: true }));
  },
};

// dist/node.js is the entry of every runtime but Bun ("node" and "default"
// export conditions): it only throws UNSUPPORTED_RUNTIME, and imports
// nothing of bun:ffi, which Node.js would refuse before it could.
export default defineConfig({
  entry: { index: "src/index.ts", node: "src/node.ts" },
  outDir: "dist",
  format: ["esm"],
  platform: "node",
  // Node 20.10 is the first Node 20 with import attributes: at "node20" (that
  // is, 20.0) esbuild silently drops `with { type: "file" }` from the
  // external imports, and Bun would then load the libraries as modules.
  target: "node20.10",
  // index.d.ts only, without what is marked @internal: users see the
  // public API, not the package's own plumbing.
  dts: { entry: { index: "src/index.ts" }, compilerOptions: { stripInternal: true } },
  clean: true,
  splitting: false,
  sourcemap: false,
  treeshake: false,
  external: ["bun", "bun:ffi", "bun:jsc"],
  esbuildPlugins: [prebuiltLibraries],
});
