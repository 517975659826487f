"""What a run's numbers depend on, as hashes: the package sources that can change them and the config.

``code_fingerprint`` (the idea of DVC's ``dvc.lock``): SHA-1 over the result-affecting sources
(:data:`RESULT_SOURCES`, folders taken whole so files added to them later are covered), the
dataset's source files (size and modification time of an option named ``path``) and the run's
config identity (:meth:`mrseg.config.RunConfig.identity`). A finished run whose recorded fingerprint
differs from the one its config gives now is *stale*.
"""

from __future__ import annotations

import hashlib
import json
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from mrseg.config import RunConfig
from mrseg.paths import REPO_ROOT

PACKAGE = Path(__file__).resolve().parent.parent   # the mrseg package
# Relative to the package: modules and folders whose code can change a run's numbers.
RESULT_SOURCES: tuple[str, ...] = ("models", "data", "measures", "losses.py", "train.py", "device.py", "evaluate.py",
                                   "metrics.py", "conventions.py")


@lru_cache(maxsize=1)
def source_hash() -> str:
    """:func:`hash_sources` of this package (computed once per process)."""
    return hash_sources(PACKAGE, RESULT_SOURCES)


def hash_sources(root: Path, sources: tuple[str, ...] = RESULT_SOURCES) -> str:
    """SHA-1 over the relative path and bytes of every ``*.py`` file under ``sources`` (sorted)."""
    digest = hashlib.sha1()
    for name in sources:
        path = root / name
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.is_file() else []
        for file in files:
            digest.update(file.relative_to(root).as_posix().encode() + b"\0")
            digest.update(file.read_bytes() + b"\0")
    return digest.hexdigest()


def data_source_signature(options: dict[str, Any]) -> str:
    """Size and mtime of the files under a dataset's ``path`` option (a file or a folder), hashed;
    "" when there is no such option. An edited source file changes it."""
    raw = options.get("path")
    if not raw:
        return ""
    path = Path(str(raw)).expanduser()
    if not path.exists() and not path.is_absolute():
        path = REPO_ROOT / path   # plans give data folders relative to the repository (the kernels' cwd)
    if not path.exists():
        return "missing"
    if path.is_dir():   # a large folder (DICOM) is walked at most once a minute per process
        key = str(path.resolve())
        seen = _FOLDER_SIGNATURES.get(key)
        if seen is None or time.monotonic() - seen[0] > 60:
            _FOLDER_SIGNATURES[key] = seen = (time.monotonic(), _signature(path))
        return seen[1]
    return _signature(path)


_FOLDER_SIGNATURES: dict[str, tuple[float, str]] = {}


def _signature(path: Path) -> str:
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha1()
    for file in files:
        st = file.stat()
        digest.update(f"{file.relative_to(path) if path.is_dir() else file.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def run_fingerprint(config: RunConfig | dict[str, Any]) -> dict[str, str]:
    """``{"code_fingerprint", "source_hash", "config_hash", "data_signature"}`` for ``config``."""
    if isinstance(config, dict):
        config = RunConfig.from_dict(config)
    parts = {"source_hash": source_hash(), "config_hash": config.config_hash,
             "data_signature": data_source_signature(config.dataset_options)}
    combined = hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()
    return {"code_fingerprint": combined, **parts}


def stale_reason(manifest: dict[str, Any], config: RunConfig | dict[str, Any]) -> str:
    """Why the run recorded in ``manifest`` does not match ``config`` under today's code; "" if it does."""
    want = run_fingerprint(config)
    have = manifest.get("code_fingerprint")
    if have == want["code_fingerprint"]:
        return ""
    if not have:
        return "no code fingerprint recorded"
    changed = [k.replace("_hash", "").replace("_signature", "") for k in ("source_hash", "config_hash", "data_signature")
               if manifest.get(k) != want[k]]
    what = {"source": "code", "config": "config", "data": "dataset source"}
    return "changed: " + ", ".join(what[c] for c in changed) if changed else "fingerprint differs"


def short(fingerprint: str | None) -> str:
    return (fingerprint or "")[:10]


__all__ = ["RESULT_SOURCES", "data_source_signature", "hash_sources", "run_fingerprint", "short", "source_hash", "stale_reason"]
