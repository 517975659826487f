"""Every figure of the book. Each function takes tidy data and returns a matplotlib ``Figure``
(it never saves; :func:`save_png` does).

Functions never read files, except the ``*_from_run(run_dir)`` conveniences and the page helpers
that accept a run file path in place of its arrays (:func:`sample_grid`, :func:`latent_scatter`).

- :func:`ged_vs_n_present` (Fig 4.3): rows ``row`` (model key), ``n_present``, ``mean``, optional
  ``sd`` and ``source`` ("ours" / "thesis"). :func:`sparsity_curves` is the same from mappings.
- :func:`gap_and_alignment` (Fig 4.5): rows ``n_present``, ``ged_gap`` (relative GED improvement
  of per-rater over shared, %), ``alignment`` (mean latent cosine of the shared model), optional
  ``alignment_sd``, ``source``; or five sequences (levels, gap/alignment for thesis and ours).
- :func:`margin_scatter` (Fig 4.6): a unit table of :mod:`mrseg.diagnostics.attributes` (columns
  ``sd_margin`` and ``var_<definition>``).
- :func:`attribute_bars`: rows ``attribute``, ``r``, optional ``thesis_r``.
- :func:`qualitative_panels` (Figs 4.1, 4.4): arrays of one run's ``samples.npz``;
  :func:`qualitative_comparison` / :func:`sample_grid` put several runs together on the same cases.
- :func:`tsne_scatter` (Fig 4.2): ``coords [K,2]``, ``labels [K]`` (rater index, -1 prior);
  :func:`latent_scatter` one panel per model.
- :func:`alignment_histogram`: case-level cosines.
- :func:`architecture_diagram` (Fig 3.1): drawn in code.

On LIDC the rater index is the slot after sorting masks by area ("k-th smallest annotation"),
not a person; titles say "rater slot".
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from mrseg.config import Metric, Row
from mrseg.io import atomic_path

MODEL_LABELS: dict[str, str] = {
    Row.SHARED_S1: "shared posterior (Stage 1)",
    Row.PER_RATER_S1: "per-rater posteriors (Stage 1)",
    Row.SHARED_MASKED_S1: "shared, absent raters masked",
    Row.PROBUNET: "ProbUNet",
    Row.DPERSONA_S1S2: "D-Persona Stage 1+2",
}
RATER_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive")

ArraysOrPath = Mapping[str, np.ndarray] | str | Path


def _label(row: str) -> str:
    return MODEL_LABELS.get(str(row), str(row))


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: missing columns {missing}; got {list(frame.columns)}")


def _arrays(source: ArraysOrPath) -> dict[str, np.ndarray]:
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"{path}: file not found")
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    return dict(source)


def _empty_note(ax: Any) -> None:
    ax.text(0.5, 0.5, "no results yet", ha="center", va="center", transform=ax.transAxes, color="0.4")


# --- sparsity and alignment ------------------------------------------------------------------


def ged_vs_n_present(data: pd.DataFrame, metric_label: str = "GED", title: str | None = None) -> Figure:
    """Fig 4.3: metric vs raters present per training image, one line per (row, source).

    Ours are solid with SD error bars; the thesis's values dashed with hollow markers.
    """
    _require(data, ["row", "n_present", "mean"], "ged_vs_n_present")
    data = data.copy()
    if "source" not in data:
        data["source"] = "ours"
    levels = sorted(data["n_present"].unique())
    data = data[np.isfinite(data["mean"].astype(float))]
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    for k, row in enumerate(dict.fromkeys(data["row"])):
        for source, g in data[data["row"] == row].groupby("source", sort=False):
            g = _on_levels(g, levels)
            thesis = source == "thesis"
            sd = g["sd"] if "sd" in g and not thesis else None
            ax.errorbar(g["n_present"], g["mean"], yerr=sd, color=f"C{k}", ls="--" if thesis else "-",
                        marker="o", mfc="none" if thesis else f"C{k}", capsize=3, label=f"{_label(row)} ({source})")
    ax.set_xlabel("raters present per training image (np)")
    ax.set_ylabel(metric_label)
    if len(data):
        ax.set_xticks(sorted(data["n_present"].unique()))
        ax.legend(fontsize=8)
    else:
        _empty_note(ax)
    ax.grid(alpha=0.3)
    ax.set_title(title or f"{metric_label} vs annotation coverage")
    return fig


def _on_levels(frame: pd.DataFrame, levels: Sequence[int]) -> pd.DataFrame:
    """``frame`` (one series) with a row per level of ``levels``, ascending, NaN where it has no
    value: a line then breaks at a level without runs instead of joining its neighbours across it."""
    frame = frame.drop_duplicates("n_present").set_index("n_present").reindex(list(levels))
    return frame.rename_axis("n_present").reset_index()


def sparsity_curves(levels: Sequence[int], thesis: Mapping[str, Sequence[float]],
                    ours: Mapping[str, Sequence[float]], ours_sd: Mapping[str, Sequence[float]] | None = None,
                    ylabel: str = "GED") -> Figure:
    """:func:`ged_vs_n_present` from mappings model label -> values per level (NaN where missing);
    ``ours_sd`` (same layout): SD over folds, drawn as error bars."""
    rows = []
    for source, series in (("thesis", thesis), ("ours", ours)):
        for label, values in series.items():
            sds = (ours_sd or {}).get(label) if source == "ours" else None
            for i, (level, value) in enumerate(zip(levels, values)):
                sd = float(sds[i]) if sds is not None else math.nan
                rows.append({"row": label, "n_present": level, "mean": float(value), "sd": sd, "source": source})
    return ged_vs_n_present(pd.DataFrame(rows, columns=["row", "n_present", "mean", "sd", "source"]), metric_label=ylabel)


def gap_and_alignment(data: pd.DataFrame | Sequence[int], *series: Sequence[float], title: str | None = None) -> Figure:
    """Fig 4.5: GED gap (left axis, %) and shared-model alignment (right axis) vs np.

    Either a tidy frame (module docstring) or ``(levels, gap_thesis, align_thesis, gap_ours,
    align_ours[, gap_ours_err, align_ours_sd])`` sequences: the optional two give our error bars
    (the gap's 95% CI half-width in percent, the alignment's SD over folds).
    """
    if not isinstance(data, pd.DataFrame):
        if len(series) not in (4, 6):
            raise ValueError("gap_and_alignment: give a DataFrame or levels plus four (or six) sequences")
        gap_t, al_t, gap_o, al_o = series[:4]
        nan = [math.nan] * len(gap_t)
        gap_err, al_sd = (list(series[4]), list(series[5])) if len(series) == 6 else (list(nan), list(nan))
        data = pd.DataFrame({"n_present": list(data) * 2, "ged_gap": list(gap_t) + list(gap_o),
                             "alignment": list(al_t) + list(al_o), "ged_gap_err": nan + gap_err,
                             "alignment_sd": nan + al_sd,
                             "source": ["thesis"] * len(gap_t) + ["ours"] * len(gap_o)})
    _require(data, ["n_present", "ged_gap", "alignment"], "gap_and_alignment")
    data = data.copy()
    if "source" not in data:
        data["source"] = "ours"
    fig, ax = plt.subplots(figsize=(6.5, 4), constrained_layout=True)
    ax2 = ax.twinx()
    handles = []
    levels = sorted(data["n_present"].unique())
    for source, g in data.groupby("source", sort=False):
        g = _on_levels(g, levels)
        ls = "--" if source == "thesis" else "-"
        gg = g if np.isfinite(g["ged_gap"].astype(float)).any() else g.iloc[:0]
        if len(gg):
            gerr = gg["ged_gap_err"] if "ged_gap_err" in gg and source != "thesis" else None
            handles.append(ax.errorbar(gg["n_present"], gg["ged_gap"], yerr=gerr, color="C0", ls=ls, marker="o",
                                       capsize=3, label=f"GED gap ({source})"))
        ga = g if np.isfinite(g["alignment"].astype(float)).any() else g.iloc[:0]
        if len(ga):
            yerr = ga["alignment_sd"] if "alignment_sd" in ga and source != "thesis" else None
            handles.append(ax2.errorbar(ga["n_present"], ga["alignment"], yerr=yerr, color="C3", ls=ls, marker="s",
                                        capsize=3, label=f"alignment ({source})"))
    ax.set_xlabel("raters present per training image (np)")
    ax.set_ylabel("GED improvement of per-rater over shared (%)", color="C0")
    ax2.set_ylabel("shared-model gradient alignment (cosine)", color="C3")
    ax.set_xticks(sorted(data["n_present"].unique()))
    ax.grid(alpha=0.3)
    if handles:
        ax.legend(handles=handles, fontsize=8, loc="upper right")
    else:
        _empty_note(ax)
    ax.set_title(title or "GED gap and gradient alignment vs annotation coverage")
    return fig


def alignment_histogram(values: Mapping[str, np.ndarray], title: str | None = None) -> Figure:
    """Case-level cosine distributions, one histogram per label (e.g. "np4 latent")."""
    fig, ax = plt.subplots(figsize=(6, 3.6), constrained_layout=True)
    bins = np.linspace(-1, 1, 41)
    drawn = False
    for k, (label, v) in enumerate(values.items()):
        v = np.asarray(v, float)
        v = v[np.isfinite(v)]
        if v.size:
            ax.hist(v, bins=bins, alpha=0.5, color=f"C{k}", label=f"{label} (n = {v.size})")
            drawn = True
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel("mean pairwise cosine per case")
    ax.set_ylabel("cases")
    if drawn:
        ax.legend(fontsize=8)
    else:
        _empty_note(ax)
    ax.set_title(title or "Case-level gradient alignment")
    return fig


# --- attribute study -------------------------------------------------------------------------


def margin_scatter(table: pd.DataFrame, definition: str = "patch", attribute: str = "margin",
                   title: str | None = None) -> Figure:
    """Fig 4.6: rating SD across raters (x, jittered for display only) vs mask variance (y), least
    squares fit and Pearson r on the unjittered values."""
    x_col, y_col = f"sd_{attribute}", f"var_{definition}"
    _require(table, [x_col, y_col], "margin_scatter")
    x, y = table[x_col].to_numpy(float), table[y_col].to_numpy(float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    jitter = np.random.default_rng(0).uniform(-0.04, 0.04, x.size)
    ax.scatter(x + jitter, y, s=8, alpha=0.4, color="C0", label=f"units (n = {x.size})")
    if x.size >= 3 and np.ptp(x) > 0:
        slope, intercept = np.polyfit(x, y, 1)
        r = np.corrcoef(x, y)[0, 1]
        grid = np.linspace(x.min(), x.max(), 50)
        ax.plot(grid, slope * grid + intercept, color="C3", label=f"least-squares fit, r = {r:.3f}")
    ax.set_xlabel(f"{attribute} rating SD across raters")
    ax.set_ylabel(f"inter-rater mask variance ({definition})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or f"{attribute.capitalize()} disagreement vs mask variance")
    return fig


def attribute_bars(data: pd.DataFrame, title: str | None = None) -> Figure:
    """Pearson r per attribute, ours beside the thesis's (where reported)."""
    _require(data, ["attribute", "r"], "attribute_bars")
    fig, ax = plt.subplots(figsize=(7, 3.6), constrained_layout=True)
    pos = np.arange(len(data))
    has_thesis = "thesis_r" in data and data["thesis_r"].notna().any()
    width = 0.4 if has_thesis else 0.7
    ax.bar(pos - (width / 2 if has_thesis else 0), data["r"], width, label="ours", color="C0")
    if has_thesis:
        ax.bar(pos + width / 2, data["thesis_r"].fillna(0), width, label="thesis (no bar: not reported)",
               color="C1", alpha=0.8)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(pos, data["attribute"], rotation=30, ha="right")
    ax.set_ylabel("Pearson r")
    ax.legend(fontsize=8)
    ax.set_title(title or "Rating disagreement vs mask variance")
    return fig


# --- qualitative panels ----------------------------------------------------------------------


def _show_mask(ax: Any, image: np.ndarray, mask: np.ndarray | None, color: str, title: str, prob: bool = False) -> None:
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    if mask is not None:
        if prob:
            ax.imshow(np.ma.masked_less(mask, 0.05), cmap="autumn", alpha=0.45, vmin=0, vmax=1)
        if (mask >= 0.5).any() and (mask < 0.5).any():
            ax.contour(mask, levels=[0.5], colors=[color], linewidths=1.2)
    ax.set_title(title, fontsize=7.5)
    ax.set_axis_off()


def qualitative_panels(image: np.ndarray, raters: np.ndarray, probs: np.ndarray,
                       case_ids: Sequence[str] | None = None, max_cases: int = 6,
                       max_samples: int = 4, title: str | None = None) -> Figure:
    """Figs 4.1 / 4.4 for one run: per case a row with the image, each rater's mask (contour) and
    the first samples' probabilities (overlay, contour at 0.5). ``image`` [k,C,H,W], ``raters``
    [k,N,H,W], ``probs`` [k,M,H,W] (a run's ``samples.npz``)."""
    k = min(max_cases, image.shape[0])
    n, m = raters.shape[1], min(max_samples, probs.shape[1])
    # fixed margins, not constrained_layout: the layout solver over k x (1 + N + M) axes took most
    # of a run notebook's rendering time
    fig, axes = plt.subplots(k, 1 + n + m, figsize=(1.6 * (1 + n + m), 1.7 * k), squeeze=False)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.9 if title else 0.95, wspace=0.05, hspace=0.3)
    for r in range(k):
        img = image[r, 0]
        cid = str(case_ids[r]) if case_ids is not None else str(r)
        _show_mask(axes[r, 0], img, None, "w", f"image {cid}")
        for i in range(n):
            _show_mask(axes[r, 1 + i], img, raters[r, i].astype(float), RATER_COLORS[i % 8], f"rater slot {i + 1}")
        for j in range(m):
            _show_mask(axes[r, 1 + n + j], img, probs[r, j].astype(float), "yellow", f"sample {j + 1}", prob=True)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def qualitative_comparison(runs: Mapping[str, ArraysOrPath], max_cases: int = 2,
                           max_samples: int = 4, title: str | None = None) -> Figure:
    """Several runs on the same cases (e.g. ProbUNet vs per-rater, Fig 4.1): for each case the
    image and raters once, then one row of samples per run. ``runs`` maps a label to
    ``samples.npz`` arrays (or its path); cases are the first run's cases that every run has."""
    runs = {label: _arrays(src) for label, src in runs.items()}
    labels = list(runs)
    if not labels:
        raise ValueError("qualitative_comparison: no runs given")
    first = runs[labels[0]]
    ids = [str(c) for c in first["case_ids"]]
    others = {lab: [str(x) for x in runs[lab]["case_ids"]] for lab in labels}
    common = [c for c in ids if all(c in others[lab] for lab in labels)][:max_cases]
    if not common:
        raise ValueError("qualitative_comparison: the runs share no test case")
    n = first["raters"].shape[1]
    m = min([max_samples] + [runs[lab]["probs"].shape[1] for lab in labels])
    cols = 1 + max(n, m)
    nrows = len(common) * (1 + len(labels))
    fig, axes = plt.subplots(nrows, cols, figsize=(1.6 * cols, 1.7 * nrows), squeeze=False, constrained_layout=True)
    for ax in axes.flat:
        ax.set_axis_off()
    row = 0
    for cid in common:
        k = ids.index(cid)
        img = first["image"][k, 0]
        _show_mask(axes[row, 0], img, None, "w", f"case {cid}")
        for i in range(n):
            _show_mask(axes[row, 1 + i], img, first["raters"][k, i].astype(float), RATER_COLORS[i % 8],
                       f"rater slot {i + 1}")
        row += 1
        for label in labels:
            arr = runs[label]
            kk = others[label].index(cid)
            axes[row, 0].text(0.5, 0.5, label, ha="center", va="center", fontsize=8, wrap=True,
                              transform=axes[row, 0].transAxes)
            for j in range(m):
                _show_mask(axes[row, 1 + j], img, arr["probs"][kk, j].astype(float), "yellow", f"sample {j + 1}", prob=True)
            row += 1
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def sample_grid(samples: Mapping[str, ArraysOrPath], n_cases: int = 2, n_samples: int = 4) -> Figure:
    """:func:`qualitative_comparison` with the book pages' argument names."""
    return qualitative_comparison(samples, max_cases=n_cases, max_samples=n_samples)


def qualitative_from_run(run_dir: str | Path, **kwargs: Any) -> Figure:
    """:func:`qualitative_panels` from ``run_dir/samples.npz``."""
    path = Path(run_dir) / "samples.npz"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no samples.npz in this run (has it been evaluated?)")
    s = _arrays(path)
    return qualitative_panels(s["image"], s["raters"], s["probs"], s.get("case_ids"), **kwargs)


# --- latent embedding ------------------------------------------------------------------------


def _tsne_axes(ax: Any, coords: np.ndarray, labels: np.ndarray, rater_names: Sequence[str] | None = None) -> None:
    coords, labels = np.asarray(coords), np.asarray(labels)
    for i in sorted(set(int(v) for v in labels) - {-1}):
        sel = labels == i
        name = rater_names[i] if rater_names is not None else f"posterior, rater slot {i + 1}"
        ax.scatter(coords[sel, 0], coords[sel, 1], s=9, alpha=0.55, color=RATER_COLORS[i % 8], label=name)
    sel = labels == -1
    ax.scatter(coords[sel, 0], coords[sel, 1], s=12, marker="x", color="k", alpha=0.7, label="prior mean")
    ax.set_xlabel("t-SNE 1")
    ax.set_ylabel("t-SNE 2")
    ax.legend(fontsize=7, markerscale=1.5)


def tsne_scatter(coords: np.ndarray, labels: np.ndarray, title: str | None = None,
                 rater_names: Sequence[str] | None = None) -> Figure:
    """Fig 4.2: t-SNE of posterior means (one colour per rater slot) and prior means (black x)."""
    fig, ax = plt.subplots(figsize=(5.5, 4.5), constrained_layout=True)
    _tsne_axes(ax, coords, labels, rater_names)
    ax.set_title(title or "t-SNE of posterior and prior means")
    return fig


def latent_scatter(latent: Mapping[str, ArraysOrPath], max_points: int | None = None) -> Figure:
    """One t-SNE panel per model; ``latent`` maps a label to a run's ``latent.npz`` (or arrays)."""
    fig, axes = plt.subplots(1, max(1, len(latent)), figsize=(4.8 * max(1, len(latent)), 4.4), squeeze=False,
                             constrained_layout=True)
    if not latent:
        _empty_note(axes[0, 0])
    for ax, (label, src) in zip(axes[0], latent.items()):
        arrays = _arrays(src)
        coords, labels = arrays["coords"], arrays["labels"]
        if max_points is not None and len(coords) > max_points:
            keep = np.random.default_rng(0).choice(len(coords), max_points, replace=False)
            coords, labels = coords[keep], labels[keep]
        _tsne_axes(ax, coords, labels)
        ax.set_title(label, fontsize=9)
    return fig


def tsne_from_run(run_dir: str | Path, title: str | None = None) -> Figure:
    """:func:`tsne_scatter` from ``run_dir/latent.npz``."""
    path = Path(run_dir) / "latent.npz"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no latent.npz (run the latent notebook for this run)")
    arrays = _arrays(path)
    return tsne_scatter(arrays["coords"], arrays["labels"], title=title)


# --- architecture (Fig 3.1) ------------------------------------------------------------------


def _box(ax: Any, xy: tuple[float, float], text: str, color: str, w: float = 0.2,
         h: float = 0.075) -> tuple[float, float, float, float]:
    x, y = xy
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.01", fc=color, ec="k", lw=0.8))
    ax.text(x, y, text, ha="center", va="center", fontsize=7.5)
    return x, y, w, h


def _arrow(ax: Any, a: tuple[float, float, float, float], b: tuple[float, float, float, float],
           color: str = "k", ls: str = "-") -> None:
    (xa, ya, _, ha), (xb, yb, _, hb) = a, b
    ax.add_patch(FancyArrowPatch((xa, ya - ha / 2), (xb, yb + hb / 2), arrowstyle="-|>", mutation_scale=9,
                                 color=color, lw=1.0, ls=ls))


def architecture_diagram(n_raters: int = 4) -> Figure:
    """Fig 3.1: shared posterior (left) vs per-rater posteriors (right). Solid arrows: the
    test-time path (image -> backbone and prior -> FComb); dashed: training-only posterior z."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 5.2), constrained_layout=True)
    for ax, per_rater in zip(axes, (False, True)):
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_axis_off()
        image = _box(ax, (0.5, 0.93), "image x", "#eeeeee")
        backbone = _box(ax, (0.18, 0.72), "backbone f(x)\n(U-Net)", "#cfe2f3")
        prior = _box(ax, (0.5, 0.72), "prior net\np(z | x)", "#d9ead3")
        for b in (backbone, prior):
            _arrow(ax, image, b)
        if per_rater:
            xs = np.linspace(0.64, 0.94, n_raters)
            posts = []
            for i, x in enumerate(xs):
                posts.append(_box(ax, (x, 0.5), f"q{i + 1}", "#fce5cd", w=0.06, h=0.08))
                ax.text(x, 0.63, f"y{i + 1}", ha="center", fontsize=7.5, color=RATER_COLORS[i % 8])
                _arrow(ax, (x, 0.65, 0, 0.0), posts[-1], color=RATER_COLORS[i % 8])
            ax.text(float(xs.mean()), 0.43, "q_i(z | x, y_i): one encoder per rater,\n2 input channels, no shared weights",
                    ha="center", va="top", fontsize=7)
        else:
            posts = [_box(ax, (0.8, 0.5), f"shared posterior\nq(z | x, y1..y{n_raters})\n{n_raters + 1} input channels",
                          "#fce5cd", w=0.26, h=0.11)]
            ax.text(0.8, 0.63, "  ".join(f"y{i + 1}" for i in range(n_raters)), ha="center", fontsize=7.5)
            _arrow(ax, (0.8, 0.65, 0, 0.0), posts[0])
        fcomb = _box(ax, (0.35, 0.3), "FComb decoder\nf(x) tiled with z", "#d0e0e3", w=0.24)
        _arrow(ax, backbone, fcomb)
        _arrow(ax, prior, fcomb, color="tab:green")
        for p in posts:
            ax.add_patch(FancyArrowPatch((p[0], p[1] - p[3] / 2), (fcomb[0] + fcomb[2] / 2, fcomb[1]),
                                         arrowstyle="-|>", mutation_scale=9, color="tab:orange", lw=1.0, ls="--"))
        out = _box(ax, (0.35, 0.1), "logits -> M samples", "#eeeeee", w=0.24)
        _arrow(ax, fcomb, out)
        if per_rater:
            loss = "(1/N) sum_i [recon(y_i | z_i) + KL(q_i || p)]\n+ 0.5 L_bound"
            note = "rater gradients meet only at the decoder"
        else:
            loss = "sum_i recon(y_i | z) + KL(q || p)\n+ 0.5 L_bound"
            note = "rater gradients meet inside the encoder (shared z)"
        _box(ax, (0.76, 0.18), loss, "#fff2cc", w=0.44, h=0.1)
        ax.text(0.76, 0.08, note, ha="center", fontsize=7.5, style="italic")
        ax.text(0.02, 0.02, "solid: test time   dashed: training only (posterior z)", fontsize=7, color="0.3")
        ax.set_title("per-rater posteriors (proposed)" if per_rater else "shared posterior (baseline)", fontsize=10)
    return fig



def kl_curves(curves: Mapping[str, pd.DataFrame], title: str | None = None) -> Figure:
    """KL(q || p) in nats per training step (log axis), one line per model, and each latent
    dimension's KL as thin lines: ``curves`` are :func:`mrseg.diagnostics.kl_curve.kl_curve` tables."""
    fig, axes = plt.subplots(1, max(1, len(curves)), figsize=(5.2 * max(1, len(curves)), 3.6), squeeze=False,
                             sharey=True)
    for ax, (model, table) in zip(axes[0], curves.items()):
        _require(table, ["step", "kl"], "kl_curves")
        dims = [c for c in table.columns if c.startswith("kl_d")]
        for c in dims:
            ax.plot(table["step"], table[c].clip(lower=1e-9), lw=0.6, alpha=0.5, color="0.5")
        ax.plot(table["step"], table["kl"].clip(lower=1e-9), lw=1.8, color="C0", label="KL, all dimensions")
        ax.set_yscale("log")
        ax.set_xlabel("training step")
        ax.set_title(_label(model))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("KL(q || p), nats (grey: per dimension)")
    axes[0][0].legend(loc="upper right", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig



def kl_by_epoch(history: pd.DataFrame, title: str | None = None) -> Figure:
    """Validation KL(q || p) (log axis) and active units per epoch, one line per (setting, model):
    ``history`` from :func:`mrseg.diagnostics.posterior_use.epoch_history`."""
    _require(history, ["setting", "model", "epoch", "val_kl", "val_active_units"], "kl_by_epoch")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    colours = {s: f"C{k % 10}" for k, s in enumerate(dict.fromkeys(history["setting"]))}
    for (setting, model), group in history.groupby(["setting", "model"], sort=False):
        style = "-" if str(model).startswith("per_rater") else "--"
        label = f"{setting}, {_label(str(model))}"
        left.plot(group["epoch"], group["val_kl"].clip(lower=1e-9), style, color=colours[setting], label=label)
        right.plot(group["epoch"], group["val_active_units"], style, color=colours[setting], label=label)
    left.set_yscale("log")
    left.set_ylabel("validation KL(q || p), nats")
    right.set_ylabel("validation active units")
    for ax in (left, right):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    right.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def save_png(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` as PNG atomically and close it."""

    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    return path


# --- controlled raters (beyond the thesis) ----------------------------------------------------
def controlled_advantage(comparison: pd.DataFrame, a: str = "per-rater", b: str = "shared",
                         metric_label: str = "GED to the true distribution") -> Figure:
    """Mean paired difference ``a - b`` with its 95% CI (from
    :func:`mrseg.diagnostics.recovery.controlled_comparison`) against the rater count N (left,
    one line per np/N) and against np/N (right, one line per N); per-step missingness only (the
    static-missingness rows are in the page's table)."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), constrained_layout=True)
    if comparison is not None and "missing" in comparison:
        comparison = comparison[comparison["missing"] == "per-step"]
    if comparison is None or comparison.empty:
        for ax in axes:
            _empty_note(ax)
        return fig
    frame = comparison.assign(share=comparison["np"] / comparison["N"])
    frame["level"] = np.where(frame["np"] == 1, "1/N", np.where(frame["np"] == frame["N"], "1",
                                                                 frame["share"].map(lambda v: f"{v:.2g}")))
    for ax, (x, line) in zip(axes, (("N", "level"), ("share", "N"))):
        for k, (key, group) in enumerate(frame.groupby(line, sort=True)):
            group = group.sort_values(x)
            err = np.vstack([group["difference"] - group["ci_low"], group["ci_high"] - group["difference"]])
            ax.errorbar(group[x], group["difference"], yerr=np.nan_to_num(err), marker="o", capsize=3,
                        color=f"C{k}", label=f"{'np/N' if line == 'level' else 'N'} = {key}")
        ax.axhline(0, color="k", lw=0.8)
        ax.set_ylabel(f"{a} - {b} (95% CI)")
        ax.legend(fontsize=8)
    fig.suptitle(f"{metric_label}: paired difference per case", fontsize=10)
    axes[0].set(xlabel="raters N", xscale="log", xticks=sorted(frame["N"].unique()))
    axes[0].set_xticklabels([str(v) for v in sorted(frame["N"].unique())])
    axes[1].set(xlabel="share of raters present per step, np/N")
    return fig


def ladder_figure(quality: pd.DataFrame, effects: pd.DataFrame, thesis_parameters: float | None = None,
                  metric_label: str = "GED (d(∅,∅)=1)") -> Figure:
    """The capacity ladder (:func:`mrseg.report.scale_tables.figure_data`): Dice_match (left) and
    GED (middle) per row against backbone parameters (log axis), mean ± SD over runs, the thesis's
    value of each row as a dashed line of the same colour; right: each central effect's mean with its
    run-level 95% CI per rung, the thesis's effect dashed. Rungs at the own network's image size are
    joined by lines (circles); a rung at another size is a separate marker (squares, its size named in
    the legend). ``thesis_parameters`` marks the thesis's network on the axis."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), constrained_layout=True)
    if quality is None or quality.empty:
        for ax in axes:
            _empty_note(ax)
        return fig
    sizes = list(dict.fromkeys(quality["image_size"])) if "image_size" in quality else [None]
    style = {size: ("o", "-", "") if k == 0 else ("s", "none", f" ({size} px)") for k, size in enumerate(sizes)}

    def at_size(frame: pd.DataFrame, size: Any) -> pd.DataFrame:
        return frame if size is None else frame[frame["image_size"] == size]

    metrics = list(dict.fromkeys(quality["metric"]))
    for ax, metric in zip(axes[:2], metrics):
        sel = quality[quality["metric"] == metric]
        for k, (series, group) in enumerate(sel.groupby("series", sort=False)):
            for size in sizes:
                part = at_size(group, size).sort_values("parameters")
                if part.empty:
                    continue
                marker, line, note = style[size]
                ax.errorbar(part["parameters"], part["mean"], yerr=np.nan_to_num(part["sd"].to_numpy(dtype=float)),
                            marker=marker, ls=line, capsize=3, color=f"C{k}", label=series + note)
            thesis = group["thesis"].dropna()
            if len(thesis):
                ax.axhline(float(thesis.iloc[0]), color=f"C{k}", ls="--", lw=0.9)
        ax.set(xscale="log", xlabel="backbone parameters", ylabel=metric_label if metric != Metric.DICE_MATCH else "Dice_match",
               title=("Dice_match" if metric == Metric.DICE_MATCH else metric_label) + ", np = 4 (dashed: thesis)")
        ax.legend(fontsize=7)
    ax = axes[2]
    if effects is not None and not effects.empty:
        for k, (effect, group) in enumerate(effects.groupby("effect", sort=False)):
            for size in sizes:
                part = at_size(group, size).sort_values("parameters")
                if part.empty:
                    continue
                marker, line, note = style[size]
                x = part["parameters"].to_numpy(dtype=float) * (1 + 0.06 * (k - 1))   # side by side on the log axis
                mean = part["mean"].to_numpy(dtype=float)
                err = np.vstack([np.nan_to_num(mean - part["ci_low"].to_numpy(dtype=float)),
                                 np.nan_to_num(part["ci_high"].to_numpy(dtype=float) - mean)])
                ax.errorbar(x, mean, yerr=err, marker=marker, ls=line, capsize=3, color=f"C{k + 3}",
                            label=effect + note)
            ax.axhline(float(group["thesis"].iloc[0]), color=f"C{k + 3}", ls="--", lw=0.9)
    ax.axhline(0, color="k", lw=0.8)
    ax.set(xscale="log", xlabel="backbone parameters", ylabel=f"a − b, {metric_label} (95% CI)",
           title="central effects per rung (dashed: thesis)")
    ax.legend(fontsize=7)
    if thesis_parameters:
        for ax in axes:
            ax.axvline(thesis_parameters, color="0.5", lw=0.8, ls=":")
            ax.annotate("thesis's network", (thesis_parameters, 0.02), xycoords=("data", "axes fraction"),
                        fontsize=7, ha="right", rotation=90, color="0.4")
    return fig
