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

import contextlib
import fcntl
import hashlib
import inspect
import json
import os
import shutil
import sys
import time
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import pandas as pd

from mrseg.bookkeeping.fingerprint import data_source_signature
from mrseg.data.cache import CachedDataset, is_complete, read_dataset, write_dataset
from mrseg.paths import dataset_dir

CACHE_OPTIONS = ("n_folds",)   # options of the cache itself, not passed to the builder
BUILD_LOCK = ".build.lock"     # in the datasets folder; held while a cache is built


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
    with _build_lock(root.parent):
        if not rebuild and (ds := cached()) is not None:      # built by the process we waited for
            return ds
        return _build(name, builder, version, root, options, signature, n_folds, progress)


_LOCK_DEPTH = [0]   # builds in progress in this process (a builder may load another dataset)


@contextlib.contextmanager
def _build_lock(folder: Path) -> Iterator[None]:
    """One build at a time in the whole cache: a single lock file, not one left behind per option
    set; re-entrant within a process."""
    if _LOCK_DEPTH[0]:
        _LOCK_DEPTH[0] += 1
        try:
            yield
        finally:
            _LOCK_DEPTH[0] -= 1
        return
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / BUILD_LOCK, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another process building a dataset in {folder} ({BUILD_LOCK})",
                  file=sys.stderr, flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        _LOCK_DEPTH[0] = 1
        try:
            yield
        finally:
            _LOCK_DEPTH[0] = 0


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
    try:
        hints = typing.get_type_hints(builder)
    except (NameError, TypeError):   # an annotation that cannot be resolved: nothing to check against
        return
    for key, value in options.items():
        expected = _expected_types(hints.get(key))
        if expected and not any(_is_instance(value, kind) for kind in expected):
            names = " or ".join("null" if kind is type(None) else _TYPE_WORDS.get(kind, kind.__name__)
                                for kind in expected)
            raise ValueError(f"dataset {name!r}: option {key} must be {names}, got {value!r}")


_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _expected_types(hint: Any) -> tuple[type, ...]:
    """The plain types an annotation allows (``int | None`` -> (int, NoneType)); () when it allows
    anything this check does not know (paths, containers, ``Any``)."""
    if hint is None:
        return ()
    origin = typing.get_origin(hint)
    kinds = typing.get_args(hint) if origin in (typing.Union, types.UnionType) else (hint,)
    if not all(kind in _TYPE_WORDS or kind is type(None) for kind in kinds):
        return ()
    return tuple(kinds)


def _is_instance(value: Any, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind)
