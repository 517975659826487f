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
# # Gradient alignment of one trained run
#
# Thesis §3.6 / §4.4. For each selected test case: z = the shared posterior mean given all raters,
# g_i = ∂ log p(y_i | z, x) / ∂z with the Bernoulli log-likelihood of rater i's mask, and the mean
# cosine over the rater pairs. A per-rater model has no shared z: its value is **undefined**.
# The decoder-parameter cosine (per-rater reconstruction gradients at the FComb parameters, each
# rater's z being the posterior mean that trains on it) is defined for both models, and so is the
# latent cosine at the **prior mean** z = mu_p(x) (every model has a prior), whose per-rater
# gradients split into a common residual (mean mask minus prediction, the same for every rater)
# and a disagreement residual (rater mask minus mean mask).
# Definitions in full: `mrseg.diagnostics.alignment`.

# %% tags=["parameters"]
config_json: str = ""  # the run's RunConfig as JSON (passed by the runner)
run_dir: str = ""  # the run directory with best.pt; empty: runs_dir plus the run id of config_json
n_cases: int = 100  # test cases of the fold, seeded choice (the thesis used 100 per fold)
seed: int = 1337  # seed of the case choice

# %%
from mrseg import plots
from mrseg.diagnostics import alignment

path = alignment.resolve_run_dir(config_json, run_dir)
cases, summary = alignment.run_alignment(path, n_cases=n_cases, seed=seed, progress=False)
print(f"run {summary['run_id']}: model {summary['model']}, fold {summary['fold']}, "
      f"trained with np = {summary['train_n_present']}, {summary['n_cases']} test cases")

# %%
alignment.summary_table(summary)

# %% [markdown]
# ## The prior-mean gradient split
# mean_i |g_i|^2 = |common|^2 + mean_i |disagreement_i|^2 exactly (the disagreement parts sum to
# zero): the index is high where the common residual dominates, whatever the raters' disagreement.

# %%
cases[[c for c in alignment.PRIOR_COLUMNS]].describe().T[["mean", "std", "count"]]

# %% [markdown]
# ## The floor of the zero-filled reading
# Measured "as trained" (np raters drawn, the others zero-filled), the absent raters' targets are
# all the empty mask, so their gradients are identical and their pairs have cosine 1. With N = 4
# and np = 1 the index is exactly (1 + c)/2, c the cosine between the present rater's gradient and
# the empty-mask gradient: at least 0 (not -1/3) by construction, 0.5 when the two are orthogonal,
# above 0.5 only when c > 0. From np = 2 on the floor is the general -1/(N-1).

# %%
alignment.floor_table(int(summary.get("n_raters") or 4))

# %% [markdown]
# Distribution of the case-level cosines (a per-rater model has no latent histogram).

# %%
fig = plots.alignment_histogram({"latent (Bernoulli)": cases["latent_cosine"], "decoder parameters": cases["decoder_cosine"],
                                 "latent at the prior mean": cases["prior_cosine"]})
