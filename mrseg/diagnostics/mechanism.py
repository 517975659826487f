"""The mechanism study's paired comparisons (beyond the thesis): which explanation the controls support.

Rows of the ``mechanism`` study (``mrseg/plans/thesis.yaml``) and what each pair isolates:

- (a) separate parameters: ``per_rater_s1`` vs ``per_rater_tied_s1`` (both one sample per rater);
- (b) the per-rater ELBO decomposition: ``per_rater_tied_s1`` vs ``shared_s1`` (same encoder size);
- (c) posterior capacity: ``shared_wide_s1`` vs ``shared_s1``, and ``per_rater_s1`` vs ``shared_wide_s1``
  (equal posterior parameter counts within 5%);
- (d) the baseline's zero-filled absent raters: ``shared_masked_s1`` vs ``shared_s1``, and
  ``per_rater_s1`` vs ``shared_masked_s1`` (does masking the absent raters close the gap?);
- the thesis's comparison with and without free bits: ``per_rater_s1`` vs ``shared_s1`` and
  ``per_rater_fb`` vs ``shared_fb``; and what free bits do to each model (``*_fb`` vs its plain row).

:func:`explanation_readings` turns those verdicts into one reading per explanation.

:func:`mechanism_comparisons` pairs the test cases of two rows by (fold, seed, case_id) at each
np. The rows are separately trained models, so the verdict reads the run-level 95% CI
(:func:`mrseg.diagnostics.run_level.run_level_difference`: run pairs (fold, seed) and patients):
"<a> better" / "<b> better" when it excludes 0, else "inconclusive"; one run pair measures no
run-to-run spread and is always inconclusive. Beside it: the bootstrap CI over patients (test-set
uncertainty only: ``scipy.stats.bootstrap`` over per-patient mean differences, BCa, seeded) and
the Wilcoxon signed-rank p over cases (:func:`mrseg.diagnostics.statistics.paired_wilcoxon`).
"""

from __future__ import annotations

import pandas as pd

from mrseg.config import Metric, Row
from mrseg.diagnostics.run_level import compare_rows

STUDY = "mechanism"
# (label, a, b): the explanation a pair separates, and the two rows compared
PAIRS: tuple[tuple[str, str, str], ...] = (
    ("(a) separate parameters", Row.PER_RATER_S1, Row.PER_RATER_TIED_S1),
    ("(b) per-rater ELBO", Row.PER_RATER_TIED_S1, Row.SHARED_S1),
    ("(c) capacity: wide vs shared", Row.SHARED_WIDE_S1, Row.SHARED_S1),
    ("(c) capacity: per-rater vs wide", Row.PER_RATER_S1, Row.SHARED_WIDE_S1),
    ("(d) zero-fill: masked vs shared", Row.SHARED_MASKED_S1, Row.SHARED_S1),
    ("(d) zero-fill: per-rater vs masked", Row.PER_RATER_S1, Row.SHARED_MASKED_S1),
    ("thesis comparison", Row.PER_RATER_S1, Row.SHARED_S1),
    ("thesis comparison, free bits", "per_rater_fb", "shared_fb"),
    ("free bits, tied vs shared", Row.PER_RATER_TIED_FB, "shared_fb"),
    ("free bits' own effect, shared", "shared_fb", Row.SHARED_S1),
    ("free bits' own effect, per-rater", "per_rater_fb", Row.PER_RATER_S1),
    ("free bits' own effect, tied", Row.PER_RATER_TIED_FB, Row.PER_RATER_TIED_S1),
)


def mechanism_comparisons(cases: pd.DataFrame, metric: str = Metric.GED, lower_is_better: bool = True,
                          n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per (pair of :data:`PAIRS`, np) present in ``cases`` (rows of ``cases.csv`` with
    ``study``, ``row``, ``n_present``, ``fold``, ``seed``, ``case_id``, ``patient_id`` and ``metric``;
    only the ``mechanism`` study is read). Columns: ``explanation``, ``a``, ``b``, ``np``,
    ``n_cases``, ``n_patients``, ``n_runs``, ``mean_a``, ``mean_b``, ``difference`` (mean of the
    run-pair means of a - b), ``ci_low``, ``ci_high`` (run-level; NaN with one run pair),
    ``patient_ci_low``, ``patient_ci_high`` (test-set only), ``p_wilcoxon``, ``verdict``. Empty when
    no pair has both rows."""


    columns = ["explanation", "a", "b", "np", "n_cases", "n_patients", "n_runs", "mean_a", "mean_b", "difference",
               "ci_low", "ci_high", "patient_ci_low", "patient_ci_high", "p_wilcoxon", "verdict"]
    if cases is None or cases.empty or "study" not in cases or metric not in cases:
        return pd.DataFrame(columns=columns)
    frame = cases[cases["study"] == STUDY]
    rows = []
    for label, a, b in PAIRS:
        for n_p, group in frame[frame["row"].isin([a, b])].groupby("n_present", sort=True):
            found = compare_rows(group, a, b, metric, lower_is_better, n_boot=n_boot, seed=seed)
            if found is not None:
                rows.append({"explanation": label, "a": a, "b": b, "np": int(n_p), **found})
    return pd.DataFrame(rows, columns=columns)


# explanation: (pair that would show it, pair that would rule it out as the whole story, the claim)
EXPLANATIONS: dict[str, tuple[tuple[str, str], tuple[str, str] | None, str]] = {
    "(a) separate parameters": ((Row.PER_RATER_S1, Row.PER_RATER_TIED_S1), None,
                                "separate encoders beat one tied encoder trained with the same per-rater ELBO"),
    "(b) per-rater ELBO": ((Row.PER_RATER_TIED_S1, Row.SHARED_S1), None,
                           "one tied encoder with the per-rater ELBO beats the shared posterior"),
    "(c) capacity": ((Row.SHARED_WIDE_S1, Row.SHARED_S1), (Row.PER_RATER_S1, Row.SHARED_WIDE_S1),
                     "a shared posterior as large as the per-rater encoders together beats the shared one"),
    "(d) zero-fill": ((Row.SHARED_MASKED_S1, Row.SHARED_S1), (Row.PER_RATER_S1, Row.SHARED_MASKED_S1),
                      "masking the absent raters out of the shared loss beats zero-filling them"),
}


def explanation_readings(comparisons: pd.DataFrame) -> pd.DataFrame:
    """One row per (explanation of :data:`EXPLANATIONS`, np) from :func:`mechanism_comparisons`.

    An explanation is "supported" when its pair's CI favours the control (e.g. tied better than
    shared for (b)); "not supported" when the CI favours the other row, or when its pair is
    inconclusive while the per-rater model still beats the control (for (c): per-rater better than
    shared-wide; for (d): better than shared-masked); else "inconclusive". Columns: ``explanation``,
    ``np``, ``claim``, ``test`` (the pair as "a - b"), ``difference``, ``ci_low``, ``ci_high``,
    ``reading``. Empty when no explanation's pair ran."""
    columns = ["explanation", "np", "claim", "test", "difference", "ci_low", "ci_high", "reading"]
    if comparisons is None or comparisons.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for label, (pair, rival, claim) in EXPLANATIONS.items():
        for n_p in sorted(comparisons["np"].unique()):
            at_np = comparisons[comparisons["np"] == n_p]
            found = at_np[(at_np["a"] == pair[0]) & (at_np["b"] == pair[1])]
            if found.empty:
                continue
            test = found.iloc[0]
            reading = "inconclusive"
            if test["verdict"] == f"{pair[0]} better":
                reading = "supported"
            elif test["verdict"] == f"{pair[1]} better":
                reading = "not supported"
            elif rival is not None:
                beaten = at_np[(at_np["a"] == rival[0]) & (at_np["b"] == rival[1])]
                if not beaten.empty and beaten.iloc[0]["verdict"] == f"{rival[0]} better":
                    reading = f"not supported ({rival[0]} still better)"
            rows.append({"explanation": label, "np": int(n_p), "claim": claim, "test": f"{pair[0]} - {pair[1]}",
                         "difference": test["difference"], "ci_low": test["ci_low"], "ci_high": test["ci_high"],
                         "reading": reading})
    return pd.DataFrame(rows, columns=columns)


def collapse_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The mechanism study's rows of ``summary.csv`` with GED and the collapse diagnostics
    (``kl_nats_mean``, ``active_units_mean`` and their SDs over folds, where present)."""
    if summary is None or summary.empty or "study" not in summary:
        return pd.DataFrame()
    keep = [c for c in ("row", "n_present", "n_folds", "ged_mean", "ged_sd", "kl_nats_mean", "kl_nats_sd",
                        "active_units_mean", "active_units_sd") if c in summary]
    return summary.loc[summary["study"] == STUDY, keep].reset_index(drop=True)


__all__ = ["EXPLANATIONS", "PAIRS", "STUDY", "collapse_table", "explanation_readings", "mechanism_comparisons"]
