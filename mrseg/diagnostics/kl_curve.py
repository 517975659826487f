"""How fast does a posterior collapse? KL(q || p) logged at every training step.

A run's ``history.csv`` holds epoch means; the thesis's architecture (the ``paper`` profile:
ResNet-34 U-Net at 128 px, batch 12, D-Persona's objective) costs too much on a CPU to train to a
plateau, but its first hundred steps are affordable and show whether, and how fast, its posterior
collapses too. :func:`kl_curve` runs those steps with the training loop's ingredients (the same
data splits, rater draws, loss and Adam at the config's learning rate; no validation, no
checkpoints) and returns one row per step::

    step, epoch, loss, recon, kl, bound, kl_d0..kl_d{D-1}, seconds

``python -m mrseg kl-curve --profile paper --model shared --steps 100`` writes it with
:func:`write_kl_curve` into ``reference/<plan>/kl-curves/<profile>/<model>.csv`` plus a JSON record of
the config, the machine and the time it took (committed with the reference results).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from mrseg.config import RunConfig

CURVE_COLUMNS: tuple[str, ...] = ("step", "epoch", "loss", "recon", "kl", "bound", "seconds")


def kl_curve(config: RunConfig, steps: int = 100, dataset: Any = None, progress: bool = True) -> pd.DataFrame:
    """Train Stage 1 of ``config`` for ``steps`` optimisation steps and log every step (see module doc)."""
    from tqdm.auto import tqdm

    from mrseg.data.registry import load_dataset
    from mrseg.data.torch_data import draw_step, load_splits, step_generator
    from mrseg.device import prepare_model, resolve_device, to_input
    from mrseg.losses import stage1_losses
    from mrseg.models import build_model

    config = config.validate()
    if config.has_stage2:
        raise ValueError(f"kl-curve traces a Stage 1 posterior; {config.model!r} is a Stage 2 model")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    device = resolve_device(config.device)
    if device.type == "cpu":
        torch.set_num_threads(config.threads)
    ds = dataset if dataset is not None else load_dataset(config.dataset, progress=progress, **config.dataset_options)
    train = load_splits(ds, config)["train"]
    torch.manual_seed(config.seed)
    model = prepare_model(build_model(config, n_raters=ds.n_raters, in_channels=int(ds.images.shape[1])), config, device)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    draw = config.model_variant.rater_draw
    rows: list[dict[str, Any]] = []
    per_epoch = max(1, -(-len(train) // config.batch_size))
    perm = torch.randperm(len(train))
    bar = tqdm(range(steps), desc=f"kl-curve {config.model}", disable=not progress)
    model.train()
    for step in bar:
        epoch, within = divmod(step, per_epoch)
        if within == 0 and step:
            perm = torch.randperm(len(train))
        idx = perm[within * config.batch_size: (within + 1) * config.batch_size]
        t0 = time.perf_counter()
        draws = draw_step(train.present.index_select(0, idx), config.n_present,
                          step_generator(config.seed, config.fold, epoch, within, "cpu"))
        extra = {"rater_index": draws["rater_image" if draw == "image" else "rater_batch"].to(device)} if draw else {}
        terms = stage1_losses(model, to_input(train.image.index_select(0, idx).to(device), config),
                              train.masks.index_select(0, idx).to(device), draws["present"].to(device), config, **extra)
        opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        opt.step()
        row = {"step": step + 1, "epoch": epoch + 1,
               **{k: float(terms[k].detach()) for k in ("loss", "recon", "kl", "bound")},
               **{f"kl_d{d}": float(v) for d, v in enumerate(terms["kl_dims"].detach().cpu())},
               "seconds": time.perf_counter() - t0}
        rows.append(row)
        bar.set_postfix(kl=f"{row['kl']:.3g}")
    return pd.DataFrame(rows)


def kl_curve_folder(profile: str, plan: str = "thesis") -> Path:
    """Where the curves of ``profile`` are kept: ``reference/<plan>/kl-curves/<profile>/``."""
    from mrseg.paths import reference_root

    return reference_root() / plan / "kl-curves" / profile


def write_kl_curve(config: RunConfig, steps: int, folder: Path | None = None, progress: bool = True) -> Path:
    """:func:`kl_curve` written to ``<folder>/<model>.csv`` (atomically) with ``<model>.json`` beside it
    (config, steps, seconds, machine); returns the CSV's path."""
    from mrseg.bookkeeping.machine import machine_facts
    from mrseg.io import write_csv, write_json

    folder = Path(folder) if folder is not None else kl_curve_folder(config.profile)
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    curve = kl_curve(config, steps, progress=progress)
    path = folder / f"{config.model}.csv"
    write_csv(path, curve)
    write_json(folder / f"{config.model}.json",
               {"model": config.model, "profile": config.profile, "steps": steps, "config": config.to_dict(),
                "seconds": round(time.perf_counter() - started, 1), "machine": machine_facts(config.threads)})
    return path


def read_kl_curves(profile: str = "paper", plan: str = "thesis") -> dict[str, pd.DataFrame]:
    """The committed curves of ``profile``: ``{model: table}`` (empty when none were recorded)."""
    folder = kl_curve_folder(profile, plan)
    return {p.stem: pd.read_csv(p) for p in sorted(folder.glob("*.csv"))} if folder.exists() else {}


__all__ = ["CURVE_COLUMNS", "kl_curve", "kl_curve_folder", "read_kl_curves", "write_kl_curve"]
