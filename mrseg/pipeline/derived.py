"""Tables derived from the per-case and per-fold tables, computed once when results are written
(the aggregation of a build, the export of a reference) and only read by the pages.

Each is ``derived_<name>.csv`` beside ``cases.csv`` (an export: beside ``index.json``), long format
with a ``metric`` column where it covers several metrics:

- ``mechanism``: :func:`mrseg.diagnostics.mechanism.mechanism_comparisons` on GED (d(∅,∅)=0) and
  Dice_match;
- ``controlled``: :func:`mrseg.diagnostics.recovery.controlled_comparison` on GED to the true style
  distribution, GED to the raters' masks and style recovery;
- ``posterior``: :func:`mrseg.diagnostics.posterior_use.regime_comparisons` on GED (d(∅,∅)=1) and
  Dice_match;
- ``sign_test``: per-fold wins of per-rater over shared Stage 1 (GED, d(∅,∅)=1) per np level of the
  sparsity study and the one-sided sign test over all of them;
- ``ladder_quality`` and ``ladder_effects``: the capacity ladder (the scale study,
  :mod:`mrseg.scoring.ladder`) per rung, each on every run it has ("all") and on the runs (folds x
  seeds) every rung has ("matched"; rung ``""``, the profile's own network, always has both, a rung
  above it only where it has more runs): each central row's GED (d(∅,∅)=1) and
  Dice_match as mean and SD over runs with the share of converged runs, and each central effect
  with its run-level 95% CI (:func:`mrseg.pipeline.paired.paired_rows`).

Every statistic a page shows thus comes from a file the pipeline wrote; the pages never compute.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Callable

import pandas as pd

from mrseg.config import Metric, Row
from mrseg.diagnostics import mechanism, posterior_use, recovery
from mrseg.diagnostics.statistics import sign_test
from mrseg.io import write_csv
from mrseg.pipeline.paired import paired_rows
from mrseg.scoring.ladder import LADDER_EFFECTS, LADDER_ROWS, RUNG_SEPARATOR, SCALE_STUDY, own_study, split_rung_row
from mrseg.scoring.results import DERIVED_PREFIX

PREFIX = DERIVED_PREFIX


def _long(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    parts = [frame.assign(metric=metric) for metric, frame in frames.items() if frame is not None and not frame.empty]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def mechanism_table(cases: pd.DataFrame, per_fold: pd.DataFrame) -> pd.DataFrame:
    if cases is None or cases.empty:
        return pd.DataFrame()
    return _long({Metric.GED: mechanism.mechanism_comparisons(cases, Metric.GED) if Metric.GED in cases else None,
                  Metric.DICE_MATCH: mechanism.mechanism_comparisons(cases, Metric.DICE_MATCH, lower_is_better=False)
                  if Metric.DICE_MATCH in cases else None})


def controlled_table(cases: pd.DataFrame, per_fold: pd.DataFrame) -> pd.DataFrame:
    if cases is None or cases.empty or "study" not in cases:
        return pd.DataFrame()
    own = cases[cases["study"] == "controlled"]
    return _long({metric: recovery.controlled_comparison(own, metric) for metric in ("ged_true", Metric.GED, "style_recovery")
                  if metric in own and not own.empty})


def posterior_table(cases: pd.DataFrame, per_fold: pd.DataFrame) -> pd.DataFrame:
    if cases is None or cases.empty:
        return pd.DataFrame()
    return _long({Metric.GED_DPERSONA: posterior_use.regime_comparisons(cases, Metric.GED_DPERSONA),
                  Metric.DICE_MATCH: posterior_use.regime_comparisons(cases, Metric.DICE_MATCH, lower_is_better=False)})


def sign_test_table(cases: pd.DataFrame, per_fold: pd.DataFrame, study: str = "sparsity", levels: tuple[int, ...] = (3, 2, 1),
                    metric: str = Metric.GED_DPERSONA) -> pd.DataFrame:
    """Per np: folds compared and per-rater wins (lower fold mean than shared Stage 1, seeds
    averaged per fold); a last row ``np = all`` with the totals and the one-sided sign test's p."""
    if per_fold is None or per_fold.empty or metric not in per_fold or "study" not in per_fold:
        return pd.DataFrame()
    own = per_fold[per_fold["study"] == study]
    records, wins, total = [], 0, 0
    for n in levels:
        at = own[pd.to_numeric(own["n_present"], errors="coerce") == n]
        means = {row: at[at["row"] == row].groupby("fold")[metric].mean() for row in (Row.SHARED_S1, Row.PER_RATER_S1)}
        common = means[Row.SHARED_S1].index.intersection(means[Row.PER_RATER_S1].index)
        w = int(sum(means[Row.PER_RATER_S1][f] < means[Row.SHARED_S1][f] for f in common))
        wins, total = wins + w, total + len(common)
        records.append({"np": str(n), "folds compared": len(common), "per-rater wins": w, "sign test p (one-sided)": math.nan})
    p = sign_test(wins, total)["p_one_sided"] if total else math.nan
    records.append({"np": "all", "folds compared": total, "per-rater wins": wins, "sign test p (one-sided)": p})
    return pd.DataFrame(records)


LADDER_METRICS = (Metric.GED_DPERSONA, Metric.DICE_MATCH)


def _ladder_rungs(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str], set[tuple[int, int]]]:
    """The scale study's rows of ``frame``, its rungs in table order and the (fold, seed) runs every
    rung has (the matched runs)."""
    if frame is None or frame.empty or "study" not in frame:
        return pd.DataFrame(), [], set()
    scale = frame[frame["study"].astype(str) == SCALE_STUDY]
    labels = scale["row"].astype(str).map(lambda r: (split_rung_row(r) or ("",))[0])
    rungs = [r for r in dict.fromkeys(labels) if r]
    per_rung = [{(int(f), int(s)) for f, s in zip(scale.loc[labels == r, "fold"], scale.loc[labels == r, "seed"])}
                for r in rungs]
    return scale, rungs, set.intersection(*per_rung) if per_rung else set()


def _on_runs(frame: pd.DataFrame, runs: set[tuple[int, int]]) -> pd.DataFrame:
    return frame[[(int(f), int(s)) in runs for f, s in zip(frame["fold"], frame["seed"])]]


def _ladder_selections(frame: pd.DataFrame, row: str, n_present: int):
    """``(rung, runs, rows of frame)`` for ``row`` at ``n_present``: rung 0 on every run ("all") and on
    the runs every rung has ("matched"), then every rung above it on its own runs ("all") and, where
    it has more, on the matched runs."""
    scale, rungs, matched = _ladder_rungs(frame)
    if not rungs:
        return
    at_np = pd.to_numeric(frame["n_present"], errors="coerce") == n_present
    own = frame[at_np & (frame["study"].astype(str) == own_study(n_present)) & (frame["row"].astype(str) == row)]
    yield "", "all", own
    yield "", "matched", _on_runs(own, matched)
    at_scale = pd.to_numeric(scale["n_present"], errors="coerce") == n_present
    for rung in rungs:
        sel = scale[at_scale & (scale["row"].astype(str) == f"{rung}{RUNG_SEPARATOR}{row}")]
        yield rung, "all", sel
        on_matched = _on_runs(sel, matched)
        if len(on_matched) < len(sel):
            yield rung, "matched", on_matched


def ladder_quality_table(cases: pd.DataFrame, per_fold: pd.DataFrame) -> pd.DataFrame:
    """Per rung (``""``: the profile's own network) and ``runs`` ("all" / "matched"), per central row
    and np: each metric's mean and SD over runs, the runs and the share that converged."""
    records = []
    for row, n_present in LADDER_ROWS:
        for rung, runs, sel in _ladder_selections(per_fold, row, n_present):
            if sel.empty:
                continue
            rec = {"rung": rung, "runs": runs, "row": row, "n_present": n_present, "n_runs": len(sel),
                   "converged": float(sel["converged"].astype(float).mean()) if "converged" in sel else math.nan}
            for metric in LADDER_METRICS:
                values = pd.to_numeric(sel[metric], errors="coerce") if metric in sel else pd.Series(dtype=float)
                rec[f"{metric}_mean"] = float(values.mean())
                rec[f"{metric}_sd"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
            records.append(rec)
    return pd.DataFrame(records)


def ladder_effects_table(cases: pd.DataFrame, per_fold: pd.DataFrame) -> pd.DataFrame:
    """Per rung and ``runs`` (as :func:`ladder_quality_table`), per central effect a - b at its np and
    metric: the paired statistics of :func:`mrseg.pipeline.paired.paired_rows` (run-level 95% CI)."""
    records = []
    for a, b, n_present in LADDER_EFFECTS:
        sides = {side: {(rung, runs): sel for rung, runs, sel in _ladder_selections(cases, row, n_present)}
                 for side, row in (("a", a), ("b", b))}
        for key, sel_a in sides["a"].items():
            sel_b = sides["b"].get(key)
            if sel_a.empty or sel_b is None or sel_b.empty:
                continue
            for metric in LADDER_METRICS:
                rec = paired_rows(sel_a, sel_b, metric)
                if rec is not None:
                    records.append({"rung": key[0], "runs": key[1], "a": a, "b": b, "n_present": n_present, **rec})
    return pd.DataFrame(records)


DERIVED: dict[str, Callable[[pd.DataFrame, pd.DataFrame], pd.DataFrame]] = {
    "mechanism": mechanism_table, "controlled": controlled_table, "posterior": posterior_table,
    "sign_test": sign_test_table, "ladder_quality": ladder_quality_table, "ladder_effects": ladder_effects_table,
}


def write_derived(folder: str | os.PathLike, cases: pd.DataFrame, per_fold: pd.DataFrame) -> dict[str, Path]:
    """Compute every table of :data:`DERIVED` and write it (atomically) as ``derived_<name>.csv``."""
    paths = {}
    for name, make in DERIVED.items():
        paths[name] = Path(folder) / f"{PREFIX}{name}.csv"
        write_csv(paths[name], make(cases, per_fold))
    return paths


# Modules whose code computes the derived tables: a change to them invalidates a stored copy.
DERIVED_SOURCES = ("pipeline/derived.py", "diagnostics/mechanism.py", "diagnostics/recovery.py",
                   "diagnostics/posterior_use.py", "diagnostics/run_level.py", "diagnostics/statistics.py",
                   "pipeline/paired.py", "scoring/ladder.py")
KEY_FILE = "derived.key"


def derived_key(index_json: Path) -> str:
    """SHA-1 of an export's ``index.json`` and of :data:`DERIVED_SOURCES`: a stored copy of the
    derived tables is valid while it matches."""
    import hashlib

    from mrseg.bookkeeping.fingerprint import PACKAGE, hash_sources

    digest = hashlib.sha1(Path(index_json).read_bytes())
    digest.update(hash_sources(PACKAGE, DERIVED_SOURCES).encode())
    return digest.hexdigest()


def stored_derived(places: list[Path], key: str) -> dict[str, pd.DataFrame] | None:
    """The derived tables of the first place whose key file matches ``key``; None when none does."""
    for place in places:
        try:
            if (place / KEY_FILE).read_text().strip() == key:
                return read_derived(place)
        except OSError:
            continue
    return None


def store_derived(place: Path, cases: pd.DataFrame, per_fold: pd.DataFrame, key: str) -> dict[str, pd.DataFrame]:
    """Compute, write and return the derived tables in ``place`` with ``key`` (written last, so an
    interrupted store is recomputed); a place that cannot be written is skipped."""
    tables = {name: make(cases, per_fold) for name, make in DERIVED.items()}
    try:
        place.mkdir(parents=True, exist_ok=True)
        for name, table in tables.items():
            write_csv(place / f"{PREFIX}{name}.csv", table)
        (place / KEY_FILE).write_text(key + "\n")
    except OSError:
        pass
    return tables


def read_derived(folder: str | os.PathLike) -> dict[str, pd.DataFrame]:
    """The derived tables of ``folder`` that exist (an empty table for an empty file)."""
    out = {}
    for name in DERIVED:
        path = Path(folder) / f"{PREFIX}{name}.csv"
        if path.exists():
            try:
                out[name] = pd.read_csv(path)
            except pd.errors.EmptyDataError:
                out[name] = pd.DataFrame()
    return out


def metric_rows(table: pd.DataFrame | None, metric: str) -> pd.DataFrame:
    """The rows of a long derived table for one metric, without the ``metric`` column."""
    if table is None or table.empty or "metric" not in table:
        return pd.DataFrame()
    return table[table["metric"] == metric].drop(columns="metric").reset_index(drop=True)


__all__ = ["DERIVED", "derived_key", "metric_rows", "read_derived", "store_derived", "stored_derived", "write_derived"]
