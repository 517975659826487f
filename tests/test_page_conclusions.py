"""Closing sentences of the mechanism and controlled pages, on hand-made tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mrseg.formatting import ci_text, table_number, values_missing
from mrseg.report.page_conclusions import controlled_conclusion, mechanism_conclusion


def test_numbers_in_sentences_and_tables():
    assert ci_text(-0.0131, -0.0298, 0.0036) == "-0.0131 [-0.0298, +0.0036]"
    assert ci_text(np.nan, 0, 1) == "—" and ci_text(0.5, None, None) == "+0.5000"
    assert [table_number(v) for v in (0.50021, 3.5e-05, 20.0, -0.0131)] == ["0.5002", "3.50e-05", "20", "-0.0131"]
    assert values_missing(pd.DataFrame({"row": ["a", "b"], "ours": ["—", np.nan], "thesis": [None, ""]}))
    assert not values_missing(pd.DataFrame({"row": ["a"], "ours": ["—"], "thesis": ["0.1444 ± 0.0141"]}))


def test_mechanism_sentences_name_the_supported_explanations_and_posterior_use():
    readings = pd.DataFrame([
        {"explanation": "(a) separate parameters", "np": 1, "test": "per_rater_s1 - per_rater_tied_s1",
         "difference": -0.002, "ci_low": -0.01, "ci_high": 0.006, "reading": "inconclusive"},
        {"explanation": "(b) per-rater ELBO", "np": 1, "test": "per_rater_tied_s1 - shared_s1",
         "difference": -0.03, "ci_low": -0.05, "ci_high": -0.01, "reading": "supported"},
    ])
    collapse = pd.DataFrame({"row": ["shared_s1"], "kl_nats_mean": [2e-5], "active_units_mean": [0.0]})
    text = mechanism_conclusion(readings, collapse)
    assert text.splitlines()[0] == (
        "- At np = 1 the controls support (b) per-rater ELBO: (a) separate parameters is **inconclusive** "
        "(per_rater_s1 - per_rater_tied_s1: GED, d(∅,∅)=0, -0.0020 [-0.0100, +0.0060]); (b) per-rater ELBO is **supported** "
        "(per_rater_tied_s1 - shared_s1: GED, d(∅,∅)=0, -0.0300 [-0.0500, -0.0100]).")
    assert "KL at most 2e-05 nats and at most 0.0 active units" in text
    assert mechanism_conclusion(readings.iloc[:0]).startswith("The mechanism study has no paired results")


def test_controlled_sentences_count_the_settings_each_model_wins():
    comparison = pd.DataFrame([
        {"N": 4, "np": 1, "n_runs": 2, "difference": -0.05, "ci_low": -0.08, "ci_high": -0.02, "verdict": "per-rater better"},
        {"N": 8, "np": 1, "n_runs": 2, "difference": 0.01, "ci_low": -0.02, "ci_high": 0.04, "verdict": "inconclusive"},
    ])
    lines = controlled_conclusion(comparison).splitlines()
    assert lines[0] == ("- Per-rater minus shared, GED (d(∅,∅)=0) to the true style distribution, over 2 settings of N and np "
                        "(2 run pairs per comparison): 1 inconclusive, 1 per-rater better.")
    assert lines[1] == "- N = 4, np = 1: -0.0500 [-0.0800, -0.0200], per-rater better."
