# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
#   mrseg:
#     title: "Replication scorecard"
# ---

# %% [markdown]
# Every numbered claim of the thesis's abstract (A) and chapter 4 (C4), the thesis's value, ours,
# and a verdict computed by a rule from our tables (`book/data/claims.yaml` holds the claims and
# rules). **reproduced**: the claimed direction or ordering holds in our runs; **not reproduced**: it
# does not; **not testable here**: this project cannot test it (data absent, or the quantity is
# undefined); **no results yet**: the plan has not produced the tables the rule needs (e.g. the
# smoke profile runs one fold and one sparsity level). Verdicts compare directions, not magnitudes:
# our demo-scale runs on (semi-)synthetic images cannot match the thesis's absolute numbers.

# %% tags=["parameters", "hide-input"]
results_dir: str = ""  # folder of the aggregated tables (or its root); empty means mrseg.paths.results_dir()
plan: str = "thesis"  # plan name, e.g. thesis
profile: str = "smoke"  # profile: smoke, demo or paper

# %% tags=["hide-input"]
from mrseg import report

res, thesis = report.open_page(results_dir, plan, profile)
card = report.scorecard(res, thesis, report.load_claims())

# %% [markdown]
# ## Verdicts at a glance

# %% tags=["hide-input"]
report.show_table(report.verdict_counts(card))

# %% [markdown]
# ## Every claim

# %% tags=["hide-input"]
from IPython.display import HTML

HTML(report.scorecard_html(card))
