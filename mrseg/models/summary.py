"""Parameter counts of a model by part: ``python -m mrseg model summary --profile P --model M``.

Parts: ``backbone`` (segmentation U-Net), ``prior``, ``posterior`` (all posterior encoders
together), ``fcomb``, ``stage2`` (projection heads; 0 for Stage 1 models) and ``total``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from mrseg.models import build_model

PARTS = ("backbone", "prior", "posterior", "fcomb", "stage2", "total")


def _count(module: nn.Module | None) -> int:
    return sum(p.numel() for p in module.parameters()) if module is not None else 0


def parameter_summary(config: Any, n_raters: int = 4, in_channels: int = 1) -> dict[str, int]:
    """``{"backbone", "prior", "posterior", "fcomb", "stage2", "total"}`` for ``config``'s model."""

    model = build_model(config, n_raters=n_raters, in_channels=in_channels)
    posterior = model.posteriors if model.is_per_rater else model.posterior_net
    out = {"backbone": _count(model.backbone), "prior": _count(model.prior_net), "posterior": _count(posterior),
           "fcomb": _count(model.fcomb), "stage2": _count(model.stage2)}
    out["total"] = _count(model)
    if out["total"] != sum(out[k] for k in PARTS[:-1]):
        raise RuntimeError(f"parameter parts do not add up to the total for {config.model}: {out}")
    return out
