# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
#   mrseg:
#     title: "Replication scorecard"
# ---

# %% [markdown]
# Every numbered claim of the thesis's abstract (A) and chapter 4 (C4), plus two beyond them, with the
# thesis's value, our effect with its 95% CI, n and p, and a verdict. The verdicts and statistics
# are computed once when the runs are aggregated and read here from `scorecard.json`
# (`book/data/claims.yaml` holds the claims and their rules). **reproduced**: the claimed direction
# holds and the 95% CI of the mean paired difference excludes 0, with the Holm-adjusted p over the
# claims of one page below 0.05. For separately trained models that CI is **run-level**: it carries
# the run-to-run spread (run pairs of fold × seed) as well as the test patients, because two
# trainings of one config differ as much as the effects judged ([Statistical methods](statistics));
# the patient-only interval is shown beside it as "test-set only". **contradicted**: the
# same the other way; **inconclusive**: the CI contains 0, marked **underpowered** when the runs
# present could not detect an effect of the thesis's size; ties are tested for equivalence (TOST)
# within a stated margin; **not testable at this scale**: a compared row is not at a plateau
# (under 80% of its runs converged; a run converged when its validation GED improves by at most 2%
# over the last fifth of training);
# **not testable**: this project cannot test it (data absent, quantity undefined, rater slots
# unordered); **no results**: the plan has not produced the tables the rule needs. Verdicts compare
# directions, not magnitudes: demo-scale runs on (semi-)synthetic images cannot match the thesis's
# absolute numbers.

# %% tags=["parameters", "hide-input"]
results_dir: str = ""  # folder of the aggregated tables (or its root); empty means mrseg.paths.results_dir()
plan: str = "thesis"  # plan name, e.g. thesis
profile: str = "smoke"  # profile: smoke, demo or paper

# %% tags=["hide-input"]
from mrseg import report
from mrseg.pipeline.plan import generated_dir

res, thesis = report.open_page(results_dir, plan, profile)
card = report.read_scorecard(res)
report.write_headline(res, generated_dir() / "headline.md")   # the intro's opening and findings.md beside it
if card.empty:
    report.show_markdown("No `scorecard.json` in the results folder yet: run the plan (or "
                         "`python -m mrseg scorecard`) first.")

# %% [markdown]
# ## Scale of the runs behind the verdicts

# %% tags=["hide-input"]
report.show_table(report.scale_frame(res))

# %% [markdown]
# ## Verdicts at a glance

# %% tags=["hide-input"]
report.show_markdown(report.reference_note(res))
report.show_table(report.verdict_counts(card))

# %% [markdown]
# ## Every claim

# %% tags=["hide-input"]
from IPython.display import HTML

HTML(report.scorecard_html(card))


# %% [markdown]
# ## Runs behind every table row, by study and row
#
# The "decided by" column above names the table row; here every row of every study links to the
# executed notebooks of the runs that made it.

# %% tags=["hide-input"]
HTML(report.runs_index_html(res) or "<p>No runs recorded yet.</p>")

