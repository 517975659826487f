"""Run-level inference for comparisons of separately trained models.

Two trainings of one config differ as much as the effects this project judges, so a paired
comparison of two models must treat the *training run* as the unit of replication, not only the
test patient. The per-case differences ``d = a - b`` are nested in **run pairs** (the two models'
runs on the same fold with the same seed index) and crossed with **patients** (every run pair of
one fold scores the same test patients).

Three intervals of the mean difference, all on the run-pair means ``m_r`` (each run pair weighs the
same, whatever its number of test cases):

- **primary, run-level** (:func:`run_level_difference`): a crossed ("pigeonhole", Owen 2007)
  bootstrap that resamples run pairs and, independently, the patients of each fold (one draw per
  fold, shared by that fold's run pairs), so both the run-to-run spread and the test set's sampling
  enter; its standard error is turned into an interval with Student's t on ``n_runs - 1`` degrees of
  freedom, because a percentile interval of a handful of resampled runs is far too narrow.
- **t over run pairs**: ``mean(m_r) +- t * sd(m_r) / sqrt(R)``; ignores that the run pairs of one
  fold share their test patients.
- **Nadeau & Bengio's corrected resampled t** (Machine Learning 52, 2003): the variance of the
  run-pair means is scaled by ``1/R + n_test/n_train`` instead of ``1/R``, because cross-validation
  training sets overlap; the conservative bound.

:func:`detectable_effect` gives the smallest true difference the runs present detect with 80% power
(two-sided 5% test), from the primary standard error.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from scipy import stats

from mrseg.diagnostics.statistics import mean_t_ci

CI_LEVEL = 0.95
N_BOOT = 1000   # replicates of the crossed bootstrap: its SE to about 2% (Monte Carlo error 1/sqrt(2B))
POWER = 0.80
# 4-fold cross-validation: each test fold is about a third of the size of the training folds.
TEST_TRAIN_RATIO = 1.0 / 3.0

RUN_LEVEL_COLUMNS: tuple[str, ...] = (
    "n_runs", "run_effect", "run_se", "run_ci_low", "run_ci_high", "run_ci90_low", "run_ci90_high", "run_p",
    "run_sd", "t_ci_low", "t_ci_high", "t_p", "nb_ci_low", "nb_ci_high", "nb_p", "detectable_effect", "run_diffs")


def _t_interval(effect: float, se: float, df: int, level: float) -> tuple[float, float]:
    if not (df >= 1 and np.isfinite(se)):
        return math.nan, math.nan
    q = float(stats.t.ppf(0.5 + level / 2, df))
    return effect - q * se, effect + q * se


def _t_p(effect: float, se: float, df: int) -> float:
    if not (df >= 1 and np.isfinite(se)):
        return math.nan
    if se == 0:
        return 1.0 if effect == 0 else 0.0
    return float(2 * stats.t.sf(abs(effect) / se, df))


def detectable_effect(se: float, df: int, alpha: float = 1 - CI_LEVEL, power: float = POWER) -> float:
    """Smallest true mean difference a two-sided level-``alpha`` t test with standard error ``se``
    on ``df`` degrees of freedom detects with probability ``power``:
    ``(t_{1-alpha/2, df} + t_{power, df}) * se``. NaN when ``df < 1`` (one run pair measures no
    run-to-run spread)."""
    if not (df >= 1 and np.isfinite(se)):
        return math.nan
    return float((stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)) * se)


def _resample_counts(rng: np.random.Generator, n_boot: int, n: int) -> np.ndarray:
    """[n_boot, n] how often each of n units is drawn in n draws with replacement, per replicate."""
    draws = rng.integers(0, n, size=(n_boot, n)) + np.arange(n_boot)[:, None] * n
    return np.bincount(draws.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(float)


def crossed_bootstrap_se(sums: np.ndarray, counts: np.ndarray, patient_fold: np.ndarray,
                         n_boot: int = N_BOOT, seed: int = 0) -> float:
    """Standard error of the mean of run-pair means by a crossed bootstrap.

    ``sums``, ``counts``: [R, P] sums and numbers of per-case differences of run pair r on patient
    p (0 where the patient is not in that run pair's test set); ``patient_fold`` [P]: the fold whose
    test set holds each patient. Each replicate draws R run pairs with replacement and, for every
    fold, that fold's patients with replacement (the same draw for all its run pairs); the
    replicate's estimate is the mean over drawn run pairs of their case-weighted mean over drawn
    patients. Returns NaN when R < 2.
    """
    n_runs = sums.shape[0]
    if n_runs < 2:
        return math.nan
    rng = np.random.default_rng(seed)
    run_w = _resample_counts(rng, n_boot, n_runs)   # [B, R]
    run_means = np.zeros((n_boot, n_runs))
    for fold in np.unique(patient_fold):   # a fold's patients are drawn once, for all its run pairs
        cols = np.flatnonzero(patient_fold == fold)
        rows = np.flatnonzero(counts[:, cols].sum(axis=1) > 0)
        weights = _resample_counts(rng, n_boot, cols.size)
        fold_sums = np.ascontiguousarray(sums[np.ix_(rows, cols)].T)       # [P_f, R_f]: BLAS's fast layout
        fold_counts = np.ascontiguousarray(counts[np.ix_(rows, cols)].T)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = (weights @ fold_sums) / (weights @ fold_counts)
        run_means[:, rows] = np.where(np.isfinite(means), means, 0.0)
    estimates = (run_w * run_means).sum(axis=1) / run_w.sum(axis=1)
    return float(estimates.std(ddof=1))


def run_level_difference(diff: Sequence[float], run: Sequence[Any], patient: Sequence[Any],
                         fold: Sequence[Any] | None = None, level: float = CI_LEVEL, n_boot: int = N_BOOT,
                         seed: int = 0, test_train_ratio: float = TEST_TRAIN_RATIO) -> dict[str, Any]:
    """Run-level statistics of per-case paired differences ``diff`` [n] (``a - b``).

    ``run`` [n]: the run pair of each case (e.g. ``"fold/seed"``); ``patient`` [n]: its patient;
    ``fold`` [n]: its test fold (default: one fold for all). Returns the columns of
    :data:`RUN_LEVEL_COLUMNS`: ``n_runs``; ``run_effect`` (mean of the run-pair means), ``run_se``
    and the primary interval ``run_ci_low``/``run_ci_high`` (and 90%), ``run_p`` (t on
    ``n_runs - 1`` df); ``run_sd`` (SD of the run-pair means); the t interval over run pairs
    (``t_*``) and Nadeau & Bengio's corrected interval (``nb_*``); ``detectable_effect`` at 80%
    power; ``run_diffs`` ("run:mean" tokens). Intervals are NaN with fewer than 2 run pairs.
    """
    d = np.asarray(diff, dtype=float)
    runs = np.asarray(run).astype(str)
    patients = np.asarray(patient).astype(str)
    folds = np.zeros(d.size, dtype=int).astype(str) if fold is None else np.asarray(fold).astype(str)
    keep = np.isfinite(d)
    d, runs, patients, folds = d[keep], runs[keep], patients[keep], folds[keep]
    out: dict[str, Any] = {c: math.nan for c in RUN_LEVEL_COLUMNS}
    if d.size == 0:
        out.update(n_runs=0, run_diffs="")
        return out
    run_names, r_idx = np.unique(runs, return_inverse=True)
    patient_names, p_idx = np.unique(patients, return_inverse=True)
    n_runs, n_patients = run_names.size, patient_names.size
    sums = np.zeros((n_runs, n_patients))
    counts = np.zeros((n_runs, n_patients))
    np.add.at(sums, (r_idx, p_idx), d)
    np.add.at(counts, (r_idx, p_idx), 1.0)
    patient_fold = np.empty(n_patients, dtype=object)
    patient_fold[p_idx] = folds
    run_means = sums.sum(axis=1) / counts.sum(axis=1)
    effect = float(run_means.mean())
    df = n_runs - 1
    out.update(n_runs=int(n_runs), run_effect=effect,
               run_diffs=" ".join(f"{name}:{m:+.6g}" for name, m in zip(run_names, run_means)))
    if n_runs < 2:
        return out
    se = crossed_bootstrap_se(sums, counts, patient_fold.astype(str), n_boot=n_boot, seed=seed)
    sd = float(run_means.std(ddof=1))
    se_t = sd / math.sqrt(n_runs)
    se_nb = sd * math.sqrt(1.0 / n_runs + test_train_ratio)
    out["run_se"], out["run_sd"] = se, sd
    out["run_ci_low"], out["run_ci_high"] = _t_interval(effect, se, df, level)
    out["run_ci90_low"], out["run_ci90_high"] = _t_interval(effect, se, df, 0.90)
    out["run_p"] = _t_p(effect, se, df)
    out["t_ci_low"], out["t_ci_high"] = _t_interval(effect, se_t, df, level)
    out["t_p"] = _t_p(effect, se_t, df)
    out["nb_ci_low"], out["nb_ci_high"] = _t_interval(effect, se_nb, df, level)
    out["nb_p"] = _t_p(effect, se_nb, df)
    out["detectable_effect"] = detectable_effect(se, df, alpha=1 - level)
    return out


def better_verdict(low: float, high: float, a: str, b: str, lower_is_better: bool = True) -> str:
    """``"<a> better"`` / ``"<b> better"`` when the interval [low, high] of ``a - b`` excludes 0,
    else (or when it is missing) ``"inconclusive"``."""
    if not (np.isfinite(low) and np.isfinite(high)) or low <= 0 <= high:
        return "inconclusive"
    a_wins = (high < 0) if lower_is_better else (low > 0)
    return f"{a if a_wins else b} better"


def patient_interval(unit_diffs: Sequence[float], a: Sequence[float], b: Sequence[float], n_boot: int = N_BOOT,
                      seed: int = 0) -> dict[str, float]:
    """Test-set uncertainty only: a BCa bootstrap CI (``scipy.stats.bootstrap``, seeded) of the
    mean of ``unit_diffs`` (one difference per patient, or per case where a case is its own
    patient) and the Wilcoxon signed-rank p of the per-case values ``a`` vs ``b``. NaNs when there
    are fewer than 3 units or all differences are equal."""
    from mrseg.diagnostics.statistics import paired_wilcoxon

    units = np.asarray(unit_diffs, dtype=float)
    out = {"patient_ci_low": math.nan, "patient_ci_high": math.nan, "p_wilcoxon": math.nan}
    if units.size >= 3 and np.ptp(units) > 0:
        ci = stats.bootstrap((units,), np.mean, confidence_level=CI_LEVEL, n_resamples=n_boot,
                             random_state=np.random.default_rng(seed)).confidence_interval
        out.update(patient_ci_low=float(ci.low), patient_ci_high=float(ci.high), p_wilcoxon=paired_wilcoxon(a, b)["p"])
    return out


def fold_means_difference(a: Sequence[float], b: Sequence[float] | None = None, level: float = CI_LEVEL,
                          test_train_ratio: float = TEST_TRAIN_RATIO) -> dict[str, Any]:
    """The same rule on per-fold means only (e.g. a paper's reported folds): ``a - b`` per fold
    (or ``a`` as differences when ``b`` is None), its mean, the t interval over folds and Nadeau &
    Bengio's corrected one, their p and the effect detectable at 80% power."""
    d = np.asarray(a, dtype=float) - (0.0 if b is None else np.asarray(b, dtype=float))
    d = d[np.isfinite(d)]
    n = int(d.size)
    out: dict[str, Any] = {"n_runs": n, "run_effect": float(d.mean()) if n else math.nan}
    sd = float(d.std(ddof=1)) if n > 1 else math.nan
    se_t = sd / math.sqrt(n) if n > 1 else math.nan
    se_nb = sd * math.sqrt(1.0 / n + test_train_ratio) if n > 1 else math.nan
    effect = out["run_effect"]
    out["run_sd"] = sd
    _, out["t_ci_low"], out["t_ci_high"], out["t_p"] = mean_t_ci(d, level)
    out["nb_ci_low"], out["nb_ci_high"] = _t_interval(effect, se_nb, n - 1, level)
    out["nb_p"] = _t_p(effect, se_nb, n - 1)
    out["detectable_effect"] = detectable_effect(se_t, n - 1, alpha=1 - level)
    return out



PAIR_COLUMNS: tuple[str, ...] = ("n_cases", "n_patients", "n_runs", "mean_a", "mean_b", "difference", "ci_low",
                                 "ci_high", "p_run", "detectable", "patient_ci_low", "patient_ci_high", "p_wilcoxon",
                                 "verdict")


def compare_rows(frame: Any, a: str, b: str, metric: str, lower_is_better: bool = True,
                 n_boot: int = N_BOOT, seed: int = 0) -> dict[str, Any] | None:
    """Paired comparison of rows ``a`` and ``b`` of one per-case table (columns ``row``, ``fold``,
    ``seed``, ``case_id``, ``patient_id`` and ``metric``), cases paired by (fold, seed, case_id):
    the :data:`PAIR_COLUMNS` (``difference`` = mean of the run-pair means of a - b, its run-level 95%
    CI and p, the effect detectable with 80% power, the patient bootstrap as test-set uncertainty
    only, the Wilcoxon p over cases and :func:`better_verdict`); ``None`` when a row is missing."""
    wide = frame[frame["row"].isin([a, b])].pivot_table(index=["fold", "seed", "case_id", "patient_id"],
                                                        columns="row", values=metric, aggfunc="first")
    if a not in wide or b not in wide:
        return None
    wide = wide[[a, b]].dropna().reset_index()
    if wide.empty:
        return None
    diff = (wide[a] - wide[b]).to_numpy(dtype=float)
    per_patient = wide.assign(d=diff).groupby(["fold", "seed", "patient_id"])["d"].mean().to_numpy(dtype=float)
    runs = (wide["fold"].astype(str) + "/" + wide["seed"].astype(str)).to_numpy()
    run_level = run_level_difference(diff, runs, wide["patient_id"].astype(str).to_numpy(), wide["fold"].to_numpy(),
                                     n_boot=n_boot, seed=seed)
    return {"n_cases": int(len(diff)), "n_patients": int(len(per_patient)), "n_runs": int(run_level["n_runs"]),
            "mean_a": float(wide[a].mean()), "mean_b": float(wide[b].mean()),
            "difference": run_level["run_effect"], "ci_low": run_level["run_ci_low"],
            "ci_high": run_level["run_ci_high"], "p_run": run_level.get("run_p", math.nan),
            "detectable": run_level.get("detectable_effect", math.nan),
            **patient_interval(per_patient, wide[a], wide[b], n_boot=n_boot, seed=seed),
            "verdict": better_verdict(run_level["run_ci_low"], run_level["run_ci_high"], a, b, lower_is_better)}

__all__ = ["CI_LEVEL", "PAIR_COLUMNS", "RUN_LEVEL_COLUMNS", "TEST_TRAIN_RATIO", "better_verdict", "compare_rows",
           "crossed_bootstrap_se",
           "detectable_effect", "fold_means_difference", "run_level_difference", "patient_interval"]
