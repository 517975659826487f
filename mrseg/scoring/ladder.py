"""The capacity ladder (the plan's ``scale`` study) read as the central studies at each rung.

The scale study's rows are ``<rung>__<row>`` (``w32c2__per_rater_s1``): the central rows trained
with a wider or deeper U-Net, or at another image size (the rung), and nothing else changed. :func:`rung_view` relabels one
rung's rows as the rows of the studies they stand for, so that the claim rules score a rung exactly
as they score the profile's own network:

- np = 4: ``main``, ``per_expert`` and ``sparsity``'s full-annotation reference (:data:`STANDS_FOR`);
- np = 1: ``sparsity``.

Claims on rows the ladder does not train (ProbUNet, shared-masked, the ablation, np = 2 and 3, the
diagnostics) find nothing in a rung's view and score "no results" there.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd

from mrseg.config import Row
from mrseg.scoring.results import Results

SCALE_STUDY = "scale"
RUNG_SEPARATOR = "__"
# n_present -> the studies a rung's row at that np stands for
STANDS_FOR: dict[int, tuple[str, ...]] = {4: ("main", "per_expert", "sparsity"), 1: ("sparsity",)}
# (a, b, n_present): the central paired effects a - b the Scale page follows up the ladder
LADDER_EFFECTS: tuple[tuple[str, str, int], ...] = (
    (Row.PER_RATER_S1, Row.SHARED_S1, 4), (Row.PER_RATER_S1, Row.SHARED_S1, 1), (Row.DPERSONA_S1S2, Row.PER_RATER_S1, 4))
# (row, n_present): the rows whose quality the Scale page follows up the ladder
LADDER_ROWS: tuple[tuple[str, int], ...] = ((Row.SHARED_S1, 4), (Row.PER_RATER_S1, 4), (Row.DPERSONA_S1S2, 4),
                                            (Row.SHARED_S1, 1), (Row.PER_RATER_S1, 1))
# tables of a Results with study / row / n_present columns, relabelled by rung_view
RELABELLED = ("cases", "per_fold", "summary")


def split_rung_row(row: str) -> tuple[str, str] | None:
    """``("w32c2", "per_rater_s1")`` for ``"w32c2__per_rater_s1"``; None for a row without a rung."""
    rung, sep, base = str(row).partition(RUNG_SEPARATOR)
    return (rung, base) if sep and rung and base else None


def ladder_rungs(res: Results, study: str = SCALE_STUDY) -> list[str]:
    """The rungs with at least one aggregated row in ``res``'s ``study``, in table order."""
    summary = res.summary
    if summary is None or summary.empty or "study" not in summary:
        return []
    rows = summary.loc[summary["study"].astype(str) == study, "row"].astype(str)
    return list(dict.fromkeys(s[0] for s in map(split_rung_row, rows) if s))


def _relabel(frame: pd.DataFrame | None, rung: str, study: str, pair_columns: tuple[str, ...]) -> pd.DataFrame | None:
    """The rows of ``frame`` in ``study`` whose ``pair_columns`` all name ``rung``'s rows, copied once per
    study they stand for at their np, with the rung prefix removed."""
    if frame is None or frame.empty or "study" not in frame:
        return frame if frame is None else frame.iloc[0:0]
    sel = frame[frame["study"].astype(str) == study]
    parts = []
    for n_present, studies in STANDS_FOR.items():
        at = sel[pd.to_numeric(sel["n_present"], errors="coerce") == n_present]
        keep = pd.Series(True, index=at.index)
        renamed = at.copy()
        for column in pair_columns:
            split = at[column].astype(str).map(split_rung_row)
            keep &= split.map(lambda s: s is not None and s[0] == rung).astype(bool)
            renamed[column] = split.map(lambda s: s[1] if s else None)
        renamed = renamed[keep]
        for target in studies:
            parts.append(renamed.assign(study=target))
    return pd.concat(parts, ignore_index=True) if parts else frame.iloc[0:0]


def rung_view(res: Results, rung: str, study: str = SCALE_STUDY) -> Results:
    """``res`` as if ``rung``'s rows of ``study`` were the central studies' rows (:data:`STANDS_FOR`):
    cases, per-fold, summary and paired tables relabelled; every other table empty, so claims on
    anything else score "no results". Paired comparisons between rungs are left out."""
    tables = {name: _relabel(getattr(res, name), rung, study, ("row",)) for name in RELABELLED}
    paired = _relabel(res.paired, rung, study, ("a", "b"))
    return dataclasses.replace(res, **tables, paired=paired, alignment=None, alignment_summary=None, latent=None,
                               runs=None, throughput=None, thesis_evidence=None, attributes_correlations=None,
                               attributes_patches=None, derived={}, extra={},
                               context={**res.context, "rung": rung})


def own_study(n_present: int) -> str:
    """The study whose rows are rung 0's (the profile's own network) at ``n_present``."""
    return "main" if n_present == 4 else "sparsity"


__all__ = ["LADDER_EFFECTS", "LADDER_ROWS", "RUNG_SEPARATOR", "SCALE_STUDY", "STANDS_FOR", "ladder_rungs", "own_study",
           "rung_view", "split_rung_row"]


def _rule_fields(rule: Any, key: str) -> list[Any]:
    """Every value of ``key`` anywhere in a rule mapping (nested pairs and sides included)."""
    if isinstance(rule, dict):
        found = [rule[key]] if key in rule else []
        return found + [v for value in rule.values() for v in _rule_fields(value, key)]
    if isinstance(rule, list):
        return [v for item in rule for v in _rule_fields(item, key)]
    return []


def ladder_can_score(rule: dict[str, Any]) -> bool:
    """A claim a rung can decide: it reads only studies the ladder stands for, at np levels it
    trains (a rule that names no level reads full annotation, np = 4). A claim over np = 3 and 2, or
    on a diagnostic, stays with the profile's own network even where a rung's view scores part of it;
    so does a training-cost claim (``time_ratio``: a rung's runs may have trained on other machines)."""
    if rule.get("kind") == "time_ratio":
        return False
    studies = {str(s) for s in _rule_fields(rule, "study")}
    if not studies or not studies <= {s for group in STANDS_FOR.values() for s in group}:
        return False
    levels: set[int] = set()
    for value in _rule_fields(rule, "n_present") + _rule_fields(rule, "full") + _rule_fields(rule, "sparse"):
        levels |= {int(v) for v in (value if isinstance(value, list) else [value])}
    return (levels or {4}) <= set(STANDS_FOR)


def attach_ladder(records: list[dict[str, Any]], claims: list[dict[str, Any]],
                  rung_records: list[tuple[str, str, list[dict[str, Any]]]], build_network: str,
                  reference_network: str) -> None:
    """Add each claim's verdicts per rung and where it is decided (in place).

    ``rung_records``: ``(rung, description, records)`` per rung above the profile's own network, in
    order of size. ``ladder``: per rung the verdict, effect, CI and runs. A claim the ladder can score
    (:func:`ladder_can_score`) is decided at the largest rung whose verdict decides it (reproduced,
    contradicted or inconclusive: a rung whose rows did not converge, or lack the rows, does not);
    ``decision``, ``decided_by`` and ``decided_at`` say so, and ``ladder_<field>`` holds that rung's
    verdict, effect, CI, run pairs and verdict note (``own_network_decision``: the decision it replaced).
    Every other claim keeps its decision,
    ``decided_at`` naming the network of the runs that decided it: ``reference_network`` where the
    reference decided it (``decided_by`` "reference (...)"), else ``build_network``."""
    from mrseg.scoring.claims import DECIDED

    rules = {c["id"]: c["rule"] for c in claims}
    by_rung = [(rung, text, {r["id"]: r for r in recs}) for rung, text, recs in rung_records]
    for rec in records:
        rec["decided_at"] = (reference_network if str(rec.get("decided_by") or "").startswith("reference")
                             else build_network)
        if not ladder_can_score(rules.get(rec["id"], {})):
            continue
        steps = []
        for rung, text, found in by_rung:
            r = found.get(rec["id"])
            if r is not None:
                steps.append({"rung": rung, "network": text, "verdict": r["verdict"], "effect": r["effect"],
                              "ci_low": r["ci_low"], "ci_high": r["ci_high"], "n": r["n"],
                              "n_runs": r.get("n_runs"), "verdict_note": r.get("verdict_note") or ""})
        rec["ladder"] = steps
        decided = [s for s in steps if s["verdict"] in DECIDED]
        if decided:
            top = decided[-1]
            rec["own_network_decision"] = rec.get("decision") or rec.get("verdict")
            rec["own_network_decided_by"] = rec.get("decided_by") or "this build"
            rec["decision"] = top["verdict"]
            rec["decided_by"] = f"capacity ladder, rung {top['rung']}"
            rec["decided_at"] = top["network"]
            rec.update({f"ladder_{k}": top[k] for k in ("rung", "verdict", "effect", "ci_low", "ci_high", "n_runs",
                                                        "verdict_note")})


__all__ += ["attach_ladder", "ladder_can_score"]
