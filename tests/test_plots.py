"""Every figure of the book renders to a non-empty PNG from small tidy inputs."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from mrseg import plots  # noqa: E402
from mrseg.io import write_npz  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=40)
    plt.close(fig)
    data = buf.getvalue()
    assert data.startswith(PNG_MAGIC) and len(data) > 1000
    return data


def _samples(k=3, n=4, m=5, hw=16, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:hw, :hw]
    disc = ((yy - hw / 2) ** 2 + (xx - hw / 2) ** 2 < (hw / 4) ** 2)
    raters = np.stack([[np.roll(disc, i, axis=1) for i in range(n)] for _ in range(k)]).astype(np.uint8)
    return {"image": rng.random((k, 1, hw, hw)).astype(np.float32), "raters": raters,
            "probs": rng.random((k, m, hw, hw)).astype(np.float32), "case_ids": np.array([f"c{i}" for i in range(k)])}


def test_line_figures_render():
    ged = pd.DataFrame({"row": ["shared_s1"] * 4 + ["per_rater_s1"] * 4 + ["shared_s1"] * 2,
                        "n_present": [1, 2, 3, 4] * 2 + [1, 4], "mean": np.linspace(0.2, 0.14, 10),
                        "sd": 0.01, "source": ["ours"] * 8 + ["thesis"] * 2})
    _png(plots.ged_vs_n_present(ged))
    gap = pd.DataFrame({"n_present": [1, 2, 3, 4] * 2, "ged_gap": [21, 18, 11, 0.5] * 2,
                        "alignment": [0.97, 0.46, 0.29, 0.17] * 2, "alignment_sd": 0.05,
                        "source": ["ours"] * 4 + ["thesis"] * 4})
    _png(plots.gap_and_alignment(gap))
    with pytest.raises(ValueError, match="missing columns"):
        plots.gap_and_alignment(gap.drop(columns="alignment"))


def test_attribute_figures_render():
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"sd_margin": rng.integers(0, 3, 60) / 2, "var_patch": rng.random(60)})
    _png(plots.margin_scatter(table))
    bars = pd.DataFrame({"attribute": ["margin", "texture", "calcification"], "r": [0.3, 0.2, -0.1],
                         "thesis_r": [0.318, 0.21, np.nan]})
    _png(plots.attribute_bars(bars))


def test_qualitative_and_tsne_render(tmp_path):
    s = _samples()
    _png(plots.qualitative_panels(s["image"], s["raters"], s["probs"], s["case_ids"], title="t"))
    other = _samples(seed=1)
    _png(plots.qualitative_comparison({"ProbUNet": s, "per-rater": other}, max_cases=2))
    write_npz(tmp_path / "samples.npz", **s)
    _png(plots.qualitative_from_run(tmp_path))
    coords = np.random.default_rng(0).normal(size=(50, 2))
    labels = np.repeat([0, 1, 2, 3, -1], 10)
    _png(plots.tsne_scatter(coords, labels))
    write_npz(tmp_path / "latent.npz", coords=coords, labels=labels)
    _png(plots.tsne_from_run(tmp_path))
    with pytest.raises(FileNotFoundError, match="samples.npz"):
        plots.qualitative_from_run(tmp_path / "missing")


def test_architecture_and_histogram_render(tmp_path):
    _png(plots.architecture_diagram())
    _png(plots.alignment_histogram({"np4": np.random.default_rng(0).uniform(-1, 1, 50), "per-rater": np.full(5, np.nan)}))
    out = plots.save_png(plots.architecture_diagram(n_raters=3), tmp_path / "fig.png")
    assert out.read_bytes().startswith(PNG_MAGIC)


def test_page_helpers_accept_paths_and_sequences(tmp_path):
    s, other = _samples(), _samples(seed=1)
    write_npz(tmp_path / "a.npz", **s)
    _png(plots.sample_grid({"ProbUNet": tmp_path / "a.npz", "per-rater": other}, n_cases=1))
    _png(plots.sparsity_curves([1, 2, 3, 4], {"shared": [0.22, 0.2, 0.18, 0.14]},
                               {"shared": [np.nan] * 4}))
    _png(plots.gap_and_alignment([1, 2, 3, 4], [21, 18, 11, 0.5], [0.98, 0.46, 0.29, 0.17],
                                 [np.nan] * 4, [np.nan] * 4))
    write_npz(tmp_path / "latent.npz", coords=np.zeros((6, 2)) + np.arange(6)[:, None], labels=np.array([0, 1, 2, 3, -1, -1]))
    _png(plots.latent_scatter({"shared": tmp_path / "latent.npz", "per-rater": tmp_path / "latent.npz"}))


def test_figures_4_3_and_4_5_draw_our_error_bars():
    from matplotlib.container import ErrorbarContainer

    fig = plots.sparsity_curves([1, 2, 3, 4], {"shared": [0.22, 0.2, 0.18, 0.14]}, {"shared": [0.3, 0.25, 0.2, 0.15]},
                                {"shared": [0.02, 0.02, 0.01, 0.01]})
    bars = [c for c in fig.axes[0].containers if isinstance(c, ErrorbarContainer) and c.has_yerr]
    assert any(len(c.lines[2]) and len(c.lines[2][0].get_segments()) == 4 for c in bars)
    fig = plots.gap_and_alignment([1, 2, 3, 4], [21, 18, 11, 0.5], [0.98, 0.46, 0.29, 0.17],
                                  [25, 15, 8, 1], [0.9, 0.5, 0.3, 0.2], [3, 3, 2, 2], [0.01, 0.05, 0.05, 0.1])
    with_err = [c for ax in fig.axes for c in ax.containers
                if isinstance(c, ErrorbarContainer) and c.has_yerr and c.lines[2] and len(c.lines[2][0].get_segments())]
    assert len(with_err) == 2   # our gap (95% CI) and our alignment (SD over folds); the thesis has none


def test_lines_break_at_levels_without_runs():
    import math

    from mrseg.plots import gap_and_alignment, sparsity_curves

    nan = math.nan
    fig = sparsity_curves([4, 3, 2, 1], {"shared": [0.2, 0.21, 0.22, 0.25]}, {"shared": [0.5, nan, nan, 0.6]})
    ours = [line for line in fig.axes[0].lines if line.get_linestyle() == "-"]
    assert ours and all(np.isnan(np.asarray(line.get_ydata(), float)[1:3]).all() for line in ours)
    assert list(ours[0].get_xdata()) == [1, 2, 3, 4]
    fig = gap_and_alignment([4, 3, 2, 1], [0, 11.5, 17.8, 21.4], [0.2, 0.5, 0.8, 0.98],
                            [1.0, nan, nan, 5.0], [0.3, nan, nan, 0.9])
    solid = [line for ax in fig.axes for line in ax.lines if line.get_linestyle() == "-"]
    assert solid and all(np.isnan(np.asarray(line.get_ydata(), float)[1:3]).all() for line in solid)


def test_ladder_figure_joins_rungs_of_one_image_size_and_marks_another():
    quality = pd.DataFrame([
        {"series": "per-rater S1", "parameters": p, "image_size": px, "metric": m, "mean": v, "sd": 0.01, "thesis": t}
        for p, px, v in ((42_000, 64, 0.70), (167_000, 64, 0.71), (42_000, 128, 0.75))
        for m, t in (("dice_match", 0.91), ("ged_dpersona", 0.14))])
    effects = pd.DataFrame([{"effect": "per-rater S1 − shared S1, np = 4", "parameters": p, "image_size": px,
                             "mean": -0.01, "ci_low": -0.05, "ci_high": 0.03, "thesis": -0.0007}
                            for p, px in ((42_000, 64), (167_000, 64), (42_000, 128))])
    fig = plots.ladder_figure(quality, effects, thesis_parameters=24_400_000)
    dice = fig.axes[0]
    labels = [t.get_text() for t in dice.get_legend().get_texts()]
    assert labels == ["per-rater S1", "per-rater S1 (128 px)"]
    joined, alone = dice.containers
    assert len(joined.lines[0].get_xdata()) == 2 and joined.lines[0].get_linestyle() == "-"
    assert list(alone.lines[0].get_xdata()) == [42_000] and alone.lines[0].get_marker() == "s"
    assert [t.get_text() for t in fig.axes[2].get_legend().get_texts()][-1].endswith("(128 px)")
    _png(fig)
