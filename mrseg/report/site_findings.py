"""The site's findings in words, generated from the scorecard: what held, what did not, what cannot
be decided and why (power, collapsed posteriors, missing runs or data). Each sentence names its
claims with a link to their evidence page. The ``decision`` column is read where a reference
export was scored (the reference runs decide where this build's runs did not converge or did not
run), else the build's own ``verdict``.

The intro includes the result (``generated/findings.md``) on its first screen.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

# Rule kinds that compare separately trained models (the thesis's model claims); every other kind is
# a check, a diagnostic or a statistic of the annotations.
MODEL_COMPARISON_KINDS = frozenset({"compare", "all_compare", "extreme", "equivalent", "fold_wins", "fold_compare",
                                    "degradation", "gap_trend", "sd_compare", "only_row_improves", "per_expert"})
KIND_WORDS = {"gradient_isolation": "the gradient-isolation check", "attribute": "attribute statistics",
              "attribute_folds": "attribute statistics", "alignment": "gradient-alignment diagnostics",
              "co_move": "gradient-alignment diagnostics", "time_ratio": "a training-time ratio",
              "rater_identity": "the latent rater-identity test"}
COLLAPSED_UNITS = 1.0   # fewer active latent units than this (row mean): the posterior carries no information
POSTERIOR_PAGE = "generated/pages/posterior_use"


def page_link(evidence: Any) -> str:
    """A claim's evidence page as a link from the book's root (scorecard records hold it relative to
    the generated pages: ``main_comparison`` or ``../../architecture``)."""
    text = str(evidence or "")
    if not text:
        return ""
    return text[len("../../"):] if text.startswith("../../") else f"generated/pages/{text}"


def _decided(card: pd.DataFrame) -> pd.DataFrame:
    """The card with ``final`` (decision, else verdict) and ``source`` ("" or "reference_": whose
    numbers decide)."""
    card = card.copy()
    decision = card["decision"] if "decision" in card else pd.Series(None, index=card.index, dtype=object)
    card["final"] = decision.where(decision.notna(), card["verdict"])
    decided_by = [by if isinstance(by, str) else "" for by in card.get("decided_by", pd.Series("", index=card.index))]
    card["source"] = [("reference_" if by.startswith("reference") else LADDER_PREFIX if by.startswith(LADDER_DECIDER)
                       else "") for by in decided_by]
    return card


LADDER_DECIDER = "capacity ladder"   # decided_by of a claim decided at a rung (mrseg.scoring.ladder.attach_ladder)
LADDER_PREFIX = "ladder_"


def _at_scale(card: pd.DataFrame) -> list[str]:
    """The claims decided at a rung of the capacity ladder, with the network and the verdict there."""
    laddered = card[card["source"] == LADDER_PREFIX]
    if laddered.empty:
        return []
    parts = [f"[{rec['id']}]({page_link(rec['evidence'])}) {rec['final']} at {rec['decided_at']}"
             + (f" (own network: {rec['own_network_decision']})" if rec.get("own_network_decision") != rec["final"] else "")
             for _, rec in laddered.iterrows()]
    return [f"**Decided at a larger network.** {_claims(len(laddered))} on the central rows are decided at the largest "
            "rung of the capacity ladder that scored them ([Scale](generated/pages/scale)): " + "; ".join(parts) + "."]


def _field(rec: pd.Series, name: str) -> Any:
    value = rec.get(f"{rec['source']}{name}")
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _ids(frame: pd.DataFrame) -> str:
    """The claims as linked ids: "[A1](generated/pages/main_comparison), C4.2"."""
    parts = [f"[{rec['id']}]({page_link(rec['evidence'])})" if page_link(rec.get("evidence")) else str(rec["id"])
             for _, rec in frame.iterrows()]
    return _series(parts)


def _series(parts: list[str]) -> str:
    if len(parts) <= 2:
        return " and ".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _claims(n: int) -> str:
    return f"{n} claim" + ("" if n == 1 else "s")


def _held(card: pd.DataFrame) -> str:
    held = card[card["final"] == "reproduced"]
    if held.empty:
        return "**What held.** No claim is reproduced."
    models = held[held["rule_kind"].isin(MODEL_COMPARISON_KINDS)]
    others = held[~held["rule_kind"].isin(MODEL_COMPARISON_KINDS)]
    text = f"**What held.** {_claims(len(held))} reproduced"
    if models.empty:
        text += ", none of them a comparison of trained models"
    else:
        text += f": {len(models)} comparison{'s' if len(models) != 1 else ''} of trained models ({_ids(models)})"
    if not others.empty:
        words = sorted({KIND_WORDS.get(k, "other checks") for k in others["rule_kind"]})
        text += f", and {_series(words)} ({_ids(others)})" if not models.empty else f": {_series(words)} ({_ids(others)})"
    return text + "."


def _not_held(card: pd.DataFrame) -> str:
    bad = card[card["final"] == "contradicted"]
    if bad.empty:
        return "**What did not hold.** No claim is contradicted: where our runs decide, they agree with the thesis's direction."
    return (f"**What did not hold.** {_claims(len(bad))} contradicted, our runs pointing the other way from the "
            f"thesis: {_ids(bad)}.")


def _undecided(card: pd.DataFrame) -> list[str]:
    open_ = card[card["final"] == "inconclusive"]
    if open_.empty:
        return []
    notes = [(rec, _field(rec, "verdict_note") or "") for _, rec in open_.iterrows()]
    weak = [(rec, note) for rec, note in notes if str(note).startswith("underpowered")]
    text = (f"**What cannot be decided yet.** {_claims(len(open_))} inconclusive ({_ids(open_)}): the 95% interval, "
            "which carries both test-case and run-to-run variance, contains zero or the rule's margin.")
    if weak:
        text += (f" For {_ids(pd.DataFrame([r for r, _ in weak]))} the runs we have are underpowered: "
                 + "; ".join(f"{rec['id']}: {note.removeprefix('underpowered: ').rstrip('.')}" for rec, note in weak)
                 + ".")
    return [text]


def _collapsed(card: pd.DataFrame) -> list[str]:
    """Model claims whose deciding runs have collapsed posteriors, and the informative-regime claims."""
    rows = []
    for _, rec in card.iterrows():
        units = _field(rec, "posterior_active_units")
        if units is not None and rec["final"] in ("reproduced", "contradicted", "inconclusive"):
            rows.append((rec, float(units), _field(rec, "posterior_kl_nats")))
    collapsed = [(rec, u, kl) for rec, u, kl in rows if u < COLLAPSED_UNITS]
    informative = [(rec, u, kl) for rec, u, kl in rows if u >= COLLAPSED_UNITS]
    out = []
    if collapsed:
        kls = [kl for _, _, kl in collapsed if kl is not None]
        out.append(f"**Collapsed posteriors.** The decisions of {_ids(pd.DataFrame([r for r, _, _ in collapsed]))} "
                   f"rest on runs whose posteriors carry no information (at most "
                   f"{max(u for _, u, _ in collapsed):.1f} active latent units"
                   + (f", KL at most {max(kls):.2g} nats" if kls else "")
                   + "): there the posterior's design cannot change what the model does, so these verdicts say "
                   "nothing about posterior design.")
    if informative:
        verdicts = "; ".join(f"[{rec['id']}]({page_link(rec['evidence'])}) {rec['final']}"
                             for rec, _, _ in informative)
        out.append(f"**Where the posterior carries information** ([the posterior page]({POSTERIOR_PAGE}), at least "
                   f"{min(u for _, u, _ in informative):.1f} active units): {verdicts}.")
    return out


def _not_decidable(card: pd.DataFrame) -> list[str]:
    out = []
    untestable = card[card["final"].isin(["not testable", "not testable at this scale"])]
    if not untestable.empty:
        reasons = "; ".join(f"{rec['id']}: {_field(rec, 'reason') or rec['final']}" for _, rec in untestable.iterrows())
        out.append(f"**Not testable here.** {_claims(len(untestable))} ({_ids(untestable)}): {reasons}.")
    missing = card[card["final"] == "no results"]
    if not missing.empty:
        out.append(f"**No results yet.** Neither this build nor the committed reference has runs for "
                   f"{_claims(len(missing))} ({_ids(missing)}); the [scorecard](generated/pages/scorecard) gives "
                   "each one's reason.")
    return out


def findings_markdown(card: pd.DataFrame) -> str:
    """The findings as paragraphs of Markdown (links relative to the book's root); a sentence saying
    that nothing is scored yet when ``card`` is empty."""
    if card.empty:
        return "Nothing is scored yet: run `python -m mrseg run` (or `make book`) to fill this section."
    card = _decided(card)
    parts = [_held(card), _not_held(card), *_undecided(card), *_at_scale(card), *_collapsed(card), *_not_decidable(card)]
    return "\n\n".join(parts)


__all__ = ["MODEL_COMPARISON_KINDS", "findings_markdown", "page_link"]
