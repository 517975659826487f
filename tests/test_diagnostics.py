"""Diagnostics: alignment and latent measures on a hand-built model with known answers, the
attribute study's arithmetic, and the statistics helpers against scipy."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from torch import nn
from torch.distributions import Normal

from mrseg.diagnostics import alignment, attributes, latent, statistics

H = W = 8
D = 3


class ToyModel(nn.Module):
    """Implements the model API with a decoder linear in z: logits = sum_d scale_d z_d B_d + bias.

    Posterior means: ``gain * <B_d, mask>/(H*W)`` (+ a per-rater offset for the per-rater model).
    """

    def __init__(self, per_rater: bool = False, gain: float = 0.0, offsets: np.ndarray | None = None, n: int = 4):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("basis", torch.randn(D, H, W, generator=g))
        self.scale = nn.Parameter(torch.tensor([1.0, 0.5, 2.0]))
        self.bias = nn.Parameter(torch.zeros(1))
        self.unused = nn.Linear(2, 2)  # a posterior-side parameter the decoder never touches
        self.is_per_rater = per_rater
        self.gain = gain
        self.offsets = torch.zeros(n, D) if offsets is None else torch.as_tensor(offsets, dtype=torch.float32)

    def features(self, x):
        return x

    def prior(self, x):
        return Normal(torch.zeros(x.shape[0], D), torch.ones(x.shape[0], D))

    def _proj(self, m):  # m [..., H, W] -> [..., D]
        return self.gain * torch.einsum("dhw,...hw->...d", self.basis, m) / (H * W)

    def posterior(self, x, masks, present):
        if self.is_per_rater:
            loc = self._proj(masks) + self.offsets[None]
            loc = torch.where(present[..., None].bool(), loc, torch.full_like(loc, float("nan")))
        else:
            k = present.float().sum(1).clamp_min(1)
            loc = self._proj((masks * present[:, :, None, None]).sum(1) / k[:, None, None])
        return Normal(loc, torch.ones_like(loc))

    def decode(self, features, z):
        return (torch.einsum("bd,dhw->bhw", z * self.scale, self.basis) + self.bias)[:, None] + 0 * features


def _masks(b: int = 3, seed: int = 1) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy((rng.random((b, H, W)) > 0.5).astype(np.float32))


def _image(b: int = 3) -> torch.Tensor:
    return torch.zeros(b, 1, H, W)


def test_identical_raters_align_perfectly():
    a = _masks()
    masks = a[:, None].repeat(1, 4, 1, 1)
    model = ToyModel(gain=0.7)
    lat = alignment.latent_gradient_cosines(model, _image(), masks)
    dec = alignment.decoder_gradient_cosines(model, _image(), masks)
    np.testing.assert_allclose(lat, 1.0, atol=1e-5)
    np.testing.assert_allclose(dec, 1.0, atol=1e-5)


def test_mirrored_disagreement_is_negative_and_exact():
    a = _masks()
    masks = torch.stack([a, a, 1 - a, 1 - a], 1)
    model = ToyModel(gain=0.0)  # z = 0, sigmoid = 0.5: g_i = scale * <B, y_i - 0.5>, mirrored = -g_i
    lat = alignment.latent_gradient_cosines(model, _image(), masks)
    np.testing.assert_allclose(lat, (2 * 1 + 4 * -1) / 6, atol=1e-5)
    two = alignment.latent_gradient_cosines(model, _image(), masks[:, 1:3])
    np.testing.assert_allclose(two, -1.0, atol=1e-5)


def test_latent_gradient_matches_hand_formula():
    masks = torch.stack([_masks(seed=s) for s in range(4)], 1)
    model = ToyModel(gain=1.3)
    got = alignment.latent_gradient_cosines(model, _image(), masks)
    basis, scale = model.basis.numpy(), model.scale.detach().numpy()
    m = masks.numpy()
    z = model.gain * np.einsum("dhw,bhw->bd", basis, m.mean(1)) / (H * W)
    s = 1 / (1 + np.exp(-np.einsum("bd,dhw->bhw", z * scale, basis)))
    g = scale * np.einsum("bnhw,dhw->bnd", m - s[:, None], basis)
    u = g / np.linalg.norm(g, axis=2, keepdims=True)
    cos = np.einsum("bnd,bmd->bnm", u, u)
    want = np.array([cos[b][np.triu_indices(4, 1)].mean() for b in range(3)])
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_per_rater_latent_alignment_is_undefined_not_zero():
    a = _masks()
    masks = torch.stack([a, a, 1 - a, a], 1)
    model = ToyModel(per_rater=True, gain=0.5)
    lat = alignment.latent_gradient_cosines(model, _image(), masks)
    assert np.isnan(lat).all()
    cases, summary = alignment.measure_alignment(model, _image(), masks, torch.ones(3, 4, dtype=torch.bool),
                                                 ["a", "b", "c"], progress=False)
    assert summary["defined"] is False and math.isnan(summary["mean"])
    assert alignment.format_alignment(summary["mean"], summary["defined"]) == "undefined"
    assert cases["decoder_cosine"].notna().all()  # the second measure exists for per-rater models
    # identical masks and identical per-rater latents: the decoder gradients coincide
    same = alignment.decoder_gradient_cosines(model, _image(), a[:, None].repeat(1, 4, 1, 1))
    np.testing.assert_allclose(same, 1.0, atol=1e-5)


def test_decoder_parameters_exclude_posterior_side():
    model = ToyModel()
    params = alignment._decoder_parameters(model, _image(1), torch.zeros(1, D))
    assert {id(p) for p in params} == {id(model.scale), id(model.bias)}


def test_alignment_summary_shares_and_absent_raters():
    s = alignment.alignment_summary(np.array([0.9, 0.2, -0.4, 0.6]), np.array([0.1, 0.1, 0.1, np.nan]))
    assert s["mean"] == pytest.approx(0.325) and s["share_positive"] == 0.75
    assert s["share_negative"] == 0.25 and s["share_above_0_5"] == 0.5 and s["n_cases"] == 4
    assert s["sd"] == pytest.approx(np.std([0.9, 0.2, -0.4, 0.6], ddof=1))
    assert s["decoder_n"] == 3
    # absent raters: excluded from pairs when include_absent=False
    a = _masks()
    masks = torch.stack([a, a, 1 - a, 1 - a], 1)
    present = torch.tensor([[True, True, False, False]] * 3)
    lat = alignment.latent_gradient_cosines(ToyModel(), _image(), masks, present, include_absent=False)
    np.testing.assert_allclose(lat, 1.0, atol=1e-5)


def test_select_cases_is_seeded_and_sorted():
    idx = np.arange(50, 250)
    a, b = alignment.select_cases(idx, 100, 7), alignment.select_cases(idx, 100, 7)
    assert (a == b).all() and len(np.unique(a)) == 100 and (np.diff(a) > 0).all()
    assert len(alignment.select_cases(idx[:10], 100, 7)) == 10


def test_latent_means_and_companions():
    a = _masks(b=6)
    masks = a[:, None].repeat(1, 4, 1, 1)
    offsets = np.eye(4, D) * 5.0
    pr = latent.latent_means(ToyModel(per_rater=True, gain=1.0, offsets=offsets), _image(6), masks)
    assert pr["posterior"].shape == (6, 4, D) and np.isnan(pr["joint"]).all()
    comp = latent.latent_companions(pr["posterior"], pr["prior"])
    assert comp["silhouette_raters"] > 0.9  # far-apart rater offsets: clean clusters
    sh = latent.latent_means(ToyModel(gain=1.0), _image(6), masks)
    # shared model, identical masks: each rater's single-mask posterior equals the joint one
    np.testing.assert_allclose(sh["posterior"], np.repeat(sh["joint"][:, None], 4, 1), atol=1e-6)
    comp = latent.latent_companions(sh["posterior"], sh["prior"])
    assert comp["between_rater_spread"] == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(comp["dist_to_prior"], np.linalg.norm(sh["joint"], axis=1).mean(), rtol=1e-6)
    pts, lab, case = latent.latent_points(sh["posterior"], sh["prior"])
    assert pts.shape == (30, D) and (lab == -1).sum() == 6
    coords = latent.tsne_embedding(pts + np.random.default_rng(0).normal(0, 0.01, pts.shape), seed=0)
    assert coords.shape == (30, 2)


# --- attribute study -------------------------------------------------------------------------


def test_mask_variance_definitions_by_hand():
    m = np.zeros((1, 4, 2, 2), np.uint8)
    m[0, :, 0, 0] = 1          # all four agree on pixel (0,0)
    m[0, :2, 0, 1] = 1         # two of four on pixel (0,1): p(1-p) = 0.25
    present = np.ones((1, 4), bool)
    assert attributes.mask_variance(m, present, "patch")[0] == pytest.approx(0.25 / 4)
    assert attributes.mask_variance(m, present, "union")[0] == pytest.approx(0.25 / 2)
    # IoU: raters 0,1 have 2 px, raters 2,3 have 1 px; IoU 1 within groups, 1/2 across (4 pairs)
    assert attributes.mask_variance(m, present, "iou")[0] == pytest.approx(1 - (2 * 1 + 4 * 0.5) / 6)
    # only present raters count; fewer than two -> NaN
    assert np.isnan(attributes.mask_variance(m, np.array([[True, False, False, False]]), "patch")[0])


def test_unit_table_picks_largest_union_slice_and_complete_records():
    rng = np.random.default_rng(0)
    masks = (rng.random((5, 4, 6, 6)) > 0.7).astype(np.uint8)
    masks[1] = 1  # nodule n0's largest union
    att = rng.integers(1, 6, (5, 4, 9)).astype(np.float32)
    att[4, 0, 3] = np.nan  # incomplete record: excluded
    present = np.ones((5, 4), bool)
    cases = pd.DataFrame({"case_id": list("abcde"), "nodule_id": ["n0", "n0", "n1", "n1", "n2"], "fold": [0, 0, 1, 1, 2]})
    nod = attributes.unit_table(masks, present, att, cases, unit="nodule")
    assert "b" in nod["case_id"].tolist() and "e" not in nod["case_id"].tolist() and len(nod) == 2
    chosen = attributes.unit_table(masks, present, att, cases, unit="nodule", largest_union_ids=["a"])
    assert chosen["case_id"].tolist() == ["a", "c"] or chosen["case_id"].tolist() == ["a", "d"]
    patch = attributes.unit_table(masks, present, att, cases, unit="patch")
    assert patch["case_id"].tolist() == list("abcd")
    np.testing.assert_allclose(patch["sd_margin"], att[:4, :, 4].std(axis=1))
    np.testing.assert_allclose(patch["mean_malignancy"], att[:4, :, 8].mean(axis=1))


def test_correlation_table_matches_scipy_and_residual_partial():
    rng = np.random.default_rng(3)
    n = 80
    table = pd.DataFrame({"case_id": [str(i) for i in range(n)], "nodule_id": [str(i) for i in range(n)],
                          "fold": np.arange(n) % 4, "log_area": rng.normal(size=n)})
    for d in attributes.VARIANCE_DEFINITIONS:
        table[f"var_{d}"] = rng.normal(size=n) + table["log_area"]
    for a in attributes.LIDC_ATTRIBUTES:
        table[f"sd_{a}"] = rng.normal(size=n) + 0.5 * table["var_patch"]
        table[f"mean_{a}"] = rng.normal(size=n)
    corr = attributes.correlation_table({"patch": table})
    margin_sd = (corr.definition == "patch") & (corr.statistic == "sd") & (corr.attribute == "margin")
    row = corr[margin_sd & (corr.fold == "all")].iloc[0]
    ref = stats.pearsonr(table["sd_margin"], table["var_patch"])
    assert row.r == pytest.approx(ref.statistic, abs=1e-12) and row.p == pytest.approx(ref.pvalue, rel=1e-9)
    assert row.n == n
    x, y, c = table["sd_margin"].to_numpy(), table["var_patch"].to_numpy(), table["log_area"].to_numpy()
    rx = x - np.polyval(np.polyfit(c, x, 1), c)
    ry = y - np.polyval(np.polyfit(c, y, 1), c)
    assert row.partial_r == pytest.approx(np.corrcoef(rx, ry)[0, 1], abs=1e-10)
    fold2 = corr[margin_sd & (corr.fold == "2")].iloc[0]
    sel = table["fold"] == 2
    assert fold2.r == pytest.approx(stats.pearsonr(x[sel], y[sel]).statistic, abs=1e-12)
    assert attributes.per_fold_r(corr, "patch", "patch")[2] == pytest.approx(fold2.r)
    fam = corr[(corr.definition == "patch") & (corr.statistic == "sd") & (corr.fold == "all")]
    assert (fam["p_holm"] >= fam["p"] - 1e-15).all()


def test_attribute_summary_on_synthetic():
    s = attributes.attribute_study_summary("synthetic")
    for unit in ("nodule", "patch"):
        for d in attributes.VARIANCE_DEFINITIONS:
            margin = s["sd"][unit][d]["margin"]
            assert set(margin) == {"r", "p", "n"} and margin["n"] > 10
            assert len(s["per_fold_margin"][unit][d]) == 4
    assert s["info"]["complete_nodules"] <= s["info"]["complete_patches"]
    import json

    json.dumps(s, allow_nan=False)  # strict JSON: undefined correlations are null, not NaN


# --- statistics ------------------------------------------------------------------------------


def test_sign_test_twelve_of_twelve():
    res = statistics.sign_test(12, 12)
    assert res["p_one_sided"] == pytest.approx(0.5 ** 12, rel=1e-12)
    assert res["p_two_sided"] == pytest.approx(2 * 0.5 ** 12, rel=1e-12)
    pairs = statistics.sign_test_pairs([0.1] * 12, [0.2] * 12, lower_is_better=True)
    assert pairs["wins"] == 12 and pairs["p_one_sided"] == pytest.approx(2.0 ** -12)
    tie = statistics.sign_test_pairs([0.1, 0.2, 0.3], [0.1, 0.3, 0.2])
    assert tie["ties"] == 1 and tie["n"] == 2 and tie["wins"] == 1


def test_paired_wilcoxon_and_rank_biserial():
    a = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    b = a - np.array([0.5, 1.0, -0.2, 2.0, 0.1, 0.3])
    res = statistics.paired_wilcoxon(a, b)
    assert res["p"] == pytest.approx(stats.wilcoxon(a - b).pvalue)
    # ranks of |d| = 0.5,1,0.2,2,0.1,0.3 -> 4,5,2,6,1,3; W- = 2, W+ = 19: r = 17/21
    assert res["rank_biserial"] == pytest.approx(17 / 21)
    assert statistics.paired_wilcoxon(a, a - 1)["rank_biserial"] == 1.0


def test_partial_pearson_equals_residual_method():
    rng = np.random.default_rng(1)
    c = rng.normal(size=(50, 2))
    x = c @ [1.0, -0.5] + rng.normal(size=50)
    y = c @ [0.3, 0.8] + 0.4 * x + rng.normal(size=50)
    design = np.column_stack([np.ones(50), c])
    rx = x - design @ np.linalg.lstsq(design, x, rcond=None)[0]
    ry = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    res = statistics.partial_pearson(x, y, c)
    r = np.corrcoef(rx, ry)[0, 1]
    assert res["r"] == pytest.approx(r, abs=1e-12)
    t = r * np.sqrt(46 / (1 - r * r))
    assert res["p"] == pytest.approx(2 * stats.t.sf(abs(t), 46), rel=1e-9)


def test_pearson_drops_nan_and_adjust():
    x = np.array([1.0, 2, 3, 4, np.nan, 6])
    y = np.array([2.0, 1, 4, 3, 5, 7])
    res = statistics.pearson(x, y)
    ref = stats.pearsonr([1, 2, 3, 4, 6], [2, 1, 4, 3, 7])
    assert res["n"] == 5 and res["r"] == pytest.approx(ref.statistic)
    adj = statistics.adjust_pvalues([0.01, 0.04, np.nan, 0.03], "holm")
    np.testing.assert_allclose(adj[[0, 1, 3]], [0.03, 0.06, 0.06])
    assert np.isnan(adj[2])
    from statsmodels.stats.multitest import multipletests

    ps = np.random.default_rng(5).uniform(0, 0.2, 9)
    for method in ("holm", "fdr_bh"):
        np.testing.assert_allclose(statistics.adjust_pvalues(ps, method), multipletests(ps, method=method)[1])


# --- real smoke-trained models -----------------------------------------------------------------


def test_alignment_on_trained_models(smoke_runs):
    cases, summary = alignment.run_alignment(smoke_runs["shared"], n_cases=6, progress=False)
    assert summary["defined"] is True and summary["n_cases"] == 6
    assert cases["latent_cosine"].between(-1 - 1e-6, 1 + 1e-6).all()
    assert cases["decoder_cosine"].between(-1 - 1e-6, 1 + 1e-6).all()
    assert (smoke_runs["shared"] / "alignment_cases.csv").exists()
    written = pd.read_csv(smoke_runs["shared"] / "alignment_cases.csv")
    assert list(written.columns[:3]) == ["case_id", "latent_cosine", "decoder_cosine"]
    cases, summary = alignment.run_alignment(smoke_runs["per-rater"], n_cases=6, progress=False)
    assert summary["defined"] is False and cases["latent_cosine"].isna().all()
    assert cases["decoder_cosine"].notna().all()
    assert alignment.summary_table(summary)["mean"].iloc[0] == "undefined"


def test_soft_dice_latent_matches_models_own_loglik(smoke_runs):
    model, config = alignment.load_run_model(smoke_runs["shared"])
    batch = alignment.test_tensors(config, n_cases=4)
    x, m = batch["image"], batch["masks"]
    got = alignment.latent_gradient_cosines(model, x, m, batch["present"], likelihood="soft_dice")
    with torch.no_grad():
        feats = model.features(x)
        z = model.posterior(x, m, batch["present"]).loc.clone().requires_grad_(True)
    ll = model.rater_recon_loglik(feats, z, m)  # [B, N], the training reconstruction term
    g = torch.stack([torch.autograd.grad(ll[:, i].sum(), z, retain_graph=True)[0] for i in range(m.shape[1])], 1)
    want = alignment.mean_pairwise_cosine(g).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_latent_on_trained_models(smoke_runs):
    for model in ("shared", "per-rater"):
        arrays, summary = latent.run_latent(smoke_runs[model], n_cases=8)
        assert arrays["coords"].shape == (8 * 5, 2) and (arrays["labels"] == -1).sum() == 8
        assert np.isfinite(summary["silhouette_raters"]) and summary["dist_to_prior"] >= 0
        assert (smoke_runs[model] / "latent.npz").exists() and (smoke_runs[model] / "latent_summary.json").exists()


def test_run_figures_from_trained_run_artefacts(smoke_runs):
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mrseg import plots

    latent.run_latent(smoke_runs["per-rater"], n_cases=6)
    for fig in (plots.qualitative_from_run(smoke_runs["shared"], max_cases=2),
                plots.tsne_from_run(smoke_runs["per-rater"]),
                plots.sample_grid({"shared": smoke_runs["shared"] / "samples.npz",
                                   "per-rater": smoke_runs["per-rater"] / "samples.npz"}, n_cases=1)):
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=30)
        plt.close(fig)
        assert buf.getvalue().startswith(b"\x89PNG")


def test_fold_comparison_table_feeds_sign_test():
    per_fold = pd.DataFrame({"row": ["shared_s1"] * 6 + ["per_rater_s1"] * 6,
                             "n_present": [1, 1, 2, 2, 3, 3] * 2, "fold": [0, 1] * 6,
                             "ged": [0.22, 0.23, 0.20, 0.24, 0.18, 0.20, 0.17, 0.18, 0.16, 0.19, 0.19, 0.17]})
    table = statistics.fold_comparison_table(per_fold, "ged", "per_rater_s1", "shared_s1")
    assert len(table) == 6 and table["a_wins"].sum() == 5
    res = statistics.sign_test_pairs(table["a"], table["b"])
    assert res["wins"] == 5 and res["p_one_sided"] == pytest.approx(7 / 64)
