"""The capacity ladder: the scale study's run ids, a rung read as the central studies, claims decided
at the largest rung, the derived tables and the Scale page's tables."""

from __future__ import annotations

import dataclasses
import math

import pandas as pd
import pytest

from mrseg.config import Metric, Row, RunConfig
from mrseg.pipeline.plan import load_plan
from mrseg.scoring.ladder import attach_ladder, ladder_can_score, ladder_rungs, rung_view, split_rung_row

RUNG = "wX"


def test_split_rung_row():
    assert split_rung_row("w32c1__per_rater_s1") == ("w32c1", "per_rater_s1")
    assert split_rung_row("klw1e-3__shared_s1") == ("klw1e-3", "shared_s1")
    assert split_rung_row("shared_s1") is None and split_rung_row("__shared_s1") is None


def test_run_ids_tag_a_network_that_differs_from_the_profile_only():
    own = RunConfig.from_profile("reference-cpu", model="shared")
    assert not own.network_differs_from_profile and "+w" not in own.run_id
    wide = RunConfig.from_profile("reference-cpu", model="shared", base_channels=32, feature_channels=16,
                                  encoder_filters=(32, 64, 128, 256))
    assert wide.network_differs_from_profile and "/shared+w32c1/" in wide.run_id
    assert wide.config_hash != own.config_hash
    # the smoke profile's own (smaller) network is not a rung of it
    assert not RunConfig.from_profile("smoke", model="per-rater").network_differs_from_profile


def test_run_ids_tag_a_resolution_that_differs_from_the_profile_on_its_own_dataset_only():
    own = RunConfig.from_profile("reference-cpu", model="shared")
    fine = RunConfig.from_profile("reference-cpu", model="shared", image_size=128)
    assert not own.resolution_differs_from_profile and "+px" not in own.run_id
    assert fine.resolution_differs_from_profile and "/shared+px128/" in fine.run_id
    assert fine.config_hash != own.config_hash
    both = RunConfig.from_profile("reference-cpu", model="shared", image_size=128, base_channels=16,
                                  feature_channels=16, encoder_filters=(16, 32, 64, 128))
    assert "/shared+w16c1+px128/" in both.run_id
    deep = RunConfig.from_profile("reference-cpu", model="per-rater", backbone="resnet34", feature_channels=16)
    assert deep.backbone_differs_from_profile and "/per-rater+resnet34/" in deep.run_id
    # the paper profile's own ResNet-34 (and its MiT-B2 ablation row) is not a rung
    assert not RunConfig.from_profile("paper", model="shared", backbone="mit-b2").backbone_differs_from_profile
    # the ablation's MiT-B2 row at a CPU profile carries its one MiT-B2 tag, not a second rung tag
    mit = RunConfig.from_profile("reference-cpu", model="shared+s2", backbone="mit-b2").run_id
    assert "/shared+s2+mitb2/" in mit and "mit-b2" not in mit
    # a dataset with its own size (the controlled study's 32 px raters) is not a rung
    other = RunConfig.from_profile("reference-cpu", model="shared", dataset="synthetic-raters4", image_size=32)
    assert not other.resolution_differs_from_profile and "+px" not in other.run_id


def test_reference_cpu_plan_trains_the_ladder_and_only_it():
    items = [i for i in load_plan("thesis", "reference-cpu") if i.kind == "train"]
    scale = [i for i in items if any(m["study"] == "scale" for m in i.memberships)]
    rungs = {i.run_id.split("/")[1].split("+")[-1] for i in scale}
    assert rungs == {"w16c1", "w24c1", "w32c1", "px128", "resnet34"}
    folds = {(i.run_id.split("/")[1], int(i.run_id.split("/")[3].removeprefix("fold"))) for i in scale}
    assert {f for m, f in folds if m.endswith("w32c1")} == {0, 1, 2, 3}     # row_folds: the largest rung on 4 folds
    assert {f for m, f in folds if m.endswith("w16c1")} == {0, 1}
    assert {f for m, f in folds if m.endswith("px128")} == {0, 1}
    assert {int(i.run_id.split("/")[2].removeprefix("np")) for i in scale} == {4, 1}
    stage2 = [i for i in scale if "+s2+" in i.run_id]
    assert stage2 and all(len(i.depends_on) == 1 and "+s2" not in i.depends_on[0] for i in stage2)
    for profile in ("smoke", "demo", "paper"):
        assert not any(m["study"] == "scale" for i in load_plan("thesis", profile) for m in i.memberships)


def test_row_folds_must_name_a_row(tmp_path):
    plan = tmp_path / "p.yaml"
    plan.write_text("name: p\nstudies:\n  main:\n    rows:\n      shared_s1: {model: shared}\nprofiles:\n  smoke:\n"
                    "    studies:\n      main: {row_folds: {nope: [0]}}\n")
    with pytest.raises(ValueError, match="row_folds.*no row 'nope'"):
        load_plan(str(plan), "smoke")


def _frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def test_rung_view_relabels_one_rung_as_the_central_studies():
    summary = _frame([
        {"study": "scale", "row": "wA__per_rater_s1", "n_present": 4, "ged_mean": 0.1},
        {"study": "scale", "row": "wA__shared_s1", "n_present": 1, "ged_mean": 0.2},
        {"study": "scale", "row": "wB__per_rater_s1", "n_present": 4, "ged_mean": 0.3},
        {"study": "main", "row": "per_rater_s1", "n_present": 4, "ged_mean": 0.9},
    ])
    paired = _frame([
        {"study": "scale", "n_present": 4, "a": "wA__per_rater_s1", "b": "wA__shared_s1", "metric": "ged", "mean_diff": -1},
        {"study": "scale", "n_present": 4, "a": "wA__per_rater_s1", "b": "wB__per_rater_s1", "metric": "ged",
         "mean_diff": 5},
    ])
    from mrseg.scoring.results import Results

    res = Results(folder=".", plan="thesis", profile="x", summary=summary, paired=paired)
    assert ladder_rungs(res) == ["wA", "wB"]
    view = rung_view(res, "wA")
    got = {(r.study, r.row, int(r.n_present)): r.ged_mean for r in view.summary.itertuples()}
    assert got == {("main", "per_rater_s1", 4): 0.1, ("per_expert", "per_rater_s1", 4): 0.1,
                   ("sparsity", "per_rater_s1", 4): 0.1, ("sparsity", "shared_s1", 1): 0.2}
    assert set(view.paired["mean_diff"]) == {-1}                 # a comparison across rungs is left out
    assert set(view.paired["study"]) == {"main", "per_expert", "sparsity"}
    assert view.alignment is None and view.extra == {}


@pytest.mark.parametrize("rule, expected", [
    ({"kind": "compare", "a": {"study": "main", "row": "per_rater_s1"}, "b": {"study": "main", "row": "shared_s1"}}, True),
    ({"kind": "fold_compare", "study": "sparsity", "n_present": 1}, True),
    ({"kind": "degradation", "study": "sparsity", "full": 4, "sparse": 1}, True),
    ({"kind": "gap_trend", "study": "sparsity", "n_present": [3, 2, 1]}, False),     # np 3 and 2: not on the ladder
    ({"kind": "compare", "a": {"study": "ablation"}, "b": {"study": "ablation"}}, False),
    ({"kind": "alignment", "row": "shared_s1", "n_present": [4, 1]}, False),           # a diagnostic, no study
])
def test_ladder_can_score(rule, expected):
    assert ladder_can_score(rule) is expected


def _rec(cid: str, verdict: str, decided_by: str = "this build") -> dict:
    return {"id": cid, "verdict": verdict, "decision": verdict, "decided_by": decided_by}


def test_attach_ladder_decides_at_the_largest_rung_that_decides():
    claims = [{"id": "A", "rule": {"kind": "compare", "a": {"study": "main"}, "b": {"study": "main"}}},
              {"id": "B", "rule": {"kind": "compare", "a": {"study": "main"}, "b": {"study": "main"}}},
              {"id": "C", "rule": {"kind": "gap_trend", "study": "sparsity", "n_present": [3, 2, 1]}},
              {"id": "D", "rule": {"kind": "compare", "a": {"study": "main"}, "b": {"study": "main"}}}]
    records = [_rec("A", "reproduced"), _rec("B", "not testable at this scale", "reference (reference-cpu)"),
               _rec("C", "reproduced"), _rec("D", "reproduced")]

    def step(cid, verdict):
        return {"id": cid, "verdict": verdict, "effect": -0.01, "ci_low": -0.02, "ci_high": 0.0, "n": 10, "n_runs": 2}

    rung_records = [("w16c1", "w16c1 (small)", [step("A", "contradicted"), step("B", "inconclusive"), step("C", "inconclusive"),
                                               step("D", "no results")]),
                    ("w32c1", "w32c1 (large)", [step("A", "inconclusive"), step("B", "not testable at this scale"),
                                               step("C", "contradicted"), step("D", "no results")])]
    attach_ladder(records, claims, rung_records, "w8c1 (build)", "w8c1 (reference)")
    by = {r["id"]: r for r in records}
    assert (by["A"]["decision"], by["A"]["decided_at"]) == ("inconclusive", "w32c1 (large)")
    assert by["A"]["own_network_decision"] == "reproduced" and by["A"]["ladder_rung"] == "w32c1"
    assert by["A"]["decided_by"] == "capacity ladder, rung w32c1" and len(by["A"]["ladder"]) == 2
    # the largest rung's runs did not converge: the next rung down decides
    assert (by["B"]["decision"], by["B"]["decided_at"]) == ("inconclusive", "w16c1 (small)")
    # np 3 and 2 are not on the ladder: the profile's own network keeps the claim
    assert (by["C"]["decision"], by["C"]["decided_at"]) == ("reproduced", "w8c1 (build)") and "ladder" not in by["C"]
    # no rung has the rows: kept, at the network that decided it
    assert (by["D"]["decision"], by["D"]["decided_at"]) == ("reproduced", "w8c1 (build)")


@pytest.fixture(scope="module")
def reference_with_a_rung():
    """The committed reference-cpu export with its own network's central runs (folds 0-1, seed 1337)
    copied as a rung ``wX`` of the scale study: every ladder reading of that rung must equal the
    matched own-network reading."""
    from mrseg.paths import REFERENCE_ROOT
    from mrseg.pipeline.reference import load_reference
    from mrseg.pipeline.reference_scoring import reference_as_results

    ref = load_reference("thesis", "reference-cpu", root=REFERENCE_ROOT)
    if not ref.available:
        pytest.skip("no committed reference-cpu export")
    res = reference_as_results(ref)

    return res, rung_copies(res.cases, {RUNG: [0, 1]}), rung_copies(res.per_fold, {RUNG: [0, 1]})


def rung_copies(frame: pd.DataFrame, folds: dict[str, list[int]]) -> pd.DataFrame:
    """``frame`` without its scale study, plus the own network's central rows (seed 1337) copied as
    each rung in ``folds`` on that rung's folds."""
    frame = frame[frame["study"].astype(str) != "scale"]     # the committed ladder's own rungs left out
    parts = []
    for rung, on in folds.items():
        for study, n_present in (("main", 4), ("sparsity", 1)):
            sel = frame[(frame["study"].astype(str) == study) & (pd.to_numeric(frame["n_present"]) == n_present)]
            sel = sel[sel["fold"].isin(on) & (sel["seed"] == 1337)]
            sel = sel[sel["row"].astype(str).isin([Row.SHARED_S1, Row.PER_RATER_S1, Row.DPERSONA_S1S2])].copy()
            sel["row"] = f"{rung}__" + sel["row"].astype(str)
            parts.append(sel.assign(study="scale"))
    return pd.concat([frame, *parts], ignore_index=True)


def test_a_rung_scores_claims_as_its_own_rows_would(reference_with_a_rung):
    from mrseg.pipeline.aggregate import paired_table, summary_table
    from mrseg.scoring.claims import evaluate_claims, load_claims
    from mrseg.thesis import load_thesis_reported

    res, cases, per_fold = reference_with_a_rung
    scale_cases = cases[cases["study"] == "scale"]
    own_cases = cases[(cases["study"] != "scale") & cases["fold"].isin([0, 1]) & (cases["seed"] == 1337)]
    own_cases = own_cases[own_cases["row"].isin([Row.SHARED_S1, Row.PER_RATER_S1, Row.DPERSONA_S1S2])]
    scale_pf, own_pf = per_fold[per_fold["study"] == "scale"], per_fold[per_fold["run_id"].isin(own_cases["run_id"])]
    own_pf = own_pf[own_pf["study"].isin(["main", "per_expert", "sparsity"])
                    & own_pf["row"].isin([Row.SHARED_S1, Row.PER_RATER_S1, Row.DPERSONA_S1S2])]
    own_cases = own_cases[own_cases["study"].isin(["main", "per_expert", "sparsity"])]
    laddered = dataclasses.replace(res, cases=scale_cases, per_fold=scale_pf, summary=summary_table(scale_pf),
                                   paired=paired_table(scale_cases, (Metric.GED_DPERSONA, Metric.DICE_MATCH)))
    own = dataclasses.replace(res, cases=own_cases, per_fold=own_pf, summary=summary_table(own_pf),
                              paired=paired_table(own_cases, (Metric.GED_DPERSONA, Metric.DICE_MATCH)), extra={},
                              alignment=None, alignment_summary=None, latent=None, thesis_evidence=None, derived={})
    thesis, claims = load_thesis_reported(), load_claims()
    view = {r["id"]: r for r in evaluate_claims(rung_view(laddered, RUNG), thesis, claims)}
    direct = {r["id"]: r for r in evaluate_claims(own, thesis, claims)}
    scored = [c["id"] for c in claims if ladder_can_score(c["rule"]) and direct[c["id"]]["verdict"] != "no results"]
    assert len(scored) >= 5
    for cid in scored:
        assert view[cid]["verdict"] == direct[cid]["verdict"], cid
        for key in ("effect", "ci_low", "ci_high"):
            a, b = view[cid][key], direct[cid][key]
            assert (a is None and b is None) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), (cid, key)


def test_derived_ladder_tables_match_the_own_network_on_matched_runs(reference_with_a_rung):
    from mrseg.pipeline.derived import ladder_effects_table, ladder_quality_table

    _, cases, per_fold = reference_with_a_rung
    quality = ladder_quality_table(cases, per_fold)
    effects = ladder_effects_table(cases, per_fold)
    assert set(zip(quality["rung"], quality["runs"])) == {("", "all"), ("", "matched"), (RUNG, "all")}
    for frame, keys, value in ((quality, ["row", "n_present"], "dice_match_mean"),
                               (effects, ["a", "b", "n_present", "metric"], "mean_diff")):
        matched = frame[(frame["rung"] == "") & (frame["runs"] == "matched")].set_index(keys)[value]
        rung = frame[frame["rung"] == RUNG].set_index(keys)[value]
        pd.testing.assert_series_equal(matched.sort_index(), rung.sort_index())
    every = quality[(quality["rung"] == "") & (quality["runs"] == "all")]
    assert (every["n_runs"] > quality[quality["rung"] == RUNG]["n_runs"].max()).all()
    assert set(effects["n_runs"][effects["rung"] == RUNG]) == {2}


def test_matched_runs_are_those_every_rung_has(reference_with_a_rung):
    """A rung on four folds beside one on two: "matched" is the two folds both have, for rung 0 and for
    the larger rung (whose own runs stay "all")."""
    from mrseg.pipeline.derived import ladder_effects_table, ladder_quality_table

    res = reference_with_a_rung[0]
    cases, per_fold = (rung_copies(f, {RUNG: [0, 1], "wY": [0, 1, 2, 3]}) for f in (res.cases, res.per_fold))
    quality, effects = ladder_quality_table(cases, per_fold), ladder_effects_table(cases, per_fold)
    assert set(zip(quality["rung"], quality["runs"])) == {("", "all"), ("", "matched"), (RUNG, "all"),
                                                         ("wY", "all"), ("wY", "matched")}
    keys = ["row", "n_present"]
    pick = lambda rung, runs: quality[(quality["rung"] == rung) & (quality["runs"] == runs)].set_index(keys)  # noqa: E731
    pd.testing.assert_series_equal(pick("wY", "matched")["dice_match_mean"].sort_index(),
                                   pick("", "matched")["dice_match_mean"].sort_index())
    assert (pick("wY", "all")["n_runs"] == 4).all() and (pick("wY", "matched")["n_runs"] == 2).all()
    assert set(effects["n_runs"][(effects["rung"] == "wY") & (effects["runs"] == "all")]) == {4}


def test_scale_page_tables(reference_with_a_rung):
    from mrseg.pipeline.derived import ladder_effects_table, ladder_quality_table
    from mrseg.pipeline.ladder import Rung
    from mrseg.report import scale_tables
    from mrseg.thesis import load_thesis_reported

    _, cases, per_fold = reference_with_a_rung
    quality, effects = ladder_quality_table(cases, per_fold), ladder_effects_table(cases, per_fold)
    rungs = [Rung("w8c1", {"backbone": "unet-small", "base_channels": 8}, 42_000, 90_000, 160_000, 64, True),
             Rung(RUNG, {"backbone": "unet-small", "base_channels": 32}, 650_000, 3_000_000, 6_500_000, 64, False)]
    thesis = load_thesis_reported()
    table = scale_tables.ladder_quality(quality, rungs, thesis, Metric.DICE_MATCH)
    assert list(table["network"]) == ["w8c1 (own network, every run)", "w8c1 (own network, the ladder's runs)", RUNG,
                                      "thesis (ResNet-34 U-Net)"]
    assert list(table["image"]) == ["64 px", "64 px", "64 px", "128 px"]
    assert table.iloc[-1]["per-rater S1, np = 4"] == "0.911"                      # Table 4.2, read from the data file
    assert table.iloc[1]["per-rater S1, np = 4"] == table.iloc[2]["per-rater S1, np = 4"]
    fx = scale_tables.ladder_effects(effects, rungs, thesis)
    one = fx[fx["effect (a − b)"] == "per-rater S1 − shared S1, np = 1"]
    assert set(one["thesis a − b"]) == {f"{0.1745 - 0.2220:+.4f}"}
    assert (one["run pairs"].iloc[0] > 2) and set(one["run pairs"].iloc[1:]) == {2}
    # the thesis's own a - b comes from one table: per-rater - shared at np 4 from Table 4.6 (0.1429 - 0.1436)
    four = fx[fx["effect (a − b)"] == "per-rater S1 − shared S1, np = 4"]
    assert set(four["thesis a − b"]) == {f"{0.1429 - 0.1436:+.4f}"}
    text = scale_tables.scale_sentences(quality, effects, rungs, thesis)
    assert "Dice_match" in text and f"thesis {0.1745 - 0.2220:+.4f}" in text and "point estimate moves" in text
    data = scale_tables.figure_data(quality, effects, rungs, thesis)
    assert set(data["quality"]["parameters"]) == {42_000, 650_000} and len(data["effects"]) == 6
    assert scale_tables.scale_sentences(quality.iloc[0:0], effects.iloc[0:0], rungs, thesis).startswith("No rung")
    # the same runs read as a resolution rung: the sentences say what it changes and what is left to test
    finer = [rungs[0], Rung(RUNG, dict(rungs[0].network), 42_000, 90_000, 160_000, 128, False)]
    text = scale_tables.scale_sentences(quality, effects, finer, thesis)
    assert f"{RUNG} (128 px)" in text and "Raising the resolution to 128 px does not move" in text
    lower = quality.copy()
    lower.loc[lower["rung"] == RUNG, "dice_match_mean"] -= 0.05
    assert "Raising the resolution to 128 px moves Dice_match away from the thesis's (-" in (
        scale_tables.scale_sentences(lower, effects, finer, thesis))
    assert "depth" in text and "resolution (64 px here" not in text
    assert "covers 24% of the image's width, against 48% at 64 px" in text
    assert set(scale_tables.figure_data(quality, effects, finer, thesis)["quality"]["image_size"]) == {64, 128}
    # read as another backbone with shared S1 runs only: its quality is shared S1's, named, against the own
    # network's shared S1; a share above a quarter of the gap is the largest step, and depth is no longer "left"
    deeper = [rungs[0], Rung(RUNG, {"backbone": "resnet34", "feature_channels": 16}, 24_400_000, 25_000_000,
                             26_000_000, 64, False)]
    shared_only = quality[(quality["rung"] != RUNG) | (quality["row"] == "shared_s1")].copy()
    own_shared = shared_only[(shared_only["rung"] == "") & (shared_only["runs"] == "matched")
                             & (shared_only["row"] == "shared_s1") & (shared_only["n_present"] == 4)]
    gap = scale_tables.thesis_quality(thesis, "shared_s1", 4, Metric.DICE_MATCH) - own_shared["dice_match_mean"].iloc[0]
    shared_only.loc[shared_only["rung"] == RUNG, "dice_match_mean"] = own_shared["dice_match_mean"].iloc[0] + gap / 2
    text = scale_tables.scale_sentences(shared_only, effects, deeper, thesis)
    assert f"{RUNG} (resnet34 backbone, ×581 parameters) shared S1 " in text and "+50% of the gap" in text
    assert "The resnet34 backbone" in text and "(shared S1: it has no per-rater runs yet)" in text
    assert f"The largest step toward the thesis's quality is {RUNG} (+50% of the gap)" in text
    assert "left to test" not in text


def test_findings_name_the_claims_decided_at_a_rung():
    from mrseg.report.site_findings import findings_markdown

    card = pd.DataFrame([
        {"id": "A1", "verdict": "reproduced", "decision": "inconclusive", "decided_by": "capacity ladder, rung w32c1",
         "decided_at": "w32c1 (656k backbone parameters, 64 px)", "own_network_decision": "reproduced",
         "ladder_verdict_note": "underpowered: 4 runs detect >= 0.03", "evidence": "main_comparison", "rule_kind": "compare"},
        {"id": "C4.2", "verdict": "reproduced", "decision": "reproduced", "decided_by": "this build",
         "decided_at": "w8c1", "evidence": "main_comparison", "rule_kind": "extreme"}])
    text = findings_markdown(card)
    assert "**Decided at a larger network.** 1 claim" in text
    assert "inconclusive at w32c1 (656k backbone parameters, 64 px) (own network: reproduced)" in text
    assert "A1: 4 runs detect >= 0.03" in text          # the rung's own power note


def test_committed_ladder_rungs_hold_every_central_row_converged():
    """Each width and resolution rung committed in reference/thesis/reference-cpu has shared S1, per-rater
    S1 and D-Persona S1+S2 at np 4 and np 1 (shared and per-rater) on at least two folds, at a validation
    plateau; a rung of another backbone may still lack rows (its runs are a GPU's work), but every row it
    has meets the same bar."""
    from mrseg.paths import REFERENCE_ROOT
    from mrseg.pipeline.ladder import ladder
    from mrseg.pipeline.reference import load_reference
    from mrseg.scoring.ladder import LADDER_ROWS

    ref = load_reference("thesis", "reference-cpu", root=REFERENCE_ROOT)
    quality = ref.derived.get("ladder_quality")
    if quality is None or quality.empty:
        pytest.skip("no ladder rung committed yet")
    rungs = {r.label: r for r in ladder("thesis", "reference-cpu") if not r.own_network}
    committed = set(quality["rung"].dropna().astype(str)) - {""}
    assert committed and committed <= set(rungs)
    for rung in committed:
        sel = quality[quality["rung"].astype(str) == rung]
        got = {(r.row, int(r.n_present)): r for r in sel.itertuples()}
        for key in LADDER_ROWS:
            if rungs[rung].backbone == "unet-small":
                assert key in got, (rung, key)
            if key in got:
                assert got[key].n_runs >= 2 and got[key].converged >= 0.8, (rung, key)


def test_receptive_field_is_measured_from_the_backbone():
    """MONAI's small U-Net (three stride-2 3x3 convolutions and a 3x3 bottom): 1 + 2 + 4 + 8 + 16 = 31
    px at any image size; the ResNet-34 U-Net sees the whole 64 px image."""
    from mrseg.pipeline.ladder import receptive_field

    own = RunConfig.from_profile("reference-cpu", model="shared")
    assert receptive_field(own) == 31
    assert receptive_field(RunConfig.from_profile("reference-cpu", model="shared", image_size=128)) == 31
    assert receptive_field(RunConfig.from_profile("reference-cpu", model="shared", backbone="resnet34",
                                                  feature_channels=16)) == 64


def test_training_hosts_name_where_each_rung_was_trained():
    from mrseg.report.scale_tables import training_hosts

    cpu, gpu = {"cpus": 2}, {"cpus": 16, "gpu": "NVIDIA H200"}
    index = {"runs": [
        {"host": cpu, "memberships": [{"study": "scale", "row": "w16c1__shared_s1"}]},
        {"host": cpu, "memberships": [{"study": "main", "row": "shared_s1"}]},
        {"host": gpu, "memberships": [{"study": "scale", "row": "r34__shared_s1"}]},
        {"host": cpu, "memberships": [{"study": "scale", "row": "w32c1__per_rater_s1"}]}]}
    text = training_hosts(index)
    assert text.startswith("**Trained on.** w16c1, w32c1: 2 CPUs; r34: NVIDIA H200.")
    assert training_hosts({"runs": [index["runs"][1]]}) == "" and training_hosts({}) == ""
