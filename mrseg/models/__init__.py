"""Model registry: ``build_model(config) -> ProbUNetFamily`` for every name in ``mrseg.config.MODELS``."""

from __future__ import annotations

from typing import Any

from mrseg.config import MODEL_VARIANTS
from mrseg.models.probunet import ProbUNetFamily

# Model name -> one-line description, from the declarations in mrseg.config.MODEL_VARIANTS.
REGISTRY: dict[str, str] = {name: v.description for name, v in MODEL_VARIANTS.items()}


def build_model(config: Any, n_raters: int = 4, in_channels: int = 1) -> ProbUNetFamily:
    """The model named by ``config.model`` for ``n_raters`` raters and ``in_channels`` image channels."""
    if config.model not in REGISTRY:
        raise ValueError(f"unknown model {config.model!r}; choose from {sorted(REGISTRY)}")
    model = ProbUNetFamily(config, n_raters=n_raters, in_channels=in_channels)
    return model


__all__ = ["REGISTRY", "ProbUNetFamily", "build_model"]
