"""Metric benchmark: vectorised GED + Dice_match + Dice_soft vs a per-pair reference loop.

Usage: ``python benchmarks/bench_metrics.py [--cases 1609] [--samples 100] [--reference-cases 20]``
(the same as ``python -m mrseg bench metrics --json``). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mrseg.bench.metrics import metrics_benchmark  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1609)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--reference-cases", type=int, default=20)
    args = parser.parse_args()
    result = metrics_benchmark(cases=args.cases, samples=args.samples, reference_cases=args.reference_cases)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
