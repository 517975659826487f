"""The plan on Dask distributed (a LocalCluster with 2 workers) gives the local executor's outputs."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from runner_toys import write_toy_plan

from mrseg.paths import REPO_ROOT
from mrseg.pipeline import runner

pytest.importorskip("distributed")


def _run(tmp: Path, monkeypatch, plan: str, profile: str, executor: str, only: str | None) -> tuple[int, Path]:
    for name, sub in (("MRSEG_RUNS", "runs"), ("MRSEG_RESULTS", "results"), ("MRSEG_GENERATED", "generated")):
        monkeypatch.setenv(name, str(tmp / sub))
    rc = runner.run_plan(plan, profile, jobs=2, executor=executor, only=only, retries=1, progress=False)
    return rc, tmp


def _eval_tables(runs: Path, run_ids: set[str] | None = None) -> pd.DataFrame:
    """Every run's ``eval_cases.csv`` under ``runs`` (only ``run_ids``' when given), in one sorted table."""
    paths = sorted(runs.rglob("eval_cases.csv")) if run_ids is None else [runs / r / "eval_cases.csv" for r in run_ids]
    table = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
    return table.sort_values(["run_id", "case_id"]).reset_index(drop=True)


def test_toy_plan_on_local_cluster_equals_local(tmp_path, monkeypatch):
    plan = str(write_toy_plan(tmp_path / "plan", pages=False))
    # a Stage 2 run and its Stage 1, and a run that fails on purpose with its skipped dependant
    only = "*/shared+s2/np4/fold0/*,*/per-rater+s2+repel0.5/np4/fold0/*"
    rc_local, local = _run(tmp_path / "local", monkeypatch, plan, "smoke", "local", only)
    rc_dask, dask = _run(tmp_path / "dask", monkeypatch, plan, "smoke", "dask", only)
    assert rc_local == rc_dask == 1
    pd.testing.assert_frame_equal(_eval_tables(local / "runs"), _eval_tables(dask / "runs"))
    for name in ("summary.csv", "per_fold.csv"):
        a = pd.read_csv(local / "results" / "toy" / "smoke" / name).drop(columns=["run_dir"], errors="ignore")
        b = pd.read_csv(dask / "results" / "toy" / "smoke" / name).drop(columns=["run_dir"], errors="ignore")
        pd.testing.assert_frame_equal(a, b)
    runs_local = pd.read_csv(local / "results" / "toy" / "smoke" / "runs.csv")[["key", "status", "attempts"]]
    runs_dask = pd.read_csv(dask / "results" / "toy" / "smoke" / "runs.csv")[["key", "status", "attempts"]]
    pd.testing.assert_frame_equal(runs_local, runs_dask)
    assert "failed" in set(runs_dask["status"]) and "skipped" in set(runs_dask["status"])


@pytest.mark.skipif(not (REPO_ROOT / "notebooks" / "train.py").exists(), reason="model notebooks not present")
def test_smoke_training_on_local_cluster_equals_local(smoke_site, tmp_path, monkeypatch):
    """Two runs of the smoke plan on Dask give the per-case tables and summary rows of the same runs
    trained by the local executor (the smoke site's ``python -m mrseg run --jobs 2``)."""
    only = "synthetic/shared/np4/fold0/*-e[0-9]-*,synthetic/per-rater/np1/fold0/*-e[0-9]-*"  # two training runs
    local_runs = Path(os.environ["MRSEG_RUNS"])            # where the smoke site trained (the session's runs)
    rc_dask, dask = _run(tmp_path / "dask", monkeypatch, "thesis", "smoke", "dask", only)
    assert rc_dask == 0
    b = _eval_tables(dask / "runs")
    assert len(b) > 0 and set(b["model"]) == {"shared", "per-rater"}
    a = _eval_tables(local_runs, set(b["run_id"]))
    pd.testing.assert_frame_equal(a, b)
    keys = ["study", "row", "n_present"]
    ours = pd.read_csv(dask / "results" / "thesis" / "smoke" / "summary.csv")
    site = pd.read_csv(smoke_site["results"] / "summary.csv").merge(ours[keys], on=keys)
    # (a column empty in these rows but not in the site's others reads as float here, object there)
    pd.testing.assert_frame_equal(site.sort_values(keys).reset_index(drop=True),
                                  ours.sort_values(keys).reset_index(drop=True), check_like=True, check_dtype=False)
