// The oldest Bun this package runs on; package.json's engines.bun says the
// same (a test checks).
export const MINIMUM_BUN = "1.4.4";
