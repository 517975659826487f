"""How close a training step comes to this machine's arithmetic limit (``python -m mrseg bench roofline``).

- **Peak**: fp32 GFLOP/s of a large square matrix product (``torch.mm``, n = 2048 by default) on the
  configured torch threads, the best of a few repeats: what the cores deliver on the kernel that
  suits them best (the measured ceiling, not the datasheet's).
- **Per network and model**: one Stage 1 training step (forward, backward, Adam) at a profile's
  configuration (``demo``: the U-Net every converged reference run trains; ``reference``; ``paper``:
  the thesis's ResNet-34 U-Net), shared and per-rater. Its FLOPs are counted by
  ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix products, forward and
  backward; elementwise work is not counted, so the share is a lower bound on how busy the cores
  are); its time is the median of ``repeats`` timed steps after one warm-up. ``share_of_peak`` =
  achieved GFLOP/s / peak.

- **Convolution ceiling**: the share of the peak one 3x3 convolution (``c`` to ``c`` channels, forward
  and backward, channels-last, the batch and image of the demo network) reaches on its own, per width
  ``c``. A network built of such layers cannot do better than its layers do alone, so this is the
  measured ceiling of a small network's step: narrow layers move more bytes per FLOP than the cores
  can feed.

Measure with nothing else running: a step timed beside other work reads several times slower.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any, Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from mrseg.bench.step import _batch
from mrseg.config import RunConfig
from mrseg.losses import stage1_losses
from mrseg.models import build_model

NETWORKS = ("demo", "reference", "paper")
MODELS = ("shared", "per-rater")


def peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best fp32 GFLOP/s of ``torch.mm`` on two ``n x n`` matrices (2 n^3 FLOPs per product)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)   # warm-up: thread pool and caches
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e9


def flops_and_seconds(step: Callable[[], None], repeats: int) -> tuple[float, list[float]]:
    """One warm-up call of ``step``, one with torch's FLOP counter, then ``repeats`` timed calls:
    ``(FLOPs of one call, seconds of each timed call)``."""
    step()   # warm-up
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - start)
    return float(counter.get_total_flops()), seconds


def step_roofline(profile: str, model_name: str, repeats: int = 3, n_raters: int = 4) -> dict[str, Any]:
    """FLOPs and seconds of one training step of ``model_name`` at ``profile``'s configuration."""
    config = RunConfig.from_profile(profile, model=model_name, device="cpu")
    x, masks, present = _batch(config, n_raters, torch.device("cpu"))
    torch.manual_seed(config.seed)
    model = build_model(config, n_raters=n_raters)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=0.0)   # lr 0: the weights stay as built

    def step() -> None:
        loss = stage1_losses(model, x, masks, present, config)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    flops, seconds = flops_and_seconds(step, repeats)
    median = statistics.median(seconds)
    return {"profile": profile, "model": model_name, "backbone": config.backbone, "image_size": config.image_size,
            "batch_size": config.batch_size, "parameters": sum(p.numel() for p in model.parameters()),
            "gflop_per_step": flops / 1e9, "seconds_per_step": median, "seconds_min": min(seconds),
            "achieved_gflops": flops / median / 1e9}


CONV_WIDTHS = (8, 16, 32, 64, 128)


def conv_ceiling(widths: tuple[int, ...] = CONV_WIDTHS, image_size: int = 64, batch: int = 12,
                 repeats: int = 3) -> list[dict[str, Any]]:
    """GFLOP/s of one 3x3 convolution of each width (forward and backward) on ``[batch, c, image_size,
    image_size]`` channels-last input: FLOPs counted by torch, the median of ``repeats`` timed passes."""
    out = []
    for width in widths:
        torch.manual_seed(0)
        conv = torch.nn.Conv2d(width, width, 3, padding=1).to(memory_format=torch.channels_last)
        x = torch.randn(batch, width, image_size, image_size).to(memory_format=torch.channels_last).requires_grad_()

        def step() -> None:
            conv(x).sum().backward()

        flops, seconds = flops_and_seconds(step, repeats)
        out.append({"channels": width, "image_size": image_size, "batch_size": batch, "gflop": flops / 1e9,
                    "seconds": statistics.median(seconds), "achieved_gflops": flops / statistics.median(seconds) / 1e9})
    return out


def roofline_benchmark(networks: tuple[str, ...] = NETWORKS, models: tuple[str, ...] = MODELS, repeats: int = 3,
                       threads: int | None = None, peak_n: int = 2048,
                       conv_widths: tuple[int, ...] = CONV_WIDTHS) -> dict[str, Any]:
    """The machine's peak and each (network, model) step's FLOPs, time and share of that peak."""
    if threads:
        torch.set_num_threads(threads)
    load_before = os.getloadavg()[0]
    peak = peak_gflops(peak_n)
    steps = [step_roofline(net, model, repeats) for net in networks for model in models]
    convs = conv_ceiling(conv_widths, repeats=repeats)
    for rec in (*steps, *convs):
        rec["share_of_peak"] = rec["achieved_gflops"] / peak
    return {"threads": torch.get_num_threads(), "cpus": os.cpu_count(), "peak_gflops": peak, "peak_matrix_n": peak_n,
            "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2), "steps": steps,
            "conv_ceiling": convs}


__all__ = ["CONV_WIDTHS", "NETWORKS", "conv_ceiling", "peak_gflops", "roofline_benchmark", "step_roofline"]
