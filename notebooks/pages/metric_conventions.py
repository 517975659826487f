# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
#   mrseg:
#     title: "Metric conventions: why GED numbers differ"
# ---

# %% [markdown]
# GED (generalised energy distance, d = 1 - IoU) is the headline metric of the thesis and of the
# papers it compares with, yet two conventions are in use for the distance between **two empty
# masks**: d(∅,∅)=0 (PHiSeg, SSN, CAR, MoSE, CCDM, Flow-SSN: two empty masks agree) and
# d(∅,∅)=1 (D-Persona's code, which adds 1e-8 to the IoU denominator; the thesis inherits it).
# GED is also a V-statistic over M samples (self-pairs included), so it depends on M.
#
# Below, the **same predictions** of three simple predictors (see `mrseg.conventions`) are scored
# under both conventions and several M, computed live with `mrseg.metrics.ged_batch` on the
# `synthetic` dataset's rater masks (fully procedural), with a share of rater masks blanked as on
# LIDC slices a radiologist did not mark.

# %% tags=["parameters", "hide-input"]
results_dir: str = ""  # not used here (kept for the runner's common page parameters)
plan: str = "thesis"  # not used here
profile: str = "smoke"  # not used here
n_cases: int = 64  # synthetic cases scored
blank_share: float = 0.25  # probability that a rater's mask is emptied
sample_counts: str = "1,4,16,64"  # values of M, comma-separated

# %% tags=["hide-input"]
import numpy as np

from mrseg import conventions, report
from mrseg.data.synthetic import make_synthetic_samples

raters = np.stack([s["masks"] for s in make_synthetic_samples(n_cases=n_cases, image_size=64, seed=0)])
table = conventions.convention_study(raters, [int(m) for m in sample_counts.split(",")], blank_share=blank_share)
report.show_markdown(f"{n_cases} cases, 4 raters; share of empty rater masks after blanking: "
                     f"{conventions.empty_share(conventions.blank_raters(raters, blank_share)):.0%}.")

# %% [markdown]
# ## GED of the same predictions under both conventions

# %% tags=["hide-input"]
report.show_table(table.assign(**{c: table[c].map(report.fmt) for c in ("GED d(∅,∅)=0", "GED d(∅,∅)=1", "difference")}))

# %% tags=["hide-input"]
report.show_markdown(report.convention_shift_note(table, report.load_thesis_reported()))
fig = conventions.plot_convention_study(table)

# %% [markdown]
# ## Reading the table
#
# - The convention moves different predictors by different amounts: a predictor that often
#   outputs empty masks is moved most, because with d(∅,∅)=1 its empty-empty pairs count as
#   maximally distant in the subtracted diversity term.
# - GED falls with M for a diverse predictor (self-pairs weigh 1/M) and not for the mean-mask
#   predictor, whose samples are all the same: comparing GED across papers needs the same M.
# - This site therefore reports every GED with its M and in both conventions: d(∅,∅)=1 beside the
#   thesis's numbers, d(∅,∅)=0 beside the field's.
