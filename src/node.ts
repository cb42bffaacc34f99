// The package's entry for every runtime that is not Bun (the "node" and
// "default" export conditions). The real entry imports bun:ffi, which
// Node.js refuses with ERR_UNSUPPORTED_ESM_URL_SCHEME before any code of
// this package runs; this one says what is wrong instead.

import { LibforksError } from "./errors.ts";
import { MINIMUM_BUN } from "./version.ts";

const runtime = typeof process === "object" && process.versions?.node ? `Node.js ${process.version}` : "this runtime";

throw new LibforksError(
  "UNSUPPORTED_RUNTIME",
  `libforks requires Bun >= ${MINIMUM_BUN} (it loads its native library through bun:ffi); this is ${runtime}. Run the program with bun`,
);
