"""The scorecard: the claims of ``book/data/claims.yaml``, their verdict rules, and the table."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import yaml

from mrseg.report.formatting import _is_number, fmt, mean_sd
from mrseg.report.results import Results
from mrseg.report.tables import relative_improvement
from mrseg.report.thesis import BOOK_DATA, thesis_value

CLAIMS_YAML = BOOK_DATA / "claims.yaml"
VERDICTS = ("reproduced", "not reproduced", "not testable here", "no results yet")


def load_claims(path: str | Path | None = None) -> list[dict[str, Any]]:
    """The scorecard's claims (``book/data/claims.yaml``), each with id, text, rule."""
    path = Path(path) if path is not None else CLAIMS_YAML
    data = yaml.safe_load(Path(path).read_text())
    claims = data.get("claims") if isinstance(data, dict) else None
    if not isinstance(claims, list):
        raise ValueError(f"{path}: expected a top-level 'claims' list")
    for claim in claims:
        for key in ("id", "source", "text", "rule"):
            if key not in claim:
                raise ValueError(f"{path}: claim {claim.get('id', '?')} lacks '{key}'")
        if claim["rule"].get("kind") not in RULES:
            raise ValueError(f"{path}: claim {claim['id']} has unknown rule kind {claim['rule'].get('kind')!r}")
    return claims


@dataclass
class Evidence:
    """What a rule found: verdict, our value as text, and a reason."""

    verdict: str
    ours: str
    reason: str = ""


def _ref(res: Results, spec: dict[str, Any]) -> tuple[float, float, int]:
    return res.metric(spec["study"], spec["row"], spec.get("metric", "ged_dpersona"), spec.get("n_present"))


def _missing(*values: float) -> bool:
    return any(not np.isfinite(v) for v in values)


def _pair(res: Results, rule: dict[str, Any]) -> tuple[float, float, float, float]:
    """Mean and SD over folds of the rule's ``a`` and ``b`` rows: ``(a, a_sd, b, b_sd)``."""
    a, a_sd, _ = _ref(res, rule["a"])
    b, b_sd, _ = _ref(res, rule["b"])
    return a, a_sd, b, b_sd


def _cmp(a: float, b: float, expect: str) -> bool:
    return a < b if expect == "<" else a > b


def _rule_compare(res: Results, rule: dict[str, Any], thesis: dict[str, Any]) -> Evidence:
    """``a`` vs ``b`` (each {study, row, metric, n_present}); ``expect`` '<' or '>' on the means."""
    a, a_sd, b, b_sd = _pair(res, rule)
    if _missing(a, b):
        return Evidence("no results yet", "—", "one of the compared rows has no results")
    ok = _cmp(a, b, rule["expect"])
    return Evidence("reproduced" if ok else "not reproduced",
                    f"{mean_sd(a, a_sd)} vs {mean_sd(b, b_sd)}", f"expected a {rule['expect']} b")


def _rule_all_compare(res: Results, rule: dict[str, Any], thesis: dict[str, Any]) -> Evidence:
    """Every comparison in ``pairs`` (list of {a, b, expect}) holds."""
    texts, oks = [], []
    for pair in rule["pairs"]:
        ev = _rule_compare(res, pair, thesis)
        if ev.verdict == "no results yet":
            return ev
        oks.append(ev.verdict == "reproduced")
        texts.append(f"{pair.get('label', '')}{ev.ours}")
    return Evidence("reproduced" if all(oks) else "not reproduced", "; ".join(texts),
                    f"{sum(oks)}/{len(oks)} comparisons hold")


def _rule_within_noise(res: Results, rule: dict[str, Any], thesis: dict[str, Any]) -> Evidence:
    """|mean(a) - mean(b)| <= the larger of the two fold SDs (a tie within noise)."""
    a, a_sd, b, b_sd = _pair(res, rule)
    if _missing(a, b):
        return Evidence("no results yet", "—", "one of the compared rows has no results")
    noise = np.nanmax([a_sd, b_sd]) if not _missing(a_sd) or not _missing(b_sd) else math.nan
    if not np.isfinite(noise):
        return Evidence("not testable here", f"{fmt(a)} vs {fmt(b)}", "no fold SD (a single fold)")
    gap = abs(a - b)
    return Evidence("reproduced" if gap <= noise else "not reproduced",
                    f"gap {fmt(gap)} vs SD {fmt(noise)}", "tie if the gap is within the larger fold SD")


def _rule_sd_compare(res: Results, rule: dict[str, Any], thesis: dict[str, Any]) -> Evidence:
    """SD over folds of ``a`` vs ``b`` (``expect`` '<' or '>')."""
    _, a_sd, _, b_sd = _pair(res, rule)
    if _missing(a_sd, b_sd):
        return Evidence("no results yet", "—", "SD over folds needs at least two folds")
    ok = _cmp(a_sd, b_sd, rule["expect"])
    return Evidence("reproduced" if ok else "not reproduced", f"SD {fmt(a_sd)} vs {fmt(b_sd)}")


def _rule_only_row_improves(res: Results, rule: dict[str, Any], thesis: dict[str, Any]) -> Evidence:
    """Among ``rows`` of ``study``, ``winner`` is the only one better than ``baseline`` on both metrics."""
    study, base = rule["study"], rule["baseline"]
    g0, _, _ = res.metric(study, base, "ged_dpersona")
    d0, _, _ = res.metric(study, base, "dice_match")
    if _missing(g0, d0):
        return Evidence("no results yet", "—", "baseline row has no results")
    better, missing = [], []
    for row in rule["rows"]:
        g, _, _ = res.metric(study, row, "ged_dpersona")
        d, _, _ = res.metric(study, row, "dice_match")
        if _missing(g, d):
            missing.append(row)
        elif g < g0 and d > d0:
            better.append(row)
    if missing:
        return Evidence("no results yet", "—", "rows without results: " + ", ".join(missing))
    ok = better == [rule["winner"]]
    return Evidence("reproduced" if ok else "not reproduced",
                    "rows better on both: " + (", ".join(better) if better else "none"))


def _rule_extreme(res: Results, rule: dict[str, Any], thesis: dict[str, Any]) -> Evidence:
    """``target`` has the max/min mean of ``metric`` among ``rows`` of ``study``."""
    values = {row: res.metric(rule["study"], row, rule["metric"], rule.get("n_present"))[0] for row in rule["rows"]}
    missing = [k for k, v in values.items() if not np.isfinite(v)]
    if missing:
        return Evidence("no results yet", "—", "rows without results: " + ", ".join(missing))
    pick = max(values, key=values.get) if rule["which"] == "max" else min(values, key=values.get)
    tied = [k for k, v in values.items() if v == values[pick]]
    if len(tied) > 1:
        return Evidence("not reproduced", f"{rule['which']} shared by {', '.join(tied)} ({fmt(values[pick])})", "a tie")
    return Evidence("reproduced" if pick == rule["target"] else "not reproduced",
                    f"{rule['which']}: {pick} ({fmt(values[pick])})")


def _rule_per_expert(res: Results, rule: dict[str, Any], thesis: dict[str, Any]) -> Evidence:
    """Per-expert Dice_match of ``a`` exceeds ``b`` for every expert (``mode: all``), or the
    largest gain is at ``expert`` (``mode: argmax``)."""
    gains = []
    k = 0
    while True:
        col = f"dice_expert_{k}"
        a, _, _ = res.metric(rule["a"]["study"], rule["a"]["row"], col)
        b, _, _ = res.metric(rule["b"]["study"], rule["b"]["row"], col)
        if _missing(a, b):
            break
        gains.append(a - b)
        k += 1
    if not gains:
        return Evidence("no results yet", "—", "no per-expert columns")
    text = ", ".join(f"{g:+.4f}" for g in gains)
    if rule.get("mode", "all") == "all":
        return Evidence("reproduced" if all(g > 0 for g in gains) else "not reproduced", f"gains {text}")
    best = [k for k, g in enumerate(gains) if g == max(gains)]
    ok = best == [int(rule["expert"])]
    return Evidence("reproduced" if ok else "not reproduced", f"gains {text}", "" if len(best) == 1 else "a tie")


def _sparsity_gaps(res: Results, rule: dict[str, Any]) -> dict[int, float]:
    gaps = {}
    for n in rule["n_present"]:
        base, _, _ = res.metric(rule["study"], rule["baseline"], rule["metric"], n)
        ours, _, _ = res.metric(rule["study"], rule["ours"], rule["metric"], n)
        if not _missing(base, ours):
            gaps[n] = relative_improvement(base, ours) if rule.get("lower_is_better", True) else ours - base
    return gaps


def _rule_gap_trend(res: Results, rule: dict[str, Any], thesis: dict[str, Any]) -> Evidence:
    """The per-rater advantage (percent for lower-is-better, difference otherwise) over np levels
    is positive at every level and grows as np falls (``n_present`` listed high to low)."""
    gaps = _sparsity_gaps(res, rule)
    if len(gaps) < len(rule["n_present"]):
        return Evidence("no results yet", "—", "some sparsity levels have no results")
    seq = [gaps[n] for n in rule["n_present"]]
    unit = "%" if rule.get("lower_is_better", True) else ""
    text = ", ".join(f"np{n}: {gaps[n]:+.2f}{unit}" if unit else f"np{n}: {gaps[n]:+.4f}" for n in rule["n_present"])
    ok = all(g > 0 for g in seq) and all(x < y for x, y in zip(seq, seq[1:]))
    return Evidence("reproduced" if ok else "not reproduced", text, "positive and growing as np falls")


def _rule_fold_wins(res: Results, rule: dict[str, Any], thesis: dict[str, Any]) -> Evidence:
    """Count per-fold comparisons where ``ours`` beats ``baseline`` over ``n_present`` levels;
    reproduced when the count is at least ``min_share`` of the comparisons (default all)."""
    wins = total = 0
    for n in rule["n_present"]:
        base = res.fold_values(rule["study"], rule["baseline"], rule["metric"], n)
        ours = res.fold_values(rule["study"], rule["ours"], rule["metric"], n)
        common = base.index.intersection(ours.index)
        for f in common:
            total += 1
            better = ours[f] < base[f] if rule.get("lower_is_better", True) else ours[f] > base[f]
            wins += int(better)
    if total == 0:
        return Evidence("no results yet", "—", "no per-fold results")
    from scipy.stats import binomtest

    p = binomtest(wins, total, 0.5, alternative="greater").pvalue
    ok = wins >= math.ceil(rule.get("min_share", 1.0) * total)
    return Evidence("reproduced" if ok else "not reproduced", f"{wins}/{total} folds, sign test p = {p:.3g}")


def _rule_fold_compare(res: Results, rule: dict[str, Any], thesis: dict[str, Any]) -> Evidence:
    """In fold ``fold``, ``a`` vs ``b`` (plan rows, same study/metric/np) with ``expect``."""
    a = res.fold_values(rule["study"], rule["a"], rule["metric"], rule.get("n_present"))
    b = res.fold_values(rule["study"], rule["b"], rule["metric"], rule.get("n_present"))
    f = rule["fold"]
    if f not in a.index or f not in b.index:
        return Evidence("no results yet", "—", f"fold {f} has no results")
    ok = _cmp(a[f], b[f], rule["expect"])
    return Evidence("reproduced" if ok else "not reproduced", f"fold {f}: {fmt(a[f])} vs {fmt(b[f])}")


def _rule_degradation(res: Results, rule: dict[str, Any], thesis: dict[str, Any]) -> Evidence:
    """Relative rise of ``metric`` from np=``full`` to np=``sparse``: ``baseline`` rises more than ``ours``."""
    rises = {}
    for who in ("baseline", "ours"):
        full, _, _ = res.metric(rule["study"], rule[who], rule["metric"], rule["full"])
        sparse, _, _ = res.metric(rule["study"], rule[who], rule["metric"], rule["sparse"])
        if _missing(full, sparse) or full == 0:
            return Evidence("no results yet", "—", "missing sparsity levels")
        rises[who] = 100.0 * (sparse - full) / full
    ok = rises["baseline"] > rises["ours"]
    return Evidence("reproduced" if ok else "not reproduced",
                    f"rise {rises['baseline']:+.1f}% (baseline) vs {rises['ours']:+.1f}% (per-rater)")


def _alignment_by_np(res: Results, row: str, column: str) -> dict[int, float]:
    sel = res.alignment_rows(row=row)
    if sel.empty or column not in sel or "n_present" not in sel:
        return {}
    return {int(n): float(g[column].mean()) for n, g in sel.groupby("n_present") if g[column].notna().any()}


def _rule_alignment(res: Results, rule: dict[str, Any], thesis: dict[str, Any]) -> Evidence:
    """Alignment of the shared model (alignment.csv, ``row``), ``check`` one of:
    ``rises`` (mean latent alignment strictly increases as np falls over ``n_present``),
    ``positive_all_folds`` (every fold's mean > 0 at ``n_present[0]``),
    ``sd_shrinks`` (within-fold SD at the last np < at the first), ``mixed_signs`` (shares of
    positive and negative cases both > 0 at the first np), ``fold_sd_smallest`` (the SD over
    folds is smallest at the last np), ``undefined_for`` (``row`` has no latent alignment: NaN)."""
    check, row = rule["check"], rule["row"]
    levels = rule.get("n_present", [4, 3, 2, 1])
    col = rule.get("column", "latent_mean")
    if check == "undefined_for":
        sel = res.alignment_rows(row=row)
        if sel.empty or col not in sel:
            return Evidence("no results yet", "—", "no alignment rows for this model")
        undefined = sel[col].isna().all()
        return Evidence("reproduced" if undefined else "not reproduced",
                        "undefined (no shared z)" if undefined else "defined")
    if check in ("rises", "sd_shrinks", "fold_sd_smallest"):
        column = {"rises": col, "sd_shrinks": rule.get("sd_column", "latent_sd")}.get(check, col)
        if check == "fold_sd_smallest":
            sel = res.alignment_rows(row=row)
            if sel.empty or col not in sel:
                return Evidence("no results yet", "—", "no alignment results")
            sds = {int(n): float(g[col].std(ddof=1)) for n, g in sel.groupby("n_present") if g[col].notna().sum() > 1}
            if any(n not in sds for n in levels):
                return Evidence("no results yet", "—", "needs two or more folds per np")
            ok = min(sds, key=sds.get) == levels[-1]
            return Evidence("reproduced" if ok else "not reproduced",
                            ", ".join(f"np{n}: {sds[n]:.3f}" for n in levels))
        values = _alignment_by_np(res, row, column)
        if any(n not in values for n in levels):
            return Evidence("no results yet", "—", "some np levels have no alignment results")
        seq = [values[n] for n in levels]
        text = ", ".join(f"np{n}: {values[n]:.3f}" for n in levels)
        if check == "rises":
            ok = all(x < y for x, y in zip(seq, seq[1:]))
        else:
            ok = seq[-1] < seq[0]
            text += f" (ratio {seq[0] / seq[-1]:.1f}x)" if seq[-1] > 0 else ""
        return Evidence("reproduced" if ok else "not reproduced", text)
    sel = res.alignment_rows(row=row, n_present=levels[0])
    if sel.empty:
        return Evidence("no results yet", "—", "no alignment results")
    if check == "positive_all_folds":
        ok = bool((sel[col] > 0).all())
        return Evidence("reproduced" if ok else "not reproduced",
                        "per fold: " + ", ".join(f"{v:.3f}" for v in sel[col]))
    if check == "mixed_signs":
        prefix = col.rsplit("_", 1)[0]
        pos = float(sel.get(f"{prefix}_share_positive", pd.Series([math.nan])).mean())
        neg = float(sel.get(f"{prefix}_share_negative", pd.Series([math.nan])).mean())
        if _missing(pos, neg):
            return Evidence("no results yet", "—", "no case shares recorded")
        ok = pos > 0 and neg > 0
        return Evidence("reproduced" if ok else "not reproduced", f"positive {pos:.0%}, negative {neg:.0%}")
    raise ValueError(f"unknown alignment check {check!r}")


def _rule_co_move(res: Results, rule: dict[str, Any], thesis: dict[str, Any]) -> Evidence:
    """The GED gap (percent) and the shared model's alignment rise together as np falls
    (Spearman correlation over np levels >= ``min_rho``, default 0.8: with four levels anything
    weaker is not "rising together")."""
    gaps = _sparsity_gaps(res, rule)
    align = _alignment_by_np(res, rule["alignment_row"], rule.get("column", "latent_mean"))
    levels = [n for n in rule["n_present"] if n in gaps and n in align]
    if len(levels) < 3:
        return Evidence("no results yet", "—", "needs three or more np levels with both numbers")
    from scipy.stats import spearmanr

    rho = float(spearmanr([gaps[n] for n in levels], [align[n] for n in levels]).statistic)
    min_rho = float(rule.get("min_rho", 0.8))
    return Evidence("reproduced" if rho >= min_rho else "not reproduced", f"Spearman rho = {rho:.2f} over np {levels}",
                    f"reproduced if rho >= {min_rho:g}")


def _attributes_table(res: Results, unit: str = "patch", definition: str = "patch") -> pd.DataFrame | None:
    """Overall Pearson r per attribute from ``attributes.json`` (the output of
    ``mrseg.diagnostics.attributes.attribute_study_summary``) or ``attributes.csv`` beside the
    tables; the thesis's unit (every patch) and whole-patch variance unless told otherwise."""
    data = res.extra.get("attributes")
    if isinstance(data, dict) and isinstance(data.get("sd"), dict) and data["sd"]:
        by_unit = data["sd"].get(unit) or next(iter(data["sd"].values()))
        table = by_unit.get(definition) or next(iter(by_unit.values()))
        return pd.DataFrame([{"attribute": k, **v} for k, v in table.items()])
    path = res.folder / "attributes.csv"
    return pd.read_csv(path) if path.exists() else None


def _rule_attribute(res: Results, rule: dict[str, Any], thesis: dict[str, Any]) -> Evidence:
    """Attribute study (attributes.csv or attributes.json beside the tables): ``check`` one of
    ``sign`` (r of ``attribute`` has sign ``sign``), ``strongest`` (``attribute`` has the largest r)."""
    table = _attributes_table(res)
    if table is None or "attribute" not in table or "r" not in table:
        return Evidence("no results yet", "—", "the attribute study has not written its table")
    r = dict(zip(table["attribute"].astype(str), pd.to_numeric(table["r"], errors="coerce")))
    att = rule["attribute"]
    if att not in r or not np.isfinite(r[att]):
        return Evidence("no results yet", "—", f"no r for {att}")
    if rule["check"] == "sign":
        p = dict(zip(table["attribute"].astype(str), pd.to_numeric(table.get("p", pd.Series(dtype=float)), errors="coerce")))
        p_att = p.get(att, math.nan)
        ok = np.sign(r[att]) == np.sign(rule["sign"]) and np.isfinite(p_att) and p_att < rule.get("alpha", 0.05)
        return Evidence("reproduced" if ok else "not reproduced", f"r = {r[att]:+.3f}, p = {p_att:.2g}",
                        f"sign {'+' if rule['sign'] > 0 else '-'} and p < {rule.get('alpha', 0.05)}")
    best = max(r, key=lambda k: r[k] if np.isfinite(r[k]) else -np.inf)
    return Evidence("reproduced" if best == att else "not reproduced", f"largest r: {best} ({r[best]:+.3f})")


def _rule_attribute_folds(res: Results, rule: dict[str, Any], thesis: dict[str, Any]) -> Evidence:
    """Per-fold correlation of ``attribute`` (margin) has sign ``sign`` and p < ``alpha`` in every
    fold (``per_fold_margin`` / ``per_fold_margin_p`` of attributes.json; the thesis's unit, every
    patch, and whole-patch variance)."""
    data = res.extra.get("attributes")
    if not isinstance(data, dict) or not data.get("per_fold_margin_p"):
        return Evidence("no results yet", "—", "the attribute study has not written per-fold r and p")
    unit, definition = rule.get("unit", "patch"), rule.get("definition", "patch")
    rs = [float(v) for v in data["per_fold_margin"][unit][definition]]
    ps = [float(v) for v in data["per_fold_margin_p"][unit][definition]]
    alpha = rule.get("alpha", 0.05)
    ok = bool(rs) and all(np.sign(r) == np.sign(rule.get("sign", 1)) and p < alpha for r, p in zip(rs, ps))
    shown = ", ".join(f"{r:+.3f} (p={p:.1g})" for r, p in zip(rs, ps))
    return Evidence("reproduced" if ok else "not reproduced", shown, f"every fold: sign and p < {alpha}")


def _rule_time_ratio(res: Results, rule: dict[str, Any], thesis: dict[str, Any]) -> Evidence:
    """Training seconds (runs.csv) of row ``a`` over row ``b`` in ``study`` reach ``min_ratio``
    (default 1: ``a`` costs more)."""
    runs = res.runs
    if runs is None or "seconds" not in runs or "row" not in runs:
        return Evidence("no results yet", "—", "runs.csv has no timings")
    done = runs[(runs["status"].astype(str) == "complete") & (runs["study"].astype(str) == rule["study"])]
    if "kind" in done:
        done = done[done["kind"].astype(str).isin(["train", "training"])]
    a = pd.to_numeric(done[done["row"].astype(str) == rule["a"]]["seconds"], errors="coerce").sum()
    b = pd.to_numeric(done[done["row"].astype(str) == rule["b"]]["seconds"], errors="coerce").sum()
    if not (a > 0 and b > 0):
        return Evidence("no results yet", "—", "no timings for both rows")
    min_ratio = float(rule.get("min_ratio", 1.0))
    return Evidence("reproduced" if a / b >= min_ratio else "not reproduced",
                    f"ratio {a / b:.2f}x ({a:.0f} s vs {b:.0f} s)", f"reproduced if >= {min_ratio:g}x")


def gradient_isolation_check(n_raters: int = 4, seed: int = 0) -> dict[str, float]:
    """Gradients of each rater's Stage 1 terms with respect to every per-rater encoder, for a
    freshly initialised smoke-size ``per-rater`` model on a random batch (the property does not
    depend on training): ``cross`` is the largest |gradient| of rater i's terms at encoder j != i
    (0 means isolated), ``own`` the smallest total |gradient| at encoder i itself (> 0)."""
    import torch

    from mrseg.config import RunConfig
    from mrseg.losses import stage1_losses
    from mrseg.models import build_model

    config = RunConfig.from_profile("smoke", model="per-rater")
    torch.manual_seed(seed)
    model = build_model(config, n_raters=n_raters)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, 1, 32, 32, generator=g)
    masks = (torch.rand(2, n_raters, 32, 32, generator=g) > 0.6).float()
    present = torch.ones(2, n_raters, dtype=torch.bool)
    terms = stage1_losses(model, x, masks, present, config)["rater_terms"]
    cross, own = 0.0, math.inf
    for i in range(n_raters):
        for j in range(n_raters):
            grads = torch.autograd.grad(terms[:, i].sum(), list(model.posteriors.encoders[j].parameters()),
                                        retain_graph=True, allow_unused=True)
            total = sum(float(gr.abs().sum()) for gr in grads if gr is not None)
            if i == j:
                own = min(own, total)
            else:
                cross = max(cross, max((float(gr.abs().max()) for gr in grads if gr is not None), default=0.0))
    return {"cross": cross, "own": own}


def _rule_gradient_isolation(res: Results, rule: dict[str, Any], thesis: dict[str, Any]) -> Evidence:
    """Computed live by :func:`gradient_isolation_check` (no run needed)."""
    check = gradient_isolation_check()
    ok = check["cross"] == 0.0 and check["own"] > 0
    return Evidence("reproduced" if ok else "not reproduced",
                    f"max |dL_i/dθ_j| (i≠j) = {check['cross']:g}; own-encoder gradient > 0: {check['own'] > 0}",
                    "computed when the page is built, on a fresh smoke-size model")


def _rule_not_testable(res: Results, rule: dict[str, Any], thesis: dict[str, Any]) -> Evidence:
    """Cannot be tested with what this project has (the ``reason`` says why)."""
    return Evidence("not testable here", "—", rule.get("reason", ""))


RULES: dict[str, Callable[[Results, dict[str, Any], dict[str, Any]], Evidence]] = {
    "attribute_folds": _rule_attribute_folds,
    "compare": _rule_compare,
    "all_compare": _rule_all_compare,
    "within_noise": _rule_within_noise,
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
        elif value is None:
            raise KeyError(f"claims.yaml refers to {ref!r}, which is not in the thesis yaml")
        else:
            parts.append(str(value))
    return "; ".join(parts)


def scorecard(res: Results, thesis: dict[str, Any], claims: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per claim: id, source, claim, thesis value, ours, verdict, reason, evidence page.

    A rule whose data are absent gives "no results yet" (the plan has not produced them) unless
    the claim is marked ``testable: false`` (then "not testable here").
    """
    records = []
    for claim in claims:
        rule = claim["rule"]
        try:
            ev = RULES[rule["kind"]](res, rule, thesis)
        except KeyError as err:
            raise ValueError(f"claim {claim['id']}: rule is missing field {err}") from err
        records.append({
            "id": claim["id"],
            "source": claim["source"],
            "claim": claim["text"],
            "thesis": _thesis_text(thesis, claim.get("thesis")),
            "ours": ev.ours,
            "verdict": ev.verdict,
            "how tested": claim.get("test", ""),
            "reason": ev.reason,
            "evidence": claim.get("evidence", ""),
        })
    return pd.DataFrame.from_records(records)


def scorecard_html(card: pd.DataFrame) -> str:
    """The scorecard as HTML with the evidence column as links to the book's pages."""
    frame = card.copy()
    rows = []
    for _, rec in frame.iterrows():
        link = rec["evidence"]
        ev = f'<a href="{html.escape(link)}.html">{html.escape(link.split("/")[-1])}</a>' if link else "—"
        cls = "verdict-" + rec["verdict"].replace(" ", "-")
        cells = [html.escape(str(rec[c])) for c in ("id", "source", "claim", "thesis", "ours")]
        cells.append(f'<span class="{cls}">{html.escape(rec["verdict"])}</span>')
        cells.append(html.escape(f'{rec["how tested"]}' + (f' ({rec["reason"]})' if rec["reason"] else "")))
        cells.append(ev)
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in
                   ("id", "source", "claim", "thesis", "ours", "verdict", "how tested", "evidence"))
    return (f'<table class="table mrseg-table mrseg-scorecard"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def verdict_counts(card: pd.DataFrame) -> pd.DataFrame:
    """How many claims got each verdict."""
    counts = card["verdict"].value_counts()
    return pd.DataFrame({"verdict": list(VERDICTS), "claims": [int(counts.get(v, 0)) for v in VERDICTS]})
