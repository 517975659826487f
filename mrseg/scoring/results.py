"""Our results: the aggregated tables the runner writes for one plan and profile."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

DERIVED_PREFIX = "derived_"   # tables the pipeline derives once (mrseg.pipeline.derived), read by pages
TABLES = ("cases", "per_fold", "summary", "paired", "alignment", "alignment_summary", "latent", "runs", "throughput",
          "thesis_evidence", "attributes_correlations", "attributes_patches")


@dataclass
class Results:
    """The aggregated tables of one plan and profile; any table may be ``None`` (not written)."""

    folder: Path
    plan: str
    profile: str
    cases: pd.DataFrame | None = None
    per_fold: pd.DataFrame | None = None
    summary: pd.DataFrame | None = None
    paired: pd.DataFrame | None = None
    alignment: pd.DataFrame | None = None
    alignment_summary: pd.DataFrame | None = None
    latent: pd.DataFrame | None = None
    runs: pd.DataFrame | None = None
    throughput: pd.DataFrame | None = None
    thesis_evidence: pd.DataFrame | None = None
    attributes_correlations: pd.DataFrame | None = None   # the attribute study's tables (python -m mrseg record)
    attributes_patches: pd.DataFrame | None = None
    context: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    derived: dict[str, pd.DataFrame] = field(default_factory=dict)   # derived_<name>.csv (mrseg.pipeline.derived)

    @property
    def available(self) -> bool:
        """True when at least one complete run has been aggregated."""
        return self.summary is not None and not self.summary.empty

    def has_study(self, study: str) -> bool:
        return self.summary is not None and "study" in self.summary and (self.summary["study"] == study).any()

    def failed_runs(self) -> pd.DataFrame:
        """Rows of runs.csv whose status is not complete (failed first)."""
        if self.runs is None or "status" not in self.runs:
            return pd.DataFrame(columns=["run_id", "kind", "study", "row", "status", "error"])
        runs = self.runs
        if "kind" in runs:  # page notebooks are still running while they read this table
            runs = runs[runs["kind"].astype(str) != "page"]
        bad = runs[runs["status"].astype(str) != "complete"].copy()
        bad["_order"] = (bad["status"].astype(str) != "failed").astype(int)
        bad = bad.sort_values(["_order", "run_id"]).drop(columns="_order")
        keep = [c for c in ("run_id", "kind", "study", "row", "status", "error") if c in bad]
        return bad[keep].reset_index(drop=True)

    def _select(self, frame: pd.DataFrame | None, study: str, row: str, n_present: int | None) -> pd.DataFrame:
        if frame is None or frame.empty or "study" not in frame or "row" not in frame:
            return pd.DataFrame()
        mask = (frame["study"].astype(str) == study) & (frame["row"].astype(str) == str(row))
        if n_present is not None and "n_present" in frame:
            mask &= pd.to_numeric(frame["n_present"], errors="coerce") == int(n_present)
        return frame[mask]

    def metric(self, study: str, row: str, metric: str, n_present: int | None = None) -> tuple[float, float, int]:
        """``(mean over folds, SD over folds, number of folds)`` from summary.csv; NaNs if absent."""
        sel = self._select(self.summary, study, row, n_present)
        if sel.empty or f"{metric}_mean" not in sel:
            return math.nan, math.nan, 0
        rec = sel.iloc[0]
        sd = rec.get(f"{metric}_sd", math.nan)
        n = int(rec["n_folds"]) if "n_folds" in rec and pd.notna(rec["n_folds"]) else 0
        if n < 2:  # an SD over a single fold says nothing
            sd = math.nan
        return float(rec[f"{metric}_mean"]), float(sd) if pd.notna(sd) else math.nan, n

    def fold_values(self, study: str, row: str, metric: str, n_present: int | None = None) -> pd.Series:
        """Per-fold values of ``metric`` (index: fold) from per_fold.csv; empty if absent."""
        sel = self._select(self.per_fold, study, row, n_present)
        if sel.empty or metric not in sel:
            return pd.Series(dtype=float)
        return sel.groupby("fold")[metric].mean().sort_index()

    def alignment_rows(self, row: str | None = None, n_present: int | None = None,
                       study: str | None = "sparsity") -> pd.DataFrame:
        """Per-run rows of alignment.csv (one per fold), optionally one study, plan row and np."""
        if self.alignment is None or self.alignment.empty:
            return pd.DataFrame()
        sel = self.alignment
        if study is not None and "study" in sel:
            sel = sel[sel["study"].astype(str) == study]
        if row is not None and "row" in sel:
            sel = sel[sel["row"].astype(str) == row]
        if n_present is not None and "n_present" in sel:
            sel = sel[pd.to_numeric(sel["n_present"], errors="coerce") == int(n_present)]
        return sel


def results_folder(results_dir: str | Path, plan: str, profile: str) -> Path:
    """``<results_dir>/<plan>/<profile>``; a ``results_dir`` that already is that folder is kept."""
    path = Path(results_dir)
    if path.name == profile and path.parent.name == plan:
        return path
    return path / plan / profile


def load_results(results_dir: str | Path, plan: str, profile: str) -> Results:
    """Read whatever aggregated tables exist for ``plan``/``profile``; never raises for absence.

    A table that exists but cannot be parsed raises ``ValueError`` naming the file.
    """
    return read_results_folder(results_folder(results_dir, plan, profile), plan, profile)


def read_results_folder(folder: str | Path, plan: str, profile: str) -> Results:
    """Read the aggregated tables in exactly ``folder`` (whatever its name: a staging copy too), as
    :func:`load_results` does for ``<results_dir>/<plan>/<profile>``."""
    folder = Path(folder)
    res = Results(folder=folder, plan=plan, profile=profile)
    for name in TABLES:
        path = folder / f"{name}.csv"
        if path.exists():
            try:
                setattr(res, name, pd.read_csv(path, low_memory=False))  # one dtype per column, read whole
            except pd.errors.EmptyDataError:  # written with no rows and no columns: nothing to show
                setattr(res, name, pd.DataFrame())
            except (pd.errors.ParserError, UnicodeDecodeError) as err:
                raise ValueError(f"{path}: cannot read this results table ({err})") from err
    for path in sorted(folder.glob(f"{DERIVED_PREFIX}*.csv")) if folder.exists() else []:
        try:
            res.derived[path.stem[len(DERIVED_PREFIX):]] = pd.read_csv(path)
        except pd.errors.EmptyDataError:
            res.derived[path.stem[len(DERIVED_PREFIX):]] = pd.DataFrame()
        except (pd.errors.ParserError, UnicodeDecodeError) as err:
            raise ValueError(f"{path}: cannot read this results table ({err})") from err
    ctx = folder / "context.json"
    if ctx.exists():
        try:
            res.context = json.loads(ctx.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{ctx}: not valid JSON ({err})") from err
    for path in sorted(folder.glob("*.json")) if folder.exists() else []:
        if path.name != "context.json":
            try:
                res.extra[path.stem] = json.loads(path.read_text())
            except json.JSONDecodeError:
                res.extra[path.stem] = None
    return res
