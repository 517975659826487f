"""Model family: API shapes, FComb split, per-rater isolation, naive equivalence, sparsity draws."""

from __future__ import annotations

import pytest
import torch

from mrseg.bench_step import naive_stage1_losses, separate_encoders
from mrseg.config import MODELS, RunConfig
from mrseg.data.torch_data import draw_present, resize_masks
from mrseg.losses import soft_dice_loss, stage1_losses
from mrseg.models import build_model
from mrseg.models.fcomb import FComb

N, B, S = 4, 3, 32


def _config(model: str, **kw) -> RunConfig:
    return RunConfig.from_profile("smoke", model=model, **kw)


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(B, 1, S, S, generator=g)
    masks = (torch.rand(B, N, S, S, generator=g) > 0.6).float()
    return x, masks, torch.ones(B, N, dtype=torch.bool)


@pytest.mark.parametrize("name", MODELS)
def test_model_api_shapes(name):
    torch.manual_seed(0)
    model = build_model(_config(name), n_raters=N).eval()
    x, masks, present = _batch()
    present[0, 1] = False
    feats = model.features(x)
    assert feats.shape == (B, 8, S, S)
    assert model.prior(x).loc.shape == (B, 6)
    post = model.posterior(x, masks, present)
    assert model.is_per_rater == name.startswith("per-rater")
    if model.is_per_rater:
        assert post.loc.shape == (B, N, 6)
        assert torch.isnan(post.loc[0, 1]).all() and torch.isfinite(post.loc[1]).all()
    else:
        assert post.loc.shape == (B, 6)
    assert model.decode(feats, model.prior(x).loc).shape == (B, 1, S, S)
    probs = model.sample(x, 5)
    assert probs.shape == (B, 5, S, S) and float(probs.min()) >= 0 and float(probs.max()) <= 1
    assert model.has_stage2 == name.endswith("+s2")


def test_mit_b2_backbone_gives_full_resolution_features():
    from mrseg.models.backbones import MiTB2

    net = MiTB2(in_channels=1, feature_channels=8)
    feats = net(torch.rand(2, 1, 32, 32))
    assert feats.shape == (2, 8, 32, 32)
    feats.sum().backward()
    assert all(p.grad is not None for p in net.encoder.parameters() if p.requires_grad)
    n_params = sum(p.numel() for p in net.encoder.parameters())
    assert 24e6 < n_params < 26e6   # MiT-B2 has about 25M encoder parameters


def test_fcomb_split_equals_concat_convolution():
    torch.manual_seed(1)
    fcomb = FComb(8, 6)
    feats, z = torch.randn(2, 8, 16, 16), torch.randn(2, 6)
    torch.testing.assert_close(fcomb(feats, z), fcomb.forward_naive(feats, z), rtol=1e-5, atol=1e-5)
    many = fcomb.decode_many(fcomb.feature_part(feats), torch.stack([z, -z], 1))
    torch.testing.assert_close(many[:, 1:2], fcomb.forward_naive(feats, -z), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("impl", ["loop", "batched"])
def test_per_rater_gradients_are_isolated(impl):
    config = _config("per-rater", per_rater_impl=impl)
    torch.manual_seed(0)
    model = build_model(config, n_raters=N)
    x, masks, present = _batch()
    terms = stage1_losses(model, x, masks, present, config)["rater_terms"]      # [B, N]
    params = [list(enc.parameters()) for enc in model.posteriors.encoders]
    flat = [p for group in params for p in group]
    for i in range(N):
        grads = torch.autograd.grad(terms[:, i].sum(), flat, retain_graph=True, allow_unused=True)
        start = 0
        for j, group in enumerate(params):
            part = grads[start: start + len(group)]
            start += len(group)
            total = sum(float(g.abs().sum()) for g in part if g is not None)
            if i == j:
                assert total > 0
            else:
                assert total == 0.0, (i, j)


def test_batched_per_rater_encoders_equal_the_loop():
    torch.manual_seed(0)
    model = build_model(_config("per-rater"), n_raters=N)
    x, masks, present = _batch(3)
    loc, scale = model.posteriors.encode_batched(x, masks)
    q = model.posterior(x, masks, present)
    torch.testing.assert_close(loc, q.loc, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(scale, q.scale, rtol=1e-5, atol=1e-5)


def test_absent_rater_encoder_gets_no_gradient():
    config = _config("per-rater", l2_weight=0.0)   # the L2 penalty alone would reach every encoder
    model = build_model(config, n_raters=N)
    x, masks, present = _batch()
    present[:, 2] = False
    stage1_losses(model, x, masks, present, config)["loss"].backward()
    assert all(p.grad is None for p in model.posteriors.encoders[2].parameters())
    assert all(p.grad is not None for p in model.posteriors.encoders[1].parameters())


@pytest.mark.parametrize("name", ["per-rater", "shared"])
def test_loss_equals_separately_built_encoders_and_naive_decodes(name):
    config = _config(name, bound_samples=3, objective="thesis-eq", criterion="soft-dice")
    torch.manual_seed(0)
    model = build_model(config, n_raters=N)
    encoders = separate_encoders(model) if name == "per-rater" else None
    x, masks, present = _batch(1)
    torch.manual_seed(5)
    fast = stage1_losses(model, x, masks, present, config)
    torch.manual_seed(5)
    naive = naive_stage1_losses(model, encoders, x, masks, present, config)
    for key in ("loss", "recon", "kl", "bound", "l2"):
        torch.testing.assert_close(fast[key], naive[key], rtol=1e-5, atol=1e-6)
    if encoders is not None:   # the copies are separate modules, not views of the model's encoders
        assert all(a is not b for a, b in zip(encoders, model.posteriors.encoders))


def test_shared_zero_fill_vs_masked_recon():
    x, masks, present = _batch(2)
    present[:, 3] = False
    recon = {}
    for name in ("shared", "shared-masked"):
        config = _config(name)
        torch.manual_seed(0)
        model = build_model(config, n_raters=N)
        torch.manual_seed(1)
        recon[name] = stage1_losses(model, x, masks, present, config)["recon"]
    # same weights/draws; shared also trains the absent rater towards the empty mask
    assert not torch.isclose(recon["shared"], recon["shared-masked"])


def test_draw_present_keeps_n_of_available():
    present = torch.tensor([[True] * 4, [True, False, True, True], [False, False, True, False]])
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        d = draw_present(present, 2, g)
        assert (d & ~present).sum() == 0
        assert d.sum(1).tolist() == [2, 2, 1]


def test_resize_masks_stays_binary():
    m = torch.zeros(1, 1, 128, 128)
    m[..., 40:80, 40:80] = 1
    r = resize_masks(m.numpy(), 64)
    assert set(r.unique().tolist()) <= {0.0, 1.0}
    assert float(r.sum()) == 20 * 20


def test_soft_dice_loss_hand_values():
    a = torch.zeros(4, 4)
    a[:2] = 1
    assert float(soft_dice_loss(a, a)) == pytest.approx(0.0)
    assert float(soft_dice_loss(a, torch.zeros(4, 4))) == pytest.approx(1 - 1 / 9)


def test_step_benchmark_smoke():
    from mrseg.bench_step import step_benchmark

    result = step_benchmark("smoke", repeats=1, device="cpu")
    for key in ("shared_s", "per_rater_s", "ratio", "naive_per_rater_s", "naive_shared_s", "batched_per_rater_s"):
        assert result[key] > 0
    assert result["max_abs_loss_diff"] < 1e-5
    assert result["ratio"] == pytest.approx(result["per_rater_s"] / result["shared_s"], rel=1e-2)
