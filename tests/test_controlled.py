"""Controlled raters: the synthetic-raters<N> datasets, their known style distributions, GED to the
true distribution and per-style recovery, and one smoke-trained run on such a dataset."""

from __future__ import annotations

import numpy as np
import pytest

from mrseg.data import controlled
from mrseg.diagnostics import recovery
from mrseg.measures import styles
from mrseg.metrics import ged


def test_names_and_styles():
    assert controlled.n_raters_of("synthetic-raters4") == 4 and controlled.n_raters_of("synthetic") is None
    assert controlled.styles_for(2) == ("over", "under")
    assert len(set(controlled.styles_for(8))) == 8
    with pytest.raises(ValueError):
        controlled.styles_for(9)
    from mrseg.data.registry import available_datasets

    assert {"synthetic-raters2", "synthetic-raters4", "synthetic-raters8"} <= set(available_datasets())


def test_styles_are_ordered_as_defined():
    g = controlled.case_geometry(5, 32)
    draws = {s: controlled.style_draws(g, s, 20, np.random.default_rng(0)).astype(bool)
             for s in ("over", "reference", "under", "misses-small", "shifted")}
    # same seed -> same jitter for over / reference / under / misses-small / shifted
    assert (draws["over"] >= draws["reference"]).all() and (draws["reference"] >= draws["under"]).all()
    assert (draws["reference"] >= draws["misses-small"]).all()
    d = max(1, round(32 / 16))
    np.testing.assert_array_equal(draws["shifted"][:, d:, d:], draws["reference"][:, :-d, :-d])
    assert draws["over"].sum() > draws["reference"].sum() > draws["under"].sum()


def test_dataset_masks_follow_their_styles():
    from mrseg.data.registry import load_dataset

    ds = load_dataset("synthetic-raters4", progress=False, n_cases=24)
    assert ds.n_raters == 4 and ds.masks.shape[1:] == (4, 32, 32) and ds.present.all()
    wins = []
    for row in range(24):
        typical = styles.typical_masks(controlled.true_draws(row, 4, 32))
        dice = styles.dice_matrix(np.asarray(ds.masks[row]), typical)     # [rater, style]
        wins.append(np.argmax(dice, axis=1) == np.arange(4))
        assert np.diag(dice).mean() > 0.75
    assert np.mean(wins) > 0.8   # each rater's mask is nearest to its own style's typical mask


def test_recovery_counts_styles():
    draws = controlled.true_draws(3, 4, 32)
    typical = styles.typical_masks(draws)
    best, ok = styles.style_recovery(typical, draws)
    np.testing.assert_allclose(best, 1.0)
    assert ok.all()
    # only the over-segmenting style's mask: under-segmentation is not recovered
    best, ok = styles.style_recovery(typical[:1], draws)
    assert ok[0] and not ok[1] and best[1] < styles.RECOVERY_DICE
    row = styles.case_metrics(typical[:1], draws, controlled.styles_for(4))
    assert row["recovered_over"] == 1.0 and row["recovered_under"] == 0.0
    assert row["style_recovery"] == pytest.approx(ok.mean())


def test_ged_to_truth_prefers_the_true_distribution():
    draws = controlled.true_draws(7, 4, 32)
    fresh = controlled.true_draws(7, 4, 8, draw_seed=1).reshape(-1, 32, 32)   # samples from the truth
    one_style = np.repeat(styles.typical_masks(draws)[:1], 32, axis=0)
    g_true = styles.ged_to_truth(fresh, draws)
    assert g_true < styles.ged_to_truth(one_style, draws)
    assert g_true == pytest.approx(ged(fresh, draws.reshape(-1, 32, 32)))


def test_controlled_metrics_only_on_controlled_datasets():
    samples = np.zeros((2, 3, 32, 32), dtype=bool)
    assert styles.controlled_metrics("synthetic", {}, np.array([0, 1]), samples) is None
    table = styles.controlled_metrics("synthetic-raters2", {}, np.array([0, 1]), samples)
    assert list(table.columns) == ["ged_true", "style_recovery", "recovered_over", "recovered_under",
                                   "best_dice_over", "best_dice_under"]
    assert (table["style_recovery"] == 0).all()     # empty samples match no lesion mask
    # at a model size other than the dataset's, the draws are resized
    small = styles.controlled_metrics("synthetic-raters2", {}, np.array([0]), np.zeros((1, 2, 16, 16), bool))
    assert len(small) == 1


def test_smoke_run_on_controlled_raters():
    from mrseg.config import RunConfig
    from mrseg.io import read_json
    from mrseg.paths import runs_dir
    from mrseg.train import run_training_and_evaluation

    config = RunConfig.from_profile("smoke", model="per-rater", dataset="synthetic-raters2", n_present=1,
                                    epochs=1, max_train_cases=16, max_eval_cases=6)
    assert config.run_id.startswith("synthetic-raters2/per-rater/np1/")
    run_training_and_evaluation(config, progress=False)
    summary = read_json(runs_dir() / config.run_id / "eval_summary.json")
    for key in ("ged_true", "style_recovery", "recovered_over", "recovered_under", "kl_nats"):
        assert key in summary
    assert 0 <= summary["style_recovery"] <= 1 and summary["ged_true"] >= 0


def test_controlled_study_in_the_plan():
    from mrseg.pipeline.plan import load_plan

    smoke = load_plan("thesis", "smoke", include_pages=False)
    assert not any(m["study"] == "controlled" for i in smoke for m in i.memberships)
    items = load_plan("thesis", "demo", include_pages=False)
    runs = [i for i in items if i.kind == "train" and any(m["study"] == "controlled" for m in i.memberships)]
    levels = {}
    for item in runs:
        n = controlled.n_raters_of(item.config["dataset"])
        assert item.run_id.split("/")[0].split("@")[0] == f"synthetic-raters{n}" and item.config["image_size"] == 32
        levels.setdefault((n, item.config["model"], item.config["missing"]), set()).add(item.config["n_present"])
    assert levels == {(2, "shared", "per-step"): {1, 2}, (2, "per-rater", "per-step"): {1, 2},
                      (4, "shared", "per-step"): {1, 2, 4}, (4, "per-rater", "per-step"): {1, 2, 4},
                      (8, "shared", "per-step"): {1, 4, 8}, (8, "per-rater", "per-step"): {1, 4, 8},
                      (4, "shared", "static"): {1, 2}, (4, "per-rater", "static"): {1, 2}}


def test_controlled_comparison_paired_ci_and_verdicts():
    import pandas as pd

    rng = np.random.default_rng(0)
    rows = []
    for n, n_p, shift in ((2, 1, -0.1), (4, 2, 0.0), (8, 8, 0.1)):
        base = rng.uniform(0.2, 0.6, size=40)
        for seed in (1337, 1338, 1339):          # three run pairs, each with its own small run effect
            noise = rng.normal(0, 0.02, size=40) + rng.normal(0, 0.005)
            for model, values in (("shared", base), ("per-rater", base + shift + noise)):
                rows += [{"dataset": f"synthetic-raters{n}", "model": model, "n_present": n_p, "fold": 0, "seed": seed,
                          "case_id": f"c{k}", "ged_true": v, "study": "controlled"} for k, v in enumerate(values)]
    rows.append({**rows[0], "dataset": "synthetic"})   # not a controlled dataset: ignored
    # static missingness (variant tag "static") is compared on its own, never mixed with per-step
    static = [{**r, "variant": "static", "ged_true": r["ged_true"] + (0.2 if r["model"] == "per-rater" else 0.0)}
              for r in rows if r["dataset"] == "synthetic-raters2"]
    table = recovery.controlled_comparison(pd.DataFrame(rows + static))
    assert list(table["missing"]) == ["per-step", "static", "per-step", "per-step"]
    assert table.loc[1, "verdict"] == "shared better" and table.loc[1, "n_cases"] == 120 and table.loc[1, "n_runs"] == 3
    table = table[table["missing"] == "per-step"].reset_index(drop=True)
    assert list(table["N"]) == [2, 4, 8] and list(table["n_cases"]) == [120, 120, 120]
    assert list(table["verdict"]) == ["per-rater better", "inconclusive", "shared better"]
    assert table.loc[0, "np_over_N"] == pytest.approx(0.5)
    assert table.loc[0, "ci_low"] < table.loc[0, "difference"] < table.loc[0, "ci_high"] < 0
    assert table.loc[1, "ci_low"] < 0 < table.loc[1, "ci_high"]
    # higher is better for style recovery: the verdict flips with the sign convention
    flipped = pd.DataFrame(rows).rename(columns={"ged_true": "style_recovery"})
    assert recovery.controlled_comparison(flipped, "style_recovery").loc[0, "verdict"] == "shared better"
    # one run pair: the test set alone excludes 0, the verdict waits for more runs
    one = recovery.controlled_comparison(pd.DataFrame([r for r in rows if r["seed"] == 1337]))
    assert one.loc[0, "patient_ci_high"] < 0 and np.isnan(one.loc[0, "ci_low"]) and one.loc[0, "verdict"] == "inconclusive"


def test_controlled_figure_and_style_table():
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from mrseg import plots

    comparison = pd.DataFrame({"N": [2, 4, 4, 8], "np": [1, 2, 4, 8], "difference": [-0.1, 0.0, 0.02, 0.05],
                               "ci_low": [-0.15, -0.02, 0.01, 0.03], "ci_high": [-0.05, 0.02, 0.03, 0.07]})
    for frame in (comparison, pd.DataFrame()):
        fig = plots.controlled_advantage(frame)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=30)
        plt.close(fig)
        assert buf.getvalue().startswith(b"\x89PNG")
    cases = pd.DataFrame({"dataset": ["synthetic-raters2"] * 4, "model": ["shared", "shared", "per-rater", "per-rater"],
                          "n_present": 1, "fold": 0, "seed": 1, "case_id": ["a", "b", "a", "b"],
                          "style_recovery": [0.5, 1.0, 0.0, 0.5], "recovered_over": [1, 1, 0, 1],
                          "recovered_under": [0, 1, 0, 0]})
    table = recovery.recovery_by_style(cases).set_index("model")
    assert table.loc["shared", "over"] == 1.0 and table.loc["per-rater", "under"] == 0.0
    assert table.loc["shared", "style_recovery"] == 0.75
