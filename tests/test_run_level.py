"""Run-level inference: intervals that carry the run-to-run spread, and verdicts that follow them."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mrseg.diagnostics.run_level import (
    crossed_bootstrap_se,
    detectable_effect,
    fold_means_difference,
    run_level_difference,
)
from mrseg.pipeline.aggregate import comparison_unit, paired_table
from mrseg.scoring.claims import evaluate_claims, power_note, thesis_difference
from mrseg.scoring.results import Results


def _cases(run_effects: dict[tuple[int, int], float], n_patients: int = 60, noise: float = 0.002,
           seed: int = 0, model_a: str = "per-rater", model_b: str = "shared") -> pd.DataFrame:
    """Two rows' case tables: per run pair (fold, seed) the difference a - b is that run pair's
    effect plus small per-case noise; every run pair of a fold scores the same patients."""
    rng = np.random.default_rng(seed)
    rows = []
    for (fold, run_seed), effect in run_effects.items():
        for p in range(n_patients):
            base = dict(study="main", n_present=4, fold=fold, seed=run_seed, M=16, case_id=f"f{fold}c{p}",
                        patient_id=f"f{fold}p{p}")
            b = 0.5 + 0.05 * rng.standard_normal()
            a = b + effect + noise * rng.standard_normal()
            rows.append({**base, "row": "per_rater_s1", "model": model_a, "ged_dpersona": a})
            rows.append({**base, "row": "shared_s1", "model": model_b, "ged_dpersona": b})
    return pd.DataFrame(rows)


def test_t_interval_over_run_pairs_and_nadeau_bengio_by_hand():
    diffs = np.array([-0.001, 0.029, 0.022, -0.011, 0.057, 0.026, -0.022, 0.044])
    out = fold_means_difference(diffs)
    mean, sd, n = diffs.mean(), diffs.std(ddof=1), diffs.size
    q = stats.t.ppf(0.975, n - 1)
    assert out["run_effect"] == pytest.approx(mean)
    assert (out["t_ci_low"], out["t_ci_high"]) == pytest.approx((mean - q * sd / math.sqrt(n), mean + q * sd / math.sqrt(n)))
    nb = sd * math.sqrt(1 / n + 1 / 3)                  # Nadeau & Bengio: 1/J + n_test/n_train
    assert (out["nb_ci_low"], out["nb_ci_high"]) == pytest.approx((mean - q * nb, mean + q * nb))
    assert out["nb_p"] > out["t_p"]                      # the corrected test is the conservative one
    # the hand computation: about [-0.005, +0.041] over these 8 run pairs
    assert out["t_ci_low"] == pytest.approx(-0.0046, abs=5e-4) and out["t_ci_high"] == pytest.approx(0.0406, abs=5e-4)


def test_detectable_effect_formula():
    se, df = 0.01, 7
    assert detectable_effect(se, df) == pytest.approx((stats.t.ppf(0.975, 7) + stats.t.ppf(0.8, 7)) * 0.01)
    assert math.isnan(detectable_effect(se, 0))
    # more runs, smaller detectable effect for the same per-run spread
    assert detectable_effect(0.02 / math.sqrt(20), 19) < detectable_effect(0.02 / math.sqrt(4), 3)


def test_crossed_bootstrap_se_matches_the_run_spread_when_patients_agree():
    # 10 run pairs in 10 folds, no patient noise: the SE is the SD of run means / sqrt(R) (up to
    # the bootstrap's (R-1)/R and its Monte Carlo error)
    rng = np.random.default_rng(1)
    run_means = rng.normal(0.0, 0.03, size=10)
    sums = np.zeros((10, 50))
    counts = np.zeros((10, 50))
    for r in range(10):
        sums[r, 5 * r: 5 * r + 5] = run_means[r] * 2
        counts[r, 5 * r: 5 * r + 5] = 2
    se = crossed_bootstrap_se(sums, counts, np.repeat(np.arange(10), 5).astype(str), n_boot=4000)
    expected = run_means.std(ddof=0) / math.sqrt(10)
    assert se == pytest.approx(expected, rel=0.08)


def test_patients_agree_runs_disagree_gives_inconclusive():
    """The constructed case the statistics must get right: the patient bootstrap is narrow and
    excludes 0, but the run pairs disagree in sign, so the run-level interval contains 0."""
    effects = {(0, 1): 0.04, (0, 2): -0.02, (1, 1): 0.03, (1, 2): -0.03,
               (2, 1): 0.05, (2, 2): -0.01, (3, 1): 0.02, (3, 2): -0.02}
    cases = _cases(effects)
    rec = paired_table(cases, metrics=("ged_dpersona",)).iloc[0]
    assert rec["unit"] == "run" and rec["n_runs"] == 8
    assert rec["patient_ci_low"] > 0                    # test-set uncertainty alone: "a above b"
    assert rec["ci_low"] < 0 < rec["ci_high"]            # run-level: contains 0
    assert rec["run_ci_low"] == rec["ci_low"] and rec["p"] == rec["run_p"] > 0.05
    assert rec["nb_ci_low"] <= rec["t_ci_low"] and rec["nb_ci_high"] >= rec["t_ci_high"]

    res = Results(folder=None, plan="thesis", profile="test", paired=paired_table(cases, metrics=("ged_dpersona",)),
                  per_fold=pd.DataFrame())
    claim = {"id": "X1", "source": "test", "text": "a is above b", "evidence": "main_comparison",
             "thesis": ["table_4_2_main.per_rater_s1.ged", "table_4_2_main.dpersona_s1s2.ged"],
             "rule": {"kind": "compare", "expect": ">",
                      "a": {"study": "main", "row": "per_rater_s1", "metric": "ged_dpersona"},
                      "b": {"study": "main", "row": "shared_s1", "metric": "ged_dpersona"}}}
    thesis = {"table_4_2_main": {"per_rater_s1": {"ged": [0.1444, 0.01]}, "dpersona_s1s2": {"ged": [0.1507, 0.01]}}}
    (record,) = evaluate_claims(res, thesis, [claim])
    assert record["verdict"] == "inconclusive"
    assert record["n_runs"] == 8 and record["run_ci_low"] < 0 < record["run_ci_high"]
    assert record["patient_ci_low"] > 0 and record["detectable_effect"] > 0
    assert record["thesis_diff"] == pytest.approx(0.1444 - 0.1507)
    assert record["verdict_note"].startswith("underpowered: 8 runs detect >= ")


def test_runs_that_agree_decide():
    effects = {(f, s): 0.03 + 0.002 * (f - s) for f in range(4) for s in (1, 2)}
    rec = paired_table(_cases(effects), metrics=("ged_dpersona",)).iloc[0]
    assert rec["ci_low"] > 0 and rec["p"] < 0.05


def test_stage2_on_its_own_stage1_keeps_the_per_case_analysis():
    effects = {(0, 1): 0.01}
    cases = _cases(effects, model_a="shared+s2", model_b="shared")
    assert comparison_unit(cases[cases.row == "per_rater_s1"], cases[cases.row == "shared_s1"]) == "case"
    rec = paired_table(cases, metrics=("ged_dpersona",)).iloc[0]
    assert rec["unit"] == "case" and rec["ci_low"] == rec["patient_ci_low"] > 0
    assert rec["n_runs"] == 1 and math.isnan(rec["run_ci_low"])


def test_run_level_difference_weighs_run_pairs_equally_and_names_them():
    d = [1.0, 1.0, 1.0, 3.0]                       # run a: 3 cases of 1; run b: 1 case of 3
    out = run_level_difference(d, ["a", "a", "a", "b"], ["p1", "p2", "p3", "q1"], ["0", "0", "0", "1"])
    assert out["n_runs"] == 2 and out["run_effect"] == pytest.approx(2.0)
    assert out["run_diffs"] == "a:+1 b:+3"
    single = run_level_difference([0.1, 0.2], ["a", "a"], ["p1", "p2"])
    assert single["n_runs"] == 1 and math.isnan(single["run_ci_low"]) and math.isnan(single["detectable_effect"])


def test_power_note_and_thesis_difference():
    thesis = {"t": {"a": {"ged": [0.2, 0.01]}, "b": {"ged": 0.25}}}
    assert thesis_difference(thesis, ["t.a.ged", "t.b.ged"]) == pytest.approx(-0.05)
    assert math.isnan(thesis_difference(thesis, ["t.a.ged"]))
    assert power_note({"unit": "run", "n_runs": 8, "detectable_effect": 0.03}, -0.0063).startswith(
        "underpowered: 8 runs detect >= 0.0300")
    assert power_note({"unit": "run", "n_runs": 8, "detectable_effect": 0.03}, 0.05) == ""
    assert power_note({"unit": "run", "n_runs": 1}, math.nan) == "underpowered: 1 run pair measures no run-to-run spread"
    assert power_note({"unit": "case", "n_runs": 1}, math.nan) == ""
    # equivalence: judged against its margin, not the thesis's (zero) effect
    assert power_note({"unit": "run", "n_runs": 8, "detectable_effect": 0.03, "margin": 0.01}, 0.0).endswith(
        "wider than the margin ±0.0100")
    assert power_note({"unit": "run", "n_runs": 8, "detectable_effect": 0.005, "margin": 0.01}, 0.0) == ""


def test_degradation_is_judged_on_the_change_of_gap_per_run_pair():
    """C4.16's rule: the gap ours - baseline at np 1 minus the gap at np 4, per run pair, t over
    run pairs; hand-made paired records (np 4 gaps ~0, np 1 gaps ~-0.05 on every run pair)."""
    def record(n_present: int, diffs: dict[str, float]) -> dict:
        mean = float(np.mean(list(diffs.values())))
        return {"study": "sparsity", "n_present": n_present, "a": "shared_s1", "b": "per_rater_s1",
                "metric": "ged_dpersona", "unit": "run", "n": 100, "mean_diff": -mean, "ci_low": -mean - 0.01,
                "ci_high": -mean + 0.01, "p": 0.01, "mean_a": 0.5, "mean_b": 0.5 + mean, "n_folds": 4,
                "folds_a_lower": 0, "folds_a_higher": 4, "fold_diffs": "", "fold_ci": "",
                "run_diffs": " ".join(f"{k}:{-v:+.6g}" for k, v in diffs.items()), "seed_diffs": ""}

    runs = ["0/1", "1/1", "2/1", "3/1"]
    full = record(4, dict(zip(runs, [0.001, -0.002, 0.0, 0.001])))
    sparse = record(1, dict(zip(runs, [-0.05, -0.045, -0.055, -0.048])))
    res = Results(folder=None, plan="thesis", profile="test", paired=pd.DataFrame([full, sparse]),
                  per_fold=pd.DataFrame())
    rule = {"kind": "degradation", "study": "sparsity", "baseline": "shared_s1", "ours": "per_rater_s1",
            "metric": "ged_dpersona", "full": 4, "sparse": 1}
    from mrseg.scoring.claims import score_rule

    ev = score_rule(res, {"kind": "degradation", **rule}, {})
    expected = np.mean([-0.05 - 0.001, -0.045 + 0.002, -0.055 - 0.0, -0.048 - 0.001])
    assert ev.verdict == "reproduced" and ev.effect == pytest.approx(expected) and ev.ci_high < 0
    assert ev.n == 4 and ev.detail["n_runs"] == 4 and ev.p < 0.05
    # the same mean change with run pairs that disagree: inconclusive
    sparse = record(1, dict(zip(runs, [-0.15, 0.05, -0.10, 0.0])))
    res.paired = pd.DataFrame([full, sparse])
    assert score_rule(res, {"kind": "degradation", **rule}, {}).verdict == "inconclusive"


def test_a_claim_about_one_fold_is_judged_over_that_folds_seeds():
    from mrseg.scoring.claims import score_rule

    effects = {(0, s): 0.01 * (s - 2) for s in (1, 2, 3)}            # fold 0: seeds disagree
    effects.update({(1, s): 0.04 + 0.002 * s for s in (1, 2, 3)})      # fold 1: seeds agree
    cases = _cases(effects)
    res = Results(folder=None, plan="thesis", profile="test", paired=paired_table(cases, metrics=("ged_dpersona",)),
                  per_fold=pd.DataFrame())
    rule = {"study": "main", "a": "per_rater_s1", "b": "shared_s1", "metric": "ged_dpersona", "n_present": 4,
            "expect": ">"}
    decided = score_rule(res, {**rule, "kind": "fold_compare", "fold": 1}, {})
    assert decided.verdict == "reproduced" and decided.n == 3 and decided.ci_low > 0 and decided.p < 0.05
    open_ = score_rule(res, {**rule, "kind": "fold_compare", "fold": 0}, {})
    assert open_.verdict == "inconclusive" and open_.ci_low < 0 < open_.ci_high
    # asked the other way round (b - a): the mirrored interval
    flipped = score_rule(res, {**rule, "kind": "fold_compare", "a": "shared_s1", "b": "per_rater_s1", "expect": "<",
                               "fold": 1}, {})
    assert flipped.verdict == "reproduced" and flipped.ci_high == pytest.approx(-decided.ci_low)


def test_a_row_is_unconverged_only_when_most_of_its_runs_still_improve():
    from mrseg.scoring.claims import _convergence

    def per_fold(flags: list[bool]) -> pd.DataFrame:
        return pd.DataFrame({"run_id": [f"r{i}" for i in range(len(flags))], "study": "main", "row": "shared_s1",
                             "n_present": 4, "fold": 0, "converged": flags})

    rows = [("main", "shared_s1", 4)]
    res = Results(folder=None, plan="thesis", profile="test", per_fold=per_fold([True] * 19 + [False]))
    assert _convergence(res, rows) == []                            # 19 of 20 at a plateau
    res.per_fold = per_fold([True, False, False, True])
    assert _convergence(res, rows) == ["shared_s1 (np=4: 2/4 runs converged)"]


def test_the_methods_page_states_the_measured_run_spread_from_the_scorecard():
    from mrseg.report.statistics_tables import run_spread_sentence

    card = {"claims": [{"id": "A1", "claim": "per-rater beats D-Persona", "run_diffs": "0/1:+0.01 0/2:-0.02 1/1:+0.03",
                        "reference_run_diffs": "0/1:+0.005"}]}
    res = Results(folder=None, plan="thesis", profile="test", extra={"scorecard": card})
    text = run_spread_sentence(res)
    assert "from -0.0200 to +0.0300 over 3 run pairs" in text and "2 of 3 positive" in text
    assert "reference" not in text                       # one reference run pair: no spread to state
    assert run_spread_sentence(Results(folder=None, plan="thesis", profile="test")).startswith("No scorecard")
