"""D-Persona Stage 2: per-rater projection heads that attend over a bank of prior samples.

For rater k, a head maps the (frozen) backbone features to a query q_k in R^D. D-Persona's head is
a small conv encoder on the F feature channels: three blocks with widths (32, 16, D), each
conv3x3 + ReLU + Dropout2d(0.1) + conv3x3 + ReLU, average pooling (2x2) between blocks, then a
global average: q_k = mean over pixels (non-negative, after the last ReLU). Given a bank of latent
codes {z_n} (prior samples z_n ~ p(z|x), 100 in training and 500 at test, or the k-means centroids
of the prior-bank ablation), the personalised code is the attention average

    w_kn = softmax_n( q_k . z_n ),      z_k = sum_n w_kn z_n,

without a 1/sqrt(D) scaling of the scores (as in D-Persona's code), which the frozen FComb decodes
into rater k's mask. Stage 1 (backbone, prior, posterior(s), FComb) receives no gradient.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def _head(feature_channels: int, widths: Sequence[int], dropout: float = 0.1) -> nn.Sequential:
    layers: list[nn.Module] = []
    prev = feature_channels
    for i, width in enumerate(widths):
        if i > 0:
            layers.append(nn.AvgPool2d(kernel_size=2, stride=2))
        layers += [nn.Conv2d(prev, width, 3, padding=1), nn.ReLU(inplace=True), nn.Dropout2d(dropout),
                   nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True)]
        prev = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers)


class Stage2Heads(nn.Module):
    def __init__(self, feature_channels: int, latent_dim: int, n_raters: int, widths: Sequence[int] = (32, 16)):
        super().__init__()
        self.heads = nn.ModuleList(_head(feature_channels, (*widths, latent_dim)) for _ in range(n_raters))
        self.latent_dim = latent_dim

    def queries(self, features: torch.Tensor) -> torch.Tensor:
        """``features [B, F, H, W]`` -> queries ``[B, N, D]``."""
        return torch.stack([head(features) for head in self.heads], dim=1)

    def attend(self, queries: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
        """``queries [B, Q, D]``, ``bank [B, K, D]`` (or ``[K, D]``) -> codes ``[B, Q, D]``."""
        if bank.dim() == 2:
            bank = bank.expand(queries.shape[0], *bank.shape)
        weights = torch.softmax(queries @ bank.transpose(1, 2), dim=-1)
        return weights @ bank
