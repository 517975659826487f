"""D-Persona Stage 2: per-rater projection heads that attend over a bank of prior samples.

For rater k, a small conv head maps the (frozen) backbone features to a query q_k in R^D. Given a
bank of latent codes {z_n} (prior samples z_n ~ p(z|x), 100 in training and 500 at test, or the
k-means centroids of the prior-bank ablation), the personalised code is the attention average

    w_kn = softmax_n( q_k . z_n / sqrt(D) ),      z_k = sum_n w_kn z_n,

which the frozen FComb decodes into rater k's mask. Stage 1 (backbone, prior, posterior(s), FComb)
receives no gradient.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class Stage2Heads(nn.Module):
    def __init__(self, feature_channels: int, latent_dim: int, n_raters: int, width: int = 32):
        super().__init__()
        self.heads = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(feature_channels, width, 3, stride=2, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU(inplace=True),
                nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, latent_dim),
            )
            for _ in range(n_raters)
        )
        self.latent_dim = latent_dim

    def queries(self, features: torch.Tensor) -> torch.Tensor:
        """``features [B, F, H, W]`` -> queries ``[B, N, D]``."""
        return torch.stack([head(features) for head in self.heads], dim=1)

    def attend(self, queries: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
        """``queries [B, Q, D]``, ``bank [B, K, D]`` (or ``[K, D]``) -> codes ``[B, Q, D]``."""
        if bank.dim() == 2:
            bank = bank.expand(queries.shape[0], *bank.shape)
        weights = torch.softmax(queries @ bank.transpose(1, 2) / math.sqrt(self.latent_dim), dim=-1)
        return weights @ bank
