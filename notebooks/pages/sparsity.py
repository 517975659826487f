# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
#   mrseg:
#     title: "Tables 4.6 and 4.7, Figure 4.3: sparse annotation"
# ---

# %% [markdown]
# **Thesis §4.3: Tables 4.6 and 4.7, Figure 4.3.** Both Stage 1 models retrained with np of the four
# raters drawn as present per training image per step, always evaluated against all four raters.
# The np=4 row is the full-annotation reference trained for the full-length schedule; the thesis
# trains its sparse rows 3x longer (100 vs 300 epochs). The demo trains every np for the same
# number of epochs (see the banner), so np is not confounded with training length. Beyond the
# thesis, `shared-masked` drops absent raters' reconstruction terms instead of training them
# towards empty masks: the control the thesis's limitations section asks for.
#
# The tables first use the default objective, `dpersona-code` (D-Persona's code: one random rater per
# mini-batch, batch-pooled generalised Dice); the section "Under the thesis's equations" repeats the
# study with `thesis-eq` (every rater slot reconstructed each step, eq. 3.2), so the page shows
# whether the sparsity finding depends on the objective (see *Protocol fidelity*).

# %% tags=["parameters", "hide-input"]
results_dir: str = ""  # folder of the aggregated tables (or its root); empty means mrseg.paths.results_dir()
plan: str = "thesis"  # plan name, e.g. thesis
profile: str = "smoke"  # profile: smoke, demo or paper

# %% tags=["hide-input"]
from mrseg import plots, report
from mrseg.config import Metric, Row

res, thesis = report.open_page(results_dir, plan, profile, study="sparsity")

# %% [markdown]
# ## Table 4.6: GED vs annotators present

# %% tags=["hide-input"]
report.show_table(report.sparsity_table(res, thesis, Metric.GED), "GED (d(∅,∅)=1 unless marked), mean ± SD over folds")

# %% [markdown]
# ## Table 4.7: Dice_match vs annotators present

# %% tags=["hide-input"]
report.show_table(report.sparsity_table(res, thesis, Metric.DICE_MATCH), "Dice_match, mean ± SD over folds")

# %% [markdown]
# ## Per-fold wins and the sign test

# %% tags=["hide-input"]
report.show_markdown("Thesis: " + str(report.thesis_value(thesis, "claims_sign_test")) + ".")
report.show_table(res.derived.get("sign_test"), "Per-fold wins of per-rater over shared (GED, d(∅,∅)=1) and the sign test")

# %% [markdown]
# ## Figure 4.3: GED vs annotators present

# %% tags=["hide-input"]
fig = plots.sparsity_curves(*report.sparsity_series(res, thesis, Metric.GED), ylabel="GED, d(∅,∅)=1")

# %% [markdown]
# ## Under the thesis's equations (`thesis-eq`)
#
# The same study with the shared baselines trained on eq. 3.2 (all N slots every step, absent ones
# zero-filled); per-rater follows eq. 3.5 under both objectives, so its runs are the same. The
# profile may run this study on fewer folds and np levels (see "folds"), or not at all: the demo
# leaves it to the paper profile (its minutes went to the mechanism and controlled-rater studies),
# and the tables below then hold dashes.

# %% tags=["hide-input"]
from mrseg.report import protocol

levels = sorted({int(n) for n in (res.summary[res.summary["study"] == "sparsity_thesis_eq"]["n_present"]
                                   if res.available and "study" in res.summary else [])} | {4}, reverse=True)
report.show_table(report.sparsity_table(res, thesis, Metric.GED, study="sparsity_thesis_eq", levels=levels),
                  "thesis-eq objective: GED (d(∅,∅)=1 unless marked), mean ± SD over folds")
report.show_table(protocol.objective_comparison(res, Metric.GED_DPERSONA, levels=levels),
                  "Both objectives on the folds both ran: GED (d(∅,∅)=1)")
report.show_table(protocol.objective_comparison(res, Metric.DICE_MATCH, levels=levels),
                  "Both objectives on the folds both ran: Dice_match (higher is better)")

# %% [markdown]
# ## Equal-epoch control (thesis §4.7, Table II.3)
#
# np=4 trained for the sparse schedule, per fold. The thesis's own per-fold numbers for this control
# (its Table II.3, below beside ours) favour the shared baseline in most folds; it excluded these
# runs from its main tables. Claim C4.28 scores it with a sign test. Where a profile trains every
# np for the same epochs (the demo), this control is the np = 4 reference itself and is not run
# separately.

# %% tags=["hide-input"]
report.show_table(report.per_fold_table(res, "control", [(Row.SHARED_S1, "Shared (S1)"), (Row.PER_RATER_S1, "Per-rater (S1)")],
                                        Metric.GED_DPERSONA, 4, thesis, "appendix_II_sparse_per_fold.np4_300_epochs.ged.{row}"),
                  "GED (d(∅,∅)=1) per fold, np=4 at the sparse epoch count")


# %% [markdown]
# ## Runs behind this page's rows
#
# Each table row above is the mean over these runs; each link opens the executed notebook of one run.

# %% tags=["hide-input"]
from IPython.display import HTML

HTML(report.runs_index_html(res, "sparsity") or "<p>No runs recorded yet.</p>")


# %% [markdown]
# ## What this shows
#
# Generated from the scorecard (`scorecard.json`): each claim that rests on this page, its verdict,
# our effect with its 95% CI, n and p, and the table row that decides it.

# %% tags=["hide-input"]
report.show_markdown(report.findings_markdown(res, "sparsity"))
