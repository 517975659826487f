"""Paired comparisons of two rows' per-case tables: :func:`paired_rows` for one pair and metric,
:func:`paired_table` for every pair of rows of a study at one n_present (``paired.csv``).

Used by the aggregation (:mod:`mrseg.pipeline.aggregate`) and by the derived tables
(:mod:`mrseg.pipeline.derived`); a change here invalidates stored paired tables.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np
import pandas as pd

from mrseg.config import Metric
from mrseg.diagnostics.run_level import run_level_difference
from mrseg.diagnostics.statistics import cluster_bootstrap_cis, cluster_bootstrap_mean_ci, wilcoxon_p

# ---- paired comparisons ---------------------------------------------------------------------------
PAIR_KEYS = ("fold", "seed", "case_id", "M")
PAIRED_METRICS = (Metric.GED, Metric.GED_DPERSONA, Metric.DICE_MATCH, "dice_match_m4", Metric.DICE_SOFT, "hm_iou", "d_ss")


def _groups(frame: pd.DataFrame) -> pd.Series:
    """The bootstrap's resampling unit per case: patient id, else case id (one case per patient)."""
    patient = frame["patient_id"].astype(str) if "patient_id" in frame else pd.Series("", index=frame.index)
    missing = patient.isin(["", "nan", "None"])
    return patient.where(~missing, "case:" + frame["case_id"].astype(str))


def comparison_unit(a: pd.DataFrame, b: pd.DataFrame) -> str:
    """``"case"`` when one row is the other's own Stage 1 (``X+s2`` vs ``X``: Stage 2 is trained on
    that very run, so the two share their training lineage), else ``"run"``: separately trained
    models, whose comparison must carry the run-to-run spread."""
    models_a = {str(m) for m in a["model"].unique()} if "model" in a else set()
    models_b = {str(m) for m in b["model"].unique()} if "model" in b else set()
    if len(models_a) != 1 or len(models_b) != 1:
        return "run"
    (ma,), (mb,) = models_a, models_b
    return "case" if ma == f"{mb}+s2" or mb == f"{ma}+s2" else "run"


def paired_rows(a: pd.DataFrame, b: pd.DataFrame, metric: str, seed: int = 0) -> dict[str, Any] | None:
    """Paired statistics of ``metric`` for two rows' case tables (``a - b``), or None if nothing pairs.

    Cases pair on (fold, seed, case_id, M) when both rows share seeds; otherwise each row is first
    averaged over its seeds per (fold, case_id, M). Only cases evaluated with the same M pair.
    A run pair is one (fold, seed) (one fold when seeds do not pair).

    The primary interval (``mean_diff``, ``ci_low``/``ci_high``, ``ci90_*``, ``p``) depends on
    ``unit`` (:func:`comparison_unit`): for separately trained models (``run``) it is the run-level
    interval of :func:`mrseg.diagnostics.run_level.run_level_difference` (run pairs and patients;
    t on ``n_runs - 1`` df); for a Stage 2 run against its own Stage 1 (``case``) it is the
    patient bootstrap. The patient bootstrap is always kept as ``patient_ci_low``/``patient_ci_high``
    (test-set uncertainty only) with the Wilcoxon ``patient_p``; the run-level columns
    (:data:`RUN_LEVEL_COLUMNS`) are always present.
    """
    if metric not in a or metric not in b:
        return None
    keys = [k for k in PAIR_KEYS if k in a and k in b]
    if "seed" in keys and not set(a["seed"]) & set(b["seed"]):
        keys.remove("seed")
    cols = keys + [c for c in ("patient_id",) if c in a]
    left = a[cols + [metric]].groupby(keys, dropna=False, as_index=False).agg(
        {metric: "mean", **({"patient_id": "first"} if "patient_id" in cols else {})})
    right = b[keys + [metric]].groupby(keys, dropna=False, as_index=False)[metric].mean()
    both = left.merge(right, on=keys, suffixes=("_a", "_b"))
    both["diff"] = both[f"{metric}_a"] - both[f"{metric}_b"]
    both = both[np.isfinite(both["diff"])]
    if both.empty:
        return None
    groups = _groups(both).to_numpy()
    d = both["diff"].to_numpy()
    ci95, ci90 = cluster_bootstrap_cis(d, groups, (0.95, 0.90), seed=seed)
    run_keys = [k for k in ("fold", "seed") if k in both]
    runs = pd.Series("all", index=both.index)
    for i, key in enumerate(run_keys):
        text = both[key].astype(str)
        runs = text if i == 0 else runs + "/" + text
    run_level = run_level_difference(d, runs.to_numpy(), groups,
                                     both["fold"].to_numpy() if "fold" in both else None, seed=seed)
    unit = comparison_unit(a, b)
    patient = {"mean_diff": float(d.mean()), "ci_low": ci95[0], "ci_high": ci95[1], "ci90_low": ci90[0],
               "ci90_high": ci90[1], "p": wilcoxon_p(d)}
    primary = patient if unit == "case" else {
        "mean_diff": run_level["run_effect"], "ci_low": run_level["run_ci_low"], "ci_high": run_level["run_ci_high"],
        "ci90_low": run_level["run_ci90_low"], "ci90_high": run_level["run_ci90_high"], "p": run_level["run_p"]}
    by_fold = both.groupby("fold")["diff"].mean()
    fold_ci, fold_run_ci = [], []
    folds, run_names = both["fold"].to_numpy(), runs.to_numpy()
    for fold in np.unique(folds):
        at = folds == fold
        low, high = cluster_bootstrap_mean_ci(d[at], groups[at], n_boot=1000, seed=seed)
        fold_ci.append(f"{int(fold)}:{low:.6g}:{high:.6g}")
        within = run_level_difference(d[at], run_names[at], groups[at], seed=seed)
        fold_run_ci.append(f"{int(fold)}:{within['run_ci_low']:.6g}:{within['run_ci_high']:.6g}:"
                           f"{within['run_p']:.6g}:{within['n_runs']}")
    by_seed = both.groupby("seed")["diff"].mean() if "seed" in both else pd.Series(dtype=float)
    return {
        "metric": metric, "unit": unit, "n": int(d.size), "n_groups": int(np.unique(groups.astype(str)).size),
        **primary, "sd_diff": float(both["diff"].std(ddof=1)) if len(both) > 1 else math.nan,
        "case_mean_diff": patient["mean_diff"], "patient_ci_low": patient["ci_low"],
        "patient_ci_high": patient["ci_high"], "patient_ci90_low": patient["ci90_low"],
        "patient_ci90_high": patient["ci90_high"], "patient_p": patient["p"],
        **run_level,
        "mean_a": float(both[f"{metric}_a"].mean()), "mean_b": float(both[f"{metric}_b"].mean()),
        "M": ",".join(str(int(m)) for m in sorted(set(both["M"]))) if "M" in both else "",
        "n_folds": int(by_fold.size), "folds_a_lower": int((by_fold < 0).sum()), "folds_a_higher": int((by_fold > 0).sum()),
        "fold_diffs": " ".join(f"{int(f)}:{v:+.6g}" for f, v in by_fold.items()), "fold_ci": " ".join(fold_ci),
        "fold_run_ci": " ".join(fold_run_ci),
        "n_seeds": int(by_seed.size), "seed_diffs": " ".join(f"{int(s)}:{v:+.4g}" for s, v in by_seed.items()),
    }


def paired_table(cases: pd.DataFrame, metrics: Iterable[str] = PAIRED_METRICS, seed: int = 0) -> pd.DataFrame:
    """Every pair of rows of one study at one n_present, every metric: :func:`paired_rows`.

    One orientation per pair (``a`` first in table order); a reader flips the sign for ``b - a``
    (:data:`mrseg.scoring.results.flip_paired` knows which columns turn).
    Columns: study, n_present, a, b, metric, unit (``run`` / ``case``), n, n_groups, the primary
    mean_diff, ci_low, ci_high (95%), ci90_low, ci90_high, p; sd_diff; case_mean_diff and the
    patient bootstrap (patient_ci_low/high, patient_ci90_low/high, patient_p: Wilcoxon); the
    run-level columns of :data:`RUN_LEVEL_COLUMNS`; mean_a, mean_b, M, n_folds, folds_a_lower,
    folds_a_higher, fold_diffs, fold_ci (per-fold 95% patient CI), fold_run_ci (per fold, the
    run-level CI over that fold's run pairs (seeds): "fold:low:high:p:n_runs"), n_seeds, seed_diffs.
    """
    if cases.empty or "row" not in cases:
        return pd.DataFrame()
    extra = [c for c in cases.columns if c.startswith("dice_expert_")]
    metrics = [m for m in (*metrics, *extra) if m in cases]
    out = []
    for (study, n_present), group in cases.groupby(["study", "n_present"], sort=False, dropna=False):
        rows = list(dict.fromkeys(group["row"].astype(str)))
        tables = {r: group[group["row"].astype(str) == r] for r in rows}
        for i, a in enumerate(rows):
            for b in rows[i + 1:]:
                for metric in metrics:
                    rec = paired_rows(tables[a], tables[b], metric, seed=seed)
                    if rec is not None:
                        out.append({"study": study, "n_present": n_present, "a": a, "b": b, **rec})
    return pd.DataFrame(out)


__all__ = ["PAIR_KEYS", "PAIRED_METRICS", "comparison_unit", "paired_rows", "paired_table"]
