# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
#   mrseg:
#     title: "Figure 4.2: latent space (t-SNE)"
# ---

# %% [markdown]
# **Thesis Figure 4.2 (§4.2.5).** t-SNE of the per-rater posterior means and the prior means of one
# fold's test cases (thesis: fold 3, 412 cases). For shared models the per-rater point is the shared
# posterior given only that rater's mask. A 2-D t-SNE is not evidence on its own: the table gives
# companions computed in the original latent space (silhouette of rater labels: near 0 or below
# means no per-rater clusters).

# %% tags=["parameters", "hide-input"]
results_dir: str = ""  # folder of the aggregated tables (or its root); empty means mrseg.paths.results_dir()
plan: str = "thesis"  # plan name, e.g. thesis
profile: str = "smoke"  # profile: smoke, demo or paper

# %% tags=["hide-input"]
from mrseg import plots, report

res, thesis = report.open_page(results_dir, plan, profile)

# %% [markdown]
# ## Figure 4.2: t-SNE of posterior and prior means

# %% tags=["hide-input"]
files = report.latent_files(res)
fig = plots.latent_scatter(files) if files else report.show_markdown("*No latent embedding yet.*")

# %% [markdown]
# ## Quantitative companions, and the test of "no per-rater clusters"
#
# The verdict on "no distinct per-rater clusters" reads the latent space itself: the silhouette of
# the rater labels over the posterior means (`silhouette_raters`) with a 95% bootstrap interval
# over cases; below 0.25 means no substantial cluster structure. Beside it, a multinomial logistic
# regression predicts each mean's rater, 5-fold cross-validated with a case's raters kept in one
# fold (`rater_id_accuracy` against `rater_id_chance`). Decodable is not clustered: N separate
# encoders (or one encoder reading rater i's mask in channel i) give each rater its own offset even
# when the posterior encodes nothing, so the accuracy is near 1 for collapsed per-rater models too.
# Where the posterior is collapsed (no active units) the test is moot and C4.13 says so.

# %% tags=["hide-input"]
report.show_table(report.latent_companions_table(res), "latent_summary.json of each embedded run")


# %% [markdown]
# ## What this shows
#
# Generated from the scorecard (`scorecard.json`): each claim that rests on this page, its verdict,
# our effect with its 95% CI, n and p, and the table row that decides it.

# %% tags=["hide-input"]
report.show_markdown(report.findings_markdown(res, "latent"))
