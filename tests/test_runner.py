"""The runner on small real notebooks (tests/runner_toys.py): failure isolation, skipping complete
runs, dependency handling, resume, thread limits, aggregation and pages. The thesis's smoke plan
end to end runs in tests/test_book.py (with a strict build of its outputs); real training runs on
both executors in tests/test_dask.py."""

from __future__ import annotations

import concurrent.futures as cf
import json
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from runner_toys import write_toy_plan

from mrseg.bookkeeping.manifest import read_manifest, update_manifest
from mrseg.config import PROFILE_PRESETS, RunConfig
from mrseg.pipeline import runner
from mrseg.pipeline.executors import available_cores
from mrseg.pipeline.plan import load_plan


def _rid(model: str, fold: int = 0, **fields) -> str:
    """The run id the toy plan gives ``model`` (smoke profile, 1 epoch)."""
    return RunConfig.from_profile("smoke", model=model, fold=fold, epochs=1, **fields).run_id


BAD = _rid("per-rater", latent_repulsion=0.5)
BAD_S2 = _rid("per-rater+s2", latent_repulsion=0.5)
GOOD = _rid("per-rater")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """The toy plan run once with 2 jobs; yields the folders and the exit code."""
    root = tmp_path_factory.mktemp("toy")
    mp = pytest.MonkeyPatch()
    for name, sub in (("MRSEG_RUNS", "runs"), ("MRSEG_RESULTS", "results"), ("MRSEG_GENERATED", "generated")):
        mp.setenv(name, str(root / sub))
    plan = write_toy_plan(root / "plan")
    rc = runner.run_plan(str(plan), "smoke", jobs=2, retries=1, progress=False)
    yield {"root": root, "plan": plan, "rc": rc, "results": root / "results" / "toy" / "smoke"}
    mp.undo()


def _executions(root: Path, run_id: str) -> list[str]:
    path = root / "runs" / run_id / "executions.txt"
    return path.read_text().split() if path.exists() else []


def test_failure_is_isolated_recorded_and_retried(toy):
    assert toy["rc"] == 1
    manifest = read_manifest(toy["root"] / "runs" / BAD)
    assert manifest["status"] == "failed" and "failing on purpose" in manifest["error"]
    assert len(_executions(toy["root"], BAD)) == 2  # one retry
    runs = pd.read_csv(toy["results"] / "runs.csv").set_index("key")
    assert runs.loc[BAD, "status"] == "failed" and "failing on purpose" in runs.loc[BAD, "error"]
    assert runs.loc[BAD_S2, "status"] == "skipped" and runs.loc[BAD_S2, "error"] == f"dependency failed: {BAD}"
    others = runs.drop(index=[BAD, BAD_S2])
    assert set(others["status"]) == {"complete"} and len(others) == 11
    # the failed notebook is kept, with the error in it
    failed_nb = nbformat.read(toy["root"] / "generated" / "runs" / (BAD.replace("/", "__") + ".ipynb"), 4)
    outputs = [o for c in failed_nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any(o.get("ename") == "RuntimeError" for o in outputs)
    assert not (toy["root"] / "generated" / "runs" / (BAD_S2.replace("/", "__") + ".ipynb")).exists()


def test_notebooks_have_title_parameters_and_limited_threads(toy):
    nb = nbformat.read(toy["root"] / "generated" / "runs" / (GOOD.replace("/", "__") + ".ipynb"), 4)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# per-rater, np=4, fold 0")
    assert "study `main`, row `per_rater_s1`" in nb.cells[0].source
    injected = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    # no machine paths in the book: the injected run_dir is shown relative to the project
    assert f'run_dir = "runs/{GOOD}"' in injected.source and str(toy["root"]) not in injected.source
    config = read_manifest(toy["root"] / "runs" / GOOD)["config"]
    threads = max(1, available_cores() // 2)
    assert config["threads"] == threads
    assert _executions(toy["root"], GOOD) == [str(threads)]  # OMP_NUM_THREADS inside the kernel


def test_aggregates_and_page(toy):
    summary = pd.read_csv(toy["results"] / "summary.csv")
    assert summary[["study", "row"]].values.tolist() == [["main", "shared_s1"], ["main", "dpersona_s1s2"],
                                                         ["main", "per_rater_s1"]]
    per_rater = summary.set_index("row").loc["per_rater_s1"]
    # toy GED = 0.2 - 0.02 + 0.01 * fold + 0.002 * i, i = 0..4: fold means 0.184, 0.194
    assert per_rater["n_folds"] == 2 and per_rater["ged_mean"] == pytest.approx(0.189)
    assert per_rater["ged_sd"] == pytest.approx(0.005)
    per_fold = pd.read_csv(toy["results"] / "per_fold.csv")
    assert len(per_fold) == 6 and set(per_fold["n_cases"]) == {5}
    alignment = pd.read_csv(toy["results"] / "alignment.csv")
    assert len(alignment) == 4 and alignment.set_index("model").loc["shared", "latent_mean"].tolist() == [0.35, 0.35]
    context = json.loads((toy["results"] / "context.json").read_text())
    assert context["epochs"] == {"main": 1, "broken": 1} and context["M"] == [PROFILE_PRESETS["smoke"]["eval_samples"]]
    assert context["semi_synthetic"] is True and context["datasets"] == ["synthetic"]
    page = nbformat.read(toy["root"] / "generated" / "pages" / "summary_page.ipynb", 4)
    shown = [o for c in page.cells if c.cell_type == "code" for o in c.get("outputs", [])
             if o.get("output_type") == "execute_result"]
    assert "per_rater_s1" in shown[-1]["data"]["text/plain"]


def test_rerun_skips_complete_resumes_interrupted_and_retries_failed(toy):
    interrupted = _rid("shared", fold=1)
    update_manifest(toy["root"] / "runs" / interrupted, status="running")  # a killed run
    rc = runner.run_plan(str(toy["plan"]), "smoke", jobs=2, retries=0, progress=False)
    assert rc == 1
    assert len(_executions(toy["root"], interrupted)) == 2
    assert len(_executions(toy["root"], GOOD)) == 1
    assert len(_executions(toy["root"], BAD)) == 3  # retried again (no extra retry now)
    runs = pd.read_csv(toy["results"] / "runs.csv").set_index("key")
    assert bool(runs.loc[GOOD, "cached"]) and not bool(runs.loc[interrupted, "cached"])
    assert runs.loc[GOOD, "seconds"] == 1.5  # a cached run keeps its own timing (toy manifest: 1.0 + 0.5)
    assert runs.loc[interrupted, "status"] == "complete"


def test_only_selects_items_and_missing_pages_folder_is_fine(tmp_path, monkeypatch):
    for name, sub in (("MRSEG_RUNS", "runs"), ("MRSEG_RESULTS", "results"), ("MRSEG_GENERATED", "generated")):
        monkeypatch.setenv(name, str(tmp_path / sub))
    plan = write_toy_plan(tmp_path / "plan", pages=False)
    rc = runner.run_plan(str(plan), "smoke", jobs=1, only="*shared+s2/np4/fold0/*", progress=False)
    assert rc == 0
    runs = pd.read_csv(tmp_path / "results" / "toy" / "smoke" / "runs.csv").set_index("key")
    done = set(runs.index[runs["status"] == "complete"])
    assert done == {_rid("shared+s2"), _rid("shared")}
    assert set(runs["status"]) == {"complete", "pending"}


class _ThreadExecutor:
    """In-process executor so a test can replace execute_item."""

    threads_per_task = 1

    def __init__(self):
        self.pool = cf.ThreadPoolExecutor(2)

    def submit(self, fn, *args):
        return self.pool.submit(lambda: runner.execute_item(*args))

    def wait_first(self, futures):
        return cf.wait(list(futures), return_when=cf.FIRST_COMPLETED)[0]

    def close(self):
        self.pool.shutdown()


def test_lost_tasks_are_retried_then_recorded(tmp_path, monkeypatch):
    monkeypatch.setenv("MRSEG_RUNS", str(tmp_path / "runs"))
    plan = write_toy_plan(tmp_path / "plan", pages=False)
    items = [i for i in load_plan(plan, "smoke") if i.kind == "train" and "fold0" in i.key]
    calls: dict[str, int] = {}

    def flaky(item, threads, cwd=None):
        calls[item["key"]] = calls.get(item["key"], 0) + 1
        if "per-rater" in item["key"] or calls[item["key"]] == 1:
            raise OSError("worker died")  # as a crashed worker process surfaces
        return {"key": item["key"], "status": "complete", "seconds": 0.0, "error": ""}

    monkeypatch.setattr(runner, "execute_item", flaky)
    executor = _ThreadExecutor()
    records = runner.execute_items(items, executor, retries=2, progress=False)
    executor.close()
    assert records[_rid("shared")]["status"] == "complete"
    assert records[_rid("shared")]["attempts"] == 2
    assert records[GOOD]["status"] == "failed" and records[GOOD]["attempts"] == 3
    assert records[GOOD]["error"] == "task lost: OSError: worker died"
    assert read_manifest(tmp_path / "runs" / GOOD)["status"] == "failed"
    assert records[BAD_S2]["status"] == "skipped"
    assert set(records) == {i.key for i in items}  # nothing dropped


def test_a_kernel_that_fails_to_start_is_retried_but_a_notebook_error_is_not(monkeypatch):
    import papermill

    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("Kernel died before replying to kernel_info")

    monkeypatch.setattr(papermill, "execute_notebook", flaky)
    monkeypatch.setattr(runner.time, "sleep", lambda s: None)
    runner._execute_notebook(None, "out.ipynb", {}, ".")
    assert len(calls) == 2

    def broken(*args, **kwargs):
        calls.append(1)
        raise ValueError("a cell failed")

    calls.clear()
    monkeypatch.setattr(papermill, "execute_notebook", broken)
    with pytest.raises(ValueError, match="a cell failed"):
        runner._execute_notebook(None, "out.ipynb", {}, ".")
    assert len(calls) == 1
