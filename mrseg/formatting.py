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


def ci_text(effect: Any, low: Any, high: Any, digits: int = 4) -> str:
    """``"+0.0123 [-0.0050, +0.0300]"``: a signed effect and its interval; "—" when the effect is missing."""
    if not _is_number(effect) or not np.isfinite(float(effect)):
        return "—"
    text = f"{float(effect):+.{digits}f}"
    if _is_number(low) and _is_number(high) and np.isfinite(float(low)) and np.isfinite(float(high)):
        text += f" [{float(low):+.{digits}f}, {float(high):+.{digits}f}]"
    return text


def table_number(value: float) -> str:
    """A float as a table shows it: 4 decimals, or 3 significant digits in scientific notation when
    that would show fewer than 2 of them (KL of 3.5e-05 nats, p of 1e-6); integers without decimals."""
    if not np.isfinite(value):
        return "—"
    if float(value).is_integer() and abs(value) < 1e6:
        return f"{int(value)}"
    if value != 0 and abs(value) < 0.01:
        return f"{value:.2e}"
    return f"{value:.4f}"


def values_missing(frame: pd.DataFrame) -> bool:
    """True when a table has rows but every cell after its first (label) column is empty, NaN or
    "—": it would show only dashes."""
    if frame.empty or len(frame.columns) < 2:
        return False
    values = frame.iloc[:, 1:]
    empty = values.isna() | values.apply(lambda col: col.astype(str).str.strip().isin(["—", ""]))
    return bool(empty.all().all())


def to_html(frame: pd.DataFrame, caption: str | None = None) -> str:
    """A plain HTML table (no index) for display in a page notebook; floats by :func:`table_number`."""
    table = frame.to_html(index=False, na_rep="—", escape=True, border=0, classes="table mrseg-table",
                          float_format=table_number)
    if caption:
        table = table.replace(">\n  <thead>", f">\n  <caption>{html.escape(caption)}</caption>\n  <thead>", 1)
    return table
