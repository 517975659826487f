"""The plan file's schema: every key a plan may hold, checked before anything is expanded.

A typo'd key (``foldz``, ``rowz``, a misspelt study under a profile) would otherwise be ignored and
the plan would run something else than its author meant. :func:`check_plan` raises ``ValueError``
with one line naming the file, the key path and the problem.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from mrseg.config import MODELS, PROFILE_PRESETS, RunConfig

TOP_KEYS = frozenset({"name", "title", "templates", "defaults", "profiles", "studies", "root", "_path"})
TEMPLATE_KEYS = frozenset({"train", "alignment", "latent", "pages"})
SETTING_KEYS = frozenset({"folds", "seeds", "latent_fold", "sparse_n_present", "alignment_models", "alignment_studies",
                          "latent_models", "latent_studies", "diagnostic_seeds", "alignment_seeds", "alignment_folds", "epochs",
                          "config",
                          "studies"})
STUDY_KEYS = frozenset({"title", "epochs", "n_present", "rows", "reference", "folds", "seeds", "dataset",
                        "dataset_options", "requires_data", "enabled"})
PROFILE_STUDY_KEYS = frozenset({"enabled", "rows", "folds", "seeds", "row_seeds", "row_folds", "level_seeds", "n_present",
                                "reference"})
REFERENCE_KEYS = frozenset({"n_present", "epochs", "models"})
REQUIRES_KEYS = frozenset({"env", "default", "option"})
CONFIG_FIELDS = frozenset(f.name for f in dataclasses.fields(RunConfig))
ROW_KEYS = CONFIG_FIELDS | {"n_present"}


def _fail(where: str, path: str, problem: str) -> None:
    raise ValueError(f"{where}: {path}: {problem}")


def _keys(where: str, path: str, value: Any, allowed: frozenset[str]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        _fail(where, path, f"expected a mapping, got {type(value).__name__}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        _fail(where, path, f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                           f"allowed: {', '.join(sorted(k for k in allowed if not k.startswith('_')))}")
    return value


def _int_list(where: str, path: str, value: Any, minimum: int = 0) -> None:
    if value is None:
        return
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, int) or isinstance(item, bool) or item < minimum:
            _fail(where, path, f"expected integers >= {minimum}, got {value!r}")


def _epochs(where: str, path: str, value: Any) -> None:
    if isinstance(value, bool):
        _fail(where, path, f"epochs must be a positive integer or '<k>x', got {value!r}")
    if isinstance(value, int):
        if value < 1:
            _fail(where, path, f"epochs must be >= 1, got {value}")
        return
    if isinstance(value, str) and value.endswith("x"):
        try:
            factor = float(value[:-1])
        except ValueError:
            factor = -1.0
        if factor > 0:
            return
    _fail(where, path, f"epochs must be a positive integer or '<k>x' with k > 0, got {value!r}")


def _settings(where: str, path: str, value: Any, studies: dict[str, Any]) -> None:
    settings = _keys(where, path, value, SETTING_KEYS)
    for key in ("folds", "seeds", "sparse_n_present", "diagnostic_seeds", "alignment_seeds", "alignment_folds"):
        _int_list(where, f"{path}.{key}", settings.get(key), minimum=1 if key == "sparse_n_present" else 0)
    for key in ("alignment_models", "latent_models"):
        for model in settings.get(key) or []:
            if model not in MODELS:
                _fail(where, f"{path}.{key}", f"unknown model {model!r}; choose from {', '.join(MODELS)}")
    for key in ("alignment_studies", "latent_studies"):
        for study in settings.get(key) or []:
            if study not in studies:
                _fail(where, f"{path}.{key}", f"unknown study {study!r}")
    epochs = settings.get("epochs")
    if epochs is not None:
        if not isinstance(epochs, dict):
            _fail(where, f"{path}.epochs", f"expected a mapping (full, sparse, ...), got {epochs!r}")
        for name, count in epochs.items():
            _epochs(where, f"{path}.epochs.{name}", count)
    _keys(where, f"{path}.config", settings.get("config"), CONFIG_FIELDS)
    for name, local in (settings.get("studies") or {}).items():
        if name not in studies:
            _fail(where, f"{path}.studies.{name}", f"no study {name!r} in this plan; studies: {', '.join(studies)}")
        local = _keys(where, f"{path}.studies.{name}", local, PROFILE_STUDY_KEYS)
        rows = set((studies[name] or {}).get("rows") or {})
        for row in local.get("rows") or []:
            if row not in rows:
                _fail(where, f"{path}.studies.{name}.rows", f"no row {row!r} in study {name!r}")
        for key in ("row_seeds", "row_folds"):
            for row, values in (local.get(key) or {}).items():
                if row not in rows:
                    _fail(where, f"{path}.studies.{name}.{key}", f"no row {row!r} in study {name!r}")
                _int_list(where, f"{path}.studies.{name}.{key}.{row}", values)
        level_seeds = local.get("level_seeds")
        if level_seeds is not None and not isinstance(level_seeds, dict):
            _fail(where, f"{path}.studies.{name}.level_seeds", f"expected a mapping n_present -> seeds, got {level_seeds!r}")
        for level, seeds in (level_seeds or {}).items():
            _int_list(where, f"{path}.studies.{name}.level_seeds", level, minimum=1)
            _int_list(where, f"{path}.studies.{name}.level_seeds.{level}", seeds)
        for key in ("folds", "seeds"):
            _int_list(where, f"{path}.studies.{name}.{key}", local.get(key))
        if local.get("reference") is not None:
            _keys(where, f"{path}.studies.{name}.reference", local["reference"], REFERENCE_KEYS)


def check_plan(spec: dict[str, Any]) -> None:
    """``ValueError`` naming the file, key path and problem for the first key of ``spec`` (a plan as
    read from YAML) that the schema does not allow or whose value cannot be right."""
    from mrseg.data.registry import available_datasets

    where = spec.get("_path", "plan")
    _keys(where, "(top level)", spec, TOP_KEYS)
    _keys(where, "templates", spec.get("templates"), TEMPLATE_KEYS)
    studies = spec.get("studies") or {}
    datasets = set(available_datasets())
    for name, study in studies.items():
        path = f"studies.{name}"
        study = _keys(where, path, study, STUDY_KEYS)
        if "epochs" in study and not isinstance(study["epochs"], str):
            _epochs(where, f"{path}.epochs", study["epochs"])
        if study.get("n_present") != "sparse":
            _int_list(where, f"{path}.n_present", study.get("n_present"), minimum=1)
        if "dataset" in study and study["dataset"] not in datasets:
            _fail(where, f"{path}.dataset", f"unknown dataset {study['dataset']!r}; known: {', '.join(sorted(datasets))}")
        _keys(where, f"{path}.reference", study.get("reference"), REFERENCE_KEYS)
        _keys(where, f"{path}.requires_data", study.get("requires_data"), REQUIRES_KEYS)
        rows = study.get("rows")
        if not isinstance(rows, dict) or not rows:
            _fail(where, f"{path}.rows", "a study needs a mapping of rows")
        for row, row_spec in rows.items():
            row_spec = _keys(where, f"{path}.rows.{row}", row_spec, ROW_KEYS)
            if row_spec.get("model") not in MODELS:
                _fail(where, f"{path}.rows.{row}.model", f"unknown model {row_spec.get('model')!r}; "
                                                         f"choose from {', '.join(MODELS)}")
            if "dataset" in row_spec and row_spec["dataset"] not in datasets:
                _fail(where, f"{path}.rows.{row}.dataset", f"unknown dataset {row_spec['dataset']!r}")
            _int_list(where, f"{path}.rows.{row}.n_present", row_spec.get("n_present"), minimum=1)
    _settings(where, "defaults", spec.get("defaults"), studies)
    for profile, overrides in (spec.get("profiles") or {}).items():
        if profile not in PROFILE_PRESETS:
            _fail(where, f"profiles.{profile}", f"unknown profile; choose from {', '.join(PROFILE_PRESETS)}")
        _settings(where, f"profiles.{profile}", overrides, studies)


__all__ = ["check_plan"]
