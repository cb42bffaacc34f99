// Types of the prebuilt native files that src/native.ts imports with
// `with { type: "file" }`: under Bun such an import is the file's path
// (a /$bunfs/ path inside a `bun build --compile` executable).
declare module "*.so" {
  const path: string;
  export default path;
}
declare module "*.dylib" {
  const path: string;
  export default path;
}
declare module "*/libforks-server" {
  const path: string;
  export default path;
}
