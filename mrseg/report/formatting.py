"""Formatting of numbers and tables for the book's pages: "mean ± sd", em dashes, plain HTML."""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def fmt(value: Any, digits: int = 4) -> str:
    """A number with ``digits`` decimals; NaN/None as an em dash."""
    if value is None or (_is_number(value) and not np.isfinite(float(value))):
        return "—"
    if _is_number(value):
        return f"{float(value):.{digits}f}"
    return str(value)


def mean_sd(mean: Any, sd: Any = None, digits: int = 4) -> str:
    """``"0.1234 ± 0.0056"``; the ± part is left out when sd is missing or NaN."""
    text = fmt(mean, digits)
    if text == "—":
        return text
    if sd is None or not _is_number(sd) or not np.isfinite(float(sd)):
        return text
    return f"{text} ± {float(sd):.{digits}f}"


def to_html(frame: pd.DataFrame, caption: str | None = None) -> str:
    """A plain HTML table (no index) for display in a page notebook."""
    table = frame.to_html(index=False, na_rep="—", escape=True, border=0, classes="table mrseg-table")
    if caption:
        table = table.replace(">\n  <thead>", f">\n  <caption>{html.escape(caption)}</caption>\n  <thead>", 1)
    return table
