"""Evaluation of a trained model on its test split: the per-case table and qualitative samples.

Writes into the run directory (see the run artefact contract):
- ``eval_cases.csv``: one row per test case, columns :func:`case_columns` (metadata, then the
  metrics of :func:`mrseg.metrics.evaluate_cases`: GED with d(empty, empty) = 0 and = 1
  (``ged_dpersona``), Dice_match, per-expert Dice, Dice_soft, HM-IoU, the GED terms, ``dice_match_m4``
  (Dice_match with the first 4 of the M samples); on ``synthetic-raters<N>`` datasets also
  ``ged_true``, ``style_recovery``, ``recovered_<style>`` and ``best_dice_<style>`` of
  :mod:`mrseg.measures.styles`);
- ``eval_summary.json``: means of the metric columns plus ``M``, ``n_cases``, ``semi_synthetic``,
  and the posterior-collapse diagnostics of :mod:`mrseg.measures.collapse` (``kl_nats``,
  ``active_units``, ``ds_over_dyy``, ...);
- ``samples.npz``: the 6 test cases with the highest inter-rater disagreement (``d_yy``):
  ``image [k,C,H,W]``, ``raters [k,N,H,W]``, ``probs [k,4,H,W]``, ``case_ids [k]``.
Evaluation always uses every rater a case has (``present``), whatever the training sparsity.
Samples are drawn with a generator seeded by ``config.seed``, so evaluation is reproducible.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from mrseg.data.torch_data import SplitTensors
from mrseg.device import autocast, to_input
from mrseg.io import write_csv, write_json, write_npz
from mrseg.measures.collapse import collapse_summary
from mrseg.measures.styles import controlled_metrics
from mrseg.metrics import dice_match_batch, evaluate_cases

CASES = "eval_cases.csv"
SUMMARY = "eval_summary.json"
SAMPLES = "samples.npz"
META_COLUMNS = ("run_id", "dataset", "model", "variant", "n_present", "fold", "seed", "profile", "epochs",
                "case_id", "patient_id", "nodule_id", "M")
N_QUALITATIVE = 6
N_QUALITATIVE_SAMPLES = 4
DICE_MATCH_SMALL_M = 4


def case_columns(n_raters: int) -> list[str]:
    """The exact column order of ``eval_cases.csv``."""
    return [*META_COLUMNS, "ged", "ged_dpersona", "dice_match", *(f"dice_expert_{i}" for i in range(n_raters)),
            "dice_soft", "hm_iou", "d_sy", "d_ss", "d_yy", "dice_match_m4"]


def predict(model: Any, split: SplitTensors, M: int, config: Any, device: torch.device,
            progress: bool = False):
    """Yield ``(slice, probs [b, M, H, W] float32 numpy)`` over the split, seeded."""
    from tqdm import tqdm


    model.eval()
    gen = torch.Generator(device=device).manual_seed(config.seed + 1)
    starts = range(0, len(split), config.eval_batch_size)
    for start in tqdm(starts, desc="evaluate", disable=not progress, leave=False):
        sl = slice(start, min(start + config.eval_batch_size, len(split)))
        x = to_input(split.image[sl].to(device), config)
        with autocast(config, device):
            probs = model.sample(x, M, generator=gen)
        yield sl, probs.float().cpu().numpy()


def evaluate_run(model: Any, config: Any, split: SplitTensors, run_dir: str | Path, *, dataset_name: str,
                 semi_synthetic: bool, device: torch.device | str = "cpu", progress: bool = False) -> dict[str, Any]:
    """Evaluate ``model`` on ``split`` with ``config.eval_samples`` samples; write and return the summary."""

    if len(split) == 0:
        raise ValueError(f"{config.run_id}: the test split of fold {config.fold} is empty")
    device = torch.device(device)
    frames, first, truth = [], [], []
    for sl, probs in predict(model, split, config.eval_samples, config, device, progress):
        masks, present = split.masks[sl].numpy(), split.present[sl].numpy()
        frame = evaluate_cases(probs, masks, present=present)
        # Dice_match with the first DICE_MATCH_SMALL_M samples: Stage 1's "best N of M" matching
        # gets easier as M grows, Stage 2 gives ~N head codes; both are shown.
        frame["dice_match_m4"] = (dice_match_batch(probs[:, :DICE_MATCH_SMALL_M] > 0.5, masks, present=present)[0]
                                  if probs.shape[1] > DICE_MATCH_SMALL_M else frame["dice_match"])
        frames.append(frame)
        first.append(probs[:, :N_QUALITATIVE_SAMPLES].astype(np.float16))
        # controlled-raters datasets: metrics against the raters' known style distributions
        truth.append(controlled_metrics(dataset_name, dict(config.dataset_options), split.index[sl], probs > 0.5))
    metrics = pd.concat(frames, ignore_index=True)
    n = int(split.masks.shape[1])
    meta = {"run_id": config.run_id, "dataset": dataset_name, "model": config.model, "variant": config.variant,
            "n_present": config.n_present, "fold": config.fold, "seed": config.seed, "profile": config.profile,
            "epochs": config.epochs}
    table = pd.DataFrame({k: [v] * len(split) for k, v in meta.items()})
    for col in ("case_id", "patient_id", "nodule_id"):
        table[col] = split.cases[col].to_numpy() if col in split.cases.columns else ""
    table = pd.concat([table, metrics.reset_index(drop=True)], axis=1)[case_columns(n)]
    if truth and truth[0] is not None:
        table = pd.concat([table, pd.concat(truth, ignore_index=True)], axis=1)
    run_dir = Path(run_dir)
    write_csv(run_dir / CASES, table)
    metric_cols = [c for c in table.columns if c not in META_COLUMNS]
    summary: dict[str, Any] = {c: float(np.nanmean(table[c].to_numpy(dtype=float))) for c in metric_cols}
    summary.update(M=int(config.eval_samples), n_cases=len(table), semi_synthetic=bool(semi_synthetic),
                   run_id=config.run_id)
    summary.update(collapse_summary(model, split.image, split.masks, split.present, table, config.eval_batch_size,
                                    lambda x: to_input(x, config), device))
    write_json(run_dir / SUMMARY, summary)
    probs4 = np.concatenate(first)
    top = np.argsort(-table["d_yy"].to_numpy(), kind="stable")[:N_QUALITATIVE]
    write_npz(run_dir / SAMPLES, image=split.image[top].numpy(), raters=split.masks[top].numpy().astype(np.uint8),
              probs=probs4[top].astype(np.float32), case_ids=table["case_id"].to_numpy()[top].astype(str))
    return summary
