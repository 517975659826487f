"""Tables verified when read back: size, row count and SHA-256 recorded when a run completes.

A complete run whose ``eval_cases.csv`` was later truncated (a full disk, an interrupted copy, an
edit) would otherwise be averaged in as if whole. When a run completes, :func:`record_tables`
writes into its manifest, for each of :data:`RUN_TABLES`::

    "tables": {"eval_cases.csv": {"bytes": 81234, "rows": 141, "sha256": "..."}, ...}

and :func:`table_problem` checks a table against its record (a gzipped copy, as a reference export
keeps it, is checked by its decompressed content). A run with a mismatch is *corrupt*: it is not
complete (``run`` retrains it; aggregation leaves it out), and a reference export's loader reports
it with its file and leaves it out. Runs completed before tables were recorded are read as before.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path
from typing import Any, Iterator

RUN_TABLES: tuple[str, ...] = ("eval_cases.csv", "eval_summary.json", "history.csv")


def _chunks(path: Path, size: int = 1 << 22) -> Iterator[bytes]:
    """A file's bytes in chunks; a ``.gz`` file's decompressed bytes (``OSError``/``EOFError`` when
    broken). Streamed, so a large dataset array is never held in memory twice."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        while chunk := fh.read(size):
            yield chunk


def table_record(path: str | os.PathLike) -> dict[str, Any]:
    """``{"bytes", "rows", "sha256"}`` of a table's content (rows: lines after a CSV's header; None
    for other files)."""
    path = Path(path)
    digest, n_bytes, n_lines = hashlib.sha256(), 0, 0
    for chunk in _chunks(path):
        digest.update(chunk)
        n_bytes += len(chunk)
        n_lines += chunk.count(b"\n")
    name = path.name[:-3] if path.suffix == ".gz" else path.name
    rows = max(n_lines - 1, 0) if name.endswith(".csv") else None
    return {"bytes": n_bytes, "rows": rows, "sha256": digest.hexdigest()}


def table_problem(path: str | os.PathLike, record: dict[str, Any] | None) -> str:
    """Why ``path`` does not match ``record`` ("" when it does, or when nothing was recorded)."""
    if not record:
        return ""
    path = Path(path)
    if not path.exists():
        return f"{path}: missing (recorded {record.get('bytes')} bytes)"
    try:
        have = table_record(path)
    except (OSError, EOFError) as err:
        return f"{path}: cannot be read ({err})"
    if have["sha256"] == record.get("sha256"):
        return ""
    detail = (f"{have['rows']} rows instead of {record.get('rows')}" if have["rows"] != record.get("rows")
              else f"{have['bytes']} bytes instead of {record.get('bytes')}")
    return f"{path}: content differs from the one recorded when the run completed ({detail})"


def record_tables(run_dir: str | os.PathLike, names: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """The records of the run's :data:`RUN_TABLES` that exist; ``names`` maps a table to the file
    that holds it (a reference export's gzipped copy)."""
    run_dir = Path(run_dir)
    files = {name: run_dir / (names or {}).get(name, name) for name in RUN_TABLES}
    return {name: table_record(path) for name, path in files.items() if path.exists()}


def run_problem(run_dir: str | os.PathLike, manifest: dict[str, Any], names: dict[str, str] | None = None) -> str:
    """The first table of a run that does not match its manifest's record ("" when all do).
    ``names`` maps a recorded table to the file that holds it (a reference export's gzipped copy)."""
    for table, record in (manifest.get("tables") or {}).items():
        problem = table_problem(Path(run_dir) / (names or {}).get(table, table), record)
        if problem:
            return problem
    return ""


__all__ = ["RUN_TABLES", "record_tables", "run_problem", "table_problem", "table_record"]
