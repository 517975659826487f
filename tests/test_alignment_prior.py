"""Alignment made comparable: the latent cosine at the prior mean (every model), its split into a
common and a disagreement residual, and the floor of the zero-filled ("as trained") reading."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.distributions import Normal

from mrseg.diagnostics import alignment

H = W = 8
D = 3
N = 4


class NonlinearToy(nn.Module):
    """logits = sum_d tanh(a_d z_d + b_d) B_d + bias; prior mean depends on the image."""

    def __init__(self, per_rater: bool = False):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.register_buffer("basis", torch.randn(D, H, W, generator=g))
        self.a = nn.Parameter(torch.tensor([1.0, -0.7, 1.5]))
        self.b = nn.Parameter(torch.tensor([0.1, 0.2, -0.3]))
        self.is_per_rater = per_rater

    def features(self, x):
        return x

    def prior(self, x):
        loc = x[:, 0, :D, 0] * 2 - 1
        return Normal(loc, torch.ones_like(loc))

    def posterior(self, x, masks, present):
        loc = self.prior(x).loc
        if self.is_per_rater:
            loc = loc[:, None].expand(-1, masks.shape[1], -1).clone()
            loc[~present] = float("nan")
        return Normal(loc, torch.ones_like(loc), validate_args=False)

    def decode(self, features, z):
        return torch.einsum("bd,dhw->bhw", torch.tanh(self.a * z + self.b), self.basis)[:, None] + 0 * features


def _data(b: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(b, 1, H, W, generator=g)
    masks = (torch.rand(b, N, H, W, generator=g) > 0.6).float()
    return image, masks


def _autograd_g(model, image, masks):
    z = model.prior(image).loc.detach().clone().requires_grad_(True)
    logits = model.decode(model.features(image), z)[:, 0]
    return torch.stack([torch.autograd.grad(alignment.log_likelihood(logits, masks[:, i]).sum(), z,
                                            retain_graph=True)[0] for i in range(masks.shape[1])], 1)


@pytest.mark.parametrize("per_rater", [False, True])
def test_prior_cosine_matches_autograd_and_split_adds_up(per_rater):
    image, masks = _data()
    present = torch.ones(5, N, dtype=torch.bool)
    present[1, 2] = False
    model = NonlinearToy(per_rater)
    out = alignment.prior_gradient_split(model, image, masks, present)
    g = _autograd_g(model, image, masks * present[:, :, None, None])
    np.testing.assert_allclose(out["prior_cosine"], alignment.mean_pairwise_cosine(g, present).numpy(), atol=1e-5)
    assert np.isfinite(out["prior_cosine"]).all()   # defined for per-rater models too
    for b in range(5):
        rows = g[b, present[b]]
        common = rows.mean(0)                        # the mean of the g_i is the common gradient
        dis = rows - common
        assert out["prior_common_norm"][b] == pytest.approx(float(common.norm()), rel=1e-4)
        assert out["prior_disagreement_norm"][b] == pytest.approx(float(dis.pow(2).sum(1).mean().sqrt()), rel=1e-4)
        share = float(dis.pow(2).sum(1).mean() / rows.pow(2).sum(1).mean())
        assert out["prior_disagreement_share"][b] == pytest.approx(share, rel=1e-4)


def test_identical_raters_have_no_disagreement():
    image, masks = _data()
    masks = masks[:, :1].repeat(1, N, 1, 1)
    out = alignment.prior_gradient_split(NonlinearToy(), image, masks)
    np.testing.assert_allclose(out["prior_cosine"], 1.0, atol=1e-5)
    np.testing.assert_allclose(out["prior_disagreement_norm"], 0.0, atol=1e-7)
    np.testing.assert_allclose(out["prior_disagreement_share"], 0.0, atol=1e-7)
    assert np.isnan(out["prior_disagreement_cosine"]).all()   # zero vectors: no pair


def test_zero_fill_floor_numbers():
    f = alignment.zero_fill_floor(4, 1)
    assert f["floor"] == pytest.approx(0.0) and f["orthogonal"] == pytest.approx(0.5)
    for m in (2, 3, 4):
        assert alignment.zero_fill_floor(4, m)["floor"] == pytest.approx(-1 / 3)
    assert alignment.zero_fill_floor(4, 2)["orthogonal"] == pytest.approx(1 / 6)
    assert alignment.zero_fill_floor(8, 2)["floor"] == pytest.approx((16 - 8) / 56)
    with pytest.raises(ValueError):
        alignment.zero_fill_floor(4, 5)
    assert list(alignment.floor_table(4)["np"]) == [1, 2, 3, 4]


@pytest.mark.parametrize("n,n_present", [(4, 1), (4, 2), (5, 1), (8, 2), (8, 3)])
def test_zero_fill_floor_holds_and_is_attained_numerically(n, n_present):
    k = n - n_present
    f = alignment.zero_fill_floor(n, n_present)
    rng = np.random.default_rng(n * 10 + n_present)
    u0 = rng.normal(size=6)
    lows = []
    for _ in range(2000):
        vecs = np.vstack([np.tile(u0, (k, 1)), rng.normal(size=(n_present, 6))])
        lows.append(float(alignment.mean_pairwise_cosine(torch.tensor(vecs)[None])[0]))
    assert min(lows) >= f["floor"] - 1e-9
    # attained: present gradients cancel k*u0 as far as they can (np < k: all opposite u0;
    # np = k here: each opposite u0, the sum is 0)
    unit = u0 / np.linalg.norm(u0)
    vecs = np.vstack([np.tile(u0, (k, 1)), np.tile(-unit, (n_present, 1))])
    assert n_present <= k
    value = float(alignment.mean_pairwise_cosine(torch.tensor(vecs)[None])[0])
    assert value == pytest.approx(f["floor"], abs=1e-9)
    ortho = np.zeros((n_present, 6))
    basis = np.linalg.qr(np.column_stack([unit, rng.normal(size=(6, 5))]))[0]
    ortho[:] = basis[:, 1:1 + n_present].T
    vecs = np.vstack([np.tile(u0, (k, 1)), ortho])
    assert float(alignment.mean_pairwise_cosine(torch.tensor(vecs)[None])[0]) == pytest.approx(f["orthogonal"])


def test_as_trained_index_at_np1_is_half_of_one_plus_c():
    """On the real code path: one present rater, three zero-filled (targets empty)."""
    torch.manual_seed(0)
    image, masks = _data(b=6)
    present = torch.zeros(6, N, dtype=torch.bool)
    present[:, 1] = True

    class SharedToy(NonlinearToy):
        def posterior(self, x, m, p):
            loc = self.prior(x).loc + 0.3 * m.mean((2, 3))[:, :D]
            return Normal(loc, torch.ones_like(loc))

    model = SharedToy()
    got = alignment.latent_gradient_cosines(model, image, masks, present)
    z = model.posterior(image, masks * present[:, :, None, None], present).loc.detach().requires_grad_(True)
    logits = model.decode(image, z)[:, 0]
    g1 = torch.autograd.grad(alignment.log_likelihood(logits, masks[:, 1]).sum(), z, retain_graph=True)[0]
    g0 = torch.autograd.grad(alignment.log_likelihood(logits, torch.zeros_like(masks[:, 1])).sum(), z)[0]
    c = torch.nn.functional.cosine_similarity(g1, g0, dim=1).numpy()
    np.testing.assert_allclose(got, (1 + c) / 2, atol=1e-5)
    assert (got >= -1e-6).all()


def test_alignment_row_carries_prior_columns():
    from mrseg.pipeline.aggregate import alignment_row

    cases = pd.DataFrame({"latent_cosine": [0.2, 0.4], "decoder_cosine": [0.1, 0.3], "prior_cosine": [0.5, -0.1],
                          "prior_common_norm": [1.0, 3.0], "prior_disagreement_norm": [0.5, 0.5],
                          "prior_disagreement_share": [0.2, 0.4], "prior_disagreement_cosine": [-0.3, -0.3]})
    row = alignment_row(cases)
    assert row["prior_mean"] == pytest.approx(0.2) and row["prior_share_negative"] == pytest.approx(0.5)
    assert row["prior_common_norm_mean"] == pytest.approx(2.0)
    assert row["prior_disagreement_share_mean"] == pytest.approx(0.3)


@pytest.fixture(scope="module")
def smoke_per_rater():
    from mrseg.config import RunConfig
    from mrseg.paths import runs_dir
    from mrseg.train import run_training_and_evaluation

    config = RunConfig.from_profile("smoke", model="per-rater", epochs=1, max_train_cases=16, max_eval_cases=8,
                                    n_present=2)
    run_training_and_evaluation(config, progress=False)
    return runs_dir() / config.run_id


def test_prior_alignment_on_trained_per_rater_model(smoke_per_rater):
    cases, summary = alignment.run_alignment(smoke_per_rater, n_cases=6, progress=False)
    assert summary["defined"] is False and cases["latent_cosine"].isna().all()
    assert cases["prior_cosine"].notna().all() and cases["prior_cosine"].between(-1 - 1e-6, 1 + 1e-6).all()
    assert cases["prior_disagreement_share"].between(0, 1 + 1e-6).all()
    assert summary["as_trained_floor"] == pytest.approx(-1 / 3)
    table = alignment.summary_table(summary)
    row = table[table["measure"].str.startswith("latent cosine at the prior mean")]
    assert len(row) == 1 and row["mean"].iloc[0] != "undefined"


def test_prior_split_table_means_over_folds():
    rows = pd.DataFrame({"row": ["shared_s1"] * 2 + ["per_rater_s1"], "n_present": [1, 1, 1],
                         "prior_mean": [0.2, 0.4, 0.1], "prior_disagreement_share_mean": [0.1, 0.3, 0.5]})
    table = alignment.prior_split_table(rows)
    assert list(table["folds"]) == [2, 1]
    assert table["cosine at mu_p"].tolist() == pytest.approx([0.3, 0.1])
    assert alignment.prior_split_table(pd.DataFrame()).empty


@pytest.mark.parametrize("name,isolation,defined", [("per-rater-tied", "samples", False), ("shared-wide", "none", True),
                                                    ("per-rater", "parameters+samples", False)])
def test_alignment_reports_gradient_isolation_of_the_new_posteriors(name, isolation, defined):
    from mrseg.config import RunConfig
    from mrseg.diagnostics.alignment import measure_alignment
    from mrseg.models import build_model

    torch.manual_seed(0)
    model = build_model(RunConfig.from_profile("smoke", model=name), n_raters=4)
    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, 1, 32, 32, generator=g)
    masks = (torch.rand(3, 4, 32, 32, generator=g) > 0.6).float()
    cases, summary = measure_alignment(model, image, masks, torch.ones(3, 4, dtype=torch.bool), ["a", "b", "c"],
                                       decoder=False, progress=False)
    assert summary["gradient_isolation"] == isolation and summary["defined"] is defined
    assert cases["latent_cosine"].notna().all() == defined and cases["prior_cosine"].notna().all()
