"""Aggregation: run tables -> the tables the book reads (pure pandas).

Written into ``results_dir()/<plan>/<profile>/`` by :func:`aggregate_plan`:

- ``cases.csv``: every ``eval_cases.csv`` row of the plan's complete runs, once per (study, row)
  the run belongs to (``study``, ``row`` columns added).
- ``per_fold.csv``: one row per (run, study, row): run_id, study, row, model, variant,
  n_present, fold, seed, epochs, M, n_cases, the mean of every metric column, run_dir, the
  run-level collapse diagnostics of ``eval_summary.json`` (``kl_nats``, ``active_units``,
  ``ds_over_dyy``; see :mod:`mrseg.measures.collapse`), ``val_improvement_last_fifth`` and
  ``converged`` (:func:`convergence`).
- ``summary.csv``: one row per (study, row, n_present): n_folds, folds, epochs, and for every
  metric ``<metric>_mean`` and ``<metric>_sd``. The SD is over folds with ``ddof=0`` (population
  SD): it reproduces the thesis's SDs from its own per-fold numbers.
- ``alignment.csv``: one row per (alignment run, study, row): latent / decoder / as-trained /
  prior-mean cosine mean, SD over cases, shares of positive / negative / above-0.5 cosines, and the
  means of the prior-mean gradient split (``prior_common_norm``, ``prior_disagreement_norm``,
  ``prior_disagreement_share``, ``prior_disagreement_cosine``); ``alignment_summary.csv``:
  per (study, row, n_present) the mean and SD over folds of the per-fold means.
- ``latent.csv``: per latent-embedding run, its run_dir and the scalars of latent_summary.json.
- ``paired.csv``: per study and n_present, every pair of rows ``a``, ``b`` (plan order) and every
  paired metric: per-case differences ``a - b`` on the same test cases (same fold, seed, case and
  M); the primary 95% (and 90%) CI and p, which for separately trained models is run-level (run
  pairs and patients, :mod:`mrseg.diagnostics.run_level`) and for Stage 2 on its own Stage 1 the
  patient bootstrap; beside it the patient bootstrap ("test-set uncertainty only"), the t interval
  over run-pair means, Nadeau & Bengio's corrected interval, the effect detectable at 80% power,
  and the mean difference per fold and per seed (see :func:`paired_table`).
- ``gradient_isolation.json``: the gradient-isolation diagnostic of the per-rater encoders
  (:mod:`mrseg.diagnostics.isolation`), read by the scorecard's claim A0.
- ``scorecard.json``: every claim of ``book/data/claims.yaml`` with its verdict, effect, CI, n, p
  (:func:`mrseg.scoring.claims.write_scorecard`), evaluated once here; the scorecard page reads it.
- ``thesis_evidence.csv``: the thesis's own fold numbers judged by the same run-level rule
  (:func:`mrseg.diagnostics.thesis_evidence.thesis_evidence_table`).
- ``runs.csv``: every plan item with its status, seconds, attempts and error.
- ``context.json``: plan, profile, datasets, semi_synthetic, epochs per study, M, the GED
  conventions, SD convention, absent studies, counts by status.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from mrseg.bookkeeping.fingerprint import source_hash
from mrseg.bookkeeping.manifest import code_version, now_iso, read_manifest
from mrseg.config import Metric
from mrseg.diagnostics.isolation import write_gradient_isolation
from mrseg.diagnostics.thesis_evidence import thesis_evidence_table
from mrseg.io import read_json, write_csv, write_json
from mrseg.paths import dataset_dir
from mrseg.pipeline.derived import write_derived
from mrseg.pipeline.paired import PAIR_KEYS, PAIRED_METRICS, comparison_unit, paired_rows, paired_table  # noqa: F401
from mrseg.pipeline.plan import absent_studies, generated_dir, read_plan, study_epochs
from mrseg.pipeline.status import disk_record
from mrseg.scoring.claims import write_scorecard
from mrseg.thesis import load_thesis_reported

ID_COLUMNS = ("run_id", "dataset", "model", "variant", "n_present", "fold", "seed", "profile", "epochs",
              "case_id", "patient_id", "nodule_id", "M", "study", "row")
RUN_COLUMNS = ("run_id", "study", "row", "model", "variant", "n_present", "fold", "seed", "epochs", "M",
               "dataset", "profile")
GROUP = ["study", "row", "n_present"]
RUN_FLAGS = ("val_improvement_last_fifth", "converged")  # per-run flags, not metrics
SD_DDOF = 0
GED_CONVENTIONS = {
    Metric.GED: "GED with d = 1 - IoU and d(empty, empty) = 0 (the field's convention)",
    Metric.GED_DPERSONA: "GED with d(empty, empty) = 1 (D-Persona's code, hence the thesis's numbers)",
}


def metric_columns(cases: pd.DataFrame) -> list[str]:
    """Numeric columns of an eval table that are metrics (not ids), in table order."""
    return [c for c in cases.columns if c not in ID_COLUMNS and pd.api.types.is_numeric_dtype(cases[c])]


def read_eval_cases(path: str | os.PathLike) -> pd.DataFrame:
    """One run's ``eval_cases.csv``; ``ValueError`` naming the file if it is not a usable table."""
    path = Path(path)
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a readable CSV table ({err})") from err
    missing = [c for c in ("run_id", "fold", "case_id", Metric.GED) if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    return table


def cases_table(tables: Iterable[tuple[pd.DataFrame, list[dict[str, Any]]]]) -> pd.DataFrame:
    """Stack per-run case tables, one copy per membership ``{study, row, ...}``."""
    frames = []
    for table, memberships in tables:
        for m in memberships:
            frames.append(table.assign(study=m["study"], row=m["row"]))
    if not frames:
        return pd.DataFrame(columns=[*ID_COLUMNS])
    return pd.concat(frames, ignore_index=True)


def per_fold_table(cases: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, study, row): run-level columns, n_cases and the mean of every metric."""
    if cases.empty:
        return pd.DataFrame(columns=[*RUN_COLUMNS, "n_cases"])
    metrics = metric_columns(cases)
    keys = ["study", "row", "run_id"]
    grouped = cases.groupby(keys, sort=False, dropna=False)
    first = grouped[[c for c in RUN_COLUMNS if c in cases.columns and c not in keys]].first()
    out = first.join(grouped.size().rename("n_cases")).join(grouped[metrics].mean())
    out = out.reset_index()
    ordered = [c for c in RUN_COLUMNS if c in out.columns] + ["n_cases"] + metrics
    return out[ordered + [c for c in out.columns if c not in ordered]]


# Per-run scalars of eval_summary.json (not per-case metrics) carried into per_fold.csv, and so
# into summary.csv as <name>_mean / <name>_sd: the posterior-collapse diagnostics.
RUN_SCALARS = ("kl_nats", "active_units", "ds_over_dyy")


def add_run_scalars(per_fold: pd.DataFrame, run_dirs: dict[str, Path]) -> pd.DataFrame:
    """Add :data:`RUN_SCALARS` columns from each run's ``eval_summary.json`` (NaN where absent:
    a run evaluated before the diagnostics existed, or a model without a latent)."""
    values: dict[str, dict[str, float]] = {}
    for run_id, run_dir in run_dirs.items():
        try:
            summary = read_json(Path(run_dir) / "eval_summary.json")
        except (OSError, ValueError):
            summary = {}
        values[run_id] = {k: (float(summary[k]) if isinstance(summary.get(k), (int, float)) else math.nan)
                          for k in RUN_SCALARS}
    out = per_fold.copy()
    for key in RUN_SCALARS:
        out[key] = out["run_id"].map(lambda r: values.get(r, {}).get(key, math.nan)).astype(float)
    return out


def add_run_columns(per_fold: pd.DataFrame, run_dirs: dict[str, Path]) -> pd.DataFrame:
    """:func:`add_run_scalars` plus each run's :data:`RUN_FLAGS` from its ``history.csv``
    (:func:`convergence`): everything per_fold.csv carries beyond the per-case means."""
    out = add_run_scalars(per_fold, run_dirs)
    conv = {run_id: convergence(_read_history(run_dir)) for run_id, run_dir in run_dirs.items()}
    out["val_improvement_last_fifth"] = out["run_id"].map(lambda r: conv.get(r, (math.nan, None))[0])
    out["converged"] = out["run_id"].map(lambda r: conv.get(r, (math.nan, None))[1])
    return out


def summary_table(per_fold: pd.DataFrame, metrics: list[str] | None = None) -> pd.DataFrame:
    """Mean and SD over folds (``ddof=0``) per (study, row, n_present), in first-seen order; with
    per-run flags also ``converged_mean`` (share of runs converged) and ``val_improvement_last_fifth_mean``."""
    if per_fold.empty:
        return pd.DataFrame(columns=[*GROUP, "n_folds"])
    if metrics is None:
        metrics = [c for c in per_fold.columns if c not in (*RUN_COLUMNS, "n_cases", "run_dir", *RUN_FLAGS)
                   and pd.api.types.is_numeric_dtype(per_fold[c])]
    rows = []
    for key, group in per_fold.groupby(GROUP, sort=False, dropna=False):
        row = dict(zip(GROUP, key))
        row["model"] = ",".join(sorted(set(group["model"].astype(str)))) if "model" in group else ""
        row["n_folds"] = int(len(group))
        row["folds"] = " ".join(str(int(f)) for f in sorted(group["fold"])) if "fold" in group else ""
        row["epochs"] = ",".join(str(int(e)) for e in sorted(set(group["epochs"]))) if "epochs" in group else ""
        row["n_cases"] = int(group["n_cases"].sum()) if "n_cases" in group else 0
        for metric in metrics:
            values = group[metric].astype(float).dropna()
            row[f"{metric}_mean"] = float(values.mean()) if len(values) else math.nan
            row[f"{metric}_sd"] = float(values.std(ddof=SD_DDOF)) if len(values) else math.nan
        if "converged" in group:   # share of runs whose validation score stopped improving (unknown runs left out)
            flags = group["converged"].map(lambda v: {True: 1.0, False: 0.0, "True": 1.0, "False": 0.0}.get(v, math.nan))
            row["converged_mean"] = float(flags.mean()) if flags.notna().any() else math.nan
        if "val_improvement_last_fifth" in group:
            values = pd.to_numeric(group["val_improvement_last_fifth"], errors="coerce").dropna()
            row["val_improvement_last_fifth_mean"] = float(values.mean()) if len(values) else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


# ---- convergence --------------------------------------------------------------------------------
CONVERGENCE_TOL = 0.02   # relative val-GED improvement over the last fifth that still counts as "improving"


def convergence(history: pd.DataFrame | None, tol: float = CONVERGENCE_TOL) -> tuple[float, Any]:
    """``(improvement, converged)`` of one run from its per-epoch ``history.csv``.

    The validation score is GED (``val_ged``, lower is better; Stage 1) or, for a Stage 2 run,
    one minus the mean per-expert Dice (``val_expert_dice``, its selection criterion).
    improvement = (best score before the last fifth of the epochs - best score within it) /
    the former; a run is converged when it is at most ``tol`` (2%): the validation score is no
    longer improving by more than 2% over the last fifth of training. Fewer than 5 epochs with a
    finite score (or no history) gives ``(nan, None)``: unknown.
    """
    if history is None:
        return math.nan, None
    val = np.zeros(0)
    if "val_ged" in history:
        val = pd.to_numeric(history["val_ged"], errors="coerce").dropna().to_numpy(dtype=float)
    if val.size == 0 and "val_expert_dice" in history:
        val = 1.0 - pd.to_numeric(history["val_expert_dice"], errors="coerce").dropna().to_numpy(dtype=float)
    if val.size < 5:
        return math.nan, None
    k = max(1, int(math.ceil(val.size / 5)))
    before, last = float(val[:-k].min()), float(val[-k:].min())
    if before <= 0:
        return math.nan, None
    improvement = (before - last) / before
    return improvement, bool(improvement <= tol)


def throughput_table(runs: Iterable[tuple[str, dict[str, Any], str | os.PathLike]]) -> pd.DataFrame:
    """Training throughput per run and stage from ``history.csv``: ``steps``, ``train_seconds``
    (optimisation steps only, without validation), ``steps_per_s`` and ``images_per_s``.

    ``runs``: ``(run_id, config dict, run_dir)``. Histories written before steps were recorded
    give no row.
    """
    rows = []
    for run_id, config, run_dir in runs:
        history = _read_history(run_dir)
        if history is None or not {"steps", "train_seconds", "stage"} <= set(history.columns):
            continue
        for stage, part in history.groupby("stage"):
            steps = float(pd.to_numeric(part["steps"], errors="coerce").sum())
            secs = float(pd.to_numeric(part["train_seconds"], errors="coerce").sum())
            if steps <= 0 or secs <= 0:
                continue
            rows.append({"run_id": run_id, "model": config.get("model"), "n_present": config.get("n_present"),
                         "profile": config.get("profile"), "image_size": config.get("image_size"),
                         "batch_size": config.get("batch_size"), "threads": config.get("threads"),
                         "stage": int(stage), "steps": int(steps), "train_seconds": round(secs, 2),
                         "steps_per_s": steps / secs, "images_per_s": steps * int(config.get("batch_size") or 0) / secs})
    return pd.DataFrame(rows)


def _read_history(run_dir: str | os.PathLike) -> pd.DataFrame | None:
    path = Path(run_dir) / "history.csv"
    try:
        return pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None


# alignment measure -> column of alignment_cases.csv. "as_trained": the latent cosine measured with
# the run's own n_present raters drawn and the rest zero-filled (as in training), which is how a
# sparse-trained shared model sees a case; with all raters present it equals "latent".
# "prior": the latent cosine at the prior mean mu_p(x), defined for every model.
ALIGNMENT_MEASURES = {"latent": "latent_cosine", "decoder": "decoder_cosine", "as_trained": "latent_cosine_as_trained",
                      "prior": "prior_cosine"}
# Prior-mean gradient split (mrseg.diagnostics.alignment.prior_gradient_split): per-run means only.
ALIGNMENT_SPLIT = ("prior_common_norm", "prior_disagreement_norm", "prior_disagreement_share",
                   "prior_disagreement_cosine")


def alignment_row(cases: pd.DataFrame) -> dict[str, Any]:
    """Per-run alignment numbers from ``alignment_cases.csv`` (latent_cosine NaN when undefined)."""
    out: dict[str, Any] = {"n_cases": int(len(cases))}
    for name, column in ALIGNMENT_MEASURES.items():
        if column not in cases and name == "as_trained":   # all raters present: as trained = latent
            column = "latent_cosine"
        values = cases[column].astype(float).dropna() if column in cases else pd.Series(dtype=float)
        out[f"{name}_defined"] = bool(len(values))
        out[f"{name}_mean"] = float(values.mean()) if len(values) else math.nan
        out[f"{name}_sd"] = float(values.std(ddof=SD_DDOF)) if len(values) else math.nan
        for share, mask in (("share_positive", values > 0), ("share_negative", values < 0),
                            ("share_above_0_5", values > 0.5)):
            out[f"{name}_{share}"] = float(mask.mean()) if len(values) else math.nan
    for column in ALIGNMENT_SPLIT:
        values = cases[column].astype(float).dropna() if column in cases else pd.Series(dtype=float)
        out[f"{column}_mean"] = float(values.mean()) if len(values) else math.nan
    return out


def alignment_summary_table(alignment: pd.DataFrame) -> pd.DataFrame:
    """Per (study, row, n_present): mean and SD over folds of the per-fold alignment means, and
    the mean within-fold SD."""
    if alignment.empty:
        return pd.DataFrame(columns=[*GROUP, "n_folds"])
    rows = []
    for key, group in alignment.groupby(GROUP, sort=False, dropna=False):
        row = dict(zip(GROUP, key))
        row["model"] = ",".join(sorted(set(group["model"].astype(str))))
        row["n_folds"] = int(len(group))
        for name in ALIGNMENT_MEASURES:
            if f"{name}_mean" not in group:
                continue
            means = group[f"{name}_mean"].astype(float).dropna()
            row[f"{name}_defined"] = bool(len(means))
            row[f"{name}_mean"] = float(means.mean()) if len(means) else math.nan
            row[f"{name}_sd_across_folds"] = float(means.std(ddof=SD_DDOF)) if len(means) else math.nan
            row[f"{name}_within_fold_sd"] = float(group[f"{name}_sd"].astype(float).mean()) if len(means) else math.nan
        for column in ALIGNMENT_SPLIT:
            if f"{column}_mean" in group:
                row[f"{column}_mean"] = float(group[f"{column}_mean"].astype(float).mean())
        rows.append(row)
    return pd.DataFrame(rows)


def _order(frame: pd.DataFrame, studies: list[str], rows: list[tuple[str, str]]) -> pd.DataFrame:
    """Sort by the plan's study order and each study's row order, then n_present, fold."""
    if frame.empty:
        return frame
    rank_s = {s: i for i, s in enumerate(studies)}
    rank_r = {key: i for i, key in enumerate(rows)}
    keyed = frame.assign(_s=frame["study"].map(rank_s).fillna(len(rank_s)),
                         _r=[rank_r.get(key, len(rank_r)) for key in zip(frame["study"], frame["row"])])
    by = ["_s", "_r"] + [c for c in ("n_present", "fold", "seed") if c in frame.columns]
    return keyed.sort_values(by, kind="stable").drop(columns=["_s", "_r"]).reset_index(drop=True)


def rescore(folder: str | os.PathLike, plan: str, profile: str) -> dict[str, Any]:
    """Recompute the statistics of an aggregated results folder without re-running anything:
    the convergence flags of ``per_fold.csv`` (from each run's ``history.csv`` via its
    ``run_dir``), ``paired.csv`` and the derived tables (:mod:`mrseg.pipeline.derived`) from
    ``cases.csv``, ``thesis_evidence.csv`` and ``scorecard.json``; returns the scorecard.

    ``python -m mrseg scorecard --plan P --profile Q`` calls this.
    """

    folder = Path(folder)
    cases_path = folder / "cases.csv"
    if not cases_path.exists():
        raise FileNotFoundError(f"{cases_path}: no aggregated cases table (run the plan first)")
    cases = pd.read_csv(cases_path)
    per_fold_path = folder / "per_fold.csv"
    if per_fold_path.exists():
        per_fold = pd.read_csv(per_fold_path)
        if "run_dir" in per_fold and not per_fold.empty:
            conv = {d: convergence(_read_history(d)) for d in per_fold["run_dir"].dropna().unique()}
            per_fold["val_improvement_last_fifth"] = per_fold["run_dir"].map(lambda d: conv.get(d, (math.nan, None))[0])
            per_fold["converged"] = per_fold["run_dir"].map(lambda d: conv.get(d, (math.nan, None))[1])
            write_csv(per_fold_path, per_fold)
    context_path = folder / "context.json"
    if context_path.exists():
        context = read_json(context_path)
        if "rater_order" not in context:
            context["rater_order"] = dataset_rater_order([{"dataset": d} for d in context.get("datasets", [])])
            write_json(context_path, context)
    write_csv(folder / "paired.csv", paired_table(cases))
    write_derived(folder, cases, pd.read_csv(per_fold_path) if per_fold_path.exists() else pd.DataFrame())
    write_csv(folder / "thesis_evidence.csv", thesis_evidence_table(load_thesis_reported()))
    write_gradient_isolation(folder)
    return read_json(write_scorecard(folder, plan=plan, profile=profile))


def scale_table(loaded: list, manifests: list[dict[str, Any]], cases: pd.DataFrame) -> list[dict[str, Any]]:
    """The scale of the runs behind the tables, one record per (study, epochs): training cases per
    fold (from the manifests, ``n_train``), optimiser steps per run (training cases / batch size x
    epochs), image size, epochs, test cases per fold (from ``cases.csv``), seeds and folds."""
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for (item, _), manifest in zip(loaded, manifests):
        config = item.config or {}
        epochs = int(config.get("epochs", 0))
        for m in item.memberships:
            rec = rows.setdefault((m["study"], epochs), {"study": m["study"], "epochs": epochs, "n_train": set(),
                                                         "steps": set(), "image_size": set(), "seeds": set(),
                                                         "folds": set()})
            n_train = manifest.get("n_train")
            if isinstance(n_train, int):
                rec["n_train"].add(n_train)
                batch = int(config.get("batch_size", 1)) or 1
                rec["steps"].add(math.ceil(n_train / batch) * epochs)
            rec["image_size"].add(config.get("image_size"))
            rec["seeds"].add(config.get("seed"))
            rec["folds"].add(config.get("fold"))
    test = (cases.groupby(["study", "fold"])["case_id"].nunique().groupby("study").agg(list).to_dict()
            if not cases.empty and {"study", "fold", "case_id"} <= set(cases.columns) else {})

    def span(values: set) -> str:
        values = sorted(v for v in values if v is not None)
        if not values:
            return ""
        return str(values[0]) if values[0] == values[-1] else f"{values[0]}-{values[-1]}"

    return [{"study": r["study"], "training cases per fold": span(r["n_train"]), "steps per run": span(r["steps"]),
             "image size": span(r["image_size"]), "epochs": r["epochs"],
             "test cases per fold": span(set(test.get(r["study"], []))), "seeds": len(r["seeds"]),
             "folds": len(r["folds"])} for r in rows.values()]


def dataset_rater_order(configs: list[dict[str, Any]]) -> dict[str, str]:
    """``{dataset: rater_order}`` from each dataset cache's ``meta.json`` where it states one.

    ``rater_order`` says what rater slot k means (e.g. "area-sorted ..."); a dataset without it has
    unsorted slots, and per-slot claims are not testable on it.
    """
    from mrseg.data.registry import cache_key

    out: dict[str, str] = {}
    for config in configs:
        name = config.get("dataset", "")
        path = dataset_dir(cache_key(name, config.get("dataset_options") or {})) / "meta.json"
        try:
            order = read_json(path).get("rater_order")
        except (OSError, ValueError):
            continue
        if order:
            out[name] = str(order)
    return out


def runs_table(items: list, records: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Every plan item with its status: this session's record where there is one, else the disk's."""

    book_root = generated_dir().parent
    rows = []
    for item in items:
        record = records.get(item.key) or disk_record(item)
        if record.get("cached"):  # complete before this session: its own timing, from disk
            record = {**record, "seconds": disk_record(item).get("seconds")}
        if item.kind == "page" and item.key not in records:
            record = {"status": "pending", "seconds": None, "error": ""}
        error = str(record.get("error") or "")
        try:
            notebook = str(Path(item.output).relative_to(book_root))
        except ValueError:
            notebook = str(item.output)
        config = item.config or {}
        rows.append({
            "key": item.key, "run_id": item.run_id, "kind": item.kind, "study": item.study, "row": item.row,
            "model": config.get("model", ""), "n_present": config.get("n_present"), "fold": config.get("fold"),
            "epochs": config.get("epochs"),
            "memberships": ";".join(f"{m['study']}:{m['row']}@np{m['n_present']}" for m in item.memberships),
            "status": record.get("status", "pending"), "cached": bool(record.get("cached", False)),
            "seconds": record.get("seconds"), "attempts": record.get("attempts"),
            "error": "\n".join(error.strip().splitlines()[:3]), "notebook": notebook, "title": item.title,
            "stale": str(record.get("stale") or ""),
        })
    table = pd.DataFrame(rows)
    for column in ("n_present", "fold", "epochs", "attempts"):
        if column in table:
            table[column] = pd.to_numeric(table[column]).astype("Int64")
    return table


def write_runs_table(items: list, records: dict[str, dict[str, Any]], path: str | os.PathLike) -> pd.DataFrame:
    table = runs_table(items, records)
    write_csv(path, table)
    return table


def aggregate_plan(items: list, records: dict[str, dict[str, Any]], plan: str, profile: str,
                   out_dir: str | os.PathLike, extra_context: dict[str, Any] | None = None) -> dict[str, Path]:
    """Read every complete run of the plan and write the tables listed in the module docstring."""
    from mrseg.pipeline.status import item_complete as _complete, train_stale

    keep_stale = bool((extra_context or {}).get("keep_stale"))

    def item_complete(item) -> bool:  # stale runs count only when the plan was run with keep_stale
        return _complete(item, keep_stale=keep_stale)

    out_dir = Path(out_dir)
    spec = read_plan(plan)
    studies = list(spec["studies"])
    rows = [(name, r) for name, s in spec["studies"].items() for r in (s.get("rows") or {})]
    errors: list[str] = []

    def load(item, name: str) -> pd.DataFrame | None:
        path = item.run_dir / name
        try:
            return read_eval_cases(path) if name == "eval_cases.csv" else pd.read_csv(path)
        except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            errors.append(f"{path}: {err}")
            return None

    trains = [i for i in items if i.kind == "train" and i.memberships and item_complete(i)]
    loaded = [(t, load(t, "eval_cases.csv")) for t in trains]
    loaded = [(t, table) for t, table in loaded if table is not None]
    # The plan's run id names the run, whatever the table says.
    cases = _order(cases_table((table.assign(run_id=t.run_id), t.memberships) for t, table in loaded), studies, rows)
    per_fold = per_fold_table(cases)
    if not per_fold.empty:
        run_dirs = {t.run_id: str(t.run_dir) for t, _ in loaded}
        per_fold["run_dir"] = per_fold["run_id"].map(run_dirs)
        per_fold = add_run_columns(per_fold, {t.run_id: t.run_dir for t, _ in loaded})
    per_fold = _order(per_fold, studies, rows)
    summary = summary_table(per_fold)
    paired = paired_table(cases)

    align_rows = []
    for item in items:
        if item.kind == "alignment" and item_complete(item):
            table = load(item, "alignment_cases.csv")
            if table is None:
                continue
            values = alignment_row(table)
            for m in item.memberships:
                align_rows.append({"run_id": item.run_id, "study": m["study"], "row": m["row"],
                                   "model": item.config["model"], "n_present": item.config["n_present"],
                                   "fold": item.config["fold"], "epochs": item.config["epochs"], **values})
    alignment = _order(pd.DataFrame(align_rows), studies, rows)
    alignment_summary = alignment_summary_table(alignment)

    latent_rows = []
    for item in items:
        if item.kind == "latent" and item_complete(item):
            summary_json = read_json(item.run_dir / "latent_summary.json")
            scalars = {k: v for k, v in summary_json.items() if isinstance(v, (int, float, str, bool)) or v is None}
            latent_rows.append({"run_id": item.run_id, "model": item.config["model"], "fold": item.config["fold"],
                                "n_present": item.config["n_present"], "run_dir": str(item.run_dir), **scalars})
    latent = pd.DataFrame(latent_rows)

    manifests = [read_manifest(t.run_dir) for t, _ in loaded]
    fingerprints = {"source_hash": source_hash(),
                    "runs": sorted({str(m.get("source_hash") or "none") for m in manifests}),
                    "stale": [{"run_id": t.run_id, "reason": train_stale(t), "recorded": m.get("code_fingerprint"),
                               "recorded_source": m.get("source_hash")}
                              for (t, _), m in zip(loaded, manifests) if train_stale(t)]}
    scale = scale_table(loaded, manifests, cases)
    semi = sorted({bool(m.get("semi_synthetic")) for m in manifests if "semi_synthetic" in m})
    configs = [i.config for i in items if i.kind == "train"]
    status_counts = runs_table(items, records)["status"].value_counts().to_dict()
    context = {
        "plan": spec["name"], "title": spec.get("title", ""), "profile": profile,
        "datasets": sorted({c["dataset"] for c in configs}),
        "semi_synthetic": semi[-1] if semi else None,
        "epochs": study_epochs(spec, profile),
        "M": sorted({int(c["eval_samples"]) for c in configs}),
        "rater_order": dataset_rater_order(configs),
        "scale": scale,
        "folds": sorted({int(c["fold"]) for c in configs}),
        "ged_conventions": GED_CONVENTIONS,
        "sd": f"population SD over folds (ddof={SD_DDOF}), as the thesis's SDs",
        "absent_studies": absent_studies(plan, profile),
        "n_items": len(items), "n_training_runs": len(configs), "n_complete_runs": len(loaded),
        "status_counts": {str(k): int(v) for k, v in status_counts.items()},
        "aggregation_errors": errors, "code_version": code_version(), "generated": now_iso(),
        "fingerprints": fingerprints,
        **(extra_context or {}),
    }
    paths = {}
    throughput = throughput_table((t.run_id, t.config, t.run_dir) for t, _ in loaded)
    thesis_evidence = thesis_evidence_table(load_thesis_reported())
    for name, frame in (("cases", cases), ("per_fold", per_fold), ("summary", summary), ("paired", paired),
                        ("alignment", alignment), ("alignment_summary", alignment_summary), ("latent", latent),
                        ("throughput", throughput), ("thesis_evidence", thesis_evidence)):
        paths[name] = out_dir / f"{name}.csv"
        write_csv(paths[name], frame)
    paths["runs"] = out_dir / "runs.csv"
    write_runs_table(items, records, paths["runs"])
    paths["context"] = out_dir / "context.json"
    write_json(paths["context"], context)

    paths.update({f"derived_{name}": path for name, path in write_derived(out_dir, cases, per_fold).items()})
    paths["gradient_isolation"] = write_gradient_isolation(out_dir)
    paths["scorecard"] = write_scorecard(out_dir, plan=plan, profile=profile)
    return paths


__all__ = ["add_run_columns", "add_run_scalars", "aggregate_plan", "alignment_row", "alignment_summary_table", "cases_table",
           "convergence", "metric_columns", "paired_rows", "paired_table", "per_fold_table", "read_eval_cases",
           "runs_table", "summary_table", "throughput_table", "write_runs_table"]
