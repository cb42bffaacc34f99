// Checks a built index.d.ts (the path is the argument): it declares the
// public API only (none of the package's plumbing, nothing marked
// @internal), and every export and every public member of an exported
// class or interface has a JSDoc comment. Prints what is wrong and exits 1.
//   bun scripts/check-docs.ts dist/index.d.ts

import ts from "typescript";

const file = process.argv[2];
if (!file) {
  console.error("usage: bun scripts/check-docs.ts path/to/index.d.ts");
  process.exit(2);
}

const program = ts.createProgram([file], { noEmit: true, skipLibCheck: true, types: ["bun"] });
const checker = program.getTypeChecker();
const source = program.getSourceFile(file);
if (!source) throw new Error(`cannot read ${file}`);

const problems: string[] = [];

// Names of the package's internals that must not reach users.
const internal = ["PendingPid", "forkAsync", "flushUntil", "forkExec", "StartedFork", "ForkTarget", "ChildStreams", "@internal"];
for (const name of internal) {
  if (source.text.includes(name)) problems.push(`declares ${name}`);
}

function documented(symbol: ts.Symbol): boolean {
  return ts.displayPartsToString(symbol.getDocumentationComment(checker)).trim().length > 0;
}

const moduleSymbol = checker.getSymbolAtLocation(source);
if (!moduleSymbol) throw new Error(`${file} is not a module`);
const exports = checker.getExportsOfModule(moduleSymbol);
for (const exported of exports) {
  const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
  const name = exported.getName();
  if (!documented(symbol)) problems.push(`export ${name} has no JSDoc`);
  if (!(symbol.flags & (ts.SymbolFlags.Class | ts.SymbolFlags.Interface))) continue;
  const members = [...(symbol.members?.values() ?? []), ...(symbol.exports?.values() ?? [])];
  for (const member of members) {
    const memberName = member.getName();
    if (memberName.startsWith("#") || memberName === "prototype" || memberName === "__constructor") continue;
    // A generic's type parameters are in its members too; their words are
    // the @typeParam tag of the declaration, checked with it above.
    if (member.flags & ts.SymbolFlags.TypeParameter) continue;
    const declarations = member.getDeclarations() ?? [];
    const hidden = declarations.every(
      (d) => ts.getCombinedModifierFlags(d) & (ts.ModifierFlags.Private | ts.ModifierFlags.Protected) || ts.isPrivateIdentifier((d as { name?: ts.Node }).name ?? d),
    );
    if (hidden) continue;
    if (!documented(member)) problems.push(`${name}.${memberName} has no JSDoc`);
  }
}

if (problems.length > 0) {
  for (const problem of problems) console.log(`${file}: ${problem}`);
  process.exit(1);
}
console.log(`${file}: ${exports.length} exports, all documented, no internals`);
