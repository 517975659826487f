"""Small statistical helpers used by the result pages and the attribute study.

- :func:`sign_test`: exact binomial sign test over paired per-fold comparisons (the thesis's
  "12 wins of 12, p = (1/2)^12" claim is ``sign_test(12, 12)["p_one_sided"]``).
- :func:`sign_test_pairs`: the same from two arrays of per-fold scores.
- :func:`paired_wilcoxon`: Wilcoxon signed-rank test on paired per-case scores with the
  matched-pairs rank-biserial correlation as effect size.
- :func:`pearson`, :func:`partial_pearson`: Pearson r with p and n (NaNs dropped pairwise), and the
  partial correlation controlling for covariates (residual method).
- :func:`adjust_pvalues`: Holm / Benjamini-Hochberg adjustment (statsmodels).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats


def sign_test(wins: int, n: int, alternative: str = "greater") -> dict[str, Any]:
    """Exact sign test: ``wins`` successes out of ``n`` non-tied paired comparisons.

    Under the null each comparison is a fair coin. Returns ``{"wins", "n", "p_one_sided",
    "p_two_sided"}``; ``p_one_sided`` is P(X >= wins) for ``alternative="greater"``
    (12 of 12 gives 2**-12) and P(X <= wins) for ``"less"``.
    """
    if not 0 <= wins <= n or n < 1:
        raise ValueError(f"sign_test needs 0 <= wins <= n and n >= 1, got wins={wins}, n={n}")
    one = stats.binomtest(int(wins), int(n), 0.5, alternative=alternative).pvalue
    two = stats.binomtest(int(wins), int(n), 0.5, alternative="two-sided").pvalue
    return {"wins": int(wins), "n": int(n), "p_one_sided": float(one), "p_two_sided": float(two)}


def sign_test_pairs(a: Sequence[float], b: Sequence[float], lower_is_better: bool = True) -> dict[str, Any]:
    """Sign test that ``a`` beats ``b`` over paired comparisons (e.g. per fold x sparsity level).

    ``a``, ``b``: equal-length arrays of scores for the same units. A win is ``a < b`` when
    ``lower_is_better`` (GED) else ``a > b`` (Dice). Ties are dropped, as in the classical test.
    Returns :func:`sign_test`'s dict plus ``ties``.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"sign_test_pairs: shapes differ {a.shape} vs {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    diff = (b - a if lower_is_better else a - b)[keep]
    ties = int((diff == 0).sum())
    wins = int((diff > 0).sum())
    n = int((diff != 0).sum())
    if n == 0:
        return {"wins": 0, "n": 0, "ties": ties, "p_one_sided": float("nan"), "p_two_sided": float("nan")}
    return {**sign_test(wins, n), "ties": ties}


def paired_wilcoxon(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """Wilcoxon signed-rank test of paired per-case scores ``a`` vs ``b`` (two-sided).

    Effect size: matched-pairs rank-biserial correlation ``r_rb = (W+ - W-) / (W+ + W-)`` over
    the non-zero differences ``d = a - b`` (positive when ``a`` tends to be larger; in [-1, 1]).
    Returns ``{"n", "statistic", "p", "rank_biserial", "median_diff", "mean_diff"}``.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired_wilcoxon: shapes differ {a.shape} vs {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    d = (a - b)[keep]
    nz = d[d != 0]
    out: dict[str, Any] = {"n": int(d.size), "median_diff": float(np.median(d)) if d.size else float("nan"),
                           "mean_diff": float(d.mean()) if d.size else float("nan")}
    if nz.size == 0:
        return {**out, "statistic": float("nan"), "p": float("nan"), "rank_biserial": 0.0 if d.size else float("nan")}
    ranks = stats.rankdata(np.abs(nz))
    w_plus, w_minus = ranks[nz > 0].sum(), ranks[nz < 0].sum()
    res = stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
    return {**out, "statistic": float(res.statistic), "p": float(res.pvalue),
            "rank_biserial": float((w_plus - w_minus) / (w_plus + w_minus))}


def pearson(x: Sequence[float], y: Sequence[float]) -> dict[str, float]:
    """Pearson r, two-sided p and n over the pairs where both are finite (scipy.stats.pearsonr).

    Fewer than 3 pairs, or a constant input, gives r = p = NaN.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = int(x.size)
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"r": float("nan"), "p": float("nan"), "n": n}
    res = stats.pearsonr(x, y)
    return {"r": float(res.statistic), "p": float(res.pvalue), "n": n}


def partial_pearson(x: Sequence[float], y: Sequence[float], covariates: np.ndarray | Sequence[float]) -> dict[str, float]:
    """Partial Pearson correlation of ``x`` and ``y`` controlling for ``covariates`` ([n] or [n,k]).

    Residual method: regress x and y on (1, covariates) by least squares, correlate the residuals.
    The p value uses a t distribution with ``n - 2 - k`` degrees of freedom.
    Returns ``{"r", "p", "n"}``.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    c = np.asarray(covariates, dtype=float)
    c = c[:, None] if c.ndim == 1 else c
    keep = np.isfinite(x) & np.isfinite(y) & np.isfinite(c).all(axis=1)
    x, y, c = x[keep], y[keep], c[keep]
    n, k = int(x.size), int(c.shape[1])
    dof = n - 2 - k
    if dof < 1:
        return {"r": float("nan"), "p": float("nan"), "n": n}
    design = np.column_stack([np.ones(n), c])
    rx = x - design @ np.linalg.lstsq(design, x, rcond=None)[0]
    ry = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    if np.allclose(rx, 0) or np.allclose(ry, 0):
        return {"r": float("nan"), "p": float("nan"), "n": n}
    r = float(np.corrcoef(rx, ry)[0, 1])
    r = min(max(r, -1.0), 1.0)
    t = r * np.sqrt(dof / max(1e-300, 1.0 - r * r))
    p = float(2 * stats.t.sf(abs(t), dof))
    return {"r": r, "p": p, "n": n}


def adjust_pvalues(p: Sequence[float], method: str = "holm") -> np.ndarray:
    """Multiple-testing adjusted p values; NaNs pass through.

    ``"fdr_bh"``: scipy's ``false_discovery_control``. ``"holm"``: the step-down formula
    ``max_{j<=i} min(1, (m - j + 1) p_(j))`` in a few lines (statsmodels' ``multipletests`` gives the
    same numbers, checked in the tests, but runs a full garbage collection on every call, which
    costs seconds per family in a process that holds torch).
    """
    if method not in ("holm", "fdr_bh"):
        raise ValueError(f"method must be 'holm' or 'fdr_bh', got {method!r}")
    p = np.asarray(p, dtype=float)
    out = np.full_like(p, np.nan)
    keep = np.isfinite(p)
    if keep.any():
        if method == "fdr_bh":
            out[keep] = stats.false_discovery_control(p[keep], method="bh")
        else:
            q = p[keep]
            order = np.argsort(q, kind="stable")
            m = q.size
            stepped = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * q[order]))
            adj = np.empty(m)
            adj[order] = stepped
            out[keep] = adj
    return out


def fold_comparison_table(per_fold: pd.DataFrame, metric: str, a: str, b: str, by: str = "n_present",
                          model_col: str = "row", lower_is_better: bool = True) -> pd.DataFrame:
    """Pair per-fold scores of rows ``a`` and ``b`` (e.g. ``per_rater_s1`` vs ``shared_s1``).

    ``per_fold``: one row per run with columns ``model_col``, ``by``, ``fold`` and ``metric``
    (the runner's ``per_fold.csv``). Returns one row per (by, fold) with columns ``by``, ``fold``,
    ``a``, ``b``, ``a_wins``.
    """
    need = {model_col, by, "fold", metric}
    missing = need - set(per_fold.columns)
    if missing:
        raise ValueError(f"per-fold table lacks columns {sorted(missing)}")
    sub = per_fold[per_fold[model_col].isin([a, b])]
    wide = sub.pivot_table(index=[by, "fold"], columns=model_col, values=metric, aggfunc="mean").reset_index()
    if a not in wide or b not in wide:
        return pd.DataFrame(columns=[by, "fold", "a", "b", "a_wins"])
    wide = wide.rename(columns={a: "a", b: "b"}).dropna(subset=["a", "b"])
    wide["a_wins"] = wide["a"] < wide["b"] if lower_is_better else wide["a"] > wide["b"]
    return wide[[by, "fold", "a", "b", "a_wins"]].reset_index(drop=True)
