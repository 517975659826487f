"""Why GED numbers from different papers are not comparable: one set of predictions, two
empty-mask conventions, several sample counts M.

:func:`convention_study` scores three simple predictors on the same rater masks:

- ``rater sampler``: each sample is one of the case's rater masks drawn at random (a model that
  has learnt the annotation distribution exactly);
- ``mean mask``: every sample is the majority-vote mask (a model that learnt only the average,
  like a ProbUNet trained on the mean mask);
- ``half empty``: each sample is empty with probability 1/2, else a random rater mask (a model
  that often predicts nothing, as a collapsed sparse model does).

A share of raters is blanked (empty masks), as on LIDC slices that a radiologist did not mark.
GED is computed with :func:`mrseg.metrics.ged_batch` under d(empty, empty) = 0 (the field) and
d(empty, empty) = 1 (D-Persona's code, hence the thesis).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from mrseg.metrics import ged_batch

PREDICTORS = ("rater sampler", "mean mask", "half empty")


def blank_raters(raters: np.ndarray, share: float, seed: int = 0) -> np.ndarray:
    """Copy of ``raters [B,N,H,W]`` with each mask emptied with probability ``share`` (never all
    of a case's masks, so each case keeps one drawn mask)."""
    rng = np.random.default_rng(seed)
    out = np.array(raters, dtype=np.uint8, copy=True)
    blank = rng.random(out.shape[:2]) < share
    blank[blank.all(axis=1), 0] = False
    out[blank] = 0
    return out


def predict(raters: np.ndarray, predictor: str, m: int, seed: int = 0) -> np.ndarray:
    """``[B,M,H,W]`` uint8 samples of one of :data:`PREDICTORS` for ``raters [B,N,H,W]``."""
    rng = np.random.default_rng(seed)
    b, n = raters.shape[:2]
    pick = rng.integers(0, n, size=(b, m))
    drawn = raters[np.arange(b)[:, None], pick]
    if predictor == "rater sampler":
        return drawn
    if predictor == "mean mask":
        vote = (raters.mean(axis=1) >= 0.5).astype(np.uint8)
        return np.repeat(vote[:, None], m, axis=1)
    if predictor == "half empty":
        empty = rng.random((b, m)) < 0.5
        return np.where(empty[:, :, None, None], 0, drawn).astype(np.uint8)
    raise ValueError(f"unknown predictor {predictor!r}; choose from {PREDICTORS}")


def convention_study(raters: np.ndarray, ms: Sequence[int] = (4, 16, 64), blank_share: float = 0.25,
                     seed: int = 0) -> pd.DataFrame:
    """Mean GED over cases per (predictor, M) under both conventions, and each predictor's rank.

    ``raters``: ``[B,N,H,W]`` binary masks. Returns columns ``predictor``, ``M``,
    ``GED d(∅,∅)=0``, ``GED d(∅,∅)=1``, ``difference``, ``rank d=0``, ``rank d=1``
    (1 = best, within one M).
    """
    raters = blank_raters(raters, blank_share, seed)
    records = []
    for m in ms:
        for predictor in PREDICTORS:
            samples = predict(raters, predictor, int(m), seed + int(m))
            g0 = float(np.mean(ged_batch(samples, raters, 0.0)))
            g1 = float(np.mean(ged_batch(samples, raters, 1.0)))
            records.append({"predictor": predictor, "M": int(m), "GED d(∅,∅)=0": g0, "GED d(∅,∅)=1": g1,
                            "difference": g1 - g0})
    frame = pd.DataFrame(records)
    for col, rank in (("GED d(∅,∅)=0", "rank d=0"), ("GED d(∅,∅)=1", "rank d=1")):
        frame[rank] = frame.groupby("M")[col].rank(method="min").astype(int)
    return frame


def empty_share(raters: np.ndarray) -> float:
    """Share of rater masks that are empty in ``raters [B,N,H,W]``."""
    flat = np.asarray(raters).reshape(raters.shape[0], raters.shape[1], -1)
    return float((flat.sum(axis=2) == 0).mean())


def plot_convention_study(table: pd.DataFrame):
    """GED vs M per predictor under both conventions (solid: d(∅,∅)=0, dashed: d(∅,∅)=1)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.8), constrained_layout=True)
    for k, (predictor, g) in enumerate(table.groupby("predictor", sort=False)):
        g = g.sort_values("M")
        ax.plot(g["M"], g["GED d(∅,∅)=0"], "-o", color=f"C{k}", label=f"{predictor}, d(∅,∅)=0")
        ax.plot(g["M"], g["GED d(∅,∅)=1"], "--s", color=f"C{k}", label=f"{predictor}, d(∅,∅)=1")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("samples per case M")
    ax.set_ylabel("GED (mean over cases)")
    ax.set_title("The same predictions, two empty-mask conventions")
    ax.legend(fontsize=7)
    return fig
