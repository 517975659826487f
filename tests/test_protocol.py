"""Protocol fidelity: D-Persona's criterion, objectives, paired rater draws, L2 set, Stage 2
attention, the exact ResNet-34 U-Net and the parameter counts of ``model summary``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mrseg import losses
from mrseg.config import RunConfig
from mrseg.data.torch_data import draw_step, static_present, step_generator
from mrseg.losses import dpersona_gdl, stage1_losses
from mrseg.models import build_model


def _gdl_reference(p: np.ndarray, t: np.ndarray) -> float:
    """The formula of the issue in float64 numpy: per channel pooled over batch and space."""
    p, t = p.astype(np.float64), t.astype(np.float64)
    if p.shape[1] == 1:
        p, t = np.concatenate([1 - p, p], 1), np.concatenate([1 - t, t], 1)
    dice = []
    for c in range(p.shape[1]):
        tc, pc = t[:, c], p[:, c]
        w = 1.0 / max(tc.sum() ** 2, 1e-6)
        dice.append(2 * (pc * tc).sum() * w / max((pc + tc).sum() * w, 1e-6))
    return 1.0 - float(np.mean(dice))


def test_gdl_hand_computed_all_empty_target():
    # fg: T = 0, so w = 1e6, I = 0 -> dice 0; bg: T = 8, I = 8 * 0.9, D = 8 * 1.9 -> dice 2 * 7.2 / 15.2
    probs = torch.full((2, 1, 2, 2), 0.1)
    loss = dpersona_gdl(probs, torch.zeros_like(probs))
    assert float(loss) == pytest.approx(1 - (0 + 2 * 7.2 / 15.2) / 2, abs=1e-6)


def test_gdl_hand_computed_perfect_and_two_channels():
    ones = torch.ones(3, 1, 4, 4)
    # perfect fg (dice 1); the added background is empty in target and prediction (dice 0)
    assert float(dpersona_gdl(ones, ones)) == pytest.approx(0.5, abs=1e-6)
    # C = 2, no background added: channel 0 perfect, channel 1: p = 0.5 everywhere, t = 1 on half the pixels
    p = torch.stack([torch.ones(2, 4, 4), torch.full((2, 4, 4), 0.5)], 1)
    t = torch.zeros(2, 2, 4, 4)
    t[:, 0] = 1
    t[:, 1, :, :2] = 1
    # channel 1: T = 16, I = 8, D = 16 + 16 = 32 -> dice = 16 / 32 = 0.5
    assert float(dpersona_gdl(p, t)) == pytest.approx(1 - (1 + 0.5) / 2, abs=1e-6)


@pytest.mark.parametrize("channels", [1, 2, 4])
def test_gdl_matches_formula_on_random_and_empty_batches(channels):
    g = torch.Generator().manual_seed(channels)
    for empty in (False, True):
        p = torch.rand(5, channels, 16, 16, generator=g)
        t = (torch.rand(5, channels, 16, 16, generator=g) > 0.7).float()
        if empty:
            t.zero_()
        assert float(dpersona_gdl(p, t)) == pytest.approx(_gdl_reference(p.numpy(), t.numpy()), abs=1e-6)


def test_gdl_gradient_of_an_empty_target_is_not_negligible():
    """Pooled over the batch, an absent (zero-filled) rater's empty target pushes the predicted
    foreground down at a per-pixel scale comparable to a real target (the per-image soft Dice with
    smoothing 1 gives it far less); the zero-fill mechanism the thesis blames relies on it."""
    logits = torch.full((2, 1, 32, 32), -1.0, requires_grad=True)
    real = torch.zeros(2, 1, 32, 32)
    real[:, :, 8:24, 8:24] = 1
    grads = {}
    for name, loss_fn in (("gdl", lambda p, t: dpersona_gdl(p, t)),
                          ("soft", lambda p, t: losses.soft_dice_loss(p[:, 0], t[:, 0]).mean())):
        for kind, target in (("real", real), ("empty", torch.zeros_like(real))):
            (g,) = torch.autograd.grad(loss_fn(torch.sigmoid(logits), target), logits)
            grads[name, kind] = float(g[target == 0].abs().mean())
    ratio_gdl = grads["gdl", "real"] / grads["gdl", "empty"]
    ratio_soft = grads["soft", "real"] / grads["soft", "empty"]
    assert ratio_soft > 5 * ratio_gdl


def _smoke(model: str, **kw) -> RunConfig:
    return RunConfig.from_profile("smoke", model=model, **kw)


def _batch(seed: int = 0, b: int = 3, n: int = 4, s: int = 32):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 1, s, s, generator=g)
    masks = (torch.rand(b, n, s, s, generator=g) > 0.6).float()
    return x, masks, torch.ones(b, n, dtype=torch.bool)


@pytest.mark.parametrize("model_name", ["shared", "shared-masked"])
def test_thesis_eq_is_the_mean_of_the_one_rater_terms(model_name):
    """Same weights and posterior sample: eq. 3.2's reconstruction (all slots) equals the mean of
    D-Persona's one-rater reconstruction over the rater index (GDL, every rater present)."""
    x, masks, present = _batch(1)
    torch.manual_seed(0)
    model = build_model(_smoke(model_name), n_raters=4)
    recon = []
    for r in range(4):
        torch.manual_seed(3)
        recon.append(stage1_losses(model, x, masks, present, _smoke(model_name),
                                   rater_index=torch.full((3,), r))["recon"])
    torch.manual_seed(3)
    full = stage1_losses(model, x, masks, present, _smoke(model_name, objective="thesis-eq"))["recon"]
    torch.testing.assert_close(full, torch.stack(recon).mean(), rtol=1e-5, atol=1e-6)
    assert float(torch.stack(recon).detach().std()) > 0   # the index matters


def test_shared_absent_rater_index_is_a_zero_filled_target():
    x, masks, present = _batch(2)
    present[:, 2] = False
    torch.manual_seed(0)
    model = build_model(_smoke("shared"), n_raters=4)
    torch.manual_seed(4)
    out = stage1_losses(model, x, masks, present, _smoke("shared"), rater_index=torch.full((3,), 2))
    torch.manual_seed(4)
    emptied = masks.clone()
    emptied[:, 2] = 0
    ref = stage1_losses(model, x, emptied, present, _smoke("shared"), rater_index=torch.full((3,), 2))
    torch.testing.assert_close(out["recon"], ref["recon"])
    assert float(out["recon"]) > 0


def test_bound_is_the_mean_of_two_pooled_dice_terms_and_l2_skips_fcomb_last_layer():
    logits = torch.randn(2, 5, 16, 16)
    masks = (torch.rand(2, 4, 16, 16) > 0.5).float()
    present = torch.ones(2, 4, dtype=torch.bool)
    union, inter = masks.amax(1), masks.amin(1)
    ref = _gdl_reference(torch.sigmoid(torch.stack([logits.amax(1), logits.amin(1)], 1)).numpy(),
                         torch.stack([union, inter], 1).numpy())
    assert float(losses.bound_loss_gdl(logits, masks, present)) == pytest.approx(ref, abs=1e-6)
    model = build_model(_smoke("shared"), n_raters=4)
    params = losses.regularised_parameters(model, [model.posterior_net])
    ids = {id(p) for p in params}
    assert not any(id(p) in ids for p in model.fcomb.out.parameters())
    assert all(id(p) in ids for p in model.fcomb.feat_in.parameters())
    expected = sum(float(p.norm()) for p in params)   # unsquared norms
    assert float(losses.l2_penalty(params)) == pytest.approx(expected, rel=1e-5)


def test_rater_draws_depend_only_on_seed_fold_epoch_step():
    available = torch.ones(12, 4, dtype=torch.bool)
    a = draw_step(available, 1, step_generator(1337, 0, 2, 5))
    torch.manual_seed(123)   # the model's RNG does not enter
    torch.rand(100)
    b = draw_step(available, 1, step_generator(1337, 0, 2, 5))
    c = draw_step(available, 1, step_generator(1337, 0, 2, 6))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["present"], c["present"])
    assert (a["rater_batch"] == a["rater_batch"][0]).all()
    assert a["present"].gather(1, a["rater_image"][:, None]).all()   # shared-masked: a present rater


def test_static_missingness_is_fixed_per_image():
    available = torch.ones(20, 4, dtype=torch.bool)
    fixed = static_present(available, 2, 1337, 0)
    assert (fixed.sum(1) == 2).all()
    assert torch.equal(fixed, static_present(available, 2, 1337, 0))
    for step in range(3):
        assert torch.equal(draw_step(fixed, 2, step_generator(1337, 0, 0, step), static=True)["present"], fixed)


def test_shared_and_per_rater_runs_see_identical_rater_draws(tmp_path, monkeypatch):
    from mrseg.train import run_training_and_evaluation

    seen: dict[str, list[torch.Tensor]] = {}
    original = losses.stage1_losses

    def record(model, x, masks, present, config, **kw):
        seen.setdefault(config.model, []).append(present.clone())
        return original(model, x, masks, present, config, **kw)

    monkeypatch.setattr(losses, "stage1_losses", record)
    for name in ("shared", "per-rater"):
        config = _smoke(name, n_present=1, epochs=1, select_on="last")
        run_training_and_evaluation(config, tmp_path / name, progress=False)
    assert len(seen["shared"]) == len(seen["per-rater"]) > 1
    assert all(torch.equal(a, b) for a, b in zip(seen["shared"], seen["per-rater"]))


def test_stage2_attention_has_no_sqrt_d_scaling():
    from mrseg.models.stage2 import Stage2Heads

    heads = Stage2Heads(8, 6, 4)
    q = torch.randn(2, 4, 6)
    bank = torch.randn(2, 10, 6)
    expected = torch.softmax(q @ bank.transpose(1, 2), -1) @ bank
    torch.testing.assert_close(heads.attend(q, bank), expected)


def _conv(cin: int, cout: int, k: int, bias: bool = True) -> int:
    return cin * cout * k * k + (cout if bias else 0)


def _dpersona_counts(n_raters: int = 4, latent: int = 6, filters=(16, 32, 64, 128, 256), feat: int = 16) -> dict:
    """D-Persona's parts by arithmetic from the architecture facts (not from our modules)."""
    def encoder(cin: int) -> int:
        total, prev = 0, cin
        for f in filters:                       # 3 conv3x3 per block
            total += _conv(prev, f, 3) + 2 * _conv(f, f, 3)
            prev = f
        return total + _conv(prev, 2 * latent, 1)
    fcomb = _conv(feat + latent, feat, 1) + 2 * _conv(feat, feat, 1) + _conv(feat, 1, 1)
    head = sum(_conv(a, b, 3) + _conv(b, b, 3) for a, b in ((feat, 32), (32, 16), (16, latent)))
    bn = lambda c: 2 * c  # noqa: E731
    resnet = _conv(1, 64, 7, False) + bn(64)
    prev = 64
    for width, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        for b in range(blocks):
            cin = prev if b == 0 else width
            resnet += _conv(cin, width, 3, False) + bn(width) + _conv(width, width, 3, False) + bn(width)
            if b == 0 and cin != width:
                resnet += _conv(cin, width, 1, False) + bn(width)
        prev = width
    decoder = 0
    for cin, skip, cout in ((512, 256, 256), (256, 128, 128), (128, 64, 64), (64, 64, 32), (32, 0, 16)):
        decoder += _conv(cin + skip, cout, 3, False) + bn(cout) + _conv(cout, cout, 3, False) + bn(cout)
    return {"resnet": resnet, "decoder": decoder, "backbone": resnet + decoder, "prior": encoder(1),
            "posterior": encoder(1 + n_raters), "fcomb": fcomb, "stage2": n_raters * head}


def test_resnet34_unet_has_dpersona_parameter_count():
    from mrseg.models.backbones import ResNet34UNet

    ref = _dpersona_counts()
    assert (ref["resnet"], ref["decoder"]) == (21_278_400, 3_151_552)
    net = ResNet34UNet(1, 16)
    assert sum(p.numel() for p in net.encoder.parameters()) == ref["resnet"]
    assert sum(p.numel() for p in net.decoder.parameters()) == ref["decoder"]
    assert sum(p.numel() for p in net.parameters()) == 24_429_952
    assert net(torch.rand(1, 1, 64, 64)).shape == (1, 16, 64, 64)


def test_model_summary_paper_matches_dpersona(capsys):
    from mrseg.cli import main

    assert main(["model", "summary", "--profile", "paper", "--model", "shared+s2", "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)
    ref = _dpersona_counts()
    for part in ("backbone", "prior", "posterior", "fcomb", "stage2"):
        assert counts[part] == ref[part], part
    assert counts["total"] == sum(ref[p] for p in ("backbone", "prior", "posterior", "fcomb", "stage2"))


def test_config_objective_fields_validate_and_tag_the_run_id():
    assert RunConfig().objective == "dpersona-code" and RunConfig().criterion == "gdl"
    for profile in ("smoke", "demo", "paper"):
        assert RunConfig.from_profile(profile).objective == "dpersona-code"
    with pytest.raises(ValueError, match="objective"):
        RunConfig(objective="eq").validate()
    with pytest.raises(ValueError, match="missing"):
        RunConfig(missing="sometimes").validate()
    shared = RunConfig(model="shared", objective="thesis-eq")
    assert "thesiseq" in shared.run_id
    # per-rater follows eq. 3.5 under both objectives: one run serves both
    assert RunConfig(model="per-rater", objective="thesis-eq").run_id == RunConfig(model="per-rater").run_id
    assert "softdice" in RunConfig(criterion="soft-dice").run_id
    assert "mitb2post" in RunConfig(model="shared", posterior_encoder="mit-b2").run_id


def test_fidelity_table_reads_our_settings_and_objective_comparison_pairs_folds(tmp_path):
    import pandas as pd

    from mrseg.report import protocol
    from mrseg.scoring.results import Results

    table = protocol.fidelity_table()
    assert {"thesis", "D-Persona code", "ours", "remaining deviation"} <= set(table.columns)
    ours = dict(zip(table["setting"], table["ours"]))
    assert "24,429,952" in ours["Backbone"] and "dpersona-code" in ours["Raters reconstructed per step"]
    rows = []
    for study, shift, folds in (("sparsity", 0.0, (0, 1, 2, 3)), ("sparsity_thesis_eq", 0.1, (0, 1))):
        for row, base in (("shared_s1", 0.5), ("per_rater_s1", 0.4), ("shared_masked_s1", 0.45)):
            for fold in folds:
                rows.append({"study": study, "row": row, "n_present": 1, "fold": fold,
                             "ged_dpersona": base + shift + 0.01 * fold})
    res = Results(folder=tmp_path, plan="thesis", profile="demo", per_fold=pd.DataFrame(rows))
    frame = protocol.objective_comparison(res, levels=(1,))
    shared = frame[frame["model"] == "shared"].iloc[0]
    assert shared["folds"] == 2                                  # only the folds both objectives ran
    assert float(shared["dpersona-code"]) == pytest.approx(0.505)
    assert float(shared["thesis-eq"]) == pytest.approx(0.605)
    assert float(shared["per-rater gain % (dpersona-code)"]) == pytest.approx(100 * 0.1 / 0.505, abs=0.1)


def test_mit_b2_as_the_shared_posterior_encoder():
    """The section 3.3 reading: the shared posterior is a MiT-B2 encoder; the backbone stays."""
    config = _smoke("shared", posterior_encoder="mit-b2")
    torch.manual_seed(0)
    model = build_model(config, n_raters=4)
    assert type(model.backbone).__name__ == "SmallUNet"
    assert 24e6 < sum(p.numel() for p in model.posterior_net.encoder.parameters()) < 26e6
    x, masks, present = _batch(5)
    out = stage1_losses(model, x, masks, present, config, rater_index=torch.zeros(3, dtype=torch.long))
    assert torch.isfinite(out["loss"]) and float(out["kl"]) < 50.0   # q starts near N(0, I) (KL was ~1e7)
    out["loss"].backward()
    assert all(p.grad is not None for p in model.posterior_net.to_params.parameters())
    with pytest.raises(ValueError, match="shared"):
        _smoke("per-rater", posterior_encoder="mit-b2")
