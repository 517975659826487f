"""Datasets by name. A builder turns options into samples; the registry caches the result.

Builders are registered with :func:`register_dataset` and return a :class:`BuiltDataset`.
``load_dataset(name, **options)`` builds once into ``<cache>/datasets/<key>/`` and afterwards
opens the memory-mapped cache. The key is the name, plus a short hash when options are given.
A build goes into a temporary folder that replaces the cache only when it succeeded, so a failing
``--rebuild`` keeps the previous good cache. The cache records the size and modification time of
the files under a ``path`` option, so an edited source is rebuilt. The option ``n_folds`` (default
4) is the number of patient-grouped folds; the builder never sees it.
"""

from __future__ import annotations

import fcntl
import hashlib
import inspect
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import pandas as pd

from mrseg.data.cache import CachedDataset, is_complete, read_dataset, write_dataset
from mrseg.paths import dataset_dir
from mrseg.pipeline.fingerprint import data_source_signature

CACHE_OPTIONS = ("n_folds",)   # options of the cache itself, not passed to the builder


@dataclass
class BuiltDataset:
    """What a builder returns: contract samples, metadata and optional extra tables."""

    samples: Iterable[dict[str, Any]]
    meta: dict[str, Any]
    extra_tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    folds: Any = None  # optional precomputed fold per case (e.g. a dataset's own split)


Builder = Callable[..., BuiltDataset]
_BUILDERS: dict[str, tuple[Builder, str]] = {}


def register_dataset(name: str, version: str = "1") -> Callable[[Builder], Builder]:
    """Decorator: register ``builder(progress: bool, **options) -> BuiltDataset`` as ``name``."""

    def decorate(builder: Builder) -> Builder:
        _BUILDERS[name] = (builder, version)
        return builder

    return decorate


def _ensure_builtin_registered() -> None:
    # Importing the modules runs their @register_dataset decorators.
    import importlib

    for module in ("mrseg.data.synthetic", "mrseg.data.controlled", "mrseg.data.lidc_pylidc", "mrseg.data.loaders"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise


def available_datasets() -> list[str]:
    _ensure_builtin_registered()
    return sorted(_BUILDERS)


def cache_key(name: str, options: dict[str, Any]) -> str:
    if not options:
        return name
    blob = json.dumps(options, sort_keys=True, default=str).encode()
    return f"{name}@{hashlib.sha1(blob).hexdigest()[:10]}"


def load_dataset(name: str, rebuild: bool = False, progress: bool = True, **options: Any) -> CachedDataset:
    """Open dataset ``name`` from the cache, building it first if needed (or if ``rebuild``)."""
    _ensure_builtin_registered()
    if name not in _BUILDERS:
        raise KeyError(f"unknown dataset {name!r}; available: {', '.join(sorted(_BUILDERS))}")
    builder, version = _BUILDERS[name]
    _check_options(name, builder, options)
    n_folds = options.get("n_folds", 4)
    if not isinstance(n_folds, int) or isinstance(n_folds, bool) or n_folds < 2:
        raise ValueError(f"dataset {name!r}: option n_folds must be an integer >= 2, got {n_folds!r}")
    root = dataset_dir(cache_key(name, options))
    signature = data_source_signature(options)

    def cached() -> CachedDataset | None:
        if is_complete(root):
            ds = read_dataset(root)
            if str(ds.meta.get("builder_version")) == version and ds.meta.get("source_signature", "") == signature:
                return ds
        return None

    if not rebuild and (ds := cached()) is not None:
        return ds
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "a") as lock:   # one build of a cache at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not rebuild and (ds := cached()) is not None:      # built by the process we waited for
            return ds
        return _build(name, builder, version, root, options, signature, n_folds, progress)


def _build(name: str, builder: Builder, version: str, root: Path, options: dict[str, Any], signature: str,
           n_folds: int, progress: bool) -> CachedDataset:
    start = time.perf_counter()
    built = builder(progress=progress, **{k: v for k, v in options.items() if k not in CACHE_OPTIONS})
    meta = {
        "name": name,
        "options": options,
        "builder_version": version,
        "source_signature": signature,
        **built.meta,
    }
    meta["build_seconds"] = round(time.perf_counter() - start, 3)
    tmp = root.with_name(f".{root.name}.build-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        write_dataset(tmp, built.samples, meta, n_folds=n_folds, folds=built.folds, extra_tables=built.extra_tables)
        _swap_in(tmp, root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return read_dataset(root)


def _swap_in(new: Path, root: Path) -> None:
    """Replace ``root`` by the finished build ``new`` (two renames; the old cache is removed last)."""
    old = root.with_name(f".{root.name}.old-{os.getpid()}")
    if root.exists():
        os.replace(root, old)
    os.replace(new, root)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)


def _check_options(name: str, builder: Builder, options: dict[str, Any]) -> None:
    """A one-line error for an option the builder does not take."""
    params = inspect.signature(builder).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    known = sorted((set(params) - {"progress"}) | set(CACHE_OPTIONS))
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"dataset {name!r}: unknown option {', '.join(map(repr, unknown))}; "
                         f"known options: {', '.join(known)}")
