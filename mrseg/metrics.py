"""Multi-rater segmentation metrics: GED, Dice_match, Dice_soft, per-expert Dice, HM-IoU.

Shapes and conventions (every function accepts numpy arrays or torch tensors):

- ``samples``: ``[M, H, W]`` model samples (bool, 0/1 or probabilities), binarised as
  ``x > 0.5`` unless boolean; batched variants take ``[B, M, H, W]``.
- ``probs``: ``[M, H, W]`` float sample probabilities (used unbinarised by :func:`dice_soft`).
- ``raters``: ``[N, H, W]`` rater masks (binarised like samples); batched ``[B, N, H, W]``.
- ``present`` (optional, keyword): bool ``[N]`` (batched ``[B, N]``); absent raters are left out
  of every term and get NaN in per-rater outputs. Default: all present.

Distances and overlaps:

- IoU distance ``d(a, b) = 1 - |a & b| / |a | b|``; for two empty masks ``d = empty_pair_distance``:
  ``0.0`` is the field's convention (PHiSeg, SSN, CAR, MoSE, ...), ``1.0`` reproduces D-Persona's
  code (Wu et al., CVPR 2024), whose IoU is ``|a & b| / (|a | b| + 1e-8)``: 0 for two empty
  masks. For non-empty pairs that ``1e-8`` changes the IoU by ``IoU * 1e-8 / (|a|b| + 1e-8)``,
  at most ``1e-8``, far below ``1e-6``; we compute the exact ratio.
- Dice ``2|a & b| / (|a| + |b|)``, 1 for two empty masks (D-Persona's ``+1e-8`` smoothing gives
  the same value up to ``1e-8``).
- GED (Kohl et al., NeurIPS 2018, "A Probabilistic U-Net ..."), the V-statistic used in practice:
  ``GED = 2 E[d(S, Y)] - E[d(S, S')] - E[d(Y, Y')]`` with all pairs, *self-pairs included*
  (``d(S_i, S_i) = 0`` unless the mask is empty and ``empty_pair_distance = 1``). The self-pair
  terms make GED depend on M: always report M.
- Dice_match (D-Persona): Hungarian matching (``scipy.optimize.linear_sum_assignment`` on
  ``1 - Dice``) of the N raters to N distinct samples out of M ("best N of M"); mean over raters.
  If M < N only M raters can be matched; the others get NaN and the mean is over matched raters.
- Dice_soft (D-Persona): mean over thresholds t of Dice(mean_M(probs) > t, mean_N(raters) > t).
- HM-IoU (Hungarian-matched IoU, balanced): samples and raters are each replicated to
  ``L = lcm(M, N)`` items, matched one-to-one by Hungarian on ``1 - IoU`` (IoU of two empty
  masks = 1) and the mean IoU of the L matched pairs is returned.

Speed: all pairwise intersections of the ``K = M + N`` masks of a case come from one matrix
product of the flattened masks (float32, exact for 0/1 up to 2^24 pixels), batched over cases;
there is no Python loop over mask pairs (only the Hungarian steps loop over cases).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from scipy.optimize import linear_sum_assignment

ArrayLike = Any  # numpy array or torch tensor
DEFAULT_THRESHOLDS: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7, 0.9)


# ----------------------------------------------------------------------------- input handling
def _tensor(x: ArrayLike) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu()
    return torch.from_numpy(np.ascontiguousarray(np.asarray(x)))


def _binary(x: ArrayLike, threshold: float = 0.5) -> torch.Tensor:
    t = _tensor(x)
    return t if t.dtype == torch.bool else t > threshold


def _present(present: ArrayLike | None, batch: int, n: int) -> torch.Tensor:
    if present is None:
        return torch.ones(batch, n, dtype=torch.bool)
    p = _tensor(present).to(torch.bool).reshape(batch, n)
    if not bool(p.any(dim=1).all()):
        raise ValueError("every case needs at least one present rater")
    return p


def _check(samples: torch.Tensor, raters: torch.Tensor, batched: bool) -> None:
    want = 4 if batched else 3
    if samples.ndim != want or raters.ndim != want:
        shape = "[B, M, H, W] and [B, N, H, W]" if batched else "[M, H, W] and [N, H, W]"
        raise ValueError(f"expected samples and raters of shape {shape}, got {tuple(samples.shape)} and "
                         f"{tuple(raters.shape)}")
    if samples.shape[-2:] != raters.shape[-2:] or (batched and samples.shape[0] != raters.shape[0]):
        raise ValueError(f"samples {tuple(samples.shape)} and raters {tuple(raters.shape)} do not match")
    if samples.shape[-3] < 1 or raters.shape[-3] < 1:
        raise ValueError("need at least one sample and one rater")


# ----------------------------------------------------------------------------- pairwise core
def pairwise_overlaps(samples: torch.Tensor, raters: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Intersections ``[B, K, K]`` and areas ``[B, K]`` (float64) of the ``K = M + N`` masks per case.

    ``samples`` bool ``[B, M, H, W]``, ``raters`` bool ``[B, N, H, W]``; masks are ordered samples
    first. One batched matrix product of the flattened 0/1 masks (float32, exact below 2^24 pixels).
    """
    b = samples.shape[0]
    x = torch.cat([samples.reshape(b, samples.shape[1], -1), raters.reshape(b, raters.shape[1], -1)], dim=1)
    if x.shape[-1] >= 2 ** 24:
        raise ValueError("masks with 2^24 or more pixels are not exact in float32")
    x = x.to(torch.float32)
    inter = torch.bmm(x, x.transpose(1, 2)).to(torch.float64)
    return inter, torch.diagonal(inter, dim1=1, dim2=2)


def _iou(inter: torch.Tensor, area: torch.Tensor, empty_value: float) -> torch.Tensor:
    union = area[:, :, None] + area[:, None, :] - inter
    return torch.where(union > 0, inter / union.clamp_min(1), torch.full_like(inter, empty_value))


def _dice(inter: torch.Tensor, area: torch.Tensor) -> torch.Tensor:
    total = area[:, :, None] + area[:, None, :]
    return torch.where(total > 0, 2 * inter / total.clamp_min(1), torch.ones_like(inter))


def _ged_terms(inter: torch.Tensor, area: torch.Tensor, m: int, present: torch.Tensor,
               empty_pair_distance: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(d_sy, d_ss, d_yy)`` per case [B], V-statistics over present raters."""
    dist = 1.0 - _iou(inter, area, 1.0 - empty_pair_distance)
    w = present.to(torch.float64)
    n_y = w.sum(dim=1)
    d_ss = dist[:, :m, :m].mean(dim=(1, 2))
    d_sy = (dist[:, :m, m:] * w[:, None, :]).sum(dim=(1, 2)) / (m * n_y)
    d_yy = (dist[:, m:, m:] * w[:, :, None] * w[:, None, :]).sum(dim=(1, 2)) / (n_y * n_y)
    return d_sy, d_ss, d_yy


def _match_dice(dice_ys: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Per-rater matched Dice [N] for one case from its rater x sample Dice matrix [N, M]."""
    out = np.full(dice_ys.shape[0], np.nan)
    rows = np.flatnonzero(present)
    r, c = linear_sum_assignment(1.0 - dice_ys[rows])
    out[rows[r]] = dice_ys[rows[r], c]
    return out


def _balanced_iou(iou_sy: np.ndarray) -> float:
    """Mean IoU of a Hungarian matching of samples and raters replicated to ``lcm(M, N)`` each."""
    m, n = iou_sy.shape
    reps = math.lcm(m, n)
    cost = 1.0 - np.tile(iou_sy, (reps // m, reps // n))
    r, c = linear_sum_assignment(cost)
    return float(1.0 - cost[r, c].mean())


def _chunks(b: int, chunk: int) -> list[slice]:
    return [slice(i, min(i + chunk, b)) for i in range(0, b, chunk)]


def _chunk_size(m: int, n: int, pixels: int, budget_bytes: float = 256e6) -> int:
    return max(1, int(budget_bytes // (4 * (m + n) * pixels)))


# ----------------------------------------------------------------------------- batched metrics
def ged_batch(samples: ArrayLike, raters: ArrayLike, empty_pair_distance: float = 0.0, *,
              present: ArrayLike | None = None) -> np.ndarray:
    """GED per case ``[B]`` for ``samples [B, M, H, W]`` and ``raters [B, N, H, W]``."""
    terms = diversity_batch(samples, raters, empty_pair_distance, present=present)
    return 2 * terms["d_sy"] - terms["d_ss"] - terms["d_yy"]


def diversity_batch(samples: ArrayLike, raters: ArrayLike, empty_pair_distance: float = 0.0, *,
                    present: ArrayLike | None = None) -> dict[str, np.ndarray]:
    """The three GED terms per case: ``{"d_sy", "d_ss", "d_yy"}``, each ``[B]``."""
    s, y = _binary(samples), _binary(raters)
    _check(s, y, batched=True)
    b, m, n = s.shape[0], s.shape[1], y.shape[1]
    p = _present(present, b, n)
    out: dict[str, list[np.ndarray]] = {"d_sy": [], "d_ss": [], "d_yy": []}
    for sl in _chunks(b, _chunk_size(m, n, s.shape[-1] * s.shape[-2])):
        inter, area = pairwise_overlaps(s[sl], y[sl])
        for key, value in zip(out, _ged_terms(inter, area, m, p[sl], empty_pair_distance)):
            out[key].append(value.numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def dice_match_batch(samples: ArrayLike, raters: ArrayLike, *,
                     present: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(mean [B], per_rater [B, N])`` matched Dice per case (NaN for absent/unmatched raters)."""
    s, y = _binary(samples), _binary(raters)
    _check(s, y, batched=True)
    b, m, n = s.shape[0], s.shape[1], y.shape[1]
    p = _present(present, b, n).numpy()
    per_rater = np.empty((b, n))
    for sl in _chunks(b, _chunk_size(m, n, s.shape[-1] * s.shape[-2])):
        inter, area = pairwise_overlaps(s[sl], y[sl])
        dice_ys = _dice(inter, area)[:, m:, :m].numpy()
        for i, case in enumerate(range(sl.start, sl.stop)):
            per_rater[case] = _match_dice(dice_ys[i], p[case])
    return np.nanmean(per_rater, axis=1), per_rater


def dice_soft_batch(probs: ArrayLike, raters: ArrayLike, thresholds: Sequence[float] = DEFAULT_THRESHOLDS, *,
                    present: ArrayLike | None = None) -> np.ndarray:
    """Dice_soft per case ``[B]``: mean over ``thresholds`` of Dice(mean probs > t, mean raters > t)."""
    pr, y = _tensor(probs), _binary(raters)
    _check(pr, y, batched=True)
    b, n = y.shape[0], y.shape[1]
    w = _present(present, b, n).to(torch.float32)
    t = torch.tensor(list(thresholds), dtype=torch.float32)[None, :, None]
    out = []
    for sl in _chunks(b, _chunk_size(pr.shape[1], n, pr.shape[-1] * pr.shape[-2])):
        pred_mean = pr[sl].to(torch.float32).mean(dim=1).reshape(sl.stop - sl.start, 1, -1)
        ws = w[sl]
        label_mean = (torch.einsum("bn,bnp->bp", ws, y[sl].reshape(ws.shape[0], n, -1).to(torch.float32))
                      / ws.sum(dim=1, keepdim=True))[:, None, :]
        a, c = pred_mean > t, label_mean > t
        inter = (a & c).sum(dim=-1).to(torch.float64)
        total = (a.sum(dim=-1) + c.sum(dim=-1)).to(torch.float64)
        dice = torch.where(total > 0, 2 * inter / total.clamp_min(1), torch.ones_like(total))
        out.append(dice.mean(dim=1).numpy())
    return np.concatenate(out)


def hm_iou_batch(samples: ArrayLike, raters: ArrayLike, *, present: ArrayLike | None = None) -> np.ndarray:
    """Balanced Hungarian-matched IoU per case ``[B]`` (see module docstring)."""
    s, y = _binary(samples), _binary(raters)
    _check(s, y, batched=True)
    b, m, n = s.shape[0], s.shape[1], y.shape[1]
    p = _present(present, b, n).numpy()
    out = np.empty(b)
    for sl in _chunks(b, _chunk_size(m, n, s.shape[-1] * s.shape[-2])):
        inter, area = pairwise_overlaps(s[sl], y[sl])
        iou_sy = _iou(inter, area, 1.0)[:, :m, m:].numpy()
        for i, case in enumerate(range(sl.start, sl.stop)):
            out[case] = _balanced_iou(iou_sy[i][:, p[case]])
    return out


# ----------------------------------------------------------------------------- one case
def _one(x: ArrayLike) -> torch.Tensor:
    return _tensor(x)[None]


def _one_present(present: ArrayLike | None) -> ArrayLike | None:
    return None if present is None else _tensor(present)[None]


def ged(samples: ArrayLike, raters: ArrayLike, empty_pair_distance: float = 0.0, *,
        present: ArrayLike | None = None) -> float:
    """Generalised energy distance (V-statistic, d = 1 - IoU) of ``samples [M,H,W]`` vs ``raters [N,H,W]``.

    ``empty_pair_distance``: d(empty, empty); 0.0 (field convention, default) or 1.0 (D-Persona).
    """
    return float(ged_batch(_one(samples), _one(raters), empty_pair_distance, present=_one_present(present))[0])


def diversity(samples: ArrayLike, raters: ArrayLike, empty_pair_distance: float = 0.0, *,
              present: ArrayLike | None = None) -> dict[str, float]:
    """The GED terms ``{"d_sy": E d(S,Y), "d_ss": E d(S,S'), "d_yy": E d(Y,Y')}`` (self-pairs included)."""
    terms = diversity_batch(_one(samples), _one(raters), empty_pair_distance, present=_one_present(present))
    return {k: float(v[0]) for k, v in terms.items()}


def dice_match(samples: ArrayLike, raters: ArrayLike, *,
               present: ArrayLike | None = None) -> tuple[float, np.ndarray]:
    """``(mean, per_rater [N])``: raters matched to distinct samples by Hungarian on 1 - Dice."""
    mean, per_rater = dice_match_batch(_one(samples), _one(raters), present=_one_present(present))
    return float(mean[0]), per_rater[0]


def per_expert_dice(samples: ArrayLike, raters: ArrayLike, *, present: ArrayLike | None = None) -> np.ndarray:
    """Per-rater Dice ``[N]`` under the Dice_match assignment (NaN for absent raters)."""
    return dice_match(samples, raters, present=present)[1]


def dice_soft(probs: ArrayLike, raters: ArrayLike, thresholds: Sequence[float] = DEFAULT_THRESHOLDS, *,
              present: ArrayLike | None = None) -> float:
    """Dice_soft of sample probabilities ``probs [M,H,W]`` vs ``raters [N,H,W]`` (strict ``> t``)."""
    return float(dice_soft_batch(_one(probs), _one(raters), thresholds, present=_one_present(present))[0])


def hm_iou(samples: ArrayLike, raters: ArrayLike, *, present: ArrayLike | None = None) -> float:
    """Balanced Hungarian-matched IoU: both sides replicated to lcm(M, N), mean matched IoU."""
    return float(hm_iou_batch(_one(samples), _one(raters), present=_one_present(present))[0])


# ----------------------------------------------------------------------------- evaluation tables
def evaluate_cases(probs: ArrayLike, raters: ArrayLike, threshold: float = 0.5, *,
                   present: ArrayLike | None = None,
                   thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> pd.DataFrame:
    """One row per case with columns ``M, ged, ged_dpersona, dice_match, dice_expert_0..N-1,
    dice_soft, hm_iou, d_sy, d_ss, d_yy``.

    ``probs [B, M, H, W]`` float sample probabilities (samples are ``probs > threshold``),
    ``raters [B, N, H, W]``. ``ged`` and ``d_*`` use ``empty_pair_distance = 0``; ``ged_dpersona``
    uses 1 (D-Persona's code, the thesis's numbers). Intersections are computed once per chunk.
    """
    pr, y = _tensor(probs), _binary(raters)
    _check(pr, y, batched=True)
    b, m, n = pr.shape[0], pr.shape[1], y.shape[1]
    p = _present(present, b, n)
    p_np = p.numpy()
    rows: dict[str, np.ndarray] = {
        "M": np.full(b, m, dtype=np.int64),
        **{k: np.empty(b) for k in ("ged", "ged_dpersona", "dice_match")},
        **{f"dice_expert_{k}": np.empty(b) for k in range(n)},
        **{k: np.empty(b) for k in ("dice_soft", "hm_iou", "d_sy", "d_ss", "d_yy")},
    }
    for sl in _chunks(b, _chunk_size(m, n, pr.shape[-1] * pr.shape[-2])):
        s = pr[sl] if pr.dtype == torch.bool else pr[sl] > threshold
        inter, area = pairwise_overlaps(s, y[sl])
        d_sy, d_ss, d_yy = (t.numpy() for t in _ged_terms(inter, area, m, p[sl], 0.0))
        d1 = [t.numpy() for t in _ged_terms(inter, area, m, p[sl], 1.0)]
        rows["ged"][sl] = 2 * d_sy - d_ss - d_yy
        rows["ged_dpersona"][sl] = 2 * d1[0] - d1[1] - d1[2]
        rows["d_sy"][sl], rows["d_ss"][sl], rows["d_yy"][sl] = d_sy, d_ss, d_yy
        dice_ys = _dice(inter, area)[:, m:, :m].numpy()
        iou_sy = _iou(inter, area, 1.0)[:, :m, m:].numpy()
        for i, case in enumerate(range(sl.start, sl.stop)):
            per = _match_dice(dice_ys[i], p_np[case])
            rows["dice_match"][case] = np.nanmean(per)
            for k in range(n):
                rows[f"dice_expert_{k}"][case] = per[k]
            rows["hm_iou"][case] = _balanced_iou(iou_sy[i][:, p_np[case]])
        soft_probs = pr[sl].to(torch.float32) if pr.dtype == torch.bool else pr[sl]
        rows["dice_soft"][sl] = dice_soft_batch(soft_probs, y[sl], thresholds, present=p[sl])
    return pd.DataFrame(rows)


def case_metrics(probs: ArrayLike, raters: ArrayLike, threshold: float = 0.5, *,
                 present: ArrayLike | None = None) -> dict[str, float]:
    """All metrics of one case as a dict (the :func:`evaluate_cases` columns)."""
    frame = evaluate_cases(_one(probs), _one(raters), threshold, present=_one_present(present))
    row = frame.iloc[0].to_dict()
    row["M"] = int(row["M"])
    return row
