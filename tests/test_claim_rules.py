"""Typed claims: every rule of claims.yaml fits its kind's schema, and a bad rule fails
``load_claims`` with the claim's id and the field at fault."""

from __future__ import annotations

import pytest
import yaml

from mrseg.scoring import claims as claims_mod
from mrseg.scoring.claim_rules import RULE_SCHEMAS, CoMove, Compare, Verdict, parse_rule


def test_every_rule_kind_has_a_schema_and_a_scoring_function():
    assert set(RULE_SCHEMAS) == set(claims_mod.RULES)
    assert claims_mod.VERDICTS == tuple(v.value for v in Verdict)
    assert claims_mod.NO_RESULTS == Verdict.NO_RESULTS == "no results"


def test_the_shipped_claims_load_and_parse_into_their_schemas():
    loaded = claims_mod.load_claims()
    assert loaded
    for claim in loaded:
        assert isinstance(parse_rule(claim["rule"]), RULE_SCHEMAS[claim["rule"]["kind"]])


def test_parse_rule_builds_nested_selectors_and_fills_defaults():
    rule = parse_rule({"kind": "compare", "expect": "<", "a": {"study": "main", "row": "x", "metric": "ged"},
                       "b": {"study": "main", "row": "y", "n_present": 2}})
    assert isinstance(rule, Compare) and rule.a.row == "x" and rule.b.n_present == 2 and rule.b.metric is None
    co = parse_rule({"kind": "co_move", "study": "s", "baseline": "b", "ours": "o", "metric": "m", "alignment_row": "b"})
    assert isinstance(co, CoMove) and co.n_present == [4, 3, 2, 1] and co.lower_is_better is True


GOOD = {"kind": "compare", "expect": "<", "a": {"study": "main", "row": "x"}, "b": {"study": "main", "row": "y"}}


@pytest.mark.parametrize("rule, message", [
    ({**GOOD, "kind": "comparison"}, "unknown rule kind 'comparison'"),
    ({k: v for k, v in GOOD.items() if k != "b"}, "rule compare lacks field 'b'"),
    ({**GOOD, "expect": "<="}, "rule compare.expect must be one of '<', '>', got '<='"),
    ({**GOOD, "expected": ">"}, "unknown field(s) expected"),
    ({**GOOD, "a": {"study": "main"}}, "rule compare.a lacks field 'row'"),
    ({**GOOD, "a": {"study": "main", "row": "x", "n_present": "four"}}, "rule compare.a.n_present must be an integer"),
    ({"kind": "all_compare", "pairs": [{"label": "x", "expect": "<", "a": GOOD["a"]}]}, "all_compare.pairs[0] lacks field 'b'"),
    ({"kind": "gap_trend", "study": "s", "baseline": "b", "ours": "o", "metric": "m", "n_present": 3},
     "rule gap_trend.n_present must be a list of integers"),
    ({"kind": "alignment", "check": "falls", "row": "shared_s1"}, "rule alignment.check must be one of"),
    ({"kind": "time_ratio", "study": "main", "a": "x", "b": "y", "min_ratio": True}, "min_ratio must be a number"),
])
def test_a_bad_rule_fails_load_claims_naming_the_claim_and_field(tmp_path, rule, message):
    path = tmp_path / "claims.yaml"
    good = {"id": "A1", "source": "abstract", "text": "t", "rule": GOOD}
    path.write_text(yaml.safe_dump({"claims": [good, {"id": "C9.9", "source": "s", "text": "t", "rule": rule}]}))
    with pytest.raises(ValueError, match="claim C9.9: ") as err:
        claims_mod.load_claims(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_duplicate_claim_ids_are_refused(tmp_path):
    path = tmp_path / "claims.yaml"
    claim = {"id": "A1", "source": "abstract", "text": "t", "rule": GOOD}
    path.write_text(yaml.safe_dump({"claims": [claim, claim]}))
    with pytest.raises(ValueError, match="claim id A1 appears twice"):
        claims_mod.load_claims(path)


def test_gradient_isolation_is_a_diagnostic_the_scorer_reads(tmp_path):
    """The check runs in the pipeline (gradient_isolation.json); the scorer only reads it: no file,
    no verdict; a file that shows a cross-encoder gradient contradicts the claim."""
    from mrseg.diagnostics.isolation import gradient_isolation_check, write_gradient_isolation
    from mrseg.io import write_json
    from mrseg.scoring.claims import evaluate_claims
    from mrseg.scoring.results import load_results

    check = gradient_isolation_check()
    assert check["cross"] == 0.0 and check["own"] > 0
    claim = {"id": "A0", "source": "s", "text": "t", "rule": {"kind": "gradient_isolation"}}
    folder = tmp_path / "thesis" / "smoke"
    folder.mkdir(parents=True)
    (record,) = evaluate_claims(load_results(tmp_path, "thesis", "smoke"), {}, [claim])
    assert record["verdict"] == "no results"
    write_gradient_isolation(folder)
    (record,) = evaluate_claims(load_results(tmp_path, "thesis", "smoke"), {}, [claim])
    assert record["verdict"] == "reproduced" and record["decides"] == "gradient_isolation.json"
    write_json(folder / "gradient_isolation.json", {"cross": 1e-3, "own": 1.0})
    (record,) = evaluate_claims(load_results(tmp_path, "thesis", "smoke"), {}, [claim])
    assert record["verdict"] == "contradicted"


def test_scorers_take_the_typed_rule_and_its_defaults():
    """Every scorer receives its kind's dataclass: the defaults live in the schema only."""
    import inspect

    from mrseg.scoring import claims

    for kind, scorer in claims.RULES.items():
        annotation = inspect.signature(scorer).parameters["rule"].annotation
        assert RULE_SCHEMAS[kind].__name__ in str(annotation), (kind, annotation)
    source = inspect.getsource(claims)
    assert 'rule["' not in source.replace('rule["kind"]', "") and "rule.get(" not in source


def _paired_rows(study: str, records: list[tuple[str, str, str, float, float, float]]):
    import pandas as pd

    return pd.DataFrame([{"study": study, "n_present": 4, "a": a, "b": b, "metric": metric, "mean_diff": diff,
                          "ci_low": low, "ci_high": high, "p": 0.001, "n": 100, "mean_a": 0.5, "mean_b": 0.5,
                          "folds_a_lower": 4, "folds_a_higher": 0, "n_folds": 4}
                         for a, b, metric, diff, low, high in records])


def test_a_contradiction_is_decided_by_the_rows_that_have_results(tmp_path):
    """Rows without results (a GPU-only row) leave an ablation claim undecided only when the rows
    that have results do not already contradict it."""
    from mrseg.scoring.claims import score_rule
    from mrseg.scoring.results import Results

    only = {"kind": "only_row_improves", "study": "ablation", "baseline": "1_base", "winner": "6_ours",
            "rows": ["2_gpu_only", "3_other", "6_ours"]}
    extreme = {"kind": "extreme", "study": "ablation", "metric": "ged_dpersona", "which": "max", "target": "4_worst",
               "rows": ["1_base", "2_gpu_only", "3_other", "4_worst"]}
    better_on_both = [("3_other", "1_base", "ged_dpersona", -0.02, -0.03, -0.01),
                      ("3_other", "1_base", "dice_match", 0.02, 0.01, 0.03),
                      ("6_ours", "1_base", "ged_dpersona", -0.02, -0.03, -0.01),
                      ("6_ours", "1_base", "dice_match", 0.02, 0.01, 0.03)]
    res = Results(folder=tmp_path, plan="p", profile="x", paired=_paired_rows("ablation", better_on_both))
    ev = score_rule(res, only)
    assert ev.verdict == "contradicted" and "2_gpu_only" in ev.reason    # row 3 improves both too
    res.paired = _paired_rows("ablation", better_on_both[2:])
    assert score_rule(res, only).verdict == "no results"                 # not contradicted: row 2 could still matter

    beyond = [("4_worst", "1_base", "ged_dpersona", 0.02, 0.01, 0.03),
              ("4_worst", "3_other", "ged_dpersona", -0.02, -0.03, -0.01)]
    res.paired = _paired_rows("ablation", beyond)
    ev = score_rule(res, extreme)
    assert ev.verdict == "contradicted" and ev.ours.startswith("beyond the target: 3_other")
    res.paired = _paired_rows("ablation", beyond[:1])
    assert score_rule(res, extreme).verdict == "no results"
