"""The package's import graph, read from the source (ast, lazy imports inside functions included)."""

from __future__ import annotations

import ast
from pathlib import Path

import realm_pipeline

PACKAGE = Path(realm_pipeline.__file__).parent


def _module_name(path: Path) -> str:
    parts = ["realm_pipeline", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """realm module -> the realm modules it imports anywhere in its source."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*anchor, *([base] if base else [])])
                submodules = {f"{base}.{a.name}" for a in node.names} & modules.keys()
                # `from pkg import module` depends on that module; `from pkg import name`, on pkg itself
                targets |= submodules if len(submodules) == len(node.names) else {base, *submodules}
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_graph_sees_lazy_and_relative_imports() -> None:
    graph = import_graph()
    # lazy (inside a function) and relative imports both count: the walk is not vacuous
    assert "realm_pipeline.lm.generate" in graph["realm_pipeline.evaluation.backends"]
    assert "realm_pipeline.training.tokenizer" in graph["realm_pipeline.training.data"]


def _imports_from(package: str, into: tuple[str, ...]) -> list[tuple[str, str]]:
    """(module, target) for every module of `package` that imports a module of one of `into`."""
    return sorted(
        (m, t)
        for m, targets in import_graph().items()
        if m.startswith(package)
        for t in targets
        if t.startswith(into)
    )


def test_no_module_of_training_imports_evaluation() -> None:
    assert _imports_from("realm_pipeline.training", ("realm_pipeline.evaluation",)) == []


def test_the_package_has_no_import_cycle() -> None:
    assert _cycle(import_graph()) is None


def test_no_module_of_lm_imports_training_or_evaluation() -> None:
    # lm/ is the shared floor (generation, dtypes) under both the trainer and the evaluators
    assert _imports_from("realm_pipeline.lm", ("realm_pipeline.training", "realm_pipeline.evaluation")) == []
