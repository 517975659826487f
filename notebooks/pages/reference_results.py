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
reference_profile: str = ""  # the export to read (reference/<plan>/<profile>); empty: every committed one

# %% tags=["hide-input"]
from mrseg import report
from mrseg.pipeline.reference import REFERENCE_PROFILES, available_reference_profiles, load_reference
from mrseg.report import reference_tables

res, thesis = report.open_page(results_dir, plan, profile, banner=False)   # this build: only beside the reference
profiles = [reference_profile] if reference_profile else available_reference_profiles(plan) or [REFERENCE_PROFILES[0]]
exports = {name: load_reference(plan, name) for name in profiles}
report.show_markdown(reference_tables.reference_banner(exports))
for name, ref in exports.items():
    report.show_markdown(f"**Profile `{name}`.** " + reference_tables.reference_status(ref))

# %% [markdown]
# The profiles: `reference` (a U-Net twice the demo's width with two convolutions per block at
# 96 px, K = 10, 3 seeds; sized for a GPU) and `reference-cpu` (the demo's network, data and
# evaluation unchanged, trained 20 epochs instead of 6 so that validation GED stops improving;
# the central comparisons on 4 folds × 5 seeds, ProbUNet on one seed; what a 2-core CPU
# affords). Both are defined in `mrseg/plans/thesis.yaml`; the scorecard scores every claim on
# the first one committed and lets it decide the claims whose runs in this build did not converge.
# `reference-cpu` also climbs a capacity ladder (the central rows retrained with wider U-Nets or
# at 128 px): see [Scale](scale).
#
# ## The central rows: this build beside the reference
#
# Mean ± SD over runs (folds × seeds) of GED (d(∅,∅)=0) and Dice_match, and the share of runs whose
# validation score stopped improving (`converged`: under 2% over the last fifth of training).

# %% tags=["hide-input"]
for name, ref in exports.items():
    report.show_table(reference_tables.reference_beside_ours(res, ref),
                      f"reference ({name}) beside this build's (ged: GED, d(∅,∅)=0; mean ± SD over runs)")

# %% [markdown]
# ## Paired comparisons in the reference runs
#
# Differences a − b on the same test cases (folds × seeds). A training run is the unit of
# replication: two trainings of one config differ about as much as the effects judged here, so the
# primary 95% CI is **run-level** (a crossed bootstrap over run pairs and patients, Student t on
# run pairs − 1 degrees of freedom; see [Statistical methods](statistics)). Beside it: the
# t interval over the run-pair means, Nadeau & Bengio's corrected interval (the conservative
# bound for overlapping cross-validation training sets), the patient bootstrap (**test-set
# uncertainty only**: it treats each trained model as fixed), and the smallest difference these
# runs detect with 80% power. "Inconclusive" whenever the primary interval contains zero.

# %% tags=["hide-input"]
for name, ref in exports.items():
    report.show_table(reference_tables.reference_paired(ref), f"reference ({name}) paired comparisons")

# %% [markdown]
# ## The sparsity trend in the reference runs
#
# Each sparsity row at np = 4 (full annotation: main's runs), 3, 2 and 1 raters per image, equal
# epochs; GED with d(∅,∅)=1 as mean ± SD over runs (the run count beside it: np = 2 and 3 ran on one
# seed, so their intervals rest on fewer run pairs), and per-rater − shared with its run-level 95% CI.

# %% tags=["hide-input"]
for name, ref in exports.items():
    table = reference_tables.reference_sparsity_trend(ref)
    if table.empty:
        report.show_markdown(f"*Profile `{name}`: no sparsity runs exported.*")
    else:
        report.show_table(table, f"reference ({name}): sparsity over np (GED, d(∅,∅)=1; mean ± SD over runs)")

# %% [markdown]
# ## Gradient alignment in the reference runs
#
# The diagnostic of thesis §3.6 on the exported runs that carry it (100 test cases per run and fold):
# the mean cosine between raters' reconstruction gradients at the shared latent (undefined for
# per-rater models: no shared z) and at the decoder's parameters (defined for both).

# %% tags=["hide-input"]
for name, ref in exports.items():
    table = reference_tables.reference_alignment(ref)
    if table.empty:
        report.show_markdown(f"*Profile `{name}`: no exported run carries the alignment diagnostic.*")
    else:
        report.show_table(table, f"reference ({name}): gradient alignment per row and np (mean over folds)")

# %% [markdown]
# ## The ablation in the reference runs
#
# Table 4.4's rows trained on the reference's schedule (rows 1 and 6 are main's runs), GED with
# d(∅,∅)=1 and Dice_match as mean ± SD over runs, and each row minus row 1 with its run-level 95% CI.

# %% tags=["hide-input"]
for name, ref in exports.items():
    table = reference_tables.reference_ablation(ref)
    if table.empty:
        report.show_markdown(f"*Profile `{name}`: no ablation runs exported.*")
    else:
        report.show_table(table, f"reference ({name}): ablation (GED, d(∅,∅)=1; mean ± SD over runs)")

# %% [markdown]
# ## Partial annotation and the epoch-confound control in the reference runs
#
# Partial annotation: the same models trained on every nodule slice, also those read by one to three
# radiologists (real sparsity, the absent readers' masks empty or masked), and scored on the
# four-rater test cases; beside them, the models trained on four-rater cases only (main; shared-masked,
# which main does not train, from the sparsity study at np = 4). The
# control: np = 4 at the thesis's sparse schedule (3x the epochs), the epoch confound behind C4.28.
# GED with d(∅,∅)=1, mean ± SD over runs; contrasts with their run-level 95% CI.

# %% tags=["hide-input"]
for name, ref in exports.items():
    for study, title in (("partial", "partial annotation"), ("control", "the epoch-confound control")):
        table, contrasts = reference_tables.reference_study_rows(ref, study)
        if table.empty:
            report.show_markdown(f"*Profile `{name}`: no {title} runs exported.*")
            continue
        report.show_table(table, f"reference ({name}): {title} (GED, d(∅,∅)=1; mean ± SD over runs)")
        if not contrasts.empty:
            report.show_table(contrasts, f"reference ({name}): {title}, paired contrasts (GED, d(∅,∅)=1)")

# %% [markdown]
# ## Exported runs

# %% tags=["hide-input"]
for name, ref in exports.items():
    report.show_table(reference_tables.reference_runs(ref), f"reference/{plan}/{name}: index.json and each run's manifest")
# %% [markdown]
# ## Does a committed run reproduce here?
#
# `python -m mrseg reference verify --runs K` retrains K committed runs on the machine at hand
# and compares each metric with the committed value. Exact reruns across machines are not
# expected (CPUs with other vector units round sums differently, and training amplifies that);
# a retrained run should land within the spread between seeds of the same config.
# %% tags=["hide-input"]
for name, ref in exports.items():
    report.show_markdown(f"**Profile `{name}`.** " + reference_tables.verification_status(ref))
    table = reference_tables.reference_verification(ref)
    if not table.empty:
        report.show_table(table, f"reference ({name}): latest verification")


# %% [markdown]
# ## What this shows
#
# Generated from the scorecard: each claim whose decision the committed reference runs make (this
# build's runs did not converge or did not run the rows), with the reference effect, its run-level
# 95% CI and the runs behind it.

# %% tags=["hide-input"]
report.show_markdown(report.reference_findings_markdown(res))
