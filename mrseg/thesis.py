"""The thesis's reported numbers (``book/data/thesis_reported.yaml``) and look-ups into them."""

from __future__ import annotations

import math
from pathlib import Path
from statistics import pstdev
from typing import Any

import yaml

from mrseg.paths import REPO_ROOT

BOOK_DATA = REPO_ROOT / "book" / "data"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
THESIS_YAML = BOOK_DATA / "thesis_reported.yaml"


def load_thesis_reported(path: str | Path | None = None) -> dict[str, Any]:
    """The thesis's reported numbers as a nested dict (``[mean, sd]`` pairs stay lists)."""
    path = Path(path) if path is not None else THESIS_YAML
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{path}: the thesis numbers file is missing") from err
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return data


def thesis_value(thesis: dict[str, Any], ref: str, optional: bool = False) -> Any:
    """Look up a dotted path such as ``table_4_2_main.per_rater_s1.ged``.

    Strict: a path that does not resolve raises ``KeyError`` naming the path and the first part
    that is missing, so a typo in a page or claim fails the build instead of showing "—".
    ``optional=True`` returns None instead (for rows that a thesis table legitimately lacks).
    """
    node: Any = thesis
    walked: list[str] = []
    for part in ref.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif optional:
            return None
        else:
            where = ".".join(walked) or "the top level"
            raise KeyError(f"thesis_reported.yaml has no {ref!r}: no {part!r} under {where}")
        walked.append(part)
    return node


def thesis_mean_sd(value: Any) -> tuple[float, float]:
    """``[mean, sd]`` or a scalar as ``(mean, sd)`` with NaN where not given; a list of more than
    two numbers (per-fold values, as in Appendix I) gives their mean and population SD (ddof=0)."""
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_number(v) for v in value):
        return float(value[0]), float(value[1])
    if isinstance(value, (list, tuple)) and len(value) > 2 and all(_is_number(v) for v in value):
        return float(sum(value) / len(value)), float(pstdev(value))
    if _is_number(value):
        return float(value), math.nan
    return math.nan, math.nan
