"""Where each plan item stands on disk: complete, stale, running, failed or missing.

Read by the runner (what to execute), ``plan status`` and the aggregation (which runs count).
Training items are judged by their manifest and code fingerprint, diagnostics by their status file
(``<run_dir>/runner_<kind>.json``) and outputs; pages are never complete.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from mrseg.bookkeeping.fingerprint import PACKAGE, hash_sources, source_hash
from mrseg.bookkeeping.integrity import run_problem
from mrseg.bookkeeping.lock import held_by_other
from mrseg.bookkeeping.manifest import is_complete, read_manifest
from mrseg.io import read_json
from mrseg.paths import reference_root
from mrseg.pipeline.equivalence import certified_stale_reason, read_certificates
from mrseg.pipeline.plan import DIAGNOSTIC_OUTPUTS, PlanItem, load_plan


def status_path(item: dict[str, Any] | PlanItem) -> Path | None:
    """Status file of a diagnostics item (``<run_dir>/runner_<kind>.json``); None for others."""
    data = item.to_dict() if isinstance(item, PlanItem) else item
    if data["kind"] in DIAGNOSTIC_OUTPUTS:
        return Path(data["parameters"]["run_dir"]) / f"runner_{data['kind']}.json"
    return None


# The code a diagnostics item's numbers depend on beyond the run it reads: its module (and what it
# imports from the package's result sources is in the run's own fingerprint) and its notebook.
DIAGNOSTIC_SOURCES = {"alignment": ("diagnostics/alignment.py",), "latent": ("diagnostics/latent.py", "diagnostics/alignment.py")}


def diagnostic_source_hash(kind: str) -> str:
    """SHA-1 of the package modules of :data:`DIAGNOSTIC_SOURCES` for ``kind`` (a diagnostics item
    made by other code is stale)."""
    return hash_sources(PACKAGE, DIAGNOSTIC_SOURCES.get(kind, ()))


@lru_cache(maxsize=16)
def _certificates(profile: str) -> tuple[dict[str, Any], ...]:
    """Every certificate of ``profile``'s reference exports (any plan): a certificate names the
    configurations and source hashes it covers, so reading them all together is safe."""
    root = reference_root()
    folders = sorted(root.glob(f"*/{profile}")) if root.is_dir() else []
    return tuple(cert for folder in folders for cert in read_certificates(folder))


def run_stale(manifest: dict[str, Any], config: dict[str, Any]) -> str:
    """:func:`~mrseg.bookkeeping.fingerprint.stale_reason`, except that a run whose only change is a
    code edit certified not to change its configuration's numbers (``python -m mrseg reference
    certify``, :mod:`mrseg.pipeline.equivalence`) is current, as it is in the reference export."""
    return certified_stale_reason(manifest, config, list(_certificates(str(config.get("profile")))))


def train_stale(item: dict[str, Any] | PlanItem) -> str:
    """Why a training item's finished run does not match its config and today's code ("" if it does,
    or if the code change is certified: :func:`run_stale`)."""
    data = item.to_dict() if isinstance(item, PlanItem) else item
    return run_stale(read_manifest(data["parameters"]["run_dir"]), data["config"])


def train_corrupt(item: dict[str, Any] | PlanItem) -> str:
    """Why a training item's complete run has a table that differs from the one recorded when it
    completed (:mod:`mrseg.bookkeeping.integrity`); "" when none does or none was recorded."""
    data = item.to_dict() if isinstance(item, PlanItem) else item
    run_dir = data["parameters"]["run_dir"]
    return run_problem(run_dir, read_manifest(run_dir))


def item_complete(item: dict[str, Any] | PlanItem, keep_stale: bool = False) -> bool:
    """Training: manifest says complete under today's code fingerprint (any fingerprint with
    ``keep_stale``) and its tables are the ones recorded when it completed. Diagnostics: status file
    says complete, outputs exist, and it was made from the training run as it is now. Pages are
    never complete (they are re-executed after every aggregation)."""
    data = item.to_dict() if isinstance(item, PlanItem) else item
    if data["kind"] == "train":
        return (is_complete(data["parameters"]["run_dir"]) and (keep_stale or not train_stale(data))
                and not train_corrupt(data))
    path = status_path(data)
    if path is None or not path.exists():
        return False
    run_dir = Path(data["parameters"]["run_dir"])
    status = read_json(path)
    manifest = read_manifest(run_dir)
    made_from = manifest.get("code_fingerprint")
    # made from the run as it is now, the run itself current (a stale run is retrained first, and
    # its diagnostics with it), and by today's diagnostics code
    return (status.get("status") == "complete"
            and all((run_dir / name).exists() for name in DIAGNOSTIC_OUTPUTS[data["kind"]])
            and (keep_stale or (status.get("run_fingerprint", made_from) == made_from
                                and not run_stale(manifest, data["config"])
                                and status.get("diagnostic_source", diagnostic_source_hash(data["kind"]))
                                == diagnostic_source_hash(data["kind"]))))


def item_state(item: PlanItem) -> str:
    """``complete``, ``stale``, ``corrupt`` (a table differs from the one recorded when the run
    completed), ``running`` (a live process holds the run's lock), ``failed`` or ``missing`` (never
    run, or interrupted) for a train or diagnostics item."""
    run_dir = item.run_dir
    if item.kind == "train":
        status = read_manifest(run_dir).get("status")
        if status == "complete":
            return "corrupt" if train_corrupt(item) else "stale" if train_stale(item) else "complete"
    else:
        path = status_path(item)
        status = read_json(path).get("status") if path is not None and path.exists() else None
        if status == "complete":
            return "complete" if item_complete(item) else "stale"
    if held_by_other(run_dir) and item.kind == "train":
        return "running"
    return "failed" if status == "failed" else "missing"


def plan_status(plan: str, profile: str) -> dict[str, Any]:
    """Counts and keys of the plan's train and diagnostics items by :func:`item_state`."""
    states: dict[str, list[str]] = {name: [] for name in ("complete", "stale", "corrupt", "missing", "failed",
                                                          "running")}
    stale: dict[str, str] = {}
    corrupt: dict[str, str] = {}
    for item in load_plan(plan, profile, include_pages=False):
        state = item_state(item)
        states[state].append(item.key)
        if state == "stale" and item.kind == "train":
            stale[item.key] = train_stale(item)
        if state == "corrupt":
            corrupt[item.key] = train_corrupt(item)
    return {**{name: len(keys) for name, keys in states.items()}, "items": states, "stale_reasons": stale,
            "corrupt_reasons": corrupt, "source_hash": source_hash()}


def disk_record(item: PlanItem) -> dict[str, Any]:
    """What the disk says about an item: status, seconds, error."""
    if item.kind == "train":
        manifest = read_manifest(item.run_dir)
        seconds = manifest.get("seconds")
        if isinstance(seconds, dict):
            seconds = sum(float(v) for v in seconds.values() if isinstance(v, (int, float)))
        return {"status": manifest.get("status", "pending"), "seconds": seconds, "error": manifest.get("error", "")}
    path = status_path(item)
    if path is not None and path.exists():
        data = read_json(path)
        status = "complete" if item_complete(item) else data.get("status", "pending")
        return {"status": status, "seconds": data.get("seconds"), "error": data.get("error", "")}
    return {"status": "pending", "seconds": None, "error": ""}


# --------------------------------------------------------------------------- one execution
