"""Thesis-vs-ours tables: side by side, per fold, and the relative improvement."""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np
import pandas as pd

from mrseg.config import Metric
from mrseg.formatting import fmt, mean_sd
from mrseg.scoring.results import Results
from mrseg.thesis import thesis_mean_sd, thesis_value

METRIC_LABELS = {
    Metric.GED_DPERSONA: "GED, d(∅,∅)=1",
    Metric.GED: "GED, d(∅,∅)=0",
    Metric.DICE_MATCH: "Dice_match",
    Metric.DICE_SOFT: "Dice_soft",
    "hm_iou": "HM-IoU",
    "d_ss": "d_SS (sample diversity)",
}
# which of our columns a thesis metric is compared with (thesis GED uses d(empty, empty) = 1)
THESIS_TO_OURS = {Metric.GED: Metric.GED_DPERSONA, Metric.DICE_MATCH: Metric.DICE_MATCH, Metric.DICE_SOFT: Metric.DICE_SOFT}


def side_by_side(
    res: Results,
    thesis: dict[str, Any],
    study: str,
    thesis_table: str,
    rows: Iterable[tuple[str, str]],
    metrics: Iterable[str],
    n_present: int | None = None,
    extra_ours: Iterable[str] = (Metric.GED,),
    thesis_ref: str = "{table}.{row}.{metric}",
) -> pd.DataFrame:
    """Thesis vs ours for ``rows`` = ``[(plan row key, label), ...]``.

    For each thesis metric ``m`` (``ged``, ``dice_match``, ``dice_soft``) the table has
    "m (thesis)" and "m (ours)" columns (ours for GED uses d(∅,∅)=1, like the thesis), then
    our ``extra_ours`` metrics (default: GED with d(∅,∅)=0) and the number of folds.
    Thesis cells come from ``thesis_ref`` (default ``{table}.{row}.{metric}``; Appendix I is
    ``appendix_I_full_annotation_per_fold.{metric}.{row}``, per-fold lists shown as mean ± SD).
    The thesis table must exist (a bad name raises ``KeyError``); a row or metric the thesis does
    not report shows as "—".
    """
    metrics = list(metrics)
    thesis_value(thesis, thesis_table)  # strict: the table itself must exist
    records = []
    for key, label in rows:
        rec: dict[str, Any] = {"Method": label}
        n_folds = 0
        for m in metrics:
            ref = thesis_ref.format(table=thesis_table, row=key, metric=m)
            t_mean, t_sd = thesis_mean_sd(thesis_value(thesis, ref, optional=True))
            ours = THESIS_TO_OURS.get(m, m)
            o_mean, o_sd, n = res.metric(study, key, ours, n_present)
            n_folds = max(n_folds, n)
            rec[f"{_label(m)} (thesis)"] = mean_sd(t_mean, t_sd)
            rec[f"{METRIC_LABELS.get(ours, ours)} (ours)"] = mean_sd(o_mean, o_sd)
        for m in extra_ours:
            o_mean, o_sd, _ = res.metric(study, key, m, n_present)
            rec[f"{METRIC_LABELS.get(m, m)} (ours)"] = mean_sd(o_mean, o_sd)
        rec["folds (ours)"] = n_folds
        records.append(rec)
    return pd.DataFrame.from_records(records)


def _label(metric: str) -> str:
    return {Metric.GED: "GED", Metric.DICE_MATCH: "Dice_match", Metric.DICE_SOFT: "Dice_soft"}.get(metric, metric)


def per_fold_table(
    res: Results, study: str, rows: Iterable[tuple[str, str]], metric: str,
    n_present: int | None = None, thesis: dict[str, Any] | None = None, thesis_ref: str | None = None,
) -> pd.DataFrame:
    """One line per (row, source): fold 0..3 values and the mean; thesis lines from ``thesis_ref``.

    ``thesis_ref`` is a dotted path with ``{row}`` where the plan row key goes, e.g.
    ``appendix_II_sparse_per_fold.ged.np3.{row}``.
    """
    records = []
    for key, label in rows:
        if thesis is not None and thesis_ref:
            thesis_value(thesis, thesis_ref.split(".{")[0])  # strict: the table itself must exist
            values = thesis_value(thesis, thesis_ref.format(row=key), optional=True)
            if isinstance(values, list):
                rec = {"Model": label, "source": "thesis"}
                rec.update({f"fold {i}": fmt(v) for i, v in enumerate(values)})
                rec["mean"] = fmt(float(np.mean(values)))
                records.append(rec)
        vals = res.fold_values(study, key, metric, n_present)
        rec = {"Model": label, "source": "ours"}
        rec.update({f"fold {int(f)}": fmt(v) for f, v in vals.items()})
        rec["mean"] = fmt(float(vals.mean())) if len(vals) else "—"
        records.append(rec)
    frame = pd.DataFrame.from_records(records)
    fold_cols = sorted([c for c in frame.columns if c.startswith("fold ")], key=lambda c: int(c.split()[1]))
    return frame[["Model", "source", *fold_cols, "mean"]].fillna("—") if len(frame) else frame


def relative_improvement(baseline: float, ours: float) -> float:
    """Percent reduction of a lower-is-better metric: 100 * (baseline - ours) / baseline."""
    if not (np.isfinite(baseline) and np.isfinite(ours)) or baseline == 0:
        return math.nan
    return 100.0 * (baseline - ours) / baseline
