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
# # Latent embedding of one trained run
#
# Thesis Fig 4.2. Per test case of the run's fold: one posterior mean per rater and the prior
# mean, embedded with t-SNE. For a shared model the per-rater point is the shared posterior given
# only that rater's mask. The table gives the companions computed in the latent space itself
# (silhouette of rater labels, distances to the prior mean, rater spread against case spread);
# definitions in `mrseg.diagnostics.latent`.

# %% tags=["parameters"]
config_json: str = ""  # the run's RunConfig as JSON (passed by the runner)
run_dir: str = ""  # the run directory with best.pt; empty: runs_dir plus the run id of config_json
n_cases: int = 0  # test cases to embed; 0 means the whole test fold, as in the thesis
seed: int = 1337  # seed of the case choice and of t-SNE

# %%
import pandas as pd

from mrseg import plots
from mrseg.diagnostics import alignment, latent

path = alignment.resolve_run_dir(config_json, run_dir)
arrays, summary = latent.run_latent(path, n_cases=n_cases or None, seed=seed)
print(f"run {summary['run_id']}: model {summary['model']}, fold {summary['fold']}, {summary['n_cases']} test cases")

# %%
fig = plots.tsne_scatter(arrays["coords"], arrays["labels"], title=f"{summary['model']}, fold {summary['fold']}")

# %%
pd.Series({k: v for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}, name="value").to_frame()
