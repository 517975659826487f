"""Each results page's closing "What this shows": sentences generated from the tables the page has
just shown (never typed), for the pages whose findings are not thesis claims (the mechanism and
controlled studies beyond the thesis). Pages that hold thesis claims close with
:func:`mrseg.report.claims.findings_markdown` instead.
"""

from __future__ import annotations

import pandas as pd

from mrseg.formatting import ci_text


def _runs(frame: pd.DataFrame) -> str:
    if "n_runs" not in frame or frame["n_runs"].isna().all():
        return ""
    lo, hi = int(frame["n_runs"].min()), int(frame["n_runs"].max())
    return f" ({lo} run pair{'s' if hi != 1 else ''}" + (f" to {hi}" if hi != lo else "") + " per comparison)"


def mechanism_conclusion(readings: pd.DataFrame, collapse: pd.DataFrame | None = None) -> str:
    """One sentence per (explanation, np) of :func:`mrseg.diagnostics.mechanism.explanation_readings`
    (its reading, the pair's GED (d(∅,∅)=0) difference with the run-level 95% CI) and one on posterior use
    from :func:`mrseg.diagnostics.mechanism.collapse_table` (largest KL and active units)."""
    if readings is None or readings.empty:
        return "The mechanism study has no paired results yet, so no explanation can be read."
    lines = []
    for n_p, group in readings.groupby("np", sort=True):
        parts = [f"{rec.explanation} is **{rec.reading}** ({rec.test}: GED, d(∅,∅)=0, "
                 f"{ci_text(rec.difference, rec.ci_low, rec.ci_high)})" for rec in group.itertuples()]
        supported = group.loc[group["reading"] == "supported", "explanation"].tolist()
        lead = (f"At np = {int(n_p)} the controls support {', '.join(supported)}" if supported
                else f"At np = {int(n_p)} no explanation is supported by its control")
        lines.append(f"- {lead}: " + "; ".join(parts) + ".")
    if collapse is not None and not collapse.empty and {"kl_nats_mean", "active_units_mean"} <= set(collapse):
        kl, units = collapse["kl_nats_mean"].max(), collapse["active_units_mean"].max()
        lines.append(f"- Posterior use across the study's rows: KL at most {kl:.3g} nats and at most {units:.1f} active "
                     "units (row means over folds). Where both are near zero the posterior is unused, and the "
                     "differences above come from the losses, not from what a posterior encodes.")
    return "\n".join(lines)


def controlled_conclusion(comparison: pd.DataFrame, metric_words: str = "GED (d(∅,∅)=0) to the true style distribution") -> str:
    """Sentences on :func:`mrseg.diagnostics.recovery.controlled_comparison` (per-rater minus shared
    per rater count N and np): how many settings favour each model, and each setting's effect with
    its run-level 95% CI."""
    if comparison is None or comparison.empty:
        return f"No controlled-study comparison of {metric_words} has results yet."
    verdicts = comparison["verdict"].astype(str)
    favour = {v: int((verdicts == v).sum()) for v in sorted(set(verdicts))}
    counts = ", ".join(f"{n} {v}" for v, n in favour.items())
    lines = [f"- Per-rater minus shared, {metric_words}, over {len(comparison)} settings of N and np{_runs(comparison)}: "
             f"{counts}."]
    for rec in comparison.itertuples():
        lines.append(f"- N = {rec.N}, np = {rec.np}: {ci_text(rec.difference, rec.ci_low, rec.ci_high)}, {rec.verdict}.")
    return "\n".join(lines)


__all__ = ["controlled_conclusion", "mechanism_conclusion"]
