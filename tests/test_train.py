"""Training runs on the smoke profile: every model end to end, resume, selection, NaN handling."""

from __future__ import annotations

import math
import subprocess

import numpy as np
import pandas as pd
import pytest
import torch

from mrseg import losses
from mrseg.bookkeeping.manifest import read_manifest
from mrseg.config import MODELS, RunConfig
from mrseg.evaluate import case_columns
from mrseg.io import read_npz
from mrseg.models import build_model
from mrseg.paths import REPO_ROOT, runs_dir
from mrseg.train import TrainingDiverged, load_trained_model, run_training_and_evaluation, stage1_config


def _smoke(**kw) -> RunConfig:
    return RunConfig.from_profile("smoke", **kw)


@pytest.mark.parametrize("name", MODELS)
def test_every_model_trains_and_evaluates(name):
    config = _smoke(model=name)
    summary = run_training_and_evaluation(config, progress=False)
    run = runs_dir() / config.run_id
    manifest = read_manifest(run)
    assert manifest["status"] == "complete" and manifest["epochs_done"] == 2
    assert manifest["selection"] == "val" and manifest["semi_synthetic"] is False
    table = pd.read_csv(run / "eval_cases.csv")
    assert list(table.columns) == case_columns(4)
    assert len(table) == summary["n_cases"] == 8 and (table["M"] == 4).all()
    assert np.allclose(table["dice_match_m4"], table["dice_match"])   # M = 4: the same matching
    assert manifest["n_test"] == 8 and manifest["n_train"] > 0
    metrics = table[case_columns(4)[13:]].to_numpy(dtype=float)
    assert np.isfinite(metrics).all()
    assert summary["ged"] == pytest.approx(table["ged"].mean())
    samples = read_npz(run / "samples.npz")
    assert samples["probs"].shape == (6, 4, 32, 32) and samples["raters"].shape == (6, 4, 32, 32)
    history = pd.read_csv(run / "history.csv")
    # Stage 1 is selected by validation GED, Stage 2 by the mean per-expert Dice (D-Persona)
    selection = "val_expert_dice" if name.endswith("+s2") else "val_ged"
    assert len(history) == 2 and np.isfinite(history[selection]).all()
    if name.endswith("+s2"):   # Stage 1 was trained first; Stage 2 leaves its weights untouched
        s1_run = runs_dir() / stage1_config(config).run_id
        assert read_manifest(s1_run)["status"] == "complete"
        s1 = torch.load(s1_run / "best.pt", weights_only=True)
        s2 = torch.load(run / "best.pt", weights_only=True)
        model = build_model(config)
        weights = {k for k, _ in model.named_parameters()}
        for key, value in s1.items():
            if key in weights:
                assert torch.equal(value, s2[key]), key
        # D-Persona trains Stage 2 in train mode: BatchNorm running statistics keep updating
        stats = [k for k in s1 if k.endswith("running_mean")]
        assert stats and any(not torch.equal(s1[k], s2[k]) for k in stats)
        assert any(k.startswith("stage2.") for k in s2)


def test_completed_run_is_skipped():
    config = _smoke(model="shared")
    first = run_training_and_evaluation(config, progress=False)
    mtime = (runs_dir() / config.run_id / "best.pt").stat().st_mtime
    assert run_training_and_evaluation(config, progress=False) == first
    assert (runs_dir() / config.run_id / "best.pt").stat().st_mtime == mtime


def test_stage1_config_mapping():
    s2 = _smoke(model="shared+s2", orthogonality=True, backbone="unet-small", dual_diversity=True)
    s1 = stage1_config(s2)
    assert s1.model == "shared" and not s1.orthogonality and s1.dual_diversity and s1.fold == s2.fold
    assert stage1_config(_smoke(model="per-rater+s2", prior_bank_k=100)).run_id == _smoke(model="per-rater").run_id
    assert stage1_config(_smoke(model="per-rater")) is None


class _Stop(RuntimeError):
    pass


def _stop_after_first_epoch(stage, epoch):
    if epoch == 0:
        raise _Stop("simulated kill")


def test_resume_after_interruption_gives_identical_weights(tmp_path):
    config = _smoke(model="per-rater", epochs=3, n_present=2)
    ref = run_training_and_evaluation(config, tmp_path / "ref", progress=False)
    with pytest.raises(_Stop):
        run_training_and_evaluation(config, tmp_path / "cut", progress=False, epoch_hook=_stop_after_first_epoch)
    assert read_manifest(tmp_path / "cut")["status"] == "failed"
    resumed = run_training_and_evaluation(config, tmp_path / "cut", progress=False)
    a = torch.load(tmp_path / "ref" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert resumed == ref
    assert pd.read_csv(tmp_path / "cut" / "eval_cases.csv").equals(pd.read_csv(tmp_path / "ref" / "eval_cases.csv"))


def test_nonfinite_steps_are_skipped_and_counted(tmp_path, monkeypatch):
    calls = {"n": 0}
    original = losses.stage1_losses

    def flaky(*args, **kw):
        out = original(*args, **kw)
        calls["n"] += 1
        if calls["n"] in (2, 3):
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(losses, "stage1_losses", flaky)
    run_training_and_evaluation(_smoke(model="shared", select_on="last"), tmp_path / "run", progress=False)
    manifest = read_manifest(tmp_path / "run")
    assert manifest["skipped_steps"] == 2 and manifest["status"] == "complete"
    assert manifest["selection"] == "last" and manifest["best_epoch"] == 2


def test_diverging_run_stops_with_clear_error(tmp_path, monkeypatch):
    original = losses.stage1_losses

    def broken(*args, **kw):
        out = original(*args, **kw)
        out["loss"] = out["loss"] + float("inf")
        return out

    monkeypatch.setattr(losses, "stage1_losses", broken)
    with pytest.raises(TrainingDiverged, match="3 consecutive non-finite"):
        run_training_and_evaluation(_smoke(model="shared", max_bad_steps=3), tmp_path / "run", progress=False)
    manifest = read_manifest(tmp_path / "run")
    assert manifest["status"] == "failed" and "TrainingDiverged" in manifest["error"]


def test_load_trained_model_and_selection_on_test(tmp_path):
    config = _smoke(model="per-rater", select_on="test")
    run_training_and_evaluation(config, tmp_path / "run", progress=False)
    model, loaded = load_trained_model(tmp_path / "run")
    assert loaded == config and model.is_per_rater and not model.training
    assert read_manifest(tmp_path / "run")["selection"] == "test"
    assert model.sample(torch.rand(2, 1, 32, 32), 3).shape == (2, 3, 32, 32)


def test_gpu_check_refuses_cleanly_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    proc = subprocess.run(["bash", str(REPO_ROOT / "benchmarks" / "gpu_check.sh")], capture_output=True, text=True,
                          timeout=120, cwd=REPO_ROOT)
    assert proc.returncode == 3
    assert "CUDA" in proc.stderr and "Traceback" not in proc.stderr


def test_ablation_switches_train(tmp_path):
    config = _smoke(model="shared+s2", orthogonality=True, prior_bank_k=5, dual_diversity=True)
    assert config.variant == "ortho+bank5+dualdiv"
    summary = run_training_and_evaluation(config, progress=False)
    assert math.isfinite(summary["ged"])
    model, _ = load_trained_model(runs_dir() / config.run_id)
    assert model.prior_bank.shape == (5, 6)
    assert stage1_config(config).run_id.split("/")[1] == "shared+dualdiv"
    history = pd.read_csv(runs_dir() / config.run_id / "history.csv")
    assert (history["stage"] == 2).all()


def test_beyond_thesis_switches_train(tmp_path):
    config = _smoke(model="per-rater", latent_repulsion=0.5, disagreement_curriculum=True, n_present=3)
    summary = run_training_and_evaluation(config, tmp_path / "run", progress=False)
    assert math.isfinite(summary["ged"]) and summary["n_cases"] == 8
    with pytest.raises(ValueError, match="per-rater"):
        _smoke(model="shared", latent_repulsion=0.5)
