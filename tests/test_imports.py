"""The package's import graph, read with `ast` from every module (imports inside functions
included): no cycles, and data flows one way — ingest → retrieval → api / connectors."""

from __future__ import annotations

import ast
from pathlib import Path

import scanrag

ROOT = Path(scanrag.__file__).parent
OUTSIDE = {"tests", "bench", "examples", ".venv"}  # in the repository, not in the package


def modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[0] in OUTSIDE:
            continue
        name = ".".join(("scanrag", *parts)).removesuffix(".__init__")
        found[name] = path
    return found


def imported(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package modules one module imports, anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            # `from . import x` imports the module x when there is one, else a name of base
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imported(name, path, known) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in edges[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_graph_is_read_from_the_whole_package_with_function_level_imports():
    edges = graph()
    assert {"scanrag.retrieval.index", "scanrag.ingest.parsers.glm", "scanrag.api.app"} <= set(
        edges
    )
    # `scanrag.Index` is imported inside a function of the package's __init__
    assert "scanrag.retrieval.index" in edges["scanrag"]


def test_the_cycle_finder_finds_a_cycle_through_three_modules():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_itself_back():
    assert cycles(graph()) == []


#: Each part may import the ones of a lower rank only (top-level modules stand outside).
LAYERS = {"ingest": 0, "retrieval": 1, "api": 2, "connectors": 2}


def backward(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Imports against the flow: a part importing one of its rank or higher (but for
    connectors, which adapt the API's linked citations)."""

    def part(module: str) -> str:
        return module.split(".")[1] if module.count(".") else ""

    wrong = []
    for name, targets in edges.items():
        for target in targets:
            mine, theirs = part(name), part(target)
            if mine == theirs or mine not in LAYERS or theirs not in LAYERS:
                continue
            if LAYERS[theirs] > LAYERS[mine] or (mine, theirs) == ("api", "connectors"):
                wrong.append((name, target))
    return wrong


def test_the_flow_check_finds_an_import_against_the_flow():
    edges = {
        "scanrag.ingest.a": {"scanrag.retrieval.b", "scanrag.ingest.c"},
        "scanrag.retrieval.b": {"scanrag.ingest.c"},
        "scanrag.connectors.d": {"scanrag.api.e"},
        "scanrag.api.e": {"scanrag.connectors.d"},
    }
    assert backward(edges) == [
        ("scanrag.ingest.a", "scanrag.retrieval.b"),
        ("scanrag.api.e", "scanrag.connectors.d"),
    ]


def test_data_flows_one_way():
    assert backward(graph()) == []
