"""The package skeleton: atomic IO, data contract, cache, folds, registry, run config, manifest."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mrseg import io
from mrseg.bookkeeping.manifest import code_version, is_complete, read_manifest, update_manifest
from mrseg.config import MODEL_VARIANTS, MODELS, OBJECTIVE_MODELS, PROFILE_PRESETS, RunConfig, model_variant
from mrseg.data import registry
from mrseg.data.cache import read_dataset, write_dataset
from mrseg.data.contract import DataContractError, sort_masks_by_area, validate_sample
from mrseg.data.folds import assign_folds, split_indices
from mrseg.data.registry import BuiltDataset, cache_key, load_dataset, register_dataset


def _sample(i: int, patient: str, n: int = 3, size: int = 8) -> dict:
    masks = np.zeros((n, size, size), dtype=np.uint8)
    for k in range(n):
        masks[k, 2:3 + k + i % 3, 2:4] = 1
    return {
        "image": np.full((1, size, size), (i % 10) / 10, dtype=np.float32),
        "masks": masks,
        "present": np.ones(n, dtype=bool),
        "attributes": np.full((n, 9), 3.0, dtype=np.float32),
        "case_id": f"c{i:03d}",
        "patient_id": patient,
        "nodule_id": f"n{i // 2}",
        "slice_index": i,
    }


# ------------------------------------------------------------------------------------- io
def test_atomic_writers_round_trip_and_clean_up(tmp_path):
    io.write_json(tmp_path / "a" / "x.json", {"v": np.float32(1.5), "n": float("nan"), "arr": np.arange(3),
                                               "flag": np.bool_(True), "p": tmp_path})
    assert io.read_json(tmp_path / "a" / "x.json") == {"v": 1.5, "n": None, "arr": [0, 1, 2], "flag": True,
                                                       "p": str(tmp_path)}
    io.write_npy(tmp_path / "x.npy", np.arange(6).reshape(2, 3))
    assert np.load(tmp_path / "x.npy").tolist() == [[0, 1, 2], [3, 4, 5]]
    io.write_npz(tmp_path / "x.npz", a=np.ones(2), b=np.zeros((1, 2)))
    data = io.read_npz(tmp_path / "x.npz")
    assert sorted(data) == ["a", "b"] and data["b"].shape == (1, 2)
    io.write_csv(tmp_path / "x.csv", pd.DataFrame({"a": [1, 2]}))
    assert pd.read_csv(tmp_path / "x.csv")["a"].tolist() == [1, 2]
    io.write_text(tmp_path / "x.txt", "hello")
    assert (tmp_path / "x.txt").read_text() == "hello"
    # no temporary files are left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "x.csv", "x.npy", "x.npz", "x.txt"]


def test_atomic_path_keeps_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "keep.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_written_files_get_normal_permissions(tmp_path):
    import os

    umask = os.umask(0o022)
    os.umask(umask)
    io.write_json(tmp_path / "m.json", {})
    io.write_npy(tmp_path / "m.npy", np.zeros(1))
    for name in ("m.json", "m.npy"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_read_json_names_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        io.read_json(bad)


# ------------------------------------------------------------------------------- contract
def test_validate_sample_accepts_good_and_names_the_source():
    validate_sample(_sample(0, "p0"))
    cases = {
        "missing field": lambda s: s.pop("masks"),
        "float32": lambda s: s.__setitem__("image", s["image"].astype(np.float64)),
        r"\[0, 1\]": lambda s: s.__setitem__("image", s["image"] + 2),
        "uint8": lambda s: s.__setitem__("masks", s["masks"].astype(np.int64)),
        "binary": lambda s: s["masks"].__setitem__((0, 0, 0), 2),
        "present must be bool": lambda s: s.__setitem__("present", np.ones(2, dtype=bool)),
        "absent rater": lambda s: s["present"].__setitem__(0, False),
        "attributes": lambda s: s.__setitem__("attributes", np.zeros((3, 8), dtype=np.float32)),
    }
    for message, corrupt in cases.items():
        sample = _sample(0, "p0")
        corrupt(sample)
        with pytest.raises(DataContractError, match=message):
            validate_sample(sample, source="file.npz case 7")
        with pytest.raises(DataContractError, match="file.npz case 7"):
            validate_sample(sample, source="file.npz case 7")


def test_sort_masks_by_area_puts_absent_last():
    masks = np.zeros((3, 4, 4), dtype=np.uint8)
    masks[0, :3] = 1  # area 12
    masks[2, :1] = 1  # area 4
    present = np.array([True, False, True])
    attributes = np.arange(27, dtype=np.float32).reshape(3, 9)
    m, p, a = sort_masks_by_area(masks, present, attributes)
    assert m.reshape(3, -1).sum(1).tolist() == [4, 12, 0]
    assert p.tolist() == [True, True, False]
    assert a[:, 0].tolist() == [18.0, 0.0, 9.0]
    assert sort_masks_by_area(masks, present)[2] is None


# ---------------------------------------------------------------------------------- folds
def test_folds_group_patients_and_are_seeded():
    patients = np.array([f"p{i // 3}" for i in range(40)])
    folds = assign_folds(patients, n_folds=4, seed=1)
    assert sorted(set(folds)) == [0, 1, 2, 3]
    for p in np.unique(patients):
        assert len(set(folds[patients == p])) == 1
    np.testing.assert_array_equal(folds, assign_folds(patients, 4, 1))
    assert not all(
        np.array_equal(folds, assign_folds(patients, 4, s)) for s in range(2, 6)
    )
    with pytest.raises(ValueError, match="at least 4 patients"):
        assign_folds(np.array(["a", "a", "b"]), 4)


def test_split_indices_are_disjoint_and_patient_grouped():
    patients = np.array([f"p{i // 2}" for i in range(60)])
    folds = assign_folds(patients, 4, 0)
    train, val, test = split_indices(folds, patients, test_fold=2, val_fraction=0.2, seed=3)
    assert set(train).isdisjoint(val) and set(train).isdisjoint(test) and set(val).isdisjoint(test)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(60))
    assert (folds[test] == 2).all()
    assert set(patients[train]).isdisjoint(patients[val])
    assert len(val) > 0
    train0, val0, test0 = split_indices(folds, patients, test_fold=2, val_fraction=0.0)
    assert len(val0) == 0 and len(train0) == len(train) + len(val)
    with pytest.raises(ValueError, match="test_fold"):
        split_indices(folds, patients, test_fold=4)


# ---------------------------------------------------------------------------------- cache
def test_cache_round_trip(tmp_path):
    samples = [_sample(i, f"p{i // 2}") for i in range(12)]
    ds = write_dataset(tmp_path / "ds", samples, {"name": "toy", "semi_synthetic": True, "description": "toy"},
                       extra_tables={"nodules": pd.DataFrame({"nodule_id": ["n0"], "size": [3]})})
    assert len(ds) == 12 and ds.n_raters == 3 and ds.semi_synthetic
    assert isinstance(ds.images, np.memmap) and not ds.images.flags.writeable
    np.testing.assert_array_equal(ds[5]["masks"], samples[5]["masks"])
    assert ds[5]["case_id"] == "c005" and ds[5]["patient_id"] == "p2"
    assert ds.attributes.shape == (12, 3, 9)
    assert ds.tables["nodules"]["size"].tolist() == [3]
    again = read_dataset(tmp_path / "ds")
    assert again.cases.equals(ds.cases)
    for patient, group in ds.cases.groupby("patient_id"):
        assert group["fold"].nunique() == 1, patient
    info = ds.info()
    assert info["patches"] == 12 and info["patients"] == 6 and info["raters"] == 3
    assert sum(info["fold_test_sizes"]) == 12
    assert info["raters_present_histogram"] == {"3": 12}
    train, val, test = ds.split(0, val_fraction=0.0)
    assert len(train) + len(test) == 12
    json.dumps(info)  # plain JSON types


def test_cache_rejects_bad_input_and_incomplete_folders(tmp_path):
    good = [_sample(i, f"p{i}") for i in range(4)]
    with pytest.raises(DataContractError, match="duplicate case_id"):
        write_dataset(tmp_path / "a", good + [_sample(0, "p9")], {"name": "dup"})
    odd = _sample(5, "p5", n=2)
    with pytest.raises(DataContractError, match="case .c005. has 2 masks but case .c000. has 3"):
        write_dataset(tmp_path / "b", good + [odd], {"name": "mixed"})
    with pytest.raises(DataContractError, match="no samples"):
        write_dataset(tmp_path / "c", [], {"name": "empty"})
    bad = _sample(6, "p6")
    bad["masks"][0, 0, 0] = 3
    with pytest.raises(DataContractError, match="case c006"):
        write_dataset(tmp_path / "d", good + [bad], {"name": "bad"})
    with pytest.raises(FileNotFoundError, match="meta.json"):
        read_dataset(tmp_path / "d")
    ds = write_dataset(tmp_path / "e", good, {"name": "ok"})
    (ds.root / "present.npy").unlink()
    with pytest.raises(DataContractError, match="present.npy"):
        read_dataset(tmp_path / "e")


# ------------------------------------------------------------------------------- registry
def test_registry_builds_once_and_rebuilds(tmp_path, monkeypatch):
    monkeypatch.setenv("MRSEG_CACHE", str(tmp_path))
    calls = []

    @register_dataset("toy-skeleton", version="1")
    def _build(progress: bool = True, n: int = 8) -> BuiltDataset:
        calls.append(n)
        return BuiltDataset([_sample(i, f"p{i // 2}") for i in range(n)], {"semi_synthetic": False})

    try:
        ds = load_dataset("toy-skeleton", progress=False)
        assert len(ds) == 8 and ds.meta["name"] == "toy-skeleton" and ds.meta["builder_version"] == "1"
        load_dataset("toy-skeleton", progress=False)
        assert calls == [8]  # cached
        load_dataset("toy-skeleton", progress=False, rebuild=True)
        assert calls == [8, 8]
        assert len(load_dataset("toy-skeleton", progress=False, n=10)) == 10
        assert (tmp_path / "datasets" / cache_key("toy-skeleton", {"n": 10})).is_dir()
        register_dataset("toy-skeleton", version="2")(_build)  # a new builder version invalidates the cache
        assert load_dataset("toy-skeleton", progress=False).meta["builder_version"] == "2"
        assert calls == [8, 8, 10, 8]
        assert "toy-skeleton" in registry.available_datasets()
    finally:
        registry._BUILDERS.pop("toy-skeleton", None)
    with pytest.raises(KeyError, match="unknown dataset"):
        load_dataset("no-such-dataset")


def test_cache_key_is_stable():
    assert cache_key("x", {}) == "x"
    assert cache_key("x", {"a": 1, "b": 2}) == cache_key("x", {"b": 2, "a": 1}) != cache_key("x", {"a": 2, "b": 2})


# --------------------------------------------------------------------------------- config
def test_run_config_round_trip_and_run_id():
    cfg = RunConfig.from_profile("smoke", model="shared", fold=2, n_present=3)
    assert cfg.profile == "smoke" and cfg.epochs == PROFILE_PRESETS["smoke"]["epochs"]
    again = RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and isinstance(again.encoder_filters, tuple)
    assert cfg.run_id == f"synthetic/shared/np3/fold2/seed1337/smoke-e{cfg.epochs}-{cfg.config_hash[:6]}"
    ablation = RunConfig.from_profile("demo", model="shared+s2", orthogonality=True, prior_bank_k=100)
    assert ablation.variant == "ortho+bank100" and "/shared+s2+ortho+bank100/" in ablation.run_id
    with_options = RunConfig.from_profile("smoke", dataset_options={"n_cases": 40})
    assert with_options.run_id.startswith("synthetic@") and with_options.run_id != RunConfig.from_profile("smoke").run_id
    for profile in ("smoke", "demo", "paper"):
        for model in MODELS:
            RunConfig.from_profile(profile, model=model)


def test_run_config_validation_names_the_field():
    for overrides, field in [({"model": "unet"}, "model"), ({"n_present": 0}, "n_present"),
                             ({"select_on": "best"}, "select_on"), ({"device": "tpu"}, "device"),
                             ({"epochs": 0}, "epochs"), ({"fold": -1}, "fold")]:
        with pytest.raises(ValueError, match=field):
            RunConfig.from_profile("smoke", **overrides)
    with pytest.raises(ValueError, match="unknown config fields: colour"):
        RunConfig.from_dict({"colour": "red"})
    with pytest.raises(ValueError, match="unknown profile"):
        RunConfig.from_profile("huge")


def test_a_stored_config_with_a_retired_field_still_loads_under_the_same_run_id():
    cfg = RunConfig.from_profile("smoke", model="shared")
    stored = {**cfg.to_dict(), "num_workers": 4}  # written by an earlier version
    assert RunConfig.from_dict(stored).run_id == cfg.run_id


# ------------------------------------------------------------------------------- manifest
def test_manifest_updates_merge_atomically(tmp_path):
    run = tmp_path / "run"
    assert read_manifest(run) == {} and not is_complete(run)
    update_manifest(run, status="running", run_id="r1")
    m = update_manifest(run, seconds={"train": 1.5})
    assert m["status"] == "running" and m["run_id"] == "r1" and m["seconds"] == {"train": 1.5}
    assert m["code_version"] == code_version() and "updated" in m
    update_manifest(run, status="complete")
    assert is_complete(run) and read_manifest(run)["run_id"] == "r1"
    with pytest.raises(ValueError, match="status"):
        update_manifest(run, status="done")
    assert is_complete(run)
    assert code_version().startswith("0.")


def test_model_variant_registry_declares_each_model_once_and_consistently():
    assert MODELS == tuple(MODEL_VARIANTS) and len(set(MODELS)) == len(MODELS)
    for name, variant in MODEL_VARIANTS.items():
        config = RunConfig.from_profile("smoke", model=name)
        assert variant.name == name and config.model_variant is variant
        assert config.has_stage2 == variant.stage2 == (variant.stage1 is not None)
        # a posterior on one rater's mask at a time: the per-rater ELBO's models and shared-target
        assert config.is_per_rater == variant.is_per_rater == (variant.loss in ("per-rater", "shared-target"))
        if variant.stage2:   # a +s2 model is its Stage 1 model plus the heads
            base = MODEL_VARIANTS[variant.stage1]
            assert not base.stage2 and (base.posterior, base.loss) == (variant.posterior, variant.loss)
            assert config.stage1_model == base.name
        else:
            assert config.stage1_model == name
    # the models whose run id carries ``objective`` (run ids of the others must not change)
    assert set(OBJECTIVE_MODELS) == {"shared", "shared+s2", "shared-masked", "shared-wide"}
    assert {n: v.rater_draw for n, v in MODEL_VARIANTS.items() if v.rater_draw} == {
        "shared": "batch", "shared+s2": "batch", "shared-wide": "batch", "shared-masked": "image", "shared-target": "image"}
    with pytest.raises(ValueError, match="model must be one of"):
        model_variant("unet")
