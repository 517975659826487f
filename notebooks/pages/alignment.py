# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
#   mrseg:
#     title: "Table 4.8, Figure 4.5: gradient alignment"
# ---

# %% [markdown]
# **Thesis §4.4: Table 4.8, Appendix III, Figure 4.5.** For a trained shared model and each test case:
# z = the shared posterior mean, g_i = ∂ log p(y_i | z, x) / ∂z per rater, and the mean pairwise cosine
# over the six rater pairs; per fold the mean over cases and the SD over cases (within-fold SD).
#
# For per-rater models there is no shared z, so this quantity is **undefined** (the thesis prints
# 0.000 "by construction"; this site prints "undefined"). The comparison defined for both models is
# the cosine of the per-rater reconstruction gradients at the shared decoder's parameters.
#
# Two ways to measure a sparse-trained shared model: with all four raters' masks in its posterior
# ("shared"), or **as trained** — np raters drawn and the others zero-filled, so the absent raters'
# targets are empty masks whose gradients all point the same way. The thesis does not say which it
# used; the "as trained" column shows how much of a collapse towards 1 the second reading produces.
# That reading has a floor by construction: with N = 4 and np = 1, three of the six pairs are
# zero-filled raters with identical (empty-mask) gradients, cosine 1, so the index is exactly
# (1 + c)/2, where c is the cosine between the present rater's gradient and the empty-mask
# gradient: it cannot fall below 0 (any four gradients can reach -1/3), and it is 0.5 when the two
# gradients are orthogonal. It exceeds 0.5 only if c > 0; the floor is not 0.5. From np = 2 on the
# floor is the general -1/3 (table below, from `mrseg.diagnostics.alignment.zero_fill_floor`).
#
# A comparison defined for every model, per-rater included, is the latent cosine at the **prior
# mean** z = mu_p(x), with g_i taken through the shared decoder. Each g_i splits exactly into a
# common part (mean mask minus prediction, the same for every rater) and a disagreement part (rater
# mask minus mean mask; these sum to zero), and mean |g_i|^2 = |common|^2 + mean |disagreement_i|^2,
# so the two are reported separately.

# %% tags=["parameters", "hide-input"]
results_dir: str = ""  # folder of the aggregated tables (or its root); empty means mrseg.paths.results_dir()
plan: str = "thesis"  # plan name, e.g. thesis
profile: str = "smoke"  # profile: smoke, demo or paper

# %% tags=["hide-input"]
from mrseg import plots, report

res, thesis = report.open_page(results_dir, plan, profile, study="sparsity")

# %% [markdown]
# ## Table 4.8: alignment vs annotators present

# %% tags=["hide-input"]
report.show_table(report.alignment_table(res, thesis), "Latent-gradient alignment of the shared model; decoder cosine for both")

# %% [markdown]
# ## The zero-filled reading's floor

# %% tags=["hide-input"]
from mrseg.diagnostics.alignment import floor_table, prior_split_table

report.show_table(floor_table(4), "Least possible and orthogonal-gradient values of the zero-filled index, N = 4")

# %% [markdown]
# ## Alignment at the prior mean, every model, and its gradient split

# %% tags=["hide-input"]
report.show_table(prior_split_table(res.alignment_rows()),
                  "Latent cosine at mu_p(x) and the common / disagreement split (means over folds)")

# %% [markdown]
# ## Appendix III: alignment per fold (shared model)

# %% tags=["hide-input"]
report.show_table(report.alignment_per_fold(res, thesis))

# %% [markdown]
# ## Figure 4.5: GED gain and alignment vs annotators present

# %% tags=["hide-input"]
fig = plots.gap_and_alignment(*report.gap_alignment_series(res, thesis))


# %% [markdown]
# ## Runs behind this page's rows
#
# Each table row above is the mean over these runs; each link opens the executed notebook of one run.

# %% tags=["hide-input"]
from IPython.display import HTML

HTML(report.runs_index_html(res, "sparsity") or "<p>No runs recorded yet.</p>")


# %% [markdown]
# ## What this shows
#
# Generated from the scorecard (`scorecard.json`): each claim that rests on this page, its verdict,
# our effect with its 95% CI, n and p, and the table row that decides it.

# %% tags=["hide-input"]
report.show_markdown(report.findings_markdown(res, "alignment"))
