"""The scorecard rendered: the claims' table as HTML, each page's findings, the intro's headline
and verdict counts, read from ``scorecard.json`` (computed by :mod:`mrseg.scoring.claims`)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mrseg.formatting import _is_number, fmt
from mrseg.io import write_text
from mrseg.report.banner import _scale_markdown, describe_context
from mrseg.scoring.claims import DECIDED, NO_RESULTS, NOT_AT_SCALE, VERDICTS, read_scorecard
from mrseg.scoring.results import Results


def _num(value: Any, digits: int = 4) -> str:
    return fmt(value, digits) if value is not None else "—"


def fmt_p(value: Any) -> str:
    """A p value: three decimals, "< 0.001" below that, an em dash when missing."""
    if value is None or not _is_number(value) or not np.isfinite(float(value)):
        return "—"
    return "< 0.001" if float(value) < 0.001 else f"{float(value):.3f}"


def _has_reference(card: pd.DataFrame) -> bool:
    """Whether any claim of ``card`` was scored on reference runs."""
    return "reference_verdict" in card and bool(card["reference_verdict"].notna().any())


def _runs_note(rec: Any, prefix: str = "") -> str:
    """One line under an effect: how many run pairs the interval rests on, the patient-only
    interval, and the effect the runs detect with 80% power; "" for other rules."""
    unit = rec.get(prefix + "unit")
    if unit not in ("run", "case"):
        return ""
    parts = []
    n_runs = rec.get(prefix + "n_runs")
    if unit == "run":
        parts.append(f"run-level, {int(n_runs) if _is_number(n_runs) and pd.notna(n_runs) else 0} run pairs")
    else:
        parts.append("Stage 2 on its own Stage 1: per case")
    low, high = rec.get(prefix + "patient_ci_low"), rec.get(prefix + "patient_ci_high")
    if unit == "run" and low is not None and pd.notna(low):
        parts.append(f"test-set only [{_num(low)}, {_num(high)}]")
    detectable = rec.get(prefix + "detectable_effect")
    if unit == "run" and detectable is not None and pd.notna(detectable):
        parts.append(f"detects ≥ {_num(detectable)}")
    return "; ".join(parts)


def verdict_text(rec: Any, prefix: str = "") -> str:
    """A verdict with its qualifier, e.g. ``inconclusive (underpowered: 8 runs detect >= 0.0299; ...)``."""
    verdict = str(rec.get(prefix + "verdict") or "")
    note = rec.get(prefix + "verdict_note")
    return f"{verdict} ({note})" if verdict == "inconclusive" and isinstance(note, str) and note else verdict


def _reference_cell(rec: Any) -> str:
    """The reference runs' verdict of one claim, its effect with 95% CI and n, as HTML; "—" when not scored."""
    verdict = rec.get("reference_verdict")
    if not isinstance(verdict, str) or not verdict:
        return "—"
    text = f'<span class="verdict-{verdict.replace(" ", "-")}">{html.escape(verdict_text(rec, "reference_"))}</span>'
    if verdict in (*DECIDED, NOT_AT_SCALE) and rec.get("reference_effect") is not None and pd.notna(rec.get("reference_effect")):
        text += f"<br>{html.escape(_num(rec['reference_effect']))}"
        if rec.get("reference_ci_low") is not None and pd.notna(rec.get("reference_ci_low")):
            text += html.escape(f" [{_num(rec['reference_ci_low'])}, {_num(rec['reference_ci_high'])}]")
        if rec.get("reference_n"):
            text += f", n = {int(rec['reference_n'])}"
        if _runs_note(rec, "reference_"):
            text += f"<br><small>{html.escape(_runs_note(rec, 'reference_'))}</small>"
    why = html.escape(str(rec.get("reference_reason") or ""))
    if rec.get("reference_posterior"):
        why += f"<br>posterior: {html.escape(str(rec['reference_posterior']))}"
    text += _folded("why", why)
    if rec.get("reference_stale") is True:
        text += "<br><small>from stale reference runs</small>"
    if rec.get("decided_by", "").startswith("reference"):
        why = "this build did not run these rows" if rec.get("verdict") == NO_RESULTS else "this build's runs did not converge"
        text += f"<br><small><b>decides this claim</b> ({why})</small>"
    return text


def ladder_steps_text(rec: Any) -> list[str]:
    """One line per rung of the capacity ladder that scored the claim: network, verdict, effect, CI, runs."""
    steps = rec.get("ladder")
    if not isinstance(steps, list):
        return []
    lines = []
    for step in steps:
        line = f"{step['network']}: {step['verdict']}"
        if step.get("effect") is not None and pd.notna(step.get("effect")):
            line += f", {_num(step['effect'])}"
            if step.get("ci_low") is not None and pd.notna(step.get("ci_low")):
                line += f" [{_num(step['ci_low'])}, {_num(step['ci_high'])}]"
        if _is_number(step.get("n_runs")) and pd.notna(step.get("n_runs")):
            line += f", {int(step['n_runs'])} run pairs"
        lines.append(line)
    return lines


def _decision_cell(rec: Any) -> str:
    """The decision of one claim as HTML, the network it was decided at, and the ladder's rungs folded."""
    decision = str(rec.get("decision") or rec["verdict"])
    text = f'<span class="verdict-{decision.replace(" ", "-")}">{html.escape(decision)}</span>'
    if isinstance(rec.get("decided_at"), str) and rec.get("decided_at"):
        text += f"<br><small>at {html.escape(rec['decided_at'])}</small>"
    steps = ladder_steps_text(rec)
    if steps:
        text += _folded("per rung", "<br>".join(html.escape(s) for s in steps))
    return text


def _folded(summary: str, body: str) -> str:
    """HTML that shows ``summary`` and unfolds ``body`` (already escaped) on a click; "" without a body."""
    return f"<details><summary>{html.escape(summary)}</summary><small>{body}</small></details>" if body else ""


def scorecard_html(card: pd.DataFrame) -> str:
    """The scorecard as a compact HTML table, one claim per row: the claim (its source, rule and
    deciding table row folded under it), the thesis's value, ours (effect, 95% CI, n, p with Holm),
    our verdict (its reason folded), the reference runs' verdict and the decision (when a reference
    export is committed), and the evidence page."""
    with_reference = _has_reference(card)
    rows = []
    for _, rec in card.iterrows():
        link = rec.get("evidence") or ""
        ev = f'<a href="{html.escape(link)}.html">{html.escape(link.split("/")[-1])}</a>' if link else "—"
        ci = (f" [{_num(rec['ci_low'])}, {_num(rec['ci_high'])}]" if rec.get("ci_low") is not None
              and pd.notna(rec.get("ci_low")) else "")
        p = fmt_p(rec.get("p")) + (f" (Holm {fmt_p(rec.get('p_holm'))})" if pd.notna(rec.get("p_holm")) else "")
        stats = html.escape(f"{_num(rec.get('effect'))}{ci}")
        if rec.get("n"):
            stats += html.escape(f", n = {rec['n']}")
        if p.strip() not in ("", "—"):
            stats += html.escape(f", p {p}")
        stats += _folded("details", html.escape(str(rec["ours"]))
                         + (f"<br>{html.escape(_runs_note(rec))}" if _runs_note(rec) else ""))
        cls = "verdict-" + str(rec["verdict"]).replace(" ", "-")
        verdict = f'<span class="{cls}">{html.escape(verdict_text(rec))}</span>'
        why = html.escape(str(rec.get("reason") or ""))
        if rec.get("posterior"):
            why += f"<br>posterior: {html.escape(str(rec['posterior']))}"
        verdict += _folded("why", why)
        rule = (f"source: {html.escape(str(rec['source']))}<br>{html.escape(str(rec['rule']))}"
                + (f"<br>decided by {html.escape(str(rec['decides']))}" if rec.get("decides") else ""))
        cells = [f"<b>{html.escape(str(rec['id']))}</b>", html.escape(str(rec["claim"])) + _folded("rule", rule),
                 html.escape(str(rec["thesis_effect"])), stats, verdict]
        if with_reference:
            cells += [_reference_cell(rec), _decision_cell(rec)]
        cells.append(ev)
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    heads = ["id", "claim", "thesis", "ours: effect [95% CI], n, p", "verdict"]
    if with_reference:
        heads += ["reference runs (verdict, effect, 95% CI)", "decision (decided at)"]
    head = "".join(f"<th>{h}</th>" for h in (*heads, "evidence"))
    return (f'<table class="table mrseg-table mrseg-scorecard"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def findings_markdown(res: Results, page: str) -> str:
    """Generated sentences saying what this evidence page's tables show for each claim it holds
    (from ``scorecard.json``): verdict, our effect with its 95% CI, n and p, and the table row that
    decides it; findings that contradict the thesis come first and say so."""
    card = read_scorecard(res)
    if card.empty or "evidence" not in card:
        return "No scorecard yet: the statements of this page's claims appear once the runs are aggregated."
    card = card[card["evidence"].astype(str) == page]
    if card.empty:
        return "No scored claim rests on this page."
    order = {"contradicted": 0, "reproduced": 1, "inconclusive": 2}
    card = card.assign(_o=card["verdict"].map(order).fillna(3)).sort_values("_o", kind="stable")
    lines = []
    for _, rec in card.iterrows():
        text = f"- **{rec['id']}** ({rec['claim']}): **{verdict_text(rec)}**"
        if rec["verdict"] == "contradicted":
            text += ", our runs point the other way from the thesis"
        if rec.get("effect") is not None and pd.notna(rec.get("effect")):
            text += f"; ours {_num(rec['effect'])}"
            if rec.get("ci_low") is not None and pd.notna(rec.get("ci_low")):
                text += f" (95% CI {_num(rec['ci_low'])} to {_num(rec['ci_high'])})"
            text += f", n = {int(rec['n'])}" if rec.get("n") else ""
            if _runs_note(rec):
                text += f" [{_runs_note(rec)}]"
            if rec.get("p") is not None and pd.notna(rec.get("p")):
                text += f", p {'' if fmt_p(rec['p']).startswith('<') else '= '}{fmt_p(rec['p'])}"
        if rec.get("thesis_effect") and rec["thesis_effect"] != "—":
            text += f"; thesis {rec['thesis_effect']}"
        if rec.get("reason"):
            text += f" ({rec['reason']})"
        if rec.get("decides"):
            text += f". Decided by `{rec['decides']}`"
        if str(rec.get("decided_by") or "").startswith("reference"):
            text += (f". The committed {rec['decided_by'].removeprefix('reference ').strip('()')} reference runs "
                     f"decide it: **{rec['decision']}**")
            if rec.get("reference_effect") is not None and pd.notna(rec.get("reference_effect")):
                text += f", {_num(rec['reference_effect'])}"
                if rec.get("reference_ci_low") is not None and pd.notna(rec.get("reference_ci_low")):
                    text += f" (95% CI {_num(rec['reference_ci_low'])} to {_num(rec['reference_ci_high'])})"
        lines.append(text + ".")
    return "\n".join(lines)


def reference_findings_markdown(res: Results) -> str:
    """One line per claim the committed reference runs decide (``decided_by`` the reference): its
    decision, the reference effect with its 95% CI and the runs; a sentence when none does."""
    card = read_scorecard(res)
    if card.empty or "decided_by" not in card:
        return "No claim is decided by the committed reference runs in this build's scorecard."
    card = card[card["decided_by"].astype(str).str.startswith("reference")]
    if card.empty:
        return "No claim is decided by the committed reference runs: this build's own runs decide every claim."
    lines = []
    for _, rec in card.iterrows():
        text = f"- **{rec['id']}** ({rec['claim']}): **{rec['decision']}**"
        if rec.get("reference_effect") is not None and pd.notna(rec.get("reference_effect")):
            text += f"; {_num(rec['reference_effect'])}"
            if rec.get("reference_ci_low") is not None and pd.notna(rec.get("reference_ci_low")):
                text += f" (95% CI {_num(rec['reference_ci_low'])} to {_num(rec['reference_ci_high'])})"
        note = _runs_note(rec, "reference_")
        if note:
            text += f" [{note}]"
        if rec.get("reference_verdict_note"):
            text += f"; {rec['reference_verdict_note']}"
        lines.append(text + ".")
    return "\n".join(lines)


HEADLINE_CLAIMS = ("A1", "A2", "A9", "A10", "A6", "AI.2", "AI.3")


def headline_markdown(res: Results, claims: tuple[str, ...] = HEADLINE_CLAIMS) -> str:
    """The site's opening (included by the intro): scope (plan, profile, data, claims scored),
    the scale of our runs and the headline verdicts with effect and 95% CI, all read from the
    aggregated results and ``scorecard.json``."""

    card = read_scorecard(res)
    ctx = describe_context(res)
    datasets = ctx["dataset"] if isinstance(ctx["dataset"], list) else [ctx["dataset"]]
    lines = [f"**Scope of this build:** plan `{res.plan}`, profile `{res.profile}`, data "
             + ", ".join(f"`{d}`" for d in datasets if d) + "."]
    if card.empty:
        lines.append("No results have been aggregated yet: run `python -m mrseg run` to fill this section.")
        return "\n\n".join(lines)
    counts = verdict_counts(card)
    with_reference = _has_reference(card)
    lines.append(f"**{len(card)} claims scored:** " + ", ".join(
        f"{int(n)} {v}" for v, n in counts[["verdict", "claims"]].itertuples(index=False) if n)
        + ". Details on the [scorecard](generated/pages/scorecard).")
    if with_reference:
        lines.append("**Decision** (the committed reference runs' verdict where this build's runs did not converge "
                     "or this build does not run the rows): "
                     + ", ".join(f"{int(n)} {v}" for v, n in counts[["verdict", "claims (decision)"]].itertuples(index=False)
                                 if n) + ".")
        deciders = card["decided_by"].astype(str) if "decided_by" in card else pd.Series("", index=card.index)
        at_rung = card[deciders.str.startswith("capacity ladder")]
        if len(at_rung):
            lines.append(f"**{len(at_rung)} of them are decided at a larger network**: claims on the central rows are "
                         "decided at the largest rung of the capacity ladder whose converged runs scored them "
                         "([Scale](generated/pages/scale)); the \"decided at\" column names the network.")
    scale = _scale_markdown(res).strip()
    if scale:
        lines.append(scale)
    rows = []
    for cid in claims:
        sel = card[card["id"] == cid]
        if sel.empty:
            continue
        rec = sel.iloc[0]
        effect = _num(rec.get("effect"))
        if rec.get("ci_low") is not None and pd.notna(rec.get("ci_low")):
            effect += f" [{_num(rec['ci_low'])}, {_num(rec['ci_high'])}]"
        cells = [cid, rec["claim"], rec["thesis_effect"], effect, verdict_text(rec)]
        if with_reference:
            ref = rec.get("reference_verdict")
            if (ref in (*DECIDED, NOT_AT_SCALE) and rec.get("reference_effect") is not None
                    and pd.notna(rec.get("reference_effect"))):
                ref = (f"{verdict_text(rec, 'reference_')}: {_num(rec['reference_effect'])} "
                       f"[{_num(rec['reference_ci_low'])}, {_num(rec['reference_ci_high'])}]")
            decided_at = rec.get("decided_at") if isinstance(rec.get("decided_at"), str) else ""
            cells += [ref if isinstance(ref, str) else "—", rec.get("decision") or rec["verdict"], decided_at or "—"]
        rows.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    if rows:
        head = "| id | claim | thesis | ours | verdict |" + (" reference runs | decision | decided at |"
                                                             if with_reference else "")
        lines.append("**Headline claims** (ours: effect and 95% CI, run-level for separately trained models"
                     + ("; the reference runs' verdict decides where ours did not converge or did not run"
                        if with_reference else "")
                     + "):\n\n" + head + "\n" + "|---" * head.count(" |") + "|\n" + "\n".join(rows))
    return "\n\n".join(lines)


def write_headline(res: Results, path: str | Path) -> Path:
    """Write :func:`headline_markdown` to ``path`` and the findings in words
    (:func:`mrseg.report.site_findings.findings_markdown`) to ``findings.md`` beside it (atomically)."""
    from mrseg.report.site_findings import findings_markdown as site_findings

    write_text(path, headline_markdown(res) + "\n")
    write_text(Path(path).with_name("findings.md"), site_findings(read_scorecard(res)) + "\n")
    return Path(path)


def verdict_counts(card: pd.DataFrame) -> pd.DataFrame:
    """How many claims got each verdict; with a committed reference export also the reference
    runs' verdicts and the ``decision`` (the reference's where this build's runs did not converge)."""
    counts = card["verdict"].value_counts() if "verdict" in card else pd.Series(dtype=int)
    out = pd.DataFrame({"verdict": list(VERDICTS), "claims": [int(counts.get(v, 0)) for v in VERDICTS]})
    if _has_reference(card):
        for column, label in (("reference_verdict", "claims (reference runs)"), ("decision", "claims (decision)")):
            counts = card[column].value_counts()
            out[label] = [int(counts.get(v, 0)) for v in VERDICTS]
    return out


def reference_note(res: Results) -> str:
    """One paragraph on the reference export the scorecard also scored (profile, runs, stale runs)
    and how the decision column is formed; empty when none was scored."""
    data = res.extra.get("scorecard")
    ref = data.get("reference") if isinstance(data, dict) else None
    if not isinstance(ref, dict):
        return ("No reference export is committed, so every verdict rests on this build's runs "
                "(`reference/` is filled by `python -m mrseg reference export`).")
    text = (f"Every claim is also scored on the committed reference runs (profile `{ref['profile']}`, "
            f"{ref['runs']} runs; see [Reference results](reference_results)). Where this build's runs did not "
            "converge (verdict \"not testable at this scale\") or this build does not run the compared rows "
            "(\"no results\"), the reference runs' verdict is the **decision**; elsewhere the decision is this "
            "build's own verdict.")
    rungs = ref.get("rungs") or []
    if rungs:
        text += (" The committed runs also climb a **capacity ladder** (see [Scale](scale)): the central rows "
                 f"retrained with wider networks, or at a finer resolution, than "
                 f"{ref.get('own_network', 'the profile’s own')}, namely "
                 + ", ".join(str(r["network"]) for r in rungs)
                 + ". A claim on those rows (full annotation and np = 1) is decided at the largest rung whose runs "
                 "converged and scored it; the \"decided at\" line names the network behind every decision, and "
                 "\"per rung\" unfolds each rung's verdict.")
    if ref.get("stale_runs"):
        text += (f" {ref['stale_runs']} reference runs are stale (made by other code): their verdicts are those "
                 "of the code that made them.")
    return text
