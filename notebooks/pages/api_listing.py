# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
#   mrseg:
#     title: "Every public function"
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

report.show_markdown(report.api_listing(report.package_modules("mrseg")))
