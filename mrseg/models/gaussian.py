"""Gaussian latent encoders of the Probabilistic U-Net family.

``AxisAlignedConvGaussian`` is the prior/posterior net of Kohl et al. (2018) as used by D-Persona:
blocks of ``convs_per_block`` 3x3 convolutions + ReLU with ``filters`` channels, average pooling
between blocks, a global spatial mean and a 1x1 convolution to ``2 * latent_dim`` values
(mean, log standard deviation). Its output is a ``torch.distributions.Normal`` whose ``loc`` and
``scale`` are ``[B, D]`` (diagonal Gaussian; sum log-probabilities / KL over the last axis).

``PerRaterPosteriors`` holds N independent encoders; encoder i sees ``(x, y_i)`` only and runs only
on the images where rater i is present (a plain loop: on a 2-core CPU it measured faster than one
grouped convolution with ``groups=N``; see ``mrseg.bench.step``). With ``tied=True`` it holds ONE
encoder applied to each present rater's ``(x, y_i)`` separately (``per-rater-tied``): the samples
are still per rater, the parameters are shared.

:func:`matched_width_filters` widens an encoder so its parameter count matches a target
(``shared-wide``: the shared posterior as large as the N per-rater encoders together).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.distributions import Normal


class AxisAlignedConvGaussian(nn.Module):
    """x ``[B, C_in, H, W]`` -> ``Normal(loc [B, D], scale [B, D])``."""

    def __init__(self, in_channels: int, filters: Sequence[int], convs_per_block: int, latent_dim: int):
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_channels
        for i, width in enumerate(filters):
            if i > 0:
                layers.append(nn.AvgPool2d(kernel_size=2, stride=2, ceil_mode=True))
            for _ in range(convs_per_block):
                layers += [nn.Conv2d(prev, width, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                prev = width
        self.encoder = nn.Sequential(*layers)
        self.to_params = nn.Conv2d(prev, 2 * latent_dim, kernel_size=1)
        self.latent_dim = latent_dim
        for m in self.encoder.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.normal_(m.bias, std=1e-3)
        nn.init.kaiming_normal_(self.to_params.weight, mode="fan_in", nonlinearity="linear")
        nn.init.zeros_(self.to_params.bias)

    def params(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, log_sigma)``, each ``[B, D]``."""
        h = self.encoder(x).mean(dim=(2, 3), keepdim=True)
        out = self.to_params(h).flatten(1).float()
        return out[:, : self.latent_dim], out[:, self.latent_dim:]

    def forward(self, x: torch.Tensor) -> Normal:
        mu, log_sigma = self.params(x)
        return Normal(mu, torch.exp(log_sigma.clamp(-20.0, 10.0)))


def encoder_parameter_count(in_channels: int, filters: Sequence[int], convs_per_block: int, latent_dim: int) -> int:
    """Number of parameters of an :class:`AxisAlignedConvGaussian` (3x3 convs with bias, 1x1 head)."""
    total, prev = 0, in_channels
    for width in filters:
        for _ in range(convs_per_block):
            total += 9 * prev * width + width
            prev = width
    return total + prev * 2 * latent_dim + 2 * latent_dim


def matched_width_filters(in_channels: int, filters: Sequence[int], convs_per_block: int, latent_dim: int,
                          target: int) -> tuple[int, ...]:
    """``filters`` scaled by one factor s (each width rounded, >= 1) so the encoder's parameter count is
    as close to ``target`` as any s on a 1/64 grid in [1, 8] gets; deterministic."""
    best: tuple[int, tuple[int, ...]] | None = None
    for step in range(64, 8 * 64 + 1):
        widths = tuple(max(1, round(f * step / 64)) for f in filters)
        gap = abs(encoder_parameter_count(in_channels, widths, convs_per_block, latent_dim) - target)
        if best is None or gap < best[0]:
            best = (gap, widths)
    assert best is not None
    return best[1]


class PerRaterPosteriors(nn.Module):
    """N posterior encoders ``q_i(z | x, y_i)``: independent, no shared weights (thesis eq. 3.4), or
    with ``tied=True`` one encoder applied to each rater's ``(x, y_i)`` separately."""

    def __init__(self, n_raters: int, image_channels: int, filters: Sequence[int], convs_per_block: int,
                 latent_dim: int, tied: bool = False):
        super().__init__()
        self.tied = tied
        self.n_raters = n_raters
        self.encoders = nn.ModuleList(
            AxisAlignedConvGaussian(image_channels + 1, filters, convs_per_block, latent_dim)
            for _ in range(1 if tied else n_raters)
        )
        self.latent_dim = latent_dim

    def encoder(self, i: int) -> AxisAlignedConvGaussian:
        """The encoder that reads rater i's mask (the single one when tied)."""
        return self.encoders[0 if self.tied else i]

    def encode_present(self, x: torch.Tensor, masks: torch.Tensor, present: torch.Tensor
                       ) -> list[tuple[int, torch.Tensor, Normal]]:
        """For each rater i with at least one present image: ``(i, image_index [n_i], q_i)``.

        Encoder i runs on ``cat(x, y_i)`` of the images where rater i is present, nothing else:
        absent raters' encoders do no work and receive no gradient (tied: the one encoder runs once
        per present rater, and an absent rater's slot contributes nothing).
        """
        out = []
        for i in range(self.n_raters):
            encoder = self.encoder(i)
            idx = torch.nonzero(present[:, i], as_tuple=False).flatten()
            if idx.numel() == 0:
                continue
            if idx.numel() == x.shape[0]:
                inp = torch.cat([x, masks[:, i: i + 1]], dim=1)
            else:
                inp = torch.cat([x.index_select(0, idx), masks.index_select(0, idx)[:, i: i + 1]], dim=1)
            out.append((i, idx, encoder(inp)))
        return out

    def encode_batched(self, x: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """All N encoders at once (every rater present): ``(loc, scale)``, each ``[B, N, D]``.

        The N weight sets are stacked and one encoder is vmapped over them (``torch.func``), which
        PyTorch runs as batched/grouped convolutions: the form a GPU may prefer. The encoders stay
        independent: rater i's input only meets encoder i's weights.
        """
        if self.tied:   # one encoder on the B*N (image, rater mask) pairs
            b, n = masks.shape[:2]
            inputs = torch.cat([x.unsqueeze(1).expand(-1, n, -1, -1, -1), masks.unsqueeze(2)], dim=2)
            mu, log_sigma = self.encoders[0].params(inputs.flatten(0, 1))
            return mu.view(b, n, -1), torch.exp(log_sigma.clamp(-20.0, 10.0)).view(b, n, -1)
        from torch.func import functional_call, vmap

        view = _ParamsView(self.encoders[0])
        names = [n for n, _ in self.encoders[0].named_parameters()]
        stacked = {f"m.{n}": torch.stack([dict(e.named_parameters())[n] for e in self.encoders]) for n in names}
        inputs = torch.cat([x.unsqueeze(1).expand(-1, masks.shape[1], -1, -1, -1), masks.unsqueeze(2)], dim=2)
        mu, log_sigma = vmap(lambda p, inp: functional_call(view, p, (inp,)), in_dims=(0, 1), out_dims=1)(
            stacked, inputs)
        return mu, torch.exp(log_sigma.clamp(-20.0, 10.0))

    def forward(self, x: torch.Tensor, masks: torch.Tensor, present: torch.Tensor) -> Normal:
        """``Normal`` with loc/scale ``[B, N, D]``; rows of absent raters are NaN."""
        b, n = present.shape
        loc = torch.full((b, n, self.latent_dim), float("nan"), device=x.device)
        scale = torch.full_like(loc, float("nan"))
        for i, idx, q in self.encode_present(x, masks, present):
            loc[idx, i] = q.loc
            scale[idx, i] = q.scale
        return Normal(loc, scale, validate_args=False)



class _ParamsView(nn.Module):
    """``(mu, log_sigma)`` of a wrapped encoder as plain tensors (for ``torch.func.vmap``)."""

    def __init__(self, m: AxisAlignedConvGaussian):
        super().__init__()
        self.m = m

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.m.params(x)


class MiTGaussian(nn.Module):
    """The thesis's section 3.3 reading of "MiT-B2": the shared posterior's encoder is a Segformer
    MiT-B2 (``transformers``, random init, hidden 64/128/320/512, depths 3/4/6/3) on ``(x, masks)``;
    its last stage is averaged over space and a 1x1 map gives ``(mu, log_sigma)``. Same interface
    as :class:`AxisAlignedConvGaussian`."""

    def __init__(self, in_channels: int, latent_dim: int):
        super().__init__()
        from transformers import SegformerConfig, SegformerModel

        cfg = SegformerConfig(num_channels=in_channels, hidden_sizes=[64, 128, 320, 512], depths=[3, 4, 6, 3],
                              num_attention_heads=[1, 2, 5, 8], sr_ratios=[8, 4, 2, 1], drop_path_rate=0.0)
        self.encoder = SegformerModel(cfg)
        self.to_params = nn.Linear(cfg.hidden_sizes[-1], 2 * latent_dim)
        # start near q = N(0, I): the transformer's features are not normalised, and a default-init
        # map gave log sigma at the clamp (KL ~ 1e7) in the first steps
        nn.init.normal_(self.to_params.weight, std=1e-3)
        nn.init.zeros_(self.to_params.bias)
        self.latent_dim = latent_dim

    def params(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(pixel_values=x.contiguous()).last_hidden_state.mean(dim=(2, 3))
        out = self.to_params(h).float()
        return out[:, : self.latent_dim], out[:, self.latent_dim:]

    def forward(self, x: torch.Tensor) -> Normal:
        mu, log_sigma = self.params(x)
        return Normal(mu, torch.exp(log_sigma.clamp(-20.0, 10.0)))
