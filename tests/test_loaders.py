"""Every foreign-format loader: write a small file in the exact format, read it back."""

from __future__ import annotations

import os
import pickle
import warnings

import h5py
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mrseg.data.registry import load_dataset
from mrseg.data.safe_pickle import UnsafePickleError, safe_load


def _rng_masks(rng, n=4, size=16):
    return [(rng.random((size, size)) > 0.6).astype(np.uint8) for _ in range(n)]


def _lidc_dict(rng, image_max, n_cases=5, with_attributes=False):
    data = {}
    for i in range(n_cases):
        image = rng.integers(0, 256, (16, 16)).astype(np.uint8) if image_max == 255 else rng.random((16, 16))
        entry = {"image": image, "masks": _rng_masks(rng), "series_uid": f"1.2.{i % 4}"}
        if with_attributes:
            entry["attributes"] = rng.integers(1, 6, (4, 9)).astype(np.float64)
        data[f"LIDC-IDRI-{i:04d}_slice{i}"] = entry
    return data


def test_dpersona_pickle_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    data = _lidc_dict(rng, 255, with_attributes=True)
    path = tmp_path / "lidc_attributes.pkl"
    path.write_bytes(pickle.dumps(data, protocol=4))
    ds = load_dataset("dpersona-pickle", progress=False, path=str(path))
    assert len(ds) == 5 and ds.n_raters == 4 and not ds.semi_synthetic
    for i, (key, entry) in enumerate(data.items()):
        assert ds.cases["case_id"][i] == key and ds.cases["patient_id"][i] == key.split("_")[0]
        assert ds.cases["nodule_id"][i] == entry["series_uid"]
        np.testing.assert_allclose(ds.images[i, 0], entry["image"] / 255.0, atol=1e-6)
        np.testing.assert_array_equal(ds.masks[i], np.stack(entry["masks"]))
        np.testing.assert_array_equal(ds.attributes[i], entry["attributes"])
    assert ds.cases.groupby("patient_id")["fold"].nunique().max() == 1
    by_area = load_dataset("dpersona-pickle", progress=False, path=str(path), sort_by_area=True)
    areas = by_area.masks.reshape(5, 4, -1).sum(-1)
    assert (np.diff(areas, axis=1) >= 0).all()
    first = data[next(iter(data))]
    order = np.argsort(np.stack(first["masks"]).reshape(4, -1).sum(-1), kind="stable")
    np.testing.assert_array_equal(by_area.attributes[0], first["attributes"][order])


def test_knegt_pickle_folder_of_parts(tmp_path):
    rng = np.random.default_rng(1)
    data = _lidc_dict(rng, 1.0, n_cases=6)
    items = list(data.items())
    folder = tmp_path / "lidc"
    folder.mkdir()
    (folder / "data_lidc_part1.pickle").write_bytes(pickle.dumps(dict(items[:3]), protocol=2))
    (folder / "data_lidc_part2.pickle").write_bytes(pickle.dumps(dict(items[3:])))
    ds = load_dataset("knegt-pickle", progress=False, path=str(folder))
    assert len(ds) == 6 and ds.attributes is None
    np.testing.assert_allclose(ds.images[4, 0], items[4][1]["image"], atol=1e-6)
    np.testing.assert_array_equal(ds.masks[4], np.stack(items[4][1]["masks"]))


def test_knegt_rejects_0_255_images_with_a_hint(tmp_path):
    path = tmp_path / "data_lidc.pickle"
    path.write_bytes(pickle.dumps(_lidc_dict(np.random.default_rng(2), 255)))
    with pytest.raises(ValueError, match=r"data_lidc.pickle.*\[0, 1\].*dpersona-pickle"):
        load_dataset("knegt-pickle", progress=False, path=str(path))


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "lidc_attributes.pkl"
    path.write_bytes(pickle.dumps({"case": {"image": _Exploit(marker), "masks": [], "series_uid": "x"}}))
    with pytest.raises(UnsafePickleError, match=r"lidc_attributes.pkl.*system"):
        safe_load(path)
    with pytest.raises(UnsafePickleError):
        load_dataset("dpersona-pickle", progress=False, path=str(path))
    assert not marker.exists()
    eval_payload = b"cbuiltins\neval\n(S'1+1'\ntR."  # protocol 0: builtins.eval('1+1')
    (tmp_path / "eval.pkl").write_bytes(eval_payload)
    with pytest.raises(UnsafePickleError, match="builtins.eval"):
        safe_load(tmp_path / "eval.pkl")


def test_corrupt_and_missing_files_name_the_file(tmp_path):
    bad = tmp_path / "broken.pkl"
    bad.write_bytes(pickle.dumps({"a": np.zeros(100)})[:40])
    with pytest.raises(ValueError, match="broken.pkl"):
        safe_load(bad)
    with pytest.raises(FileNotFoundError, match="nope.pkl"):
        load_dataset("dpersona-pickle", progress=False, path=str(tmp_path / "nope.pkl"))
    with pytest.raises(ValueError, match="needs a path"):
        load_dataset("dpersona-pickle", progress=False)


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_kohl_png_crops(tmp_path):
    rng = np.random.default_rng(3)
    expected = {}
    for split, patients in (("train", ["LIDC-IDRI-0001", "LIDC-IDRI-0002", "LIDC-IDRI-0003"]),
                            ("test", ["LIDC-IDRI-0004"])):
        for patient in patients:
            image = rng.integers(0, 256, (180, 180)).astype(np.uint8)
            _png(tmp_path / split / "images" / patient / "z-105.0_c0.png", image)
            masks = [(rng.random((180, 180)) > 0.5).astype(np.uint8) * 255 for _ in range(4)]
            for k, mask in enumerate(masks):
                if not (patient == "LIDC-IDRI-0002" and k == 3):  # one rater missing
                    _png(tmp_path / split / "gt" / patient / f"z-105.0_c0_l{k}.png", mask)
            expected[f"{split}/{patient}/z-105.0_c0"] = (image, masks)
    ds = load_dataset("kohl-png", progress=False, path=str(tmp_path))
    assert len(ds) == 4 and ds.images.shape[1:] == (1, 128, 128)
    for i, case_id in enumerate(ds.cases["case_id"]):
        image, masks = expected[case_id]
        np.testing.assert_allclose(ds.images[i, 0], image[26:154, 26:154] / 255.0, atol=1e-6)
        for k in range(4):
            if ds.present[i, k]:
                np.testing.assert_array_equal(ds.masks[i, k], masks[k][26:154, 26:154] > 127)
    assert ds.present.sum() == 15 and not ds.present[ds.cases["patient_id"] == "LIDC-IDRI-0002", 3].any()
    assert sorted(ds.tables["split"]["split"]) == ["test", "train", "train", "train"]


def test_npc170_h5_folders(tmp_path):
    rng = np.random.default_rng(4)

    def write(path, shape, labelled):
        path.parent.mkdir(parents=True, exist_ok=True)
        with h5py.File(path, "w") as h5:
            for key in ("t1", "t1c", "t2"):
                h5[key] = rng.random(shape).astype(np.float32) * 500
            for r in range(4):
                label = np.zeros(shape, np.uint8)
                label[labelled] = rng.random(label[labelled].shape) > 0.5
                h5[f"label_a{r + 1}"] = label
        return path

    write(tmp_path / "training_2d" / "p1_s3.h5", (24, 24), np.s_[4:10, 4:10])
    write(tmp_path / "training_2d" / "p2_s7.h5", (24, 24), np.s_[4:10, 4:10])
    vol = write(tmp_path / "validation" / "p3.h5", (5, 24, 24), np.s_[1:3, 5:9, 5:9])
    write(tmp_path / "testing" / "p4.h5", (5, 24, 24), np.s_[2:3, 5:9, 5:9])
    ds = load_dataset("npc170", progress=False, path=str(tmp_path))
    assert ds.images.shape[1:] == (3, 24, 24) and len(ds) == 2 + 2 + 1  # only labelled volume slices
    with h5py.File(vol) as h5:
        t1c = np.asarray(h5["t1c"])
        label = np.asarray(h5["label_a2"])
    i = int(np.flatnonzero(ds.cases["case_id"] == "validation/p3/2")[0])
    np.testing.assert_allclose(ds.images[i, 1], ((t1c - t1c.min()) / (t1c.max() - t1c.min()))[2], atol=1e-6)
    np.testing.assert_array_equal(ds.masks[i, 1], label[2])
    assert set(ds.tables["split"]["split"]) == {"training_2d", "validation", "testing"}
    assert len(load_dataset("npc170", progress=False, path=str(tmp_path), only_labelled=False)) == 2 + 5 + 5


def test_npc170_missing_key(tmp_path):
    (tmp_path / "testing").mkdir()
    with h5py.File(tmp_path / "testing" / "bad.h5", "w") as h5:
        h5["t1"] = np.zeros((4, 4))
    with pytest.raises(ValueError, match=r"bad.h5: missing keys"):
        load_dataset("npc170", progress=False, path=str(tmp_path))


def test_folder_layout_with_missing_raters(tmp_path):
    rng = np.random.default_rng(5)
    truth = {}
    for c in range(5):
        case = tmp_path / f"case{c}"
        case.mkdir()
        image = rng.random((20, 20)).astype(np.float32)
        np.save(case / "image.npy", image)
        masks = [(rng.random((20, 20)) > 0.5).astype(np.uint8) for _ in range(3)]
        for k, mask in enumerate(masks):
            if (c, k) != (1, 2):
                _png(case / f"mask_{k}.png", mask * 255)
        truth[f"case{c}"] = (image, masks)
    pd.DataFrame({"case_id": ["case0", "case1"], "patient_id": ["P", "P"]}).to_csv(tmp_path / "cases.csv", index=False)
    ds = load_dataset("folder", progress=False, path=str(tmp_path))
    assert ds.n_raters == 3 and len(ds) == 5
    assert list(ds.cases["patient_id"]) == ["P", "P", "case2", "case3", "case4"]
    assert not ds.present[1, 2] and ds.present.sum() == 14
    for i, case_id in enumerate(ds.cases["case_id"]):
        image, masks = truth[case_id]
        np.testing.assert_allclose(ds.images[i, 0], image)
        np.testing.assert_array_equal(ds.masks[i, 0], masks[0])
    (tmp_path / "case3" / "image.npy").unlink()
    with pytest.raises(FileNotFoundError, match="case3: missing image"):
        load_dataset("folder", progress=False, rebuild=True, path=str(tmp_path))


def test_lidc_cimd28_real_slices():
    from mrseg.data.loaders import CIMD28_DIR

    ds = load_dataset("lidc-cimd28", progress=False)
    assert len(ds) == 28 and ds.n_raters == 4 and not ds.semi_synthetic
    assert ds.tables["split"]["split"].value_counts().to_dict() == {"training": 19, "testing": 9}
    i = int(np.flatnonzero(ds.cases["case_id"] == "training-0")[0])
    raw = np.asarray(Image.open(CIMD28_DIR / "training" / "0" / "label2_.jpg"))
    np.testing.assert_array_equal(ds.masks[i, 2], raw > 127)
    image = np.asarray(Image.open(CIMD28_DIR / "training" / "0" / "image_1.jpg")) / 255.0
    np.testing.assert_allclose(ds.images[i, 0], image, atol=1e-6)


def _write_ct_series(folder, scan, z_indices, hu_slice):
    """A minimal CT series for one LIDC scan: the database's UIDs and slice z values, our pixels."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    for n, k in enumerate(z_indices):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.PatientID, ds.Modality = scan.patient_id, "CT"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = scan.study_uid, scan.series_uid
        ds.ImagePositionPatient = [0.0, 0.0, float(scan.zvals[k])]
        ds.InstanceNumber = n + 1
        ds.PixelSpacing = [scan.pixel_spacing, scan.pixel_spacing]
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.Rows = ds.Columns = 512
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.PixelData = (hu_slice(k) + 1024).astype(np.uint16).tobytes()
        ds.save_as(folder / f"{n:03d}.dcm", enforce_file_format=True)


def test_lidc_dicom_real_patches(tmp_path, monkeypatch):
    """Synthetic DICOM pixels under real LIDC UIDs: the loader must put the DICOM's own pixels
    under the annotated masks (a bright block where the nodule is, lung elsewhere)."""
    from mrseg.data import lidc_pylidc as L
    from mrseg.data.phantom import DEFAULT_PARAMS

    monkeypatch.setenv("HOME", str(tmp_path))
    patients = ["LIDC-IDRI-0078", "LIDC-IDRI-0069", "LIDC-IDRI-0079", "LIDC-IDRI-0001"]
    specs, _ = L.extract_patches(patient_ids=patients, progress=False)
    scans = {s.id: s for s in L.load_scans(patient_ids=patients)}
    root = tmp_path / "LIDC-IDRI"
    for scan in scans.values():
        mine = [s for s in specs if s.scan_id == scan.id]
        blocks = {}
        for s in mine:  # a 16 HU-per-slice ramp keeps slices distinguishable
            blocks.setdefault(s.slice_index, []).append(s.centre)

        def hu_slice(k, blocks=blocks):
            img = np.full((512, 512), -800, np.int32) + 16 * k % 200
            for ci, cj in blocks.get(k, []):
                img[int(ci) - 3:int(ci) + 4, int(cj) - 3:int(cj) + 4] = 60
            return img

        _write_ct_series(root / scan.patient_id / "study" / "series", scan, sorted(blocks), hu_slice)
    (root / "LIDC-IDRI-0003").mkdir()  # a patient whose series is absent: skipped with a warning
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset("lidc-dicom", progress=False, path=str(root))
    assert any("LIDC-IDRI-0003" in str(w.message) for w in caught)
    assert not ds.semi_synthetic and len(ds) == len(specs) and not (tmp_path / ".pylidcrc").exists()
    lo, hi = DEFAULT_PARAMS.window
    by_case = {s.case_id: s for s in specs}
    for i, case_id in enumerate(ds.cases["case_id"]):
        spec = by_case[case_id]
        np.testing.assert_array_equal(ds.masks[i], spec.masks)
        image = ds.images[i, 0]
        background = (-800 + 16 * spec.slice_index % 200 - lo) / (hi - lo)
        assert abs(image[5, 5] - background) < 1e-4  # the corner reads the slice's own HU
        assert abs(image[63:65, 63:65].mean() - (60 - lo) / (hi - lo)) < 1e-3  # the block sits at the centre
