# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
#   mrseg:
#     title: "The model family as a diagram"
# ---

# %% [markdown]
# The model family as a diagram: the shared posterior (D-Persona Stage 1) sees the image and all
# rater masks; the per-rater posteriors each see the image and one mask. Both share the backbone,
# the prior and the FComb decoder.

# %% tags=["parameters", "hide-input"]
results_dir: str = ""  # not used here (kept for the runner's common page parameters)
plan: str = "thesis"  # not used here
profile: str = "smoke"  # not used here

# %% tags=["hide-input"]
from mrseg import plots

fig = plots.architecture_diagram(n_raters=4)
