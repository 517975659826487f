"""The package's layout: no import cycles (module level or inside functions), and the README's
layout section names every subpackage."""

from __future__ import annotations

import ast
from pathlib import Path

from mrseg.paths import REPO_ROOT

PACKAGE = REPO_ROOT / "mrseg"


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """``{module: modules it imports}`` over every ``import`` / ``from ... import`` of the package,
    at module level and inside functions; importing ``a.b.c`` also imports the packages ``a.b``."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for target in targets:
                parts = target.split(".")
                for k in range(1, len(parts) + 1):
                    dep = ".".join(parts[:k])
                    if dep in modules and dep != name and not name.startswith(dep + "."):
                        graph[name].add(dep)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_planted_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_package_has_no_import_cycles():
    assert cycles(import_graph()) == []


def test_pipeline_and_bench_are_packages_and_readme_lists_them():
    readme = (REPO_ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout"):]
    for sub in sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py")):
        assert f"{sub}/" in layout, f"README's layout section does not list mrseg/{sub}/"
    for name in ("plan", "runner", "aggregate", "manifest", "status", "record"):
        assert (PACKAGE / "pipeline" / f"{name}.py").is_file()
    assert (PACKAGE / "bench" / "metrics.py").is_file() and (PACKAGE / "bench" / "step.py").is_file()


def test_every_model_variant_has_a_loss_family_function():
    from mrseg.config import MODEL_VARIANTS
    from mrseg.losses import STAGE1_FAMILIES

    assert {v.loss for v in MODEL_VARIANTS.values()} <= set(STAGE1_FAMILIES)
