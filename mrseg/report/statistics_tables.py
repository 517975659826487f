"""Tables of the statistical-methods page: runs as the unit of replication, power, and the thesis's
own evidence under the same rule. Read-only: every number comes from ``paired.csv``,
``scorecard.json`` or ``thesis_evidence.csv`` as the aggregation wrote them."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from mrseg.report.claims import verdict_text
from mrseg.scoring.claims import read_scorecard
from mrseg.scoring.results import Results

# Claims whose power the page states: the central comparisons of separately trained models.
POWER_CLAIMS: tuple[str, ...] = ("A1", "A2", "A5", "A11", "C4.2", "C4.4", "AI.1", "AI.2", "AI.3", "AI.4", "AI.5")


def _num(value: Any, digits: int = 4, signed: bool = False) -> str:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return "—"
    if not math.isfinite(x):
        return "—"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def _ci(rec: Any, low: str, high: str) -> str:
    lo, hi = rec.get(low), rec.get(high)
    return f"[{_num(lo, signed=True)}, {_num(hi, signed=True)}]" if _num(lo) != "—" and _num(hi) != "—" else "—"


def power_table(res: Results, claims: tuple[str, ...] = POWER_CLAIMS, prefix: str = "") -> pd.DataFrame:
    """Per central claim (this build's scorecard, or its reference scoring with ``prefix``
    ``"reference_"``): run pairs, the run-level SD, the effect detectable with 80% power, the
    thesis's own effect, our effect with its run-level CI, the test-set-only CI, and the verdict with
    its qualifier."""
    card = read_scorecard(res)
    if card.empty or f"{prefix}n_runs" not in card:
        return pd.DataFrame()
    rows = []
    for _, rec in card[card["id"].isin(claims)].iterrows():
        rec = rec.to_dict()
        if rec.get(f"{prefix}unit") != "run":
            continue
        effect_key = "effect" if not prefix else "reference_effect"
        rows.append({"claim": rec["id"], "run pairs": int(rec.get(f"{prefix}n_runs") or 0),
                     "run SD": _num(rec.get(f"{prefix}run_sd")),
                     "detectable (80% power)": _num(rec.get(f"{prefix}detectable_effect")),
                     "thesis effect": _num(rec.get(f"{prefix}thesis_diff"), signed=True),
                     "ours": _num(rec.get(effect_key), signed=True),
                     "95% CI, run-level": _ci(rec, f"{prefix}run_ci_low", f"{prefix}run_ci_high"),
                     "95% CI, test-set only": _ci(rec, f"{prefix}patient_ci_low", f"{prefix}patient_ci_high"),
                     "verdict": verdict_text(rec, prefix)})
    return pd.DataFrame(rows)


def run_spread_sentence(res: Results, claim: str = "A1") -> str:
    """What the run pairs of ``claim`` measured, in words: per run pair a - b (this build's runs and
    the committed reference's), their range and SD, read from the scorecard."""
    card = read_scorecard(res)
    if card.empty or claim not in set(card["id"]):
        return "No scorecard yet: the run-to-run spread appears once the runs are aggregated."
    rec = card[card["id"] == claim].iloc[0].to_dict()
    parts = []
    for prefix, name in (("", "this build's runs"), ("reference_", "the committed reference runs")):
        tokens = str(rec.get(f"{prefix}run_diffs") or "").split()
        values = [float(t.rsplit(":", 1)[1]) for t in tokens]
        if len(values) < 2:
            continue
        sd = float(pd.Series(values).std(ddof=1))
        parts.append(f"on {name}, {claim} ({rec['claim']}) differs per (fold, seed) run pair from "
                     f"{min(values):+.4f} to {max(values):+.4f} over {len(values)} run pairs (SD {sd:.4f}, "
                     f"{sum(v > 0 for v in values)} of {len(values)} positive)")
    if not parts:
        return f"{claim}: fewer than two run pairs, so no run-to-run spread is measured."
    return "Measured: " + "; ".join(parts) + "."


def thesis_evidence_view(res: Results) -> pd.DataFrame:
    """``thesis_evidence.csv`` formatted: comparison, metric, claimed direction, source, folds,
    the thesis's difference, the t interval over folds and its p, Nadeau & Bengio's interval and
    p, the detectable effect, the correlation needed (mean ± SD rows) and both readings."""
    table = res.thesis_evidence
    if table is None or table.empty:
        return pd.DataFrame()
    out = []
    for _, rec in table.iterrows():
        rec = rec.to_dict()
        rho = rec.get("rho_needed")
        rho_text = ("—" if _num(rho) == "—" else "no correlation suffices" if float(rho) > 1
                    else "any (significant at every correlation)" if float(rho) <= -1 else f"> {float(rho):.2f}")
        out.append({"comparison": rec["comparison"], "metric": rec["metric"], "claimed": f"a {rec['expect']} b",
                    "source": rec["source"], "folds": int(rec["n_folds"]),
                    "thesis a - b": _num(rec["effect"], signed=True),
                    "t over folds": _ci(rec, "t_ci_low", "t_ci_high"), "p": _num(rec["t_p"], 3),
                    "Nadeau-Bengio": _ci(rec, "nb_ci_low", "nb_ci_high"), "p (NB)": _num(rec["nb_p"], 3),
                    "detectable (80% power)": _num(rec["detectable_effect"]),
                    "correlation needed": rho_text, "reading (t)": rec["reading"], "reading (NB)": rec["reading_nb"]})
    return pd.DataFrame(out)


def thesis_evidence_summary(res: Results) -> str:
    """Sentences that say which of the thesis's comparisons its own fold numbers support under the
    t interval over folds and under Nadeau & Bengio's correction."""
    table = res.thesis_evidence
    if table is None or table.empty:
        return "The thesis's fold numbers were not read (no thesis_evidence.csv)."
    parts = []
    for reading_col, name in (("reading", "the t interval over its 4 folds"),
                              ("reading_nb", "Nadeau & Bengio's corrected interval")):
        supported = table[table[reading_col] == "supported"]
        parts.append(f"Under {name}, {len(supported)} of its {len(table)} comparisons are supported"
                     + (": " + "; ".join(f"{c} ({m})" for c, m in zip(supported["comparison"], supported["metric"]))
                        if len(supported) else "") + ".")
    central = table[table["source"].str.startswith("mean")]
    for _, rec in central.iterrows():
        rho = rec["rho_needed"]
        if rec["reading"] != "supported":
            need = ("no correlation between the two models' fold results would make it significant"
                    if not math.isfinite(rho) or rho > 1 else
                    f"it would need a correlation above {rho:.2f} between the two models' fold results")
            parts.append(f"{rec['comparison']} on {rec['metric']}: the thesis reports only mean ± SD over folds; "
                         f"assuming independent folds its difference {rec['effect']:+.4f} has a 95% CI of "
                         f"[{rec['t_ci_low']:+.4f}, {rec['t_ci_high']:+.4f}], and {need}.")
    return " ".join(parts)


__all__ = ["POWER_CLAIMS", "power_table", "run_spread_sentence", "thesis_evidence_summary", "thesis_evidence_view"]
