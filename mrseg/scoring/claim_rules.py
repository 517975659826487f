"""The schema of the scorecard's rules (``book/data/claims.yaml``): a :class:`Verdict` enum and one
dataclass per rule kind, checked when the claims are loaded (:func:`parse_rule`), so a mistyped or
missing field fails at load time with the claim's id instead of while scoring.

Each dataclass lists a rule kind's fields, their types and defaults; the scoring functions of
:mod:`mrseg.scoring.claims` take the parsed dataclass (its defaults are the only defaults). A new
rule kind is one dataclass here (added to :data:`RULE_SCHEMAS`) plus its scoring function there.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Union


class Verdict(enum.StrEnum):
    """A claim's verdict. ``inconclusive``: the 95% CI contains zero (or the Holm-adjusted p is
    0.05 or more); ``not testable at this scale``: the runs did not converge."""

    REPRODUCED = "reproduced"
    CONTRADICTED = "contradicted"
    INCONCLUSIVE = "inconclusive"
    NOT_AT_SCALE = "not testable at this scale"
    NOT_TESTABLE = "not testable"
    NO_RESULTS = "no results"


Direction = Literal["<", ">"]


@dataclass(frozen=True)
class Selector:
    """One row of one study's results (``metric`` and ``n_present`` default per rule kind)."""

    study: str
    row: str
    metric: str | None = None
    n_present: int | None = None


@dataclass(frozen=True)
class Compare:
    """``a`` is below (``<``) or above (``>``) ``b``: the paired difference's 95% CI decides."""

    expect: Direction
    a: Selector
    b: Selector


@dataclass(frozen=True)
class ComparePair:
    label: str
    expect: Direction
    a: Selector
    b: Selector


@dataclass(frozen=True)
class AllCompare:
    """Every pair's comparison holds."""

    pairs: list[ComparePair]


@dataclass(frozen=True)
class Equivalent:
    """TOST with an absolute ``margin`` or a relative ``margin_rel`` (of ``b``'s mean)."""

    a: Selector
    b: Selector
    margin: float | None = None
    margin_rel: float = 0.05


@dataclass(frozen=True)
class SdCompare:
    expect: Direction
    a: Selector
    b: Selector


@dataclass(frozen=True)
class OnlyRowImproves:
    study: str
    baseline: str
    winner: str
    rows: list[str]


@dataclass(frozen=True)
class Extreme:
    study: str
    metric: str
    which: Literal["max", "min"]
    target: str
    rows: list[str]
    n_present: int = 4


@dataclass(frozen=True)
class PerExpert:
    a: Selector
    b: Selector
    mode: Literal["all", "argmax"] = "all"
    expert: int | None = None


@dataclass(frozen=True, kw_only=True)
class LevelRule:
    """Fields shared by the rules that compare ``ours`` with ``baseline`` over np levels."""

    study: str
    baseline: str
    ours: str
    metric: str
    lower_is_better: bool = True


@dataclass(frozen=True, kw_only=True)
class GapTrend(LevelRule):
    n_present: list[int] = field(default_factory=lambda: [3, 2, 1])


@dataclass(frozen=True, kw_only=True)
class FoldWins(LevelRule):
    n_present: list[int] = field(default_factory=lambda: [3, 2, 1])


@dataclass(frozen=True, kw_only=True)
class Degradation(LevelRule):
    full: int = 4
    sparse: int = 1


@dataclass(frozen=True, kw_only=True)
class CoMove(LevelRule):
    alignment_row: str
    n_present: list[int] = field(default_factory=lambda: [4, 3, 2, 1])
    column: str = "latent_mean"


@dataclass(frozen=True)
class FoldCompare:
    study: str
    a: str
    b: str
    metric: str
    fold: int
    expect: Direction
    n_present: int = 4


@dataclass(frozen=True)
class Alignment:
    check: Literal["rises", "sd_shrinks", "fold_sd_smallest", "positive_all_folds", "proportions", "undefined_for"]
    row: str
    n_present: list[int] = field(default_factory=lambda: [4, 3, 2, 1])
    column: str = "latent_mean"
    sd_column: str | None = None
    min_ratio: float = 2.0
    min_minority: float = 0.2


@dataclass(frozen=True)
class Attribute:
    """The thesis's reading by default: the raw Pearson r (``statistic: sd``) over every patch."""

    check: Literal["sign", "strongest"]
    attribute: str
    sign: int | None = None
    unit: Literal["patch", "nodule"] = "patch"
    definition: str = "patch"
    statistic: Literal["sd", "partial_size"] = "sd"


@dataclass(frozen=True)
class AttributeFolds:
    attribute: str
    sign: int = 1
    alpha: float = 0.05
    unit: Literal["patch", "nodule"] = "patch"
    definition: str = "patch"


@dataclass(frozen=True)
class TimeRatio:
    study: str
    a: str
    b: str
    n_present: int = 4
    min_ratio: float = 1.0


@dataclass(frozen=True)
class NotTestable:
    reason: str = ""


@dataclass(frozen=True)
class RaterIdentity:
    """The rater-label silhouette of ``model``'s posterior means (the latent diagnostic): its CI
    below ``margin`` = no distinct per-rater clusters; moot when the posterior has fewer than
    ``min_active_units`` active units. ``model``: the run id's model segment, variant tags included
    (``per-rater``, ``per-rater+klw0.001``)."""

    model: str
    n_present: int = 4
    margin: float = 0.25
    min_active_units: float = 1.0


@dataclass(frozen=True)
class GradientIsolation:
    """The gradient-isolation diagnostic (``gradient_isolation.json``, written at aggregation): no fields."""


RULE_SCHEMAS: dict[str, type] = {
    "compare": Compare, "all_compare": AllCompare, "equivalent": Equivalent, "sd_compare": SdCompare,
    "only_row_improves": OnlyRowImproves, "extreme": Extreme, "per_expert": PerExpert, "gap_trend": GapTrend,
    "fold_wins": FoldWins, "fold_compare": FoldCompare, "degradation": Degradation, "alignment": Alignment,
    "co_move": CoMove, "attribute": Attribute, "attribute_folds": AttributeFolds, "time_ratio": TimeRatio,
    "not_testable": NotTestable, "gradient_isolation": GradientIsolation, "rater_identity": RaterIdentity,
}


def _describe(kind: Any) -> str:
    if dataclasses.is_dataclass(kind):
        return f"a mapping ({kind.__name__})"
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is list:
        plural = {str: "strings", int: "integers", float: "numbers", bool: "booleans"}.get(args[0])
        return f"a list of {plural}" if plural else f"a list, each {_describe(args[0])}"
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args if a is not type(None))
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(kind, str(kind))


def _convert(value: Any, kind: Any, where: str) -> Any:
    """``value`` checked against the annotation ``kind`` (nested dataclasses built); ``ValueError``
    naming ``where`` when it does not fit."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(value, option, where)
            except ValueError:
                continue
    elif dataclasses.is_dataclass(kind):
        return _build(kind, value, where)
    elif origin is Literal:
        if value in args:
            return value
    elif origin is list:
        if isinstance(value, list):
            return [_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    elif kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif kind is str:
        if isinstance(value, str):
            return value
    raise ValueError(f"{where} must be {_describe(kind)}, got {value!r}")


def _build(schema: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be a mapping ({schema.__name__}), got {data!r}")
    hints = typing.get_type_hints(schema)
    fields = {f.name: f for f in dataclasses.fields(schema)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{where} has unknown field(s) {', '.join(unknown)} (allowed: {', '.join(fields) or 'none'})")
    values = {}
    for name, f in fields.items():
        if name in data:
            values[name] = _convert(data[name], hints[name], f"{where}.{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ValueError(f"{where} lacks field '{name}'")
    return schema(**values)


def parse_rule(rule: Any) -> Any:
    """The typed form of one ``rule:`` mapping (an instance of its kind's schema); ``ValueError``
    naming the kind and the field that is unknown, missing or of the wrong type."""
    if not isinstance(rule, dict):
        raise ValueError(f"rule must be a mapping, got {rule!r}")
    kind = rule.get("kind")
    if kind not in RULE_SCHEMAS:
        raise ValueError(f"unknown rule kind {kind!r} (known: {', '.join(sorted(RULE_SCHEMAS))})")
    return _build(RULE_SCHEMAS[kind], {k: v for k, v in rule.items() if k != "kind"}, f"rule {kind}")
