"""Test isolation: caches, runs, results and reference exports go to a per-session temporary folder, and pylidc's
config file never lands in the user's home."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_paths(tmp_path_factory):
    root = tmp_path_factory.mktemp("mrseg")
    saved = {k: os.environ.get(k) for k in ("MRSEG_CACHE", "MRSEG_RUNS", "MRSEG_RESULTS", "MRSEG_REFERENCE")}
    os.environ["MRSEG_CACHE"] = str(root / "cache")
    os.environ["MRSEG_RUNS"] = str(root / "runs")
    os.environ["MRSEG_RESULTS"] = str(root / "results")
    os.environ["MRSEG_REFERENCE"] = str(root / "reference")   # the committed reference/ is read only where a test says so
    yield root
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def smoke_runs(_isolated_paths):
    """One smoke-trained ``shared`` and ``per-rater`` run (1 epoch, 16 cases): ``{model: run_dir}``."""
    from mrseg.config import RunConfig
    from mrseg.paths import runs_dir
    from mrseg.train import run_training_and_evaluation

    out = {}
    for model in ("shared", "per-rater"):
        config = RunConfig.from_profile("smoke", model=model, epochs=1, max_train_cases=16, max_eval_cases=8)
        run_training_and_evaluation(config, progress=False)
        out[model] = runs_dir() / config.run_id
    return out
