"""Paired statistics computed at aggregation: patient bootstrap, Wilcoxon, TOST, convergence,
the paired table, and the one-command re-scoring of an existing results folder."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mrseg.diagnostics.statistics import (
    cluster_bootstrap_mean_ci,
    direction_verdict,
    paired_difference,
    proportion_ci,
    tost_paired,
    variance_ratio_test,
)
from mrseg.pipeline.aggregate import convergence, paired_table
from mrseg.scoring.claims import evaluate_claims, load_claims
from mrseg.scoring.results import load_results
from mrseg.thesis import load_thesis_reported

sys.path.insert(0, str(Path(__file__).parent))
from book_fixtures import write_example_results  # noqa: E402


def test_patient_bootstrap_moves_a_patients_cases_together():
    rng = np.random.default_rng(0)
    patient_effect = rng.normal(0, 1, 20)
    groups = np.repeat(np.arange(20), 10)                  # 10 near-identical slices per patient
    values = patient_effect[groups] + rng.normal(0, 0.01, groups.size)
    lo_case, hi_case = cluster_bootstrap_mean_ci(values, None)
    lo_pat, hi_pat = cluster_bootstrap_mean_ci(values, groups)
    # slices of one patient are not independent: resampling patients gives a ~sqrt(10) wider CI
    assert (hi_pat - lo_pat) > 2.0 * (hi_case - lo_case)
    assert lo_pat < values.mean() < hi_pat


def test_paired_difference_and_direction_verdicts():
    rng = np.random.default_rng(1)
    clear = paired_difference(-0.05 + rng.normal(0, 0.01, 40), np.arange(40) // 2)
    assert clear["ci_high"] < 0 and clear["p"] < 1e-6 and clear["n"] == 40 and clear["n_groups"] == 20
    assert direction_verdict(clear["ci_low"], clear["ci_high"], "<") == "reproduced"
    assert direction_verdict(clear["ci_low"], clear["ci_high"], ">") == "contradicted"
    noise = paired_difference(rng.normal(0, 0.05, 40), np.arange(40) // 2)
    assert noise["ci_low"] < 0 < noise["ci_high"]
    assert direction_verdict(noise["ci_low"], noise["ci_high"], "<") == "inconclusive"
    assert direction_verdict(math.nan, math.nan, "<") == "inconclusive"


def test_tost_needs_the_ci_inside_the_margin():
    rng = np.random.default_rng(2)
    tiny = rng.normal(0.0, 0.01, 200)
    assert tost_paired(tiny, margin=0.01)["equivalent"] and tost_paired(tiny, margin=0.01)["p_tost"] < 0.05
    shifted = rng.normal(0.02, 0.01, 200)
    assert not tost_paired(shifted, margin=0.01)["equivalent"]
    few = rng.normal(0.0, 0.05, 6)                         # too few and too noisy to show equivalence
    assert not tost_paired(few, margin=0.01)["equivalent"]


def test_small_sample_helpers():
    assert proportion_ci(62, 100)[0] > 0.5 > proportion_ci(52, 100)[0]
    test = variance_ratio_test([1.0, 2.0, 3.0, 4.0], [1.0, 1.1, 1.2, 1.3])
    assert test["ratio"] == pytest.approx(100.0) and test["ci_low"] < test["ratio"] < test["ci_high"]


def test_convergence_reads_the_last_fifth_of_validation_ged():
    still = pd.DataFrame({"val_ged": np.linspace(0.5, 0.3, 20)})            # still falling ~2.5% / fifth
    flat = pd.DataFrame({"val_ged": [0.5, 0.4, 0.35, 0.32, 0.31] + [0.30] * 15})
    assert convergence(still)[1] is False and convergence(still)[0] > 0.02
    assert convergence(flat) == (0.0, True)
    assert convergence(None)[1] is None and convergence(pd.DataFrame({"val_ged": [0.3, 0.2]}))[1] is None


def test_paired_table_pairs_same_cases_and_same_m():
    base = dict(study="main", n_present=4, fold=0, seed=1337, M=8)
    a = pd.DataFrame([{**base, "row": "a", "case_id": f"c{i}", "patient_id": f"p{i // 2}", "ged": 0.2 + 0.01 * i}
                      for i in range(6)])
    b = a.assign(row="b", ged=a["ged"] + 0.05)
    other_m = b.iloc[:2].assign(M=16, ged=9.0)             # evaluated with another M: never paired
    table = paired_table(pd.concat([a, b, other_m], ignore_index=True), metrics=("ged",))
    rec = table.iloc[0]
    assert (rec["a"], rec["b"], rec["n"], rec["n_groups"], rec["M"]) == ("a", "b", 6, 3, "8")
    assert rec["mean_diff"] == pytest.approx(-0.05) and rec["patient_ci_high"] < 0
    # one run pair: the test set says "below", but no run-to-run spread is measured
    assert rec["unit"] == "run" and rec["n_runs"] == 1 and math.isnan(rec["ci_high"]) and math.isnan(rec["p"])


def test_scorecard_can_be_recomputed_from_a_results_folder(tmp_path, capsys):
    from mrseg.cli import main

    folder = write_example_results(tmp_path, statistics=False)
    assert not (folder / "scorecard.json").exists()
    assert main(["scorecard", "--plan", "thesis", "--profile", "smoke", "--results", str(tmp_path), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    data = json.loads((folder / "scorecard.json").read_text())
    assert printed["build"]["counts"] == data["counts"] and sum(data["counts"].values()) == len(data["claims"])
    # the rescore reads the folder's own tables (it works on a staging copy whose name is not the profile's)
    expected = evaluate_claims(load_results(tmp_path, "thesis", "smoke"), load_thesis_reported(), load_claims())
    assert printed["build"]["claims"] == {r["id"]: r["verdict"] for r in expected}
    assert sum(n for verdict, n in data["counts"].items() if verdict != "no results") >= 10
    # what it prints per claim is the decision: the reference's verdict where one decides the claim
    assert printed["claims"] == {c["id"]: c.get("decision", c["verdict"]) for c in data["claims"]}
    assert sum(printed["counts"].values()) == len(data["claims"])
    keys = {"id", "verdict", "effect", "ci_low", "ci_high", "p", "n", "thesis_effect", "rule", "evidence"}
    assert all(keys <= set(c) for c in data["claims"])
    assert (folder / "paired.csv").exists()
    # no results folder: a one-line error, exit code 2
    assert main(["scorecard", "--plan", "thesis", "--profile", "demo", "--results", str(tmp_path / "none")]) == 2


def test_a_failing_scorecard_leaves_every_earlier_output_as_it_was(tmp_path, capsys, monkeypatch):
    """scorecard rewrites its outputs all or nothing: a failure while scoring the reference keeps
    scorecard.json and paired.csv byte-identical (nothing is lost), with one error line."""
    import mrseg.pipeline.reference_scoring
    from mrseg.cli import main

    folder = write_example_results(tmp_path, statistics=False)
    assert main(["scorecard", "--plan", "thesis", "--profile", "smoke", "--results", str(tmp_path)]) == 0
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    (folder / "paired.csv").unlink()   # would be rewritten by a successful run

    def broken(*args, **kwargs):
        raise EOFError("Compressed file ended before the end-of-stream marker was reached")

    monkeypatch.setattr(mrseg.pipeline.reference_scoring, "add_reference_to_scorecard", broken)
    capsys.readouterr()
    assert main(["scorecard", "--plan", "thesis", "--profile", "smoke", "--results", str(tmp_path)]) != 0
    after = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    assert after == {k: v for k, v in before.items() if k != "paired.csv"}
    assert not [p for p in folder.parent.iterdir() if "staging" in p.name]
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: ")


def test_scale_table_reads_manifests_and_test_cases():
    from types import SimpleNamespace

    from mrseg.pipeline.aggregate import scale_table

    items = [(SimpleNamespace(config={"epochs": 10, "batch_size": 12, "image_size": 64, "seed": 1337, "fold": f},
                              memberships=[{"study": "main", "row": "x", "n_present": 4}]), None) for f in (0, 1)]
    manifests = [{"n_train": 120}, {"n_train": 125}]
    cases = pd.DataFrame({"study": "main", "fold": [0] * 3 + [1] * 4, "case_id": list("abcdefg")})
    (rec,) = scale_table(items, manifests, cases)
    assert rec["training cases per fold"] == "120-125" and rec["steps per run"] == "100-110"
    assert rec["test cases per fold"] == "3-4" and rec["image size"] == "64" and rec["folds"] == 2 and rec["seeds"] == 1


def test_executed_notebooks_lose_paths_and_progress_bars_and_fold_code(tmp_path):
    import nbformat

    from mrseg.paths import REPO_ROOT, runs_dir
    from mrseg.pipeline.notebook_hygiene import scrub_notebook

    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(f'run_dir = "{runs_dir() / "ds/per-rater/np4/fold0"}"\n'
                                       f'results_dir = "{REPO_ROOT / "results"}"')
    params.metadata["tags"] = ["injected-parameters"]
    work = nbformat.v4.new_code_cell("train()")
    work.outputs = [nbformat.v4.new_output("stream", name="stderr", text="epoch:  40%|####      | 2/5\r"),
                    nbformat.v4.new_output("stream", name="stdout", text=f"wrote {REPO_ROOT / 'book'}\n")]
    shown = nbformat.v4.new_code_cell("x")
    shown.metadata["tags"] = ["remove-input"]
    nb.cells = [params, work, shown]
    path = tmp_path / "run.ipynb"
    nbformat.write(nb, path)
    scrub_notebook(path)
    out = nbformat.read(path, as_version=4)
    assert str(REPO_ROOT) not in out.cells[0].source and 'run_dir = "runs/ds/per-rater/np4/fold0"' in out.cells[0].source
    assert [o["text"] for o in out.cells[1].outputs] == ["wrote book\n"]
    assert "hide-input" in out.cells[1].metadata["tags"] and out.cells[2].metadata["tags"] == ["remove-input"]


def test_evidence_pages_state_their_findings(tmp_path):
    from mrseg import report

    write_example_results(tmp_path)
    res = report.load_results(tmp_path, "thesis", "smoke")
    text = report.findings_markdown(res, "main_comparison")
    assert "**A1**" in text and "**reproduced**" in text and "95% CI" in text and "paired.csv" in text
    # a contradicted claim comes first and says that it contradicts the thesis
    data = res.extra["scorecard"]
    data["claims"] = [{**c, "verdict": "contradicted"} if c["id"] == "C4.3" else c for c in data["claims"]]
    first = report.findings_markdown(res, "main_comparison").splitlines()[0]
    assert first.startswith("- **C4.3**") and "other way from the thesis" in first
    assert report.findings_markdown(report.load_results(tmp_path / "none", "thesis", "smoke"), "x").startswith("No scorecard")


def test_runs_index_links_every_row_to_its_runs(tmp_path):
    from mrseg import report

    res = report.Results(folder=tmp_path, plan="thesis", profile="demo")
    res.runs = pd.DataFrame({"kind": ["train", "train", "page"], "fold": [0, 1, None],
                             "status": ["complete", "failed", "complete"],
                             "memberships": ["main:per_rater_s1@np4;sparsity:per_rater_s1@np4", "main:per_rater_s1@np4", ""],
                             "notebook": ["generated/runs/r0.ipynb", "generated/runs/r1.ipynb", "generated/pages/x.ipynb"]})
    main = report.runs_index_html(res, "main")
    assert main.count("<tr><td>main</td>") == 1 and 'href="../runs/r0.html"' in main and "(failed)" in main
    assert "sparsity" not in main and "sparsity" in report.runs_index_html(res)


def test_intro_headline_is_generated_from_the_scorecard(tmp_path):
    from mrseg import report
    from mrseg.report.claims import headline_markdown, write_headline

    write_example_results(tmp_path)
    res = report.load_results(tmp_path, "thesis", "smoke")
    res.context["scale"] = [{"study": "main", "training cases per fold": "12", "steps per run": "4", "image size": "32",
                             "epochs": 2, "test cases per fold": "12", "seeds": 1, "folds": 2}]
    text = headline_markdown(res)
    counts = res.extra["scorecard"]["counts"]
    assert f"**{sum(counts.values())} claims scored:** {counts['reproduced']} reproduced" in text
    assert "| main | 12 | 4 | 32 | 2 | 12 | 1 | 2 |" in text and "| A1 |" in text
    path = write_headline(res, tmp_path / "headline.md")
    assert path.read_text().startswith("**Scope of this build:** plan `thesis`, profile `smoke`")


def test_headline_and_scorecard_show_the_reference_decision(tmp_path):
    from mrseg import report
    from mrseg.report.claims import headline_markdown, scorecard_html
    from mrseg.scoring.claims import attach_reference, read_scorecard

    write_example_results(tmp_path)
    res = report.load_results(tmp_path, "thesis", "smoke")
    records = res.extra["scorecard"]["claims"]
    assert "reference_verdict" not in records[0]          # no reference export in this results folder
    assert "No reference export is committed" in report.reference_note(res)
    a1 = next(r for r in records if r["id"] == "A1")
    a1["verdict"] = "not testable at this scale"
    reference = [{**r, "verdict": "contradicted" if r["id"] == "A1" else "no results", "effect": 0.02, "ci_low": 0.01,
                  "ci_high": 0.03, "p": 0.001, "p_holm": 0.002, "n": 3290, "reason": ""} for r in records]
    attach_reference(records, reference, "reference-cpu", stale=0)
    res.extra["scorecard"]["reference"] = {"profile": "reference-cpu", "runs": 40, "stale_runs": 0}
    text = headline_markdown(res)
    assert "| verdict | reference runs | decision |" in text
    assert "| not testable at this scale | contradicted: 0.0200 [0.0100, 0.0300] | contradicted |" in text
    assert "| no results: " not in text          # no effect shown beside a reference that has no results
    assert "**Decision**" in text and "1 contradicted" in text.split("**Decision**")[1]
    html = scorecard_html(read_scorecard(res))
    assert "reference runs (verdict, effect, 95% CI)" in html and "decides this claim" in html
    assert "profile `reference-cpu`, 40 runs" in report.reference_note(res)
