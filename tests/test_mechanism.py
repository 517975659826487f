"""The mechanism study's paired comparisons on hand-made case tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mrseg.diagnostics.mechanism import collapse_table, explanation_readings, mechanism_comparisons

RUNS = ((0, 1337), (0, 1338), (1, 1337), (1, 1338))


def _cases(shift: float, n: int = 24, offsets: dict[str, float] | None = None,
           runs: tuple[tuple[int, int], ...] = RUNS) -> pd.DataFrame:
    """Each row's runs (fold, seed) score the same n cases of their fold; a row's run adds a small
    run effect (SD 0.005) to its offset."""
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.6, n)
    rows = []
    offsets = offsets or {"per_rater_s1": 0.0, "per_rater_tied_s1": shift, "shared_s1": shift}
    for row, offset in offsets.items():
        for fold, seed in runs:
            run_effect = 0.005 * rng.normal()
            for i in range(n):
                rows.append({"study": "mechanism", "row": row, "n_present": 1, "fold": fold, "seed": seed,
                             "case_id": f"f{fold}c{i}", "patient_id": f"f{fold}p{i // 2}",
                             "ged": base[i] + offset + run_effect + 0.01 * rng.normal()})
    rows.append({"study": "main", "row": "shared_s1", "n_present": 1, "fold": 0, "seed": 1337, "case_id": "c0",
                 "patient_id": "p0", "ged": 99.0})   # another study's rows are never read
    return pd.DataFrame(rows)


def test_separate_parameters_pair_gives_a_verdict_only_when_the_ci_excludes_zero():
    out = mechanism_comparisons(_cases(0.1))
    a = out[out["explanation"] == "(a) separate parameters"].iloc[0]
    assert a["np"] == 1 and a["n_cases"] == 96 and a["n_patients"] == 48 and a["n_runs"] == 4
    assert a["ci_high"] < 0 and a["verdict"] == "per_rater_s1 better" and a["p_wilcoxon"] < 0.01
    assert a["patient_ci_low"] <= a["patient_ci_high"] < 0
    assert abs(a["difference"] + 0.1) < 0.02
    b = out[out["explanation"] == "(b) per-rater ELBO"].iloc[0]
    assert b["ci_low"] < 0 < b["ci_high"] and b["verdict"] == "inconclusive"
    assert set(out["explanation"]) == {"(a) separate parameters", "(b) per-rater ELBO", "thesis comparison"}


def test_one_run_pair_is_inconclusive_however_narrow_the_test_set_ci():
    out = mechanism_comparisons(_cases(0.1, runs=((0, 1337),)))
    a = out[out["explanation"] == "(a) separate parameters"].iloc[0]
    assert a["n_runs"] == 1 and a["patient_ci_high"] < 0          # the test set alone says "better"
    assert np.isnan(a["ci_low"]) and a["verdict"] == "inconclusive"


def test_no_mechanism_rows_give_an_empty_table():
    empty = mechanism_comparisons(_cases(0.1).assign(study="sparsity"))
    assert empty.empty and "verdict" in empty.columns
    assert mechanism_comparisons(pd.DataFrame()).empty
    summary = pd.DataFrame({"study": ["mechanism", "main"], "row": ["shared_s1", "shared_s1"], "n_present": [1, 4],
                            "ged_mean": [0.3, 0.2], "kl_nats_mean": [0.01, 0.02]})
    table = collapse_table(summary)
    assert list(table["n_present"]) == [1] and "kl_nats_mean" in table
    assert collapse_table(pd.DataFrame()).empty


def test_each_explanation_is_read_from_its_own_pair_and_its_rival():
    # tied = per-rater (a: no gain from separate parameters), shared 0.1 worse than both (b supported);
    # shared-wide as bad as shared (c: inconclusive pair, but per-rater still beats it);
    # shared-masked as good as per-rater (d: masking closes the gap)
    offsets = {"per_rater_s1": 0.0, "per_rater_tied_s1": 0.0, "shared_s1": 0.1, "shared_wide_s1": 0.1,
               "shared_masked_s1": 0.0}
    readings = explanation_readings(mechanism_comparisons(_cases(0.0, offsets=offsets))).set_index("explanation")
    assert readings.loc["(a) separate parameters", "reading"] == "inconclusive"
    assert readings.loc["(b) per-rater ELBO", "reading"] == "supported"
    assert readings.loc["(c) capacity", "reading"] == "not supported (per_rater_s1 still better)"
    assert readings.loc["(d) zero-fill", "reading"] == "supported"
    assert readings.loc["(b) per-rater ELBO", "test"] == "per_rater_tied_s1 - shared_s1"
    assert readings.loc["(b) per-rater ELBO", "ci_high"] < 0
    # a control that is worse than what it replaces does not support its explanation
    offsets["shared_masked_s1"] = 0.2
    readings = explanation_readings(mechanism_comparisons(_cases(0.0, offsets=offsets))).set_index("explanation")
    assert readings.loc["(d) zero-fill", "reading"] == "not supported"
    assert explanation_readings(pd.DataFrame()).empty
