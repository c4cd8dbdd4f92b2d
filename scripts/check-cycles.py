#!/usr/bin/env python3
"""Import cycles between the module files of a Rust crate (default: shared/src, the `joinkeeper`
core). Lists the cycles it finds (for each module on a cycle, the shortest cycle through it),
each step with the line that makes it, and exits 1; prints "no import cycle" and the number of
module-to-module uses it read, and exits 0 otherwise. First it proves on a sample crate with one
known cycle (SAMPLE below) that it finds it and nothing else.

What it reads, and so what it can miss (a plain reading of the text, no compiler):
  - Nodes are module files: lib.rs is `lib`, a.rs and a/mod.rs are `a`, a/b.rs is `a/b`. Inline
    modules count as part of their file.
  - An edge A -> B is any path in A's code that names something in B: `use crate::...`,
    `use super::...` and `use self::...` trees (braces expanded), the same paths written inline
    (`crate::metrics::Record::new(...)`), and inline paths through a module imported by name
    (`use crate::aws;` then `aws::fleet::Fleet`). A path resolves to the longest module prefix,
    then through that module's `pub use` re-exports (`crate::Context` is `context`).
  - `mod x;` declarations are not edges (a parent declaring a child is not a use of it).
  - Left out: comments and doc links, string literals, and test code: items under
    `#[cfg(test)]` (the `mod tests` blocks) and the files declared by a `#[cfg(test)] mod x;`.
    Production code is what the layering is about; tests reach across it on purpose.
  - Not seen: glob imports of a module's items through an alias, macros that expand to paths.

Usage: python3 scripts/check-cycles.py [CRATE_SRC_DIR]     (no build; about a second)
"""

import re
import sys
import tempfile
from collections import deque
from pathlib import Path

from cycle_report import report

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip(text):
    """Comments and string/char literal contents blanked; newlines kept (line numbers hold)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append("\n" * text.count("\n", i, j))
            i = j
        elif (m := raw_string_start(text, i)) is not None:
            end = '"' + m.group(1)
            j = text.find(end, i + m.end())
            j = n if j < 0 else j + len(end)
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j + 1
        elif c == "'":
            # A char literal ('a', '\n', '\u{1F600}', '"') or a lifetime ('a).
            m = re.match(r"'(\\[^']*|[^\\'])'", text[i:])
            if m:
                out.append("' '")
                i += m.end()
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def raw_string_start(text, i):
    """The `r#"` (or `br"`, ...) opening a raw string at `i`, or None."""
    if text[i] not in "rb" or (i > 0 and re.match(r"\w", text[i - 1])):
        return None
    return re.match(r'b?r(#*)"', text[i : i + 300])


def block_end(code, start):
    """End of the item starting at `start`: its `;` or its matching `}`."""
    depth = 0
    for j in range(start, len(code)):
        if code[j] == ";" and depth == 0:
            return j + 1
        if code[j] == "{":
            depth += 1
        elif code[j] == "}":
            depth -= 1
            if depth == 0:
                return j + 1
    return len(code)


def drop_test_items(code):
    """Blank `#[cfg(test)]` items; returns (code, names of `#[cfg(test)] mod x;` files)."""
    test_mods = []
    while m := re.search(r"#\[cfg\(test\)\]", code):
        item = m.end()
        end = block_end(code, item)
        decl = re.match(r"\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+(" + IDENT + r")\s*;", code[item:end])
        if decl:
            test_mods.append(decl.group(1))
        code = code[: m.start()] + "\n" * code.count("\n", m.start(), end) + code[end:]
    return code, test_mods


def expand_use(tree):
    """`a::{b, c::{d, e as f}, self}` -> ['a::b', 'a::c::d', 'a::c::e', 'a']."""
    tree = re.sub(r"\s", "", re.sub(r"\s+as\s+" + IDENT, "", tree))

    def parse(s, i, prefix):
        paths, cur = [], ""
        while i < len(s):
            ch = s[i]
            if ch == "{":
                sub, i = parse(s, i + 1, prefix + cur)
                paths += sub
                cur = None
            elif ch == ",":
                if cur:
                    paths.append(prefix + cur)
                cur, i = "", i + 1
                continue
            elif ch == "}":
                if cur:
                    paths.append(prefix + cur)
                return paths, i + 1
            else:
                cur = (cur or "") + ch
            if ch != "{":
                i += 1
        if cur:
            paths.append(prefix + cur)
        return paths, i

    paths, _ = parse(tree, 0, "")
    return [re.sub(r"::self$", "", p).rstrip(":") for p in paths if p and p != "*"]


def module_of(src, f):
    rel = f.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


def analyse(src):
    """(module -> file, module -> {used module: line}, cycles) of the crate under `src`."""
    files, code, test_files = {}, {}, set()
    for f in sorted(src.rglob("*.rs")):
        mod = module_of(src, f)
        files[mod] = f
        body, test_mods = drop_test_items(strip(f.read_text()))
        code[mod] = body
        test_files.update(mod + (t,) for t in test_mods)
    for mod in list(files):
        if any(mod[: len(t)] == t for t in test_files):
            del files[mod], code[mod]

    # Re-exports: module -> {name: full path}.
    uses, reexports = {}, {}
    for mod, body in code.items():
        uses[mod] = []
        for m in re.finditer(r"\b(pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", body):
            line = body.count("\n", 0, m.start()) + 1
            for p in expand_use(m.group(2)):
                uses[mod].append((p, line))
                if m.group(1):
                    reexports.setdefault(mod, {})[p.split("::")[-1]] = (p, mod)

    def absolute(mod, path):
        segs = path.split("::")
        if segs[0] == "crate":
            return segs[1:]
        base = list(mod)
        while segs and segs[0] in ("super", "self"):
            if segs.pop(0) == "super":
                base = base[:-1]
        return base + segs

    def resolve(segs, seen=()):
        """Absolute segments -> the module file that defines the item (or the module itself)."""
        k = max((k for k in range(len(segs) + 1) if tuple(segs[:k]) in files), default=0)
        mod = tuple(segs[:k])
        rest = segs[k:]
        if rest and rest[0] in reexports.get(mod, {}) and (mod, rest[0]) not in seen:
            path, owner = reexports[mod][rest[0]]
            return resolve(absolute(owner, path) + rest[1:], seen + ((mod, rest[0]),))
        return mod

    edges = {m: {} for m in files}  # from -> {to: line}
    for mod, body in code.items():
        aliases = {}
        refs = list(uses[mod])
        for p, line in uses[mod]:
            segs = absolute(mod, p) if p.split("::")[0] in ("crate", "super", "self") else None
            if segs and tuple(segs) in files:
                aliases[segs[-1]] = segs
        no_use = re.sub(r"\buse\s+[^;]+;", lambda m: "\n" * m.group(0).count("\n"), body)
        for m in re.finditer(r"(?<![\w:])((?:crate|super|self|" + "|".join(map(re.escape, aliases) or ["(?!)"]) + r")(?:::" + IDENT + ")+)", no_use):
            refs.append((m.group(1), no_use.count("\n", 0, m.start()) + 1))
        for p, line in refs:
            head = p.split("::")[0]
            if head in ("crate", "super", "self"):
                segs = absolute(mod, p)
            elif head in aliases:
                segs = aliases[head] + p.split("::")[1:]
            else:
                continue  # an external crate
            to = resolve(segs)
            if to != mod and to not in edges[mod]:
                edges[mod][to] = line

    # Shortest cycle through each node (BFS back to itself); one listing per distinct cycle.
    cycles = {}
    for start in sorted(files):
        prev, queue, found = {start: None}, deque([start]), None
        while queue and found is None:
            u = queue.popleft()
            for v in sorted(edges[u]):
                if v == start:
                    found = u
                    break
                if v not in prev:
                    prev[v] = u
                    queue.append(v)
        if found is None:
            continue
        path, u = [], found
        while u is not None:
            path.append(u)
            u = prev[u]
        path.reverse()
        i = path.index(min(path))
        key = tuple(path[i:] + path[:i])
        cycles.setdefault(key, key)

    return files, edges, sorted(cycles, key=lambda c: (len(c), c))


def name(m):
    return "/".join(m) or "lib"


SAMPLE = {
    # lib re-exports b::Thing; a uses b through an alias; b uses a::x; a::x uses b through the
    # re-export: one cycle, a/x -> b -> a/x. Comments, strings and test code name a: no edge.
    "lib.rs": "pub mod a;\npub mod b;\npub use b::Thing;\n#[cfg(test)]\nmod t;\n",
    "a/mod.rs": "pub mod x;\nuse crate::b;\nfn f() { b::helper(); }\n",
    "a/x.rs": "fn g() -> crate::Thing { todo!() }\n#[cfg(test)]\nmod tests { use crate::a; }\n",
    "b.rs": "// crate::a::f\npub struct Thing;\npub fn helper() {}\n"
    "fn h() { let s = \"crate::a\"; let c = '\"'; crate::a::x::g(); }\n",
    "t.rs": "use crate::a;\n",
}


def self_test():
    """The check can fail: a sample crate with one known cycle, read as the real one is."""
    with tempfile.TemporaryDirectory() as d:
        for rel, text in SAMPLE.items():
            (Path(d) / rel).parent.mkdir(parents=True, exist_ok=True)
            (Path(d) / rel).write_text(text)
        _, _, cycles = analyse(Path(d))
    found = [" -> ".join(map(name, c)) for c in cycles]
    assert found == ["a/x -> b"], f"self-test: expected the cycle a/x -> b, found {found}"


def main():
    self_test()
    default = Path(__file__).resolve().parent.parent / "shared/src"
    src = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else default
    files, edges, cycles = analyse(src)

    def shown(f):
        return f.relative_to(Path.cwd()) if Path.cwd() in f.parents else f

    listing = [
        (" -> ".join(name(m) for m in cycle + (cycle[0],)),
         [f"{shown(files[a])}:{edges[a][b]}  ({name(a)} -> {name(b)})" for a, b in zip(cycle, cycle[1:] + (cycle[0],))])
        for cycle in cycles
    ]
    uses = sum(len(e) for e in edges.values())
    return report("module files", src, len(files), uses, "uses", listing)

if __name__ == "__main__":
    sys.exit(main())
