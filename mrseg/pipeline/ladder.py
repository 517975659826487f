"""The rungs of the capacity ladder a plan trains, each with its network's size.

Rung 0 is the profile's own network (its main and sparsity runs); the rungs above it are the
``<rung>__<row>`` rows of the plan's scale study (:mod:`mrseg.scoring.ladder`), whose config
overrides widen or deepen the small U-Net or change its input size (:data:`RUNG_FIELDS`). Sizes are
counted by building the models (:func:`mrseg.models.summary.parameter_summary`), never typed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from mrseg.config import NETWORK_FIELDS, RunConfig
from mrseg.pipeline.plan import read_plan
from mrseg.scoring.ladder import SCALE_STUDY, split_rung_row

THESIS_PROFILE = "paper"   # the thesis's network: the paper profile's ResNet-34 U-Net
RUNG_FIELDS: tuple[str, ...] = ("backbone", *NETWORK_FIELDS, "image_size")   # what a rung's rows may change


@dataclass(frozen=True)
class Rung:
    """One network size: ``label`` (``w<base channels>c<convs per block>``), the network fields that
    make it (``network``), its parameter counts (U-Net backbone; shared and per-rater Stage 1 models in
    total), its image size and whether it is the profile's own network (rung 0); its backbone's
    receptive field in pixels is measured when first asked for (:func:`receptive_field`)."""

    label: str
    network: dict[str, Any] = field(default_factory=dict)
    backbone_parameters: int = 0
    shared_parameters: int = 0
    per_rater_parameters: int = 0
    image_size: int = 0
    own_network: bool = False

    @property
    def backbone(self) -> str:
        """The backbone's name (``unet-small`` unless the rung changes it)."""
        return str(self.network.get("backbone", "unet-small"))

    @property
    def receptive_field(self) -> int:
        """The backbone's receptive field in pixels (:func:`receptive_field`; measured on first use)."""
        net = self.network
        return _receptive_field(self.backbone, int(net.get("feature_channels", 8)),
                                int(net.get("base_channels", 8)), self.image_size)

    @property
    def receptive_field_share(self) -> float:
        """The backbone's receptive field as a share of the image's width (1.0: it sees the whole patch)."""
        return self.receptive_field / self.image_size if self.image_size else float("nan")

    @property
    def description(self) -> str:
        """``w32c2 (1.2M backbone parameters, 64 px)``."""
        return f"{self.label} ({parameter_text(self.backbone_parameters)} backbone parameters, {self.image_size} px)"


def parameter_text(n: int) -> str:
    """``42k``, ``1.2M``: a parameter count in words a table can hold."""
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


def network_label(config: RunConfig) -> str:
    """``w<base channels>c<convs per block>`` of a small U-Net; the backbone's name otherwise."""
    return f"w{config.base_channels}c{config.convs_per_block}" if config.backbone == "unet-small" else config.backbone


def receptive_field(config: RunConfig) -> int:
    """The backbone's receptive field in pixels at ``config.image_size``, measured: the width of the
    input region whose pixels have a non-zero gradient on the output's centre pixel (every feature
    channel; a randomly initialised backbone in eval mode, a random image). Capped by the image's width."""
    return _receptive_field(config.backbone, config.feature_channels, config.base_channels, config.image_size)


@lru_cache(maxsize=32)
def _receptive_field(backbone: str, feature_channels: int, base_channels: int, size: int, seed: int = 0) -> int:
    import torch

    from mrseg.models.backbones import build_backbone

    torch.manual_seed(seed)
    net = build_backbone(backbone, 1, feature_channels, base_channels).eval()
    x = torch.randn(1, 1, size, size, requires_grad=True)
    net(x)[0, :, size // 2, size // 2].sum().backward()
    touched = x.grad[0, 0].abs() > 0
    rows, cols = touched.any(1).nonzero().flatten(), touched.any(0).nonzero().flatten()
    if not len(rows):
        return 0
    return int(max(rows.max() - rows.min(), cols.max() - cols.min())) + 1


def _rung(config_of: Any, label: str, own: bool) -> Rung:
    from mrseg.models.summary import parameter_summary

    shared, per_rater = config_of("shared"), config_of("per-rater")
    counts = parameter_summary(shared)
    return Rung(label=label, network={k: getattr(shared, k) for k in ("backbone", *NETWORK_FIELDS)},
                backbone_parameters=counts["backbone"], shared_parameters=counts["total"],
                per_rater_parameters=parameter_summary(per_rater)["total"], image_size=shared.image_size,
                own_network=own)


def ladder(plan: str = "thesis", profile: str = "reference-cpu", study: str = SCALE_STUDY,
           only: set[str] | None = None) -> list[Rung]:
    """Rung 0 (``profile``'s network) and every rung of ``plan``'s ``study`` (those in ``only`` when
    given), in order of backbone size, then image size: the last is the largest."""
    spec = read_plan(plan)
    own = RunConfig.from_profile(profile, model="shared")
    rungs = [_rung(lambda model: RunConfig.from_profile(profile, model=model), network_label(own), True)]
    overrides: dict[str, dict[str, Any]] = {}
    for row, fields in (spec["studies"].get(study, {}).get("rows") or {}).items():
        split = split_rung_row(row)
        if split and (only is None or split[0] in only):
            overrides.setdefault(split[0], {k: v for k, v in fields.items() if k in RUNG_FIELDS})
    for label, network in overrides.items():
        rungs.append(_rung(lambda model, n=network: RunConfig.from_profile(profile, model=model, **n), label, False))
    return sorted(rungs, key=lambda r: (r.backbone_parameters, r.image_size, r.label))


def thesis_network() -> Rung:
    """The thesis's network (the paper profile's), counted the same way."""
    config = RunConfig.from_profile(THESIS_PROFILE, model="shared")
    return _rung(lambda model: RunConfig.from_profile(THESIS_PROFILE, model=model), network_label(config), False)


__all__ = ["Rung", "ladder", "network_label", "parameter_text", "receptive_field", "thesis_network"]
