"""FComb: the decoder that combines backbone features and a latent sample into logits.

D-Persona / Kohl et al.: tile z over the image, concatenate with the F feature channels, three
1x1 convolutions + ReLU, a 1x1 convolution to one logit. A 1x1 convolution is a per-pixel linear
map, so the first layer splits exactly::

    W [f(x); tile(z)] + b  =  (W_f f(x) + b)  +  tile(W_z z)

The feature part ``A = W_f f(x) + b`` is computed once per image; each latent sample only adds a
per-sample bias ``W_z z``. The parameters are ``nn.Linear`` modules (the checkpoint layout); the
hidden layers run as 1x1 convolutions on the channels-last view of ``[..., H, W, hidden]``, which
oneDNN computes several times faster on CPU than the equivalent ``[P, hidden] x [hidden, hidden]``
matrix product (``benchmarks/fcomb_head.py``).
``forward_naive`` runs the textbook concat + conv form with the same weights (benchmark and tests).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FComb(nn.Module):
    def __init__(self, feature_channels: int, latent_dim: int, hidden: int | None = None, n_layers: int = 3):
        super().__init__()
        hidden = hidden or feature_channels
        self.feat_in = nn.Linear(feature_channels, hidden)           # W_f, b
        self.z_in = nn.Linear(latent_dim, hidden, bias=False)          # W_z
        self.layers = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(n_layers - 1))
        self.out = nn.Linear(hidden, 1)

    def feature_part(self, features: torch.Tensor) -> torch.Tensor:
        """``features [B, F, H, W]`` -> ``A [B, H, W, hidden]`` (computed once per image)."""
        return self.feat_in(features.permute(0, 2, 3, 1))

    def _head(self, h: torch.Tensor) -> torch.Tensor:
        """``h [..., H, W, hidden]`` (a fresh tensor) -> logits ``[..., H, W]``."""
        lead = h.shape[:-3]
        x = h.reshape(-1, *h.shape[-3:]).permute(0, 3, 1, 2)   # NCHW view, channels-last memory
        x = F.relu(x, inplace=True)
        for layer in self.layers:
            x = F.relu(F.conv2d(x, layer.weight[:, :, None, None], layer.bias), inplace=True)
        x = F.conv2d(x, self.out.weight[:, :, None, None], self.out.bias)
        return x.reshape(*lead, *x.shape[-2:])

    def decode_pairs(self, a: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``a [P, H, W, hidden]``, ``z [P, D]`` -> logits ``[P, H, W]`` (row p decodes z[p] on a[p])."""
        return self._head(a + self.z_in(z)[:, None, None, :])

    def decode_many(self, a: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``a [B, H, W, hidden]``, ``z [B, S, D]`` -> logits ``[B, S, H, W]``."""
        return self._head(a[:, None] + self.z_in(z)[:, :, None, None, :])

    def forward(self, features: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``features [B, F, H, W]``, ``z [B, D]`` -> logits ``[B, 1, H, W]``."""
        return self.decode_pairs(self.feature_part(features), z)[:, None]

    def forward_naive(self, features: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Same result as :meth:`forward` computed as concat(features, tiled z) + 1x1 convolutions."""
        b, _, h, w = features.shape
        tiled = z[:, :, None, None].expand(b, z.shape[1], h, w)
        x = torch.cat([features, tiled], dim=1)
        weight = torch.cat([self.feat_in.weight, self.z_in.weight], dim=1)[:, :, None, None]
        x = F.relu(F.conv2d(x, weight, self.feat_in.bias))
        for layer in self.layers:
            x = F.relu(F.conv2d(x, layer.weight[:, :, None, None], layer.bias))
        return F.conv2d(x, self.out.weight[:, :, None, None], self.out.bias)
