"""Test isolation: caches, runs, results and reference exports go to a per-session temporary folder, and pylidc's
config file never lands in the user's home."""

from __future__ import annotations

import os
from pathlib import Path

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


# ---- test tiers: `make test-fast` deselects `slow` and `book` -------------------------------------
# A test is `book` when it uses the smoke site (a plan run plus a strict book build); `slow` when it,
# or a fixture it uses, trains a model or executes notebooks (found in the source, so a new training
# test is marked without anyone remembering to).
TRAINING_CALLS = ("run_training_and_evaluation", "run_plan", "train_stage", "kl_curve(", "certify_reference",
                  "verify_reference", "papermill", "execute_item", "write_kl_curve", "run_alignment", "run_latent",
                  "main([\"run\"", "main([\"train\"", "_run_cli(\"run\"", "subprocess")


def _source(obj) -> str:
    import inspect

    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return ""


def _trains(item) -> bool:
    sources = [_source(getattr(item, "function", None))]
    for defs in getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {}).values():
        sources.extend(_source(d.func) for d in defs if not str(getattr(d.func, "__module__", "")).startswith("_pytest"))
    return any(call in src for src in sources for call in TRAINING_CALLS)


# Measured durations (setup + call + teardown, seconds on 2 idle cores) of the tests above
# SLOW_SECONDS are `slow` too: `make test-durations` runs the whole suite and rewrites the file.
DURATIONS_FILE = Path(__file__).with_name("durations.json")
SLOW_SECONDS = 1.0


def _measured_slow() -> set[str]:
    import json

    if not DURATIONS_FILE.exists():
        return set()
    return {node for node, seconds in json.loads(DURATIONS_FILE.read_text()).items() if seconds > SLOW_SECONDS}


def pytest_collection_modifyitems(config, items):
    measured = _measured_slow()
    for item in items:
        if "smoke_site" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.book)
        if _trains(item) or item.nodeid in measured:
            item.add_marker(pytest.mark.slow)


_DURATIONS: dict[str, float] = {}


def pytest_runtest_logreport(report):
    if os.environ.get("MRSEG_RECORD_DURATIONS"):
        _DURATIONS[report.nodeid] = _DURATIONS.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("MRSEG_RECORD_DURATIONS") and _DURATIONS and exitstatus == 0:
        import json

        DURATIONS_FILE.write_text(json.dumps({k: round(v, 2) for k, v in sorted(_DURATIONS.items())}, indent=0) + "\n")


from smoke_site_fixture import smoke_site  # noqa: E402,F401  (the session's smoke plan run and book build)
