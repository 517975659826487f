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

  D-Persona's GED therefore differs from ``ged(..., empty_pair_distance=1.0)`` by at most
  ``4e-8`` per case; its Dice terms are computed in float32 (relative rounding ~1e-7).

Speed: all pairwise intersections of the ``K = M + N`` masks of a case come from one matrix
product of the flattened masks (``torch.bmm`` in float32, exact for 0/1 up to 2^24 pixels),
batched over cases; there is no Python loop over mask pairs (only the Hungarian steps loop over
cases). Each case is first cropped to the bounding box of its foreground (pixels above the lowest
threshold in any sample, or set in any rater mask), which changes no value; cases with similar
boxes share a chunk. ``python -m mrseg bench metrics`` measures this against a per-pair loop.
"""

from __future__ import annotations

import contextlib
import math
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator, Sequence

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
    with warnings.catch_warnings():  # read-only arrays (memory-mapped caches) are never written to
        warnings.simplefilter("ignore", UserWarning)
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
def _gram(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` float32 0/1 ``[B, K, P]`` -> intersections ``[B, K, K]`` and areas ``[B, K]`` (float64)."""
    if x.shape[-1] >= 2 ** 24:
        raise ValueError("masks with 2^24 or more pixels are not exact in float32")
    inter = torch.bmm(x, x.transpose(1, 2)).to(torch.float64)
    return inter, torch.diagonal(inter, dim1=1, dim2=2)


def pairwise_overlaps(samples: ArrayLike, raters: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Intersections ``[B, K, K]`` and areas ``[B, K]`` (float64) of the ``K = M + N`` masks per case.

    ``samples [B, M, H, W]``, ``raters [B, N, H, W]`` (binarised as in the module docstring);
    masks are ordered samples first. One batched matrix product of the flattened 0/1 masks
    (float32: exact for counts below 2^24).
    """
    s, y = _binary(samples), _binary(raters)
    _check(s, y, batched=True)
    b = s.shape[0]
    return _gram(torch.cat([s.reshape(b, s.shape[1], -1), y.reshape(b, y.shape[1], -1)], dim=1).to(torch.float32))


def _anymap(x: torch.Tensor, level: float) -> torch.Tensor:
    """``[b, H, W]``: where any of the masks/maps of each case exceeds ``level`` (bool: is set)."""
    if x.dtype == torch.bool:
        return x.contiguous().view(torch.uint8).amax(dim=1) > 0
    return x.amax(dim=1) > level


def _boxes(values: torch.Tensor, raters: torch.Tensor, level: float, block: int = 16) -> np.ndarray:
    """Per case the bounding box ``[B, 4]`` (row0, height, col0, width) of every pixel that is
    above ``level`` in any sample map or set in any rater mask (``(0, 1, 0, 1)`` when none is).

    Pixels outside a case's box are background in every binarised mask and below every
    threshold >= ``level`` in the mean map, so cropping to it changes no metric.
    """
    b, (height, width) = values.shape[0], values.shape[-2:]
    out = np.empty((b, 4), dtype=np.int64)
    idx_r, idx_c = torch.arange(height), torch.arange(width)
    for start in range(0, b, block):
        sl = slice(start, min(start + block, b))
        fg = _anymap(values[sl], level) | _anymap(raters[sl], 0.5)
        rows, cols = fg.any(dim=2), fg.any(dim=1)
        has = rows.any(dim=1)
        r0 = torch.where(rows, idx_r, height).amin(dim=1)
        r1 = torch.where(rows, idx_r, -1).amax(dim=1) + 1
        c0 = torch.where(cols, idx_c, width).amin(dim=1)
        c1 = torch.where(cols, idx_c, -1).amax(dim=1) + 1
        out[sl] = torch.stack([torch.where(has, r0, 0), torch.where(has, r1 - r0, 1),
                               torch.where(has, c0, 0), torch.where(has, c1 - c0, 1)], dim=1).numpy()
    return out


def _prepare_chunk(values: torch.Tensor, raters: torch.Tensor, cases: np.ndarray, boxes: np.ndarray,
                   threshold: float, want_masks: bool, want_mean: bool, buffer: torch.Tensor | None = None,
                   ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
    """Cropped inputs of the chunk ``cases``, each in a window of the chunk's largest box size:
    ``x`` float32 ``[b, M+N, hh*ww]`` (binarised samples, then raters), ``mean`` float32
    ``[b, hh, ww]`` (sample mean over M) and the rater window (bool ``[b, N, hh, ww]``).
    ``buffer`` (float32) is reused across chunks to avoid page faults."""
    b, m, n = len(cases), values.shape[1], raters.shape[1]
    height, width = values.shape[-2:]
    hh, ww = int(boxes[cases, 1].max()), int(boxes[cases, 3].max())
    size = b * (m + n) * hh * ww
    if buffer is None or buffer.numel() < size:
        buffer = torch.empty(size, dtype=torch.float32)
    x = buffer[:size].view(b, m + n, hh, ww)
    for i, case in enumerate(cases):
        r0 = min(int(boxes[case, 0]), height - hh)
        c0 = min(int(boxes[case, 2]), width - ww)
        x[i, :m] = values[case, :, r0:r0 + hh, c0:c0 + ww]
        x[i, m:] = raters[case, :, r0:r0 + hh, c0:c0 + ww]
    y = x[:, m:] > 0.5
    mean = x[:, :m].mean(dim=1) if want_mean else None
    if not want_masks:
        return None, mean, y
    if values.dtype != torch.bool:
        x[:, :m].gt_(threshold)  # in place: 1.0 where above the threshold, else 0.0
    return x.reshape(b, m + n, hh * ww), mean, y


def _iou(inter: torch.Tensor, area: torch.Tensor, empty_value: float) -> torch.Tensor:
    union = area[:, :, None] + area[:, None, :] - inter
    return torch.where(union > 0, inter / union.clamp_min(1), torch.full_like(inter, empty_value))


def _dice(inter: torch.Tensor, area: torch.Tensor) -> torch.Tensor:
    total = area[:, :, None] + area[:, None, :]
    return torch.where(total > 0, 2 * inter / total.clamp_min(1), torch.ones_like(inter))


def _ged_terms(inter: torch.Tensor, area: torch.Tensor, m: int, present: torch.Tensor,
               empty_pair_distance: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(d_sy, d_ss, d_yy)`` per case [b], V-statistics over present raters."""
    dist = 1.0 - _iou(inter, area, 1.0 - empty_pair_distance)
    w = present.to(torch.float64)
    n_y = w.sum(dim=1)
    d_ss = dist[:, :m, :m].mean(dim=(1, 2))
    d_sy = (dist[:, :m, m:] * w[:, None, :]).sum(dim=(1, 2)) / (m * n_y)
    d_yy = (dist[:, m:, m:] * w[:, :, None] * w[:, None, :]).sum(dim=(1, 2)) / (n_y * n_y)
    return d_sy.numpy(), d_ss.numpy(), d_yy.numpy()


def _soft_dice(pred_mean: torch.Tensor, raters: torch.Tensor, present: torch.Tensor,
               thresholds: Sequence[float]) -> np.ndarray:
    """Dice_soft per case [b] from the sample-mean map ``[b, h, w]`` and rater masks ``[b, N, h, w]``."""
    b, n = raters.shape[0], raters.shape[1]
    w = present.to(torch.float32)
    t = torch.tensor(list(thresholds), dtype=torch.float32)[None, :, None]
    label_mean = (torch.einsum("bn,bnp->bp", w, raters.reshape(b, n, -1).to(torch.float32))
                  / w.sum(dim=1, keepdim=True))[:, None, :]
    a, c = pred_mean.reshape(b, 1, -1) > t, label_mean > t
    inter = (a & c).sum(dim=-1).to(torch.float64)
    total = (a.sum(dim=-1) + c.sum(dim=-1)).to(torch.float64)
    dice = torch.where(total > 0, 2 * inter / total.clamp_min(1), torch.ones_like(total))
    return dice.mean(dim=1).numpy()


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


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _metric_table(values: ArrayLike, raters: ArrayLike, threshold: float, present: ArrayLike | None,
                  want: set[str], thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
                  chunk_size: int | None = None, empty_pair_distance: float = 0.0,
                  workers: int | None = None) -> dict[str, np.ndarray]:
    """The engine behind every batched metric.

    Every case is cropped to its foreground box; cases of similar box size are grouped into
    chunks; each chunk gets one batched Gram matrix and then the requested metrics. ``want`` picks
    from ``ged, ged_dpersona, dice_match, dice_soft, hm_iou`` (``ged`` also gives ``d_sy, d_ss,
    d_yy``, all with ``empty_pair_distance``; ``ged_dpersona`` always uses 1). Chunks run on
    ``workers`` threads (default: torch's intra-op thread count) with single-threaded torch ops,
    which on a small shared CPU beats intra-op parallelism over small tensors.
    """
    v, y = _tensor(values), _binary(raters)
    _check(v, y, batched=True)
    b, m, n = v.shape[0], v.shape[1], y.shape[1]
    p = _present(present, b, n)
    p_np = p.numpy()
    level = min(threshold, *thresholds) if "dice_soft" in want else threshold
    if chunk_size is None:  # small chunks keep the windows tight and the buffer in cache
        chunk_size = min(16, max(1, int(64e6 // (4 * (m + n) * v.shape[-1] * v.shape[-2]))))
    workers = max(1, workers or torch.get_num_threads())
    needs_pairs = bool(want & {"ged", "ged_dpersona", "dice_match", "hm_iou"})
    local = threading.local()

    def run_chunk(cases: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        if getattr(local, "buffer", None) is None:
            torch.set_num_threads(1)
            local.buffer = torch.empty(0, dtype=torch.float32)
        res: dict[str, np.ndarray] = {}
        pc = p[torch.from_numpy(cases)]
        x, mean, yc = _prepare_chunk(v, y, cases, boxes, threshold, needs_pairs, "dice_soft" in want, local.buffer)
        if x is not None and x.numel() > local.buffer.numel():
            local.buffer = x.reshape(-1)
        if "dice_soft" in want:
            res["dice_soft"] = _soft_dice(mean, yc, pc, thresholds)
        if not needs_pairs:
            return cases, res
        inter, area = _gram(x)
        if "ged" in want:
            res["d_sy"], res["d_ss"], res["d_yy"] = _ged_terms(inter, area, m, pc, empty_pair_distance)
            res["ged"] = 2 * res["d_sy"] - res["d_ss"] - res["d_yy"]
        if "ged_dpersona" in want:
            d_sy, d_ss, d_yy = _ged_terms(inter, area, m, pc, 1.0)
            res["ged_dpersona"] = 2 * d_sy - d_ss - d_yy
        if "dice_match" in want:
            dice_ys = _dice(inter, area)[:, m:, :m].numpy()
            res["dice_experts"] = np.stack([_match_dice(dice_ys[i], p_np[c]) for i, c in enumerate(cases)])
        if "hm_iou" in want:
            iou_sy = _iou(inter, area, 1.0)[:, :m, m:].numpy()
            res["hm_iou"] = np.array([_balanced_iou(iou_sy[i][:, p_np[c]]) for i, c in enumerate(cases)])
        return cases, res

    out: dict[str, np.ndarray] = {}
    with _torch_threads(1):
        boxes = _boxes(v, y, level)
        # cases with similar foreground extent share a chunk, so one stray blob widens few windows
        order = np.argsort(boxes[:, 1] * boxes[:, 3], kind="stable")
        chunks = [order[i:i + chunk_size] for i in range(0, b, chunk_size)]
        if workers == 1 or len(chunks) == 1:
            results = map(run_chunk, chunks)
            local.buffer = torch.empty(0, dtype=torch.float32)
        else:
            pool = ThreadPoolExecutor(max_workers=min(workers, len(chunks)))
            results = pool.map(run_chunk, chunks)
        for cases, res in results:
            for key, value in res.items():
                if key not in out:
                    out[key] = np.empty((b, *value.shape[1:]))
                out[key][cases] = value
        if workers > 1 and len(chunks) > 1:
            pool.shutdown()
    if "dice_experts" in out:
        with np.errstate(invalid="ignore"):
            out["dice_match"] = np.nanmean(out["dice_experts"], axis=1)
    return out


# ----------------------------------------------------------------------------- batched metrics
def ged_batch(samples: ArrayLike, raters: ArrayLike, empty_pair_distance: float = 0.0, *,
              present: ArrayLike | None = None) -> np.ndarray:
    """GED per case ``[B]`` for ``samples [B, M, H, W]`` and ``raters [B, N, H, W]``."""
    terms = diversity_batch(samples, raters, empty_pair_distance, present=present)
    return 2 * terms["d_sy"] - terms["d_ss"] - terms["d_yy"]


def diversity_batch(samples: ArrayLike, raters: ArrayLike, empty_pair_distance: float = 0.0, *,
                    present: ArrayLike | None = None) -> dict[str, np.ndarray]:
    """The three GED terms per case: ``{"d_sy", "d_ss", "d_yy"}``, each ``[B]``."""
    out = _metric_table(_binary(samples), raters, 0.5, present, {"ged"}, empty_pair_distance=empty_pair_distance)
    return {k: out[k] for k in ("d_sy", "d_ss", "d_yy")}


def dice_match_batch(samples: ArrayLike, raters: ArrayLike, *,
                     present: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(mean [B], per_rater [B, N])`` matched Dice per case (NaN for absent/unmatched raters)."""
    out = _metric_table(_binary(samples), raters, 0.5, present, {"dice_match"})
    return out["dice_match"], out["dice_experts"]


def dice_soft_batch(probs: ArrayLike, raters: ArrayLike, thresholds: Sequence[float] = DEFAULT_THRESHOLDS, *,
                    present: ArrayLike | None = None) -> np.ndarray:
    """Dice_soft per case ``[B]``: mean over ``thresholds`` of Dice(mean probs > t, mean raters > t)."""
    return _metric_table(probs, raters, 0.5, present, {"dice_soft"}, thresholds)["dice_soft"]


def hm_iou_batch(samples: ArrayLike, raters: ArrayLike, *, present: ArrayLike | None = None) -> np.ndarray:
    """Balanced Hungarian-matched IoU per case ``[B]`` (see module docstring)."""
    return _metric_table(_binary(samples), raters, 0.5, present, {"hm_iou"})["hm_iou"]


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
                   thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
                   include_hm_iou: bool = True) -> pd.DataFrame:
    """One row per case with columns ``M, ged, ged_dpersona, dice_match, dice_expert_0..N-1,
    dice_soft, hm_iou, d_sy, d_ss, d_yy``.

    ``probs [B, M, H, W]`` float sample probabilities (samples are ``probs > threshold``; bool
    samples are used as they are), ``raters [B, N, H, W]``. ``ged`` and ``d_*`` use
    ``empty_pair_distance = 0``; ``ged_dpersona`` uses 1 (D-Persona's code, the thesis's numbers).
    Dice_soft averages ``probs`` over M before thresholding. Intersections are computed once per
    chunk of cases. ``include_hm_iou=False`` leaves ``hm_iou`` NaN (its L x L matching dominates
    the cost when lcm(M, N) is large).
    """
    want = {"ged", "ged_dpersona", "dice_match", "dice_soft"} | ({"hm_iou"} if include_hm_iou else set())
    out = _metric_table(probs, raters, threshold, present, want, thresholds)
    b, n = out["dice_experts"].shape
    m = _tensor(probs).shape[1]
    columns: dict[str, np.ndarray] = {
        "M": np.full(b, m, dtype=np.int64),
        "ged": out["ged"],
        "ged_dpersona": out["ged_dpersona"],
        "dice_match": out["dice_match"],
        **{f"dice_expert_{k}": out["dice_experts"][:, k] for k in range(n)},
        "dice_soft": out["dice_soft"],
        "hm_iou": out.get("hm_iou", np.full(b, np.nan)),
        "d_sy": out["d_sy"],
        "d_ss": out["d_ss"],
        "d_yy": out["d_yy"],
    }
    return pd.DataFrame(columns)


def case_metrics(probs: ArrayLike, raters: ArrayLike, threshold: float = 0.5, *,
                 present: ArrayLike | None = None) -> dict[str, float]:
    """All metrics of one case as a dict (the :func:`evaluate_cases` columns)."""
    frame = evaluate_cases(_one(probs), _one(raters), threshold, present=_one_present(present))
    row = frame.iloc[0].to_dict()
    row["M"] = int(row["M"])
    return row
