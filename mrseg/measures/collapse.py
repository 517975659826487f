"""Posterior-collapse diagnostics: is the latent used, and where does sample diversity come from?

Three numbers per run, on its test fold (every rater a case has, as in evaluation):

- ``kl_nats``: KL(q || p) in nats, summed over latent dimensions (diagonal Gaussians, analytic),
  averaged over test cases. Shared posteriors (``shared*``, ``probunet-mean``) have one
  q(z | x, Y) per case; per-rater models have one q_i(z | x, y_i) per present rater, and a case's
  value is the mean over its present raters' KL(q_i || p).
- ``active_units``: *conditional* active units, the number of latent dimensions d where the
  variance of the posterior's departure from the prior, ``mu_q(x, y)[d] - mu_p(x)[d]``, across
  test cases (and, for per-rater models, across their present raters) exceeds
  :data:`ACTIVE_THRESHOLD` = 0.01. This is Burda et al. (2016)'s criterion applied to the
  departure instead of to ``mu_q`` itself: with a learned prior ``mu_p(x)`` varies across cases,
  so the plain criterion is met even by a posterior that copies the prior. Variance is the
  population variance (``ddof=0``).
- ``ds_over_dyy``: the samples' diversity relative to the raters': mean over test cases of the GED
  term d_SS divided by the mean of d_YY (both with d = 1 - IoU and d(empty, empty) = 0, the
  terms written to ``eval_cases.csv``). A ratio of means, because d_YY is 0 where all raters agree.

A model without a latent (no ``prior``/``posterior`` methods) gets ``latent: false`` and null
values, never 0.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Iterable

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.distributions import Normal, kl_divergence

ACTIVE_THRESHOLD = 0.01
KEYS = ("kl_nats", "active_units", "ds_over_dyy")
DEFINITIONS = {
    "kl_nats": "KL(q || p) in nats summed over latent dims, mean over test cases (per-rater: mean over a "
               "case's present raters' q_i first)",
    "active_units": f"latent dims whose variance of mu_q(x, y) - mu_p(x) across test cases (and raters) "
                    f"exceeds {ACTIVE_THRESHOLD}",
    "ds_over_dyy": "mean d_SS / mean d_YY over test cases (GED terms, d = 1 - IoU, d(empty, empty) = 0)",
}


def has_latent(model: nn.Module) -> bool:
    """Whether ``model`` exposes the latent API (``prior(x)`` and ``posterior(x, masks, present)``)."""
    return callable(getattr(model, "prior", None)) and callable(getattr(model, "posterior", None))


@torch.no_grad()
def posterior_terms(model: nn.Module, image: torch.Tensor, masks: torch.Tensor,
                    present: torch.Tensor | None = None, per_dim: bool = False
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row KL and departures of one batch.

    ``image`` [B,C,H,W], ``masks`` [B,N,H,W] (0/1), ``present`` bool [B,N]. Returns
    ``(kl [B,R], departure [B,R,D], valid bool [B,R])`` as float64 numpy arrays, where R = 1 for a
    shared posterior (one q per case) and R = N for per-rater posteriors (rows of absent raters
    are invalid, their values NaN). ``departure`` is ``mu_q - mu_p``. With ``per_dim`` the KL is
    not summed over the latent axis: ``[B,R,D]``.
    """
    masks = masks.float()
    present = torch.ones(masks.shape[:2], dtype=torch.bool, device=masks.device) if present is None else present.bool()
    masks = masks * present[:, :, None, None]
    p = model.prior(image)
    q = model.posterior(image, masks, present)
    if q.loc.dim() == 3:  # per-rater: [B,N,D], absent raters NaN
        valid = present & torch.isfinite(q.loc).all(-1)
        loc = torch.where(valid[..., None], q.loc, p.loc[:, None].expand_as(q.loc))
        scale = torch.where(valid[..., None], q.scale, p.scale[:, None].expand_as(q.scale))
        prior = Normal(p.loc[:, None].expand_as(loc), p.scale[:, None].expand_as(loc))
        kl = kl_divergence(Normal(loc, scale), prior)
        dep = loc - p.loc[:, None]
    else:
        valid = present.any(1, keepdim=True)
        kl = kl_divergence(q, p)[:, None]
        dep = (q.loc - p.loc)[:, None]
    kl = kl if per_dim else kl.sum(-1)
    nan = torch.tensor(float("nan"), dtype=kl.dtype, device=kl.device)
    kl = torch.where(valid[..., None] if per_dim else valid, kl, nan)
    dep = torch.where(valid[..., None], dep, nan)
    return kl.double().cpu().numpy(), dep.double().cpu().numpy(), valid.cpu().numpy()


def collapse_stats(kl: np.ndarray, departure: np.ndarray, valid: np.ndarray,
                   threshold: float = ACTIVE_THRESHOLD) -> dict[str, Any]:
    """``kl`` [B,R], ``departure`` [B,R,D], ``valid`` [B,R] (from :func:`posterior_terms`, stacked
    over batches) -> ``kl_nats``, ``active_units``, ``latent_dim``, ``departure_var`` [D],
    ``kl_nats_per_case`` [B] and ``n_rows`` (the (case, rater) rows behind the variance)."""
    valid = np.asarray(valid, dtype=bool)
    dim = int(departure.shape[-1])
    per_case = np.array([kl[b, valid[b]].mean() if valid[b].any() else math.nan for b in range(kl.shape[0])])
    rows = departure[valid]                          # [K, D]
    var = rows.var(axis=0, ddof=0) if len(rows) else np.full(dim, math.nan)
    finite = per_case[np.isfinite(per_case)]
    return {"kl_nats": float(finite.mean()) if finite.size else math.nan,
            "active_units": int((var > threshold).sum()) if len(rows) else math.nan,
            "latent_dim": dim, "departure_var": [float(v) for v in var],
            "kl_nats_per_case": per_case, "n_rows": int(len(rows))}


def diversity_ratio(cases: pd.DataFrame) -> float:
    """Mean ``d_ss`` over mean ``d_yy`` of an eval table (NaN when d_YY is 0 everywhere)."""
    d_ss = pd.to_numeric(cases["d_ss"], errors="coerce").mean()
    d_yy = pd.to_numeric(cases["d_yy"], errors="coerce").mean()
    return float(d_ss / d_yy) if np.isfinite(d_yy) and d_yy > 0 else math.nan


def measure_collapse(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                     threshold: float = ACTIVE_THRESHOLD, per_dim: bool = False) -> dict[str, Any]:
    """:func:`collapse_stats` over ``(image, masks, present)`` batches; ``{"latent": False}`` and
    null values for a model without a latent. The model is put in eval mode. With ``per_dim`` the
    result also holds ``kl_dims`` [D]: each dimension's KL, averaged as ``kl_nats`` is (per case over
    its rows, then over cases), so that they sum to ``kl_nats``."""
    if not has_latent(model):
        return {"latent": False, "kl_nats": math.nan, "active_units": math.nan, "latent_dim": 0,
                "departure_var": [], "kl_nats_per_case": np.zeros(0), "n_rows": 0}
    model.eval()
    parts = [posterior_terms(model, *batch, per_dim=per_dim) for batch in batches]
    if not parts:
        raise ValueError("measure_collapse: no test cases")
    kl, dep, valid = (np.concatenate([p[i] for p in parts]) for i in range(3))
    if not per_dim:
        return {"latent": True, **collapse_stats(kl, dep, valid, threshold)}
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # a case without valid rows: NaN, left out
        per_case = np.nanmean(np.where(valid[..., None], kl, np.nan), axis=1)          # [B, D]
        kl_dims = np.nanmean(per_case, axis=0)
    stats = collapse_stats(kl.sum(-1), dep, valid, threshold)
    return {"latent": True, **stats, "kl_dims": [float(v) for v in kl_dims]}


def collapse_summary(model: nn.Module, image: torch.Tensor, masks: torch.Tensor, present: torch.Tensor,
                     cases: pd.DataFrame | None = None, batch_size: int = 16,
                     to_input: Any = None, device: torch.device | str = "cpu") -> dict[str, Any]:
    """The JSON-ready fields written into ``eval_summary.json``: ``kl_nats``, ``active_units``,
    ``latent_dim``, ``departure_var``, ``ds_over_dyy`` (from ``cases``, the eval table, if given),
    ``collapse_threshold`` and ``collapse_definitions``. ``to_input`` maps an image batch to the
    model's input layout (e.g. channels-last); tensors are moved to ``device`` batch by batch."""
    device = torch.device(device)
    prep = to_input or (lambda x: x)

    def batches():
        for s in range(0, image.shape[0], batch_size):
            sl = slice(s, s + batch_size)
            yield prep(image[sl].to(device)), masks[sl].to(device), present[sl].to(device)

    stats = measure_collapse(model, batches())
    out = {k: stats[k] for k in ("latent", "kl_nats", "active_units", "latent_dim", "departure_var")}
    out["ds_over_dyy"] = diversity_ratio(cases) if cases is not None else math.nan
    out["collapse_threshold"] = ACTIVE_THRESHOLD
    out["collapse_definitions"] = DEFINITIONS
    return out


__all__ = ["ACTIVE_THRESHOLD", "DEFINITIONS", "KEYS", "collapse_stats", "collapse_summary", "diversity_ratio",
           "has_latent", "measure_collapse", "posterior_terms"]
