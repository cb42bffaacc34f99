#!/usr/bin/env python3
"""Lists the @import cycles among zig/*.zig and fails if there is one.

Each file's imports of sibling files (@import("name.zig")) are edges; a
cycle is a strongly connected set of two or more files (or a file that
imports itself). Prints every cycle found, then `N passed, N failed`
(one check). Run by scripts/test.sh.
"""
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent / "zig"
imports = re.compile(r'@import\("([A-Za-z0-9_]+\.zig)"\)')
graph = {}
for path in sorted(root.glob("*.zig")):
    text = path.read_text()
    # A comment that names an import is not one.
    code = "\n".join(line.split("//", 1)[0] for line in text.splitlines())
    graph[path.name] = sorted({name for name in imports.findall(code) if (root / name).exists()})

# Tarjan's strongly connected components.
index, low, on_stack, stack, components = {}, {}, set(), [], []


def visit(node):
    index[node] = low[node] = len(index)
    stack.append(node)
    on_stack.add(node)
    for target in graph[node]:
        if target not in index:
            visit(target)
            low[node] = min(low[node], low[target])
        elif target in on_stack:
            low[node] = min(low[node], index[target])
    if low[node] == index[node]:
        component = []
        while True:
            member = stack.pop()
            on_stack.discard(member)
            component.append(member)
            if member == node:
                break
        if len(component) > 1 or node in graph[node]:
            components.append(sorted(component))


sys.setrecursionlimit(10000)
for node in graph:
    if node not in index:
        visit(node)

for component in components:
    members = set(component)
    edges = [f"{a} -> {b}" for a in component for b in graph[a] if b in members]
    print("import cycle among " + ", ".join(component) + ": " + "; ".join(edges))
if components:
    print(f"check-import-cycles: {len(components)} cycle(s) in zig/")
    print("0 passed, 1 failed")
    sys.exit(1)
print(f"check-import-cycles: no cycle among {len(graph)} files")
print("1 passed, 0 failed")
