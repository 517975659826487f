"""What a page notebook calls first and last: load and show its header, display tables and text."""

from __future__ import annotations

from typing import Any

import pandas as pd

from mrseg.formatting import to_html, values_missing
from mrseg.report.banner import context_banner, failed_runs_html, status_note
from mrseg.scoring.results import Results, load_results
from mrseg.thesis import load_thesis_reported


def open_page(results_dir: str, plan: str, profile: str, study: str | None = None,
              banner: bool = True) -> tuple[Results, dict[str, Any]]:
    """Load ``(results, thesis numbers)`` for a page notebook and display its header.

    The header is the context banner, then (when tables are missing or runs failed) the
    "no results yet" message and the failed-run listing. ``results_dir`` "" means
    :func:`mrseg.paths.results_dir`.
    """
    from IPython.display import HTML, Markdown, display

    from mrseg.paths import results_dir as default_results_dir

    res = load_results(results_dir or default_results_dir(), plan, profile)
    thesis = load_thesis_reported()
    if banner:
        display(Markdown(context_banner(res, study)))
    note = status_note(res, study)
    if note:
        display(Markdown(note))
        listing = failed_runs_html(res)
        if listing:
            display(HTML(listing))
    return res, thesis


def show_table(frame: pd.DataFrame, caption: str | None = None) -> None:
    """Display a DataFrame as a plain HTML table (or a one-line note when it is empty)."""
    from IPython.display import HTML, Markdown, display

    if frame is None or frame.empty:
        display(Markdown(f"*{caption + ': ' if caption else ''}no rows to show yet.*"))
    elif values_missing(frame):
        display(Markdown(f"*{caption + ': ' if caption else ''}no values yet (the runs behind its "
                         f"{len(frame)} row{'s' if len(frame) != 1 else ''} have not been made).*"))
    else:
        display(HTML(to_html(frame, caption)))


def show_markdown(text: str) -> None:
    from IPython.display import Markdown, display

    display(Markdown(text))
