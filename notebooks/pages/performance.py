# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
#   mrseg:
#     title: "Performance"
# ---

# %% [markdown]
# What the code costs, each number with the command that reproduces it. Numbers come only from
# measurement files written beside the results tables (`bench_metrics.json`, `bench_step.json`,
# `bench_gpu.json`, `bench_dataset.json`) and from the runner's own timings; anything not measured
# says so. The thesis's own training hours (Appendix V) are in the last table.

# %% tags=["parameters", "hide-input"]
results_dir: str = ""  # folder of the aggregated tables (or its root); empty means mrseg.paths.results_dir()
plan: str = "thesis"  # plan name, e.g. thesis
profile: str = "smoke"  # profile: smoke, demo or paper

# %% tags=["hide-input"]
from mrseg import report

res, thesis = report.open_page(results_dir, plan, profile)

# %% [markdown]
# ## Measurements

# %% tags=["hide-input"]
report.show_table(report.performance_table(res))

# %% [markdown]
# ## How close a training step comes to this machine's limit
#
# `python -m mrseg bench roofline`: the machine's measured fp32 peak (a 2048 x 2048 matrix product
# on the configured threads) and, per network, one training step's FLOPs (convolutions and matrix
# products, forward and backward, counted by torch) over its median time. Elementwise work is not
# counted, so the share is a lower bound on how busy the cores are; small convolutions spend their
# time in overhead, not arithmetic.

# %% tags=["hide-input"]
roofline = res.extra.get("bench_roofline") or {}
if roofline.get("peak_gflops"):
    report.show_markdown(f"Measured peak: **{roofline['peak_gflops']:.1f} GFLOP/s** on {roofline['threads']} thread(s) "
                         f"({roofline['cpus']} CPUs; load average {roofline['load_before']} before the run).")
report.show_table(report.roofline_table(res), "bench_roofline.json: training-step FLOPs and share of the measured peak")

# %% [markdown]
# **The ceiling of a small network.** A network built of narrow convolutions cannot do better than
# those convolutions do alone: below, one 3x3 convolution of each width (forward and backward,
# channels-last, the demo network's batch and image). The demo U-Net's widest layers have 64
# channels and most of its time goes to 8- and 16-channel layers at full resolution, so its step's
# share of the peak is bounded by these rows, not by Python overhead.

# %% tags=["hide-input"]
report.show_table(report.conv_ceiling_table(res), "bench_roofline.json: one 3x3 convolution per width")

# %% [markdown]
# ## Training throughput of this plan's runs
#
# Steps per second of each model's optimisation steps (forward, backward, Adam; validation
# excluded), the median over this plan's runs, read from each run's `history.csv`. One training
# process per core (`threads` torch threads each); the step count is the runs' total.

# %% tags=["hide-input"]
report.show_table(report.throughput_summary(res), "throughput.csv, median over runs")

# %% [markdown]
# ## The cost of a reference run
#
# The committed reference runs (see *Reference results*) record their training steps and seconds
# per epoch: steps/s and minutes per run on the machine that made them (one thread per run
# unless the threads column says otherwise; two runs at once on a 2-core CPU).

# %% tags=["hide-input"]
from mrseg.pipeline.reference import available_reference_profiles, load_reference
from mrseg.report import reference_tables

for name in available_reference_profiles(plan) or []:
    report.show_table(reference_tables.reference_cost(load_reference(plan, name, paired=False)), f"reference/{plan}/{name}")
if not available_reference_profiles(plan):
    report.show_markdown("No reference export is committed for this plan.")

# %% [markdown]
# ## Thesis training time (Appendix V)

# %% tags=["hide-input"]
report.show_table(report.thesis_training_time(thesis), "hours for four folds, as reported")

# %% [markdown]
# ## Slowest items of this plan

# %% tags=["hide-input"]
report.show_table(report.slowest_runs(res), "runs.csv, seconds per item")


# %% [markdown]
# ## What this shows
#
# Generated from the scorecard (`scorecard.json`): each claim that rests on this page, its verdict,
# our effect with its 95% CI, n and p, and the table row that decides it.

# %% tags=["hide-input"]
report.show_markdown(report.findings_markdown(res, "performance"))
