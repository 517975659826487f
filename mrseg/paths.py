"""Where mrseg keeps caches, runs and results.

Defaults live under the repository root (``.cache/``, ``runs/``, ``results/``); the environment
variables ``MRSEG_CACHE``, ``MRSEG_RUNS`` and ``MRSEG_RESULTS`` move them (tests point them at a
temporary folder).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """Dataset caches: ``<cache>/datasets/<name>/``."""
    return Path(os.environ.get("MRSEG_CACHE", REPO_ROOT / ".cache"))


def runs_dir() -> Path:
    """Run directories: ``<runs>/<run_id>/`` with manifest, checkpoints and tables."""
    return Path(os.environ.get("MRSEG_RUNS", REPO_ROOT / "runs"))


def results_dir() -> Path:
    """Aggregated tables that the book reads."""
    return Path(os.environ.get("MRSEG_RESULTS", REPO_ROOT / "results"))


def dataset_dir(name: str) -> Path:
    return cache_dir() / "datasets" / name


REFERENCE_ROOT = REPO_ROOT / "reference"   # committed reference results (python -m mrseg reference export)


def reference_root() -> Path:
    """``$MRSEG_REFERENCE`` if set, else ``reference/`` at the repository root."""
    return Path(os.environ.get("MRSEG_REFERENCE") or REFERENCE_ROOT)
