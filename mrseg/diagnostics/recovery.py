"""The controlled study's comparisons on the per-case measures of :mod:`mrseg.measures.styles`
(GED to the raters' true style distribution, style recovery): per-rater against shared per rater
count N and np with run-level intervals, and recovery per style."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mrseg.config import Metric
from mrseg.data.controlled import n_raters_of
from mrseg.diagnostics.run_level import better_verdict, patient_interval, run_level_difference

# metric -> whether lower is better, for the controlled study's paired comparison
COMPARED = {"ged_true": True, Metric.GED: True, "style_recovery": False}


def controlled_comparison(cases: pd.DataFrame, metric: str = "ged_true", a: str = "per-rater", b: str = "shared",
                          n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Paired comparison of models ``a`` vs ``b`` per (N, np, variant) on controlled-raters cases
    (``missing``: "static" for runs whose variant tag has ``static``, else "per-step").

    ``cases``: rows of ``cases.csv`` (any study; only ``synthetic-raters<N>`` datasets are used)
    with ``dataset``, ``model``, ``n_present``, ``fold``, ``seed``, ``case_id`` and ``metric``.
    Cases are paired by (fold, seed, case_id); in these datasets a case is its own patient. The
    two models are trained separately, so the verdict reads the run-level 95% CI
    (:func:`mrseg.diagnostics.run_level.run_level_difference`: run pairs (fold, seed) and cases):
    "<a> better" / "<b> better" when it excludes 0, else "inconclusive" (always, with one run pair).
    One row per (N, np): ``N``, ``np``, ``np_over_N``, ``n_cases``, ``n_runs``, the two means,
    ``difference`` (mean of the run-pair means of a - b), ``ci_low``/``ci_high`` (run-level),
    ``patient_ci_low``/``patient_ci_high`` (bootstrap over cases, test-set uncertainty only:
    ``scipy.stats.bootstrap``, BCa, ``n_boot`` resamples, seeded), the Wilcoxon p and ``verdict``.
    """


    if metric not in cases:
        raise ValueError(f"controlled_comparison: no column {metric!r} in the cases table")
    lower_better = COMPARED.get(metric, True)
    frame = cases.assign(N=cases["dataset"].map(n_raters_of)).dropna(subset=["N"])
    variant = frame["variant"] if "variant" in frame else pd.Series("", index=frame.index)
    frame = frame.assign(variant=variant.fillna("").astype(str))
    frame = frame.drop_duplicates(subset=["N", "variant", "model", "n_present", "fold", "seed", "case_id"])
    rows = []
    for (n, n_p, tag), group in frame.groupby(["N", "n_present", "variant"], sort=True):
        wide = group.pivot_table(index=["fold", "seed", "case_id"], columns="model", values=metric, aggfunc="first")
        if a not in wide or b not in wide:
            continue
        wide = wide[[a, b]].dropna()
        diff = (wide[a] - wide[b]).to_numpy(dtype=float)
        keys = wide.index.to_frame(index=False)
        run_level = run_level_difference(diff, (keys["fold"].astype(str) + "/" + keys["seed"].astype(str)).to_numpy(),
                                         keys["case_id"].astype(str).to_numpy(), keys["fold"].to_numpy(),
                                         n_boot=n_boot, seed=seed)
        row = {"N": int(n), "np": int(n_p), "np_over_N": float(n_p) / float(n),
               "missing": "static" if "static" in tag.split("+") else "per-step", "n_cases": int(len(diff)),
               "n_runs": int(run_level["n_runs"]),
               a: float(wide[a].mean()) if len(diff) else np.nan, b: float(wide[b].mean()) if len(diff) else np.nan,
               "difference": run_level["run_effect"], "ci_low": run_level["run_ci_low"],
               "ci_high": run_level["run_ci_high"],
               **patient_interval(diff, wide[a], wide[b], n_boot=n_boot, seed=seed),
               "verdict": better_verdict(run_level["run_ci_low"], run_level["run_ci_high"], a, b, lower_better)}
        rows.append(row)
    return pd.DataFrame(rows)


def recovery_by_style(cases: pd.DataFrame) -> pd.DataFrame:
    """Share of test cases where each style was recovered, per (N, np, model): one column per
    style (``recovered_<style>`` means; NaN where a dataset has no such style) and
    ``style_recovery`` (mean share of styles recovered)."""
    if cases is None or cases.empty or "dataset" not in cases:
        return pd.DataFrame()
    frame = cases.assign(N=cases["dataset"].map(n_raters_of)).dropna(subset=["N"])
    if frame.empty:
        return pd.DataFrame()
    frame = frame.assign(N=frame["N"].astype(int))
    cols = [c for c in frame.columns if c.startswith("recovered_")]
    keys = ["N", "n_present", "model"]
    out = frame.drop_duplicates(subset=[*keys, "fold", "seed", "case_id"]).groupby(keys)[["style_recovery", *cols]].mean()
    return out.reset_index().rename(columns={"n_present": "np", **{c: c[len("recovered_"):] for c in cols}})


__all__ = ["COMPARED", "controlled_comparison", "recovery_by_style"]
