"""The run manifest: one JSON file per run directory holding config, status, timings and errors.

Status is one of ``pending``, ``running``, ``complete``, ``failed``. A run is skipped by the
runner only when its manifest says ``complete`` and its ``code_fingerprint`` (with its parts
``source_hash``, ``config_hash``, ``data_signature``: :mod:`mrseg.bookkeeping.fingerprint`) matches what the
run's config gives under today's code; otherwise it is stale and retrained. ``train_starts``
counts how often training started in this folder. Anything not complete is (re)started and
resumes from its last checkpoint.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

from mrseg import __version__
from mrseg.io import read_json, write_json
from mrseg.paths import REPO_ROOT

MANIFEST = "manifest.json"
STATUSES = ("pending", "running", "complete", "failed")


@lru_cache(maxsize=1)
def code_version() -> str:
    """``mrseg.__version__`` plus the git commit (and ``-dirty``) when run from a checkout."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return f"{__version__}+g{sha}{'-dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return __version__


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def read_manifest(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The manifest of ``run_dir``, or ``{}`` if there is none yet."""
    path = Path(run_dir) / MANIFEST
    return read_json(path) if path.exists() else {}


def update_manifest(run_dir: str | os.PathLike, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into the manifest (atomically) and return the new manifest."""
    if "status" in fields and fields["status"] not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {fields['status']!r}")
    manifest = {**read_manifest(run_dir), **fields, "updated": now_iso()}
    manifest.setdefault("code_version", code_version())
    path = Path(run_dir) / MANIFEST
    try:
        write_json(path, manifest)
    except OSError:
        if fields.get("status") != "failed" or not path.exists():
            raise
        _overwrite_in_place(path, manifest)
    return manifest


def _overwrite_in_place(path: Path, manifest: dict[str, Any]) -> None:
    """Record a failure on a full disk: the atomic write needs a second file, which a full disk
    refuses; rewriting the manifest's own bytes reuses its blocks. Used only for ``failed``."""
    text = json.dumps(manifest, indent=2, default=str) + "\n"
    with open(path, "r+") as fh:
        fh.truncate(0)
        fh.write(text)


def is_complete(run_dir: str | os.PathLike) -> bool:
    return read_manifest(run_dir).get("status") == "complete"
