"""One training run from one :class:`~mrseg.config.RunConfig`: train, select, evaluate, record.

Layout of a run directory (``runs_dir() / config.run_id``): ``manifest.json``, ``checkpoint.pt``
(latest: model, optimizer, scheduler, RNG state, epoch, history), ``best.pt`` (selected weights),
``history.csv``, then the evaluation artefacts of :mod:`mrseg.evaluate`.

Determinism and resume: the global RNG is re-seeded from ``(seed, stage, epoch)`` at the start of
every epoch, so an interrupted run that resumes from ``checkpoint.pt`` ends with exactly the
weights of an uninterrupted one (on CPU). Non-finite losses or gradients skip the step and are
counted; ``max_bad_steps`` consecutive ones stop the run with :class:`TrainingDiverged`.
Checkpoints hold tensors and plain containers only and are read with ``weights_only=True``; one
made by other code, config or data, or one that cannot be read, is not resumed (training starts
again, with a warning for an unreadable one). One process at a time trains a run directory
(:class:`mrseg.bookkeeping.lock.RunLock`).
Stage 2 models (``*+s2``) train their heads on top of the finished Stage 1 run of the same fold
(:func:`stage1_config`), which is trained first if it does not exist.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from mrseg.bookkeeping.fingerprint import run_fingerprint, stale_reason
from mrseg.bookkeeping.lock import RunLock
from mrseg.bookkeeping.manifest import is_complete, now_iso, read_manifest, update_manifest
from mrseg.config import EXECUTION_FIELDS, RunConfig
from mrseg.data.registry import load_dataset
from mrseg.data.torch_data import SplitTensors, disagreement, draw_step, load_splits, static_present, step_generator
from mrseg.device import autocast, prepare_model, resolve_device, to_input
from mrseg.evaluate import SUMMARY, evaluate_run
from mrseg.io import atomic_path, read_json, write_csv
from mrseg.losses import Geco, fit_prior_bank, warmup_scale
from mrseg.metrics import ged_batch
from mrseg.models import build_model
from mrseg.paths import runs_dir

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
HISTORY = "history.csv"
EpochHook = Callable[[int, int], None]   # (stage, epoch) after each finished epoch


class TrainingDiverged(RuntimeError):
    """Raised when ``max_bad_steps`` consecutive steps had a non-finite loss or gradient."""


# ---- configuration helpers ---------------------------------------------------------------
def stage1_config(config: RunConfig) -> RunConfig | None:
    """The Stage 1 run a ``*+s2`` run trains from (same fold, seed, profile, data); else ``None``.

    Stage-2-only switches (orthogonality, prior bank) are dropped, so the ablation rows share the
    plain ``shared`` Stage 1 run; MiT-B2 and dual diversity change Stage 1 and are kept.
    """
    if not config.has_stage2:
        return None
    return dataclasses.replace(config, model=config.stage1_model, orthogonality=False, prior_bank_k=0,
                               ortho_weight=RunConfig.ortho_weight, stage2_epochs=0).validate()


def make_loaders(config: RunConfig, dataset: Any = None, progress: bool = False) -> dict[str, SplitTensors]:
    """Train / val / test tensors of ``config``'s dataset and fold (see :mod:`mrseg.data.torch_data`)."""
    if dataset is None:

        dataset = load_dataset(config.dataset, progress=progress, **config.dataset_options)
    return load_splits(dataset, config)


def _resumable(saved: dict[str, Any] | None, config: RunConfig) -> bool:
    """A checkpoint resumes a run when everything but the execution settings matches."""
    if not saved:
        return False
    current = config.to_dict()
    return all(saved.get(k) == v for k, v in current.items() if k not in EXECUTION_FIELDS)


def _load_checkpoint(path: Path, device: torch.device) -> dict[str, Any] | None:
    """``checkpoint.pt`` loaded with ``weights_only=True`` (tensors and plain containers only, so a
    planted pickle payload executes nothing); None, with a one-line warning, when it cannot be loaded."""
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
        if not isinstance(ckpt, dict):
            raise ValueError(f"expected a dict, got {type(ckpt).__name__}")
        return ckpt
    except Exception as err:  # noqa: BLE001 - any unreadable checkpoint means: start again
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        warnings.warn(f"{path}: checkpoint cannot be loaded ({type(err).__name__}: {first}); "
                      "training restarts from scratch", RuntimeWarning, stacklevel=2)
        return None


def _seed_epoch(seed: int, stage: int, epoch: int) -> None:
    torch.manual_seed(int(np.random.SeedSequence([seed, stage, epoch]).generate_state(1)[0]))


def _save(obj: Any, path: Path) -> None:
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(obj, tmp)


# ---- validation --------------------------------------------------------------------------
def validation_ged(model: Any, split: SplitTensors, config: RunConfig, device: torch.device) -> float:
    """Mean GED (d(empty, empty) = 0) with ``val_samples`` prior samples per case (seeded)."""

    model.eval()
    gen = torch.Generator(device=device).manual_seed(config.seed)
    values = []
    for start in range(0, len(split), config.eval_batch_size):
        x = to_input(split.image[start: start + config.eval_batch_size].to(device), config)
        with autocast(config, device):
            probs = model.sample(x, config.val_samples, generator=gen)
        sl = slice(start, start + config.eval_batch_size)
        values.append(ged_batch(probs.float().cpu() > 0.5, split.masks[sl].cpu(), present=split.present[sl].cpu()))
    return float(np.mean(np.concatenate(values)))


def validation_expert_dice(model: Any, split: SplitTensors, config: RunConfig, device: torch.device) -> float:
    """Stage 2 selection score (D-Persona's): mean over present (case, rater k) pairs of the Dice of
    head k's personalised output (binarised at 0.5) with rater k's mask; Dice(empty, empty) = 1."""
    model.eval()
    gen = torch.Generator(device=device).manual_seed(config.seed)
    n = model.n_raters
    total, count = 0.0, 0
    for start in range(0, len(split), config.eval_batch_size):
        sl = slice(start, start + config.eval_batch_size)
        x = to_input(split.image[sl].to(device), config)
        with autocast(config, device):
            probs = model.sample(x, n, generator=gen)            # sample k = head k (k < N)
        pred = (probs.float() > 0.5).flatten(2).float()
        masks = split.masks[sl].to(device).flatten(2)
        inter = (pred * masks).sum(-1)
        area = pred.sum(-1) + masks.sum(-1)
        dice = torch.where(area > 0, 2 * inter / area.clamp(min=1e-8), torch.ones_like(area))
        present = split.present[sl].to(device)
        total += float(dice[present].sum())
        count += int(present.sum())
    return total / max(count, 1)


def validation_collapse(model: Any, split: SplitTensors, config: RunConfig, device: torch.device) -> dict[str, Any]:
    """Posterior use on the validation split (:func:`mrseg.measures.collapse.measure_collapse`):
    ``kl_nats``, ``active_units`` and ``kl_dims`` [D]; deterministic (no sampling, eval mode)."""
    from mrseg.measures.collapse import measure_collapse

    def batches():
        for start in range(0, len(split), config.eval_batch_size):
            sl = slice(start, start + config.eval_batch_size)
            yield (to_input(split.image[sl].to(device), config), split.masks[sl].to(device),
                   split.present[sl].to(device))

    with torch.no_grad():
        return measure_collapse(model, batches(), per_dim=True)


def _collapse_columns(model: Any, split: SplitTensors, config: RunConfig, device: torch.device) -> dict[str, float]:
    """``val_kl``, ``val_active_units`` and ``val_kl_d<k>`` of one epoch (NaN without a latent or cases)."""
    if len(split) == 0 or not callable(getattr(model, "posterior", None)):
        return {"val_kl": math.nan, "val_active_units": math.nan}
    stats = validation_collapse(model, split, config, device)
    out = {"val_kl": stats["kl_nats"], "val_active_units": stats["active_units"]}
    out.update({f"val_kl_d{d}": v for d, v in enumerate(stats.get("kl_dims") or [])})
    return out


# ---- the training loop -------------------------------------------------------------------
def train_stage(model: Any, config: RunConfig, splits: dict[str, SplitTensors], run_dir: Path, stage: int,
                epochs: int, device: torch.device, progress: bool = True, epoch_hook: EpochHook | None = None,
                loss_fn: Callable[..., dict[str, torch.Tensor]] | None = None) -> dict[str, Any]:
    """Train ``model`` (Stage ``stage``) for ``epochs`` epochs, resuming from ``checkpoint.pt``.

    Writes checkpoint.pt every epoch, best.pt whenever the selection score improves and
    history.csv; returns ``{"best_epoch", "skipped_steps", "history"}``. Stage 1 history rows also
    hold the training KL per latent dimension (``kl_d<k>``), the posterior's use on the validation
    split (``val_kl``, ``val_active_units``, ``val_kl_d<k>``) and the KL weight's factor at the end of
    the epoch (``kl_scale``: KL warm-up times GECO's 1 / lambda).
    """
    from tqdm import tqdm

    from mrseg import losses

    loss_fn = loss_fn or (losses.stage2_losses if stage == 2 else losses.stage1_losses)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=config.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    ckpt_path, best_path = run_dir / CHECKPOINT, run_dir / BEST
    history: list[dict[str, Any]] = []
    start, best_score, best_epoch, skipped, bad = 0, math.inf, -1, 0, 0
    fingerprint = run_fingerprint(config)["code_fingerprint"]   # code, config and data the checkpoint is from
    ckpt = _load_checkpoint(ckpt_path, device) if ckpt_path.exists() else None
    if ckpt is not None:
        if (_resumable(ckpt.get("config"), config) and ckpt.get("stage") == stage
                and ckpt.get("code_fingerprint") == fingerprint):
            model.load_state_dict(ckpt["model"])
            opt.load_state_dict(ckpt["optimizer"])
            sched.load_state_dict(ckpt["scheduler"])
            start, history = ckpt["epoch"] + 1, ckpt["history"]
            best_score, best_epoch, skipped, bad = ckpt["best_score"], ckpt["best_epoch"], ckpt["skipped"], ckpt["bad"]
    geco = (Geco(config.geco_kappa, config.geco_alpha, config.geco_rate, config.geco_lambda_max,
                 state=(ckpt or {}).get("geco") if start else None)
            if stage == 1 and config.geco_kappa else None)
    train = splits["train"].to(device, pin=device.type == "cuda")
    val = splits["test"] if config.select_on == "test" else splits["val"]
    order_key = disagreement(train.masks, train.present).cpu() if config.disagreement_curriculum else None
    static = config.missing == "static"
    available = static_present(train.present, config.n_present, config.seed, config.fold) if static else train.present
    for epoch in range(start, epochs):
        t0 = time.perf_counter()
        _seed_epoch(config.seed, stage, epoch)
        # Stage 2 also runs in train mode, as D-Persona's does: the frozen Stage 1's BatchNorm
        # running statistics keep updating (its weights receive no gradient)
        model.train()
        n = len(train)
        perm = torch.randperm(n)
        if order_key is not None:   # curriculum: the least-disagreed share, growing from 1/2 to all by mid-run
            share = min(1.0, 0.5 + epoch / max(1.0, epochs / 2.0) * 0.5)
            easiest = torch.argsort(order_key)[: max(1, int(round(share * n)))]
            perm = easiest[torch.randperm(len(easiest))]
        sums: dict[str, float] = {}
        kl_dim_sums: torch.Tensor | None = None
        steps = 0
        kl_scale = 1.0
        batches = range(0, len(perm), config.batch_size)
        bar = tqdm(batches, desc=f"stage {stage} epoch {epoch + 1}/{epochs}", disable=not progress, leave=False)
        for step, s in enumerate(bar):
            idx = perm[s: s + config.batch_size].to(device)
            x = to_input(train.image.index_select(0, idx), config)
            masks = train.masks.index_select(0, idx)
            # rater draws from their own generator: identical for every model of this fold and seed
            draws = draw_step(available.index_select(0, idx), config.n_present,
                              step_generator(config.seed, config.fold, epoch, step, device), static)
            present = draws["present"]
            extra: dict[str, Any] = {}
            if stage == 1:   # anti-collapse schedules (1 unless asked for: the loss is then unchanged)
                kl_scale = (warmup_scale(epoch, step, len(batches), config.kl_warmup_epochs)
                            * (geco.kl_scale() if geco is not None else 1.0))
                if kl_scale != 1.0:
                    extra["kl_scale"] = kl_scale
            draw = config.model_variant.rater_draw
            if stage == 1 and draw is not None:   # Stage 1 of a +s2 model is a separate run
                extra["rater_index"] = draws["rater_image" if draw == "image" else "rater_batch"]
            with autocast(config, device):
                terms = loss_fn(model, x, masks, present, config, **extra)
            loss = terms["loss"]
            ok = bool(torch.isfinite(loss))
            if ok:
                opt.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm=float("inf"))
                ok = bool(torch.isfinite(grad_norm))
            if not ok:
                skipped += 1
                bad += 1
                if bad >= config.max_bad_steps:
                    raise TrainingDiverged(f"{bad} consecutive non-finite steps (stage {stage}, epoch {epoch + 1}); "
                                           f"the run is diverging: lower lr or check the data")
                continue
            bad = 0
            opt.step()
            steps += 1
            if geco is not None:
                geco.update(float(terms["recon"].detach()))
            for k, v in terms.items():
                if v.dim() == 0:
                    sums[k] = sums.get(k, 0.0) + float(v.detach())
            if "kl_dims" in terms:
                kl_dims = terms["kl_dims"].detach().float()
                kl_dim_sums = kl_dims if kl_dim_sums is None else kl_dim_sums + kl_dims
        t_steps = time.perf_counter() - t0   # the optimisation steps alone (throughput), before validation
        lr = opt.param_groups[0]["lr"]
        sched.step()
        validate = config.select_on != "last" and len(val) > 0
        val_ged = validation_ged(model, val, config, device) if validate and stage == 1 else math.nan
        # Stage 2 is selected by the mean per-expert Dice (D-Persona's criterion), Stage 1 by GED
        val_dice = validation_expert_dice(model, val, config, device) if validate and stage == 2 else math.nan
        score = val_ged if not math.isnan(val_ged) else (-val_dice if not math.isnan(val_dice) else -epoch)
        if score <= best_score or best_epoch < 0:
            best_score, best_epoch = score, epoch
            _save(model.state_dict(), best_path)
        row = {"stage": stage, "epoch": epoch + 1, "train_loss": sums.get("loss", math.nan) / max(steps, 1)}
        for k in ("recon", "kl", "bound"):
            row[k] = sums.get(k, math.nan) / max(steps, 1)
        if kl_dim_sums is not None:
            row.update({f"kl_d{d}": float(v) / max(steps, 1) for d, v in enumerate(kl_dim_sums)})
        row.update(val_ged=val_ged, val_expert_dice=val_dice, lr=lr, skipped=skipped, steps=steps,
                   train_seconds=t_steps)
        if stage == 1:
            row["kl_scale"] = (geco.kl_scale() if geco is not None else 1.0) * warmup_scale(
                epoch + 1, 0, 1, config.kl_warmup_epochs)
            row.update(_collapse_columns(model, val, config, device))
        row["seconds"] = time.perf_counter() - t0
        history.append(row)
        write_csv(run_dir / HISTORY, pd.DataFrame(history))
        _save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
               "epoch": epoch, "stage": stage, "history": history, "best_score": best_score,
               "best_epoch": best_epoch, "skipped": skipped, "bad": bad, "config": config.to_dict(),
               "code_fingerprint": fingerprint, "geco": geco.state() if geco is not None else None}, ckpt_path)
        update_manifest(run_dir, epochs_done=epoch + 1, stage=stage, skipped_steps=skipped)
        if epoch_hook is not None:
            epoch_hook(stage, epoch)
    model.load_state_dict(torch.load(best_path, map_location=device, weights_only=True))
    return {"best_epoch": best_epoch + 1, "skipped_steps": skipped, "history": history}


def machine_description(device: str = "cpu") -> dict[str, Any]:
    """Where a run ran, for its manifest: hostname, CPU count, platform, torch version and, when
    the run asks for a GPU and one is present, its name."""
    import os
    import platform

    info: dict[str, Any] = {"hostname": platform.node(), "cpus": os.cpu_count(), "machine": platform.machine(),
                            "python": platform.python_version(), "torch": torch.__version__}
    if device in ("cuda", "auto") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


# ---- Stage 2 plumbing --------------------------------------------------------------------
def _ensure_stage1(s1: RunConfig, progress: bool) -> Path:
    """The finished Stage 1 run directory; trains it when absent or stale, waits (on its lock)
    while another process trains it."""
    s1_dir = runs_dir() / s1.run_id
    run_training_and_evaluation(s1, s1_dir, progress=progress)
    return s1_dir


def _fit_prior_bank(model: Any, train: SplitTensors, config: RunConfig, device: torch.device) -> None:

    model.eval()
    with torch.no_grad():
        means = [model.prior(to_input(train.image[s: s + config.eval_batch_size].to(device), config)).loc.cpu()
                 for s in range(0, len(train), config.eval_batch_size)]
    centroids = fit_prior_bank(torch.cat(means).numpy(), config.prior_bank_k, config.seed)
    model.prior_bank = torch.as_tensor(centroids, device=device)


# ---- the public entry points --------------------------------------------------------------
def run_training_and_evaluation(config: RunConfig, run_dir: str | Path | None = None, progress: bool = True,
                                epoch_hook: EpochHook | None = None) -> dict[str, Any]:
    """Train and evaluate one run; returns the evaluation summary (``eval_summary.json``).

    A run whose manifest says ``complete`` under the same code fingerprint
    (:mod:`mrseg.bookkeeping.fingerprint`) is skipped (its summary is returned); a stale one is retrained from
    scratch; any other state resumes from the last checkpoint. One process at a time trains a run
    (:class:`mrseg.bookkeeping.lock.RunLock`): another one waits for it and then returns its summary.
    """
    config = config.validate()
    run_dir = Path(run_dir) if run_dir is not None else runs_dir() / config.run_id
    if _up_to_date(run_dir, config):
        return _summary(run_dir)
    with RunLock(run_dir):
        if _up_to_date(run_dir, config):   # finished by the process we waited for
            return _summary(run_dir)
        return _train_and_evaluate(config, run_dir, progress, epoch_hook)


def _up_to_date(run_dir: Path, config: RunConfig) -> bool:
    return is_complete(run_dir) and not stale_reason(read_manifest(run_dir), config)


def _summary(run_dir: Path) -> dict[str, Any]:

    return read_json(run_dir / SUMMARY)


def _train_and_evaluate(config: RunConfig, run_dir: Path, progress: bool, epoch_hook: EpochHook | None) -> dict[str, Any]:

    run_dir.mkdir(parents=True, exist_ok=True)
    starts = int(read_manifest(run_dir).get("train_starts") or 0) + 1
    update_manifest(run_dir, run_id=config.run_id, config=config.to_dict(), status="running", started=now_iso(),
                    error=None, epochs=config.epochs, eval_samples=config.eval_samples, selection=config.select_on,
                    train_starts=starts, host=machine_description(config.device), **run_fingerprint(config))
    try:
        device = resolve_device(config.device)
        if device.type == "cpu":
            torch.set_num_threads(config.threads)
        if config.has_stage2:
            s1_dir = _ensure_stage1(stage1_config(config), progress)

        ds = load_dataset(config.dataset, progress=progress, **config.dataset_options)
        if config.n_present > ds.n_raters:
            raise ValueError(f"n_present {config.n_present} exceeds the {ds.n_raters} raters of dataset {ds.name!r}")
        update_manifest(run_dir, dataset=ds.name, semi_synthetic=ds.semi_synthetic, device=str(device))
        splits = make_loaders(config, ds)
        update_manifest(run_dir, n_train=len(splits["train"]), n_val=len(splits["val"]), n_test=len(splits["test"]))
        torch.manual_seed(config.seed)
        model = build_model(config, n_raters=ds.n_raters, in_channels=int(ds.images.shape[1]))
        model = prepare_model(model, config, device)
        t0 = time.perf_counter()
        if config.has_stage2:
            state = torch.load(s1_dir / BEST, map_location=device, weights_only=True)
            missing, unexpected = model.load_state_dict(state, strict=False)
            if unexpected or any(not k.startswith(("stage2.", "prior_bank")) for k in missing):
                raise RuntimeError(f"Stage 1 checkpoint {s1_dir / BEST} does not match {config.model}: "
                                   f"missing {missing}, unexpected {unexpected}")
            for name, p in model.named_parameters():
                p.requires_grad_(name.startswith("stage2."))
            if config.prior_bank_k:
                _fit_prior_bank(model, splits["train"], config, device)
            result = train_stage(model, config, splits, run_dir, 2, config.stage2_epochs or config.epochs, device,
                                 progress, epoch_hook)
            result["stage1_run"] = stage1_config(config).run_id
        else:
            result = train_stage(model, config, splits, run_dir, 1, config.epochs, device, progress, epoch_hook)
        train_s = time.perf_counter() - t0
        update_manifest(run_dir, best_epoch=result["best_epoch"], skipped_steps=result["skipped_steps"],
                        stage1_run=result.get("stage1_run"),
                        model_args={"n_raters": ds.n_raters, "in_channels": int(ds.images.shape[1])})
        t1 = time.perf_counter()
        summary = evaluate_run(model, config, splits["test"], run_dir, dataset_name=ds.name,
                               semi_synthetic=ds.semi_synthetic, device=device, progress=progress)
        eval_s = time.perf_counter() - t1
        update_manifest(run_dir, status="complete", finished=now_iso(),
                        seconds={"train": round(train_s, 2), "eval": round(eval_s, 2)})
        return summary
    except BaseException as err:
        with contextlib.suppress(OSError):   # a full disk: the manifest keeps its last good state
            update_manifest(run_dir, status="failed", finished=now_iso(),
                            error=f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=8)}")
        raise


def load_trained_model(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[Any, RunConfig]:
    """The selected weights of a finished run (``best.pt``) in eval mode, and its config."""
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    if not manifest:
        raise FileNotFoundError(f"{run_dir / 'manifest.json'}: no manifest; is this a run directory?")
    config = RunConfig.from_dict(manifest["config"])
    args = manifest.get("model_args") or {"n_raters": 4, "in_channels": 1}
    model = build_model(config, **args)
    state = torch.load(run_dir / BEST, map_location=device, weights_only=True)
    if "prior_bank" in state:
        model.prior_bank = torch.zeros_like(state["prior_bank"])
    model.load_state_dict(state)
    return model.to(device).eval(), config
