"""Where tensors run: device choice, bf16 autocast and the memory format of models and inputs.

Shared by training and evaluation (:mod:`mrseg.train`, :mod:`mrseg.evaluate`).
"""

from __future__ import annotations

import contextlib

import torch

from mrseg.config import RunConfig


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> cuda, then mps, then cpu; an unavailable explicit device is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch.cuda.is_available() is False")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise RuntimeError("device 'mps' requested but MPS is not available")
    return torch.device(name)


def autocast(config: RunConfig, device: torch.device):
    """bf16 autocast on CUDA when ``config.amp``; a no-op elsewhere (CPU results unchanged)."""
    if config.amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def prepare_model(model: torch.nn.Module, config: RunConfig, device: torch.device) -> torch.nn.Module:
    """``model`` on ``device``, in channels-last memory format when ``config.channels_last``."""
    model = model.to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def to_input(x: torch.Tensor, config: RunConfig) -> torch.Tensor:
    """An input batch ``[B, C, H, W]`` in the memory format the model was prepared in."""
    return x.contiguous(memory_format=torch.channels_last) if config.channels_last else x


__all__ = ["autocast", "prepare_model", "resolve_device", "to_input"]
