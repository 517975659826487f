"""Paper-profile GPU check (called by ``benchmarks/gpu_check.sh``); prints one JSON object.

Trains ``shared`` and ``per-rater`` for ``--epochs`` epochs at the paper profile on one CUDA GPU
(on the procedural ``synthetic`` dataset at 128x128, so nothing needs to be downloaded or
extracted first), then times single training steps with ``mrseg.bench.step.step_benchmark``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--cases", type=int, default=1609, help="synthetic cases (LIDC has 1,609 slices)")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU is visible to torch (torch.cuda.is_available() is False); "
              "run this on a machine with one CUDA GPU.", file=sys.stderr)
        return 3
    sys.path.insert(0, os.getcwd())
    import pandas as pd

    from mrseg.bench.step import step_benchmark
    from mrseg.config import RunConfig
    from mrseg.train import run_training_and_evaluation

    out: dict = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "amp_bf16": args.amp,
                 "epochs": args.epochs, "dataset": f"synthetic (n_cases={args.cases}, 128x128)"}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("MRSEG_CACHE", os.path.join(tmp, "cache"))
        os.environ["MRSEG_RUNS"] = os.path.join(tmp, "runs")
        for name in ("shared", "per-rater"):
            config = RunConfig.from_profile("paper", model=name, dataset="synthetic", epochs=args.epochs,
                                            dataset_options={"n_cases": args.cases, "image_size": 128},
                                            device="cuda", amp=args.amp, select_on="last", threads=4)
            torch.cuda.reset_peak_memory_stats()
            t = time.perf_counter()
            summary = run_training_and_evaluation(config, progress=False)
            wall = time.perf_counter() - t
            history = pd.read_csv(os.path.join(os.environ["MRSEG_RUNS"], config.run_id, "history.csv"))
            key = name.replace("-", "_")
            out[f"{key}_epoch_s"] = [round(float(s), 2) for s in history["seconds"]]
            out[f"{key}_run_s"] = round(wall, 1)
            out[f"{key}_peak_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            out[f"{key}_ged"] = round(float(summary["ged"]), 4)
        steps = step_benchmark(profile="paper", repeats=args.repeats, device="cuda")
    out["step"] = steps
    out["step_ratio"] = steps["ratio"]
    out["epoch_ratio"] = round(out["per_rater_epoch_s"][-1] / out["shared_epoch_s"][-1], 3)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
