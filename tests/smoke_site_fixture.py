"""The smoke site: the thesis plan's smoke profile run end to end (plus one row that fails on purpose)
with ``python -m mrseg run``, then a strict ``jupyter-book build`` of a copy of the book. Session-wide:
the book tests read its pages, the Dask test compares its own runs with the ones trained here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mrseg.paths import REPO_ROOT

FAILING_ROW = "broken_on_purpose"


def _failing_plan(tmp: Path) -> Path:
    """The thesis plan plus one user row whose data folder does not exist (the plan is valid; the run
    fails at run time)."""
    spec = yaml.safe_load((REPO_ROOT / "mrseg" / "plans" / "thesis.yaml").read_text())
    spec["name"] = "thesis"
    spec["studies"]["user"] = {"title": "A run that fails on purpose", "epochs": "full", "folds": [0],
                               "dataset_options": {"path": str(tmp / "no-such-folder")},
                               "rows": {FAILING_ROW: {"model": "per-rater", "dataset": "folder"}}}
    path = tmp / "thesis.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def smoke_site(tmp_path_factory):
    """Run the smoke plan (plus one failing row) and build the book from a copy; yields paths."""
    if not (REPO_ROOT / "notebooks" / "train.py").exists():
        pytest.skip("notebooks/train.py is missing: the smoke plan cannot run")
    tmp = tmp_path_factory.mktemp("book")
    book = tmp / "book"
    shutil.copytree(REPO_ROOT / "book", book, symlinks=False,
                    ignore=shutil.ignore_patterns("_build", "generated", "_vendor"))
    vendor = REPO_ROOT / "book" / "_vendor"
    if vendor.exists():
        os.symlink(vendor, book / "_vendor")
    else:  # html_extra_path must exist; the vendored MathJax comes from `make book/_vendor/mathjax/tex-chtml.js`
        (book / "_vendor").mkdir()
    env = dict(os.environ, MRSEG_GENERATED=str(book / "generated"), PYTHONPATH=str(REPO_ROOT))
    env.pop("MPLBACKEND", None)
    started = time.time()
    # what `make plan` records before the run: here only the attribute study (the attributes page reads it)
    skips = [arg for name in ("metrics", "step", "step_demo", "roofline", "dataset") for arg in ("--skip", name)]
    record = subprocess.run([sys.executable, "-m", "mrseg", "record", "--plan", "thesis", "--profile", "smoke", *skips],
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert record.returncode == 0, record.stderr[-2000:]
    run = subprocess.run([sys.executable, "-m", "mrseg", "run", "--plan", str(_failing_plan(tmp)), "--profile", "smoke",
                          "--jobs", "2", "--retries", "0"], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                         timeout=900)
    run_seconds = time.time() - started
    started = time.time()
    build = subprocess.run([str(Path(sys.executable).parent / "jupyter-book"), "build", str(book), "-W", "--keep-going"],
                           cwd=tmp, env=env, capture_output=True, text=True, timeout=600)
    build_seconds = time.time() - started
    results = Path(os.environ["MRSEG_RESULTS"]) / "thesis" / "smoke"
    yield {"run": run, "build": build, "html": book / "_build" / "html", "results": results, "book": book,
           "run_seconds": run_seconds, "build_seconds": build_seconds, "tmp": tmp}
