"""Small views of one run directory for the per-run notebook (``notebooks/train.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from mrseg.bookkeeping.manifest import read_manifest
from mrseg.config import RunConfig
from mrseg.evaluate import CASES, META_COLUMNS
from mrseg.io import read_json
from mrseg.train import HISTORY


def run_facts(run_dir: str | Path) -> pd.DataFrame:
    """What was run and how: dataset (and whether it is semi-synthetic), model, fold, np, epochs, M,
    model selection, skipped steps and timings, as a two-column table."""
    m = read_manifest(run_dir)
    cfg = m.get("config", {})
    seconds = m.get("seconds") or {}
    facts: dict[str, Any] = {
        "run id": m.get("run_id"),
        "dataset": m.get("dataset"),
        "semi-synthetic": m.get("semi_synthetic"),
        "profile": cfg.get("profile"),
        "model": cfg.get("model"),
        "variant": RunConfig.from_dict(cfg).variant if cfg else "",
        "fold": cfg.get("fold"),
        "raters per training image (np)": cfg.get("n_present"),
        "backbone": cfg.get("backbone"),
        "image size": cfg.get("image_size"),
        "epochs": cfg.get("epochs"),
        "M samples at test time": m.get("eval_samples"),
        "model selection": m.get("selection"),
        "selected epoch": m.get("best_epoch"),
        "skipped (non-finite) steps": m.get("skipped_steps"),
        "device": m.get("device"),
        "train seconds": seconds.get("train"),
        "eval seconds": seconds.get("eval"),
        "status": m.get("status"),
    }
    return pd.DataFrame({"value": [str(v) for v in facts.values()]}, index=list(facts))


def history_figure(run_dir: str | Path):
    """Training loss terms and validation GED per epoch (``history.csv``)."""
    import matplotlib.pyplot as plt

    hist = pd.read_csv(Path(run_dir) / HISTORY)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for col in ("train_loss", "recon", "kl", "bound"):
        if col in hist and hist[col].notna().any():
            axes[0].plot(hist["epoch"], hist[col], marker=".", label=col)
    axes[0].set(xlabel="epoch", ylabel="loss (per step, mean over the epoch)", title="training terms")
    axes[0].legend(fontsize=8)
    if hist["val_ged"].notna().any():
        axes[1].plot(hist["epoch"], hist["val_ged"], marker=".", color="C3")
        axes[1].set(xlabel="epoch", ylabel="GED (d(empty, empty) = 0)", title="selection split GED")
    elif "val_expert_dice" in hist and hist["val_expert_dice"].notna().any():   # Stage 2 selection
        axes[1].plot(hist["epoch"], hist["val_expert_dice"], marker=".", color="C3")
        axes[1].set(xlabel="epoch", ylabel="mean per-expert Dice", title="selection split (Stage 2)")
    fig.tight_layout()
    return fig


def metric_summary(run_dir: str | Path) -> pd.DataFrame:
    """Mean, SD and count over test cases of every metric column of ``eval_cases.csv``."""
    table = pd.read_csv(Path(run_dir) / CASES)
    metrics = [c for c in table.columns if c not in META_COLUMNS]
    return table[metrics].agg(["mean", "std", "count"]).T.rename(columns={"std": "sd (cases)", "count": "cases"})


def collapse_table(run_dir: str | Path) -> pd.DataFrame:
    """Posterior-collapse diagnostics of ``eval_summary.json`` (:mod:`mrseg.measures.collapse`):
    KL(q || p) in nats, conditional active units of the latent dimensions, d_SS / d_YY, each
    with its definition; "no latent" for models without one, "not measured" for older runs."""
    import math

    from mrseg.evaluate import SUMMARY

    summary = read_json(Path(run_dir) / SUMMARY)
    defs = summary.get("collapse_definitions") or {}
    latent = summary.get("latent")

    def show(key: str, digits: int) -> str:
        value = summary.get(key)
        if latent is False and key != "ds_over_dyy":
            return "no latent"
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return "not measured"
        if key == "active_units":
            return f"{int(value)} of {summary.get('latent_dim')}"
        return f"{value:.{digits}g}"

    rows = {"KL(q || p), nats": ("kl_nats", 3), "active units (conditional)": ("active_units", 0),
            "d_SS / d_YY": ("ds_over_dyy", 3)}
    return pd.DataFrame({"value": [show(k, d) for k, d in rows.values()],
                         "definition": [defs.get(k, "") for k, _ in rows.values()]}, index=list(rows))
