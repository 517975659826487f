"""Gradient alignment of per-rater reconstruction terms (thesis 3.6, Table 4.8, Appendix III).

Two measures, both per test case:

**latent cosine** (the thesis's index; shared-posterior models only). With the shared posterior
mean ``z = mu_q(x, Y)`` given all raters' masks, ``g_i = d log p(y_i | z, x) / dz`` for each rater,
where ``log p(y_i | z, x)`` is the Bernoulli log-likelihood of rater i's binary mask under the
decoder's logits (``-BCEWithLogits`` summed over pixels; the thesis writes ``log p``, although the
D-Persona training loss is a Dice loss, a generalised Dice pooled over the batch; per case,
``likelihood="soft_dice"`` uses the per-image ``-(1 - soft Dice)`` as its stand-in).
The case value is the mean cosine over the ``N(N-1)/2`` rater pairs (6 for N = 4).
For per-rater models there is no shared ``z``; the value is undefined: NaN, ``defined: false``,
displayed as "undefined" (the thesis printed 0.000).

**decoder cosine** (well defined for every model). Each rater's ``z_i`` is the posterior mean
that trains on that rater: the shared posterior mean (same for all raters) for shared models,
rater i's own posterior mean for per-rater models. ``h_i = d log p(y_i | z_i, x) / d theta`` where
``theta`` are the parameters ``model.decode`` uses with the backbone features held fixed (the FComb
decoder), or with ``scope="decoder+backbone"`` also the backbone's. The case value is the mean
pairwise cosine of the ``h_i``: how far the raters' training signals agree where both models meet.

**prior-mean cosine** (defined for every model, per-rater included). ``z = mu_p(x)``, the prior
mean, which every model has; ``g_i = d log p(y_i | z, x) / dz`` through the shared decoder with the
Bernoulli log-likelihood, over the case's present raters only. Because the Bernoulli score with
respect to the logits is the residual ``y_i - s`` (``s`` = sigmoid of the logits), ``g_i = J^T
(y_i - s)`` with ``J = d logits / dz``, and it splits exactly into a **common** part
``c = J^T (ybar - s)`` (mean of the present raters' masks minus the prediction; the same for
every rater) and a **disagreement** part ``d_i = J^T (y_i - ybar)`` (which sums to zero over the
raters). Hence ``mean_i |g_i|^2 = |c|^2 + mean_i |d_i|^2``; reported separately: ``|c|``, the
root-mean-square ``|d_i|``, the disagreement share ``mean_i |d_i|^2 / mean_i |g_i|^2`` and the
mean pairwise cosine of the ``d_i``. The index is high where the common residual dominates.

**The zero-filled ("as trained") reading has a floor.** With ``k = N - np`` absent raters
zero-filled, their targets are all the empty mask, so their gradients are identical and the
``k(k-1)/2`` pairs among them have cosine 1. For unit vectors the sum over pairs is
``(|sum_i u_i|^2 - N) / 2``, so the index is at least ``(max(0, k - np)^2 - N) / (N(N-1))``
instead of the general ``-1/(N-1)``, and it equals ``C(k,2)/C(N,2)`` when the present raters'
gradients are orthogonal to the empty-mask gradient and to each other
(:func:`zero_fill_floor`). At N = 4, np = 1: the index is exactly ``(1 + c)/2`` where ``c`` is the
cosine between the present rater's gradient and the empty-mask gradient, so it is >= 0 (not >= 0.5)
by construction, 0.5 when they are orthogonal, and above 0.5 exactly when ``c > 0``. From np = 2 on
(N = 4) the floor is the general -1/3.

**Gradient isolation** (:func:`gradient_isolation`, ``gradient_isolation`` in the summary): whether
one rater's reconstruction term can reach what encodes another rater. ``none`` (shared posteriors,
``shared-wide`` included: one z from all raters' masks); ``samples`` (``per-rater-tied``: each rater
has its own posterior sample z_i, so rater i's term never reaches z_j, but the encoder's parameters
are shared, so the raters' gradients meet in them); ``parameters+samples`` (``per-rater``: separate
samples and separate encoders, rater i's term reaches encoder i only).

Case selection: ``n_cases`` test cases drawn without replacement with ``numpy.random.default_rng(seed)``
(all when the fold is smaller), in case order. By default every rater is present at measurement
(test-time masks, as in the thesis's evaluation); ``n_present`` < N zero-fills a seeded random
subset of raters the way sparse training does, and their empty-mask gradients are included.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from mrseg.config import RunConfig, posterior_kind
from mrseg.data.registry import load_dataset
from mrseg.data.torch_data import resize_images, resize_masks
from mrseg.io import write_csv, write_json
from mrseg.losses import soft_dice_loss
from mrseg.paths import runs_dir
from mrseg.train import load_trained_model

LATENT_DEFINITION = ("mean pairwise cosine of g_i = d log p(y_i | z, x)/dz at the shared posterior mean z "
                     "given all raters; Bernoulli log-likelihood of each rater's mask")
PRIOR_DEFINITION = ("mean pairwise cosine of g_i = d log p(y_i | z, x)/dz at the prior mean z = mu_p(x), present "
                    "raters, Bernoulli log-likelihood; defined for every model")
# The keys of one summary of case-level cosines (:func:`alignment_summary`).
_SUMMARY_KEYS = ("mean", "sd", "share_positive", "share_negative", "share_above_0_5")
PRIOR_COLUMNS = ("prior_cosine", "prior_common_norm", "prior_disagreement_norm", "prior_disagreement_share",
                 "prior_disagreement_cosine")
DECODER_DEFINITION = ("mean pairwise cosine of the per-rater reconstruction gradients at the decoder (FComb) "
                      "parameters, backbone features fixed; z_i = shared posterior mean (shared) or rater i's "
                      "posterior mean (per-rater)")


ISOLATION: dict[str, str] = {"mean": "none", "shared": "none", "shared-wide": "none", "per-rater-tied": "samples",
                             "per-rater": "parameters+samples"}


def gradient_isolation(model: str) -> str:
    """Gradient-isolation status of the posterior of registry name ``model`` (see the module docstring)."""

    return ISOLATION[posterior_kind(model)]


def log_likelihood(logits: torch.Tensor, mask: torch.Tensor, likelihood: str = "bernoulli") -> torch.Tensor:
    """Per-case log-likelihood of binary ``mask`` [B,H,W] under ``logits`` [B,H,W] -> [B].

    ``bernoulli``: ``-sum BCEWithLogits``; ``soft_dice``: ``-mrseg.losses.soft_dice_loss`` (the
    reconstruction loss the models are trained with, negated).
    """
    if likelihood == "bernoulli":
        return -F.binary_cross_entropy_with_logits(logits, mask, reduction="none").flatten(1).sum(1)
    if likelihood == "soft_dice":

        return -soft_dice_loss(torch.sigmoid(logits), mask)
    raise ValueError(f"likelihood must be 'bernoulli' or 'soft_dice', got {likelihood!r}")


def mean_pairwise_cosine(vectors: torch.Tensor, valid: torch.Tensor | None = None, eps: float = 1e-12) -> torch.Tensor:
    """``vectors`` [B,N,K] -> mean cosine over the pairs i<j of valid rows per case, [B].

    ``valid`` bool [B,N] (default all). A case with fewer than two valid rows, or a zero-norm
    vector in every pair, gives NaN; pairs with a zero-norm vector are skipped.
    """
    b, n, _ = vectors.shape
    valid = torch.ones(b, n, dtype=torch.bool, device=vectors.device) if valid is None else valid.bool()
    norms = vectors.norm(dim=2)
    unit = vectors / norms.clamp_min(eps)[..., None]
    cos = unit @ unit.transpose(1, 2)
    ok = valid & (norms > eps)
    pair = ok[:, :, None] & ok[:, None, :] & torch.triu(torch.ones(n, n, dtype=torch.bool, device=vectors.device), 1)
    count = pair.sum((1, 2))
    total = (cos * pair).sum((1, 2))
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, float("nan")))


def _measurement_present(present: torch.Tensor, n_present: int | None, generator: torch.Generator | None) -> torch.Tensor:
    if n_present is None:
        return present.bool()
    out = torch.zeros_like(present, dtype=torch.bool)
    for b in range(present.shape[0]):
        idx = torch.nonzero(present[b]).flatten()
        keep = idx[torch.randperm(len(idx), generator=generator)[: min(n_present, len(idx))]]
        out[b, keep] = True
    return out


def latent_gradient_cosines(model: nn.Module, image: torch.Tensor, masks: torch.Tensor,
                            present: torch.Tensor | None = None, likelihood: str = "bernoulli",
                            include_absent: bool = True) -> np.ndarray:
    """The thesis's alignment index per case, float [B]; all NaN for per-rater models.

    ``image`` [B,C,H,W], ``masks`` [B,N,H,W] (0/1 float), ``present`` bool [B,N]. Absent raters'
    masks are zero-filled and given to the posterior as absent; their (empty-mask) gradients are
    included in the pairs when ``include_absent`` (what sparse training does), else skipped.
    """
    masks = masks.float()
    present = torch.ones(masks.shape[:2], dtype=torch.bool) if present is None else present.bool()
    if getattr(model, "is_per_rater", False):
        return np.full(image.shape[0], np.nan)
    masks = masks * present[:, :, None, None]
    with torch.no_grad():
        feats = model.features(image)
        z0 = model.posterior(image, masks, present).loc
    z = z0.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = model.decode(feats, z)[:, 0]
        grads = []
        for i in range(masks.shape[1]):
            ll = log_likelihood(logits, masks[:, i], likelihood)
            grads.append(torch.autograd.grad(ll.sum(), z, retain_graph=i < masks.shape[1] - 1)[0])
    g = torch.stack(grads, 1)
    valid = torch.ones_like(present) if include_absent else present
    return mean_pairwise_cosine(g.detach(), valid).cpu().numpy().astype(np.float64)


def prior_gradient_split(model: nn.Module, image: torch.Tensor, masks: torch.Tensor,
                         present: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """The prior-mean measures per case (module docstring), each float [B]: ``prior_cosine``,
    ``prior_common_norm`` (|c|), ``prior_disagreement_norm`` (RMS over present raters of |d_i|),
    ``prior_disagreement_share`` (mean |d_i|^2 / mean |g_i|^2) and ``prior_disagreement_cosine``
    (mean pairwise cosine of the d_i). Cases with fewer than two present raters give NaN cosines.

    ``image`` [B,C,H,W], ``masks`` [B,N,H,W] (0/1), ``present`` bool [B,N]; Bernoulli likelihood,
    so ``g_i = J^T (y_i - s)`` (checked against autograd of :func:`log_likelihood` in the tests).
    """
    masks = masks.float()
    present = torch.ones(masks.shape[:2], dtype=torch.bool) if present is None else present.bool()
    masks = masks * present[:, :, None, None]
    with torch.no_grad():
        feats = model.features(image)
        z0 = model.prior(image).loc
    z = z0.detach().clone().requires_grad_(True)
    w = present.to(masks.dtype)
    with torch.enable_grad():
        logits = model.decode(feats, z)[:, 0]                                   # [B,H,W]
        s = torch.sigmoid(logits).detach()
        ybar = (masks * w[:, :, None, None]).sum(1) / w.sum(1).clamp_min(1)[:, None, None]
        n = masks.shape[1]

        def vjp(residual: torch.Tensor, last: bool) -> torch.Tensor:
            return torch.autograd.grad(logits, z, grad_outputs=residual, retain_graph=not last)[0]

        common = vjp(ybar - s, False)                                            # [B,D]
        dis = torch.stack([vjp(masks[:, i] - ybar, i == n - 1) for i in range(n)], 1)  # [B,N,D]
    g = common[:, None] + dis
    sq_d = (dis.pow(2).sum(-1) * w).sum(1) / w.sum(1).clamp_min(1)
    sq_g = (g.pow(2).sum(-1) * w).sum(1) / w.sum(1).clamp_min(1)
    share = torch.where(sq_g > 0, sq_d / sq_g.clamp_min(1e-30), torch.full_like(sq_g, float("nan")))
    out = {"prior_cosine": mean_pairwise_cosine(g.detach(), present),
           "prior_common_norm": common.norm(dim=-1), "prior_disagreement_norm": sq_d.sqrt(),
           "prior_disagreement_share": share, "prior_disagreement_cosine": mean_pairwise_cosine(dis.detach(), present)}
    return {k: v.detach().cpu().numpy().astype(np.float64) for k, v in out.items()}


def zero_fill_floor(n_raters: int, n_present: int) -> dict[str, float]:
    """Bounds of the zero-filled latent index when the ``k = n_raters - n_present`` absent raters'
    gradients are identical (module docstring): ``floor`` (the least possible mean pairwise cosine),
    ``orthogonal`` (its value when the present raters' gradients are orthogonal to the empty-mask
    gradient and to each other), ``identical_pair_share`` (the share of pairs fixed at cosine 1) and
    ``general_floor`` (-1/(N-1), the least for any N vectors)."""
    n, k = int(n_raters), int(n_raters) - int(n_present)
    if n < 2 or not 0 <= k <= n:
        raise ValueError(f"need 2 <= n_raters and 0 <= n_present <= n_raters, got {n_raters}, {n_present}")
    pairs = n * (n - 1) / 2
    return {"floor": (max(0, k - (n - k)) ** 2 - n) / (2 * pairs), "orthogonal": (k * (k - 1) / 2) / pairs,
            "identical_pair_share": (k * (k - 1) / 2) / pairs, "general_floor": -1.0 / (n - 1)}


def floor_table(n_raters: int = 4) -> pd.DataFrame:
    """:func:`zero_fill_floor` for np = 1..N, one row each, for the alignment pages."""
    rows = [{"np": m, **zero_fill_floor(n_raters, m)} for m in range(1, n_raters + 1)]
    return pd.DataFrame(rows).rename(columns={"floor": "least possible (zero-filled)",
                                              "orthogonal": "if gradients orthogonal",
                                              "identical_pair_share": "pairs fixed at 1",
                                              "general_floor": "least possible (any gradients)"})


def prior_split_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (model row, np) of ``alignment.csv`` rows: mean over folds of the prior-mean cosine
    (``prior_mean``) and of its split (``prior_common_norm_mean``, ...), with the fold count;
    columns that older tables lack are left out."""
    cols = {"prior_mean": "cosine at mu_p", "prior_common_norm_mean": "|common|",
            "prior_disagreement_norm_mean": "|disagreement| (RMS)",
            "prior_disagreement_share_mean": "disagreement share of |g|^2",
            "prior_disagreement_cosine_mean": "cosine of disagreement parts"}
    if rows is None or rows.empty or "prior_mean" not in rows:
        return pd.DataFrame()
    have = [c for c in cols if c in rows]
    keys = [k for k in ("row", "n_present") if k in rows]
    out = rows.groupby(keys, sort=False)[have].mean()
    out["folds"] = rows.groupby(keys, sort=False).size()
    return out.reset_index().rename(columns={**cols, "n_present": "np"})


def _decoder_parameters(model: nn.Module, feats: torch.Tensor, z: torch.Tensor) -> list[nn.Parameter]:
    """Parameters that ``model.decode`` uses (gradient reaches them with features fixed)."""
    params = [p for p in model.parameters() if p.requires_grad]
    with torch.enable_grad():
        out = model.decode(feats[:1].detach(), z[:1].detach()).sum()
        grads = torch.autograd.grad(out, params, allow_unused=True)
    return [p for p, g in zip(params, grads) if g is not None]


def _rater_latents(model: nn.Module, image: torch.Tensor, masks: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Posterior mean that trains each rater: [B,N,D] (per-rater: own; shared: the joint mean, repeated)."""
    with torch.no_grad():
        loc = model.posterior(image, masks, present).loc
    if loc.dim() == 3:
        return loc
    return loc[:, None, :].expand(-1, masks.shape[1], -1)


def decoder_gradient_cosines(model: nn.Module, image: torch.Tensor, masks: torch.Tensor,
                             present: torch.Tensor | None = None, likelihood: str = "bernoulli",
                             scope: str = "decoder") -> np.ndarray:
    """Mean pairwise cosine of per-rater reconstruction gradients at decoder parameters, float [B].

    See the module docstring. ``scope``: ``"decoder"`` (backbone features fixed) or
    ``"decoder+backbone"``. Only present raters form pairs (absent raters have no term in the
    per-rater objective). Cost: one backward pass per case and present rater.
    """
    if scope not in ("decoder", "decoder+backbone"):
        raise ValueError(f"scope must be 'decoder' or 'decoder+backbone', got {scope!r}")
    masks = masks.float()
    present = torch.ones(masks.shape[:2], dtype=torch.bool) if present is None else present.bool()
    masks = masks * present[:, :, None, None]
    zs = _rater_latents(model, image, masks, present)
    with torch.no_grad():
        feats_all = model.features(image)
    params = _decoder_parameters(model, feats_all, torch.nan_to_num(zs[:, 0]))
    if scope == "decoder+backbone":
        extra = [p for p in model.parameters() if p.requires_grad and all(p is not q for q in params)]
        with torch.enable_grad():
            out = model.features(image[:1]).sum()
            grads = torch.autograd.grad(out, extra, allow_unused=True)
        params = params + [p for p, g in zip(extra, grads) if g is not None]
    n = masks.shape[1]
    out = np.full(image.shape[0], np.nan)
    for b in range(image.shape[0]):
        rows = [i for i in range(n) if bool(present[b, i]) and bool(torch.isfinite(zs[b, i]).all())]
        if len(rows) < 2:
            continue
        vecs = []
        with torch.enable_grad():
            feats = model.features(image[b:b + 1]) if scope == "decoder+backbone" else feats_all[b:b + 1]
            for k, i in enumerate(rows):
                logits = model.decode(feats, zs[b:b + 1, i].detach())[:, 0]
                ll = log_likelihood(logits, masks[b:b + 1, i], likelihood).sum()
                grads = torch.autograd.grad(ll, params, retain_graph=k < len(rows) - 1, allow_unused=True)
                vecs.append(torch.cat([(g if g is not None else torch.zeros_like(p)).flatten()
                                       for g, p in zip(grads, params)]))
        out[b] = float(mean_pairwise_cosine(torch.stack(vecs)[None])[0])
    return out


def alignment_summary(latent: np.ndarray, decoder: np.ndarray | None = None, defined: bool = True) -> dict[str, Any]:
    """Per-fold summary of case values: mean, SD over cases (ddof=1), shares positive / negative /
    above 0.5 (of finite cases), n_cases, ``defined``; and the same for the decoder cosine
    (``decoder_*``). When not ``defined`` the latent numbers are NaN (written as JSON null)."""
    def stats(x: np.ndarray) -> dict[str, float]:
        x = np.asarray(x, dtype=float)
        x = x[np.isfinite(x)]
        if x.size == 0:
            return {"mean": math.nan, "sd": math.nan, "share_positive": math.nan, "share_negative": math.nan,
                    "share_above_0_5": math.nan, "n": 0}
        return {"mean": float(x.mean()), "sd": float(x.std(ddof=1)) if x.size > 1 else math.nan,
                "share_positive": float((x > 0).mean()), "share_negative": float((x < 0).mean()),
                "share_above_0_5": float((x > 0.5).mean()), "n": int(x.size)}

    lat = stats(latent) if defined else {k: math.nan for k in _SUMMARY_KEYS}
    out: dict[str, Any] = {k: lat[k] for k in _SUMMARY_KEYS}
    out["n_cases"] = int(len(latent))
    out["defined"] = bool(defined)
    if decoder is not None:
        dec = stats(decoder)
        out.update({f"decoder_{k}": v for k, v in dec.items()})
    out["latent_definition"] = LATENT_DEFINITION
    out["decoder_definition"] = DECODER_DEFINITION
    return out


def format_alignment(value: float, defined: bool = True, digits: int = 3) -> str:
    """Display string: "undefined" when the measure does not exist for the model, never 0.000."""
    if not defined or value is None or not np.isfinite(value):
        return "undefined"
    return f"{value:.{digits}f}"


def select_cases(test_indices: np.ndarray, n_cases: int | None, seed: int) -> np.ndarray:
    """Seeded choice of ``n_cases`` of ``test_indices`` without replacement, returned sorted."""
    test_indices = np.asarray(test_indices)
    if n_cases is None or n_cases >= len(test_indices):
        return np.sort(test_indices)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(test_indices, size=n_cases, replace=False))


def measure_alignment(model: nn.Module, image: torch.Tensor, masks: torch.Tensor, present: torch.Tensor,
                      case_ids: list[str], batch_size: int = 16, likelihood: str = "bernoulli",
                      n_present: int | None = None, seed: int = 1337, decoder: bool = True,
                      progress: bool = True) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Both measures on given tensors: ``(cases, summary)``.

    ``cases`` has columns ``case_id``, ``latent_cosine`` (NaN for per-rater), ``decoder_cosine``,
    ``latent_cosine_soft_dice`` (the latent cosine with the soft-Dice training likelihood) and
    :data:`PRIOR_COLUMNS` (:func:`prior_gradient_split`); ``summary`` is :func:`alignment_summary`
    plus ``soft_dice_*``, ``prior_*`` (stats of the prior-mean cosine, means of the split columns),
    ``likelihood`` and ``n_present``.
    """
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    lat, lat_dice, dec, prior = [], [], [], []
    steps = range(0, image.shape[0], batch_size)
    for start in tqdm(steps, desc="alignment", disable=not progress):
        sl = slice(start, start + batch_size)
        pres = _measurement_present(present[sl], n_present, gen)
        lat.append(latent_gradient_cosines(model, image[sl], masks[sl], pres, likelihood))
        lat_dice.append(latent_gradient_cosines(model, image[sl], masks[sl], pres, "soft_dice"))
        dec.append(decoder_gradient_cosines(model, image[sl], masks[sl], pres, likelihood) if decoder
                   else np.full(pres.shape[0], np.nan))
        prior.append(prior_gradient_split(model, image[sl], masks[sl], pres))
    latent = np.concatenate(lat) if lat else np.zeros(0)
    decoder_c = np.concatenate(dec) if dec else np.zeros(0)
    defined = not getattr(model, "is_per_rater", False)
    latent_dice = np.concatenate(lat_dice) if lat_dice else np.zeros(0)
    cases = pd.DataFrame({"case_id": [str(c) for c in case_ids], "latent_cosine": latent,
                          "decoder_cosine": decoder_c, "latent_cosine_soft_dice": latent_dice})
    for col in PRIOR_COLUMNS:
        cases[col] = np.concatenate([p[col] for p in prior]) if prior else np.zeros(0)
    summary = alignment_summary(latent, decoder_c if decoder else None, defined)
    dice = alignment_summary(latent_dice, None, defined)
    summary.update({f"soft_dice_{k}": dice[k] for k in ("mean", "sd", "share_positive", "share_negative", "share_above_0_5")})
    prior_stats = alignment_summary(cases["prior_cosine"].to_numpy(), None, True)
    summary.update({f"prior_{k}": prior_stats[k] for k in ("mean", "sd", "share_positive", "share_negative", "share_above_0_5")})
    summary.update({f"{col}_mean": float(np.nanmean(cases[col])) if cases[col].notna().any() else math.nan
                    for col in PRIOR_COLUMNS[1:]})
    summary["prior_definition"] = PRIOR_DEFINITION
    if hasattr(model, "model_name"):
        summary["gradient_isolation"] = gradient_isolation(model.model_name)
    summary.update({"likelihood": likelihood, "n_present": n_present})
    return cases, summary


def load_run_model(run_dir: str | Path) -> tuple[nn.Module, Any]:
    """``(model in eval mode, RunConfig)`` of a trained run (``mrseg.train.load_trained_model``)."""

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: run directory does not exist")
    model, config = load_trained_model(run_dir)
    model.eval()
    return model, config


def test_tensors(config: Any, n_cases: int | None = None, seed: int = 1337) -> dict[str, Any]:
    """Test-fold tensors of a run's dataset: ``image`` [B,C,S,S] float, ``masks`` [B,N,S,S] float,
    ``present`` bool [B,N], ``case_ids`` list, ``indices`` (dataset rows). The whole test fold
    (not capped by ``max_eval_cases``), ``n_cases`` of it chosen by :func:`select_cases`, resized
    to S = ``config.image_size`` exactly as training does (``mrseg.data.torch_data``)."""

    ds = load_dataset(config.dataset, progress=False, **dict(config.dataset_options))
    _, _, test_idx = ds.split(config.fold, config.val_fraction, config.seed)
    rows = select_cases(test_idx, n_cases, seed)
    size = int(config.image_size)
    return {"image": resize_images(ds.images[rows], size), "masks": resize_masks(ds.masks[rows], size),
            "present": torch.from_numpy(np.asarray(ds.present[rows], dtype=bool)), "indices": rows,
            "case_ids": ds.cases["case_id"].to_numpy()[rows].astype(str).tolist(),
            "semi_synthetic": ds.semi_synthetic, "dataset": ds.name}


def run_alignment(run_dir: str | Path, n_cases: int | None = 100, seed: int = 1337, likelihood: str = "bernoulli",
                  n_present: int | None = None, write: bool = True, progress: bool = True) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Load the trained model of ``run_dir``, measure on ``n_cases`` seeded test cases of its fold,
    and (if ``write``) write ``alignment_cases.csv`` and ``alignment_summary.json`` there.

    For a run trained with ``n_present`` < N raters, the latent cosine is also measured the way
    that training presented the case (np raters drawn, the rest zero-filled and included):
    column ``latent_cosine_as_trained`` and ``as_trained_*`` in the summary.
    """
    run_dir = Path(run_dir)
    model, config = load_run_model(run_dir)
    batch = test_tensors(config, n_cases=n_cases, seed=seed)
    cases, summary = measure_alignment(model, batch["image"], batch["masks"], batch["present"], batch["case_ids"],
                                       likelihood=likelihood, n_present=n_present, seed=seed, progress=progress)
    n_raters = batch["masks"].shape[1]
    if n_present is None and config.n_present < n_raters:
        # Also as sparse training sees the case: np raters drawn (seeded), the others zero-filled,
        # their empty-mask gradients included (the mechanism of thesis 3.6.3).
        gen = torch.Generator().manual_seed(seed)
        values = []
        for start in range(0, batch["image"].shape[0], 16):
            sl = slice(start, start + 16)
            pres = _measurement_present(batch["present"][sl], config.n_present, gen)
            values.append(latent_gradient_cosines(model, batch["image"][sl], batch["masks"][sl], pres, likelihood))
        as_trained = np.concatenate(values)
        cases["latent_cosine_as_trained"] = as_trained
        extra = alignment_summary(as_trained, None, summary["defined"])
        summary.update({f"as_trained_{k}": extra[k] for k in _SUMMARY_KEYS})
        summary["as_trained_floor"] = zero_fill_floor(n_raters, config.n_present)["floor"]
    summary.update({"run_id": config.run_id, "model": config.model, "fold": config.fold, "n_raters": int(n_raters),
                    "train_n_present": config.n_present, "seed": seed})
    if write:
        write_csv(run_dir / "alignment_cases.csv", cases)
        write_json(run_dir / "alignment_summary.json", summary)
    return cases, summary


def resolve_run_dir(config_json: str, run_dir: str) -> Path:
    """The run directory a per-run notebook works on: ``run_dir`` if given, else
    ``runs_dir() / RunConfig.from_dict(json.loads(config_json)).run_id``."""
    import json


    if run_dir:
        return Path(run_dir)
    if not config_json:
        raise ValueError("give run_dir or config_json (a RunConfig as JSON)")
    return runs_dir() / RunConfig.from_dict(json.loads(config_json)).run_id


def summary_table(summary: dict[str, Any]) -> pd.DataFrame:
    """Display table of an alignment summary: one row per measure, values formatted, latent
    measures shown as "undefined" (never 0.000) when the model has no shared z."""
    defined = bool(summary.get("defined", True))
    rows = []
    for label, prefix, is_defined in (("latent cosine, Bernoulli log p (thesis index)", "", defined),
                                      ("latent cosine, soft-Dice training loss", "soft_dice_", defined),
                                      ("latent cosine, raters zero-filled as in training", "as_trained_", defined),
                                      ("decoder-parameter cosine (both models)", "decoder_", True),
                                      ("latent cosine at the prior mean (every model)", "prior_", True)):
        if f"{prefix}mean" not in summary:
            continue
        rows.append({"measure": label,
                     **{name: format_alignment(summary.get(f"{prefix}{key}", math.nan), is_defined)
                        for name, key in (("mean", "mean"), ("SD over cases", "sd"), ("share > 0", "share_positive"),
                                          ("share < 0", "share_negative"), ("share > 0.5", "share_above_0_5"))}})
    frame = pd.DataFrame(rows)
    frame["cases"] = int(summary.get("n_cases", 0))
    return frame
