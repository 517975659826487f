"""The procedural ``synthetic`` dataset: contract, determinism, styles, missingness, attributes, cache."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import pearsonr

from mrseg.data.contract import validate_sample
from mrseg.data.registry import available_datasets, load_dataset
from mrseg.data.synthetic import RATER_STYLES, make_synthetic_samples


def _areas(samples):
    return np.stack([s["masks"].reshape(s["masks"].shape[0], -1).sum(1) for s in samples])


def test_samples_follow_the_contract_and_ids():
    samples = make_synthetic_samples(n_cases=12, image_size=32, seed=3)
    assert len(samples) == 12
    for s in samples:
        validate_sample(s)
        assert s["image"].shape == (1, 32, 32)
        assert s["masks"].shape == (4, 32, 32)
        assert s["attributes"].shape == (4, 9) and s["attributes"].dtype == np.float32
    assert len({s["case_id"] for s in samples}) == 12
    patients = [s["patient_id"] for s in samples]
    assert len(set(patients)) == 4  # default: several cases per patient
    # a nodule belongs to one patient
    nodule_patient = {}
    for s in samples:
        assert nodule_patient.setdefault(s["nodule_id"], s["patient_id"]) == s["patient_id"]


def test_deterministic_by_seed():
    a = make_synthetic_samples(n_cases=6, image_size=32, seed=5)
    b = make_synthetic_samples(n_cases=6, image_size=32, seed=5)
    c = make_synthetic_samples(n_cases=6, image_size=32, seed=6)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["image"], y["image"])
        np.testing.assert_array_equal(x["masks"], y["masks"])
        np.testing.assert_array_equal(x["attributes"], y["attributes"])
    assert not np.array_equal(a[0]["image"], c[0]["image"])


def test_rater_styles_order_mask_sizes():
    samples = make_synthetic_samples(n_cases=40, image_size=48, seed=1, with_attributes=False)
    areas = _areas(samples).mean(0)  # styles cycle: tight, wide, lobulated, ground-glass-inclusive
    assert areas[0] < areas[2] < areas[1]
    assert areas[3] > areas[0]
    # tight masks sit inside the ground-glass-inclusive ones (same latent outline)
    for s in samples:
        tight, glass = s["masks"][0].astype(bool), s["masks"][3].astype(bool)
        if glass.any():  # (a rater may leave a slice unmarked)
            assert (tight & ~glass).sum() <= 0.05 * max(tight.sum(), 1)
    assert all(s["masks"].max() == 1 for s in samples)  # every slice is marked by someone


def test_some_rater_masks_are_empty_like_lidc():
    samples = make_synthetic_samples(n_cases=120, image_size=48, seed=8, with_attributes=False)
    empty = _areas(samples) == 0
    assert 0.01 < empty.mean() < 0.2
    assert not empty.all(axis=1).any()


def test_any_number_of_raters_and_explicit_styles():
    one = make_synthetic_samples(n_cases=4, n_raters=1, image_size=32, rater_styles=["wide"])
    assert one[0]["masks"].shape[0] == 1
    seven = make_synthetic_samples(n_cases=4, n_raters=7, image_size=32, rater_styles=["tight", "wide"])
    assert seven[0]["masks"].shape[0] == 7
    areas = _areas(seven).mean(0)
    assert areas[0::2].mean() < areas[1::2].mean()  # tight, wide, tight, ...
    with pytest.raises(ValueError, match="unknown rater styles"):
        make_synthetic_samples(n_cases=4, rater_styles=["sloppy"])
    with pytest.raises(ValueError, match="n_raters"):
        make_synthetic_samples(n_cases=4, n_raters=0)


def test_missingness_never_leaves_a_case_without_raters():
    samples = make_synthetic_samples(n_cases=60, n_raters=3, image_size=32, missing_rate=0.6, seed=2)
    present = np.stack([s["present"] for s in samples])
    assert present.any(axis=1).all()
    assert 0.25 < 1 - present.mean() < 0.65  # about 0.6 absent, minus the rescued ones
    for s in samples:
        assert (s["masks"][~s["present"]] == 0).all()
        assert np.isnan(s["attributes"][~s["present"]]).all()
        assert np.isfinite(s["attributes"][s["present"]]).all()


def test_attributes_are_plausible_ratings_with_signal():
    samples = make_synthetic_samples(n_cases=120, image_size=48, seed=4)
    att = np.stack([s["attributes"] for s in samples])
    assert np.all(att == np.rint(att)) and att.min() >= 1 and att.max() <= 6
    assert att[..., [0, 3, 4, 5, 6, 7, 8]].max() <= 5 and att[..., 1].max() <= 4
    masks = np.stack([s["masks"] for s in samples]).astype(float)
    mask_variance = masks.var(axis=1).mean(axis=(1, 2))
    margin_sd = att[..., 4].std(axis=1)
    r, p = pearsonr(margin_sd, mask_variance)
    assert r > 0.3 and p < 0.01


def test_registered_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("MRSEG_CACHE", str(tmp_path))
    assert "synthetic" in available_datasets()
    ds = load_dataset("synthetic", progress=False, n_cases=16, image_size=32)
    assert len(ds) == 16 and ds.n_raters == 4
    assert ds.meta["semi_synthetic"] is False and ds.meta["synthetic"] is True
    assert ds.meta["description"] == "procedural synthetic data"
    assert sorted(ds.cases["fold"].unique()) == [0, 1, 2, 3]
    for patient, folds in ds.cases.groupby("patient_id")["fold"]:
        assert folds.nunique() == 1, patient
    again = load_dataset("synthetic", progress=False, n_cases=16, image_size=32)
    np.testing.assert_array_equal(np.asarray(ds.masks), np.asarray(again.masks))
    direct = make_synthetic_samples(n_cases=16, image_size=32)
    np.testing.assert_array_equal(np.asarray(ds.images[3]), direct[3]["image"])


def test_default_options_build():
    samples = make_synthetic_samples()
    assert len(samples) == 240 and samples[0]["image"].shape == (1, 64, 64)
    assert len({s["patient_id"] for s in samples}) == 80
    assert list(RATER_STYLES) == ["tight", "wide", "lobulated", "ground-glass-inclusive"]
