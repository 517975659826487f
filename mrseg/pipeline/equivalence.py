"""Certified code changes: an edit to the result-affecting sources that provably leaves a reference
export's numbers unchanged keeps its runs current.

Any edit to :data:`mrseg.bookkeeping.fingerprint.RESULT_SOURCES` changes the source hash, so every
committed reference run reads as stale, even when the edit only adds an option whose default is the
old code path. ``python -m mrseg reference certify`` decides this by measurement: it groups the
export's runs into *configurations* (the run's config identity without fold and seed), retrains
one run of each under today's code from scratch (under ``runs/verify/certify/``, never touching the
plan's own run folders; a Stage 2 run trains its Stage 1 there too) and compares its per-case table,
value by value, with the same run made by the old sources on this machine:

- the committed run itself, when it was trained on a machine with this one's CPU model and
  instruction sets (its manifest's ``machine``; training is bit-reproducible on one machine, not
  across vector units);
- otherwise the run retrained here by the old sources: the package of the newest commit whose
  result-affecting sources hash to the committed run's ``source_hash`` (``git archive``), imported
  in a subprocess.

Only when every configuration is **bit-identical** does it append a certificate to
``equivalence.json`` beside the export's ``index.json``::

    {"certificates": [{"certified", "from_source_hashes": [...], "to_source_hash", "machine",
                       "configurations": [{"run_id", "configuration", "from_source_hash", "model",
                                           "n_present", "against", "identical", "seconds"}]}]}

Reading an export (:func:`mrseg.pipeline.reference.load_reference`), a run whose only change is its
source hash, and whose hash a chain of certificates maps to today's, is current. A certificate holds
for the (configuration, source hash) pairs it retrained; any other run stays stale.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mrseg.bookkeeping.fingerprint import source_hash
from mrseg.config import RunConfig
from mrseg.io import read_json

EQUIVALENCE_FILE = "equivalence.json"
def configuration_key(config: dict[str, Any]) -> str:
    """A run's configuration: SHA-1 of its config identity without ``fold`` and ``seed``."""
    identity = RunConfig.from_dict(config).identity()
    identity.pop("fold", None)
    identity.pop("seed", None)
    return hashlib.sha1(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def read_certificates(folder: str | os.PathLike) -> list[dict[str, Any]]:
    """The export's certificates (oldest first); ``[]`` when it has none."""
    path = Path(folder) / EQUIVALENCE_FILE
    return list(read_json(path).get("certificates") or []) if path.exists() else []


def certified_current(manifest: dict[str, Any], certificates: list[dict[str, Any]]) -> bool:
    """True when a chain of ``certificates`` that covered this run's configuration leads from the
    manifest's source hash to today's."""
    have = manifest.get("source_hash")
    config = manifest.get("config")
    if not have or not config or not certificates:
        return False
    try:
        key = configuration_key(config)
    except (TypeError, ValueError):
        return False
    seen = {have}
    changed = True
    while changed:
        changed = False
        for cert in certificates:
            target = cert.get("to_source_hash")
            if not cert.get("identical") or not target or target in seen:
                continue
            if any(c.get("identical") and c.get("configuration") == key and c.get("from_source_hash") in seen
                   for c in cert.get("configurations") or []):
                seen.add(target)
                changed = True
    return source_hash() in seen


def certified_stale_reason(manifest: dict[str, Any], config: Any, certificates: list[dict[str, Any]]) -> str:
    """:func:`~mrseg.bookkeeping.fingerprint.stale_reason`, except that a run whose only change is a
    code edit the ``certificates`` cover (:func:`certified_current`) is current ("")."""
    from mrseg.bookkeeping.fingerprint import stale_reason

    stale = stale_reason(manifest, config)
    return "" if stale == "changed: code" and certified_current(manifest, certificates) else stale


def same_machine(recorded: dict[str, Any] | None, here: dict[str, Any]) -> bool:
    """Whether a manifest's ``machine`` facts name this machine's CPU model and instruction sets."""
    return bool(recorded) and all(recorded.get(k) == here.get(k) for k in ("cpu_model", "isa_flags"))


def tables_identical(committed: pd.DataFrame, retrained: pd.DataFrame) -> bool:
    """Same columns, rows and values (numbers exactly, NaN equal to NaN)."""
    if list(committed.columns) != list(retrained.columns) or len(committed) != len(retrained):
        return False
    for column in committed.columns:
        a, b = committed[column], retrained[column]
        if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
            if not np.array_equal(a.to_numpy(dtype=float), b.to_numpy(dtype=float), equal_nan=True):
                return False
        elif not a.astype(str).equals(b.astype(str)):
            return False
    return True


__all__ = ["EQUIVALENCE_FILE", "certified_current", "configuration_key", "read_certificates", "same_machine",
           "tables_identical"]
