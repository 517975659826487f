# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
#   mrseg:
#     title: "Table 4.2: main comparison"
# ---

# %% [markdown]
# **Thesis Table 4.2 (§4.2.1).** ProbUNet trained on the mean mask, the D-Persona pipeline (shared
# posterior, Stage 1 + Stage 2) and the proposed per-rater posteriors (Stage 1 only), 4-fold CV.
# The thesis's numbers are on the left of each pair, ours on the right; the thesis's GED uses
# d(∅,∅)=1, so ours is compared in that convention and also shown with d(∅,∅)=0.

# %% tags=["parameters", "hide-input"]
results_dir: str = ""  # folder of the aggregated tables (or its root); empty means mrseg.paths.results_dir()
plan: str = "thesis"  # plan name, e.g. thesis
profile: str = "smoke"  # profile: smoke, demo or paper

# %% tags=["hide-input"]
from mrseg import report
from mrseg.config import Metric, Row

res, thesis = report.open_page(results_dir, plan, profile, study="main")

# %% [markdown]
# ## Table 4.2: thesis and ours

# %% tags=["hide-input"]
ROWS = [(Row.PROBUNET, "ProbUNet (mean mask)"), (Row.DPERSONA_S1S2, "D-Persona (S1+S2)"),
        (Row.PER_RATER_S1, "Per-rater (S1, proposed)")]
report.show_table(report.side_by_side(res, thesis, "main", "table_4_2_main", ROWS,
                                      [Metric.GED, Metric.DICE_MATCH, Metric.DICE_SOFT]),
                  "Table 4.2: mean ± SD over folds")

# %% [markdown]
# ## Relative change of per-rater over D-Persona
#
# The thesis's relative changes (from its Table 4.2 numbers) beside ours.

# %% tags=["hide-input"]
report.show_table(report.relative_changes(res, thesis, "main", "table_4_2_main", Row.DPERSONA_S1S2, Row.PER_RATER_S1,
                                          [Metric.GED, Metric.DICE_MATCH, Metric.DICE_SOFT]))

# %% [markdown]
# ## Shared Stage 1 without Stage 2 (beyond Table 4.2)
#
# The thesis reports the shared Stage 1 model only per fold (Appendix I); our main study trains it too,
# so Stage 2's effect on the shared model can be read off directly.

# %% tags=["hide-input"]
report.show_table(report.side_by_side(res, thesis, "main", "appendix_I_full_annotation_per_fold",
                                      [(Row.PER_RATER_S1, "Per-rater (S1)"), (Row.SHARED_S1, "Shared (S1)"),
                                       (Row.DPERSONA_S1S2, "D-Persona (S1+S2)")],
                                      [Metric.GED, Metric.DICE_MATCH], thesis_ref="{table}.{metric}.{row}"),
                  "thesis: mean ± SD of its four per-fold values (Appendix I; it has no Stage 1+2 row there)")


# %% [markdown]
# ## Runs behind this page's rows
#
# Each table row above is the mean over these runs; each link opens the executed notebook of one run.

# %% tags=["hide-input"]
from IPython.display import HTML

HTML(report.runs_index_html(res, "main") or "<p>No runs recorded yet.</p>")


# %% [markdown]
# ## What this shows
#
# Generated from the scorecard (`scorecard.json`): each claim that rests on this page, its verdict,
# our effect with its 95% CI, n and p, and the table row that decides it.

# %% tags=["hide-input"]
report.show_markdown(report.findings_markdown(res, "main_comparison"))
