"""The Probabilistic U-Net family of the thesis in one module.

``ProbUNetFamily`` = backbone f(x) + prior p(z|x) + posterior(s) + FComb (+ Stage 2 heads).
Which posterior it carries depends on the registry name (``config.model``):

- ``probunet-mean``: one posterior on (x, mean of the present masks); trained on the mean mask.
- ``shared``, ``shared-masked``, ``shared+s2``: one posterior on (x, y_1..y_N), absent raters'
  channels zero-filled (N + C input channels), the D-Persona Stage 1.
- ``shared-wide``: the shared posterior with its widths scaled so its parameter count matches the
  N per-rater encoders together (:func:`mrseg.models.gaussian.matched_width_filters`).
- ``per-rater``, ``per-rater+s2``: N independent posteriors q_i(z|x, y_i) (thesis eq. 3.4).
- ``per-rater-tied``: ONE posterior q(z|x, y_i) on (x, one mask), applied to each present rater
  separately; trained with the per-rater ELBO (eq. 3.5) like ``per-rater``.
- ``*+s2``: Stage 2 projection heads (:mod:`mrseg.models.stage2`), used by :meth:`sample`.

Shapes: x ``[B, C, H, W]`` float, masks ``[B, N, H, W]`` float in {0, 1}, present ``[B, N]`` bool,
z ``[B, D]`` (or ``[B, S, D]`` for S samples per image), logits before the sigmoid.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.distributions import Normal

from mrseg.config import model_variant
from mrseg.losses import soft_dice_loss
from mrseg.models.backbones import build_backbone
from mrseg.models.fcomb import FComb
from mrseg.models.gaussian import (
    AxisAlignedConvGaussian,
    MiTGaussian,
    PerRaterPosteriors,
    encoder_parameter_count,
    matched_width_filters,
)
from mrseg.models.stage2 import Stage2Heads


class ProbUNetFamily(nn.Module):
    def __init__(self, config: Any, n_raters: int = 4, in_channels: int = 1):
        super().__init__()
        self.model_name = config.model
        self.n_raters = n_raters
        self.in_channels = in_channels
        self.latent_dim = config.latent_dim
        self.variant = model_variant(config.model)
        self.posterior_kind = self.variant.posterior
        self.is_per_rater = self.variant.is_per_rater
        self.stage2_bank_test = config.stage2_bank_test
        filters, convs = tuple(config.encoder_filters), config.convs_per_block
        fch = config.feature_channels
        self.backbone = build_backbone(config.backbone, in_channels, fch, config.base_channels)
        self.prior_net = AxisAlignedConvGaussian(in_channels, filters, convs, config.latent_dim)
        if self.is_per_rater:
            self.posteriors = PerRaterPosteriors(n_raters, in_channels, filters, convs, config.latent_dim,
                                                 tied=self.posterior_kind == "per-rater-tied")
        else:
            extra = 1 if self.posterior_kind == "mean" else n_raters
            if self.posterior_kind == "shared-wide":   # as many parameters as the N per-rater encoders
                target = n_raters * encoder_parameter_count(in_channels + 1, filters, convs, config.latent_dim)
                filters = matched_width_filters(in_channels + extra, filters, convs, config.latent_dim, target)
            if getattr(config, "posterior_encoder", "conv") == "mit-b2":
                self.posterior_net = MiTGaussian(in_channels + extra, config.latent_dim)
            else:
                self.posterior_net = AxisAlignedConvGaussian(in_channels + extra, filters, convs, config.latent_dim)
        self.fcomb = FComb(fch, config.latent_dim)
        if config.logit_bias_init:   # start from a low foreground probability (lesions are small)
            nn.init.constant_(self.fcomb.out.bias, config.logit_bias_init)
        self.stage2 = (Stage2Heads(fch, config.latent_dim, n_raters, tuple(config.stage2_head_widths))
                       if self.variant.stage2 else None)
        # k-means centroids of prior means (prior-bank ablation); empty = continuous prior samples
        self.register_buffer("prior_bank", torch.zeros(0, config.latent_dim))

    # ---- the public model API -------------------------------------------------------------
    @property
    def has_stage2(self) -> bool:
        return self.stage2 is not None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features ``[B, F, H, W]``."""
        return self.backbone(x)

    def prior(self, x: torch.Tensor) -> Normal:
        """p(z | x): loc/scale ``[B, D]``."""
        return self.prior_net(x)

    def posterior_input(self, x: torch.Tensor, masks: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Input of the single posterior: (x, zero-filled masks) or (x, mean of present masks)."""
        filled = masks * present[:, :, None, None].to(masks.dtype)
        if self.posterior_kind == "mean":
            count = present.sum(1).clamp(min=1).to(masks.dtype)
            return torch.cat([x, (filled.sum(1) / count[:, None, None])[:, None]], dim=1)
        return torch.cat([x, filled], dim=1)

    def posterior(self, x: torch.Tensor, masks: torch.Tensor, present: torch.Tensor | None = None) -> Normal:
        """q(z | x, masks): loc ``[B, D]`` (shared) or ``[B, N, D]`` (per-rater; absent raters NaN)."""
        if present is None:
            present = torch.ones(masks.shape[:2], dtype=torch.bool, device=masks.device)
        if self.is_per_rater:
            return self.posteriors(x, masks, present)
        return self.posterior_net(self.posterior_input(x, masks, present))

    def decode(self, features: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``features [B, F, H, W]``, ``z [B, D]`` -> logits ``[B, 1, H, W]``."""
        return self.fcomb(features, z)

    def decode_many(self, features: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``z [B, S, D]`` -> logits ``[B, S, H, W]`` (FComb's feature half computed once)."""
        return self.fcomb.decode_many(self.fcomb.feature_part(features), z)

    def rater_recon_logits(self, features: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Logits each rater's reconstruction term sees: ``[B, N, H, W]``.

        ``z [B, D]`` (one shared code, e.g. the shared posterior mean): one decode repeated for the
        N raters. ``z [B, N, D]`` (per-rater codes): rater i's code decoded for rater i. The
        per-rater reconstruction log-likelihood used in training is
        ``-mrseg.losses.soft_dice_loss(sigmoid(logits[:, i]), y_i)``; see :meth:`rater_recon_loglik`.
        """
        if z.dim() == 2:
            return self.decode(features, z).expand(-1, self.n_raters, -1, -1)
        return self.decode_many(features, z)

    def rater_recon_loglik(self, features: torch.Tensor, z: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Per-rater reconstruction log-likelihood terms ``[B, N]`` (negative soft Dice loss),
        differentiable w.r.t. ``z`` and the decoder parameters (gradient-alignment diagnostics)."""

        return -soft_dice_loss(torch.sigmoid(self.rater_recon_logits(features, z)), masks)

    @torch.no_grad()
    def sample(self, x: torch.Tensor, M: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Test-time samples: probabilities ``[B, M, H, W]``.

        Stage 1 models: z_m ~ p(z|x). Stage 2 models: sample m is rater (m mod N)'s personalised
        code, attending over a fresh bank of ``stage2_bank_test`` prior samples (or over the
        prior-bank centroids when the ablation is on).
        """
        feats = self.features(x)
        a = self.fcomb.feature_part(feats)
        p = self.prior(x)
        if self.stage2 is None:
            z = _normal_sample(p, (M,), generator).transpose(0, 1)                    # [B, M, D]
        else:
            q = self.stage2.queries(feats)                                             # [B, N, D]
            heads = torch.arange(M, device=x.device) % self.n_raters
            if self.prior_bank.numel():
                z = self.stage2.attend(q[:, heads], self.prior_bank)
            else:
                bank = _normal_sample(p, (M, self.stage2_bank_test), generator)      # [M, K, B, D]
                bank = bank.permute(2, 0, 1, 3)                                      # [B, M, K, D]
                qm = q[:, heads]                                                     # [B, M, D]
                b, m, k, d = bank.shape
                z = self.stage2.attend(qm.reshape(b * m, 1, d), bank.reshape(b * m, k, d)).reshape(b, m, d)
        return torch.sigmoid(self.fcomb.decode_many(a, z).float())


def _normal_sample(p: Normal, shape: tuple[int, ...], generator: torch.Generator | None) -> torch.Tensor:
    eps = torch.randn((*shape, *p.loc.shape), generator=generator, device=p.loc.device, dtype=p.loc.dtype)
    return p.loc + p.scale * eps
