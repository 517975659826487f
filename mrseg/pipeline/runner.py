"""Execute a plan: every pending item as a papermill notebook, then aggregate, then the book pages.

``run_plan("thesis", "demo", jobs=2)`` (``python -m mrseg run``):

1. expands the plan (:func:`mrseg.pipeline.plan.load_plan`) and selects items (``only`` globs plus their
   dependencies);
2. skips what is complete (training runs by manifest, diagnostics by their status file and
   outputs), and runs the rest on the executor (:mod:`mrseg.pipeline.executors`) in dependency order;
   each item is one papermill execution of its jupytext template into ``book/generated/``;
3. isolates failures: a failed item is retried ``retries`` times, then recorded (training runs
   in their manifest with the error) and its dependants are recorded as skipped; the others go on;
4. aggregates the run tables (:mod:`mrseg.pipeline.aggregate`) into ``results_dir()/<plan>/<profile>/``;
5. executes the page notebooks (``notebooks/pages/*.py``) and writes ``runs.csv`` with every
   item's status.

Returns 0 when everything is complete, 1 otherwise.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mrseg.bookkeeping.integrity import record_tables
from mrseg.bookkeeping.lock import RunLock, held_by_other
from mrseg.bookkeeping.machine import machine_facts
from mrseg.bookkeeping.manifest import is_complete, now_iso, read_manifest, update_manifest
from mrseg.io import write_json
from mrseg.paths import REPO_ROOT, cache_dir, results_dir, runs_dir
from mrseg.pipeline.aggregate import aggregate_plan, write_runs_table
from mrseg.pipeline.executors import available_cores, make_executor
from mrseg.pipeline.notebook_hygiene import scrub_notebook
from mrseg.pipeline.plan import DIAGNOSTIC_OUTPUTS, PlanItem, load_plan, read_plan, select
from mrseg.pipeline.reference_scoring import add_reference_to_scorecard
from mrseg.pipeline.status import diagnostic_source_hash, item_complete, status_path, train_corrupt, train_stale

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "MRSEG_THREADS")
KERNEL = "python3"
# The kernel's own log at ERROR: its start-up warning that the local kernel talks over TCP without
# encryption otherwise fills the log of every run (cell outputs and errors are unaffected).
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]


def _error_text(err: BaseException) -> str:
    """A short, readable error: papermill's cell error name and value, else the exception."""
    ename, evalue = getattr(err, "ename", None), getattr(err, "evalue", None)
    if ename:
        cell = getattr(err, "exec_count", None)
        return f"{ename}: {evalue}" + (f" (cell {cell})" if cell is not None else "")
    return f"{type(err).__name__}: {err}"


def _title_cell(item: dict[str, Any]):
    import nbformat

    lines = [f"# {item['title']}", ""]
    if item["kind"] != "page":
        lines.append(f"Run `{item['run_id']}` ({item['kind']}).")
    for m in item["memberships"]:
        lines.append(f"- study `{m['study']}`, row `{m['row']}`, n_present {m['n_present']}")
    if item["kind"] == "train" and not item["memberships"]:
        lines.append("- Stage 1 run that a Stage 2 run of the plan starts from.")
    cell = nbformat.v4.new_markdown_cell("\n".join(lines))
    cell.metadata["tags"] = ["mrseg-title"]
    return cell


def _threads_on_worker() -> int:
    """Threads for a task on a remote Dask worker: its cores shared by its worker threads."""
    if os.environ.get("MRSEG_THREADS_PER_JOB"):
        return max(1, int(os.environ["MRSEG_THREADS_PER_JOB"]))
    try:
        from distributed import get_worker

        return max(1, available_cores() // max(1, get_worker().state.nthreads))
    except (ImportError, ValueError, AttributeError):
        return 1


# A kernel that dies before answering its first request ran no cell: typically two kernels started
# at once picked the same free TCP port. Such a start is retried; it is not the notebook failing.
KERNEL_START_ATTEMPTS = 3


def _is_kernel_start_failure(err: BaseException) -> bool:
    return isinstance(err, RuntimeError) and "Kernel died before replying to kernel_info" in str(err)


def _execute_notebook(notebook: Any, output: str, parameters: dict[str, Any], cwd: str) -> None:
    """papermill's execution of ``notebook`` into ``output``, retrying a kernel that failed to start."""
    import papermill

    for attempt in range(1, KERNEL_START_ATTEMPTS + 1):
        try:
            papermill.execute_notebook(notebook, output, parameters=parameters, kernel_name=KERNEL,
                                       progress_bar=False, cwd=cwd, start_timeout=180,
                                       extra_arguments=KERNEL_ARGUMENTS)
            return
        except Exception as err:  # noqa: BLE001 - re-raised unless it is a failed kernel start
            if attempt == KERNEL_START_ATTEMPTS or not _is_kernel_start_failure(err):
                raise
            time.sleep(0.5 * attempt)


def execute_item(item: dict[str, Any], threads: int | None, cwd: str | None = None) -> dict[str, Any]:
    """Execute one plan item (``PlanItem.to_dict()``) with papermill; never raises for a notebook error.

    ``item["env"]`` (optional) holds the driver's ``MRSEG_CACHE`` / ``MRSEG_RUNS`` /
    ``MRSEG_RESULTS`` so a remote worker reads and writes the same folders (a shared filesystem).
    ``threads``: threads for the kernel (``OMP_NUM_THREADS`` etc. and the run config's
    ``threads``); None sizes it from the Dask worker it runs on. Returns ``{key, status, seconds,
    error, notebook}`` with status ``complete`` or ``failed`` (``cached`` True when the item was
    already complete: re-submission is a no-op).
    """

    key, kind = item["key"], item["kind"]
    cached = {"key": key, "status": "complete", "seconds": 0.0, "error": "", "cached": True, "notebook": item["output"]}
    if item_complete(item, keep_stale=bool(item.get("keep_stale"))):
        return cached
    if kind in DIAGNOSTIC_OUTPUTS:   # one process at a time per diagnostic of a run, as for training
        lock_dir = Path(item["parameters"]["run_dir"]) / f".{kind}.lock"
        lock_dir.mkdir(parents=True, exist_ok=True)
        with RunLock(lock_dir):
            if item_complete(item, keep_stale=bool(item.get("keep_stale"))):
                return cached   # made by the process we waited for
            return _execute_notebook_item(item, threads, cwd)
    return _execute_notebook_item(item, threads, cwd)


def _execute_notebook_item(item: dict[str, Any], threads: int | None, cwd: str | None) -> dict[str, Any]:
    """The body of :func:`execute_item` once the item is known to need executing."""
    import jupytext

    key, kind = item["key"], item["kind"]
    threads = threads or _threads_on_worker()
    parameters = dict(item["parameters"])
    if kind == "train":
        config = json.loads(parameters["config_json"])
        config["threads"] = threads
        parameters["config_json"] = json.dumps(config, sort_keys=True)
        # The kernel's training run records its status under the run's lock; this writes only the
        # config and the notebook's path, and only when no other process is training the run.
        if not held_by_other(parameters["run_dir"]):
            problem = train_corrupt(item) if is_complete(parameters["run_dir"]) else ""
            if problem:   # not complete any more: training resumes from its checkpoint and re-evaluates
                update_manifest(parameters["run_dir"], status="corrupt", error=problem)
            update_manifest(parameters["run_dir"], run_id=item["run_id"], config=config, notebook=item["output"],
                            machine=machine_facts(threads))
    elif kind == "page":
        parameters.setdefault("results_dir", str(results_dir()))

    paths_env = item.get("env") or {}
    saved = {name: os.environ.get(name) for name in (*THREAD_VARIABLES, "MPLBACKEND", "PYTHONPATH", *paths_env)}
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    os.environ.update(paths_env)  # the driver's cache / runs / results folders, also on remote workers
    # The kernel must use its inline backend so figures are kept in the executed notebook.
    os.environ.pop("MPLBACKEND", None)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), saved["PYTHONPATH"]) if p)
    started, error = time.time(), ""
    try:
        if not Path(item["template"]).is_file():
            raise FileNotFoundError(f"template notebook {item['template']} not found")
        Path(item["output"]).parent.mkdir(parents=True, exist_ok=True)
        notebook = jupytext.read(item["template"])
        notebook.cells.insert(0, _title_cell(item))
        notebook.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python 3", "language": "python"}
        _execute_notebook(notebook, item["output"], parameters, cwd or str(REPO_ROOT))

        scrub_notebook(item["output"])  # no machine paths or progress bars in the book; code folded
    except Exception as err:  # noqa: BLE001 - any failure of one item is recorded, never raised
        error = _error_text(err)
        if not getattr(err, "ename", None):
            error += "\n" + "".join(traceback.format_exception(err)[-3:])
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    seconds = time.time() - started

    if not error:
        if kind == "train" and not is_complete(parameters["run_dir"]):
            error = "the notebook finished but the run's manifest is not complete"
        elif kind in DIAGNOSTIC_OUTPUTS:
            missing = [n for n in DIAGNOSTIC_OUTPUTS[kind] if not (Path(parameters["run_dir"]) / n).exists()]
            if missing:
                error = f"the notebook finished without writing {', '.join(missing)}"
    status = "failed" if error else "complete"
    if kind == "train" and not error and not held_by_other(parameters["run_dir"]):
        update_manifest(parameters["run_dir"], tables=record_tables(parameters["run_dir"]))
    if kind == "train" and error:
        if not held_by_other(parameters["run_dir"]):
            update_manifest(parameters["run_dir"], status="failed", error=error, failed=now_iso())
    elif kind in DIAGNOSTIC_OUTPUTS:
        write_json(status_path(item), {"status": status, "error": error, "seconds": seconds,
                                       "finished": now_iso(), "notebook": item["output"],
                                       "run_fingerprint": read_manifest(parameters["run_dir"]).get("code_fingerprint"),
                                       "diagnostic_source": diagnostic_source_hash(kind)})
    return {"key": key, "status": status, "seconds": seconds, "error": error, "cached": False,
            "notebook": item["output"]}


# --------------------------------------------------------------------------- the scheduling loop

def execute_items(items: list[PlanItem], executor, retries: int = 1, progress: bool = True,
                  desc: str = "runs", keep_stale: bool = False) -> dict[str, dict[str, Any]]:
    """Run ``items`` on ``executor`` respecting ``depends_on``; return a record per key.

    Items already complete are recorded as such without being submitted. A failed attempt (a
    notebook error, or a lost task) is retried up to ``retries`` times; then the item is
    ``failed`` and everything depending on it is ``skipped`` with the reason. Stale training
    runs (:func:`train_stale`) are retrained, or with ``keep_stale`` kept and recorded as stale.
    """
    records: dict[str, dict[str, Any]] = {}
    by_key = {item.key: item for item in items}
    dependants: dict[str, list[str]] = {item.key: [] for item in items}
    for item in items:
        for dep in item.depends_on:
            if dep in dependants:
                dependants[dep].append(item.key)
    bar = tqdm(total=len(items), desc=desc, unit="item", disable=not progress)

    waiting: list[str] = []
    for item in items:
        if item.kind != "page" and item_complete(item, keep_stale):
            records[item.key] = {"status": "complete", "seconds": 0.0, "error": "", "cached": True, "attempts": 0}
            if item.kind == "train" and train_stale(item):
                records[item.key]["stale"] = train_stale(item)
            bar.update(1)
        else:
            waiting.append(item.key)

    def skip_dependants(key: str) -> None:
        for child in dependants.get(key, []):
            if child in waiting:
                waiting.remove(child)
                records[child] = {"status": "skipped", "seconds": None, "attempts": 0, "cached": False,
                                  "error": f"dependency failed: {key}"}
                bar.update(1)
                skip_dependants(child)

    def ready(key: str) -> bool:
        return all(records.get(dep, {}).get("status") == "complete" or dep not in by_key
                   for dep in by_key[key].depends_on)

    attempts: dict[str, int] = {}
    running: dict[Any, str] = {}
    threads = getattr(executor, "threads_per_task", None)
    paths_env = {"MRSEG_CACHE": str(cache_dir()), "MRSEG_RUNS": str(runs_dir()), "MRSEG_RESULTS": str(results_dir())}
    try:
        while waiting or running:
            for key in [k for k in waiting if ready(k)]:
                waiting.remove(key)
                attempts[key] = attempts.get(key, 0) + 1
                payload = {**by_key[key].to_dict(), "env": paths_env, "keep_stale": keep_stale}
                running[executor.submit(execute_item, payload, threads)] = key
            if not running:
                break
            for future in executor.wait_first(running):
                key = running.pop(future)
                try:
                    result = future.result()
                except Exception as err:  # noqa: BLE001 - a lost task (crashed worker) counts as a failure
                    result = {"key": key, "status": "failed", "seconds": None,
                              "error": f"task lost: {_error_text(err)}"}
                if result["status"] != "complete" and attempts[key] <= retries:
                    bar.write(f"retrying {key} (attempt {attempts[key] + 1}): {result['error'].splitlines()[0]}")
                    waiting.insert(0, key)
                    continue
                records[key] = {**result, "attempts": attempts[key]}
                bar.update(1)
                if result["status"] != "complete":
                    bar.write(f"FAILED {key}: {result['error'].splitlines()[0] if result['error'] else ''}")
                    if by_key[key].kind == "train":
                        # A lost task never reached its own error handling: record it in the manifest.
                        if (read_manifest(by_key[key].run_dir).get("status") != "failed"
                                and not held_by_other(by_key[key].run_dir)):
                            update_manifest(by_key[key].run_dir, status="failed", error=result["error"])
                    skip_dependants(key)
        for key in waiting:  # only reachable if a dependency was never in the plan
            records[key] = {"status": "skipped", "seconds": None, "error": "dependency not run", "attempts": 0}
    finally:
        bar.close()
    return records


def prepare_datasets(items: list[PlanItem], progress: bool = True) -> None:
    """Build (or open) every dataset the pending training runs need, once, before dispatch, so
    parallel jobs never build the same cache at the same time. A dataset that cannot be built is
    reported here and its runs fail with the same error, recorded like any other failure."""
    from mrseg.data.registry import load_dataset

    seen = set()
    for item in items:
        if item.kind != "train" or item_complete(item):
            continue
        name, options = item.config["dataset"], item.config.get("dataset_options") or {}
        key = (name, json.dumps(options, sort_keys=True))
        if key in seen:
            continue
        seen.add(key)
        try:
            load_dataset(name, progress=progress, **options)
        except Exception as err:  # noqa: BLE001 - reported, then recorded per run
            print(f"dataset {name} could not be prepared: {_error_text(err)}")


def _results_dir_for(plan_name: str, profile: str) -> Path:
    return results_dir() / plan_name / profile


def run_plan(plan: str = "thesis", profile: str = "demo", jobs: int = 2, executor: str = "local",
             scheduler: str | None = None, only: str | None = None, retries: int = 1, device: str = "cpu",
             progress: bool = True, keep_stale: bool = False) -> int:
    """Execute the pending items of ``plan`` for ``profile``, aggregate, run the pages.

    ``only``: comma-separated globs over item keys (run ids; ``<run_id>#alignment``;
    ``page/<name>``); the selected items' dependencies are included. Pages run when ``only`` is
    not given or matches them; ``only`` matching no item is an error. Stale runs (code or config
    changed since they ran) are retrained unless ``keep_stale`` (then the book marks them stale).
    Returns 0 if every selected item completed, else 1.
    """

    started = time.time()
    spec = read_plan(plan)
    items = load_plan(plan, profile, config_overrides={"device": device})
    work = select([i for i in items if i.kind != "page"], only)
    pages = [i for i in items if i.kind == "page" and (not only or select([i], only))]
    if only and not work and not pages:
        raise ValueError(f"--only {only!r} matches no item of plan {spec['name']!r} (profile {profile!r}); "
                         "see: python -m mrseg plan show")
    out_dir = _results_dir_for(spec["name"], profile)
    for page in pages:
        page.parameters["results_dir"] = str(out_dir)

    prepare_datasets(work, progress=progress)
    pool = make_executor(executor, jobs, scheduler)
    try:
        records = execute_items(work, pool, retries=retries, progress=progress, desc=f"{spec['name']}/{profile}",
                                keep_stale=keep_stale)
        context = {"executor": executor, "jobs": jobs, "device": device, "run_seconds": time.time() - started,
                   "keep_stale": keep_stale}
        aggregate_plan(items, records, plan=plan, profile=profile, out_dir=out_dir, extra_context=context)
        add_reference_to_scorecard(out_dir, plan, profile)   # the committed reference's verdicts, if any
        if pages:
            records.update(execute_items(pages, pool, retries=0, progress=progress, desc="pages"))
    finally:
        pool.close()
    write_runs_table(items, records, out_dir / "runs.csv")
    selected = {i.key for i in work} | {i.key for i in pages}
    bad = sorted(k for k in selected if records.get(k, {}).get("status") != "complete")
    elapsed = time.time() - started
    summary = f"{len(selected) - len(bad)}/{len(selected)} items complete in {elapsed:.0f} s; tables in {out_dir}"
    print(summary if not bad else f"{summary}\nnot complete: " + ", ".join(bad))
    return 1 if bad else 0
