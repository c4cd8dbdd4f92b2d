#!/usr/bin/env python3
"""Import cycles between the modules of a Python package (every import, top level or inside a
function: a lazy import hides a cycle, it does not remove it; imports under `if TYPE_CHECKING:`
are for annotations only and left out). Lists each cycle with the lines
that make it; exit 1 when there is one. Usage: check-cycles-python.py PACKAGE_DIR"""
import ast
import sys
from pathlib import Path

from cycle_report import report


def edges(pkg: Path):
    name = pkg.name
    mods = {p.stem: p for p in pkg.glob("*.py")}
    out = {m: [] for m in mods}
    for m, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        # Imports under `if TYPE_CHECKING:` exist for annotations only, never at run time.
        typing_only = {
            id(n)
            for block in ast.walk(tree)
            if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
            for stmt in block.body
            for n in ast.walk(stmt)
        }
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            targets = []
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level == 1:
                    targets = [base.split(".")[0]] if base else [a.name for a in node.names]
                elif base == name or base.startswith(name + "."):
                    rest = base[len(name) + 1:]
                    targets = [rest.split(".")[0]] if rest else [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith(name + "."):
                        targets.append(a.name.split(".")[1])
            for t in targets:
                if t in mods and t != m and t != "__init__":
                    out[m].append((t, node.lineno))
    return out, mods


def cycles(graph):
    index, low, stack, on, comps, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w, _ in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return comps


def main():
    pkg = Path(sys.argv[1] if len(sys.argv) > 1 else "emulator/jkemu").resolve()
    graph, mods = edges(pkg)
    listing = [
        (" <-> ".join(comp),
         [f"{mods[m].relative_to(pkg.parent)}:{line}  ({m} -> {t})" for m in comp for t, line in graph[m] if t in comp])
        for comp in cycles(graph)
    ]
    uses = sum(len(v) for v in graph.values())
    return report("modules", pkg, len(mods), uses, "imports", listing)

if __name__ == "__main__":
    sys.exit(main())
