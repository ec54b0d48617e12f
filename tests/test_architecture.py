"""The shape docs/architecture.md promises: the core imports no driver, and no module of the core
imports, directly or through others, itself -- counting imports made inside functions (only
those under ``if TYPE_CHECKING:`` are left out)."""

from __future__ import annotations

import ast
from pathlib import Path

import intake_broker

CORE = Path(intake_broker.__file__).parent
DRIVERS = ("intake_broker_files", "intake_broker_native", "intake_broker_mongo",
           "intake_broker_server", "intake_broker_remote")  # fmt: skip


def _modules() -> dict[str, Path]:
    found = {}
    for path in CORE.rglob("*.py"):
        parts = path.relative_to(CORE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text())
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
            skipped |= {id(n) for n in ast.walk(node)}
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.add(sub if sub in modules else base)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_the_core_imports_no_driver():
    offenders = {
        (module, imported)
        for module, imported_set in _graph().items()
        for imported in imported_set
        if imported.split(".")[0] in DRIVERS
    }
    assert not offenders, f"the core imports drivers: {sorted(offenders)}"


def test_no_import_cycle_inside_the_core():
    graph = {m: {i for i in deps if i in _modules() and i != m} for m, deps in _graph().items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_walk_sees_the_imports():
    """What the two tests rely on: the walk finds imports at module level and in functions."""
    graph = _graph()
    assert "intake_broker.errors" in graph["intake_broker.plugins"]
    assert "intake_broker.views.filling" in graph["intake_broker.views.catalog"]  # in a method
