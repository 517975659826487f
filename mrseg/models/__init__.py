"""Model registry: ``build_model(config) -> ProbUNetFamily`` for every name in ``mrseg.config.MODELS``."""

from __future__ import annotations

from typing import Any

from mrseg.models.probunet import ProbUNetFamily

REGISTRY: dict[str, str] = {
    "probunet-mean": "ProbUNet trained on the pixel-wise mean mask",
    "shared": "D-Persona Stage 1: one posterior on x + all N masks (absent raters zero-filled, trained to empty)",
    "shared+s2": "D-Persona Stage 1 + Stage 2 projection heads (frozen Stage 1)",
    "per-rater": "N independent posterior encoders q_i(z|x, y_i) (the thesis's proposal)",
    "per-rater+s2": "per-rater Stage 1 + Stage 2 projection heads (ablation row 7)",
    "shared-masked": "shared posterior with absent raters' reconstruction terms dropped",
    "per-rater-tied": "one posterior encoder q(z|x, y_i) applied to each present rater, per-rater ELBO (eq. 3.5)",
    "shared-wide": "shared posterior widened to the N per-rater encoders' parameter count",
}


def build_model(config: Any, n_raters: int = 4, in_channels: int = 1) -> ProbUNetFamily:
    """The model named by ``config.model`` for ``n_raters`` raters and ``in_channels`` image channels."""
    if config.model not in REGISTRY:
        raise ValueError(f"unknown model {config.model!r}; choose from {sorted(REGISTRY)}")
    model = ProbUNetFamily(config, n_raters=n_raters, in_channels=in_channels)
    return model


__all__ = ["REGISTRY", "ProbUNetFamily", "build_model"]
