"""Objective settings under which a posterior can carry information: BCE-sum criteria, KL weight
scaling, KL warm-up, GECO, the shared-target posterior, and the per-epoch collapse history."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from mrseg.config import RunConfig
from mrseg.losses import Criterion, Geco, bce_sum_loss, stage1_losses, warmup_scale
from mrseg.models import build_model
from mrseg.train import run_training_and_evaluation


def _batch(seed: int = 0, b: int = 4, n: int = 4, size: int = 32):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 1, size, size, generator=g)
    masks = (torch.rand(b, n, size, size, generator=g) > 0.7).float()
    present = torch.ones(b, n, dtype=torch.bool)
    present[0, 1:] = False
    return x, masks, present


def _losses(config: RunConfig, model, batch, **kw):
    torch.manual_seed(5)
    return stage1_losses(model, *batch, config, **kw)


def test_bce_sum_on_a_hand_checked_case():
    probs = torch.full((1, 2, 2), 0.5)
    target = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    assert bce_sum_loss(probs, target).item() == pytest.approx(4 * math.log(2), rel=1e-6)
    sure = torch.tensor([[[0.9, 0.2], [0.2, 0.9]]])
    want = -(2 * math.log(0.9) + 2 * math.log(0.8))
    assert bce_sum_loss(sure, target).item() == pytest.approx(want, rel=1e-6)


def test_criterion_parts():
    assert Criterion.named("gdl") == Criterion(True, None)
    assert Criterion.named("soft-dice") == Criterion(False, "soft-dice")
    assert Criterion.named("bce-sum") == Criterion(False, "bce-sum")
    assert Criterion.named("gdl+bce-sum") == Criterion(True, "bce-sum")
    with pytest.raises(ValueError, match="unknown criterion"):
        Criterion.named("gdl+focal")
    with pytest.raises(ValueError, match="criterion must be one of"):
        RunConfig.from_profile("smoke", criterion="bce")


@pytest.mark.parametrize("model_name", ["shared", "shared-masked", "per-rater", "probunet-mean", "shared-target"])
def test_gdl_plus_bce_sum_is_the_sum_of_its_parts(model_name):
    batch = _batch()
    parts = {}
    for criterion in ("gdl", "bce-sum", "gdl+bce-sum"):
        config = RunConfig.from_profile("smoke", model=model_name, criterion=criterion)
        torch.manual_seed(0)
        model = build_model(config)
        parts[criterion] = _losses(config, model, batch, rater_index=torch.tensor([1, 2, 0, 3]) if model_name == "shared"
                                   else torch.tensor([0, 2, 1, 3]) if model_name in ("shared-masked", "shared-target") else None)
    assert parts["bce-sum"]["recon"].item() > 50   # summed over 32 x 32 pixels: Kohl et al.'s scale
    assert parts["gdl+bce-sum"]["recon"].item() == pytest.approx(
        parts["gdl"]["recon"].item() + parts["bce-sum"]["recon"].item(), rel=1e-5)
    if model_name != "probunet-mean":   # ProbUNet has no bound loss
        assert parts["gdl+bce-sum"]["bound"].item() == pytest.approx(
            parts["gdl"]["bound"].item() + parts["bce-sum"]["bound"].item(), rel=1e-5)


def test_kl_scale_weights_only_the_kl_term():
    config = RunConfig.from_profile("smoke", model="shared", kl_weight=0.5)
    torch.manual_seed(0)
    model = build_model(config)
    batch = _batch()
    full = _losses(config, model, batch, rater_index=torch.zeros(4, dtype=torch.long))
    tenth = _losses(config, model, batch, rater_index=torch.zeros(4, dtype=torch.long), kl_scale=0.1)
    assert tenth["kl"].item() == pytest.approx(full["kl"].item())
    assert (full["loss"] - tenth["loss"]).item() == pytest.approx(0.5 * 0.9 * full["kl"].item(), rel=1e-4, abs=1e-7)


def test_warmup_scale():
    assert warmup_scale(0, 0, 10, 2) == 0.0
    assert warmup_scale(1, 5, 10, 2) == pytest.approx(0.75)
    assert warmup_scale(5, 0, 10, 2) == 1.0
    assert warmup_scale(0, 0, 10, 0) == 1.0


def test_geco_multiplier_on_hand_checked_steps():
    geco = Geco(kappa=0.1, alpha=0.5, rate=1.0, lambda_max=100.0)
    geco.update(0.3)                       # C = 0.2, C_ma = 0.2
    assert geco.lam == pytest.approx(math.exp(0.2))
    geco.update(0.1)                       # C = 0, C_ma = 0.1
    assert geco.lam == pytest.approx(math.exp(0.3))
    assert geco.kl_scale() == pytest.approx(math.exp(-0.3))
    resumed = Geco(0.1, 0.5, 1.0, 100.0, state=geco.state())
    assert (resumed.lam, resumed.c_ma) == (geco.lam, geco.c_ma)
    low = Geco(kappa=0.5)
    low.update(0.0)                        # constraint met: the multiplier stays at its floor 1
    assert low.lam == 1.0
    high = Geco(kappa=0.0, rate=100.0, lambda_max=50.0)
    high.update(1.0)
    assert high.lam == 50.0


def test_shared_target_posterior_sees_only_the_reconstructed_mask():
    config = RunConfig.from_profile("smoke", model="shared-target")
    torch.manual_seed(0)
    model = build_model(config)
    x, masks, present = _batch()
    index = torch.tensor([0, 2, 1, 3])
    base = _losses(config, model, (x, masks, present), rater_index=index)
    other = masks.clone()
    for b, r in enumerate(index.tolist()):   # change every mask except the one each image reconstructs
        keep = other[b, r].clone()
        other[b] = 1.0 - other[b]
        other[b, r] = keep
    changed = _losses(config, model, (x, other, present), rater_index=index)
    assert changed["kl"].item() == pytest.approx(base["kl"].item(), rel=1e-6)
    assert changed["recon"].item() == pytest.approx(base["recon"].item(), rel=1e-6)
    target = masks.clone()
    target[0, 0] = 1.0 - target[0, 0]
    moved = _losses(config, model, (x, target, present), rater_index=index)
    assert moved["kl"].item() != pytest.approx(base["kl"].item(), rel=1e-6)


def test_optional_fields_keep_earlier_run_ids_and_enter_them_when_set():
    plain = RunConfig.from_profile("smoke", model="shared")
    assert "geco_kappa" not in plain.identity() and "kl_warmup_epochs" not in plain.identity()
    geco = RunConfig.from_profile("smoke", model="shared", geco_kappa=0.05)
    warm = RunConfig.from_profile("smoke", model="shared", kl_warmup_epochs=3, kl_weight=1e-3)
    bce = RunConfig.from_profile("smoke", model="shared", criterion="gdl+bce-sum")
    assert len({plain.run_id, geco.run_id, warm.run_id, bce.run_id}) == 4
    assert "shared+geco0.05/" in geco.run_id
    assert "shared+klw0.001+warm3/" in warm.run_id
    assert "shared+gdlbcesum/" in bce.run_id
    with pytest.raises(ValueError, match="geco_alpha"):
        RunConfig.from_profile("smoke", geco_kappa=0.1, geco_alpha=1.0)
    with pytest.raises(ValueError, match="kl_warmup_epochs"):
        RunConfig.from_profile("smoke", kl_warmup_epochs=-1)


def test_history_records_kl_per_dimension_and_validation_collapse(tmp_path):
    config = RunConfig.from_profile("smoke", model="per-rater", epochs=2, max_train_cases=16, geco_kappa=0.05,
                                    kl_warmup_epochs=1)
    run_training_and_evaluation(config, tmp_path / "run", progress=False)
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    dims = [f"kl_d{d}" for d in range(config.latent_dim)]
    assert set(dims + [f"val_kl_d{d}" for d in range(config.latent_dim)]
               + ["val_kl", "val_active_units", "kl_scale"]) <= set(history.columns)
    # the per-dimension training KL sums to the logged KL; the validation KL likewise
    assert history[dims].sum(axis=1).to_numpy() == pytest.approx(history["kl"].to_numpy(), rel=1e-4)
    val_dims = history[[f"val_kl_d{d}" for d in range(config.latent_dim)]].sum(axis=1).to_numpy()
    assert val_dims == pytest.approx(history["val_kl"].to_numpy(), rel=1e-6)
    assert (history["val_active_units"] >= 0).all() and (history["val_active_units"] <= config.latent_dim).all()
    # the reconstruction misses kappa = 0.05 on a smoke run: GECO lowers the KL weight below 1
    assert (history["kl_scale"] < 1).all()
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert ckpt["geco"]["lambda"] > 1


def test_geco_run_resumes_to_identical_weights(tmp_path):
    config = RunConfig.from_profile("smoke", model="shared", epochs=2, max_train_cases=16, geco_kappa=0.05)
    run_training_and_evaluation(config, tmp_path / "full", progress=False)

    class Stop(Exception):
        pass

    def stop_after_first(stage, epoch):
        if epoch == 0:
            raise Stop

    with pytest.raises(Stop):
        run_training_and_evaluation(config, tmp_path / "resumed", progress=False, epoch_hook=stop_after_first)
    run_training_and_evaluation(config, tmp_path / "resumed", progress=False)
    full = torch.load(tmp_path / "full" / "best.pt", weights_only=True)
    resumed = torch.load(tmp_path / "resumed" / "best.pt", weights_only=True)
    assert all(torch.equal(full[k], resumed[k]) for k in full)
    a = pd.read_csv(tmp_path / "full" / "history.csv")["kl_scale"]
    b = pd.read_csv(tmp_path / "resumed" / "history.csv")["kl_scale"]
    assert a.tolist() == b.tolist()
