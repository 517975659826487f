"""The scorecard: the claims of ``book/data/claims.yaml``, their verdict rules, and the table."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import yaml
from scipy import stats

from mrseg.config import Metric
from mrseg.diagnostics.run_level import fold_means_difference
from mrseg.diagnostics.statistics import (
    adjust_pvalues,
    direction_verdict,
    exact_spearman,
    fisher_r_ci,
    mean_t_ci,
    proportion_ci,
    sign_test,
    variance_ratio_test,
)
from mrseg.formatting import _is_number, fmt, mean_sd
from mrseg.io import write_json
from mrseg.scoring.claim_rules import (
    Alignment,
    AllCompare,
    Attribute,
    AttributeFolds,
    CoMove,
    Compare,
    ComparePair,
    Degradation,
    Direction,
    Equivalent,
    Extreme,
    FoldCompare,
    FoldWins,
    GapTrend,
    GradientIsolation,
    LevelRule,
    NotTestable,
    OnlyRowImproves,
    PerExpert,
    RaterIdentity,
    SdCompare,
    Selector,
    TimeRatio,
    Verdict,
    parse_rule,
)
from mrseg.scoring.results import Results, read_results_folder
from mrseg.thesis import BOOK_DATA, load_thesis_reported, thesis_value

CLAIMS_YAML = BOOK_DATA / "claims.yaml"
VERDICTS: tuple[str, ...] = tuple(v.value for v in Verdict)
SCORECARD_JSON = "scorecard.json"


def load_claims(path: str | Path | None = None) -> list[dict[str, Any]]:
    """The scorecard's claims (``book/data/claims.yaml``), each with id, text, rule.

    Every rule is checked against its kind's schema (:mod:`mrseg.scoring.claim_rules`); a bad rule
    raises ``ValueError`` naming the file, the claim id and the field."""
    path = Path(path) if path is not None else CLAIMS_YAML
    data = yaml.safe_load(Path(path).read_text())
    claims = data.get("claims") if isinstance(data, dict) else None
    if not isinstance(claims, list):
        raise ValueError(f"{path}: expected a top-level 'claims' list")
    seen: set[str] = set()
    for claim in claims:
        if not isinstance(claim, dict):
            raise ValueError(f"{path}: each claim must be a mapping, got {claim!r}")
        for key in ("id", "source", "text", "rule"):
            if key not in claim:
                raise ValueError(f"{path}: claim {claim.get('id', '?')} lacks '{key}'")
        if claim["id"] in seen:
            raise ValueError(f"{path}: claim id {claim['id']} appears twice")
        seen.add(claim["id"])
        try:
            parse_rule(claim["rule"])
        except ValueError as err:
            raise ValueError(f"{path}: claim {claim['id']}: {err}") from None
    return claims


@dataclass
class Evidence:
    """What a rule found: verdict, our value as text, a reason, and the statistics behind it.

    ``effect`` is our estimate in the rule's unit (a mean paired difference ``a - b`` unless the
    rule says otherwise), ``ci_low``/``ci_high`` its 95% CI, ``p`` the test's p value, ``n`` the
    number of paired units; ``rows`` the (study, row, n_present) compared, for the convergence check;
    ``decides`` the table row that decides the verdict (``paired.csv: ...``); ``detail`` the deciding
    comparison's :data:`PAIRED_DETAIL` (unit, run-level and patient intervals, detectable effect).
    """

    verdict: str
    ours: str
    reason: str = ""
    effect: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    p: float = math.nan
    n: int = 0
    rows: list = field(default_factory=list)
    decides: str = ""
    detail: dict = field(default_factory=dict)


ALPHA = 0.05
DIRECTIONAL = (Verdict.REPRODUCED.value, Verdict.CONTRADICTED.value)
DECIDED = (*DIRECTIONAL, Verdict.INCONCLUSIVE.value)   # the verdicts that the runs decided
CI_DESCRIPTION = ("95% CI of the mean paired difference: for separately trained models run-level (a crossed "
                  "bootstrap over run pairs and patients, Student t on n_runs - 1 df), for Stage 2 on its own "
                  "Stage 1 a bootstrap over patients (2,000 resamples); the patient bootstrap is kept beside it as "
                  "test-set uncertainty only")
NO_RESULTS = Verdict.NO_RESULTS.value
NOT_TESTABLE = Verdict.NOT_TESTABLE.value
NOT_AT_SCALE = Verdict.NOT_AT_SCALE.value


# paired.csv columns that change sign, and intervals whose ends swap, when a - b is read as b - a.
FLIPPED_EFFECTS = ("mean_diff", "case_mean_diff", "run_effect")
FLIPPED_INTERVALS = (("ci_low", "ci_high"), ("ci90_low", "ci90_high"), ("patient_ci_low", "patient_ci_high"),
                     ("patient_ci90_low", "patient_ci90_high"), ("run_ci_low", "run_ci_high"),
                     ("run_ci90_low", "run_ci90_high"), ("t_ci_low", "t_ci_high"), ("nb_ci_low", "nb_ci_high"))
# What a claim record carries of its deciding paired comparison, beside the primary effect and CI.
PAIRED_DETAIL = ("unit", "n_runs", "margin", "run_ci_low", "run_ci_high", "run_p", "run_sd", "detectable_effect",
                 "patient_ci_low", "patient_ci_high", "patient_p", "t_ci_low", "t_ci_high", "t_p",
                 "nb_ci_low", "nb_ci_high", "nb_p", "run_diffs")


def _missing(*values: float) -> bool:
    return any(not np.isfinite(v) for v in values)


DEFAULT_METRIC = Metric.GED_DPERSONA   # a comparison's metric when its selector names none (GED, d(empty, empty) = 1)
FULL_ANNOTATION = 4               # a selector's n_present when it names none


def _level(selector: Selector) -> int:
    return FULL_ANNOTATION if selector.n_present is None else int(selector.n_present)


def _paired(res: Results, a: Selector, b: Selector) -> dict[str, Any] | None:
    """The paired.csv record of ``a - b`` (same study and n_present; ``a``'s metric and np), flipped
    when stored as ``b - a``."""
    table = res.paired
    if table is None or table.empty or a.study != b.study:
        return None
    metric = a.metric or DEFAULT_METRIC
    n_present = _level(a)
    base = table[(table["study"].astype(str) == a.study) & (table["metric"] == metric)
                 & (pd.to_numeric(table["n_present"], errors="coerce") == n_present)]
    for x, y, sign in ((a.row, b.row, 1.0), (b.row, a.row, -1.0)):
        hit = base[(base["a"].astype(str) == x) & (base["b"].astype(str) == y)]
        if len(hit):
            rec = hit.iloc[0].to_dict()
            if sign < 0:
                for name in FLIPPED_EFFECTS:
                    if name in rec:
                        rec[name] = -rec[name]
                for low, high in FLIPPED_INTERVALS:
                    if low in rec and high in rec:
                        rec[low], rec[high] = -rec[high], -rec[low]
                for name in ("run_diffs", "seed_diffs"):
                    rec[name] = " ".join(f"{k}:{-float(v):+.6g}" for k, v in
                                         (t.rsplit(":", 1) for t in str(rec.get(name) or "").split()))
                rec["mean_a"], rec["mean_b"] = rec["mean_b"], rec["mean_a"]
                rec["folds_a_lower"], rec["folds_a_higher"] = rec["folds_a_higher"], rec["folds_a_lower"]
                rec["fold_diffs"] = " ".join(f"{f}:{-float(v)}" for f, v in
                                             (t.split(":") for t in str(rec.get("fold_diffs") or "").split()))
                rec["fold_ci"] = " ".join(f"{f}:{-float(h)}:{-float(lo)}" for f, lo, h in
                                          (t.split(":") for t in str(rec.get("fold_ci") or "").split()))
                rec["fold_run_ci"] = " ".join(f"{f}:{-float(h)}:{-float(lo)}:{p}:{n}" for f, lo, h, p, n in
                                              (t.split(":") for t in str(rec.get("fold_run_ci") or "").split()))
            rec["decides"] = f"paired.csv: {a.study}, np={n_present}, {a.row} - {b.row}, {metric}"
            return rec
    return None


def _rows_of(*selectors: Selector) -> list[tuple[str, str, int]]:
    return [(s.study, s.row, _level(s)) for s in selectors]


def _detail(rec: dict[str, Any]) -> dict[str, Any]:
    return {k: rec[k] for k in PAIRED_DETAIL if k in rec}


def _describe(rec: dict[str, Any]) -> str:
    return (f"{fmt(rec['mean_a'])} vs {fmt(rec['mean_b'])}; diff {rec['mean_diff']:+.4f} "
            f"[{rec['ci_low']:+.4f}, {rec['ci_high']:+.4f}], folds lower {int(rec['folds_a_lower'])}/{int(rec['n_folds'])}")


def _compare(res: Results, expect: Direction, a: Selector, b: Selector) -> Evidence:
    """:func:`_rule_compare` of ``a`` against ``b``."""
    rec = _paired(res, a, b)
    rows = _rows_of(a, b)
    if rec is None:
        return Evidence(NO_RESULTS, "—", "one of the compared rows has no paired results", rows=rows)
    verdict = direction_verdict(rec["ci_low"], rec["ci_high"], expect)
    return Evidence(verdict, _describe(rec), f"expected a {expect} b", rec["mean_diff"], rec["ci_low"],
                    rec["ci_high"], rec["p"], int(rec["n"]), rows, rec["decides"], _detail(rec))


def _rule_compare(res: Results, rule: Compare | ComparePair, thesis: dict[str, Any]) -> Evidence:
    """``a`` vs ``b`` (each {study, row, metric, n_present}) on the same test cases: the claimed
    direction ``expect`` ('<' or '>') of ``a - b`` holds when the 95% patient-bootstrap CI of the
    mean paired difference excludes 0 on that side (reproduced), the other side (contradicted)."""
    return _compare(res, rule.expect, rule.a, rule.b)


def _margin(rule: Equivalent, rec: dict[str, Any]) -> float:
    if rule.margin is not None:
        return float(rule.margin)
    return float(rule.margin_rel) * abs(float(rec["mean_b"]))


def _rule_equivalent(res: Results, rule: Equivalent, thesis: dict[str, Any]) -> Evidence:
    """"No change" / a tie: TOST with margin ``margin`` (absolute) or ``margin_rel`` (fraction of
    b's mean, default 5%). Reproduced when the 90% CI of the mean paired difference lies inside
    (-margin, +margin) (TOST at 5%); contradicted when the 95% CI excludes 0 and equivalence fails;
    otherwise inconclusive."""
    rec = _paired(res, rule.a, rule.b)
    rows = _rows_of(rule.a, rule.b)
    if rec is None:
        return Evidence(NO_RESULTS, "—", "one of the compared rows has no paired results", rows=rows)
    margin = _margin(rule, rec)
    if rec.get("unit", "case") == "run":   # the run-level standard error and its degrees of freedom
        se, dof = float(rec.get("run_se", math.nan)), int(rec.get("n_runs") or 0) - 1
    else:
        se, dof = float(rec["sd_diff"]) / math.sqrt(max(1, int(rec["n"]))), max(1, int(rec["n"]) - 1)
    from scipy import stats as st

    p_tost = (max(st.t.sf((rec["mean_diff"] + margin) / se, dof), st.t.cdf((rec["mean_diff"] - margin) / se, dof))
              if se > 0 and dof >= 1 else math.nan)
    equivalent = -margin < rec["ci90_low"] and rec["ci90_high"] < margin
    if equivalent:
        verdict = Verdict.REPRODUCED
    elif rec["ci_low"] > 0 or rec["ci_high"] < 0:
        verdict = Verdict.CONTRADICTED
    else:
        verdict = Verdict.INCONCLUSIVE
    return Evidence(verdict, _describe(rec) + f"; margin ±{margin:.4f}, 90% CI [{rec['ci90_low']:+.4f}, {rec['ci90_high']:+.4f}]",
                    f"TOST, margin ±{margin:.4f}", rec["mean_diff"], rec["ci_low"], rec["ci_high"], float(p_tost),
                    int(rec["n"]), rows, rec["decides"], {**_detail(rec), "margin": margin})


def _combine(verdicts: list[str]) -> str:
    if NO_RESULTS in verdicts:
        return NO_RESULTS
    if Verdict.CONTRADICTED in verdicts:
        return Verdict.CONTRADICTED
    return Verdict.REPRODUCED if all(v == Verdict.REPRODUCED for v in verdicts) else Verdict.INCONCLUSIVE


def _rule_all_compare(res: Results, rule: AllCompare, thesis: dict[str, Any]) -> Evidence:
    """Every comparison in ``pairs`` (each as ``compare``): reproduced when all are, contradicted
    when any is; the effect, CI and p shown are the first pair's, p the largest of the pairs'."""
    evs = [_rule_compare(res, pair, thesis) for pair in rule.pairs]
    verdict = _combine([e.verdict for e in evs])
    first = evs[0]
    ps = [e.p for e in evs if np.isfinite(e.p)]
    return Evidence(verdict, "; ".join(f"{pair.label}{e.ours}" for pair, e in zip(rule.pairs, evs)),
                    f"{sum(e.verdict == Verdict.REPRODUCED for e in evs)}/{len(evs)} comparisons reproduced",
                    first.effect, first.ci_low, first.ci_high, max(ps) if ps else math.nan, first.n,
                    [r for e in evs for r in e.rows], "; ".join(e.decides for e in evs if e.decides), first.detail)


def _rule_sd_compare(res: Results, rule: SdCompare, thesis: dict[str, Any]) -> Evidence:
    """Spread over folds of ``a`` vs ``b``: F test of the variance ratio of the per-fold means;
    reproduced when the ratio's 95% CI excludes 1 on the side of ``expect``."""
    a = res.fold_values(rule.a.study, rule.a.row, rule.a.metric or DEFAULT_METRIC, rule.a.n_present)
    b = res.fold_values(rule.b.study, rule.b.row, rule.b.metric or DEFAULT_METRIC, rule.b.n_present)
    rows = _rows_of(rule.a, rule.b)
    if len(a) < 2 or len(b) < 2:
        return Evidence(NO_RESULTS, "—", "an SD over folds needs at least two folds", rows=rows)
    test = variance_ratio_test(a.to_numpy(), b.to_numpy())
    log = (math.log(test["ci_low"]), math.log(test["ci_high"])) if test["ci_low"] > 0 else (math.nan, math.nan)
    verdict = direction_verdict(*log, rule.expect)
    return Evidence(verdict, f"SD {a.std(ddof=0):.4f} vs {b.std(ddof=0):.4f}; variance ratio {test['ratio']:.2f} "
                    f"[{test['ci_low']:.2f}, {test['ci_high']:.2f}]", "F test of the variance ratio over folds",
                    test["ratio"], test["ci_low"], test["ci_high"], test["p"], int(min(len(a), len(b))), rows,
                    f"per_fold.csv: {rule.a.study}, {rule.a.row} and {rule.b.row}")


def _better(res: Results, study: str, row: str, base: str, n_present: int = FULL_ANNOTATION) -> dict[str, str]:
    """Verdicts of ``row`` better than ``base`` on GED (d=1, lower) and Dice_match (higher)."""
    out = {}
    for metric, expect in ((Metric.GED_DPERSONA, "<"), (Metric.DICE_MATCH, ">")):
        ev = _compare(res, expect, Selector(study, row, metric, n_present), Selector(study, base, metric, n_present))
        out[metric] = ev.verdict
    return out


def _rule_only_row_improves(res: Results, rule: OnlyRowImproves, thesis: dict[str, Any]) -> Evidence:
    """Among ``rows`` of ``study``, ``winner`` is the only one better than ``baseline`` on both GED
    and Dice_match, each by a paired CI excluding 0. Contradicted when the winner is significantly
    worse on either metric or another row is significantly better on both; that needs only the rows
    with results, so rows without results leave the claim undecided only when it is not contradicted."""
    study, base, winner = rule.study, rule.baseline, rule.winner
    found = {row: _better(res, study, row, base) for row in rule.rows}
    rows = [(study, r, FULL_ANNOTATION) for r in [base, *rule.rows]]
    missing = [r for r, v in found.items() if NO_RESULTS in v.values()]
    if winner in missing:
        return Evidence(NO_RESULTS, "—", "rows without results: " + ", ".join(missing), rows=rows)
    both = [r for r, v in found.items() if r not in missing and set(v.values()) == {Verdict.REPRODUCED}]
    win = _compare(res, "<", Selector(study, winner, Metric.GED_DPERSONA), Selector(study, base, Metric.GED_DPERSONA))
    contradicted = Verdict.CONTRADICTED in found[winner].values() or any(r != winner for r in both)
    if missing and not contradicted:
        return Evidence(NO_RESULTS, "—", "rows without results: " + ", ".join(missing), rows=rows)
    if contradicted:
        verdict = Verdict.CONTRADICTED
    elif both == [winner]:
        verdict = Verdict.REPRODUCED
    else:
        verdict = Verdict.INCONCLUSIVE
    reason = "winner's GED difference shown"
    if missing:
        reason += "; contradicted by the rows with results (without results: " + ", ".join(missing) + ")"
    return Evidence(verdict, "rows better on both (CI): " + (", ".join(both) if both else "none"),
                    reason, win.effect, win.ci_low, win.ci_high, win.p, win.n, rows, win.decides, win.detail)


def _rule_extreme(res: Results, rule: Extreme, thesis: dict[str, Any]) -> Evidence:
    """``target`` has the max/min of ``metric`` among ``rows``: reproduced when its paired
    difference to every other row excludes 0 on that side; contradicted when some row is
    significantly beyond it (which rows without results cannot undo: they leave the claim
    undecided only when no row with results is beyond it). The effect shown is the closest
    contender's difference, or, when rows lack results, the row beyond the target."""
    expect: Direction = ">" if rule.which == "max" else "<"
    evs = {}
    for row in rule.rows:
        if row == rule.target:
            continue
        evs[row] = _compare(res, expect, Selector(rule.study, rule.target, rule.metric, rule.n_present),
                            Selector(rule.study, row, rule.metric, rule.n_present))
    rows = [(rule.study, r, int(rule.n_present)) for r in rule.rows]
    missing = [r for r, e in evs.items() if e.verdict == NO_RESULTS]
    if len(missing) == len(evs) and res.fold_values(rule.study, rule.target, rule.metric, rule.n_present).empty:
        return Evidence(NO_RESULTS, "—", f"the target row {rule.target} has no results", rows=rows)
    if missing:
        beyond = [r for r, e in evs.items() if e.verdict == Verdict.CONTRADICTED]
        if not beyond:
            return Evidence(NO_RESULTS, "—", "rows without results: " + ", ".join(missing), rows=rows)
        e = evs[beyond[0]]
        return Evidence(Verdict.CONTRADICTED, f"beyond the target: {', '.join(beyond)}; {e.ours}",
                        f"{len(beyond)} row(s) significantly {'above' if expect == '>' else 'below'} the target; "
                        f"without results: {', '.join(missing)}", e.effect, e.ci_low, e.ci_high,
                        max(evs[r].p for r in beyond), e.n, rows, e.decides, e.detail)
    closest = min(evs, key=lambda r: abs(evs[r].effect))
    e = evs[closest]
    return Evidence(_combine([x.verdict for x in evs.values()]), f"closest: {closest}, {e.ours}",
                    f"{sum(x.verdict == Verdict.REPRODUCED for x in evs.values())}/{len(evs)} rows significantly "
                    f"{'below' if expect == '>' else 'above'}",
                    e.effect, e.ci_low, e.ci_high, max(x.p for x in evs.values()), e.n, rows, e.decides, e.detail)


def rater_slots_sorted(res: Results, study: str | None = None) -> bool:
    """True when every dataset behind ``study``'s runs (per_fold.csv; all of the build's datasets
    when ``study`` is None or not found) states an area-sorted ``rater_order`` (meta.json). Another
    study's datasets (e.g. the controlled study's synthetic raters) do not matter to this one."""
    order = res.context.get("rater_order") or {}
    datasets = res.context.get("datasets") or list(order)
    pf = res.per_fold
    if study is not None and pf is not None and not pf.empty and {"study", "dataset"} <= set(pf.columns):
        used = sorted(set(pf.loc[pf["study"].astype(str) == study, "dataset"].dropna().astype(str)))
        datasets = used or datasets
    return bool(datasets) and all(str(order.get(d, "")).lower().startswith("area") for d in datasets)


def _rule_per_expert(res: Results, rule: PerExpert, thesis: dict[str, Any]) -> Evidence:
    """Per-slot Dice_match gains of ``a`` over ``b`` (paired). ``mode: all``: every slot's CI
    above 0; ``mode: argmax``: slot ``expert``'s gain CI lies above every other slot's gain CI.
    Not testable unless the dataset's rater slots have a stated order (``rater_order``
    area-sorted in meta.json): on unsorted slots "expert k" is an arbitrary reader."""
    rows = _rows_of(dataclasses.replace(rule.a, n_present=FULL_ANNOTATION),
                    dataclasses.replace(rule.b, n_present=FULL_ANNOTATION))
    if not rater_slots_sorted(res, rule.a.study):
        return Evidence(NOT_TESTABLE, "—", "rater slots are not ordered (no area-sorted rater_order in the dataset's meta.json)",
                        rows=rows)
    evs = []
    k = 0
    while True:
        spec = {"metric": f"dice_expert_{k}", "n_present": FULL_ANNOTATION}
        e = _compare(res, ">", dataclasses.replace(rule.a, **spec), dataclasses.replace(rule.b, **spec))
        if e.verdict == NO_RESULTS:
            break
        evs.append(e)
        k += 1
    if not evs:
        return Evidence(NO_RESULTS, "—", "no per-expert columns", rows=rows)
    text = ", ".join(f"{e.effect:+.4f} [{e.ci_low:+.4f}, {e.ci_high:+.4f}]" for e in evs)
    if rule.mode == "all":
        worst = min(evs, key=lambda e: e.ci_low)
        return Evidence(_combine([e.verdict for e in evs]), f"gains {text}", "every slot's gain CI above 0",
                        worst.effect, worst.ci_low, worst.ci_high, max(e.p for e in evs), worst.n, rows, worst.decides,
                        worst.detail)
    j = int(rule.expert or 0)
    target, others = evs[j], [e for i, e in enumerate(evs) if i != j]
    if all(target.ci_low > o.ci_high for o in others):
        verdict = Verdict.REPRODUCED
    elif any(o.ci_low > target.ci_high for o in others):
        verdict = Verdict.CONTRADICTED
    else:
        verdict = Verdict.INCONCLUSIVE
    return Evidence(verdict, f"gains {text}", f"slot {j}'s gain CI above every other slot's", target.effect,
                    target.ci_low, target.ci_high, target.p, target.n, rows, target.decides, target.detail)


def _level_evidence(res: Results, rule: LevelRule, n: int) -> Evidence:
    expect: Direction = "<" if rule.lower_is_better else ">"
    return _compare(res, expect, Selector(rule.study, rule.ours, rule.metric, n),
                    Selector(rule.study, rule.baseline, rule.metric, n))


def _rule_gap_trend(res: Results, rule: GapTrend, thesis: dict[str, Any]) -> Evidence:
    """The per-rater advantage at every np level of ``n_present`` (listed high to low) has a CI
    excluding 0 in its favour, and it grows: the sparsest level's CI lies wholly beyond the densest
    level's (non-overlapping CIs, a conservative test of growth)."""
    evs = {n: _level_evidence(res, rule, n) for n in rule.n_present}
    rows = [r for e in evs.values() for r in e.rows]
    if any(e.verdict == NO_RESULTS for e in evs.values()):
        return Evidence(NO_RESULTS, "—", "some sparsity levels have no results", rows=rows)
    levels = rule.n_present
    first, last = evs[levels[0]], evs[levels[-1]]
    lower = rule.lower_is_better
    grows = last.ci_high < first.ci_low if lower else last.ci_low > first.ci_high
    shrinks = last.ci_low > first.ci_high if lower else last.ci_high < first.ci_low
    each = _combine([e.verdict for e in evs.values()])
    verdict = (Verdict.REPRODUCED if each == Verdict.REPRODUCED and grows else
               Verdict.CONTRADICTED if each == Verdict.CONTRADICTED or shrinks else Verdict.INCONCLUSIVE)
    text = "; ".join(f"np{n}: {e.effect:+.4f} [{e.ci_low:+.4f}, {e.ci_high:+.4f}]" for n, e in evs.items())
    return Evidence(verdict, text, "growth: " + ("yes" if grows else "not shown"), last.effect, last.ci_low,
                    last.ci_high, last.p, last.n, rows, last.decides, last.detail)


def _rule_fold_wins(res: Results, rule: FoldWins, thesis: dict[str, Any]) -> Evidence:
    """Per-fold comparisons (fold x np level) of ``ours`` vs ``baseline``: a one-sided exact sign
    test. Reproduced when ``ours`` wins a majority unlikely by chance (p < 0.05), contradicted when
    the baseline does; with few comparisons (4 folds: p >= 1/16) a majority cannot be shown."""
    wins = total = 0
    rows = []
    for n in rule.n_present:
        base = res.fold_values(rule.study, rule.baseline, rule.metric, n)
        ours = res.fold_values(rule.study, rule.ours, rule.metric, n)
        rows += [(rule.study, rule.baseline, n), (rule.study, rule.ours, n)]
        for f in base.index.intersection(ours.index):
            if ours[f] == base[f]:
                continue
            total += 1
            wins += int(ours[f] < base[f] if rule.lower_is_better else ours[f] > base[f])
    if total == 0:
        return Evidence(NO_RESULTS, "—", "no per-fold results", rows=rows)
    test = sign_test(wins, total)
    p_other = sign_test(wins, total, alternative="less")["p_one_sided"]
    verdict = (Verdict.REPRODUCED if test["p_one_sided"] < ALPHA else Verdict.CONTRADICTED if p_other < ALPHA
               else Verdict.INCONCLUSIVE)
    low, high = proportion_ci(wins, total)
    return Evidence(verdict, f"{wins}/{total} folds, sign test p = {test['p_one_sided']:.3g}",
                    f"smallest p possible with {total} comparisons: {0.5 ** total:.3g}", wins / total, low, high,
                    test["p_one_sided"], total, rows, f"per_fold.csv: {rule.study}, {rule.ours} vs {rule.baseline}")


def _rule_fold_compare(res: Results, rule: FoldCompare, thesis: dict[str, Any]) -> Evidence:
    """In fold ``fold``, ``a`` vs ``b`` (same study/metric/np): the run-level CI over that fold's
    run pairs (seeds; ``fold_run_ci`` of paired.csv) decides, as ``compare``; with one seed in the
    fold no run-to-run spread is measured and the verdict is inconclusive (the fold's
    patient-bootstrap CI, ``fold_ci``, is shown as test-set uncertainty only)."""
    a = Selector(rule.study, rule.a, rule.metric, rule.n_present)
    b = Selector(rule.study, rule.b, rule.metric, rule.n_present)
    rec = _paired(res, a, b)
    rows = _rows_of(a, b)
    folds = {int(f): (float(lo), float(hi)) for f, lo, hi in
             (t.split(":") for t in str((rec or {}).get("fold_ci") or "").split())}
    diffs = {int(f): float(v) for f, v in (t.split(":") for t in str((rec or {}).get("fold_diffs") or "").split())}
    f = int(rule.fold)
    if rec is None or f not in folds:
        return Evidence(NO_RESULTS, "—", f"fold {f} has no paired results", rows=rows)
    patient_low, patient_high = folds[f]
    within = {int(t.split(":")[0]): t.split(":")[1:] for t in str(rec.get("fold_run_ci") or "").split()}
    low, high, p, n_runs = (float(within[f][0]), float(within[f][1]), float(within[f][2]), int(within[f][3])) \
        if f in within else (math.nan, math.nan, math.nan, 1)
    detail = {"unit": "run", "n_runs": n_runs, "run_ci_low": low, "run_ci_high": high, "run_p": p,
              "patient_ci_low": patient_low, "patient_ci_high": patient_high}
    text = f"fold {f}: diff {diffs[f]:+.4f}"
    if n_runs >= 2 and math.isfinite(low):
        return Evidence(direction_verdict(low, high, rule.expect), text + f" [{low:+.4f}, {high:+.4f}] over {n_runs} seeds",
                        f"expected a {rule.expect} b in fold {f}", diffs[f], low, high, p, n_runs, rows,
                        rec["decides"], detail)
    return Evidence(Verdict.INCONCLUSIVE, text + f", test-set only [{patient_low:+.4f}, {patient_high:+.4f}]",
                    f"one seed in fold {f}: no run-to-run spread measured", diffs[f], math.nan, math.nan, math.nan,
                    n_runs, rows, rec["decides"], detail)


def _run_diffs(detail: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in (t.rsplit(":", 1) for t in str(detail.get("run_diffs") or "").split())}


def _rule_degradation(res: Results, rule: Degradation, thesis: dict[str, Any]) -> Evidence:
    """``baseline`` degrades more than ``ours`` from np=``full`` to np=``sparse``, i.e. the gap
    ``ours - baseline`` is more favourable at ``sparse`` than at ``full``. With two or more run
    pairs (fold, seed) scored at both levels, the difference of the two gaps per run pair decides
    (a t interval over run pairs: reproduced when it excludes 0 on the claimed side, contradicted on
    the other); otherwise the two gaps' 95% CIs must not overlap (conservative)."""
    sparse = _level_evidence(res, rule, rule.sparse)
    full = _level_evidence(res, rule, rule.full)
    rows = sparse.rows + full.rows
    if NO_RESULTS in (sparse.verdict, full.verdict):
        return Evidence(NO_RESULTS, "—", "missing sparsity levels", rows=rows)
    at_sparse, at_full = _run_diffs(sparse.detail), _run_diffs(full.detail)
    common = sorted(set(at_sparse) & set(at_full))
    if len(common) >= 2:
        did = fold_means_difference([at_sparse[k] - at_full[k] for k in common])
        low, high = did["t_ci_low"], did["t_ci_high"]
        verdict = direction_verdict(low, high, "<" if rule.lower_is_better else ">")
        return Evidence(verdict, f"gap np{rule.full}: {full.effect:+.4f}; np{rule.sparse}: {sparse.effect:+.4f}; "
                        f"change {did['run_effect']:+.4f} [{low:+.4f}, {high:+.4f}] over {len(common)} run pairs",
                        "difference of the two gaps per run pair, t interval over run pairs", did["run_effect"], low,
                        high, did["t_p"], len(common), rows, sparse.decides,
                        {"unit": "run", "n_runs": len(common), "run_ci_low": low, "run_ci_high": high,
                         "run_p": did["t_p"], "run_sd": did["run_sd"], "detectable_effect": did["detectable_effect"]})
    verdict = (Verdict.REPRODUCED if sparse.ci_high < full.ci_low else Verdict.CONTRADICTED
               if sparse.ci_low > full.ci_high else Verdict.INCONCLUSIVE)
    return Evidence(verdict, f"gap np{rule.full}: {full.effect:+.4f} [{full.ci_low:+.4f}, {full.ci_high:+.4f}]; "
                    f"np{rule.sparse}: {sparse.effect:+.4f} [{sparse.ci_low:+.4f}, {sparse.ci_high:+.4f}]",
                    "gap CIs must not overlap", sparse.effect - full.effect, math.nan, math.nan, sparse.p, sparse.n,
                    rows, sparse.decides, sparse.detail)


def _alignment_folds(res: Results, row: str, column: str, n: int) -> pd.Series:
    sel = res.alignment_rows(row=row, n_present=n)
    if sel.empty or column not in sel:
        return pd.Series(dtype=float)
    return sel.groupby("fold")[column].mean().dropna()


def _step(res: Results, row: str, column: str, hi: int, lo: int, log: bool = False) -> tuple[float, float, float, float, int]:
    """Per-fold paired change of an alignment column from np=hi to np=lo: (mean, low, high, p, n)."""
    a, b = _alignment_folds(res, row, column, lo), _alignment_folds(res, row, column, hi)
    common = a.index.intersection(b.index)
    if len(common) == 0:
        return math.nan, math.nan, math.nan, math.nan, 0
    d = (np.log(b[common] / a[common]) if log else a[common] - b[common]).to_numpy(dtype=float)
    return (*mean_t_ci(d), int(len(common)))


def _rule_alignment(res: Results, rule: Alignment, thesis: dict[str, Any]) -> Evidence:
    """Alignment of the shared model (alignment.csv, ``row``), ``check`` one of:
    ``rises``: every step between consecutive np levels of ``n_present`` raises the per-fold mean
    latent cosine, by a fold-paired t CI above 0; ``sd_shrinks``: the within-fold SD shrinks by at
    least ``min_ratio`` (default 2) from the first to the last np, the fold-paired CI of the log
    ratio above log(min_ratio); ``positive_all_folds``: every fold's mean has a case-level 95% CI
    above 0; ``proportions``: a positive majority (share-positive CI above 0.5) and a substantial
    conflicting minority (share-negative CI above ``min_minority``, default 0.2), pooled over
    folds; ``fold_sd_smallest``: the across-fold variance at the last np is below every other
    level's (F test); ``undefined_for``: ``row`` has no latent alignment."""
    check, row = rule.check, rule.row
    levels = rule.n_present
    col = rule.column
    rows = [("sparsity", row, n) for n in levels]
    decides = f"alignment.csv: sparsity, {row}, np {levels}"
    if check == "undefined_for":
        sel = res.alignment_rows(row=row)
        if sel.empty or col not in sel:
            return Evidence(NO_RESULTS, "—", "no alignment rows for this model")
        undefined = sel[col].isna().all()
        return Evidence(Verdict.REPRODUCED if undefined else Verdict.CONTRADICTED,
                        "undefined (no shared z)" if undefined else "defined")
    if check == "rises":
        steps = [(hi, lo, *_step(res, row, col, hi, lo)) for hi, lo in zip(levels, levels[1:])]
        if any(s[-1] < 2 for s in steps):
            return Evidence(NO_RESULTS, "—", "needs two or more folds at every np level", rows=rows)
        verdicts = [direction_verdict(s[3], s[4], ">") for s in steps]
        text = "; ".join(f"np{hi}->np{lo}: {m:+.3f} [{a:+.3f}, {b:+.3f}]" for hi, lo, m, a, b, _, _ in steps)
        last = steps[-1] if len(steps) == 1 else min(steps, key=lambda s: s[3])
        return Evidence(_combine(verdicts), text, "fold-paired t CI per step", last[2], last[3], last[4],
                        max(s[5] for s in steps), last[6], rows, decides)
    if check == "sd_shrinks":
        min_ratio = float(rule.min_ratio)
        m, low, high, p, n = _step(res, row, rule.sd_column or "latent_sd", levels[0], levels[-1], log=True)
        if n < 2:
            return Evidence(NO_RESULTS, "—", "needs two or more folds at both np levels", rows=rows)
        shift = math.log(min_ratio)
        verdict = direction_verdict(low - shift, high - shift, ">")
        return Evidence(verdict, f"shrink {math.exp(m):.2f}x [{math.exp(low):.2f}, {math.exp(high):.2f}]",
                        f"at least {min_ratio:g}x", math.exp(m), math.exp(low), math.exp(high), p, n, rows, decides)
    if check == "fold_sd_smallest":
        last = _alignment_folds(res, row, col, levels[-1])
        others = {n: _alignment_folds(res, row, col, n) for n in levels[:-1]}
        if len(last) < 2 or any(len(v) < 2 for v in others.values()):
            return Evidence(NO_RESULTS, "—", "needs two or more folds per np", rows=rows)
        tests = {n: variance_ratio_test(last.to_numpy(), v.to_numpy()) for n, v in others.items()}
        verdicts = [direction_verdict(math.log(t["ci_low"]), math.log(t["ci_high"]), "<") if t["ci_low"] > 0
                    else Verdict.INCONCLUSIVE for t in tests.values()]
        worst = max(tests.values(), key=lambda t: t["ratio"])
        sds = ", ".join(f"np{n}: SD {v.std(ddof=1):.3f}" for n, v in {**others, levels[-1]: last}.items())
        return Evidence(_combine(verdicts), sds,
                        "F test of the variance ratio against every other level", worst["ratio"], worst["ci_low"],
                        worst["ci_high"], max(t["p"] for t in tests.values()), len(last), rows, decides)
    sel = res.alignment_rows(row=row, n_present=levels[0])
    if sel.empty or col not in sel:
        return Evidence(NO_RESULTS, "—", "no alignment results", rows=rows)
    if check == "positive_all_folds":
        sd_col = col.replace("_mean", "_sd")
        n_cases = pd.to_numeric(sel.get("n_cases", pd.Series([np.nan] * len(sel))), errors="coerce").to_numpy()
        se = sel[sd_col].to_numpy(dtype=float) / np.sqrt(n_cases)
        lows, highs = sel[col].to_numpy(dtype=float) - 1.96 * se, sel[col].to_numpy(dtype=float) + 1.96 * se
        if not np.isfinite(lows).all():
            return Evidence(NO_RESULTS, "—", "no case counts or SDs in alignment.csv", rows=rows)
        verdict = (Verdict.REPRODUCED if (lows > 0).all() else Verdict.CONTRADICTED if (highs < 0).any()
                   else Verdict.INCONCLUSIVE)
        per_fold = ", ".join(f"{m:.3f} [{a:.3f}, {b:.3f}]" for m, a, b in zip(sel[col], lows, highs))
        # every fold must show it: the largest of the folds' one-sided p (an intersection-union test)
        p = float(np.max(stats.norm.sf(sel[col].to_numpy(dtype=float) / se)))
        return Evidence(verdict, "per fold: " + per_fold,
                        "every fold's case-level CI above 0; p: the largest fold's one-sided z test",
                        float(sel[col].mean()), float(lows.min()), float(highs.min()), p, int(np.nansum(n_cases)),
                        rows, decides)
    if check == "proportions":
        prefix = col.rsplit("_", 1)[0]
        need = [f"{prefix}_share_positive", f"{prefix}_share_negative", "n_cases"]
        if any(c not in sel for c in need):
            return Evidence(NO_RESULTS, "—", "no case shares recorded", rows=rows)
        n = pd.to_numeric(sel["n_cases"], errors="coerce")
        pos = int(round(float((sel[need[0]] * n).sum())))
        neg = int(round(float((sel[need[1]] * n).sum())))
        total = int(n.sum())
        minority = float(rule.min_minority)
        pos_ci, neg_ci = proportion_ci(pos, total), proportion_ci(neg, total)
        if pos_ci[0] > 0.5 and neg_ci[0] > minority:
            verdict = Verdict.REPRODUCED
        elif pos_ci[1] < 0.5 or neg_ci[1] < minority:
            verdict = Verdict.CONTRADICTED
        else:
            verdict = Verdict.INCONCLUSIVE
        # both parts must hold: the larger of the two one-sided exact binomial p
        p = max(stats.binomtest(pos, total, 0.5, alternative="greater").pvalue,
                stats.binomtest(neg, total, minority, alternative="greater").pvalue)
        return Evidence(verdict, f"positive {pos / total:.0%} [{pos_ci[0]:.0%}, {pos_ci[1]:.0%}], negative {neg / total:.0%} "
                        f"[{neg_ci[0]:.0%}, {neg_ci[1]:.0%}] of {total} cases",
                        f"positive majority and a negative share above {minority:.0%}; p: the larger of the two "
                        "one-sided binomial tests", neg / total, neg_ci[0], neg_ci[1], float(p), total, rows, decides)
    raise ValueError(f"unknown alignment check {check!r}")


def _rule_co_move(res: Results, rule: CoMove, thesis: dict[str, Any]) -> Evidence:
    """The GED gap (per-rater minus shared, paired) and the shared model's mean latent alignment
    move together over np levels: exact one-sided permutation test of Spearman's rho (the gap
    falls, i.e. the advantage grows, as alignment rises: rho(alignment, -gap) > 0, p < 0.05)."""
    gaps = {n: _level_evidence(res, rule, n) for n in rule.n_present}
    align = {n: _alignment_folds(res, rule.alignment_row, rule.column, n) for n in rule.n_present}
    levels = [n for n in rule.n_present if gaps[n].verdict != NO_RESULTS and len(align[n])]
    rows = [r for e in gaps.values() for r in e.rows]
    if len(levels) < 3:
        return Evidence(NO_RESULTS, "—", "needs three or more np levels with both numbers", rows=rows)
    test = exact_spearman([float(align[n].mean()) for n in levels], [-gaps[n].effect for n in levels])
    verdict = (Verdict.REPRODUCED if test["p_greater"] < ALPHA else Verdict.CONTRADICTED if test["p_less"] < ALPHA
               else Verdict.INCONCLUSIVE)
    return Evidence(verdict, f"Spearman rho = {test['rho']:.2f} over np {levels}",
                    f"exact permutation p; smallest possible with {len(levels)} levels: {1 / math.factorial(len(levels)):.3g}",
                    test["rho"], math.nan, math.nan, test["p_greater"], len(levels), rows,
                    "paired.csv (gaps) and alignment.csv (shared_s1)")


ATTRIBUTE_STATISTICS = {"sd": "Pearson r of the rating SD (the thesis's statistic)",
                        "partial_size": "partial r controlling nodule size"}


def _attribute_family(res: Results, unit: str, definition: str, statistic: str = "sd") -> pd.DataFrame | None:
    """r per attribute (``statistic`` of attributes.json: ``sd``, the raw Pearson r of the rating SD
    against mask variance, or ``partial_size``, the partial r controlling log mean area) with n,
    Holm-adjusted p over the attributes and a Fisher-z 95% CI."""
    data = res.extra.get("attributes")
    if not isinstance(data, dict) or not isinstance(data.get(statistic), dict):
        return None
    table = ((data[statistic].get(unit) or {}).get(definition)) or {}
    if not table:
        return None
    frame = pd.DataFrame([{"attribute": k, **v} for k, v in table.items()])
    frame["r"] = pd.to_numeric(frame["r"], errors="coerce")
    frame["p_holm"] = adjust_pvalues(pd.to_numeric(frame["p"], errors="coerce").to_numpy(), "holm")
    controlled = 1 if statistic == "partial_size" else 0
    cis = [fisher_r_ci(r, int(n or 0), k=controlled) for r, n in zip(frame["r"], frame["n"])]
    frame["ci_low"], frame["ci_high"] = [c[0] for c in cis], [c[1] for c in cis]
    return frame.set_index("attribute")


def _attribute_reading(table: pd.DataFrame, rule: Attribute) -> tuple[str, str]:
    """(verdict, what was found) of one attribute rule on one table of :func:`_attribute_family`."""
    att = rule.attribute
    rec = table.loc[att]
    if rule.check == "sign":
        significant = rec["p_holm"] < ALPHA
        same = np.sign(rec["r"]) == np.sign(rule.sign or 0)
        verdict = (Verdict.REPRODUCED if significant and same else Verdict.CONTRADICTED if significant
                   else Verdict.INCONCLUSIVE)
        return verdict, f"r = {rec['r']:+.3f} [{rec['ci_low']:+.3f}, {rec['ci_high']:+.3f}], Holm p = {rec['p_holm']:.2g}"
    others = table.drop(index=att)["r"].dropna()
    best = table["r"].idxmax()
    if best == att and rec["ci_low"] > others.max() and rec["p_holm"] < ALPHA:
        verdict = Verdict.REPRODUCED
    elif best != att and table.loc[best, "r"] > rec["ci_high"]:
        verdict = Verdict.CONTRADICTED
    else:
        verdict = Verdict.INCONCLUSIVE
    return verdict, (f"largest r: {best} ({table.loc[best, 'r']:+.3f}); {att}: {rec['r']:+.3f} "
                     f"[{rec['ci_low']:+.3f}, {rec['ci_high']:+.3f}]")


# The sensitivity analyses shown beside an attribute claim's primary (thesis) reading.
ATTRIBUTE_SENSITIVITY = (("patch", "partial_size"), ("nodule", "sd"), ("nodule", "partial_size"))


def _rule_attribute(res: Results, rule: Attribute, thesis: dict[str, Any]) -> Evidence:
    """Attribute study on the real annotations (attributes.json). The verdict reads the thesis's own
    analysis: ``statistic`` (default ``sd``: Pearson r of each attribute's rating SD against mask
    variance) over ``unit`` (default ``patch``: every patch with complete records), variance
    ``definition`` (default ``patch``: whole-patch pixel variance p(1-p)), Holm-adjusted over the
    attributes. ``check: sign``: reproduced when r has sign ``sign`` with Holm p < 0.05,
    contradicted when the opposite sign is significant; ``check: strongest``: ``attribute`` has the
    largest r and its CI lies above every other attribute's r. The size-controlled partial r and
    the one-patch-per-nodule unit are sensitivity analyses: their verdicts are stated beside it."""
    unit, definition, statistic = rule.unit, rule.definition, rule.statistic
    table = _attribute_family(res, unit, definition, statistic)
    decides = f"attributes.json: {statistic} / {unit} / {definition}"
    if table is None:
        return Evidence(NO_RESULTS, "—", "the attribute study has not written its table")
    att = rule.attribute
    if att not in table.index or not np.isfinite(table.loc[att, "r"]):
        return Evidence(NO_RESULTS, "—", f"no r for {att}")
    verdict, found = _attribute_reading(table, rule)
    sensitivity = []
    for alt_unit, alt_statistic in ATTRIBUTE_SENSITIVITY:
        if (alt_unit, alt_statistic) == (unit, statistic):
            continue
        alt = _attribute_family(res, alt_unit, definition, alt_statistic)
        if alt is not None and att in alt.index and np.isfinite(alt.loc[att, "r"]):
            alt_verdict, alt_found = _attribute_reading(alt, rule)
            sensitivity.append(f"{ATTRIBUTE_STATISTICS[alt_statistic]}, unit {alt_unit}: {alt_verdict} ({alt_found})")
    where = (f"unit {unit}, variance '{definition}', {ATTRIBUTE_STATISTICS.get(statistic, statistic)}, Holm over "
             f"{len(table)} attributes")
    if sensitivity:
        where += "; sensitivity analyses: " + "; ".join(sensitivity)
    rec = table.loc[att]
    return Evidence(verdict, found, where, float(rec["r"]), float(rec["ci_low"]), float(rec["ci_high"]),
                    float(rec["p_holm"]), int(rec["n"] or 0), [], decides)


def _rule_attribute_folds(res: Results, rule: AttributeFolds, thesis: dict[str, Any]) -> Evidence:
    """Per-fold correlation of ``attribute`` (margin) has sign ``sign`` with Holm-adjusted p <
    ``alpha`` (over the folds) in every fold; contradicted when the opposite sign is significant in
    any fold (``per_fold_margin`` of attributes.json, ``unit`` default patch, variance ``definition``)."""
    data = res.extra.get("attributes")
    if not isinstance(data, dict) or not data.get("per_fold_margin_p"):
        return Evidence(NO_RESULTS, "—", "the attribute study has not written per-fold r and p")
    unit, definition = rule.unit, rule.definition
    try:
        rs = [float(v) for v in data["per_fold_margin"][unit][definition]]
        ps = adjust_pvalues([float(v) for v in data["per_fold_margin_p"][unit][definition]], "holm")
    except (KeyError, TypeError):
        return Evidence(NO_RESULTS, "—", f"no per-fold results for unit {unit}, variance {definition}")
    alpha, sign = rule.alpha, np.sign(rule.sign)
    ok = bool(rs) and all(np.sign(r) == sign and p < alpha for r, p in zip(rs, ps))
    bad = any(np.sign(r) == -sign and p < alpha for r, p in zip(rs, ps))
    shown = ", ".join(f"{r:+.3f} (Holm p={p:.1g})" for r, p in zip(rs, ps))
    return Evidence(Verdict.REPRODUCED if ok else Verdict.CONTRADICTED if bad else Verdict.INCONCLUSIVE, shown,
                    f"every fold: sign and Holm p < {alpha} (unit {unit}, variance '{definition}')",
                    float(np.mean(rs)) if rs else math.nan, float(min(rs)) if rs else math.nan,
                    float(max(rs)) if rs else math.nan, float(np.nanmax(ps)) if rs else math.nan, len(rs), [],
                    f"attributes.json: per_fold_margin / {unit} / {definition}")


def _rule_time_ratio(res: Results, rule: TimeRatio, thesis: dict[str, Any]) -> Evidence:
    """Training seconds (runs.csv) of row ``a`` over row ``b`` of ``study`` (at np=4), per fold (a row's
    mean over its seeds; per fold and machine where the table names the ``host``, so that only runs
    timed on one machine are compared): reproduced when the 95% CI of the per-fold ratio (t over log
    ratios) lies at or above ``min_ratio``, contradicted when it lies below, otherwise inconclusive."""
    runs = res.runs
    if runs is None or "seconds" not in runs or "row" not in runs:
        return Evidence(NO_RESULTS, "—", "runs.csv has no timings")
    done = runs[(runs["status"].astype(str) == "complete") & (runs["study"].astype(str) == rule.study)]
    if "kind" in done:
        done = done[done["kind"].astype(str).isin(["train", "training"])]
    if "n_present" in done:
        done = done[pd.to_numeric(done["n_present"], errors="coerce").fillna(FULL_ANNOTATION) == int(rule.n_present)]
    keys = [k for k in ("fold", "host") if k in done]

    def seconds(row: str) -> pd.Series:
        sel = done[done["row"].astype(str) == row]
        values = pd.to_numeric(sel["seconds"], errors="coerce")
        return values.groupby([sel[k] for k in keys]).mean() if keys else pd.Series([values.mean()])

    a, b = seconds(rule.a), seconds(rule.b)
    common = [f for f in a.index.intersection(b.index) if a[f] > 0 and b[f] > 0]
    if not common:
        return Evidence(NO_RESULTS, "—", "no timings for both rows")
    logs = np.log(a[common].to_numpy(float) / b[common].to_numpy(float))
    m, low, high, p = mean_t_ci(logs)
    min_ratio = float(rule.min_ratio)
    verdict = (direction_verdict(low - math.log(min_ratio), high - math.log(min_ratio), ">")
               if np.isfinite(low) else Verdict.INCONCLUSIVE)
    ci = f" [{math.exp(low):.2f}, {math.exp(high):.2f}]" if np.isfinite(low) else ""
    return Evidence(verdict, f"ratio {math.exp(m):.2f}x" + ci
                    + f" over {len(common)} fold(s) ({a[common].sum():.0f} s vs {b[common].sum():.0f} s)",
                    f"at least {min_ratio:g}x", math.exp(m), math.exp(low) if np.isfinite(low) else math.nan,
                    math.exp(high) if np.isfinite(high) else math.nan, p, len(common),
                    [(rule.study, rule.a, FULL_ANNOTATION), (rule.study, rule.b, FULL_ANNOTATION)],
                    f"runs.csv: {rule.study}, {rule.a} and {rule.b}")


def _rule_gradient_isolation(res: Results, rule: GradientIsolation, thesis: dict[str, Any]) -> Evidence:
    """Rater i's terms reach encoder i only: the gradient-isolation diagnostic that the aggregation
    writes (``gradient_isolation.json``, :mod:`mrseg.diagnostics.isolation`) on a freshly
    initialised per-rater model. Reproduced when no cross-encoder gradient is non-zero and every
    encoder's own gradient is."""
    check = res.extra.get("gradient_isolation")
    if not isinstance(check, dict) or not {"cross", "own"} <= set(check):
        return Evidence(NO_RESULTS, "—", "the gradient-isolation diagnostic has not written gradient_isolation.json")
    ok = check["cross"] == 0.0 and check["own"] > 0
    return Evidence(Verdict.REPRODUCED if ok else Verdict.CONTRADICTED,
                    f"max |dL_i/dθ_j| (i≠j) = {check['cross']:g}; own-encoder gradient > 0: {check['own'] > 0}",
                    f"measured on a fresh {check.get('size', 'smoke')}-size per-rater model (untrained: the property is "
                    "structural)", decides="gradient_isolation.json")


def _rule_rater_identity(res: Results, rule: RaterIdentity, thesis: dict[str, Any]) -> Evidence:
    """"No distinct per-rater clusters" as a test on the latent space itself (latent.csv, the latent
    diagnostic of ``model``'s run): the silhouette of the rater labels over the posterior means with
    its 95% bootstrap CI over cases. Reproduced when the CI lies below ``margin`` (0.25: no
    substantial cluster structure, Kaufman & Rousseeuw's reading), contradicted when it lies above
    0.5 (distinct clusters), else inconclusive. The cross-validated accuracy of predicting rater
    identity is shown beside it: decodable is not the same as clustered (separate encoders give each
    rater its own offset even when the posterior is unused). Moot (not testable) when every such
    run's posterior has fewer than ``min_active_units`` active units: a collapsed posterior encodes
    no rater, so the absence of clusters says nothing. Runs of the model under another objective
    setting (variant tags) or another ``n_present`` (default 4) are left out."""
    latent = res.latent if res.latent is not None else pd.DataFrame()
    model, margin = rule.model, float(rule.margin)
    decides = f"latent.csv: silhouette_raters of {model}"
    need = {"run_id", "silhouette_raters", "silhouette_raters_ci_low", "silhouette_raters_ci_high"}
    if latent.empty or not need <= set(latent):
        return Evidence(NO_RESULTS, "—", f"no latent embedding of {model} with a silhouette interval")
    rows = latent[latent["run_id"].astype(str).str.split("/").str[1] == model]
    if "n_present" in rows:
        rows = rows[pd.to_numeric(rows["n_present"], errors="coerce") == int(rule.n_present)]
    rows = rows[pd.to_numeric(rows["silhouette_raters_ci_low"], errors="coerce").notna()]
    if rows.empty:
        return Evidence(NO_RESULTS, "—", f"no latent embedding of {model} with a silhouette interval")
    units = {}
    pf = res.per_fold
    if pf is not None and {"run_id", "active_units"} <= set(pf.columns):
        units = pf.drop_duplicates("run_id").set_index("run_id")["active_units"].to_dict()
    rows = rows.assign(active_units=rows["run_id"].map(units))
    informative = rows[pd.to_numeric(rows["active_units"], errors="coerce") >= float(rule.min_active_units)]
    if informative.empty:
        au = pd.to_numeric(rows["active_units"], errors="coerce")
        found = f"{au.max():.1f} active units at most" if au.notna().any() else "active units not recorded"
        return Evidence(NOT_TESTABLE, "—", f"moot: the {model} posterior is collapsed ({found}); a posterior that "
                        "encodes nothing shows no per-rater clusters whatever the design", decides=decides)
    rec = informative.iloc[0]
    value, low, high = (float(rec["silhouette_raters"]), float(rec["silhouette_raters_ci_low"]),
                        float(rec["silhouette_raters_ci_high"]))
    verdict = Verdict.REPRODUCED if high < margin else Verdict.CONTRADICTED if low > 0.5 else Verdict.INCONCLUSIVE
    decodable = ""
    if "rater_id_accuracy" in rec and pd.notna(rec.get("rater_id_accuracy")):
        decodable = (f"; rater identity decodable at {rec['rater_id_accuracy']:.3f} "
                     f"[{rec['rater_id_ci_low']:.3f}, {rec['rater_id_ci_high']:.3f}] vs chance {rec['rater_id_chance']:.3f}")
    return Evidence(verdict, f"silhouette {value:.3f} [{low:.3f}, {high:.3f}] ({float(rec['active_units']):.1f} active "
                    f"units){decodable}", f"silhouette CI below {margin:g} = no distinct per-rater clusters; run "
                    f"{rec['run_id']}", value, low, high, math.nan, int(rec.get("rater_id_cases") or 0), [], decides)


def _rule_not_testable(res: Results, rule: NotTestable, thesis: dict[str, Any]) -> Evidence:
    """Cannot be tested with what this project has (the ``reason`` says why)."""
    return Evidence(NOT_TESTABLE, "—", rule.reason)


# Each scorer takes its kind's typed rule (mrseg.scoring.claim_rules) and returns the Evidence.
RULES: dict[str, Callable[[Results, Any, dict[str, Any]], Evidence]] = {
    "rater_identity": _rule_rater_identity,
    "attribute_folds": _rule_attribute_folds,
    "compare": _rule_compare,
    "all_compare": _rule_all_compare,
    "equivalent": _rule_equivalent,
    "sd_compare": _rule_sd_compare,
    "only_row_improves": _rule_only_row_improves,
    "extreme": _rule_extreme,
    "per_expert": _rule_per_expert,
    "gap_trend": _rule_gap_trend,
    "fold_wins": _rule_fold_wins,
    "fold_compare": _rule_fold_compare,
    "degradation": _rule_degradation,
    "alignment": _rule_alignment,
    "co_move": _rule_co_move,
    "attribute": _rule_attribute,
    "time_ratio": _rule_time_ratio,
    "not_testable": _rule_not_testable,
    "gradient_isolation": _rule_gradient_isolation,
}


def score_rule(res: Results, rule: dict[str, Any], thesis: dict[str, Any] | None = None) -> Evidence:
    """One ``rule:`` mapping of claims.yaml (with its ``kind``) parsed and scored on ``res``."""
    return RULES[rule["kind"]](res, parse_rule(rule), thesis or {})


def _thesis_text(thesis: dict[str, Any], refs: Any) -> str:
    if not refs:
        return "—"
    refs = refs if isinstance(refs, list) else [refs]
    parts = []
    for ref in refs:
        value = thesis_value(thesis, ref)
        if isinstance(value, list) and len(value) == 2 and all(_is_number(v) for v in value):
            parts.append(mean_sd(*value))
        elif isinstance(value, list):
            parts.append(", ".join(f"{v:g}" if _is_number(v) else str(v) for v in value))
        elif _is_number(value):
            parts.append(f"{value:g}")
        else:
            parts.append(str(value))
    return "; ".join(parts)


def thesis_difference(thesis: dict[str, Any], refs: Any) -> float:
    """The thesis's own ``a - b`` for a claim citing exactly two numbers (each a value or a
    ``[mean, sd]`` pair); NaN otherwise."""
    if not isinstance(refs, list) or len(refs) != 2:
        return math.nan
    values = []
    for ref in refs:
        value = thesis_value(thesis, ref, optional=True)
        if isinstance(value, list) and len(value) == 2 and all(_is_number(v) for v in value):
            value = value[0]
        if not _is_number(value):
            return math.nan
        values.append(float(value))
    return values[0] - values[1]


COMPARISON_KINDS = ("compare", "equivalent")   # rules whose thesis effect is one a - b


def power_note(detail: dict[str, Any], thesis_effect: float) -> str:
    """``"underpowered: ..."`` when a run-level comparison cannot decide: one run pair (no
    run-to-run spread measured); for an equivalence claim (``margin`` in ``detail``), a detectable
    effect wider than the margin; otherwise a thesis effect smaller than the effect the runs present
    detect with 80% power; "" otherwise."""
    if detail.get("unit") != "run":
        return ""
    n_runs = int(detail.get("n_runs") or 0)
    if n_runs < 2:
        return (f"underpowered: {n_runs} run pair{'s' if n_runs != 1 else ''} "
                f"measure{'s' if n_runs == 1 else ''} no run-to-run spread")
    detectable = detail.get("detectable_effect")
    margin = detail.get("margin")
    if margin is not None:
        if detectable is not None and np.isfinite(detectable) and detectable > margin:
            return f"underpowered: {n_runs} runs detect >= {detectable:.4f}, wider than the margin ±{margin:.4f}"
        return ""
    if detectable is not None and np.isfinite(detectable) and np.isfinite(thesis_effect) \
            and abs(thesis_effect) < detectable:
        return (f"underpowered: {n_runs} runs detect >= {detectable:.4f}; "
                f"the thesis's effect is {thesis_effect:+.4f}")
    return ""


CONVERGED_SHARE = 0.8   # a row is at its plateau when at least this share of its runs converged


def _convergence(res: Results, rows: list[tuple[str, str, int]]) -> list[str]:
    """Rows among ``rows`` (study, row, n_present) whose runs are not at a plateau: under
    :data:`CONVERGED_SHARE` of their runs (with a known flag) converged in per_fold.csv. With many
    seeds one run still creeping by just over 2% does not make a row unconverged; a row of mostly
    improving runs does (every demo row, at 6 epochs)."""
    pf = res.per_fold
    if pf is None or pf.empty or "converged" not in pf or not rows:
        return []
    bad = []
    for study, row, n in rows:
        sel = res._select(pf, study, row, n)
        flags = sel.drop_duplicates("run_id")["converged"] if "run_id" in sel else sel["converged"]
        flags = flags.astype(str).str.lower()
        known = flags[flags.isin(["true", "false"])]
        if len(known) and (known == "true").mean() < CONVERGED_SHARE:
            bad.append(f"{row} (np={n}: {int((known == 'true').sum())}/{len(known)} runs converged)")
    return sorted(set(bad))


def _posterior(res: Results, rows: list[tuple[str, str, int]]) -> dict[str, Any]:
    """KL and active units of the compared rows where per_fold.csv has them: ``posterior`` (text,
    empty when none), ``posterior_active_units`` and ``posterior_kl_nats`` (the largest row mean
    over the compared rows; None when unknown)."""
    out: dict[str, Any] = {"posterior": "", "posterior_active_units": None, "posterior_kl_nats": None}
    pf = res.per_fold
    if pf is None or pf.empty or not rows:
        return out
    cols = [c for c in pf.columns if c.startswith("kl") or c.startswith("active_units")]
    parts, means = [], {}
    for study, row, n in dict.fromkeys(rows):
        sel = res._select(pf, study, row, n)
        row_means = {c: pd.to_numeric(sel[c], errors="coerce").mean() for c in cols}
        vals = [f"{c} {m:.3g}" for c, m in row_means.items() if pd.notna(m)]
        for c, m in row_means.items():
            if pd.notna(m):
                means[c] = max(means.get(c, -math.inf), float(m))
        if vals:
            parts.append(f"{row} (np={n}): " + ", ".join(vals))
    out["posterior"] = "; ".join(parts)
    out["posterior_active_units"] = means.get("active_units")
    out["posterior_kl_nats"] = means.get("kl_nats")
    return out


def _clean(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _rule_words(kind: str) -> str:
    doc = (RULES[kind].__doc__ or "").strip()
    return " ".join(doc.split())


def evaluate_claims(res: Results, thesis: dict[str, Any], claims: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every claim's verdict and statistics as records (the content of ``scorecard.json``).

    Holm's adjustment runs over the comparative claims of one ``family`` (a claim's ``family``,
    else its evidence page): a direction that the CI supports but whose Holm-adjusted p is 0.05 or
    more becomes ``inconclusive``. A comparison whose rows are not at a plateau (under 80% of a
    row's runs ``converged`` in per_fold.csv, :func:`_convergence`) is ``not testable at this
    scale``; its effect is still shown.

    Comparisons of separately trained models are judged on their run-level interval (run pairs
    and patients, ``unit`` "run"); each record also carries ``run_ci_low``/``run_ci_high``,
    ``run_p``, ``n_runs``, ``run_sd``, ``detectable_effect`` (80% power), the patient-bootstrap
    ``patient_ci_low``/``patient_ci_high`` (test-set uncertainty only), the t and Nadeau & Bengio
    intervals, ``thesis_diff`` (the thesis's own a - b where it cites two numbers) and
    ``verdict_note``: "underpowered: ..." on an inconclusive verdict that the runs present could
    not have decided (:func:`power_note`).
    """
    records = []
    for claim in claims:
        rule = claim["rule"]
        try:
            typed = parse_rule(rule)
        except ValueError as err:
            raise ValueError(f"claim {claim['id']}: {err}") from None
        ev = RULES[rule["kind"]](res, typed, thesis)
        records.append({
            "id": claim["id"], "source": claim["source"], "claim": claim["text"],
            "verdict": Verdict(ev.verdict).value,
            "effect": _clean(ev.effect), "ci_low": _clean(ev.ci_low), "ci_high": _clean(ev.ci_high),
            "p": _clean(ev.p), "p_holm": None, "n": int(ev.n), "thesis_effect": _thesis_text(thesis, claim.get("thesis")),
            "ours": ev.ours, "reason": ev.reason, "rule": claim.get("test", "") + " Rule: " + _rule_words(rule["kind"]),
            "rule_kind": rule["kind"], "decides": ev.decides, "evidence": claim.get("evidence", ""),
            "family": claim.get("family") or claim.get("evidence", ""),
            **(_posterior(res, ev.rows) if claim.get("posterior") else _posterior(res, [])),
            "not_converged": _convergence(res, ev.rows),
            "thesis_diff": _clean(thesis_difference(thesis, claim.get("thesis"))
                                  if rule["kind"] in COMPARISON_KINDS else math.nan),
            **{k: _clean(v) for k, v in ev.detail.items()},
        })
    families: dict[str, list[int]] = {}
    for i, rec in enumerate(records):
        if rec["p"] is not None and rec["verdict"] in DECIDED:
            families.setdefault(rec["family"], []).append(i)
    for members in families.values():
        adjusted = adjust_pvalues([records[i]["p"] for i in members], "holm")
        for i, p in zip(members, adjusted):
            rec = records[i]
            rec["p_holm"] = _clean(p)
            if rec["verdict"] in DIRECTIONAL and not p < ALPHA and rec["rule_kind"] != "equivalent":
                rec["reason"] = (rec["reason"] + "; " if rec["reason"] else "") + f"Holm-adjusted p = {p:.3g} >= {ALPHA}"
                rec["verdict"] = Verdict.INCONCLUSIVE.value
    for rec in records:
        for name in ("n_runs", "run_ci_low", "run_ci_high", "run_p", "detectable_effect"):
            rec.setdefault(name, None)
        thesis_diff = rec["thesis_diff"] if rec["thesis_diff"] is not None else math.nan
        rec["verdict_note"] = power_note(rec, thesis_diff) if rec["verdict"] == Verdict.INCONCLUSIVE else ""
        if rec["not_converged"] and rec["verdict"] not in (NO_RESULTS, NOT_TESTABLE):
            rec["reason"] = (rec["reason"] + "; " if rec["reason"] else "") + "not converged: " + ", ".join(rec["not_converged"])
            rec["verdict"] = NOT_AT_SCALE
    return records


# Run-level details of a claim that the reference's scoring contributes (as reference_<name>).
REFERENCE_DETAIL = ("verdict_note", "unit", "n_runs", "run_ci_low", "run_ci_high", "run_p", "run_sd", "detectable_effect",
                    "patient_ci_low", "patient_ci_high", "thesis_diff", "run_diffs", "posterior_active_units",
                    "posterior_kl_nats")


def attach_reference(records: list[dict[str, Any]], reference: list[dict[str, Any]], profile: str,
                     stale: int = 0) -> None:
    """Add the reference runs' verdict of each claim to ``records`` (in place): ``reference_verdict``,
    ``reference_effect``, ``reference_ci_low``/``_high``, ``reference_n``, ``reference_reason``,
    ``reference_posterior`` (KL and active units of the reference's compared rows), and
    ``decision``: the reference's verdict where this build's is "not testable at this scale" (its
    runs did not converge) or "no results" (its plan does not run the rows) and the reference decides
    it (reproduced, contradicted or inconclusive); otherwise this build's own verdict. ``stale``: how
    many reference runs today's code would not reproduce (their verdicts are marked)."""
    by_id = {r["id"]: r for r in reference}
    for rec in records:
        ref = by_id.get(rec["id"])
        if ref is None:
            continue
        rec.update({f"reference_{k}": ref.get(k) for k in REFERENCE_DETAIL})
        rec.update({"reference_profile": profile, "reference_verdict": ref["verdict"],
                    "reference_effect": ref["effect"], "reference_ci_low": ref["ci_low"],
                    "reference_ci_high": ref["ci_high"], "reference_p": ref["p_holm"] if ref["p_holm"] is not None
                    else ref["p"], "reference_n": ref["n"], "reference_reason": ref["reason"],
                    "reference_posterior": ref.get("posterior") or "", "reference_stale": bool(stale)})
        decided_by_reference = rec["verdict"] in (NOT_AT_SCALE, NO_RESULTS) and ref["verdict"] in DECIDED
        rec["decision"] = ref["verdict"] if decided_by_reference else rec["verdict"]
        rec["decided_by"] = f"reference ({profile})" if decided_by_reference else "this build"


def count_verdicts(records: list[dict[str, Any]], key: str = "verdict") -> dict[str, int]:
    """How many claim records carry each verdict of :data:`VERDICTS` under ``key``."""
    return {v: sum(r.get(key) == v for r in records) for v in VERDICTS}


def scorecard(res: Results, thesis: dict[str, Any], claims: list[dict[str, Any]]) -> pd.DataFrame:
    """:func:`evaluate_claims` as a table (one row per claim)."""
    return pd.DataFrame.from_records(evaluate_claims(res, thesis, claims))


def write_scorecard(folder: str | Path, plan: str, profile: str) -> Path:
    """Evaluate every claim on the aggregated tables in ``folder`` and write ``scorecard.json``
    (``{"claims": [...], "counts": {...}, "context": {...}}``), atomically; returns its path."""

    folder = Path(folder)
    res = read_results_folder(folder, plan, profile)
    thesis, claims = load_thesis_reported(), load_claims()
    records = evaluate_claims(res, thesis, claims)
    counts = count_verdicts(records)
    payload: dict[str, Any] = {"claims": records, "counts": counts, "plan": plan, "profile": profile,
                               "ci": CI_DESCRIPTION}
    path = folder / SCORECARD_JSON
    write_json(path, payload)
    return path


def read_scorecard(res: Results) -> pd.DataFrame:
    """``scorecard.json`` of a results folder as a table; empty (with the columns) when absent."""
    data = res.extra.get("scorecard")
    if not isinstance(data, dict) or not isinstance(data.get("claims"), list):
        return pd.DataFrame(columns=["id", "verdict", "effect", "ci_low", "ci_high", "p", "n", "thesis_effect", "rule",
                                     "evidence"])
    return pd.DataFrame.from_records(data["claims"])
