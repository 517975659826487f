"""Metrics that need the raters' *true* mask distribution (``synthetic-raters<N>`` datasets).

Per test case, with the model's M binarised samples and :func:`mrseg.data.controlled.true_draws`
(K = :data:`N_PER_STYLE` draws of each of the N styles):

- ``ged_true``: GED (V-statistic, d = 1 - IoU, d(empty, empty) = 0, as ``ged``) between the
  samples and the N x K draws, i.e. to the equal mixture of the styles, not to the N masks the
  case happens to carry.
- ``best_dice_<style>``: the best Dice, over the M samples, to the style's *typical* mask (the
  pixelwise majority of its K draws); ``recovered_<style>`` = 1 when it is at least
  :data:`RECOVERY_DICE` (0.8); ``style_recovery``: the share of the N styles recovered.
  Dice of two empty masks is 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from mrseg.data.controlled import n_raters_of, styles_for, true_draws
from mrseg.data.torch_data import resize_masks
from mrseg.diagnostics.run_level import better_verdict, patient_interval, run_level_difference
from mrseg.metrics import ged

RECOVERY_DICE = 0.8
N_PER_STYLE = 32


def dice_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dice of every mask of ``a [P,H,W]`` with every mask of ``b [Q,H,W]`` -> ``[P,Q]``; 1 for
    two empty masks."""
    x = np.asarray(a, dtype=np.float32).reshape(len(a), -1)
    y = np.asarray(b, dtype=np.float32).reshape(len(b), -1)
    inter = x @ y.T
    total = x.sum(1)[:, None] + y.sum(1)[None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 2 * inter / np.maximum(total, 1e-12), 1.0)


def typical_masks(draws: np.ndarray) -> np.ndarray:
    """Pixelwise majority (>= half) of each style's draws: ``[N,K,H,W]`` -> uint8 ``[N,H,W]``."""
    return (np.asarray(draws, dtype=np.float32).mean(1) >= 0.5).astype(np.uint8)


def style_recovery(samples: np.ndarray, draws: np.ndarray, threshold: float = RECOVERY_DICE
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``(best_dice [N], recovered bool [N])`` of samples ``[M,H,W]`` against draws ``[N,K,H,W]``."""
    best = dice_matrix(typical_masks(draws), (np.asarray(samples) > 0.5)).max(axis=1)
    return best, best >= threshold


def ged_to_truth(samples: np.ndarray, draws: np.ndarray) -> float:
    """GED of samples ``[M,H,W]`` to the mixture of the styles' draws ``[N,K,H,W]``."""
    draws = np.asarray(draws)
    return ged(np.asarray(samples) > 0.5, draws.reshape(-1, *draws.shape[2:]), 0.0)


def case_metrics(samples: np.ndarray, draws: np.ndarray, styles: tuple[str, ...],
                 threshold: float = RECOVERY_DICE) -> dict[str, float]:
    """One case's row: ``ged_true``, ``style_recovery``, ``recovered_<style>``, ``best_dice_<style>``."""
    best, ok = style_recovery(samples, draws, threshold)
    row: dict[str, float] = {"ged_true": ged_to_truth(samples, draws), "style_recovery": float(ok.mean())}
    row.update({f"recovered_{s}": float(v) for s, v in zip(styles, ok)})
    row.update({f"best_dice_{s}": float(v) for s, v in zip(styles, best)})
    return row


def controlled_metrics(dataset: str, dataset_options: dict[str, Any], rows: np.ndarray, samples: np.ndarray,
                       n_per_style: int = N_PER_STYLE, draw_seed: int = 0) -> pd.DataFrame | None:
    """Per-case table for ``samples [B,M,S,S]`` (binarised or probabilities) of dataset rows
    ``rows [B]``; None when ``dataset`` is not a controlled-raters dataset. The draws are made at
    the dataset's image size and resized to S as training resizes masks."""
    n = n_raters_of(dataset)
    if n is None:
        return None

    size = int(dataset_options.get("image_size", 32))
    seed = int(dataset_options.get("seed", 1337))
    styles = styles_for(n)
    out_size = int(samples.shape[-1])
    table = []
    for b, row in enumerate(np.asarray(rows)):
        draws = true_draws(int(row), n, n_per_style, size, seed, draw_seed)
        if out_size != size:
            draws = resize_masks(torch.from_numpy(draws), out_size).numpy().astype(np.uint8)
        table.append(case_metrics(samples[b], draws, styles))
    return pd.DataFrame(table)


# metric -> whether lower is better, for the controlled study's paired comparison
COMPARED = {"ged_true": True, "ged": True, "style_recovery": False}


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


__all__ = ["COMPARED", "N_PER_STYLE", "RECOVERY_DICE", "case_metrics", "controlled_comparison", "controlled_metrics",
           "dice_matrix", "ged_to_truth", "recovery_by_style", "style_recovery", "typical_masks"]
