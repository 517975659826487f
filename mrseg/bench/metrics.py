"""Metric benchmark: the vectorised metric path against a per-pair reference loop.

``metrics_benchmark(cases=1609, samples=100, reference_cases=20)`` builds random but structured
cases (a nodule-like blob per case: 4 rater masks with boundary wobble, some raters empty; M soft
sample maps around it with jitter, a few empty samples and a few stray false-positive blobs, on a
faint noisy background), all 128x128. It times :func:`mrseg.metrics.evaluate_cases` (GED under
both empty-pair conventions, the GED terms, Dice_match with per-rater Dice, Dice_soft; HM-IoU off)
on every case, and a straightforward per-pair numpy loop (the way public reference code computes
these metrics) on ``reference_cases`` cases, extrapolated to all cases. Both paths see the same
arrays; ``max_abs_diff`` is the largest difference between them over the reference cases and
every compared metric. The reference's D-Persona GED uses D-Persona's own IoU formula
``|a & b| / (|a | b| + 1e-8)``, so ``max_abs_diff`` also bounds that convention's rounding.

Data generation is not timed.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from tqdm import tqdm

from mrseg.config import Metric
from mrseg.metrics import DEFAULT_THRESHOLDS, _torch_threads, evaluate_cases

SIZE = 128
N_RATERS = 4
COMPARED = (Metric.GED, Metric.GED_DPERSONA, Metric.DICE_MATCH, Metric.DICE_SOFT)


def make_cases(n: int, samples: int, seed: int, size: int = SIZE, raters: int = N_RATERS,
               out: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``probs`` float32 ``[n, samples, size, size]`` and ``masks`` uint8 ``[n, raters, size, size]``.

    Each case has a nodule (radius 3..12 px, near the image centre) drawn in a 56x56 window that
    is pasted onto a faint noisy background. Raters draw it tighter or wider with a 3-lobed
    wobble (8% of rater masks empty); samples are soft maps with their own radius and 4-lobed
    wobble (5% empty), and 1% of the samples carry a stray blob anywhere in the image.
    ``out`` (float32 ``[>=n, samples, size, size]``) is reused for ``probs`` when given.
    """
    g = torch.Generator().manual_seed(seed)
    win = min(56, size)
    yy, xx = torch.meshgrid(torch.arange(win, dtype=torch.float32), torch.arange(win, dtype=torch.float32),
                            indexing="ij")
    centre = win / 2 + 0.5 * torch.randn(n, 2, generator=g)
    dy, dx = yy - centre[:, 0, None, None], xx - centre[:, 1, None, None]
    dist = torch.sqrt(dy * dy + dx * dx)[:, None]  # [n, 1, win, win]
    theta = torch.atan2(dy, dx)[:, None]

    def outline(radius: torch.Tensor, k: int) -> torch.Tensor:
        # radius [n, c] -> outline radius per pixel [n, c, win, win], a k-lobed wobble of up to 15%
        amp = 0.15 * torch.rand(radius.shape, generator=g)
        phase = 2 * math.pi * torch.rand(radius.shape, generator=g)
        cos_k, sin_k = torch.cos(k * theta), torch.sin(k * theta)
        wobble = cos_k * (amp * torch.cos(phase))[..., None, None] - sin_k * (amp * torch.sin(phase))[..., None, None]
        return radius[..., None, None] * (1 + wobble)

    origin = (size / 2 - win / 2 + 6 * torch.randn(n, 2, generator=g)).round().clamp(0, size - win).long().tolist()
    radius = 3 + 9 * torch.rand(n, 1, generator=g)
    r_scale = (1 + 0.2 * torch.randn(n, raters, generator=g)).clamp(0.5, 1.6)
    mask_win = (dist <= outline(radius * r_scale, 3)).to(torch.uint8)
    mask_win[torch.rand(n, raters, generator=g) < 0.08] = 0
    s_scale = (1 + 0.25 * torch.randn(n, samples, generator=g)).clamp(0.4, 1.6)
    prob_win = torch.sigmoid((outline(radius * s_scale, 4) - dist) / 1.2)
    prob_win.mul_((torch.rand(n, samples, 1, 1, generator=g) >= 0.05).to(torch.float32))
    # faint background (one noise field per sample slot, shared by the cases of a block)
    noise = 0.04 * torch.rand(1, samples, size, size, generator=g)
    probs = torch.empty(n, samples, size, size) if out is None else out[:n]
    probs.copy_(noise.expand(n, -1, -1, -1))
    masks = torch.zeros(n, raters, size, size, dtype=torch.uint8)
    for i, (r0, c0) in enumerate(origin):
        region = probs[i, :, r0:r0 + win, c0:c0 + win]
        torch.maximum(region, prob_win[i], out=region)
        masks[i, :, r0:r0 + win, c0:c0 + win] = mask_win[i]
    stray = torch.nonzero(torch.rand(n, samples, generator=g) < 0.01)
    for case, sample in stray.tolist():
        cy, cx = (torch.randint(8, size - 8, (2,), generator=g)).tolist()
        probs[case, sample, cy - 3:cy + 3, cx - 3:cx + 3] = 0.9
    return probs, masks


def _pair_overlap(a: np.ndarray, b: np.ndarray) -> tuple[int, int, int, int]:
    inter = int(np.logical_and(a, b).sum())
    union = int(np.logical_or(a, b).sum())
    return inter, union, int(a.sum()), int(b.sum())


def reference_case(probs: np.ndarray, masks: np.ndarray, thresholds=DEFAULT_THRESHOLDS) -> dict[str, float]:
    """Per-pair numpy loop for one case: ``probs [M,H,W]``, ``masks [N,H,W]``."""
    s = probs > 0.5
    y = masks > 0.5

    def ged_terms(a_list, b_list):
        d0, d_dp = [], []
        for a in a_list:
            for b in b_list:
                inter, union, _, _ = _pair_overlap(a, b)
                d0.append(0.0 if union == 0 else 1.0 - inter / union)
                d_dp.append(1.0 - inter / (union + 1e-8))  # D-Persona's formula
        return np.mean(d0), np.mean(d_dp)

    sy, ss, yy = ged_terms(s, y), ged_terms(s, s), ged_terms(y, y)
    dice = np.empty((len(y), len(s)))
    for i, a in enumerate(y):
        for j, b in enumerate(s):
            inter, _, area_a, area_b = _pair_overlap(a, b)
            dice[i, j] = 1.0 if area_a + area_b == 0 else 2 * inter / (area_a + area_b)
    rows, cols = linear_sum_assignment(1 - dice)
    pred_mean = probs.mean(axis=0)
    label_mean = y.mean(axis=0)
    soft = []
    for t in thresholds:
        a, b = pred_mean > t, label_mean > t
        total = a.sum() + b.sum()
        soft.append(1.0 if total == 0 else 2 * np.logical_and(a, b).sum() / total)
    return {
        Metric.GED: 2 * sy[0] - ss[0] - yy[0],
        Metric.GED_DPERSONA: 2 * sy[1] - ss[1] - yy[1],
        Metric.DICE_MATCH: float(dice[rows, cols].mean()),
        Metric.DICE_SOFT: float(np.mean(soft)),
    }


def _gram_backend_seconds(probs: torch.Tensor, masks: torch.Tensor) -> dict[str, float]:
    """Time one batch of full-size Gram products with torch.bmm and numpy.matmul (float32)."""
    x = torch.cat([(probs > 0.5), masks.bool()], dim=1).reshape(probs.shape[0], probs.shape[1] + masks.shape[1], -1)
    x = x.to(torch.float32)
    start = time.perf_counter()
    a = torch.bmm(x, x.transpose(1, 2))
    t_torch = time.perf_counter() - start
    xn = x.numpy()
    start = time.perf_counter()
    b = np.matmul(xn, xn.transpose(0, 2, 1))
    t_numpy = time.perf_counter() - start
    assert np.array_equal(a.numpy(), b)
    return {"gram_torch_seconds": round(t_torch, 4), "gram_numpy_seconds": round(t_numpy, 4),
            "gram_cases": int(probs.shape[0])}


def metrics_benchmark(cases: int = 1609, samples: int = 100, reference_cases: int = 20, seed: int = 0,
                      block: int = 32, progress: bool = True) -> dict[str, Any]:
    """Time the vectorised metrics on ``cases`` cases of ``samples`` samples vs the per-pair loop.

    Returns ``cases, samples, seconds`` (vectorised, all cases), ``reference_seconds``
    (per-pair loop, extrapolated from ``reference_cases`` cases), ``speedup``, ``max_abs_diff``,
    plus ``cpu_seconds`` (process CPU time of the vectorised path, all threads: a shared CPU
    inflates ``seconds`` but not this), ``load_average_1min`` (before, after),
    ``reference_cases_timed``, ``reference_seconds_measured``, ``threads``, ``raters``, ``size``,
    ``gram`` (torch.bmm vs numpy.matmul on one block of full-size masks) and ``matmul``.
    """
    if cases < 1 or samples < 1:
        raise ValueError("cases and samples must be >= 1")
    reference_cases = max(1, min(reference_cases, cases))
    load_before = os.getloadavg()[0]
    seconds = cpu_seconds = 0.0
    frames = []
    gram = None
    ref_probs: list[np.ndarray] = []
    ref_masks: list[np.ndarray] = []
    buffer = torch.empty(min(block, cases), samples, SIZE, SIZE)
    for start in tqdm(range(0, cases, block), desc="metrics benchmark", disable=not progress):
        n = min(block, cases - start)
        with _torch_threads(1):  # generation is not timed; keep it cheap on a shared CPU
            probs, masks = make_cases(n, samples, seed=seed * 1_000_003 + start, out=buffer)
        if start < reference_cases:  # keep the reference cases: the same arrays for both paths
            ref_probs.append(probs[: reference_cases - start].numpy().copy())
            ref_masks.append(masks[: reference_cases - start].numpy().copy())
        if gram is None:
            gram = _gram_backend_seconds(probs[: min(n, 8)], masks[: min(n, 8)])
        t0, c0 = time.perf_counter(), time.process_time()
        frames.append(evaluate_cases(probs, masks, include_hm_iou=False))
        seconds += time.perf_counter() - t0
        cpu_seconds += time.process_time() - c0
    vector = {k: np.concatenate([f[k].to_numpy() for f in frames]) for k in COMPARED}
    ref_probs_all, ref_masks_all = np.concatenate(ref_probs), np.concatenate(ref_masks)
    t0 = time.perf_counter()
    reference = [reference_case(ref_probs_all[i], ref_masks_all[i]) for i in
                 tqdm(range(reference_cases), desc="per-pair reference", disable=not progress)]
    reference_measured = time.perf_counter() - t0
    diff = max(abs(reference[i][k] - vector[k][i]) for i in range(reference_cases) for k in COMPARED)
    reference_seconds = reference_measured * cases / reference_cases
    return {
        "cases": cases,
        "samples": samples,
        "seconds": round(seconds, 3),
        "reference_seconds": round(reference_seconds, 3),
        "speedup": round(reference_seconds / seconds, 1),
        "max_abs_diff": float(diff),
        "cpu_seconds": round(cpu_seconds, 3),
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "reference_cases_timed": reference_cases,
        "reference_seconds_measured": round(reference_measured, 3),
        "raters": N_RATERS,
        "size": SIZE,
        "threads": torch.get_num_threads(),
        "matmul": "torch.bmm float32",
        "gram": gram,
        "compared": list(COMPARED),
    }
