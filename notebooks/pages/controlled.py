# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
#   mrseg:
#     title: "Beyond the thesis: controlled raters"
# ---

# %% [markdown]
# **Beyond the thesis.** On LIDC nobody knows what each rater's mask distribution is, so a model's
# samples can only be compared with the four masks a case happens to carry. The
# `synthetic-raters<N>` datasets (`mrseg.data.controlled`) are fully synthetic: every case has a
# latent lesion shape (with a halo and small satellite lesions), the image is drawn from that
# shape, and rater i draws its mask through a fixed, known style (over-segmenting,
# under-segmenting, smoothing, missing small lesions, shifted, ground-glass-inclusive, lobulated,
# reference; the first N of them), each with a random boundary offset. So the raters' true mask
# distribution is known, and two questions can be answered that LIDC cannot:
#
# - **GED to the true distribution** (`ged_true`): GED (d = 1 - IoU, d(empty, empty) = 0) between
#   the model's M samples and 32 draws of each style, instead of the case's N masks;
# - **per-style recovery** (`style_recovery`): the share of styles for which some sample has
#   Dice >= 0.8 with the style's typical mask (the pixelwise majority of its draws).
#
# The `controlled` study trains the shared and per-rater Stage 1 models at N in {2, 4, 8} raters
# with np/N in {1/N, 1/2, 1} raters drawn per image at every step (per-step missingness), on
# 32 x 32 images and one fold. Per-rater minus shared is compared per (N, np) with cases paired.
# The two models are trained separately, so the verdict reads the run-level 95% CI (run pairs and
# cases; see [Statistical methods](statistics)): with one seed on one fold there is one run pair,
# which measures no run-to-run spread, and every cell stays "inconclusive"; the bootstrap over
# cases (every case is its own patient) is shown beside it as test-set uncertainty only. The
# demo runs the whole sweep (20 runs: the 16 per-step cells and the static-missingness rows at
# N = 4) on 640 cases for 8 epochs, about half a minute per run; the paper profile trains the
# same cells for its full epoch count. The smoke profile leaves the study out.

# %% tags=["parameters", "hide-input"]
results_dir: str = ""  # folder of the aggregated tables (or its root); empty means mrseg.paths.results_dir()
plan: str = "thesis"  # plan name, e.g. thesis
profile: str = "smoke"  # profile: smoke, demo or paper

# %% tags=["hide-input"]
import pandas as pd

from mrseg import plots, report
from mrseg.config import Metric
from mrseg.diagnostics import recovery
from mrseg.pipeline.derived import metric_rows

res, thesis = report.open_page(results_dir, plan, profile, study="controlled")
cases = res.cases if res.cases is not None and "study" in res.cases else pd.DataFrame()
cases = cases[cases["study"] == "controlled"] if not cases.empty else cases
comparisons = {metric: metric_rows(res.derived.get("controlled"), metric)   # computed when the results were written
               for metric in ("ged_true", Metric.GED, "style_recovery")}

# %% [markdown]
# ## Per-rater vs shared, GED to the true style distribution (lower is better)

# %% tags=["hide-input"]
report.show_table(comparisons["ged_true"],
                  "Paired per-rater minus shared, per N and np: GED (d(∅,∅)=0) to the true distribution, run-level 95% CI")

# %% tags=["hide-input"]
fig = plots.controlled_advantage(comparisons["ged_true"])

# %% [markdown]
# ## The same against the case's own rater masks (GED, as elsewhere in the book)

# %% tags=["hide-input"]
report.show_table(comparisons[Metric.GED],
                  "Paired per-rater minus shared, per N and np: GED (d(∅,∅)=0) to the raters' masks, run-level 95% CI")

# %% [markdown]
# ## Style recovery (higher is better)
# Share of test cases in which some sample matched each style (Dice >= 0.8 with its typical mask).

# %% tags=["hide-input"]
report.show_table(comparisons["style_recovery"], "Paired per-rater minus shared: share of styles recovered")

# %% tags=["hide-input"]
report.show_table(recovery.recovery_by_style(cases) if not cases.empty else pd.DataFrame(),
                  "Share of cases in which each style was recovered, per model, N and np")

# %% [markdown]
# ## What this shows
#
# Generated from the comparisons above (run-level 95% CIs; fully synthetic raters and images).

# %% tags=["hide-input"]
report.show_markdown(report.controlled_conclusion(comparisons["ged_true"]) + "\n"
                     + report.controlled_conclusion(comparisons["style_recovery"], "share of styles recovered"))
