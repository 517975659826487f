"""Aggregation: run tables -> the tables the book reads (pure pandas).

Written into ``results_dir()/<plan>/<profile>/`` by :func:`aggregate_plan`:

- ``cases.csv``: every ``eval_cases.csv`` row of the plan's complete runs, once per (study, row)
  the run belongs to (``study``, ``row`` columns added).
- ``per_fold.csv``: one row per (run, study, row): run_id, study, row, model, variant,
  n_present, fold, seed, epochs, M, n_cases, the mean of every metric column, run_dir, and the
  run-level collapse diagnostics of ``eval_summary.json`` (``kl_nats``, ``active_units``,
  ``ds_over_dyy``; see :mod:`mrseg.diagnostics.collapse`).
- ``summary.csv``: one row per (study, row, n_present): n_folds, folds, epochs, and for every
  metric ``<metric>_mean`` and ``<metric>_sd``. The SD is over folds with ``ddof=0`` (population
  SD): it reproduces the thesis's SDs from its own per-fold numbers.
- ``alignment.csv``: one row per (alignment run, study, row): latent / decoder / as-trained /
  prior-mean cosine mean, SD over cases, shares of positive / negative / above-0.5 cosines, and the
  means of the prior-mean gradient split (``prior_common_norm``, ``prior_disagreement_norm``,
  ``prior_disagreement_share``, ``prior_disagreement_cosine``); ``alignment_summary.csv``:
  per (study, row, n_present) the mean and SD over folds of the per-fold means.
- ``latent.csv``: per latent-embedding run, its run_dir and the scalars of latent_summary.json.
- ``runs.csv``: every plan item with its status, seconds, attempts and error.
- ``context.json``: plan, profile, datasets, semi_synthetic, epochs per study, M, the GED
  conventions, SD convention, absent studies, counts by status.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from mrseg.io import read_json, write_csv, write_json

ID_COLUMNS = ("run_id", "dataset", "model", "variant", "n_present", "fold", "seed", "profile", "epochs",
              "case_id", "patient_id", "nodule_id", "M", "study", "row")
RUN_COLUMNS = ("run_id", "study", "row", "model", "variant", "n_present", "fold", "seed", "epochs", "M",
               "dataset", "profile")
GROUP = ["study", "row", "n_present"]
SD_DDOF = 0
GED_CONVENTIONS = {
    "ged": "GED with d = 1 - IoU and d(empty, empty) = 0 (the field's convention)",
    "ged_dpersona": "GED with d(empty, empty) = 1 (D-Persona's code, hence the thesis's numbers)",
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
    missing = [c for c in ("run_id", "fold", "case_id", "ged") if c not in table.columns]
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


def summary_table(per_fold: pd.DataFrame, metrics: list[str] | None = None) -> pd.DataFrame:
    """Mean and SD over folds (``ddof=0``) per (study, row, n_present), in first-seen order."""
    if per_fold.empty:
        return pd.DataFrame(columns=[*GROUP, "n_folds"])
    if metrics is None:
        metrics = [c for c in per_fold.columns if c not in (*RUN_COLUMNS, "n_cases", "run_dir")
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
        rows.append(row)
    return pd.DataFrame(rows)


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


def runs_table(items: list, records: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Every plan item with its status: this session's record where there is one, else the disk's."""
    from mrseg.plan import generated_dir
    from mrseg.runner import disk_record

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
    from mrseg.manifest import code_version, now_iso, read_manifest
    from mrseg.plan import absent_studies, read_plan, study_epochs
    from mrseg.fingerprint import source_hash
    from mrseg.runner import item_complete as _complete, train_stale

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
        per_fold = add_run_scalars(per_fold, {t.run_id: t.run_dir for t, _ in loaded})
    per_fold = _order(per_fold, studies, rows)
    summary = summary_table(per_fold)

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
    semi = sorted({bool(m.get("semi_synthetic")) for m in manifests if "semi_synthetic" in m})
    configs = [i.config for i in items if i.kind == "train"]
    status_counts = runs_table(items, records)["status"].value_counts().to_dict()
    context = {
        "plan": spec["name"], "title": spec.get("title", ""), "profile": profile,
        "datasets": sorted({c["dataset"] for c in configs}),
        "semi_synthetic": semi[-1] if semi else None,
        "epochs": study_epochs(spec, profile),
        "M": sorted({int(c["eval_samples"]) for c in configs}),
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
    for name, frame in (("cases", cases), ("per_fold", per_fold), ("summary", summary),
                        ("alignment", alignment), ("alignment_summary", alignment_summary), ("latent", latent)):
        paths[name] = out_dir / f"{name}.csv"
        write_csv(paths[name], frame)
    paths["runs"] = out_dir / "runs.csv"
    write_runs_table(items, records, paths["runs"])
    paths["context"] = out_dir / "context.json"
    write_json(paths["context"], context)
    return paths


__all__ = ["add_run_scalars", "aggregate_plan", "alignment_row", "alignment_summary_table", "cases_table", "metric_columns",
           "per_fold_table", "read_eval_cases", "runs_table", "summary_table", "write_runs_table"]
