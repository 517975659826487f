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
    (n wins of n gives 2**-n) and P(X <= wins) for ``"less"``.
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


# ---- paired comparisons of two models on the same test cases ------------------------------------
N_BOOT = 2000
CI_LEVEL = 0.95


def cluster_bootstrap_mean_ci(values: Sequence[float], groups: Sequence[Any] | None = None,
                              n_boot: int = N_BOOT, level: float = CI_LEVEL,
                              seed: int = 0) -> tuple[float, float]:
    """Percentile CI of the mean of ``values`` [n] by a bootstrap that resamples whole ``groups``.

    ``groups`` [n] (e.g. patient ids): the cases of one group are drawn together, so cases that
    are not independent (slices of one patient) do not narrow the interval. ``None`` resamples
    single values. The resampled mean is ``sum of drawn groups' sums / their case count``.
    Fewer than 2 groups gives ``(nan, nan)``.
    """
    return cluster_bootstrap_cis(values, groups, (level,), n_boot=n_boot, seed=seed)[0]


def cluster_bootstrap_cis(values: Sequence[float], groups: Sequence[Any] | None = None,
                          levels: Sequence[float] = (CI_LEVEL,), n_boot: int = N_BOOT,
                          seed: int = 0) -> list[tuple[float, float]]:
    """:func:`cluster_bootstrap_mean_ci` at several ``levels`` from one set of resamples."""
    v = np.asarray(values, dtype=float)
    g = np.arange(v.size) if groups is None else np.asarray(groups)
    keep = np.isfinite(v)
    v, g = v[keep], g[keep]
    _, codes = np.unique(g.astype(str), return_inverse=True)
    k = int(codes.max()) + 1 if codes.size else 0
    if k < 2:
        return [(float("nan"), float("nan"))] * len(levels)
    sums = np.bincount(codes, weights=v, minlength=k)
    counts = np.bincount(codes, minlength=k).astype(float)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, k, size=(n_boot, k))
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    out = []
    for level in levels:
        alpha = (1.0 - level) / 2
        low, high = np.quantile(means, [alpha, 1 - alpha])
        out.append((float(low), float(high)))
    return out


def wilcoxon_p(diff: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p of paired differences (scipy); NaN when n < 2 or every
    difference is 0."""
    d = np.asarray(diff, dtype=float)
    return float(stats.wilcoxon(d).pvalue) if d.size >= 2 and np.any(d != 0) else float("nan")


def paired_difference(diff: Sequence[float], groups: Sequence[Any] | None = None,
                      n_boot: int = N_BOOT, seed: int = 0) -> dict[str, Any]:
    """Statistics of per-case paired differences ``diff = a - b`` [n] on the same test cases.

    Returns ``{"n", "n_groups", "mean_diff", "ci_low", "ci_high", "p"}``: the mean difference, its
    95% CI by :func:`cluster_bootstrap_mean_ci` over ``groups`` (patients) and the two-sided
    Wilcoxon signed-rank p (scipy; NaN when every difference is 0 or n < 2).
    """
    d = np.asarray(diff, dtype=float)
    g = np.arange(d.size) if groups is None else np.asarray(groups)
    keep = np.isfinite(d)
    d, g = d[keep], g[keep]
    n = int(d.size)
    out: dict[str, Any] = {"n": n, "n_groups": int(np.unique(g.astype(str)).size),
                           "mean_diff": float(d.mean()) if n else float("nan")}
    out["ci_low"], out["ci_high"] = cluster_bootstrap_mean_ci(d, g, n_boot=n_boot, seed=seed)
    out["p"] = wilcoxon_p(d)
    return out


def tost_paired(diff: Sequence[float], margin: float, groups: Sequence[Any] | None = None,
                n_boot: int = N_BOOT, seed: int = 0) -> dict[str, Any]:
    """Equivalence of a paired mean difference within ``+-margin`` (two one-sided tests).

    The TOST p is the larger of the two one-sided paired t-test p values (H0: mean <= -margin,
    H0: mean >= +margin). Its interval form is used for the verdict: equivalence at 5% holds when
    the 90% CI (patient bootstrap, as :func:`cluster_bootstrap_mean_ci`) lies inside
    ``(-margin, margin)``. Returns ``{"p_tost", "ci90_low", "ci90_high", "equivalent", "margin"}``.
    """
    d = np.asarray(diff, dtype=float)
    g = np.arange(d.size) if groups is None else np.asarray(groups)
    keep = np.isfinite(d)
    d, g = d[keep], g[keep]
    if d.size < 2 or not margin > 0:
        return {"p_tost": float("nan"), "ci90_low": float("nan"), "ci90_high": float("nan"),
                "equivalent": False, "margin": float(margin)}
    lower = stats.ttest_1samp(d, -margin, alternative="greater").pvalue
    upper = stats.ttest_1samp(d, margin, alternative="less").pvalue
    low, high = cluster_bootstrap_mean_ci(d, g, n_boot=n_boot, level=0.90, seed=seed)
    equivalent = bool(np.isfinite(low) and -margin < low and high < margin)
    return {"p_tost": float(max(lower, upper)), "ci90_low": low, "ci90_high": high,
            "equivalent": equivalent, "margin": float(margin)}


def direction_verdict(ci_low: float, ci_high: float, expect: str) -> str:
    """``reproduced`` / ``contradicted`` / ``inconclusive`` for a claimed sign of ``a - b``.

    ``expect`` is ``"<"`` (a below b) or ``">"``. Reproduced only when the CI excludes 0 on the
    claimed side, contradicted only when it excludes 0 on the other side; a CI that contains 0
    (or is missing) is inconclusive.
    """
    if expect not in ("<", ">"):
        raise ValueError(f"expect must be '<' or '>', got {expect!r}")
    if not (np.isfinite(ci_low) and np.isfinite(ci_high)):
        return "inconclusive"
    if ci_high < 0:
        return "reproduced" if expect == "<" else "contradicted"
    if ci_low > 0:
        return "reproduced" if expect == ">" else "contradicted"
    return "inconclusive"


def mean_t_ci(values: Sequence[float], level: float = CI_LEVEL) -> tuple[float, float, float, float]:
    """``(mean, ci_low, ci_high, p)`` of a few paired values (e.g. per-fold differences) by the
    one-sample t distribution; p is the two-sided t-test of mean 0. Fewer than 2 values give NaNs."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size < 2:
        return (float(v.mean()) if v.size else float("nan")), float("nan"), float("nan"), float("nan")
    mean, se = float(v.mean()), float(v.std(ddof=1) / np.sqrt(v.size))
    if se == 0:
        return mean, mean, mean, (0.0 if mean != 0 else float("nan"))
    half = float(stats.t.ppf(0.5 + level / 2, v.size - 1)) * se
    return mean, mean - half, mean + half, float(stats.ttest_1samp(v, 0.0).pvalue)


def proportion_ci(successes: int, n: int, level: float = CI_LEVEL) -> tuple[float, float]:
    """Wilson score interval of a proportion (scipy's ``binomtest(...).proportion_ci``)."""
    if n < 1:
        return float("nan"), float("nan")
    ci = stats.binomtest(int(successes), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def fisher_r_ci(r: float, n: int, k: int = 0, level: float = CI_LEVEL) -> tuple[float, float]:
    """CI of a (partial, ``k`` covariates) Pearson r by Fisher's z with SE 1/sqrt(n - 3 - k)."""
    if not np.isfinite(r) or n - 3 - k < 1:
        return float("nan"), float("nan")
    z, se = np.arctanh(np.clip(r, -0.999999, 0.999999)), 1.0 / np.sqrt(n - 3 - k)
    q = float(stats.norm.ppf(0.5 + level / 2))
    return float(np.tanh(z - q * se)), float(np.tanh(z + q * se))


def variance_ratio_test(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """F test of var(a) / var(b) (sample variances) with a two-sided p and a 95% CI of the ratio."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size < 2 or b.size < 2 or np.var(b, ddof=1) == 0:
        return {"ratio": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "p": float("nan")}
    ratio = float(np.var(a, ddof=1) / np.var(b, ddof=1))
    d1, d2 = a.size - 1, b.size - 1
    cdf = stats.f.cdf(ratio, d1, d2)
    lo, hi = stats.f.ppf(0.975, d1, d2), stats.f.ppf(0.025, d1, d2)
    return {"ratio": ratio, "ci_low": float(ratio / lo), "ci_high": float(ratio / hi),
            "p": float(min(1.0, 2 * min(cdf, 1 - cdf)))}


def exact_spearman(x: Sequence[float], y: Sequence[float]) -> dict[str, float]:
    """Spearman rho with an exact one-sided (rho > 0) permutation p over all orderings (n <= 8)."""
    from itertools import permutations

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = x.size
    if n < 3 or n > 8:
        raise ValueError(f"exact_spearman needs 3 <= n <= 8 values, got {n}")
    rx, ry = stats.rankdata(x), stats.rankdata(y)
    rho = float(np.corrcoef(rx, ry)[0, 1])
    null = np.array([np.corrcoef(rx, ry[list(p)])[0, 1] for p in permutations(range(n))])
    return {"rho": rho, "p_greater": float((null >= rho - 1e-12).mean()), "p_less": float((null <= rho + 1e-12).mean()), "n": n}
