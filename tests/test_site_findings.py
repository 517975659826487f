"""The findings in words, on a hand-made scorecard whose every sentence can be checked."""

from __future__ import annotations

import pandas as pd

from mrseg.report.site_findings import findings_markdown, page_link


def _claim(cid: str, kind: str, verdict: str, **extra) -> dict:
    return {"id": cid, "rule_kind": kind, "verdict": verdict, "evidence": extra.pop("evidence", "main_comparison"),
            "reason": extra.pop("reason", ""), "verdict_note": extra.pop("verdict_note", ""), **extra}


CARD = pd.DataFrame([
    _claim("A0", "gradient_isolation", "reproduced", evidence="../../architecture"),
    _claim("A13", "attribute", "reproduced", evidence="attributes"),
    _claim("A1", "compare", "no results", decision="inconclusive", decided_by="reference (reference-cpu)",
           reference_verdict_note="underpowered: 20 runs detect >= 0.017; the thesis's effect is -0.006",
           reference_posterior_active_units=0.0, reference_posterior_kl_nats=3.5e-05),
    _claim("C4.4", "compare", "contradicted", evidence="qualitative", posterior_active_units=0.2,
           posterior_kl_nats=1e-4),
    _claim("AI.3", "compare", "reproduced", evidence="posterior_use", posterior_active_units=5.9,
           posterior_kl_nats=1.8),
    _claim("A12", "not_testable", "not testable", evidence="npc170", reason="NPC-170 is not public offline"),
    _claim("C4.7", "compare", "no results", evidence="ablation"),
])


def test_page_links_are_relative_to_the_book_root():
    assert page_link("main_comparison") == "generated/pages/main_comparison"
    assert page_link("../../architecture") == "architecture"
    assert page_link("") == ""


def test_every_category_is_stated_with_its_claims_and_reasons():
    text = findings_markdown(CARD)
    held, not_held, undecided, collapsed, informative, untestable, missing = text.split("\n\n")
    assert held.startswith("**What held.** 3 claims reproduced: 1 comparison of trained models "
                           "([AI.3](generated/pages/posterior_use))")
    assert "attribute statistics and the gradient-isolation check" in held and "[A0](architecture)" in held
    assert not_held.startswith("**What did not hold.** 1 claim contradicted")
    assert "[C4.4](generated/pages/qualitative)" in not_held
    # the reference decides A1, so its power note is the reference's
    assert "1 claim inconclusive ([A1]" in undecided and "A1: 20 runs detect >= 0.017" in undecided
    # A1 (reference runs, 0 units) and C4.4 (0.2 units) rest on collapsed posteriors; AI.3 does not
    assert collapsed.startswith("**Collapsed posteriors.** The decisions of [A1]") and "[C4.4]" in collapsed
    assert "at most 0.2 active latent units, KL at most 0.0001 nats" in collapsed and "AI.3" not in collapsed
    assert informative.startswith("**Where the posterior carries information**") and "at least 5.9 active" in informative
    assert "[AI.3](generated/pages/posterior_use) reproduced" in informative
    assert untestable == ("**Not testable here.** 1 claim ([A12](generated/pages/npc170)): A12: NPC-170 is not "
                          "public offline.")
    assert missing.startswith("**No results yet.** Neither this build nor the committed reference has runs for 1 "
                              "claim ([C4.7](generated/pages/ablation))")


def test_without_reproduced_or_contradicted_claims_the_sentences_say_so():
    card = CARD[CARD["id"].isin(["C4.7"])]
    text = findings_markdown(card)
    assert "No claim is reproduced." in text and "No claim is contradicted" in text
    assert findings_markdown(pd.DataFrame()).startswith("Nothing is scored yet")
