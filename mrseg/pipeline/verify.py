"""Reproducibility check of a committed reference export: retrain some of its runs here and compare.

``python -m mrseg reference verify --runs K`` picks K committed runs (by default the cheapest
Stage 1 runs whose config was trained with two or more seeds, so that a seed-to-seed spread exists
to judge them by), retrains each from scratch under ``runs/verify/`` (resumable, never touching the
plan's own run folders), and writes ``verify.json`` beside the export's ``index.json``::

    {"plan", "profile", "verified", "machine": {...this machine...},
     "runs": [{run_id, model, fold, seed, n_present, stale_at_verify, best_epoch_committed,
               best_epoch_here, machine_committed, seconds_here,
               metrics: [{metric, committed, here, difference, seed_sd, n_seeds, sd_units, reading}]}]}

Exact reruns across machines are not to be expected (other vector units round sums differently,
and training amplifies that); what is checked is that a retrained run lands within the spread
between seeds of the same config. ``reading`` says "within the seed spread" when the difference is
at most two seed-to-seed SDs.
"""

from __future__ import annotations

import fnmatch
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pandas as pd

from mrseg.bookkeeping.fingerprint import stale_reason
from mrseg.bookkeeping.machine import machine_facts
from mrseg.bookkeeping.manifest import is_complete, now_iso, read_manifest
from mrseg.config import Metric, RunConfig
from mrseg.io import read_json, write_json
from mrseg.paths import runs_dir
from mrseg.pipeline.reference import CASES_FILE, ReferenceResults, load_reference, reference_folder

VERIFY_FILE = "verify.json"
VERIFY_METRICS: tuple[str, ...] = (Metric.GED, Metric.GED_DPERSONA, Metric.DICE_MATCH)
WITHIN_SDS = 2.0


def seed_spread(ref: ReferenceResults, model: str, n_present: int, fold: int, metric: str) -> tuple[float, int]:
    """SD over seeds (ddof 1) of ``metric`` among the export's runs of one config (model, np, fold)
    and how many seeds it rests on; NaN when fewer than two."""
    pf = ref.per_fold
    if pf is None or pf.empty or metric not in pf:
        return math.nan, 0
    runs = pf.drop_duplicates("run_id")
    same = runs[(runs["model"].astype(str) == model) & (runs["n_present"].astype(int) == int(n_present))
                & (runs["fold"].astype(int) == int(fold))]
    values = pd.to_numeric(same[metric], errors="coerce").dropna()
    return (float(values.std(ddof=1)) if len(values) > 1 else math.nan), int(len(values))


def choose_runs(ref: ReferenceResults, k: int, only: str | None = None) -> list[str]:
    """Run ids to verify: those matching the comma-separated globs ``only`` (export order), else
    the ``k`` cheapest Stage 1 runs (train seconds in the index) whose config has two or more seeds."""
    runs = ref.index.get("runs") or []
    if only:
        patterns = [p.strip() for p in only.split(",") if p.strip()]
        picked = [r["run_id"] for r in runs if any(fnmatch.fnmatch(r["run_id"], p) for p in patterns)]
        if not picked:
            raise ValueError(f"--only {only!r} matches no run of {ref.folder}")
        return picked[:k]
    seeds: dict[tuple, int] = {}
    for r in runs:
        key = (r["model"], int(r["n_present"]), int(r["fold"]))
        seeds[key] = seeds.get(key, 0) + 1
    eligible = [r for r in runs if "+s2" not in str(r["model"])
                and seeds[(r["model"], int(r["n_present"]), int(r["fold"]))] >= 2]
    eligible.sort(key=lambda r: ((r.get("seconds") or {}).get("train") or math.inf, r["run_id"]))
    return [r["run_id"] for r in eligible[:k]]


def _metric_means(table: pd.DataFrame) -> dict[str, float]:
    return {m: float(pd.to_numeric(table[m], errors="coerce").mean()) for m in VERIFY_METRICS if m in table}


def _best_epoch(run_dir: Path) -> int | None:
    value = read_manifest(run_dir).get("best_epoch")
    return int(value) if value is not None else None


def verify_run(ref: ReferenceResults, run_id: str, progress: bool = True, fresh: bool = False) -> dict[str, Any]:
    """Retrain one committed run under ``runs/verify/<plan>/<profile>/<run_id>`` (resuming an
    interrupted retraining unless ``fresh``) and compare its test metrics with the committed ones."""
    from mrseg.train import run_training_and_evaluation

    committed_dir = ref.folder / run_id
    manifest = read_json(committed_dir / "manifest.json")
    if not manifest.get("config"):
        raise ValueError(f"{committed_dir / 'manifest.json'}: no config recorded; this run cannot be retrained")
    config = RunConfig.from_dict(manifest["config"])
    here = runs_dir() / "verify" / ref.folder.parent.name / ref.folder.name / run_id
    if fresh and here.exists():
        shutil.rmtree(here)
    started = time.perf_counter()
    run_training_and_evaluation(config, here, progress=progress)
    if not is_complete(here):
        raise RuntimeError(f"{here}: the retrained run did not complete")
    committed = _metric_means(pd.read_csv(committed_dir / CASES_FILE))
    retrained = _metric_means(pd.read_csv(here / "eval_cases.csv"))
    metrics = []
    for metric in VERIFY_METRICS:
        if metric not in committed or metric not in retrained:
            continue
        sd, n_seeds = seed_spread(ref, config.model, config.n_present, config.fold, metric)
        diff = retrained[metric] - committed[metric]
        units = abs(diff) / sd if sd and math.isfinite(sd) and sd > 0 else math.nan
        reading = ("no seed spread to judge by" if not math.isfinite(units) else
                   "within the seed spread" if units <= WITHIN_SDS else "outside the seed spread")
        metrics.append({"metric": metric, "committed": committed[metric], "here": retrained[metric],
                        "difference": diff, "seed_sd": sd, "n_seeds": n_seeds, "sd_units": units,
                        "reading": reading})
    return {"run_id": run_id, "model": config.model, "fold": config.fold, "seed": config.seed,
            "n_present": config.n_present, "stale_at_verify": stale_reason(manifest, config),
            "best_epoch_committed": _best_epoch(committed_dir), "best_epoch_here": _best_epoch(here),
            "machine_committed": manifest.get("machine") or manifest.get("host") or {},
            "machine_here": {**(read_manifest(here).get("host") or {}), **machine_facts(config.threads)},
            "seconds_here": round(time.perf_counter() - started, 1), "metrics": metrics}


def verify_reference(plan: str = "thesis", profile: str = "reference-cpu", runs: int = 1, only: str | None = None,
                     root: str | os.PathLike | None = None, progress: bool = True, fresh: bool = False) -> dict[str, Any]:
    """Retrain ``runs`` committed runs of ``plan``/``profile`` (:func:`choose_runs`), compare each
    (:func:`verify_run`) and write ``verify.json`` into the export folder; returns its content."""
    ref = load_reference(plan, profile, root, paired=False)
    if not ref.index:
        raise ValueError(f"{reference_folder(plan, profile, root)}: no reference export (index.json) to verify")
    chosen = choose_runs(ref, runs, only)
    if not chosen:
        raise ValueError(f"{ref.folder}: no Stage 1 run with two or more seeds to verify; name runs with --only")
    import torch

    payload = {"plan": Path(str(plan)).stem, "profile": profile, "verified": now_iso(),
               "machine": machine_facts(torch.get_num_threads()), "within_sds": WITHIN_SDS,
               "runs": [verify_run(ref, run_id, progress=progress, fresh=fresh) for run_id in chosen]}
    write_json(ref.folder / VERIFY_FILE, payload)
    return payload


def read_verification(folder: str | os.PathLike) -> dict[str, Any]:
    """The export's latest ``verify.json``, or ``{}`` when it was never verified."""
    path = Path(folder) / VERIFY_FILE
    return read_json(path) if path.exists() else {}


__all__ = ["VERIFY_FILE", "VERIFY_METRICS", "choose_runs", "read_verification", "seed_spread", "verify_reference",
           "verify_run"]
