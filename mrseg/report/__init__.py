"""What the book's results pages call: thesis numbers, our aggregated tables, side-by-side views.

Every results page of the book is a page notebook (``notebooks/pages/<name>.py``) that receives
``results_dir``, ``plan`` and ``profile`` and calls into this module:

- :func:`load_thesis_reported` reads the thesis's numbers (``book/data/thesis_reported.yaml``);
  they are data, shown as "thesis", never typed into a page.
- :func:`load_results` reads the aggregated tables the runner writes into
  ``<results_dir>/<plan>/<profile>/`` (``cases.csv``, ``per_fold.csv``, ``summary.csv``,
  ``alignment.csv``, ``runs.csv``, ``context.json``); missing tables are ``None``, never an error,
  so a page can say "no results yet" instead of crashing.
- :func:`context_banner` states dataset (and whether its images are synthetic), profile, epochs,
  samples M and the GED conventions; :func:`status_note` lists failed runs.
- :func:`side_by_side` builds thesis-vs-ours tables; :func:`mean_sd` formats "mean ± sd".
- :func:`scorecard` evaluates every claim of ``book/data/claims.yaml`` against our tables
  (the rule kinds are documented in that file and in :data:`RULES`); aggregation runs it once and
  writes ``scorecard.json``, which the scorecard page reads with :func:`read_scorecard`.

GED conventions: ``ged`` uses d(empty, empty) = 0 (the field's convention); ``ged_dpersona`` uses
d(empty, empty) = 1 (D-Persona's code, hence the thesis). Thesis GED is compared with
``ged_dpersona``; both are always shown.

The functions live in one module per job and are all importable from here:

- :mod:`mrseg.thesis`: the thesis's numbers; :mod:`mrseg.formatting`: numbers and tables as text.
- :mod:`mrseg.scoring.results`: our aggregated tables; :mod:`mrseg.report.banner`: a page's banner and status.
- :mod:`mrseg.report.thesis_beside_ours`: the thesis beside our numbers (side by side, per fold);
  :mod:`mrseg.report.claims`: the scorecard.
- :mod:`mrseg.report.pages`: a page notebook's header and display; :mod:`mrseg.report.page_tables`: tables of
  single pages.
"""

from __future__ import annotations

from mrseg.formatting import fmt, mean_sd, to_html
from mrseg.report.banner import context_banner, describe_context, failed_runs_html, scale_frame, status_note
from mrseg.report.claims import (
    findings_markdown,
    reference_findings_markdown,
    reference_note,
    scorecard_html,
    verdict_counts,
    write_headline,
)
from mrseg.report.page_conclusions import controlled_conclusion, mechanism_conclusion
from mrseg.report.page_tables import (
    alignment_per_fold,
    alignment_table,
    api_listing,
    conv_ceiling_table,
    convention_shift_note,
    gap_alignment_series,
    hyperparameter_table,
    latent_companions_table,
    latent_files,
    package_modules,
    per_expert_table,
    performance_table,
    relative_changes,
    roofline_table,
    run_dirs,
    runs_index_html,
    sample_files,
    slowest_runs,
    sparsity_series,
    sparsity_table,
    thesis_training_time,
    throughput_summary,
)
from mrseg.report.pages import open_page, show_markdown, show_table
from mrseg.report.thesis_beside_ours import METRIC_LABELS, THESIS_TO_OURS, per_fold_table, relative_improvement, side_by_side
from mrseg.scoring.claims import (
    CLAIMS_YAML,
    RULES,
    VERDICTS,
    Evidence,
    attach_reference,
    evaluate_claims,
    load_claims,
    read_scorecard,
    scorecard,
    write_scorecard,
)
from mrseg.scoring.results import TABLES, Results, load_results, results_folder
from mrseg.thesis import BOOK_DATA, THESIS_YAML, load_thesis_reported, thesis_mean_sd, thesis_value

__all__ = [
    # thesis numbers
    "BOOK_DATA", "THESIS_YAML", "load_thesis_reported", "thesis_value", "thesis_mean_sd",
    # formatting
    "fmt", "mean_sd", "to_html",
    # our results
    "TABLES", "Results", "results_folder", "load_results",
    # page banner and status
    "describe_context", "context_banner", "status_note", "failed_runs_html", "scale_frame",
    # side-by-side tables
    "METRIC_LABELS", "THESIS_TO_OURS", "side_by_side", "per_fold_table", "relative_improvement",
    # scorecard
    "CLAIMS_YAML", "VERDICTS", "RULES", "Evidence", "load_claims", "scorecard",
    "evaluate_claims", "read_scorecard", "write_scorecard", "findings_markdown",
    "scorecard_html", "verdict_counts", "attach_reference", "reference_note", "write_headline", "reference_findings_markdown",
    # page notebooks
    "open_page", "show_table", "show_markdown", "mechanism_conclusion", "controlled_conclusion",
    # page-specific tables
    "relative_changes", "per_expert_table", "sparsity_table", "alignment_table", "alignment_per_fold", "run_dirs",
    "performance_table", "roofline_table", "conv_ceiling_table",
    "slowest_runs", "throughput_summary", "api_listing", "sparsity_series", "gap_alignment_series",
    "sample_files", "latent_files", "latent_companions_table", "hyperparameter_table",
    "thesis_training_time", "convention_shift_note", "package_modules", "runs_index_html",
]
