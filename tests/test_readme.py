"""The README's layout section names every module of the package, and only modules that are
there."""

from __future__ import annotations

import re
from pathlib import Path

import scanrag

ROOT = Path(scanrag.__file__).parent


def layout_entries() -> tuple[set[str], set[str]]:
    """(paths named, folders named without their files) from the README's layout block."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("### Layout", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    named: set[str] = set()
    leaves: set[str] = set()
    stack: list[tuple[int, str]] = []  # (indent, folder)
    lines = [line for line in block.splitlines() if line.strip()]
    for number, line in enumerate(lines):
        indent = len(line) - len(line.lstrip())
        name = line.split()[0]
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = "".join(folder for _, folder in stack) + name
        named.add(path.rstrip("/"))
        if name.endswith("/"):
            following = lines[number + 1] if number + 1 < len(lines) else ""
            if len(following) - len(following.lstrip()) <= indent:
                leaves.add(path.rstrip("/"))
            stack.append((indent, name))
    return named, leaves


def test_every_name_in_the_layout_is_in_the_tree():
    named, _ = layout_entries()
    assert {path for path in named if not (ROOT / path).exists()} == set()


def test_every_module_of_the_package_is_in_the_layout():
    named, leaves = layout_entries()
    missing = []
    for path in ROOT.rglob("*.py"):
        relative = path.relative_to(ROOT).as_posix()
        outside = re.match(r"(\.venv|tests|bench|examples)/", relative)
        subpackage = path.name == "__init__.py" and relative != "__init__.py"  # its folder is
        if outside or subpackage:
            continue
        covered = relative in named or any(relative.startswith(f"{leaf}/") for leaf in leaves)
        if not covered:
            missing.append(relative)
    assert missing == []
