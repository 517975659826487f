"""Posterior-collapse diagnostics: constructed posteriors with known KL and active units, the
diversity ratio, aggregation into summary.csv, and a smoke-trained model's eval_summary.json."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.distributions import Normal

from mrseg.measures import collapse

D = 4
N = 4


class ToyLatent(nn.Module):
    """Prior mean varies with the image (so the plain Burda criterion would count every dim);
    posterior = prior + ``offsets[i]`` for rater i (per-rater) or + ``shift`` (shared)."""

    def __init__(self, per_rater: bool, offsets: np.ndarray | None = None, shift: np.ndarray | None = None,
                 q_scale: float = 1.0):
        super().__init__()
        self.is_per_rater = per_rater
        self.offsets = torch.zeros(N, D) if offsets is None else torch.as_tensor(offsets, dtype=torch.float32)
        self.shift = torch.zeros(D) if shift is None else torch.as_tensor(shift, dtype=torch.float32)
        self.q_scale = q_scale

    def prior(self, x):
        loc = 3.0 * x[:, 0, 0, 0][:, None] * torch.arange(1, D + 1, dtype=torch.float32)
        return Normal(loc, torch.ones_like(loc))

    def posterior(self, x, masks, present):
        p = self.prior(x)
        if self.is_per_rater:
            loc = p.loc[:, None] + self.offsets[None]
            loc = torch.where(present[..., None], loc, torch.full_like(loc, float("nan")))
        else:
            loc = p.loc + self.shift
        return Normal(loc, torch.full_like(loc, self.q_scale), validate_args=False)


def _batch(b: int = 12, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(b, 1, 8, 8, generator=g)
    masks = (torch.rand(b, N, 8, 8, generator=g) > 0.5).float()
    return image, masks, torch.ones(b, N, dtype=torch.bool)


@pytest.mark.parametrize("per_rater", [False, True])
def test_posterior_equal_to_prior_gives_zero_kl_and_no_active_units(per_rater):
    image, masks, present = _batch()
    model = ToyLatent(per_rater)
    prior_var = model.prior(image).loc.var(0, unbiased=False)
    assert (prior_var > collapse.ACTIVE_THRESHOLD).all()  # the unconditional criterion would count all D
    out = collapse.measure_collapse(model, [(image, masks, present)])
    assert out["latent"] is True and out["latent_dim"] == D
    assert out["kl_nats"] == pytest.approx(0.0, abs=1e-6)
    assert out["active_units"] == 0


def test_rater_dependent_shifts_count_exactly_the_shifted_dims():
    offsets = np.zeros((N, D))
    offsets[:, 0] = [1.0, -1.0, 0.5, -0.5]      # variance 0.625 across raters
    offsets[:, 2] = [0.3, 0.0, 0.0, -0.3]       # variance 0.045
    offsets[:, 3] = [0.05, -0.05, 0.05, -0.05]  # variance 0.0025: below the threshold
    image, masks, present = _batch()
    out = collapse.measure_collapse(ToyLatent(True, offsets=offsets), [(image, masks, present)])
    assert out["active_units"] == 2
    np.testing.assert_allclose(out["departure_var"], offsets.var(0), atol=1e-6)
    # KL of unit-variance Gaussians = 0.5 * |mu_q - mu_p|^2, averaged over raters
    assert out["kl_nats"] == pytest.approx(0.5 * (offsets ** 2).sum(1).mean(), rel=1e-5)


def test_absent_raters_are_excluded():
    offsets = np.zeros((N, D))
    offsets[:, 1] = [2.0, 0.0, 0.0, 0.0]
    image, masks, present = _batch()
    present[:, 0] = False                        # the only rater that departs never shows
    out = collapse.measure_collapse(ToyLatent(True, offsets=offsets), [(image, masks, present)])
    assert out["kl_nats"] == pytest.approx(0.0, abs=1e-6) and out["active_units"] == 0
    assert out["n_rows"] == 12 * (N - 1)


def test_constant_shift_has_kl_but_no_conditional_active_unit():
    image, masks, present = _batch()
    shift = np.array([1.0, 0.0, 0.0, 2.0])
    out = collapse.measure_collapse(ToyLatent(False, shift=shift, q_scale=0.5), [(image, masks, present)])
    kl_dim = math.log(1 / 0.5) + (0.25 + shift ** 2) / 2 - 0.5
    assert out["kl_nats"] == pytest.approx(kl_dim.sum(), rel=1e-5)
    assert out["active_units"] == 0 and out["n_rows"] == 12


def test_batches_equal_one_pass_and_no_latent_model():
    offsets = np.random.default_rng(0).normal(size=(N, D))
    image, masks, present = _batch(b=10)
    model = ToyLatent(True, offsets=offsets)
    whole = collapse.measure_collapse(model, [(image, masks, present)])
    split = collapse.measure_collapse(model, [(image[:3], masks[:3], present[:3]), (image[3:], masks[3:], present[3:])])
    assert whole["kl_nats"] == pytest.approx(split["kl_nats"]) and whole["active_units"] == split["active_units"]
    out = collapse.measure_collapse(nn.Conv2d(1, 1, 1), [(image, masks, present)])
    assert out["latent"] is False and math.isnan(out["kl_nats"])


def test_diversity_ratio_is_ratio_of_means():
    cases = pd.DataFrame({"d_ss": [0.2, 0.4], "d_yy": [0.0, 0.6]})
    assert collapse.diversity_ratio(cases) == pytest.approx(0.3 / 0.3)
    assert math.isnan(collapse.diversity_ratio(pd.DataFrame({"d_ss": [0.1], "d_yy": [0.0]})))


def test_run_scalars_reach_summary_columns(tmp_path):
    from mrseg.io import write_json
    from mrseg.pipeline.aggregate import add_run_scalars, summary_table

    rows = []
    for fold, (kl, au) in enumerate([(0.5, 2), (1.5, 4)]):
        run_dir = tmp_path / f"r{fold}"
        write_json(run_dir / "eval_summary.json", {"kl_nats": kl, "active_units": au, "ds_over_dyy": 0.5 * (fold + 1)})
        rows.append({"run_id": f"r{fold}", "study": "s", "row": "a", "model": "shared", "n_present": 4,
                     "fold": fold, "epochs": 1, "n_cases": 3, "ged": 0.2, "run_dir": str(run_dir)})
    rows.append({**rows[0], "run_id": "old", "fold": 2, "run_dir": str(tmp_path / "missing")})
    per_fold = add_run_scalars(pd.DataFrame(rows), {r["run_id"]: r["run_dir"] for r in rows})
    assert math.isnan(per_fold.loc[2, "kl_nats"])
    summary = summary_table(per_fold)
    assert summary.loc[0, "kl_nats_mean"] == pytest.approx(1.0)
    assert summary.loc[0, "active_units_mean"] == pytest.approx(3.0)
    assert summary.loc[0, "ds_over_dyy_mean"] == pytest.approx(0.75)


def test_smoke_trained_models_report_collapse(smoke_runs):
    from mrseg import run_views
    from mrseg.diagnostics.alignment import load_run_model
    from mrseg.io import read_json
    from mrseg.train import make_loaders

    for name, run_dir in smoke_runs.items():
        summary = read_json(run_dir / "eval_summary.json")
        assert summary["latent"] is True and summary["kl_nats"] >= 0
        assert 0 <= summary["active_units"] <= summary["latent_dim"] == len(summary["departure_var"])
        assert summary["ds_over_dyy"] == pytest.approx(summary["d_ss"] / summary["d_yy"], rel=1e-6)
        # recomputed by hand from the saved model on the same test split
        model, config = load_run_model(run_dir)
        test = make_loaders(config)["test"]
        with torch.no_grad():
            p = model.prior(test.image)
            q = model.posterior(test.image, test.masks, test.present)
        if name == "per-rater":
            kl = torch.distributions.kl_divergence(Normal(q.loc, q.scale), Normal(p.loc[:, None], p.scale[:, None]))
            want = kl.sum(-1).nanmean(1).mean()
        else:
            want = torch.distributions.kl_divergence(q, p).sum(-1).mean()
        assert summary["kl_nats"] == pytest.approx(float(want), rel=1e-4, abs=1e-7)
        table = run_views.collapse_table(run_dir)
        assert table.loc["active units (conditional)", "value"].endswith(f"of {summary['latent_dim']}")


@pytest.mark.parametrize("name", ["probunet-mean", "shared+s2", "shared-masked"])
def test_every_latent_model_reports_collapse(name):
    from mrseg.config import RunConfig
    from mrseg.train import run_training_and_evaluation

    config = RunConfig.from_profile("smoke", model=name, epochs=1, max_train_cases=16, max_eval_cases=8)
    summary = run_training_and_evaluation(config, progress=False)
    assert summary["latent"] is True and math.isfinite(summary["kl_nats"]) and summary["kl_nats"] >= 0
    assert isinstance(summary["active_units"], int) and math.isfinite(summary["ds_over_dyy"])
