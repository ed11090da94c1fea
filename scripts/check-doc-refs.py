#!/usr/bin/env python3
"""Check that every reference `docs/NAME.md §N` (or `NAME.md §N` inside docs/) names a section that exists.

Sections are the `## §N …` and `### §N.M …` headings of each document. A reference may list sections
(`§3, §8`) or give a range (`§2–§4`, `§2.1–2.2`); every section named must exist, and so must the file.
Scans the tracked and untracked (not ignored) `.rs`, `.py`, `.md`, `.ipynb` and `.sh` files. Exits 1 and lists the
broken references if there are any. Usage: scripts/check-doc-refs.py (from the repository root).
"""

import re
import subprocess
import sys
from pathlib import Path

REF = re.compile(r"((?:docs/)?[a-z-]+\.md)((?: §[0-9.]+(?:[–-]§?[0-9.]+)?,?)+)")


def sections(doc: Path) -> set:
    found = set()
    for line in doc.read_text(encoding="utf-8").splitlines():
        m = re.match(r"#{2,4} §([0-9.]+)", line)
        if m:
            found.add(m.group(1).rstrip("."))
    return found


def named(spec: str) -> list:
    """`§2.1–2.2, §4` -> ['2.1', '2.2', '4'] (the ends of a range are checked)."""
    out = []
    for part in spec.split(","):
        for end in re.split(r"[–-]", part.strip()):
            end = end.strip().lstrip("§").rstrip(".")
            if end:
                out.append(end)
    return out


def main() -> int:
    root = Path(".")
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    files = [f for f in files if f.endswith((".rs", ".py", ".md", ".ipynb", ".sh"))]
    cache = {}
    bad = []
    for f in files:
        text = Path(f).read_text(encoding="utf-8", errors="replace")
        for i, line in enumerate(text.splitlines(), 1):
            for m in REF.finditer(line):
                name, spec = m.group(1), m.group(2)
                if not name.startswith("docs/"):
                    if not f.startswith("docs/"):
                        continue  # a bare NAME.md outside docs/ is not a reference into docs/
                    name = "docs/" + name
                doc = root / name
                if name not in cache:
                    cache[name] = sections(doc) if doc.exists() else None
                have = cache[name]
                if have is None:
                    bad.append(f"{f}:{i}: {name} does not exist")
                    continue
                for sec in named(spec):
                    if sec not in have:
                        bad.append(f"{f}:{i}: {name} has no §{sec}")
    for b in bad:
        print(b)
    if not bad:
        print(f"all references into docs/ resolve ({len(files)} files read)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
