"""Training objectives of the ProbUNet family, with the equations they implement.

Notation: x image, y_i rater i's mask, P_i the set of present raters of an image (|P| = n_p),
p = p(z|x) the prior, q the posterior(s), f the backbone features, g the FComb decoder,
Dice(a, b) = 1 - (2 sum a b + 1) / (sum a + sum b + 1) the soft Dice loss (smoothing 1).

Stage 1 (``stage1_losses``)
  shared (D-Persona, thesis eq. 3.2): z ~ q(z | x, y_1..y_N) with absent raters zero-filled,
      L = (1/N) sum_{i=1..N} Dice(sigma(g(f, z)), y_i 1[i in P]) + KL(q || p) + beta L_bound
      (absent raters are trained towards the empty mask, the thesis's baseline behaviour).
  shared-masked: as shared but the reconstruction averages over present raters only,
      (1/n_p) sum_{i in P} Dice(sigma(g(f, z)), y_i).
  per-rater (thesis eq. 3.5): z_i ~ q_i(z | x, y_i) for i in P only,
      L = (1/n_p) sum_{i in P} [ Dice(sigma(g(f, z_i)), y_i) + KL(q_i || p) ] + beta L_bound
      (with all raters present n_p = N, the thesis's 1/N).
  probunet-mean (Kohl et al.): z ~ q(z | x, ybar), L = Dice(sigma(g(f, z)), ybar) + KL(q || p),
      ybar the pixel-wise mean of the present masks; no bound loss (plain ProbUNet).
  L_bound (D-Persona): z_1..z_K ~ p, l_k = g(f, z_k),
      L_bound = Dice(sigma(max_k l_k), union_{i in P} y_i) + Dice(sigma(min_k l_k), inter_{i in P} y_i).
  L2: ``l2_weight`` * sum over parameters W of prior, posterior(s), FComb (and Stage 2 heads) of ||W||_2.
  KL is weighted by ``kl_weight`` (1) and summed over the D latent dimensions; terms are averaged
  over the batch.

Ablation switches (thesis 4.2.3; on ``shared+s2``)
  dual diversity (row 5): penalise the pairwise soft-Dice *similarity* of decoded samples,
      L_div = mean_{s<t} (1 - Dice(p_s, p_t)), applied twice ("dual"): over the K prior-sample
      decodes in Stage 1 and over the N personalised outputs in Stage 2; weight ``diversity_weight``.
  orthogonality (row 3): penalise the cosine similarity between the per-rater latent codes of
      Stage 2, L_orth = mean_{i<j} cos(z_i, z_j)^2; weight ``ortho_weight``.
  prior bank k = 100 (row 4): k-means (scikit-learn) over the prior means of the training images;
      Stage 2 and sampling attend over these k fixed centroids instead of fresh prior samples.
  latent repulsion (beyond the thesis, per-rater models): L_rep = mean_{i<j in P} exp(-||mu_i - mu_j||^2),
      pushing the per-rater posterior means apart; weight ``latent_repulsion``.

Stage 2 (``stage2_losses``): Stage 1 frozen; z_k = attention of head k over a bank of prior
samples (see :mod:`mrseg.models.stage2`), L = (1/n_p) sum_{k in P} Dice(sigma(g(f, z_k)), y_k) + L2(heads).
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Normal, kl_divergence


def soft_dice_loss(probs: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - soft Dice over the last two (spatial) axes; leading axes are kept."""
    probs = probs.float()
    target = target.float()
    inter = (probs * target).sum(dim=(-2, -1))
    total = probs.sum(dim=(-2, -1)) + target.sum(dim=(-2, -1))
    return 1.0 - (2.0 * inter + smooth) / (total + smooth)


def kl_term(q: Normal, p: Normal) -> torch.Tensor:
    """KL(q || p) of diagonal Gaussians summed over the latent axis: ``[...]``."""
    return kl_divergence(q, p).sum(-1)


def union_intersection(masks: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Union and intersection ``[B, H, W]`` of the present raters' masks."""
    pres = present[:, :, None, None]
    union = torch.where(pres, masks, torch.zeros_like(masks)).amax(1)
    inter = torch.where(pres, masks, torch.ones_like(masks)).amin(1)
    return union, inter


def bound_loss(prior_logits: torch.Tensor, masks: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """D-Persona's L_bound per image ``[B]`` from K prior-sample logits ``[B, K, H, W]``."""
    union, inter = union_intersection(masks, present)
    upper = torch.sigmoid(prior_logits.amax(1))
    lower = torch.sigmoid(prior_logits.amin(1))
    return soft_dice_loss(upper, union) + soft_dice_loss(lower, inter)


def l2_penalty(modules: Iterable[nn.Module]) -> torch.Tensor:
    """Sum of the L2 norms of all trainable parameters of ``modules``."""
    norms = [p.norm(2) for m in modules if m is not None for p in m.parameters() if p.requires_grad]
    return torch.stack(norms).sum() if norms else torch.zeros(())


def pairwise_dice_similarity(probs: torch.Tensor) -> torch.Tensor:
    """Mean soft-Dice similarity over pairs s<t of ``probs [B, S, H, W]``: ``[B]``."""
    s = probs.shape[1]
    flat = probs.flatten(2).float()
    inter = flat @ flat.transpose(1, 2)                               # [B, S, S]
    sums = flat.sum(-1)
    sim = (2 * inter + 1.0) / (sums[:, :, None] + sums[:, None, :] + 1.0)
    iu = torch.triu_indices(s, s, offset=1, device=probs.device)
    return sim[:, iu[0], iu[1]].mean(-1)


def orthogonality_loss(z: torch.Tensor) -> torch.Tensor:
    """Mean squared cosine similarity over rater pairs of codes ``z [B, N, D]``: ``[B]``."""
    zn = F.normalize(z, dim=-1)
    cos = zn @ zn.transpose(1, 2)
    n = z.shape[1]
    iu = torch.triu_indices(n, n, offset=1, device=z.device)
    return cos[:, iu[0], iu[1]].pow(2).mean(-1)


def latent_repulsion_loss(mu: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Mean over present rater pairs of exp(-||mu_i - mu_j||^2); ``mu [B, N, D]`` -> scalar."""
    n = mu.shape[1]
    iu = torch.triu_indices(n, n, offset=1, device=mu.device)
    mu0 = torch.nan_to_num(mu)
    d2 = (mu0[:, iu[0]] - mu0[:, iu[1]]).pow(2).sum(-1)
    valid = (present[:, iu[0]] & present[:, iu[1]]).float()
    return (torch.exp(-d2) * valid).sum() / valid.sum().clamp(min=1.0)


def fit_prior_bank(prior_means: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k-means centroids ``[k, D]`` of prior means ``[n, D]`` (scikit-learn, seeded)."""
    from sklearn.cluster import KMeans

    k = min(k, len(prior_means))
    km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(np.asarray(prior_means, dtype=np.float64))
    return km.cluster_centers_.astype(np.float32)


def _per_image_mean(values: torch.Tensor, batch_index: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    total = torch.zeros(count.shape[0], dtype=values.dtype, device=values.device).index_add_(0, batch_index, values)
    return total / count.clamp(min=1).to(values.dtype)


def _use_batched(config: Any, x: torch.Tensor, present: torch.Tensor) -> bool:
    """Per-rater implementation: the loop (measured faster on CPU) unless ``batched`` is asked
    for, or ``auto`` on a GPU; the batched form needs every rater present."""
    impl = getattr(config, "per_rater_impl", "auto")
    wanted = impl == "batched" or (impl == "auto" and x.device.type == "cuda")
    return wanted and bool(present.all())


def stage1_losses(model: Any, x: torch.Tensor, masks: torch.Tensor, present: torch.Tensor, config: Any
                  ) -> dict[str, torch.Tensor]:
    """Stage 1 objective of ``model`` on one batch; ``present`` are the raters drawn this step.

    Returns scalars ``loss`` (to minimise), ``recon``, ``kl``, ``bound``, ``l2`` and any extras.
    """
    name = model.model_name
    feats = model.features(x)
    a = model.fcomb.feature_part(feats)
    p = model.prior(x)
    count = present.sum(1)
    out: dict[str, torch.Tensor] = {}
    if model.is_per_rater and _use_batched(config, x, present):
        q = Normal(*model.posteriors.encode_batched(x, masks))                         # [B, N, D]
        logits = model.fcomb.decode_many(a, q.rsample())
        dice = soft_dice_loss(torch.sigmoid(logits), masks)                            # [B, N]
        kl_pairs = kl_term(q, Normal(p.loc[:, None], p.scale[:, None]))                 # [B, N]
        recon, kl = dice.mean(1), kl_pairs.mean(1)
        out["rater_terms"] = dice + config.kl_weight * kl_pairs
        if config.latent_repulsion:
            out["repulsion"] = latent_repulsion_loss(q.loc, present)
        posterior_modules = [model.posteriors]
    elif model.is_per_rater:
        encoded = model.posteriors.encode_present(x, masks, present)
        idx = torch.cat([e[1] for e in encoded])
        z_parts, kl_parts, targets = [], [], []
        for i, ii, q in encoded:
            z_parts.append(q.rsample())
            kl_parts.append(kl_term(q, Normal(p.loc[ii], p.scale[ii])))
            targets.append(masks[ii, i])
        z = torch.cat(z_parts)
        a_pairs = a if idx.numel() == a.shape[0] and len(encoded) == 1 else a.index_select(0, idx)
        logits = model.fcomb.decode_pairs(a_pairs, z)
        dice = soft_dice_loss(torch.sigmoid(logits), torch.cat(targets))
        kl_pairs = torch.cat(kl_parts)
        recon = _per_image_mean(dice, idx, count)
        kl = _per_image_mean(kl_pairs, idx, count)
        raters = torch.cat([torch.full_like(ii, i) for i, ii, _ in encoded])
        # rater i's ELBO terms per image, [B, N] (0 where absent): for isolation checks and diagnostics
        out["rater_terms"] = torch.zeros(present.shape, dtype=dice.dtype, device=x.device).index_put(
            (idx, raters), dice + config.kl_weight * kl_pairs)
        if config.latent_repulsion:
            mu = torch.full((x.shape[0], model.n_raters, model.latent_dim), float("nan"), device=x.device)
            for i, ii, q in encoded:
                mu[ii, i] = q.loc
            out["repulsion"] = latent_repulsion_loss(mu, present)
        posterior_modules = [model.posteriors]
    else:
        q = model.posterior_net(model.posterior_input(x, masks, present))
        logits = model.fcomb.decode_pairs(a, q.rsample())
        probs = torch.sigmoid(logits)
        filled = masks * present[:, :, None, None].to(masks.dtype)
        if name == "probunet-mean":
            mean_mask = filled.sum(1) / count.clamp(min=1)[:, None, None].to(masks.dtype)
            recon = soft_dice_loss(probs, mean_mask)
        else:
            dice = soft_dice_loss(probs[:, None], filled)                            # [B, N]
            if name == "shared-masked":
                recon = (dice * present).sum(1) / count.clamp(min=1)
            else:
                recon = dice.mean(1)
        kl = kl_term(q, p)
        posterior_modules = [model.posterior_net]
    total = recon.mean() + config.kl_weight * kl.mean()
    bound = torch.zeros((), device=x.device)
    if name != "probunet-mean" and (config.beta_bound > 0 or config.dual_diversity):
        zk = p.rsample((config.bound_samples,)).transpose(0, 1)                      # [B, K, D]
        prior_logits = model.fcomb.decode_many(a, zk)
        bound = bound_loss(prior_logits, masks, present).mean()
        total = total + config.beta_bound * bound
        if config.dual_diversity:
            out["diversity"] = pairwise_dice_similarity(torch.sigmoid(prior_logits)).mean()
            total = total + config.diversity_weight * out["diversity"]
    if "repulsion" in out:
        total = total + config.latent_repulsion * out["repulsion"]
    l2 = l2_penalty([model.prior_net, *posterior_modules, model.fcomb]) if config.l2_weight else bound.new_zeros(())
    total = total + config.l2_weight * l2
    out.update(loss=total, recon=recon.mean(), kl=kl.mean(), bound=bound, l2=l2)
    return out


def stage2_bank(model: Any, p: Normal, size: int) -> torch.Tensor:
    """The bank Stage 2 attends over: prior-bank centroids ``[k, D]`` or ``size`` prior samples ``[B, K, D]``."""
    if model.prior_bank.numel():
        return model.prior_bank
    return p.sample((size,)).transpose(0, 1)


def stage2_losses(model: Any, x: torch.Tensor, masks: torch.Tensor, present: torch.Tensor, config: Any
                  ) -> dict[str, torch.Tensor]:
    """Stage 2 objective (Stage 1 frozen): personalised reconstruction of each present rater."""
    with torch.no_grad():
        feats = model.features(x)
        a = model.fcomb.feature_part(feats)
        p = model.prior(x)
        bank = stage2_bank(model, p, config.stage2_bank_train)
    z = model.stage2.attend(model.stage2.queries(feats), bank)                        # [B, N, D]
    logits = model.fcomb.decode_many(a, z)
    probs = torch.sigmoid(logits)
    dice = soft_dice_loss(probs, masks)
    count = present.sum(1)
    recon = ((dice * present).sum(1) / count.clamp(min=1)).mean()
    total = recon
    out: dict[str, torch.Tensor] = {}
    if config.orthogonality:
        out["orthogonality"] = orthogonality_loss(z).mean()
        total = total + config.ortho_weight * out["orthogonality"]
    if config.dual_diversity:
        out["diversity"] = pairwise_dice_similarity(probs).mean()
        total = total + config.diversity_weight * out["diversity"]
    l2 = l2_penalty([model.stage2])
    total = total + config.l2_weight * l2
    zero = torch.zeros((), device=x.device)
    out.update(loss=total, recon=recon, kl=zero, bound=zero, l2=l2)
    return out
