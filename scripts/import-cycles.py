#!/usr/bin/env python3
"""Find import cycles between the source files of the library crate.

An edge `a.rs -> b.rs` means that `a.rs` names a path into `b.rs`: a `use` declaration (including `pub use`
re-exports) or an inline path such as `crate::checkpoint::write_atomic(..)`, `super::Chunk` or, inside a module,
`child::item`. `mod x;` declarations are not edges: they declare, they do not import. A path resolves to the file
that holds the deepest module it names (not through re-exports), so a child that imports its parent's facade
and is re-exported by it is a cycle too.

Prints every strongly connected component of more than one file with the edges inside it, and exits 1 if there
is any; exits 0 with "no import cycles" otherwise. Usage: scripts/import-cycles.py [SRC_DIR]  (default: src)
"""

import os
import re
import sys


def module_files(src):
    """Map module path (tuple of names, () for the crate root) to its file."""
    mods = {}
    for dirpath, _, files in os.walk(src):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, src)[:-3].split(os.sep)
            if rel == ["lib"]:
                key = ()
            elif rel == ["main"]:
                continue  # the binary is another crate: nothing in the library can import it
            elif rel[-1] == "mod":
                key = tuple(rel[:-1])
            else:
                key = tuple(rel)
            mods[key] = path
    return mods


def strip_comments_and_strings(text):
    """Blank out comments, string and char literals, keeping line structure and braces of code only."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            i = j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    out.append("\n" if text[i] == "\n" else "")
                    i += 1
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
            end = n if end < 0 else end + 1 + len(hashes)
            out.append('""' + "\n" * text.count("\n", i, end))
            i = end
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j + 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4]):
            m = re.match(r"'(\\.|[^\\'])'", text[i:i + 4])
            out.append("' '")
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def expand_use_tree(tree):
    """`a::{b, c::{d, e}}` -> [["a","b"], ["a","c","d"], ["a","c","e"]] (aliases and globs trimmed)."""
    tree = re.sub(r"\s+as\s+\w+", "", tree)
    tree = re.sub(r"\s+", "", tree)

    def split_top(s):
        parts, depth, cur = [], 0, ""
        for ch in s:
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
                continue
            depth += ch == "{"
            depth -= ch == "}"
            cur += ch
        if cur:
            parts.append(cur)
        return parts

    def expand(s):
        if "{" not in s:
            segs = [x for x in s.split("::") if x and x != "*"]
            return [segs]
        k = s.index("{")
        prefix = [x for x in s[:k].split("::") if x]
        inner = s[k + 1:s.rindex("}")]
        res = []
        for part in split_top(inner):
            for tail in expand(part):
                res.append(prefix + tail)
        if not split_top(inner):
            res.append(prefix)
        return res

    return expand(tree)


def resolve(segs, here, mods):
    """Absolute module path of `segs` used inside module `here`; the deepest known module it reaches."""
    cur = list(here)
    segs = list(segs)
    if segs and segs[0] in ("crate", "clustermaps"):
        cur, segs = [], segs[1:]
    elif segs and segs[0] == "self":
        segs = segs[1:]
    while segs and segs[0] == "super":
        cur, segs = cur[:-1], segs[1:]
    path = cur
    best = tuple(cur) if tuple(cur) in mods else None
    for s in segs:
        path = path + [s]
        if tuple(path) in mods:
            best = tuple(path)
        else:
            break
    return best


def edges_of(path, key, mods, file_of):
    text = strip_comments_and_strings(open(path, encoding="utf-8").read())
    found = set()
    # Inline `mod name { .. }` blocks: map each offset to the module it is in.
    scopes = [(0, len(text), key)]
    stack = []
    depth = 0
    for m in re.finditer(r"\bmod\s+(\w+)\s*\{|\{|\}", text):
        if m.group(1):
            depth += 1
            stack.append((depth, m.group(1), m.start()))
        elif m.group(0) == "{":
            depth += 1
        else:
            if stack and stack[-1][0] == depth:
                _, name, start = stack.pop()
                inner = key + tuple(n for _, n, _ in stack) + (name,)
                scopes.append((start, m.end(), inner))
            depth -= 1

    def scope_at(pos):
        best = scopes[0]
        for s in scopes[1:]:
            if s[0] <= pos < s[1] and s[1] - s[0] < best[1] - best[0]:
                best = s
        return best[2]

    def add(segs, pos):
        here = scope_at(pos)
        target = resolve(segs, here, inline_mods)
        if target is None:
            return
        f = file_of.get(target)
        if f and f != path:
            found.add(f)

    inline_mods = dict(mods)
    for _, _, k in scopes[1:]:
        inline_mods[k] = path
        file_of[k] = path

    for m in re.finditer(r"\buse\s+([^;]+);", text):
        for segs in expand_use_tree(m.group(1)):
            if not segs:
                continue
            head = segs[0]
            here = scope_at(m.start())
            if head in ("crate", "super", "self", "clustermaps") or tuple(here) + (head,) in inline_mods:
                add(segs, m.start())
    for m in re.finditer(r"(?<![\w:])((?:crate|super|self|\w+)(?:::\w+)+)", text):
        segs = m.group(1).split("::")
        here = scope_at(m.start())
        if segs[0] in ("crate", "super", "self") or tuple(here) + (segs[0],) in inline_mods:
            # `self::x` inline inside a file is only an edge if it reaches another file.
            add(segs, m.start())
    return found


def sccs(graph):
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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
            out.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "src"
    mods = module_files(src)
    file_of = dict(mods)
    graph = {f: edges_of(f, k, mods, file_of) for k, f in sorted(mods.items())}
    cycles = [sorted(c) for c in sccs(graph) if len(c) > 1]
    if not cycles:
        print(f"no import cycles ({len(graph)} files, {sum(len(e) for e in graph.values())} edges)")
        return 0
    for comp in cycles:
        print("cycle:", " ".join(comp))
        members = set(comp)
        for a in comp:
            for b in sorted(graph[a] & members):
                print(f"    {a} -> {b}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
