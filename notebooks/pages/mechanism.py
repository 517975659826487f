# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
#   mrseg:
#     title: "Beyond the thesis: mechanism"
# ---

# %% [markdown]
# **Beyond the thesis.** The thesis explains the per-rater encoders' advantage by gradient
# conflict in a shared posterior. Per-rater and shared differ in three ways at once: (a) separate
# encoder *parameters* per rater, (b) the per-rater *ELBO decomposition* (one posterior sample per
# rater, eq. 3.5) and (c) more posterior *capacity*. The `mechanism` study adds two controls:
#
# - `per-rater-tied`: ONE posterior encoder on (image, one mask), applied to each present rater
#   separately and trained with the per-rater ELBO: (b) without (a). Its gradients are isolated
#   between raters' *samples*, not between parameters;
# - `shared-wide`: the shared posterior widened so its parameter count matches the four per-rater
#   encoders together (within 5%): (c) without (a) or (b);
# - `shared-masked` (the sparsity study's run): the shared posterior with the absent raters masked
#   out of the loss instead of zero-filled, for (d): is the baseline's deficit under sparsity its
#   zero-fill targets rather than sharing as such?
#
# and, beyond the thesis, free bits (at least 0.25 nats per latent dimension free of KL pressure)
# for shared, per-rater and per-rater-tied, since a posterior that collapses onto the prior cannot
# make its design matter. Each comparison pairs the same test cases (fold, seed, case) of two
# rows at one np. The rows are separately trained, so the verdict reads the run-level 95% CI (run
# pairs and patients; see [Statistical methods](statistics)), "inconclusive" when it contains zero
# and always with a single run pair (one fold, one seed), which measures no run-to-run spread; the
# bootstrap over patients is shown beside it as test-set uncertainty only.
# The demo runs the study at np = 1 on fold 0, one seed (shared, shared-masked and per-rater are
# the sparsity study's runs; five more runs: per-rater-tied, shared-wide and the three free-bits
# rows), 6 epochs, so its readings are about an unconverged network on one fold; the paper profile
# adds the np = 4 cells on every fold.

# %% tags=["parameters", "hide-input"]
results_dir: str = ""  # folder of the aggregated tables (or its root); empty means mrseg.paths.results_dir()
plan: str = "thesis"  # plan name, e.g. thesis
profile: str = "smoke"  # profile: smoke, demo or paper

# %% tags=["hide-input"]
import pandas as pd
from IPython.display import Markdown, display

from mrseg import report
from mrseg.config import Metric
from mrseg.diagnostics import mechanism
from mrseg.pipeline.derived import metric_rows

res, thesis = report.open_page(results_dir, plan, profile, study="mechanism")
cases = res.cases if res.cases is not None else pd.DataFrame()
comparisons = metric_rows(res.derived.get("mechanism"), Metric.GED)   # computed when the results were written
collapse = mechanism.collapse_table(res.summary if res.summary is not None else pd.DataFrame())
if collapse.empty:
    display(Markdown("*No results: the mechanism study did not run in this profile (enable it with a "
                     "profile override, `studies: {mechanism: {folds: [0]}}`).*"))

# %% [markdown]
# ## Which explanation the controls support (GED, lower is better)
# One reading per explanation, from its pair's paired test: "supported" when the CI favours the
# control; "not supported" when it favours the other row, or when the pair is inconclusive while
# per-rater still beats the control ((c): shared-wide, (d): shared-masked); else "inconclusive".

# %% tags=["hide-input"]
report.show_table(mechanism.explanation_readings(comparisons),
                  "Reading per explanation (difference a - b of GED, d(∅,∅)=0; run-level 95% CI)")

# %% [markdown]
# Every pair, including the free-bits rows. A pair's difference is the first row minus the second.

# %% tags=["hide-input"]
report.show_table(comparisons, "Paired differences of GED (d(∅,∅)=0), per control pair and np; run-level 95% CI")

# %% [markdown]
# The same pairs on Dice_match (higher is better): does the reading depend on the metric?

# %% tags=["hide-input"]
dice = metric_rows(res.derived.get("mechanism"), Metric.DICE_MATCH)
report.show_table(dice, "Paired differences of Dice_match, per control pair and np")

# %% [markdown]
# ## Is the posterior used? KL(q || p) and conditional active units
# With and without free bits; KL in nats summed over latent dimensions, active units as defined
# on the run pages (variance of mu_q - mu_p above 0.01).

# %% tags=["hide-input"]
report.show_table(collapse, "Mechanism study: GED (d(∅,∅)=0), KL and active units per row and np (mean and SD over folds)")

# %% [markdown]
# ## What this shows
#
# Generated from the tables above: each explanation's reading with its pair's run-level 95% CI, and
# whether the posteriors were in use.

# %% tags=["hide-input"]
report.show_markdown(report.mechanism_conclusion(mechanism.explanation_readings(comparisons), collapse))
