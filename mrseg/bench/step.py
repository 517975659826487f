"""Train-step benchmark: shared vs per-rater posteriors, optimised vs naive (``python -m mrseg bench step``).

Both models get the same optimisations (FComb's feature half computed once, latent samples as a
per-sample bias, channels_last), so ``ratio = per_rater_s / shared_s`` isolates the cost of the
N posterior encoders. The naive variants loop over N separately built encoders and decode every
sample with the textbook concat(features, tiled z) + 1x1-conv FComb; their loss must equal the
optimised one (``max_abs_loss_diff``) for the same weights and random draws.
"""

from __future__ import annotations

import copy
import math
import os
import statistics
import time
from typing import Any

import torch
from torch import nn

from mrseg.config import RunConfig
from mrseg.device import resolve_device
from mrseg.losses import bound_loss, kl_term, l2_penalty, regularised_parameters, soft_dice_loss, stage1_losses
from mrseg.models import build_model


def naive_stage1_losses(model: Any, encoders: nn.ModuleList | None, x: torch.Tensor, masks: torch.Tensor,
                        present: torch.Tensor, config: Any) -> dict[str, torch.Tensor]:
    """Straightforward Stage 1 loss of ``shared`` / ``per-rater`` with every rater present, in the
    ``thesis-eq`` objective with the ``soft-dice`` criterion (every rater, per-image soft Dice).

    ``encoders``: N separately built posterior encoders (per-rater) or ``None`` (shared, uses the
    model's posterior). Every decode is ``fcomb.forward_naive``; the random draws come in the same
    order as in :func:`mrseg.losses.stage1_losses`, so both give the same value.
    """
    if not bool(present.all()):
        raise ValueError("naive_stage1_losses expects every rater present")
    feats = model.features(x)
    p = model.prior(x)
    n = masks.shape[1]
    if encoders is not None:
        qs = [enc(torch.cat([x, masks[:, i: i + 1]], dim=1)) for i, enc in enumerate(encoders)]
        zs = [q.rsample() for q in qs]
        recon = torch.stack([soft_dice_loss(torch.sigmoid(model.fcomb.forward_naive(feats, z)[:, 0]), masks[:, i])
                             for i, z in enumerate(zs)], 1).mean(1)
        kl = torch.stack([kl_term(q, p) for q in qs], 1).mean(1)
        posterior_modules = list(encoders)
    else:
        q = model.posterior_net(torch.cat([x, masks], dim=1))
        probs = torch.sigmoid(model.fcomb.forward_naive(feats, q.rsample()))
        recon = torch.stack([soft_dice_loss(probs[:, 0], masks[:, i]) for i in range(n)], 1).mean(1)
        kl = kl_term(q, p)
        posterior_modules = [model.posterior_net]
    zk = p.rsample((config.bound_samples,))
    prior_logits = torch.cat([model.fcomb.forward_naive(feats, z) for z in zk], dim=1)
    bound = bound_loss(prior_logits, masks, present).mean()
    l2 = l2_penalty(regularised_parameters(model, posterior_modules))
    loss = recon.mean() + config.kl_weight * kl.mean() + config.beta_bound * bound + config.l2_weight * l2
    return {"loss": loss, "recon": recon.mean(), "kl": kl.mean(), "bound": bound, "l2": l2}


RATIO_SPREAD_LIMIT = 0.25   # per-round ratios further apart than this share of their median: not trusted
CPU_SHARE_MIN = 0.7         # CPU seconds per wall second per thread below this: the cores were shared


def ratio_dispersion(a_walls: list[float], b_walls: list[float], cpu_share: float, load_before: float,
                     load_after: float) -> dict[str, Any]:
    """How far a time ratio a/b can be trusted: the per-round ratios (each round times both
    variants back to back, so load that changes between rounds cancels within one) with their
    minimum, maximum and ``ratio_spread`` ((max - min) / median); ``cpu_share``: CPU seconds per
    wall second per torch thread over the timed steps (near 1 when the benchmark had its cores to
    itself; other work on the machine takes cores away and lowers it); the 1-minute load averages
    are recorded as they were. ``ratio_trusted``: at least 3 rounds, a spread within
    :data:`RATIO_SPREAD_LIMIT` and a CPU share of at least :data:`CPU_SHARE_MIN`;
    ``ratio_caveat`` says why not."""
    rounds = [a / b for a, b in zip(a_walls, b_walls) if b > 0]
    out: dict[str, Any] = {"ratio_rounds": [round(r, 3) for r in rounds], "cpu_share": round(cpu_share, 3),
                           "load_before": round(load_before, 2), "load_after": round(load_after, 2),
                           "cpus": os.cpu_count() or 1}
    if not rounds:
        return {**out, "ratio_trusted": False, "ratio_caveat": "no round timed"}
    median = statistics.median(rounds)
    spread = (max(rounds) - min(rounds)) / median if median > 0 else math.inf
    out.update(ratio_min=round(min(rounds), 3), ratio_max=round(max(rounds), 3), ratio_spread=round(spread, 3))
    caveats = []
    if len(rounds) < 3:
        caveats.append(f"{len(rounds)} round{'s' if len(rounds) != 1 else ''}: dispersion unknown")
    elif spread > RATIO_SPREAD_LIMIT:
        caveats.append(f"rounds disagree (ratios {min(rounds):.2f} to {max(rounds):.2f})")
    if cpu_share < CPU_SHARE_MIN:
        caveats.append(f"other work took CPU from the benchmark ({cpu_share:.0%} of its threads' time)")
    return {**out, "ratio_trusted": not caveats, "ratio_caveat": "; ".join(caveats)}


def separate_encoders(model: Any) -> nn.ModuleList:
    """N separately built encoder modules holding copies of the per-rater model's weights."""
    return nn.ModuleList(copy.deepcopy(enc) for enc in model.posteriors.encoders)


def _batch(config: RunConfig, n_raters: int, device: torch.device, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    s = config.image_size
    x = torch.rand(config.batch_size, 1, s, s, generator=g)
    yy, xx = torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij")
    radius = torch.rand(config.batch_size, n_raters, 1, 1, generator=g) * s / 8 + s / 16
    masks = (((yy - s / 2) ** 2 + (xx - s / 2) ** 2).sqrt() < radius).float()
    present = torch.ones(config.batch_size, n_raters, dtype=torch.bool)
    if config.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x.to(device), masks.to(device), present.to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def step_benchmark(profile: str = "paper", repeats: int = 3, device: str = "cpu", n_raters: int = 4,
                   threads: int | None = None, naive: bool = True) -> dict[str, Any]:
    """Median seconds per training step (forward, backward, Adam) at ``profile``'s configuration.

    Every variant is warmed up once right after ``torch.manual_seed(123)`` (that step's loss is
    compared across variants), then the variants are timed round-robin, ``repeats`` rounds, so a
    change in machine load affects all of them alike. ``*_cpu_s`` are CPU seconds of this process.
    """

    dev = resolve_device(device)
    if dev.type == "cpu" and threads:
        torch.set_num_threads(threads)
    result: dict[str, Any] = {"profile": profile, "device": str(dev), "threads": torch.get_num_threads()}
    steps: dict[str, Any] = {}
    losses: dict[str, float] = {}
    # thesis-eq + soft-dice: the form the naive reference computes (the step's cost is the same
    # under dpersona-code + gdl: one decode per posterior sample either way)
    fixed = dict(objective="thesis-eq", criterion="soft-dice")
    for name in ("shared", "per-rater"):
        config = RunConfig.from_profile(profile, model=name, device=str(dev.type), **fixed)
        x, masks, present = _batch(config, n_raters, dev)
        torch.manual_seed(config.seed)
        model = build_model(config, n_raters=n_raters).to(dev)
        if config.channels_last:
            model = model.to(memory_format=torch.channels_last)
        encoders = separate_encoders(model).to(dev) if name == "per-rater" else None
        variants = {"": lambda m=model, c=config, b=(x, masks, present): stage1_losses(m, *b, c)}
        if name == "per-rater":   # the other per-rater implementation (vmapped encoders / grouped convs)
            other = "loop" if dev.type == "cuda" else "batched"
            other_config = RunConfig.from_profile(profile, model=name, device=str(dev.type), per_rater_impl=other,
                                                  **fixed)
            variants[f"{other}_"] = lambda m=model, c=other_config, b=(x, masks, present): stage1_losses(m, *b, c)
        if naive:
            variants["naive_"] = (lambda m=model, e=encoders, c=config, b=(x, masks, present):
                                  naive_stage1_losses(m, e, *b, c))
        trainable = list(model.parameters()) + (list(encoders.parameters()) if encoders is not None else [])
        opt = torch.optim.Adam(trainable, lr=0.0)   # lr 0: the timed steps leave the weights unchanged
        for prefix, fn in variants.items():
            def step(fn=fn, opt=opt):
                loss = fn()["loss"]
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                return float(loss.detach())

            key = f"{prefix}{name.replace('-', '_')}"
            torch.manual_seed(123)
            losses[key] = step()                     # warm-up, and the loss compared across variants
            steps[key] = step
    walls: dict[str, list[float]] = {k: [] for k in steps}
    cpus: dict[str, list[float]] = {k: [] for k in steps}
    load_before = os.getloadavg()[0]
    for _ in range(repeats):
        for key, step in steps.items():
            _sync(dev)
            t, c = time.perf_counter(), time.process_time()
            step()
            _sync(dev)
            walls[key].append(time.perf_counter() - t)
            cpus[key].append(time.process_time() - c)
    for key in steps:
        result[f"{key}_s"] = round(statistics.median(walls[key]), 4)
        result[f"{key}_min_s"] = round(min(walls[key]), 4)
        result[f"{key}_max_s"] = round(max(walls[key]), 4)
        result[f"{key}_cpu_s"] = round(statistics.median(cpus[key]), 4)
    result["ratio"] = round(result["per_rater_s"] / result["shared_s"], 3)
    wall_total, cpu_total = sum(map(sum, walls.values())), sum(map(sum, cpus.values()))
    cpu_share = (cpu_total / wall_total / result["threads"] if wall_total > 0 else 0.0) if dev.type == "cpu" else math.nan
    result.update(ratio_dispersion(walls["per_rater"], walls["shared"], cpu_share, load_before, os.getloadavg()[0]))
    result["ratio_cpu"] = round(result["per_rater_cpu_s"] / result["shared_cpu_s"], 3)
    result["per_rater_impl"] = "batched" if dev.type == "cuda" else "loop"
    for other in ("loop", "batched"):
        if f"{other}_per_rater_s" in result:
            result[f"{other}_ratio"] = round(result[f"{other}_per_rater_s"] / result["shared_s"], 3)
    if naive:
        result["naive_ratio"] = round(result["naive_per_rater_s"] / result["naive_shared_s"], 3)
        result["naive_ratio_cpu"] = round(result["naive_per_rater_cpu_s"] / result["naive_shared_cpu_s"], 3)
        result["naive_per_rater_vs_shared"] = round(result["naive_per_rater_s"] / result["shared_s"], 3)
        result["max_abs_loss_diff"] = max(abs(losses[k] - losses["naive_" + k]) for k in ("shared", "per_rater")
                                          if dev.type != "cuda" or k == "shared")
    config = RunConfig.from_profile(profile)
    result.update(image_size=config.image_size, batch_size=config.batch_size, backbone=config.backbone,
                  bound_samples=config.bound_samples, n_raters=n_raters, repeats=repeats)
    return result
