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
# Every public function and class of the `mrseg` package with its signature and the first paragraph
# of its docstring, generated from the installed code when the book's pages are executed.

# %% tags=["parameters", "hide-input"]
results_dir: str = ""  # folder of the aggregated tables (or its root); empty means mrseg.paths.results_dir()
plan: str = "thesis"  # plan name, e.g. thesis
profile: str = "smoke"  # profile: smoke, demo or paper

# %% tags=["hide-input"]
from mrseg import report

MODULES = ["mrseg.config", "mrseg.paths", "mrseg.io", "mrseg.manifest", "mrseg.data.contract", "mrseg.data.cache",
           "mrseg.data.folds", "mrseg.data.registry", "mrseg.data.synthetic", "mrseg.data.lidc_pylidc", "mrseg.data.loaders",
           "mrseg.data.torch_data", "mrseg.models", "mrseg.losses", "mrseg.train", "mrseg.metrics",
           "mrseg.diagnostics.alignment", "mrseg.diagnostics.latent", "mrseg.diagnostics.attributes",
           "mrseg.diagnostics.statistics", "mrseg.plan", "mrseg.runner", "mrseg.executors", "mrseg.aggregate",
           "mrseg.report", "mrseg.plots", "mrseg.conventions"]
report.show_markdown(report.api_listing(MODULES))
