"""Latent embedding (thesis Fig 4.2): per-rater posterior means and prior means, t-SNE, companions.

Per test case the points are the prior mean ``mu_p(x)`` and one posterior mean per present rater:

- per-rater models: encoder i's mean ``mu_{q_i}(x, y_i)``;
- shared models: the shared posterior given only rater i's mask (the other mask channels zero and
  marked absent, as sparse training presents a single rater), so both models place one point per
  rater. The joint shared mean (all raters in) is also returned as ``joint``.

The t-SNE picture (scikit-learn, 2-D) is not evidence on its own; the companions are computed in
the original latent space:

- ``silhouette_raters``: silhouette score of rater labels over the posterior means (near 0 or below:
  no per-rater clusters; near 1: separated modes), with a 95% bootstrap interval over cases
  (``silhouette_raters_ci_low``/``_high``); also ``silhouette_raters_tsne`` in 2-D;
- ``dist_to_prior``: mean Euclidean distance of a case's posterior means to its own prior mean
  (overall and per rater);
- ``between_rater_spread``: mean over cases of the mean pairwise distance between the raters'
  posterior means of that case; ``between_case_spread``: mean pairwise distance between different
  cases' prior means (the scale the rater spread should be read against); ``spread_ratio`` the ratio;
- ``rater_id_*``: rater identity predicted from the posterior means by a cross-validated
  classifier, accuracy against chance (:func:`rater_identity`). High accuracy says the means can be
  told apart by rater, not that they form distinct clusters: N separate encoders (or one encoder
  reading rater i's mask in channel i) place each rater's means with its own offset even when the
  posterior carries no information about the image, so decodability measures the design as much
  as the rater.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.spatial.distance import pdist
from sklearn.manifold import TSNE
from sklearn.metrics import silhouette_score
from torch import nn

from mrseg.diagnostics.alignment import load_run_model, test_tensors
from mrseg.io import write_json, write_npz


def latent_means(model: nn.Module, image: torch.Tensor, masks: torch.Tensor,
                 present: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """``{"posterior": [B,N,D] (NaN for absent raters), "prior": [B,D], "joint": [B,D] (shared) or
    all-NaN (per-rater)}`` as float64 numpy arrays. See the module docstring for the definitions."""
    masks = masks.float()
    b, n = masks.shape[:2]
    present = torch.ones(b, n, dtype=torch.bool) if present is None else present.bool()
    masks = masks * present[:, :, None, None]
    with torch.no_grad():
        prior = model.prior(image).loc
        if getattr(model, "is_per_rater", False):
            post = model.posterior(image, masks, present).loc.clone()
            joint = torch.full_like(prior, float("nan"))
        else:
            joint = model.posterior(image, masks, present).loc
            post = torch.full((b, n, prior.shape[1]), float("nan"))
            for i in range(n):
                one = torch.zeros_like(present)
                one[:, i] = True
                post[:, i] = model.posterior(image, masks * one[:, :, None, None], one).loc
        post[~present] = float("nan")
    return {"posterior": post.double().numpy(), "prior": prior.double().numpy(), "joint": joint.double().numpy()}


def latent_points(posterior: np.ndarray, prior: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stack finite posterior means and prior means: ``(points [K,D], label [K], case [K])`` where
    label is the rater index 0..N-1 or -1 for the prior."""
    b, n, _ = posterior.shape
    pts, lab, case = [], [], []
    for i in range(n):
        ok = np.isfinite(posterior[:, i]).all(axis=1)
        pts.append(posterior[ok, i])
        lab.append(np.full(ok.sum(), i))
        case.append(np.flatnonzero(ok))
    pts.append(prior)
    lab.append(np.full(b, -1))
    case.append(np.arange(b))
    return np.concatenate(pts), np.concatenate(lab), np.concatenate(case)


def tsne_embedding(points: np.ndarray, seed: int = 1337, perplexity: float = 30.0) -> np.ndarray:
    """2-D t-SNE (scikit-learn, PCA init) of ``points`` [K,D] -> [K,2]; perplexity is capped
    below K/3 so small smoke sets still embed."""
    k = points.shape[0]
    if k < 4:
        raise ValueError(f"t-SNE needs at least 4 points, got {k}")
    perplexity = float(min(perplexity, max(1.0, (k - 1) / 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(points)


def latent_companions(posterior: np.ndarray, prior: np.ndarray, coords: np.ndarray | None = None,
                      labels: np.ndarray | None = None) -> dict[str, Any]:
    """The quantitative companions of the picture (module docstring). ``posterior`` [B,N,D],
    ``prior`` [B,D]; ``coords``/``labels`` from the t-SNE of :func:`latent_points` (optional)."""
    b, n, _ = posterior.shape
    ok = np.isfinite(posterior).all(axis=2)
    pts = posterior[ok]
    lab = np.nonzero(ok)[1]
    out: dict[str, Any] = {"n_cases": int(b), "n_raters": int(n), "n_posterior_points": int(pts.shape[0])}
    n_labels = len(np.unique(lab))
    out["silhouette_raters"] = (float(silhouette_score(pts, lab)) if 2 <= n_labels < len(pts) else float("nan"))
    if coords is not None and labels is not None:
        sel = labels >= 0
        out["silhouette_raters_tsne"] = (float(silhouette_score(coords[sel], labels[sel]))
                                         if 2 <= len(np.unique(labels[sel])) < sel.sum() else float("nan"))
    dist = np.linalg.norm(posterior - prior[:, None, :], axis=2)
    out["dist_to_prior"] = float(np.nanmean(dist)) if ok.any() else float("nan")
    out["dist_to_prior_per_rater"] = [float(np.nanmean(dist[:, i])) if ok[:, i].any() else float("nan") for i in range(n)]
    spreads = [pdist(posterior[c][ok[c]]).mean() for c in range(b) if ok[c].sum() >= 2]
    out["between_rater_spread"] = float(np.mean(spreads)) if spreads else float("nan")
    out["between_case_spread"] = float(pdist(prior).mean()) if b >= 2 else float("nan")
    out["spread_ratio"] = (out["between_rater_spread"] / out["between_case_spread"]
                           if out["between_case_spread"] and np.isfinite(out["between_case_spread"]) else float("nan"))
    return out


def silhouette_interval(posterior: np.ndarray, seed: int = 1337, n_boot: int = 200) -> tuple[float, float]:
    """95% percentile bootstrap interval over cases of the rater-label silhouette of the posterior
    means (``posterior`` [B,N,D], NaN for absent raters): cases are resampled with replacement and
    the silhouette recomputed on their points. (NaN, NaN) when it cannot be computed."""
    ok = np.isfinite(posterior).all(axis=2)
    cases = np.flatnonzero(ok.any(axis=1))
    if len(cases) < 3 or len(np.unique(np.nonzero(ok)[1])) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        pick = rng.choice(cases, size=len(cases), replace=True)
        pts = np.concatenate([posterior[c][ok[c]] for c in pick])
        lab = np.concatenate([np.flatnonzero(ok[c]) for c in pick])
        if 2 <= len(np.unique(lab)) < len(pts):
            values.append(silhouette_score(pts, lab))
    if not values:
        return float("nan"), float("nan")
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def rater_identity(posterior: np.ndarray, seed: int = 1337, n_splits: int = 5, n_boot: int = 2000) -> dict[str, Any]:
    """Can rater identity be read off the posterior means? (Fig 4.2's "no distinct per-rater
    clusters", made a test.) ``posterior`` [B,N,D] (NaN for absent raters).

    A multinomial logistic regression (scikit-learn, standardised means) predicts the rater index of
    each posterior mean, cross-validated over ``n_splits`` folds grouped by case (a case's raters are
    never split between training and test). ``rater_id_accuracy``: the mean over cases of each case's
    share of correctly predicted raters; ``rater_id_ci_low``/``_high``: its 95% bootstrap interval
    over cases (percentile, ``n_boot`` resamples, seeded); ``rater_id_chance``: the largest class
    share (what predicting one rater always scores); ``rater_id_p``: one-sided exact binomial test of
    the correct predictions against chance (treats points as independent: a lower bound on p).
    NaN values when there are fewer than two raters or ``n_splits`` cases."""
    from scipy import stats
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    ok = np.isfinite(posterior).all(axis=2)
    cases, raters = np.nonzero(ok)
    out: dict[str, Any] = {"rater_id_accuracy": float("nan"), "rater_id_ci_low": float("nan"),
                           "rater_id_ci_high": float("nan"), "rater_id_chance": float("nan"),
                           "rater_id_p": float("nan"), "rater_id_points": int(len(raters)),
                           "rater_id_cases": int(len(np.unique(cases)))}
    if len(np.unique(raters)) < 2 or len(np.unique(cases)) < n_splits:
        return out
    features = posterior[cases, raters].astype(np.float64)
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    predicted = cross_val_predict(classifier, features, raters, groups=cases, cv=GroupKFold(n_splits=n_splits))
    correct = predicted == raters
    per_case = np.bincount(cases, weights=correct)[np.unique(cases)] / np.bincount(cases)[np.unique(cases)]
    ci = stats.bootstrap((per_case,), np.mean, n_resamples=n_boot, method="percentile",
                         random_state=np.random.default_rng(seed)).confidence_interval
    chance = float(np.bincount(raters).max() / len(raters))
    out.update(rater_id_accuracy=float(per_case.mean()), rater_id_ci_low=float(ci.low), rater_id_ci_high=float(ci.high),
               rater_id_chance=chance,
               rater_id_p=float(stats.binomtest(int(correct.sum()), len(correct), chance, alternative="greater").pvalue))
    return out


def run_latent(run_dir: str | Path, n_cases: int | None = None, seed: int = 1337, write: bool = True,
               perplexity: float = 30.0) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Latent embedding of a trained run on its test fold (all cases by default).

    Writes ``latent.npz`` (``coords [K,2]``, ``labels [K]`` rater index or -1 for the prior,
    ``case_index [K]``, ``posterior [B,N,D]``, ``prior [B,D]``, ``joint [B,D]``, ``case_ids [B]``)
    and ``latent_summary.json`` (:func:`latent_companions` plus run id, model, fold) into ``run_dir``.
    """

    run_dir = Path(run_dir)
    model, config = load_run_model(run_dir)
    batch = test_tensors(config, n_cases=n_cases, seed=seed)
    parts = [latent_means(model, batch["image"][s:s + 32], batch["masks"][s:s + 32], batch["present"][s:s + 32])
             for s in range(0, batch["image"].shape[0], 32)]
    means = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    points, labels, case_index = latent_points(means["posterior"], means["prior"])
    coords = tsne_embedding(points, seed=seed, perplexity=perplexity)
    summary = latent_companions(means["posterior"], means["prior"], coords, labels)
    summary.update(rater_identity(means["posterior"], seed=seed))
    summary["silhouette_raters_ci_low"], summary["silhouette_raters_ci_high"] = silhouette_interval(means["posterior"], seed)
    summary.update({"run_id": config.run_id, "model": config.model, "fold": config.fold,
                    "n_present": config.n_present, "dataset": batch["dataset"],
                    "semi_synthetic": batch["semi_synthetic"], "seed": seed,
                    "shared_posterior_per_rater": "posterior given only rater i's mask (others zero, absent)"
                    if not getattr(model, "is_per_rater", False) else None})
    arrays = {"coords": coords.astype(np.float32), "labels": labels.astype(np.int16),
              "case_index": case_index.astype(np.int32), "case_ids": np.asarray(batch["case_ids"]),
              **{k: v.astype(np.float32) for k, v in means.items()}}
    if write:
        write_npz(run_dir / "latent.npz", **arrays)
        write_json(run_dir / "latent_summary.json", summary)
    return arrays, summary
