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
# ## Appendix III: alignment per fold (shared model)

# %% tags=["hide-input"]
report.show_table(report.alignment_per_fold(res, thesis))

# %% [markdown]
# ## Figure 4.5: GED gain and alignment vs annotators present

# %% tags=["hide-input"]
fig = plots.gap_and_alignment(*report.gap_alignment_series(res, thesis))


# %% [markdown]
# ## What our runs show for the thesis's claims
#
# Generated from the scorecard (`scorecard.json`): each claim that rests on this page, its verdict,
# our effect with its 95% CI, n and p, and the table row that decides it.

# %% tags=["hide-input"]
report.show_markdown(report.findings_markdown(res, "alignment"))


# %% [markdown]
# ## Runs behind this page's rows
#
# Each table row above is the mean over these runs; each link opens the executed notebook of one run.

# %% tags=["hide-input"]
from IPython.display import HTML

HTML(report.runs_index_html(res, "sparsity") or "<p>No runs recorded yet.</p>")

