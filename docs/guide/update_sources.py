"""Refresh the code the guide prints from the source: ``python docs/guide/update_sources.py``.

Each layer's chapter shows its code with ``>>> print(inspect.getsource(NAME), end="")`` followed by the source
as the expected output, so tests/test_guide.py fails when the code changes and the chapter does not. This
script rewrites those outputs from the current code (the chapter's own import lines tell what NAME is).
"""
from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

GUIDE = Path(__file__).resolve().parent
sys.path.insert(0, str(GUIDE.parent.parent))  # this repository's minicnn
PRINT = re.compile(r'^(?P<indent>\s*)>>> print\(inspect\.getsource\((?P<name>[\w.]+)\), end=""\)$')
IMPORT = re.compile(r"^\s*>>> ((?:from \S+ )?import .+)$")


def refresh(text):
    namespace, lines, out, index = {}, text.split("\n"), [], 0
    while index < len(lines):
        line = lines[index]
        out.append(line)
        index += 1
        if IMPORT.match(line):
            exec(IMPORT.match(line)[1], namespace)  # noqa: S102 (the guide's own import lines)
        match = PRINT.match(line)
        if not match:
            continue
        while index < len(lines) and lines[index].strip() and not lines[index].lstrip().startswith(">>>"):
            index += 1  # the old output
        source = inspect.getsource(eval(match["name"], namespace))  # noqa: S307
        out += [match["indent"] + (code if code.strip() else "<BLANKLINE>") for code in source.rstrip("\n").split("\n")]
    return "\n".join(out)


def main():
    for chapter in sorted(GUIDE.glob("*.md")):
        text = chapter.read_text()
        updated = refresh(text)
        if updated != text:
            chapter.write_text(updated)
            print(f"updated {chapter.name}")


if __name__ == "__main__":
    main()
