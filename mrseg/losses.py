"""Training objectives of the ProbUNet family, with the equations they implement.

Notation: x image, y_i rater i's mask, P the set of present raters of an image (|P| = n_p),
p = p(z|x) the prior, q the posterior(s), f the backbone features, g the FComb decoder.

Criterion (``config.criterion``)
  gdl (default, D-Persona's ``GeneralizedDiceLoss(normalization='sigmoid')``): :func:`dpersona_gdl`,
      a soft Dice per channel pooled over the whole batch and space, class weights 1/max(T_c^2, 1e-6),
      a background channel added when there is one class; no smoothing term.
  soft-dice (kept for comparison): Dice(a, b) = 1 - (2 sum a b + 1) / (sum a + sum b + 1) per image
      (smoothing 1), averaged over the batch.
  bce-sum (beyond the thesis; Kohl et al.'s scale): binary cross-entropy summed over an image's pixels,
      averaged over the batch (:func:`bce_sum_loss`); one nat of KL is then ~1e-4 of the reconstruction
      of a 64x64 image instead of the whole range of the GDL.
  gdl+bce-sum: the sum of the two.
  A criterion is a batch-pooled part (GDL) and/or a per-image part (soft Dice or BCE sum)
  (:class:`Criterion`); every reconstruction term below (Stage 1, L_bound, Stage 2) takes both parts
  of the run's criterion, in the forms written for ``gdl`` and ``soft-dice`` respectively.

Stage 1 (``stage1_losses``); ``objective`` decides which raters are reconstructed each step
  dpersona-code (default; D-Persona's code): one rater index r per mini-batch,
      shared: r drawn from all N slots, target y_r 1[r in P] (an absent rater is a zero-filled mask),
          L = Crit(sigma(g(f, z)), y_r) + KL(q || p) + beta L_bound,  z ~ q(z | x, y_1..y_N) zero-filled;
      shared-masked: r drawn per image from its present raters (never a zero-filled target);
  thesis-eq (the thesis's eqs. 3.2 / 3.5): every step reconstructs all N slots for shared,
      L = (1/N) sum_{i=1..N} Crit(sigma(g(f, z)), y_i 1[i in P]) + KL + beta L_bound,
      and the present raters for shared-masked, (1/n_p) sum_{i in P} Crit(sigma(g(f, z)), y_i).
  per-rater (thesis eq. 3.5, under both objectives): z_i ~ q_i(z | x, y_i) for i in P only,
      L = (1/n_p) sum_{i in P} [ Crit(sigma(g(f, z_i)), y_i) + KL(q_i || p) ] + beta L_bound;
      with ``gdl`` rater i's criterion is pooled over the images where i is present and the raters'
      terms are weighted by their number of images (the per-image mean of the soft-dice form).
  probunet-mean (Kohl et al.): z ~ q(z | x, ybar), L = Crit(sigma(g(f, z)), ybar) + KL(q || p),
      ybar the pixel-wise mean of the present masks; no bound loss (plain ProbUNet).
  L_bound (D-Persona): z_1..z_K ~ p, l_k = g(f, z_k); with ``gdl`` it is D-Persona's
      GDL over the two channels [sigma(max_k l_k), sigma(min_k l_k)] vs [union, intersection] of the
      present raters (C = 2, no background: the mean of the two Dice terms); with ``soft-dice`` the
      sum of the two per-image soft Dice losses.
  L2 (D-Persona): ``l2_weight`` * sum of the (unsquared) L2 norms of the parameters of the prior,
      the posterior(s) and FComb except FComb's last layer (:func:`regularised_parameters`).
  KL is weighted by ``kl_weight`` (1), analytic, summed over the D latent dimensions, batch mean.
  shared-target (Kohl et al.; D-Persona's ProbUNet baseline): z ~ q(z | x, y_r), r drawn per image
      from the present raters (under both objectives), L = Crit(sigma(g(f, z)), y_r) + KL + beta L_bound;
      the posterior sees only the mask it must explain (one encoder on (x, one mask), as per-rater-tied).
  per-rater-tied: as per-rater, with one encoder q(z | x, y_i) shared by the raters (eq. 3.5 with
      tied parameters); shared-wide: as shared (both objectives), with a wider posterior encoder.

Free bits (beyond the thesis, anti-collapse; ``free_bits`` = lambda nats per dimension, 0 = off;
Kingma et al. 2016): with KL_d the batch mean of dimension d's KL (per-rater: each image's mean
over its present raters, then the batch mean, as the plain term), the KL term becomes
sum_d max(KL_d, lambda) (:func:`free_bits_kl`). It adds sum_d max(lambda - KL_d, 0) to the loss,
and a dimension whose KL_d is below lambda gets no gradient from the KL term (the posterior may
spend up to lambda nats there for free); above lambda the gradient is the plain one. The logged
``kl`` stays the plain KL.

KL warm-up and GECO (beyond the thesis, anti-collapse; their schedules live in :mod:`mrseg.train`)
reach the loss as ``kl_scale``: the KL term is weighted by ``kl_weight * kl_scale``
(:func:`stage1_losses`). Warm-up: kl_scale = min(1, t / k) with t the epochs done (fractional).
GECO: kl_scale = 1 / lambda, lambda the multiplier of the constraint E[recon] <= kappa
(:class:`Geco`). Minimising recon + (1 / lambda) KL has the gradient of lambda (recon - kappa) + KL
divided by lambda, HPU-Net's GECO loss; Adam's steps are invariant to that overall scale.

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
samples (see :mod:`mrseg.models.stage2`). With ``gdl`` (D-Persona): the GDL over the N expert
channels (each pooled over the images where rater k is present); with ``soft-dice``:
(1/n_p) sum_{k in P} Dice(sigma(g(f, z_k)), y_k). Plus L2 of the heads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Normal, kl_divergence

from mrseg.data.torch_data import draw_rater_index


def soft_dice_loss(probs: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - soft Dice over the last two (spatial) axes; leading axes are kept."""
    probs = probs.float()
    target = target.float()
    inter = (probs * target).sum(dim=(-2, -1))
    total = probs.sum(dim=(-2, -1)) + target.sum(dim=(-2, -1))
    return 1.0 - (2.0 * inter + smooth) / (total + smooth)


def bce_sum_loss(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy summed over the last two (spatial) axes; leading axes are kept.

    ``probs`` in [0, 1] (the log is clamped at -100, as :func:`torch.nn.functional.binary_cross_entropy`
    does), ``target`` in [0, 1].
    """
    return F.binary_cross_entropy(probs.float(), target.float(), reduction="none").sum(dim=(-2, -1))


@dataclass(frozen=True)
class Criterion:
    """A reconstruction criterion as its parts: ``pooled_gdl`` (D-Persona's batch-pooled GDL) and
    ``per_image`` (``"soft-dice"``, ``"bce-sum"`` or ``None``); the criterion is their sum."""

    pooled_gdl: bool
    per_image: str | None

    @classmethod
    def named(cls, name: str) -> "Criterion":
        parts = name.split("+")
        per_image = [p for p in parts if p != "gdl"]
        if len(per_image) > 1 or any(p not in ("soft-dice", "bce-sum") for p in per_image):
            raise ValueError(f"unknown criterion {name!r}")
        return cls("gdl" in parts, per_image[0] if per_image else None)

    def image_loss(self, probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The per-image part over the last two axes (leading axes kept)."""
        return bce_sum_loss(probs, target) if self.per_image == "bce-sum" else soft_dice_loss(probs, target)


def _add(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor:
    """``a + b`` where either may be absent (a criterion part that is off)."""
    if a is None:
        assert b is not None
        return b
    return a if b is None else a + b


def gdl_channels(probs: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Per-channel batch-pooled weighted Dice ``[C]`` of D-Persona's GDL (no background added).

    ``probs``/``target`` ``[B, C, H, W]``; ``valid`` bool ``[B, C]`` restricts channel c's pooling
    to the images where it is valid (all images when ``None``). With T_c = sum t, I_c = sum p t,
    D_c = sum (p + t) over the pooled images and pixels, w_c = 1 / max(T_c^2, 1e-6):
    dice_c = 2 I_c w_c / max(D_c w_c, 1e-6).
    """
    probs = probs.float()
    target = target.float()
    if valid is not None:
        keep = valid[:, :, None, None].to(probs.dtype)
        probs, target = probs * keep, target * keep
    dims = (0, 2, 3)
    t_sum = target.sum(dims)
    inter = (probs * target).sum(dims)
    denom = (probs + target).sum(dims)
    w = 1.0 / (t_sum * t_sum).clamp(min=1e-6)
    return 2.0 * inter * w / (denom * w).clamp(min=1e-6)


def dpersona_gdl(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """D-Persona's reconstruction criterion, ``GeneralizedDiceLoss(normalization='sigmoid')``: a scalar.

    ``probs`` and ``target`` are ``[B, C, H, W]`` in [0, 1] (probabilities, not logits). Per channel c,
    pooled over the batch and space: T_c = sum t, I_c = sum p t, D_c = sum (p + t),
    w_c = 1 / max(T_c^2, 1e-6), dice_c = 2 I_c w_c / max(D_c w_c, 1e-6). When C == 1 a background
    channel (1 - p, 1 - t) is added first. Loss = 1 - mean_c dice_c.
    """
    if probs.shape != target.shape or probs.dim() != 4:
        raise ValueError(f"dpersona_gdl expects probs and target of the same shape [B, C, H, W], "
                         f"got {tuple(probs.shape)} and {tuple(target.shape)}")
    if probs.shape[1] == 1:
        probs = torch.cat([1.0 - probs, probs], dim=1)
        target = torch.cat([1.0 - target, target], dim=1)
    return 1.0 - gdl_channels(probs, target).mean()


def gdl_masked(probs: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """:func:`dpersona_gdl` of one-class ``probs``/``target`` ``[B, H, W]`` pooled over the images
    where ``valid [B]`` (a background channel is added); 0 when no image is valid."""
    if not bool(valid.any()):
        return probs.new_zeros(())
    return dpersona_gdl(probs[valid][:, None], target[valid][:, None])


def kl_term(q: Normal, p: Normal) -> torch.Tensor:
    """KL(q || p) of diagonal Gaussians summed over the latent axis: ``[...]``."""
    return kl_divergence(q, p).sum(-1)


def free_bits_kl(kl_dims: torch.Tensor, free_bits: float) -> torch.Tensor:
    """Free-bits KL term, a scalar: ``kl_dims [B, D]`` (KL per image and latent dimension) ->
    sum_d max(mean_b kl_dims[b, d], free_bits). With ``free_bits = 0`` it equals the plain batch mean
    of the summed KL (KL >= 0)."""
    return kl_dims.mean(0).clamp(min=free_bits).sum()


class Geco:
    """GECO's multiplier (Rezende & Viola 2018) for the constraint E[recon] <= ``kappa``.

    After each step, with C = recon - kappa (the step's mean reconstruction in the criterion's units):
    C_ma <- alpha C_ma + (1 - alpha) C (C_ma = C at the first step), then
    lambda <- clip(lambda * exp(rate * C_ma), 1, lambda_max). The KL term is weighted by
    ``kl_weight / lambda`` (:meth:`kl_scale`): while the reconstruction misses its target the KL is
    relaxed (down to ``1 / lambda_max`` of its nominal weight), never raised above it.
    """

    def __init__(self, kappa: float, alpha: float = 0.99, rate: float = 1.0, lambda_max: float = 1e4,
                 state: dict[str, float | None] | None = None):
        self.kappa, self.alpha, self.rate, self.lambda_max = kappa, alpha, rate, lambda_max
        state = state or {}
        self.lam = float(state.get("lambda") or 1.0)
        c_ma = state.get("c_ma")
        self.c_ma = None if c_ma is None else float(c_ma)

    def kl_scale(self) -> float:
        return 1.0 / self.lam

    def update(self, recon: float) -> None:
        c = recon - self.kappa
        self.c_ma = c if self.c_ma is None else self.alpha * self.c_ma + (1.0 - self.alpha) * c
        self.lam = min(max(self.lam * math.exp(self.rate * self.c_ma), 1.0), self.lambda_max)

    def state(self) -> dict[str, float | None]:
        """Plain floats for the checkpoint (a resumed run continues the same multiplier)."""
        return {"lambda": self.lam, "c_ma": self.c_ma}


def warmup_scale(epoch: int, step: int, steps_per_epoch: int, warmup_epochs: int) -> float:
    """KL warm-up factor min(1, t / k), t = ``epoch + step / steps_per_epoch`` epochs done before this
    step (0 at the first step), k = ``warmup_epochs``; 1 when k = 0."""
    if warmup_epochs <= 0:
        return 1.0
    return min(1.0, (epoch + step / max(steps_per_epoch, 1)) / warmup_epochs)


def union_intersection(masks: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Union and intersection ``[B, H, W]`` of the present raters' masks."""
    pres = present[:, :, None, None]
    union = torch.where(pres, masks, torch.zeros_like(masks)).amax(1)
    inter = torch.where(pres, masks, torch.ones_like(masks)).amin(1)
    return union, inter


def bound_loss(prior_logits: torch.Tensor, masks: torch.Tensor, present: torch.Tensor,
               image_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = soft_dice_loss) -> torch.Tensor:
    """L_bound per image ``[B]`` (per-image form: the sum of two per-image losses, soft Dice unless
    ``image_loss`` says otherwise) from K prior-sample logits ``[B, K, H, W]``."""
    union, inter = union_intersection(masks, present)
    upper = torch.sigmoid(prior_logits.amax(1))
    lower = torch.sigmoid(prior_logits.amin(1))
    return image_loss(upper, union) + image_loss(lower, inter)


def bound_loss_gdl(prior_logits: torch.Tensor, masks: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """D-Persona's L_bound, a scalar: the GDL over the 2 channels [max_k, min_k] vs [union,
    intersection] (C = 2, no background: 1 - the mean of the two batch-pooled Dice terms)."""
    union, inter = union_intersection(masks, present)
    pred = torch.sigmoid(torch.stack([prior_logits.amax(1), prior_logits.amin(1)], dim=1))
    return dpersona_gdl(pred, torch.stack([union, inter], dim=1))


def l2_penalty(params: Iterable[nn.Module | torch.Tensor]) -> torch.Tensor:
    """Sum of the (unsquared) L2 norms of the trainable parameters in ``params`` (modules or tensors)."""
    tensors: list[torch.Tensor] = []
    for item in params:
        if item is None:
            continue
        tensors.extend(item.parameters() if isinstance(item, nn.Module) else [item])
    norms = [p.norm(2) for p in tensors if p.requires_grad]
    return torch.stack(norms).sum() if norms else torch.zeros(())


def regularised_parameters(model: Any, posterior_modules: Iterable[nn.Module]) -> list[torch.Tensor]:
    """D-Persona's L2 set: prior, posterior(s) and FComb except its last layer (``fcomb.out``)."""
    last = {id(p) for p in model.fcomb.out.parameters()}
    fcomb = [p for p in model.fcomb.parameters() if id(p) not in last]
    return [*model.prior_net.parameters(), *(p for m in posterior_modules for p in m.parameters()), *fcomb]


def _criterion(config: Any) -> Criterion:
    return Criterion.named(getattr(config, "criterion", "gdl"))


def _objective(config: Any) -> str:
    return getattr(config, "objective", "dpersona-code")


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
    """Mean of pair ``values [P, ...]`` per image ``[B, ...]`` (pairs of image ``batch_index[k]``)."""
    total = torch.zeros((count.shape[0], *values.shape[1:]), dtype=values.dtype,
                        device=values.device).index_add_(0, batch_index, values)
    return total / count.clamp(min=1).to(values.dtype).view(-1, *([1] * (values.dim() - 1)))


def _use_batched(config: Any, x: torch.Tensor, present: torch.Tensor) -> bool:
    """Per-rater implementation: the loop (measured faster on CPU) unless ``batched`` is asked
    for, or ``auto`` on a GPU; the batched form needs every rater present."""
    impl = getattr(config, "per_rater_impl", "auto")
    wanted = impl == "batched" or (impl == "auto" and x.device.type == "cuda")
    return wanted and bool(present.all())


@dataclass
class Stage1Batch:
    """What every Stage 1 loss family reads: the batch, the model's shared parts and the objective.

    ``a``: FComb's feature part ``[B, H, W, hidden]``; ``p``: the prior ``N(mu, sigma)`` ``[B, D]``;
    ``count``: raters present per image ``[B]``; ``crit``: the run's :class:`Criterion` (``gdl``: its
    batch-pooled GDL part is on); ``one_rater``: ``objective: dpersona-code`` (one drawn rater per image).
    """

    model: Any
    x: torch.Tensor
    masks: torch.Tensor
    present: torch.Tensor
    config: Any
    a: torch.Tensor
    p: Normal
    count: torch.Tensor
    crit: Criterion
    one_rater: bool
    rater_index: torch.Tensor | None

    @property
    def gdl(self) -> bool:
        return self.crit.pooled_gdl


@dataclass
class Stage1Terms:
    """A family's reconstruction and KL: ``recon`` and ``kl`` ``[B]``, ``kl_dims`` ``[B, D]``, the
    posterior modules whose weights the L2 term covers, and extra named terms (``rater_terms``,
    ``repulsion``)."""

    recon: torch.Tensor
    kl: torch.Tensor
    kl_dims: torch.Tensor
    posterior_modules: list[nn.Module]
    extras: dict[str, torch.Tensor] = field(default_factory=dict)


def _per_rater_batched(b: Stage1Batch) -> Stage1Terms:
    """Per-rater ELBO (eq. 3.5) with every rater present: the N encoders as one batched call."""
    model, x, masks, config = b.model, b.x, b.masks, b.config
    q = Normal(*model.posteriors.encode_batched(x, masks))                             # [B, N, D]
    probs = torch.sigmoid(model.fcomb.decode_many(b.a, q.rsample()))
    kl_full = kl_divergence(q, Normal(b.p.loc[:, None], b.p.scale[:, None]))           # [B, N, D]
    kl_pairs = kl_full.sum(-1)                                                         # [B, N]
    extras: dict[str, torch.Tensor] = {}
    recon = pair_terms = None
    if b.gdl:   # every rater present: rater i's GDL pooled over the batch, equal weights
        per_rater = torch.stack([dpersona_gdl(probs[:, i: i + 1], masks[:, i: i + 1]) for i in range(masks.shape[1])])
        recon = per_rater.mean().expand(x.shape[0])
        pair_terms = per_rater[None, :] / x.shape[0]
    if b.crit.per_image:
        dice = b.crit.image_loss(probs, masks)                                         # [B, N]
        recon, pair_terms = _add(recon, dice.mean(1)), _add(pair_terms, dice)
    extras["rater_terms"] = pair_terms + config.kl_weight * kl_pairs
    if config.latent_repulsion:
        extras["repulsion"] = latent_repulsion_loss(q.loc, b.present)
    return Stage1Terms(recon, kl_pairs.mean(1), kl_full.mean(1), [model.posteriors], extras)


def _per_rater_present(b: Stage1Batch) -> Stage1Terms:
    """Per-rater ELBO (eq. 3.5) over the present (image, rater) pairs: one posterior sample each."""
    model, x, masks, present, config, p = b.model, b.x, b.masks, b.present, b.config, b.p
    encoded = model.posteriors.encode_present(x, masks, present)
    idx = torch.cat([e[1] for e in encoded])
    z_parts, kl_parts, targets = [], [], []
    for i, ii, q in encoded:
        z_parts.append(q.rsample())
        kl_parts.append(kl_divergence(q, Normal(p.loc[ii], p.scale[ii])))             # [n_i, D]
        targets.append(masks[ii, i])
    z = torch.cat(z_parts)
    a_pairs = b.a if idx.numel() == b.a.shape[0] and len(encoded) == 1 else b.a.index_select(0, idx)
    probs = torch.sigmoid(model.fcomb.decode_pairs(a_pairs, z))
    kl_dims = _per_image_mean(torch.cat(kl_parts), idx, b.count)                        # [B, D]
    kl_pairs = torch.cat(kl_parts).sum(-1)
    kl = _per_image_mean(kl_pairs, idx, b.count)
    raters = torch.cat([torch.full_like(ii, i) for i, ii, _ in encoded])
    recon = pair_recon = None
    if b.gdl:
        # rater i's GDL pooled over its present images; weighted by their number n_i, so the
        # total is sum_i n_i GDL_i / sum_i n_i (every image counts once per present rater)
        bounds = torch.cumsum(torch.tensor([0] + [len(ii) for _, ii, _ in encoded]), 0).tolist()
        target = torch.cat(targets)
        per_rater = torch.stack([dpersona_gdl(probs[s:e, None], target[s:e, None])
                                 for s, e in zip(bounds[:-1], bounds[1:])])
        sizes = torch.tensor([e - s for s, e in zip(bounds[:-1], bounds[1:])], dtype=probs.dtype, device=x.device)
        recon = ((per_rater * sizes).sum() / sizes.sum()).expand(x.shape[0])
        # each pair carries its rater's GDL / n_i, so a rater's pairs sum to its GDL
        pair_recon = torch.repeat_interleave(per_rater / sizes, sizes.long())
    if b.crit.per_image:
        pair_image = b.crit.image_loss(probs, torch.cat(targets))
        recon, pair_recon = _add(recon, _per_image_mean(pair_image, idx, b.count)), _add(pair_recon, pair_image)
    # rater i's ELBO terms per image, [B, N] (0 where absent): for isolation checks and diagnostics
    extras = {"rater_terms": torch.zeros(present.shape, dtype=probs.dtype, device=x.device).index_put(
        (idx, raters), pair_recon + config.kl_weight * kl_pairs)}
    if config.latent_repulsion:
        mu = torch.full((x.shape[0], model.n_raters, model.latent_dim), float("nan"), device=x.device)
        for i, ii, q in encoded:
            mu[ii, i] = q.loc
        extras["repulsion"] = latent_repulsion_loss(mu, present)
    return Stage1Terms(recon, kl, kl_dims, [model.posteriors], extras)


def per_rater_terms(b: Stage1Batch) -> Stage1Terms:
    """Loss family ``per-rater``: N posteriors (separate or tied encoders), eq. 3.5."""
    return _per_rater_batched(b) if _use_batched(b.config, b.x, b.present) else _per_rater_present(b)


def _one_posterior(b: Stage1Batch) -> tuple[Normal, torch.Tensor, torch.Tensor]:
    """The single posterior ``q`` on (x, masks), one decode of its sample (probabilities ``[B, H, W]``)
    and the masks with absent raters zero-filled ``[B, N, H, W]``."""
    q = b.model.posterior_net(b.model.posterior_input(b.x, b.masks, b.present))
    probs = torch.sigmoid(b.model.fcomb.decode_pairs(b.a, q.rsample()))
    return q, probs, b.masks * b.present[:, :, None, None].to(b.masks.dtype)


def _single_posterior_terms(b: Stage1Batch, q: Normal, recon: torch.Tensor) -> Stage1Terms:
    kl_dims = kl_divergence(q, b.p)                                                    # [B, D]
    return Stage1Terms(recon, kl_dims.sum(-1), kl_dims, [b.model.posterior_net])


def _drawn_rater_recon(b: Stage1Batch, probs: torch.Tensor, filled: torch.Tensor, per_image: bool) -> torch.Tensor:
    """``dpersona-code``: each image reconstructs one drawn rater's mask (absent: zero-filled)."""
    rater_index = b.rater_index if b.rater_index is not None else draw_rater_index(b.present, per_image=per_image)
    target = filled.gather(1, rater_index[:, None, None, None].expand(-1, 1, *filled.shape[2:]))[:, 0]
    return _one_target_recon(b, probs, target)


def _one_target_recon(b: Stage1Batch, probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The criterion of one decode ``probs [B, H, W]`` against one target per image: ``[B]``."""
    recon = dpersona_gdl(probs[:, None], target[:, None]).expand(b.x.shape[0]) if b.gdl else None
    return _add(recon, b.crit.image_loss(probs, target) if b.crit.per_image else None)


def mean_mask_terms(b: Stage1Batch) -> Stage1Terms:
    """Loss family ``mean-mask`` (ProbUNet): the pixel-wise mean of the present raters is the target."""
    q, probs, filled = _one_posterior(b)
    mean_mask = filled.sum(1) / b.count.clamp(min=1)[:, None, None].to(b.masks.dtype)
    return _single_posterior_terms(b, q, _one_target_recon(b, probs, mean_mask))


def shared_terms(b: Stage1Batch) -> Stage1Terms:
    """Loss family ``shared`` (D-Persona Stage 1): one posterior on all N masks; absent raters are
    zero-filled masks the model is trained to reproduce (the thesis's ``drop_raters`` baseline)."""
    q, probs, filled = _one_posterior(b)
    if b.one_rater:
        return _single_posterior_terms(b, q, _drawn_rater_recon(b, probs, filled, per_image=False))
    recon = None
    if b.gdl:   # (1/N) sum_{i=1..N}, absent slots zero-filled
        recon = torch.stack([dpersona_gdl(probs[:, None], filled[:, i: i + 1]) for i in range(b.masks.shape[1])]
                            ).mean().expand(b.x.shape[0])
    if b.crit.per_image:
        recon = _add(recon, b.crit.image_loss(probs[:, None], filled).mean(1))        # [B, N] -> [B]
    return _single_posterior_terms(b, q, recon)


def shared_masked_terms(b: Stage1Batch) -> Stage1Terms:
    """Loss family ``shared-masked``: one posterior; absent raters' reconstruction terms dropped."""
    q, probs, filled = _one_posterior(b)
    present = b.present
    if b.one_rater:
        return _single_posterior_terms(b, q, _drawn_rater_recon(b, probs, filled, per_image=True))
    recon = None
    if b.gdl:   # (1/n_p) sum_{i in P}: rater i pooled over its present images
        terms = [gdl_masked(probs, filled[:, i], present[:, i]) for i in range(b.masks.shape[1])]
        sizes = present.sum(0).to(probs.dtype)
        recon = ((torch.stack(terms) * sizes).sum() / sizes.sum().clamp(min=1)).expand(b.x.shape[0])
    if b.crit.per_image:
        dice = b.crit.image_loss(probs[:, None], filled)                               # [B, N]
        recon = _add(recon, (dice * present).sum(1) / b.count.clamp(min=1))
    return _single_posterior_terms(b, q, recon)


def shared_target_terms(b: Stage1Batch) -> Stage1Terms:
    """Loss family ``shared-target`` (Kohl et al.): one encoder q(z | x, y_r) on the mask of the rater
    r each image reconstructs, r drawn per image from its present raters."""
    rater_index = b.rater_index if b.rater_index is not None else draw_rater_index(b.present, per_image=True)
    target = b.masks.gather(1, rater_index[:, None, None, None].expand(-1, 1, *b.masks.shape[2:]))[:, 0]
    encoder = b.model.posteriors.encoder(0)
    q = encoder(torch.cat([b.x, target[:, None].to(b.x.dtype)], dim=1))
    probs = torch.sigmoid(b.model.fcomb.decode_pairs(b.a, q.rsample()))
    kl_dims = kl_divergence(q, b.p)                                                    # [B, D]
    return Stage1Terms(_one_target_recon(b, probs, target), kl_dims.sum(-1), kl_dims, [b.model.posteriors])


# Stage 1 loss families (``ModelVariant.loss`` in mrseg.config): one function each.
STAGE1_FAMILIES: dict[str, Callable[[Stage1Batch], Stage1Terms]] = {
    "mean-mask": mean_mask_terms,
    "shared": shared_terms,
    "shared-masked": shared_masked_terms,
    "per-rater": per_rater_terms,
    "shared-target": shared_target_terms,
}


def stage1_losses(model: Any, x: torch.Tensor, masks: torch.Tensor, present: torch.Tensor, config: Any,
                  rater_index: torch.Tensor | None = None, kl_scale: float = 1.0) -> dict[str, torch.Tensor]:
    """Stage 1 objective of ``model`` on one batch; ``present`` are the raters drawn this step.

    The reconstruction and KL come from the model's loss family (:data:`STAGE1_FAMILIES`); the
    KL reduction (free bits), L_bound, the diversity and repulsion terms and L2 are common.
    ``rater_index`` ``[B]`` (long) is the rater each image reconstructs under ``objective:
    dpersona-code`` (``shared``: one index for the whole batch; ``shared-masked``: a present rater
    per image); :func:`mrseg.data.torch_data.draw_step` gives it from the step's generator. When
    ``None`` it is drawn here from the global torch RNG. ``kl_scale`` multiplies the KL weight
    (KL warm-up and GECO schedules of :mod:`mrseg.train`).
    Returns scalars ``loss`` (to minimise), ``recon``, ``kl``, ``bound``, ``l2`` and any extras.
    """
    family = model.variant.loss
    crit = _criterion(config)
    a = model.fcomb.feature_part(model.features(x))
    p = model.prior(x)
    batch = Stage1Batch(model, x, masks, present, config, a, p, present.sum(1), crit,
                        _objective(config) == "dpersona-code", rater_index)
    terms = STAGE1_FAMILIES[family](batch)
    out: dict[str, torch.Tensor] = dict(terms.extras)
    recon, kl, kl_dims = terms.recon, terms.kl, terms.kl_dims
    free_bits = getattr(config, "free_bits", 0.0)
    kl_loss = free_bits_kl(kl_dims, free_bits) if free_bits else kl.mean()
    out["kl_dims"] = kl_dims.mean(0)
    if free_bits:
        out["kl_free_bits"] = kl_loss
    total = recon.mean() + (config.kl_weight * kl_scale if kl_scale != 1.0 else config.kl_weight) * kl_loss
    bound = torch.zeros((), device=x.device)
    if family != "mean-mask" and (config.beta_bound > 0 or config.dual_diversity):
        zk = p.rsample((config.bound_samples,)).transpose(0, 1)                      # [B, K, D]
        prior_logits = model.fcomb.decode_many(a, zk)
        bound = _add(bound_loss_gdl(prior_logits, masks, present) if crit.pooled_gdl else None,
                     bound_loss(prior_logits, masks, present, crit.image_loss).mean() if crit.per_image else None)
        total = total + config.beta_bound * bound
        if config.dual_diversity:
            out["diversity"] = pairwise_dice_similarity(torch.sigmoid(prior_logits)).mean()
            total = total + config.diversity_weight * out["diversity"]
    if "repulsion" in out:
        total = total + config.latent_repulsion * out["repulsion"]
    l2 = (l2_penalty(regularised_parameters(model, terms.posterior_modules)) if config.l2_weight
          else bound.new_zeros(()))
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
    crit = _criterion(config)
    recon = None
    if crit.pooled_gdl:   # D-Persona: GDL over the N expert channels (no background)
        recon = 1.0 - gdl_channels(probs, masks, present)[present.any(0)].mean()
    if crit.per_image:
        dice = crit.image_loss(probs, masks)
        count = present.sum(1)
        recon = _add(recon, ((dice * present).sum(1) / count.clamp(min=1)).mean())
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
