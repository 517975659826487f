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
    for name in ("plan", "runner", "aggregate", "status", "record"):
        assert (PACKAGE / "pipeline" / f"{name}.py").is_file()
    for name in ("manifest", "fingerprint", "lock", "integrity", "machine"):
        assert (PACKAGE / "bookkeeping" / f"{name}.py").is_file()
    assert (PACKAGE / "bench" / "metrics.py").is_file() and (PACKAGE / "bench" / "step.py").is_file()


def test_every_model_variant_has_a_loss_family_function():
    from mrseg.config import MODEL_VARIANTS
    from mrseg.losses import STAGE1_FAMILIES

    assert {v.loss for v in MODEL_VARIANTS.values()} <= set(STAGE1_FAMILIES)


# The layers, lowest first: a module may import its own layer and those below, never above.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("mrseg", "mrseg.config", "mrseg.paths", "mrseg.io", "mrseg.formatting", "mrseg.conventions", "mrseg.thesis",
     "mrseg.metrics", "mrseg.device"),
    ("mrseg.bookkeeping",),
    ("mrseg.data",),
    ("mrseg.models", "mrseg.losses"),
    ("mrseg.measures",),
    ("mrseg.train", "mrseg.evaluate", "mrseg.run_views"),
    ("mrseg.diagnostics", "mrseg.plots", "mrseg.bench"),
    ("mrseg.scoring",),
    ("mrseg.pipeline",),
    ("mrseg.report",),
    ("mrseg.cli", "mrseg.__main__"),
)
def layer_of(module: str) -> int:
    """The index in :data:`LAYERS` of the longest prefix that names ``module`` or a package above it."""
    best, depth = -1, -1
    for index, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and name.count(".") > depth:
                best, depth = index, name.count(".")
    return best


def upward_imports(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    return {(a, b) for a, deps in graph.items() for b in deps if layer_of(b) > layer_of(a)}


def test_every_module_has_a_layer():
    assert [m for m in import_graph() if layer_of(m) < 0] == []


def test_layers_point_one_way():
    """data -> models/losses -> train/evaluate -> diagnostics -> scoring -> pipeline -> report:
    nothing in data, models, losses, train or diagnostics imports pipeline or report, nothing in
    pipeline imports report; bookkeeping (manifests, fingerprints, locks) sits below training and data."""
    assert upward_imports(import_graph()) == set(), "imports against the layer order"


def test_the_layer_check_catches_a_planted_upward_import():
    graph = {"mrseg.train": {"mrseg.pipeline.plan"}, "mrseg.pipeline.plan": {"mrseg.train"}}
    assert upward_imports(graph) == {("mrseg.train", "mrseg.pipeline.plan")}


# Calls that compute a statistic (an interval, a test, a p value). Pages and report/ only read what
# the pipeline computed (scorecard.json, paired.csv, derived_*.csv) and render it.
STATISTIC_CALLS = ("sign_test(", "bootstrap(", "run_level_difference(", "mechanism_comparisons(",
                   "controlled_comparison(", "regime_comparisons(", "ttest", "wilcoxon(", "binomtest(", "pearsonr(",
                   "spearmanr(", "adjust_pvalues(", "mean_t_ci(", "fisher_r_ci(", "proportion_ci(", "paired_table(",
                   "evaluate_claims(", "attribute_study(", "attribute_study_summary(", "gradient_isolation_check(")


def test_pages_and_report_compute_no_statistic():
    files = sorted((REPO_ROOT / "notebooks" / "pages").glob("*.py")) + sorted((PACKAGE / "report").glob("*.py"))
    found = []
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            found += [f"{path.relative_to(REPO_ROOT)}:{number}: {call}" for call in STATISTIC_CALLS if call in code]
    assert found == [], "\n".join(found)


# ---- keys declared once ----------------------------------------------------------------------
def _code_lines(path: Path) -> list[tuple[int, str]]:
    """(number, line) of the code lines of a Python file: docstrings and comments left out."""
    import io
    import tokenize

    lines: dict[int, str] = {}
    text = path.read_text()
    previous = None
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        is_docstring = tok.type == tokenize.STRING and previous in (None, tokenize.NEWLINE, tokenize.INDENT,
                                                                    tokenize.DEDENT, tokenize.NL)
        if tok.type == tokenize.STRING and not is_docstring:
            lines[tok.start[0]] = lines.get(tok.start[0], "") + tok.string + " "
        if tok.type not in (tokenize.COMMENT, tokenize.NL):
            previous = tok.type
    return sorted(lines.items())


def test_row_and_metric_keys_are_the_plans_and_the_metrics_own():
    import numpy as np
    import yaml

    from mrseg.config import Metric, Row
    from mrseg.metrics import evaluate_cases

    plan = yaml.safe_load((PACKAGE / "plans" / "thesis.yaml").read_text())
    rows = {row for study in plan["studies"].values() for row in (study.get("rows") or {})}
    bare = {row.split("__", 1)[-1] for row in rows}   # posterior-study rows are <setting>__<row>
    assert {r.value for r in Row} <= bare, sorted({r.value for r in Row} - bare)
    probs = np.random.default_rng(0).random((2, 4, 8, 8))
    raters = np.random.default_rng(1).random((2, 3, 8, 8)) > 0.5
    assert {m.value for m in Metric} <= set(evaluate_cases(probs, raters).columns)


# Files that define the keys' values: the config (the enums) and the metric code that computes them
# (a result source: its literals stay until that code next changes and is certified again).
KEY_SOURCES = {"config.py", "metrics.py", "evaluate.py"}


def test_no_code_outside_the_key_sources_types_a_row_or_metric_key():
    from mrseg.config import Metric, Row

    keys = [f'"{k.value}"' for k in (*Row, *Metric)] + [f"'{k.value}'" for k in (*Row, *Metric)]
    files = [p for p in sorted(PACKAGE.rglob("*.py")) if p.name not in KEY_SOURCES or p.parent != PACKAGE]
    files += sorted((REPO_ROOT / "notebooks").rglob("*.py"))
    found = [f"{path.relative_to(REPO_ROOT)}:{number}: {key}" for path in files
             for number, strings in _code_lines(path) for key in keys if key in strings.split(" ")]
    assert found == [], "\n".join(found[:40])


def test_the_key_check_sees_code_strings_but_not_docstrings_or_comments(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text('"""A "shared_s1" docstring."""\nx = "shared_s1"  # "ged"\n\n\ndef f():\n'
                       '    """About "ged"."""\n    return {"ged": 1}\n')
    assert _code_lines(planted) == [(2, '"shared_s1" '), (7, '"ged" ')]


def test_the_architecture_page_names_every_subpackage_and_module():
    page = (REPO_ROOT / "book" / "architecture.md").read_text()
    section = page[page.index("## Code layout"):]
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__init__.py" or "__pycache__" in path.parts:
            continue
        rel = path.relative_to(PACKAGE)
        named = f"`mrseg/{rel.as_posix()}`" in section if len(rel.parts) == 1 else (
            f"`mrseg/{rel.parent.as_posix()}/`" in section and f"`{path.stem}`" in section)
        if not named:
            missing.append(rel.as_posix())
    assert missing == [], missing


# A result source whose profile switch no page calls any more: it goes when data/ next changes and
# its runs are certified again (editing it now would mark every committed run stale).
PROFILE_SWITCH_PENDING = {"mrseg/data/calibration.py"}


def test_behaviour_never_switches_on_a_profile_name():
    import re

    pattern = re.compile(r"""profile\s*[!=]=\s*["']|["'](smoke|demo|paper|reference|reference-cpu)["']\s*[!=]=\s*profile""")
    files = sorted(PACKAGE.rglob("*.py")) + sorted((REPO_ROOT / "notebooks").rglob("*.py"))
    found = [f"{path.relative_to(REPO_ROOT)}:{number}" for path in files
             if path.relative_to(REPO_ROOT).as_posix() not in PROFILE_SWITCH_PENDING
             for number, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line.split("#")[0])]
    assert found == [], found
    pending = [p for p in PROFILE_SWITCH_PENDING if pattern.search((REPO_ROOT / p).read_text())]
    assert pending == sorted(PROFILE_SWITCH_PENDING), "a pending switch is gone: drop it from PROFILE_SWITCH_PENDING"
