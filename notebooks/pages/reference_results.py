# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
#   mrseg:
#     title: "Reference results"
# ---

# %% [markdown]
# The runs this book trains are sized to finish on a laptop. The **reference results** are
# longer runs made once, elsewhere (a GPU machine, or a CPU over several invocations), whose
# per-case tables and manifests are committed under `reference/` (no weights): the showyourwork!
# "cached expensive step". Each reference run carries the fingerprint of the code and config that
# made it; a run whose fingerprint differs from what today's code gives its config is marked
# stale, and its numbers are those of the code that made it.

# %% tags=["parameters", "hide-input"]
results_dir: str = ""  # folder of the aggregated tables (or its root); empty means mrseg.paths.results_dir()
plan: str = "thesis"  # plan name, e.g. thesis
profile: str = "smoke"  # profile: smoke, demo or paper
reference_profile: str = "reference"  # the profile whose export is read from reference/<plan>/<profile>

# %% tags=["hide-input"]
from mrseg import report
from mrseg.pipeline.reference import load_reference
from mrseg.report import reference_tables

res, thesis = report.open_page(results_dir, plan, profile)
ref = load_reference(plan, reference_profile)
report.show_markdown(reference_tables.reference_status(ref))

# %% [markdown]
# ## The central rows: this build beside the reference
#
# Mean ± SD over runs (folds × seeds) of GED (d(∅,∅)=0) and Dice_match, and the share of runs whose
# validation score stopped improving (`converged`: under 2% over the last fifth of training).

# %% tags=["hide-input"]
report.show_table(reference_tables.reference_beside_ours(res, ref), "reference results beside this build's")

# %% [markdown]
# ## Paired comparisons in the reference runs
#
# Differences a − b on the same test cases (folds × seeds), with 95% CIs from a patient-level
# bootstrap; "inconclusive" whenever the interval contains zero.

# %% tags=["hide-input"]
report.show_table(reference_tables.reference_paired(ref), "reference paired comparisons")

# %% [markdown]
# ## Exported runs

# %% tags=["hide-input"]
report.show_table(reference_tables.reference_runs(ref), "reference/index.json and each run's manifest")
