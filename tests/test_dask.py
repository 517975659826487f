"""The plan on Dask distributed (a LocalCluster with 2 workers) gives the local executor's outputs."""

from __future__ import annotations

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


def _eval_tables(runs: Path) -> pd.DataFrame:
    tables = [pd.read_csv(p) for p in sorted(runs.rglob("eval_cases.csv"))]
    return pd.concat(tables, ignore_index=True).sort_values(["run_id", "case_id"]).reset_index(drop=True)


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
def test_smoke_training_on_local_cluster_equals_local(tmp_path, monkeypatch):
    only = "synthetic/shared/np4/fold0/*-e[0-9]-*,synthetic/per-rater/np1/fold0/*-e[0-9]-*"  # two training runs
    rc_local, local = _run(tmp_path / "local", monkeypatch, "thesis", "smoke", "local", only)
    rc_dask, dask = _run(tmp_path / "dask", monkeypatch, "thesis", "smoke", "dask", only)
    assert rc_local == rc_dask == 0
    a, b = _eval_tables(local / "runs"), _eval_tables(dask / "runs")
    assert len(a) > 0 and set(a["model"]) == {"shared", "per-rater"}
    pd.testing.assert_frame_equal(a, b)
    summary = [pd.read_csv(d / "results" / "thesis" / "smoke" / "summary.csv") for d in (local, dask)]
    pd.testing.assert_frame_equal(*summary)
