"""Model family: API shapes, FComb split, per-rater isolation, naive equivalence, sparsity draws."""

from __future__ import annotations

import pytest
import torch

from mrseg.bench.step import naive_stage1_losses, separate_encoders
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
    # shared-target's one encoder reads one rater's mask at a time, as per-rater-tied's does
    assert model.is_per_rater == (name.startswith("per-rater") or name == "shared-target")
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
    from mrseg.bench.step import step_benchmark

    result = step_benchmark("smoke", repeats=1, device="cpu")
    for key in ("shared_s", "per_rater_s", "ratio", "naive_per_rater_s", "naive_shared_s", "batched_per_rater_s"):
        assert result[key] > 0
    assert result["max_abs_loss_diff"] < 1e-5
    assert result["ratio"] == pytest.approx(result["per_rater_s"] / result["shared_s"], rel=1e-2)
    assert result["ratio_trusted"] is False and "1 round: dispersion unknown" in result["ratio_caveat"]


def test_a_step_ratio_is_trusted_only_over_agreeing_rounds_on_free_cores():
    from mrseg.bench.step import ratio_dispersion

    calm = ratio_dispersion([1.5, 1.52, 1.49], [1.0, 1.0, 1.0], cpu_share=0.97, load_before=0.1, load_after=1.0)
    assert calm["ratio_trusted"] and calm["ratio_rounds"] == [1.5, 1.52, 1.49] and calm["ratio_spread"] == 0.02
    noisy = ratio_dispersion([1.5, 8.8, 1.4], [1.0, 0.9, 1.0], cpu_share=0.97, load_before=0.1, load_after=1.0)
    assert not noisy["ratio_trusted"] and noisy["ratio_caveat"] == "rounds disagree (ratios 1.40 to 9.78)"
    shared_cores = ratio_dispersion([1.5, 1.5, 1.5], [1.0, 1.0, 1.0], cpu_share=0.45, load_before=3.0, load_after=3.0)
    assert shared_cores["ratio_caveat"] == "other work took CPU from the benchmark (45% of its threads' time)"


@pytest.mark.parametrize("name", ["per-rater", "per-rater-tied"])
def test_per_rater_samples_are_isolated_and_tied_parameters_are_shared(name):
    """Rater i's ELBO terms never read rater j's mask (isolation of samples) for both per-rater
    kinds; the tied model's one encoder receives every rater's gradient (no isolation of parameters),
    matching the status :func:`mrseg.diagnostics.alignment.gradient_isolation` reports."""
    from mrseg.diagnostics.alignment import gradient_isolation

    config = _config(name, per_rater_impl="loop")
    torch.manual_seed(0)
    model = build_model(config, n_raters=N)
    x, masks, present = _batch(4)
    masks = masks.clone().requires_grad_(True)
    terms = stage1_losses(model, x, masks, present, config)["rater_terms"]      # [B, N]
    encoders = list(model.posteriors.encoders)
    assert len(encoders) == (1 if name == "per-rater-tied" else N)
    for i in range(N):
        grad_masks, *grad_enc = torch.autograd.grad(
            terms[:, i].sum(), [masks, *[p for e in encoders for p in e.parameters()]], retain_graph=True,
            allow_unused=True)
        per_rater = grad_masks.abs().sum((0, 2, 3))
        assert float(per_rater[i]) > 0 and all(float(per_rater[j]) == 0.0 for j in range(N) if j != i)
        reached = [sum(float(g.abs().sum()) for g in grad_enc[k * len(grad_enc) // len(encoders):
                                                                (k + 1) * len(grad_enc) // len(encoders)]
                       if g is not None) > 0 for k in range(len(encoders))]
        assert reached == ([True] if name == "per-rater-tied" else [k == i for k in range(N)])
    assert gradient_isolation(name) == ("samples" if name == "per-rater-tied" else "parameters+samples")
    assert gradient_isolation("shared-wide") == gradient_isolation("shared") == "none"


@pytest.mark.parametrize("impl", ["loop", "batched"])
def test_tied_per_rater_is_one_encoder_applied_to_each_rater(impl):
    config = _config("per-rater-tied", per_rater_impl=impl)
    torch.manual_seed(0)
    model = build_model(config, n_raters=N)
    x, masks, present = _batch(5)
    q = model.posterior(x, masks, present)
    enc = model.posteriors.encoders[0]
    for i in range(N):
        alone = enc(torch.cat([x, masks[:, i: i + 1]], 1))
        torch.testing.assert_close(q.loc[:, i], alone.loc, rtol=1e-5, atol=1e-6)
    loc, scale = model.posteriors.encode_batched(x, masks)
    torch.testing.assert_close(loc, q.loc, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(scale, q.scale, rtol=1e-5, atol=1e-6)
    torch.manual_seed(3)
    batched = stage1_losses(model, x, masks, present, _config("per-rater-tied", per_rater_impl="batched"))
    torch.manual_seed(3)
    looped = stage1_losses(model, x, masks, present, _config("per-rater-tied", per_rater_impl="loop"))
    torch.testing.assert_close(batched["kl"], looped["kl"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("profile", ["smoke", "demo", "paper"])
def test_shared_wide_posterior_matches_the_per_rater_encoders_within_5_percent(profile):
    from mrseg.models.summary import parameter_summary

    wide = parameter_summary(RunConfig.from_profile(profile, model="shared-wide"))["posterior"]
    per_rater = parameter_summary(RunConfig.from_profile(profile, model="per-rater"))["posterior"]
    shared = parameter_summary(RunConfig.from_profile(profile, model="shared"))["posterior"]
    tied = parameter_summary(RunConfig.from_profile(profile, model="per-rater-tied"))["posterior"]
    assert abs(wide - per_rater) <= 0.05 * per_rater and wide > 3 * shared
    assert tied * N == per_rater   # the tied encoder is one of the per-rater encoders


def test_free_bits_change_the_loss_only_below_the_threshold():
    """loss(lambda) - loss(0) = kl_weight * sum_d max(lambda - KL_d, 0), KL_d the batch-mean KL of
    dimension d; the logged KL is unchanged."""
    x, masks, present = _batch(6)
    present[0, 2] = False
    for name in ("shared", "per-rater", "per-rater-tied"):
        torch.manual_seed(0)
        model = build_model(_config(name), n_raters=N)
        out = {}
        for fb in (0.0, 0.5):
            torch.manual_seed(7)
            out[fb] = stage1_losses(model, x, masks, present, _config(name, free_bits=fb, per_rater_impl="loop"))
        kl_d = out[0.0]["kl_dims"]
        assert kl_d.shape == (6,) and bool((kl_d >= 0).all())
        expected = (0.5 - kl_d).clamp(min=0).sum()
        assert 0 < float(expected.detach())   # a fresh model has dimensions below 0.5 nats
        torch.testing.assert_close(out[0.5]["loss"] - out[0.0]["loss"], expected, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(out[0.5]["kl"], out[0.0]["kl"])
        torch.testing.assert_close(out[0.0]["kl"], kl_d.sum(), rtol=1e-5, atol=1e-6)


def test_free_bits_gradient_vanishes_for_dimensions_below_the_threshold():
    from torch.distributions import Normal, kl_divergence

    from mrseg.losses import free_bits_kl

    torch.manual_seed(0)
    loc = torch.tensor([[0.05, 2.0, 0.1], [0.02, -1.5, 0.1]], requires_grad=True)
    p = Normal(torch.zeros(2, 3), torch.ones(2, 3))
    kl_dims = kl_divergence(Normal(loc, torch.ones(2, 3)), p)                     # [B, D]
    below = kl_dims.mean(0) < 0.3
    assert below.tolist() == [True, False, True]
    grad_fb, = torch.autograd.grad(free_bits_kl(kl_dims, 0.3), loc, retain_graph=True)
    grad_plain, = torch.autograd.grad(kl_dims.sum(-1).mean(), loc)
    assert bool((grad_fb[:, below] == 0).all())
    torch.testing.assert_close(grad_fb[:, ~below], grad_plain[:, ~below])
    assert float(free_bits_kl(kl_dims, 0.0)) == pytest.approx(float(kl_dims.sum(-1).mean()))


def test_new_models_run_ids_and_kinds():
    tied, wide = _config("per-rater-tied"), _config("shared-wide")
    assert tied.is_per_rater and not tied.has_stage2 and tied.posterior_kind == "per-rater-tied"
    assert not wide.is_per_rater and wide.posterior_kind == "shared-wide"
    # per-rater-tied follows eq. 3.5 under both objectives; shared-wide follows the shared objective
    assert _config("per-rater-tied", objective="thesis-eq").run_id == tied.run_id
    assert "/shared-wide+thesiseq/" in _config("shared-wide", objective="thesis-eq").run_id
    fb = _config("per-rater", free_bits=0.25)
    assert fb.variant == "fb0.25" and "/per-rater+fb0.25/" in fb.run_id
    with pytest.raises(ValueError, match="free_bits"):
        _config("shared", free_bits=-1.0)
    _config("per-rater-tied", latent_repulsion=0.1)   # per-rater posterior means exist for the tied model


def test_roofline_counts_step_flops_and_a_share_of_the_measured_peak():
    from mrseg.bench.roofline import roofline_benchmark

    result = roofline_benchmark(networks=("smoke",), repeats=1, peak_n=256, conv_widths=(4, 8))
    steps = {rec["model"]: rec for rec in result["steps"]}
    # the convolution ceiling: one 3x3 convolution, forward and backward = 3 x (2 B C^2 9 H W) FLOPs
    assert [rec["channels"] for rec in result["conv_ceiling"]] == [4, 8]
    for rec in result["conv_ceiling"]:
        c, b, hw = rec["channels"], rec["batch_size"], rec["image_size"] ** 2
        assert rec["gflop"] * 1e9 == pytest.approx(3 * 2 * b * c * c * 9 * hw)
        assert rec["share_of_peak"] == pytest.approx(rec["achieved_gflops"] / result["peak_gflops"])
    assert result["peak_gflops"] > 0 and set(steps) == {"shared", "per-rater"}
    # per-rater runs N posterior encoders where shared runs one: more FLOPs per step
    assert steps["per-rater"]["gflop_per_step"] > steps["shared"]["gflop_per_step"] > 0
    for rec in steps.values():
        assert rec["share_of_peak"] == pytest.approx(rec["achieved_gflops"] / result["peak_gflops"])
