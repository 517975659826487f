# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
#   mrseg:
#     title: "Figures 4.1 and 4.4: qualitative samples"
# ---

# %% [markdown]
# **Thesis Figures 4.1 and 4.4 (§4.2.5, §4.3.3).** The test cases with the highest inter-rater
# disagreement of one fold: the image, the four rater masks, and four prior samples of each model
# (thresholded at 0.5). The thesis shows LIDC fold 3; ours uses the last fold with results.
# The quantitative companion is the sample diversity d_SS (mean 1 - IoU between a model's samples).

# %% tags=["parameters", "hide-input"]
results_dir: str = ""  # folder of the aggregated tables (or its root); empty means mrseg.paths.results_dir()
plan: str = "thesis"  # plan name, e.g. thesis
profile: str = "smoke"  # profile: smoke, demo or paper

# %% tags=["hide-input"]
from mrseg import plots, report
from mrseg.config import Metric, Row

res, thesis = report.open_page(results_dir, plan, profile, study="main")

# %% [markdown]
# ## Figure 4.1: full annotation

# %% tags=["hide-input"]
MAIN = [(Row.PROBUNET, "ProbUNet"), (Row.DPERSONA_S1S2, "D-Persona"), (Row.PER_RATER_S1, "Per-rater")]
files = report.sample_files(res, "main", MAIN)
fig = plots.sample_grid(files) if files else report.show_markdown("*No samples yet for the main study.*")

# %% [markdown]
# ## Sample diversity d_SS (ours)

# %% tags=["hide-input"]
report.show_table(report.side_by_side(res, thesis, "main", "table_4_2_main",
                                      [(Row.PROBUNET, "ProbUNet"), (Row.DPERSONA_S1S2, "D-Persona (S1+S2)"),
                                       (Row.PER_RATER_S1, "Per-rater (S1)")],
                                      [], extra_ours=("d_ss", Metric.GED_DPERSONA)), "d_SS: higher = more diverse samples")

# %% [markdown]
# ## Figure 4.4: single-annotator training (np = 1)

# %% tags=["hide-input"]
files = report.sample_files(res, "sparsity", [(Row.SHARED_S1, "Shared, np=1"), (Row.PER_RATER_S1, "Per-rater, np=1")],
                           n_present=1)
fig = plots.sample_grid(files) if files else report.show_markdown("*No samples yet for np = 1.*")


# %% [markdown]
# ## What this shows
#
# Generated from the scorecard (`scorecard.json`): each claim that rests on this page, its verdict,
# our effect with its 95% CI, n and p, and the table row that decides it.

# %% tags=["hide-input"]
report.show_markdown(report.findings_markdown(res, "qualitative"))
