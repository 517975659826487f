# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
#   mrseg:
#     title: "Statistical methods: the training run as the unit of replication"
# ---

# %% [markdown]
# Two trainings of one configuration differ, about as much as the effects the thesis reports (the
# measured spread of the central comparison is stated below the parameters). An interval that
# resamples only test patients treats each trained model as fixed,
# and calls differences decided that another seed would reverse. Every comparison of separately
# trained models on this site is therefore judged on an interval that carries **both** the
# run-to-run spread and the test set's sampling.
#
# ## The intervals
#
# The per-case differences a − b are nested in **run pairs** (the two models' runs on the same
# fold with the same seed) and crossed with **patients** (all run pairs of a fold score the same
# test patients). The estimate is the mean of the run-pair means.
#
# - **Primary: run-level.** A crossed bootstrap (Owen's "pigeonhole" bootstrap) resamples the run
#   pairs and, independently, each fold's patients (one draw per fold, shared by that fold's run
#   pairs). Its standard error becomes a 95% interval with Student's t on (run pairs − 1) degrees of
#   freedom: with 4 to 20 run pairs a percentile interval would be far too narrow. It is primary
#   because it is the only one of the four that carries both sources of variance and the
#   shared test set; a mixed model with crossed random effects (run pair, patient) estimates the
#   same quantity but took about a minute per comparison with statsmodels on this machine, against
#   a few hundred per build. The R − 1 degrees of freedom treat the run pairs as the replicates;
#   where the four folds' means differ much more than seeds within a fold, the fold is the real
#   replicate and Nadeau & Bengio's interval below is the safer reading.
# - **t over run pairs**: mean ± t · SD / √R of the run-pair means. It ignores that run pairs of
#   one fold share their test patients, so it can be narrower than the primary.
# - **Nadeau & Bengio's corrected resampled t** (2003): the variance of the run-pair means scaled by
#   1/R + n_test/n_train (here 1/3) instead of 1/R, because the training sets of cross-validation
#   folds overlap. The conservative bound.
# - **Test-set uncertainty only**: the bootstrap over patients of the pooled per-case differences.
#   Shown beside the others, never used for a verdict between separately trained models.
#
# A Stage 2 model compared with its own Stage 1 run (D-Persona S1+S2 vs shared S1, per-rater+S2
# vs per-rater) shares that training run, and keeps the per-case analysis (patient bootstrap), as
# do comparisons within one run (M = 4 vs M = 16 samples).
#
# **Power.** For each comparison the site gives the smallest true difference the run pairs present
# detect with 80% power at the 5% level: (t₀.₉₇₅ + t₀.₈₀) × SE on R − 1 degrees of freedom. An
# inconclusive verdict whose thesis effect is smaller than that reads **"inconclusive
# (underpowered: R runs detect ≥ X)"**: the runs could not have decided it. One run pair measures
# no run-to-run spread at all, so a comparison on a single fold and seed is always inconclusive.

# %% tags=["parameters", "hide-input"]
results_dir: str = ""  # folder of the aggregated tables (or its root); empty means mrseg.paths.results_dir()
plan: str = "thesis"  # plan name, e.g. thesis
profile: str = "smoke"  # profile: smoke, demo or paper

# %% tags=["hide-input"]
from mrseg import report
from mrseg.report import statistics_tables

res, thesis = report.open_page(results_dir, plan, profile)
report.show_markdown(statistics_tables.run_spread_sentence(res))

# %% [markdown]
# ## Power of the central comparisons
#
# This build's runs first, then the committed reference runs (the scorecard's reference column).
# "thesis effect" is the thesis's own a − b where the claim cites two of its numbers.

# %% tags=["hide-input"]
report.show_table(statistics_tables.power_table(res), "this build: run pairs, run-level SD and detectable effect")
report.show_table(statistics_tables.power_table(res, prefix="reference_"),
                  "reference runs: run pairs and detectable effect")

# %% [markdown]
# ## The thesis's own evidence under the same rule
#
# The thesis reports four folds and one seed per configuration, and tests its sparsity claims with
# a sign test over the 12 fold × sparsity-level comparisons; those 12 are not independent (each fold
# appears at three levels, and the folds' training sets overlap). Below, each of its comparisons
# is judged as this site judges its own: a t interval over the four fold differences, and Nadeau &
# Bengio's correction. Where the thesis gives only mean ± SD over folds, the fold-level
# correlation between the two models is unknown; the row assumes none and says what correlation
# would be needed for the difference to be significant.

# %% tags=["hide-input"]
report.show_markdown(statistics_tables.thesis_evidence_summary(res))
report.show_table(statistics_tables.thesis_evidence_view(res), "the thesis's fold numbers (thesis_evidence.csv)")
