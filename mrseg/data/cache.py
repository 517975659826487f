"""The on-disk dataset cache: memory-mappable ``.npy`` arrays plus a CSV case table. No pickles.

Layout of ``<cache>/datasets/<name>/``::

    images.npy      float32 [P, C, H, W] in [0, 1]
    masks.npy       uint8   [P, N, H, W] in {0, 1}
    present.npy     bool    [P, N]
    attributes.npy  float32 [P, N, 9]      (optional; NaN where absent)
    cases.csv       one row per case: case_id, patient_id, nodule_id, slice_index, fold
    meta.json       name, n_raters, semi_synthetic, description, provenance, build info
    (extra tables)  e.g. nodules.csv, written by the dataset's builder

``meta.json`` is written last, so a folder without it is an incomplete build and is rebuilt. It
records each array's and table's size and SHA-256 (``files``); :func:`read_dataset` checks them, so
a truncated or altered cache is an error naming the file, never read as data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from mrseg.bookkeeping.integrity import table_problem, table_record
from mrseg.data.contract import ID_FIELDS, DataContractError, validate_sample
from mrseg.data.folds import assign_folds, split_indices
from mrseg.io import read_json, write_csv, write_json, write_npy

ARRAY_FILES = ("images", "masks", "present")


@dataclass
class CachedDataset:
    """A cached multi-rater dataset; arrays are memory-mapped read-only.

    ``len(ds)`` is the number of cases P; ``ds[i]`` returns one contract sample (a dict).
    """

    root: Path
    images: np.ndarray
    masks: np.ndarray
    present: np.ndarray
    cases: pd.DataFrame
    meta: dict[str, Any]
    attributes: np.ndarray | None = None
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.meta["name"])

    @property
    def n_raters(self) -> int:
        return int(self.masks.shape[1])

    @property
    def semi_synthetic(self) -> bool:
        return bool(self.meta.get("semi_synthetic", False))

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.cases.iloc[index]
        sample: dict[str, Any] = {
            "image": np.asarray(self.images[index]),
            "masks": np.asarray(self.masks[index]),
            "present": np.asarray(self.present[index]),
        }
        if self.attributes is not None:
            sample["attributes"] = np.asarray(self.attributes[index])
        for key in ID_FIELDS:
            sample[key] = row[key]
        return sample

    def split(self, test_fold: int, val_fraction: float = 0.1, seed: int = 1337):
        """``(train, val, test)`` index arrays for ``test_fold`` (patient-grouped)."""
        return split_indices(
            self.cases["fold"].to_numpy(), self.cases["patient_id"].to_numpy(), test_fold, val_fraction, seed
        )

    def fold_test_sizes(self) -> list[int]:
        counts = self.cases["fold"].value_counts().sort_index()
        return [int(c) for c in counts.to_numpy()]

    def info(self) -> dict[str, Any]:
        """Summary used by ``python -m mrseg data info NAME --json``."""
        return {
            "name": self.name,
            "patches": len(self),
            "nodules": int(self.cases["nodule_id"].nunique()),
            "patients": int(self.cases["patient_id"].nunique()),
            "raters": self.n_raters,
            "fold_test_sizes": self.fold_test_sizes(),
            "image_shape": list(self.images.shape[1:]),
            "semi_synthetic": self.semi_synthetic,
            "raters_present_histogram": {
                str(k): int(v) for k, v in sorted(pd.Series(self.present.sum(axis=1)).value_counts().items())
            },
            "description": self.meta.get("description", ""),
        }


def write_dataset(
    root: str | os.PathLike,
    samples: Iterable[dict[str, Any]],
    meta: dict[str, Any],
    n_folds: int = 4,
    fold_seed: int = 1337,
    folds: np.ndarray | None = None,
    extra_tables: dict[str, pd.DataFrame] | None = None,
) -> CachedDataset:
    """Validate ``samples``, assign patient-grouped folds (unless given) and write the cache.

    ``meta`` must contain ``name``; ``semi_synthetic`` and ``description`` are recommended.
    """
    root = Path(root)
    samples = list(samples)
    if not samples:
        raise DataContractError(f"{meta.get('name', root)}: no samples to write")
    for i, s in enumerate(samples):
        validate_sample(s, source=f"{meta.get('name', root)} case {s.get('case_id', i)}")
    shapes = {s["image"].shape for s in samples}
    if len(shapes) != 1:
        raise DataContractError(f"{meta.get('name', root)}: images have different shapes {sorted(shapes)}")
    n_raters = {s["masks"].shape[0] for s in samples}
    if len(n_raters) != 1:
        first = samples[0]
        odd = next(s for s in samples if s["masks"].shape[0] != first["masks"].shape[0])
        raise DataContractError(f"{meta.get('name', root)}: case {odd.get('case_id')!r} has {odd['masks'].shape[0]} masks "
                                f"but case {first.get('case_id')!r} has {first['masks'].shape[0]}")
    cases = pd.DataFrame({key: [s.get(key, "") for s in samples] for key in ID_FIELDS})
    cases["case_id"] = cases["case_id"].astype(str)
    cases["patient_id"] = cases["patient_id"].astype(str)
    cases["nodule_id"] = cases["nodule_id"].astype(str)
    if cases["case_id"].duplicated().any():
        dup = cases["case_id"][cases["case_id"].duplicated()].iloc[0]
        raise DataContractError(f"{meta.get('name', root)}: duplicate case_id {dup!r}")
    if folds is None:
        n_patients = cases["patient_id"].nunique()
        if n_patients < n_folds:
            raise DataContractError(f"{meta.get('name', root)}: {n_patients} patient(s) cannot fill {n_folds} "
                                    f"patient-grouped folds; add data or use --option n_folds=K with 2 <= K <= {n_patients}")
        folds = assign_folds(cases["patient_id"].to_numpy(), n_folds, fold_seed)
    cases["fold"] = folds
    root.mkdir(parents=True, exist_ok=True)
    meta_path = root / "meta.json"
    if meta_path.exists():
        meta_path.unlink()
    write_npy(root / "images.npy", np.stack([s["image"] for s in samples]))
    write_npy(root / "masks.npy", np.stack([s["masks"] for s in samples]))
    write_npy(root / "present.npy", np.stack([s["present"] for s in samples]))
    if all(s.get("attributes") is not None for s in samples):
        write_npy(root / "attributes.npy", np.stack([s["attributes"] for s in samples]).astype(np.float32))
    write_csv(root / "cases.csv", cases)
    for table_name, table in (extra_tables or {}).items():
        write_csv(root / f"{table_name}.csv", table)
    full_meta = {"n_folds": n_folds, "fold_seed": fold_seed, **meta, "n_raters": int(next(iter(n_raters))),
                 "files": {path.name: table_record(path) for path in sorted(root.iterdir())
                           if path.suffix in (".npy", ".csv")}}
    write_json(meta_path, full_meta)
    return read_dataset(root)


def is_complete(root: str | os.PathLike) -> bool:
    return (Path(root) / "meta.json").exists()


def read_dataset(root: str | os.PathLike) -> CachedDataset:
    """Open a cache folder written by :func:`write_dataset` (arrays memory-mapped)."""
    root = Path(root)
    if not is_complete(root):
        raise FileNotFoundError(f"{root}: no complete dataset cache here (meta.json missing)")
    meta = read_json(root / "meta.json")
    for file_name, record in (meta.get("files") or {}).items():
        problem = table_problem(root / file_name, record)
        if problem:
            raise DataContractError(f"{problem}; rebuild the cache (python -m mrseg data build "
                                    f"{meta.get('name', root.name)} --rebuild)")
    arrays = {}
    for name in ARRAY_FILES:
        path = root / f"{name}.npy"
        if not path.exists():
            raise DataContractError(f"{path}: missing array file")
        arrays[name] = _open_array(path)
    attr_path = root / "attributes.npy"
    attributes = _open_array(attr_path) if attr_path.exists() else None
    cases = pd.read_csv(root / "cases.csv", dtype={"case_id": str, "patient_id": str, "nodule_id": str})
    tables = {
        p.stem: pd.read_csv(p) for p in sorted(root.glob("*.csv")) if p.stem != "cases"
    }
    if len(cases) != arrays["images"].shape[0]:
        raise DataContractError(f"{root}: cases.csv has {len(cases)} rows but images.npy has {arrays['images'].shape[0]}")
    return CachedDataset(root=root, cases=cases, meta=meta, attributes=attributes, tables=tables, **arrays)


def _open_array(path: Path) -> np.ndarray:
    """Memory-map one ``.npy`` file; a damaged file is an error that names it."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DataContractError(f"{path}: cannot be read as an array ({err}); rebuild the cache") from err
