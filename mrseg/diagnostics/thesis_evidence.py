"""The thesis's own numbers judged by the rule this project applies to its own runs.

The thesis reports 4 folds x 1 seed: per-fold values for some comparisons (its Appendices I and II)
and only mean +- SD over folds for others (Table 4.2). Each comparison becomes one row:

- with per-fold values: the paired fold differences, a t interval over the 4 folds and Nadeau &
  Bengio's corrected interval (:func:`mrseg.diagnostics.run_level.fold_means_difference`);
- with mean +- SD only: the fold-level correlation between the two models is not reported, so the
  paired SD is unknown; the row gives the interval at correlation 0 and ``rho_needed``, the
  correlation the two models' fold results would need for the t interval to exclude zero (above 1:
  no correlation makes it significant).

The thesis's SDs are population SDs over 4 folds (ddof 0); they are converted to sample SDs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from mrseg.config import Metric
from mrseg.diagnostics.run_level import CI_LEVEL, TEST_TRAIN_RATIO, detectable_effect, fold_means_difference

# (label, claimed direction of a - b, metric, a path, b path); paths into thesis_reported.yaml.
PER_FOLD_COMPARISONS: tuple[tuple[str, str, str, str, str], ...] = tuple(
    (f"per-rater - shared S1, {label}", "<" if metric == Metric.GED else ">", metric,
     f"{base}.{metric}{level}.per_rater_s1", f"{base}.{metric}{level}.shared_s1")
    for metric in (Metric.GED, Metric.DICE_MATCH)
    for label, base, level in (("np 4 (100 epochs)", "appendix_I_full_annotation_per_fold", ""),
                               ("np 3", "appendix_II_sparse_per_fold", ".np3"),
                               ("np 2", "appendix_II_sparse_per_fold", ".np2"),
                               ("np 1", "appendix_II_sparse_per_fold", ".np1"))
)
SUMMARY_COMPARISONS: tuple[tuple[str, str, str, str, str], ...] = (
    ("per-rater S1 - D-Persona S1+S2 (Table 4.2)", "<", Metric.GED, "table_4_2_main.per_rater_s1.ged",
     "table_4_2_main.dpersona_s1s2.ged"),
    ("per-rater S1 - D-Persona S1+S2 (Table 4.2)", ">", Metric.DICE_MATCH, "table_4_2_main.per_rater_s1.dice_match",
     "table_4_2_main.dpersona_s1s2.dice_match"),
)
THESIS_FOLDS = 4


def _lookup(thesis: dict[str, Any], path: str) -> Any:
    node: Any = thesis
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _reading(low: float, high: float, expect: str) -> str:
    if not (math.isfinite(low) and math.isfinite(high)):
        return "no interval"
    if low <= 0 <= high:
        return "inconclusive (CI contains 0)"
    holds = high < 0 if expect == "<" else low > 0
    return "supported" if holds else "contradicted"


def rho_needed(diff: float, sd_a: float, sd_b: float, n: int, level: float = CI_LEVEL) -> float:
    """The correlation between two models' per-fold results at which a paired t interval over
    ``n`` folds just excludes zero, given the mean difference and the two sample SDs; values above
    1 mean that no correlation suffices."""
    q = float(stats.t.ppf(0.5 + level / 2, n - 1))
    max_var = (abs(diff) * math.sqrt(n) / q) ** 2
    if sd_a <= 0 or sd_b <= 0:
        return -math.inf if sd_a ** 2 + sd_b ** 2 < max_var else math.inf
    return (sd_a ** 2 + sd_b ** 2 - max_var) / (2 * sd_a * sd_b)


def thesis_evidence_table(thesis: dict[str, Any], level: float = CI_LEVEL) -> pd.DataFrame:
    """One row per thesis comparison: ``comparison``, ``metric``, ``expect``, ``source`` (per-fold
    or mean ± SD), ``n_folds``, ``effect`` (a - b), ``t_ci_low``/``t_ci_high``/``t_p`` (over folds;
    at correlation 0 for mean ± SD rows), ``nb_ci_low``/``nb_ci_high``/``nb_p`` (Nadeau & Bengio),
    ``detectable_effect`` (80% power), ``rho_needed`` (mean ± SD rows) and ``reading`` (of the
    t interval) and ``reading_nb``."""
    rows = []
    for label, expect, metric, path_a, path_b in PER_FOLD_COMPARISONS:
        a, b = _lookup(thesis, path_a), _lookup(thesis, path_b)
        if not (isinstance(a, list) and isinstance(b, list) and len(a) == len(b) >= 2):
            continue
        out = fold_means_difference(a, b, level=level)
        rows.append({"comparison": label, "metric": metric, "expect": expect, "source": "per-fold values",
                     "n_folds": out["n_runs"], "effect": out["run_effect"], "rho_needed": math.nan,
                     **{k: out[k] for k in ("t_ci_low", "t_ci_high", "t_p", "nb_ci_low", "nb_ci_high", "nb_p",
                                            "detectable_effect")}})
    for label, expect, metric, path_a, path_b in SUMMARY_COMPARISONS:
        a, b = _lookup(thesis, path_a), _lookup(thesis, path_b)
        if not (isinstance(a, list) and isinstance(b, list) and len(a) == len(b) == 2):
            continue
        n = THESIS_FOLDS
        to_sample = math.sqrt(n / (n - 1))
        (mean_a, sd_a), (mean_b, sd_b) = a, b
        sd_a, sd_b = sd_a * to_sample, sd_b * to_sample
        diff = mean_a - mean_b
        sd_d = math.sqrt(sd_a ** 2 + sd_b ** 2)        # correlation 0
        q = float(stats.t.ppf(0.5 + level / 2, n - 1))
        se_t, se_nb = sd_d / math.sqrt(n), sd_d * math.sqrt(1 / n + TEST_TRAIN_RATIO)
        rows.append({"comparison": label, "metric": metric, "expect": expect, "source": "mean ± SD (correlation 0)",
                     "n_folds": n, "effect": diff, "t_ci_low": diff - q * se_t, "t_ci_high": diff + q * se_t,
                     "t_p": float(2 * stats.t.sf(abs(diff) / se_t, n - 1)),
                     "nb_ci_low": diff - q * se_nb, "nb_ci_high": diff + q * se_nb,
                     "nb_p": float(2 * stats.t.sf(abs(diff) / se_nb, n - 1)),
                     "detectable_effect": detectable_effect(se_t, n - 1), "rho_needed": rho_needed(diff, sd_a, sd_b, n)})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame["reading"] = [_reading(lo, hi, e) for lo, hi, e in zip(frame["t_ci_low"], frame["t_ci_high"], frame["expect"])]
    frame["reading_nb"] = [_reading(lo, hi, e) for lo, hi, e in zip(frame["nb_ci_low"], frame["nb_ci_high"],
                                                                       frame["expect"])]
    return frame.replace({np.inf: math.nan, -np.inf: math.nan})


__all__ = ["PER_FOLD_COMPARISONS", "SUMMARY_COMPARISONS", "rho_needed", "thesis_evidence_table"]
