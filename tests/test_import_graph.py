"""The package's import graph: no cycles (imports in functions included); no protocol module imports a backend."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "lychee_integrations"
BACKENDS = ("lychee_integrations.engine", "lychee_integrations.remote", "lychee_integrations.vllm")
#: Modules every caller and backend shares: none of them may import a concrete backend.
PROTOCOL = (
    "lychee_integrations.scoring",
    "lychee_integrations.inputs",
    "lychee_integrations.results",
    "lychee_integrations.errors",
    "lychee_integrations.instructions",
    "lychee_integrations.images",
    "lychee_integrations.config",
    "lychee_integrations.testing",
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, modules: set[str]) -> set[str]:
    """Every package module this tree imports at run time (``if TYPE_CHECKING`` blocks excluded)."""
    found: set[str] = set()
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in modules else node.module)
        stack.extend(ast.iter_child_nodes(node))
    return {m for m in found if m in modules}


def _graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(paths)
    return {
        name: _imports(ast.parse(path.read_text(encoding="utf-8")), modules) - {name} for name, path in paths.items()
    }


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_graph_is_read() -> None:
    graph = _graph()
    assert "lychee_integrations.scoring" in graph["lychee_integrations.engine.facade"]
    assert "lychee_integrations.engine.scheduler" in graph["lychee_integrations.engine.facade"]  # a function-level one
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_the_package_has_no_import_cycle() -> None:
    assert _cycle(_graph()) is None


def test_no_protocol_module_imports_a_backend() -> None:
    graph = _graph()
    for module in PROTOCOL:
        backends = sorted(m for m in graph[module] if m.startswith(BACKENDS))
        assert not backends, f"{module} imports {backends}"
