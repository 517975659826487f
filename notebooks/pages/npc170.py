# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
#   mrseg:
#     title: "Table 4.5: NPC-170"
# ---

# %% [markdown]
# **Thesis Table 4.5 (§4.2.4).** Cross-dataset check on NPC-170 (nasopharyngeal carcinoma MRI,
# T1/T1CE/T2, 4 annotators; a single split and 3 seeds). NPC-170 is not public offline: the plan
# runs this study only when the data is present (`MRSEG_NPC170` or `data/npc170`, h5 files in
# `training_2d/`, `validation/`, `testing/`).

# %% tags=["parameters", "hide-input"]
results_dir: str = ""  # folder of the aggregated tables (or its root); empty means mrseg.paths.results_dir()
plan: str = "thesis"  # plan name, e.g. thesis
profile: str = "smoke"  # profile: smoke, demo or paper

# %% tags=["hide-input"]
from mrseg import report
from mrseg.config import Metric, Row

res, thesis = report.open_page(results_dir, plan, profile, study="npc170")

# %% [markdown]
# ## Table 4.5: thesis and ours

# %% tags=["hide-input"]
ROWS = [(Row.SHARED_S1, "Shared posterior (S1)"), (Row.PER_RATER_S1, "Per-rater (S1)")]
if res.has_study("npc170"):
    report.show_table(report.side_by_side(res, thesis, "npc170", "table_4_5_npc170", ROWS, [Metric.GED, Metric.DICE_MATCH]),
                      "Table 4.5: mean ± SD over seeds")
else:
    report.show_markdown("**NPC-170 data absent:** the study was not run, so only the thesis's numbers are shown.")
    report.show_table(report.side_by_side(res, thesis, "npc170", "table_4_5_npc170", ROWS, [Metric.GED, Metric.DICE_MATCH],
                                          extra_ours=()),
                      "Table 4.5: thesis only (ours: data absent)")


# %% [markdown]
# ## What this shows
#
# Generated from the scorecard (`scorecard.json`): each claim that rests on this page, its verdict,
# our effect with its 95% CI, n and p, and the table row that decides it.

# %% tags=["hide-input"]
report.show_markdown(report.findings_markdown(res, "npc170"))
