"""Train-step benchmark, shared vs per-rater posteriors (same as ``python -m mrseg bench step``).

Usage: python benchmarks/bench_step.py [--profile paper] [--repeats 3] [--device cpu] [--threads N]
Prints one JSON object: shared_s, per_rater_s, ratio (per-rater / shared), naive_* for the
straightforward implementation (N separately built encoders, concat + 1x1-conv decodes), the
other per-rater implementation (loop or vmapped), CPU-second columns and max_abs_loss_diff.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mrseg.bench.step import step_benchmark  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="paper")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    print(json.dumps(step_benchmark(args.profile, args.repeats, args.device, threads=args.threads), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
