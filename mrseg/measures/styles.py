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


__all__ = ["N_PER_STYLE", "RECOVERY_DICE", "case_metrics", "controlled_metrics", "dice_matrix", "ged_to_truth",
           "style_recovery", "typical_masks"]
