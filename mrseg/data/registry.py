"""Datasets by name. A builder turns options into samples; the registry caches the result.

Builders are registered with :func:`register_dataset` and return a :class:`BuiltDataset`.
``load_dataset(name, **options)`` builds once into ``<cache>/datasets/<key>/`` and afterwards
opens the memory-mapped cache. The key is the name, plus a short hash when options are given.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import pandas as pd

from mrseg.data.cache import CachedDataset, is_complete, read_dataset, write_dataset
from mrseg.paths import dataset_dir


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

    for module in ("mrseg.data.synthetic", "mrseg.data.lidc_pylidc", "mrseg.data.loaders"):
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
    root = dataset_dir(cache_key(name, options))
    if is_complete(root) and not rebuild:
        ds = read_dataset(root)
        if str(ds.meta.get("builder_version")) == version:
            return ds
    if root.exists():
        shutil.rmtree(root)
    start = time.perf_counter()
    built = builder(progress=progress, **options)
    meta = {
        "name": name,
        "options": options,
        "builder_version": version,
        **built.meta,
    }
    meta["build_seconds"] = round(time.perf_counter() - start, 3)
    return write_dataset(root, built.samples, meta, folds=built.folds, extra_tables=built.extra_tables)
