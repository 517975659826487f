"""``python -m mrseg reference certify``: retrain one run per configuration of a reference export
under today's code and write a certificate when every one is bit-identical (the rules, and how a
certificate is read, are in :mod:`mrseg.pipeline.equivalence`)."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from mrseg.bookkeeping.fingerprint import source_hash
from mrseg.bookkeeping.machine import machine_facts
from mrseg.bookkeeping.manifest import is_complete, now_iso
from mrseg.config import RunConfig
from mrseg.io import read_json, write_json
from mrseg.paths import runs_dir
from mrseg.pipeline.equivalence import (
    EQUIVALENCE_FILE,
    configuration_key,
    read_certificates,
    same_machine,
    tables_identical,
)
from mrseg.pipeline.reference import CASES_FILE, load_reference, reference_folder


def _representatives(ref: Any, here: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One run per configuration of the export: one trained on this machine if any (``local``), the
    one with the fewest training seconds among those."""
    chosen: dict[str, tuple[tuple[bool, float], dict[str, Any]]] = {}
    for run in ref.index.get("runs") or []:
        manifest = read_json(ref.folder / run["run_id"] / "manifest.json")
        if not manifest.get("config"):
            continue
        key = configuration_key(manifest["config"])
        local = same_machine(manifest.get("machine"), here)
        rank = (not local, float((manifest.get("seconds") or {}).get("train") or 0.0))
        if key not in chosen or rank < chosen[key][0]:
            chosen[key] = (rank, {"run_id": run["run_id"], "configuration": key, "manifest": manifest, "local": local})
    return {k: v for k, (_, v) in chosen.items()}


def old_sources(wanted: str, limit: int = 300) -> Path | None:
    """A folder holding the ``mrseg`` package of the newest commit (of the last ``limit`` that touched
    it) whose result-affecting sources hash to ``wanted``; ``None`` when none does or git is absent."""
    from mrseg.bookkeeping.fingerprint import RESULT_SOURCES, hash_sources
    from mrseg.paths import REPO_ROOT

    target = runs_dir() / "verify" / "sources" / wanted[:10]
    if (target / "mrseg").exists() and hash_sources(target / "mrseg", RESULT_SOURCES) == wanted:
        return target
    try:
        commits = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-list", f"--max-count={limit}", "HEAD", "--", "mrseg"],
                                 capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return None
    for commit in commits:
        with tempfile.TemporaryDirectory() as tmp:
            archive = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", commit, "mrseg"], capture_output=True)
            if archive.returncode:
                continue
            with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
                tar.extractall(tmp, filter="data")
            if hash_sources(Path(tmp) / "mrseg", RESULT_SOURCES) == wanted:
                if target.exists():
                    shutil.rmtree(target)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copytree(tmp, target)
                return target
    return None


_OLD_TRAIN = ("import sys; from mrseg.config import RunConfig; from mrseg.io import read_json; "
              "from mrseg.train import run_training_and_evaluation; "
              "run_training_and_evaluation(RunConfig.from_dict(read_json(sys.argv[1])), sys.argv[2], progress=False)")


@contextlib.contextmanager
def _runs_root(path: Path) -> Iterator[None]:
    saved = os.environ.get("MRSEG_RUNS")
    os.environ["MRSEG_RUNS"] = str(path)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("MRSEG_RUNS", None)
        else:
            os.environ["MRSEG_RUNS"] = saved


def _fresh(path: Path) -> Path:
    if path.exists() and not is_complete(path):
        shutil.rmtree(path)   # a fresh retraining, never a resumed one
    return path


def _retrain(job: tuple[str, dict[str, Any], str, str, str | None]) -> dict[str, Any]:
    """Retrain one representative under ``root`` and compare it (runs in a worker): with the committed
    table, or (``old`` sources given) with the old sources' retraining here."""
    import torch

    from mrseg.train import run_training_and_evaluation

    run_id, manifest, root, committed_dir, old = job
    config = RunConfig.from_dict(manifest["config"])
    torch.set_num_threads(config.threads)
    started = time.perf_counter()
    with _runs_root(Path(root) / "new"):
        here = _fresh(runs_dir() / config.run_id)
        run_training_and_evaluation(config, here, progress=False)
    if old is None:
        against, baseline = "committed run (this machine)", Path(committed_dir) / CASES_FILE
    else:
        against = "old sources retrained here"
        base_dir = _fresh(Path(root) / "old" / config.run_id)
        base_dir.mkdir(parents=True, exist_ok=True)
        config_file = base_dir.parent / (base_dir.name + ".config.json")
        write_json(config_file, manifest["config"])
        from mrseg.paths import cache_dir

        env = {**os.environ, "PYTHONPATH": old, "MRSEG_RUNS": str(Path(root) / "old"), "MRSEG_CACHE": str(cache_dir())}
        # run inside the old sources' folder, so that `import mrseg` finds them before this checkout
        subprocess.run([sys.executable, "-c", _OLD_TRAIN, str(config_file), str(base_dir)], env=env, check=True,
                       capture_output=True, cwd=old)
        baseline = base_dir / "eval_cases.csv"
    identical = tables_identical(pd.read_csv(baseline), pd.read_csv(here / "eval_cases.csv"))
    return {"run_id": run_id, "model": config.model, "n_present": config.n_present, "against": against,
            "identical": identical, "seconds": round(time.perf_counter() - started, 1)}


def certify_reference(plan: str = "thesis", profile: str = "reference-cpu", jobs: int = 1,
                      root: str | os.PathLike | None = None, progress: bool = True) -> dict[str, Any]:
    """Retrain one run per configuration of the export and, when all are bit-identical, append a
    certificate from the export's source hashes to today's. Returns the certificate (``"identical"``:
    whether it was written); ``ValueError`` when there is nothing to certify."""
    from tqdm.auto import tqdm

    ref = load_reference(plan, profile, root, paired=False)
    if not ref.index:
        raise ValueError(f"{reference_folder(plan, profile, root)}: no reference export (index.json) to certify")
    import torch

    current = source_hash()
    here = machine_facts(torch.get_num_threads())
    reps = _representatives(ref, here)
    old_hashes = sorted({r["manifest"].get("source_hash") for r in reps.values()} - {None, current})
    if not old_hashes:
        raise ValueError(f"{ref.folder}: every run was trained under today's sources; nothing to certify")
    sources: dict[str, str | None] = {}
    for r in reps.values():
        wanted = r["manifest"].get("source_hash")
        if not r["local"] and wanted not in sources:
            found = old_sources(wanted) if wanted else None
            if found is None:
                raise ValueError(f"{ref.folder / r['run_id']}: trained on another machine, and no commit's sources "
                                 f"hash to its source_hash {str(wanted)[:10]}; it cannot be certified here")
            sources[wanted] = str(found)
    work = runs_dir() / "verify" / "certify" / current[:10]
    jobs_list = [(r["run_id"], r["manifest"], str(work), str(ref.folder / r["run_id"]),
                  None if r["local"] else sources[r["manifest"]["source_hash"]]) for r in reps.values()]
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(tqdm(pool.map(_retrain, jobs_list), total=len(jobs_list), desc="certify", disable=not progress))
    for result, rep in zip(results, reps.values()):
        result.update(configuration=rep["configuration"], from_source_hash=rep["manifest"].get("source_hash"))
    certificate = {"certified": now_iso(), "from_source_hashes": old_hashes, "to_source_hash": current,
                   "machine": here, "configurations": results,
                   "identical": all(r["identical"] for r in results)}
    if certificate["identical"]:
        write_json(ref.folder / EQUIVALENCE_FILE,
                   {"certificates": [*read_certificates(ref.folder), certificate]})
    return certificate


__all__ = ["certify_reference", "old_sources"]
