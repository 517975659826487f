"""The experiment plan: which runs exist, which table rows they feed, and what runs after them.

A plan is a YAML file (``mrseg/plans/<name>.yaml``, or any path) listing *studies*; each study has
*rows* (a model plus config overrides) trained for every fold (and n_present / seed where the
study lists them). :func:`load_plan` expands it for one profile into a flat list of
:class:`PlanItem` in dependency order:

- ``train`` items: one per distinct :class:`~mrseg.config.RunConfig` (deduplicated by run id); an
  item carries every (study, row, n_present) it belongs to in ``memberships``. Stage 2 models
  depend on their Stage 1 run, added to the plan if no study lists it.
- ``alignment`` / ``latent`` items: diagnostics notebooks over a finished training run (same
  run directory), depending on it.
- ``page`` items: every ``*.py`` of the plan's pages folder, executed after aggregation.

Studies with ``requires_data`` are kept only when the data is present; otherwise they are listed
in :func:`absent_studies` (the book says the data is absent).
"""

from __future__ import annotations

import copy
import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mrseg.config import PROFILE_PRESETS, STAGE2_ONLY_FIELDS, RunConfig
from mrseg.paths import REPO_ROOT, runs_dir
from mrseg.pipeline.plan_schema import check_plan

PLANS_DIR = Path(__file__).resolve().parent.parent / "plans"   # mrseg/plans
KINDS = ("train", "alignment", "latent", "page")
# Files a diagnostics notebook must leave in the run directory to count as complete.
DIAGNOSTIC_OUTPUTS = {"alignment": ("alignment_cases.csv", "alignment_summary.json"),
                      "latent": ("latent.npz", "latent_summary.json")}




def generated_dir() -> Path:
    """Where executed notebooks go: ``book/generated`` (``MRSEG_GENERATED`` overrides)."""
    return Path(os.environ.get("MRSEG_GENERATED", REPO_ROOT / "book" / "generated"))


@dataclass
class PlanItem:
    """One notebook execution.

    ``key`` is unique in the plan (the run id for training items, ``<run_id>#<kind>`` for
    diagnostics, ``page/<name>`` for pages); ``depends_on`` lists keys. ``run_id`` names the run
    directory (``runs_dir() / run_id``) for train and diagnostics items. ``study``/``row``/
    ``n_present`` are the first membership; ``memberships`` holds them all (empty for a Stage 1
    run that only exists as a dependency).
    """

    key: str
    run_id: str
    kind: str
    template: Path
    output: Path
    title: str
    parameters: dict[str, Any] = field(default_factory=dict)
    depends_on: list[str] = field(default_factory=list)
    memberships: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] | None = None

    @property
    def study(self) -> str:
        return self.memberships[0]["study"] if self.memberships else ""

    @property
    def row(self) -> str:
        return self.memberships[0]["row"] if self.memberships else ""

    @property
    def n_present(self) -> int | None:
        return self.config.get("n_present") if self.config else None

    @property
    def run_dir(self) -> Path | None:
        return runs_dir() / self.run_id if self.kind != "page" else None

    def to_dict(self) -> dict[str, Any]:
        """Plain, picklable form (paths as strings) for executors."""
        return {"key": self.key, "run_id": self.run_id, "kind": self.kind, "template": str(self.template),
                "output": str(self.output), "title": self.title, "parameters": dict(self.parameters),
                "depends_on": list(self.depends_on), "memberships": copy.deepcopy(self.memberships),
                "config": copy.deepcopy(self.config)}


def plan_path(plan: str | os.PathLike) -> Path:
    """Resolve a plan name (``thesis``) or a YAML path to the file."""
    candidate = Path(plan)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        if not candidate.is_file():
            raise FileNotFoundError(f"plan file {candidate} does not exist")
        return candidate
    path = PLANS_DIR / f"{plan}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in PLANS_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"unknown plan {plan!r}; known plans: {', '.join(known)} (or give a .yaml path)")
    return path


def read_plan(plan: str | os.PathLike) -> dict[str, Any]:
    """The raw plan dictionary, with its ``name`` and ``root`` filled in."""
    path = plan_path(plan)
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(spec, dict) or not isinstance(spec.get("studies"), dict):
        raise ValueError(f"{path}: a plan needs a 'studies' mapping")
    spec.setdefault("name", path.stem)
    spec["_path"] = str(path)
    check_plan(spec)
    return spec


def profile_settings(spec: dict[str, Any], profile: str) -> dict[str, Any]:
    """Defaults merged with the profile's overrides (one level deep, ``studies`` per study)."""
    if profile not in PROFILE_PRESETS:
        raise ValueError(f"unknown profile {profile!r}; choose from {', '.join(PROFILE_PRESETS)}")
    settings = copy.deepcopy(spec.get("defaults") or {})
    settings.setdefault("folds", [0, 1, 2, 3])
    settings.setdefault("seeds", [RunConfig().seed])
    settings.setdefault("sparse_n_present", [1, 2, 3])
    settings.setdefault("alignment_models", [])
    settings.setdefault("alignment_studies", [])
    settings.setdefault("diagnostic_seeds", None)   # None: every seed
    settings.setdefault("alignment_folds", None)    # None: every fold
    settings.setdefault("latent_models", [])
    settings.setdefault("latent_fold", 0)
    settings.setdefault("latent_studies", ["main"])
    preset_epochs = PROFILE_PRESETS[profile].get("epochs", RunConfig().epochs)
    settings["epochs"] = {"full": preset_epochs, "sparse": preset_epochs}
    settings["config"] = dict(settings.get("config") or {})   # defaults.config: fields of every run
    settings["studies"] = {}
    for key, value in copy.deepcopy((spec.get("profiles") or {}).get(profile) or {}).items():
        if isinstance(value, dict) and isinstance(settings.get(key), dict):
            settings[key].update(value)
        else:
            settings[key] = value
    settings["epochs"] = {name: _epochs(value, settings["epochs"]["full"]) for name, value in settings["epochs"].items()}
    settings.setdefault("alignment_seeds", settings["diagnostic_seeds"])   # the alignment's seeds, if its own
    return settings


def epochs_for(settings: dict[str, Any], key: str) -> int:
    """A study's epoch count: the profile's ``epochs[key]`` (``full``, ``sparse`` or a study's own key,
    e.g. ``controlled``); a key the profile does not set means the full-annotation count."""
    epochs = settings["epochs"]
    return int(epochs[key] if key in epochs else epochs["full"])


def _epochs(value: Any, full: Any) -> int:
    """An epoch count: an integer, or ``"<k>x"`` (k times the full-annotation count)."""
    if isinstance(value, str) and value.endswith("x"):
        return max(1, round(float(value[:-1]) * _epochs(full, full)))
    try:
        return int(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"epochs must be an integer or '<k>x', got {value!r}") from err


def _template_root(spec: dict[str, Any]) -> Path:
    root = spec.get("root")
    return (Path(spec["_path"]).parent / root).resolve() if root else REPO_ROOT


def _template(spec: dict[str, Any], kind: str) -> Path:
    templates = spec.get("templates") or {}
    default = {"train": "notebooks/train.py", "alignment": "notebooks/alignment.py",
               "latent": "notebooks/latent.py", "pages": "notebooks/pages"}[kind]
    path = Path(templates.get(kind, default))
    return path if path.is_absolute() else _template_root(spec) / path


def data_present(requirement: dict[str, Any] | None) -> tuple[bool, str]:
    """Whether a study's ``requires_data`` ({env, default} path) exists; the path or the reason."""
    if not requirement:
        return True, ""
    env = requirement.get("env")
    raw = os.environ.get(env) if env else None
    path = Path(raw or requirement.get("default", ""))
    if not path.is_absolute():
        path = REPO_ROOT / path
    if path.is_dir() and any(path.iterdir()):
        # The path as given (relative paths are relative to the repository root, the kernels' cwd),
        # so run ids do not depend on where the checkout lives.
        return True, str(raw or requirement.get("default", ""))
    hint = f" (set {env} to its folder)" if env else ""
    return False, f"data not found at {requirement.get('default', '')}{hint}"


def absent_studies(plan: str | os.PathLike, profile: str) -> dict[str, str]:
    """Studies left out because their data is absent: ``{study: reason}``."""
    spec = read_plan(plan)
    out = {}
    for name, study in spec["studies"].items():
        present, reason = data_present(study.get("requires_data"))
        if not present:
            out[name] = reason
    return out


def study_epochs(spec: dict[str, Any], profile: str) -> dict[str, int]:
    """Epochs per study for ``profile`` (the book states them)."""
    settings = profile_settings(spec, profile)
    return {name: epochs_for(settings, study.get("epochs", "full")) for name, study in spec["studies"].items()}


def stage1_of(config: RunConfig) -> RunConfig | None:
    """The Stage 1 config a Stage 2 run starts from (``mrseg.train.stage1_config``), else None."""
    if not config.has_stage2:
        return None
    try:
        import mrseg.train as train
    except ModuleNotFoundError as err:
        if err.name != "mrseg.train":
            raise
        train = None
    if train is not None and hasattr(train, "stage1_config"):
        return train.stage1_config(config)
    # Until mrseg.train provides it, Stage 1 is the same config with the Stage 2 suffix dropped.
    return RunConfig.from_dict({**config.to_dict(), "model": config.stage1_model})


def _run_title(config: RunConfig) -> str:
    variant = f" ({config.variant})" if config.variant else ""
    return (f"{config.model}{variant}, np={config.n_present}, fold {config.fold}, seed {config.seed}, "
            f"{config.epochs} epochs, {config.dataset}, {config.profile} profile")


def _notebook_name(run_id: str, kind: str) -> str:
    stem = run_id.replace("/", "__")
    return f"{stem}.ipynb" if kind == "train" else f"{stem}__{kind}.ipynb"


def _expand_training(spec: dict[str, Any], profile: str, settings: dict[str, Any],
                     overrides: dict[str, Any]) -> list[tuple[RunConfig, dict[str, Any]]]:
    """(config, membership) for every row x fold x n_present x seed of every enabled study."""
    out: list[tuple[RunConfig, dict[str, Any]]] = []
    rater_counts: dict[str, int | None] = {}
    for name, study in spec["studies"].items():
        local = settings["studies"].get(name) or {}
        if local.get("enabled", study.get("enabled", True)) is False:
            continue
        present, data_root = data_present(study.get("requires_data"))
        if not present:
            continue
        rows = study.get("rows") or {}
        keep = local.get("rows")
        if keep is not None:
            unknown = sorted(set(keep) - set(rows))
            if unknown:
                raise ValueError(f"profile {profile!r} keeps unknown rows of study {name!r}: {unknown}")
        folds = local.get("folds", study.get("folds", settings["folds"]))
        seeds = local.get("seeds", study.get("seeds", settings["seeds"]))
        n_present = local.get("n_present", study.get("n_present", [4]))
        if n_present == "sparse":
            n_present = settings["sparse_n_present"]
        epochs = epochs_for(settings, study.get("epochs", "full"))
        base: dict[str, Any] = dict(settings.get("config") or {})
        if study.get("dataset_options"):
            base["dataset_options"] = dict(study["dataset_options"])
        if "dataset" in study:
            base["dataset"] = study["dataset"]
            if study.get("requires_data") and study["requires_data"].get("option"):
                base["dataset_options"] = {study["requires_data"]["option"]: data_root}
        reference = local.get("reference", study.get("reference"))   # a profile may drop it (null)
        for row, row_spec in rows.items():
            if keep is not None and row not in keep:
                continue
            row_spec = dict(row_spec or {})
            # a row may list its own n_present levels (e.g. per rater count in the controlled study)
            row_levels = row_spec.pop("n_present", None)
            cells = [(np_, epochs, row_spec) for np_ in (n_present if row_levels is None else row_levels)]
            if reference:
                ref_spec = {**row_spec, "model": (reference.get("models") or {}).get(row, row_spec.get("model"))}
                ref_epochs = epochs_for(settings, reference.get("epochs", "full"))
                cells.append((int(reference.get("n_present", 4)), ref_epochs, ref_spec))
            row_seeds = (local.get("row_seeds") or {}).get(row, seeds)   # a profile may give one row fewer seeds
            row_folds = (local.get("row_folds") or {}).get(row, folds)   # ... or other folds
            cells = _within_raters(cells, {**base, **overrides}, rater_counts)
            for np_, n_epochs, cell_spec in cells:
                # a profile may train some n_present levels on fewer (or other) seeds than the row's
                level_seeds = (local.get("level_seeds") or {}).get(int(np_), row_seeds)
                for fold in row_folds:
                    for seed in level_seeds:
                        fields = {**base, **cell_spec, "fold": int(fold), "seed": int(seed),
                                  "n_present": int(np_), "epochs": n_epochs, **overrides}
                        try:
                            config = RunConfig.from_profile(profile, **fields)
                        except (TypeError, ValueError) as err:
                            raise ValueError(f"{spec['_path']}: study {name!r} row {row!r}: {err}") from err
                        out.append((config, {"study": name, "row": row, "n_present": int(np_)}))
    return out


def _within_raters(cells: list[tuple[Any, int, dict[str, Any]]], base: dict[str, Any],
                   counts: dict[str, int | None]) -> list[tuple[int, int, dict[str, Any]]]:
    """The cells with ``n_present`` fitted to the dataset: a level at or above its rater count N means
    "every rater" and becomes N (the plan's 4 is LIDC's full annotation; a 3-rater dataset's is 3);
    duplicate cells are dropped. Unchanged when N is unknown (the run then names the problem)."""
    out: list[tuple[int, int, dict[str, Any]]] = []
    for np_, n_epochs, cell_spec in cells:
        n_raters = dataset_rater_count({**base, **cell_spec}, counts)
        level = min(int(np_), n_raters) if n_raters else int(np_)
        if (level, n_epochs, cell_spec) not in out:
            out.append((level, n_epochs, cell_spec))
    return out


def dataset_rater_count(fields: dict[str, Any], counts: dict[str, int | None]) -> int | None:
    """The number of rater slots N of a run's dataset (``fields``: config fields), memoised in
    ``counts``: from the dataset cache's ``meta.json`` when it is built, else from the builder's
    ``n_raters`` option (given or default); None when neither says (the cache is not built yet)."""
    import inspect
    import json

    from mrseg.data.registry import _BUILDERS, _ensure_builtin_registered, cache_key
    from mrseg.paths import dataset_dir

    name = str(fields.get("dataset") or RunConfig().dataset)
    options = dict(fields.get("dataset_options") or {})
    key = cache_key(name, options)
    if key not in counts:
        counts[key] = None
        meta = dataset_dir(key) / "meta.json"
        if meta.exists():
            counts[key] = int(json.loads(meta.read_text()).get("n_raters") or 0) or None
        else:
            _ensure_builtin_registered()
            builder = _BUILDERS.get(name, (None, ""))[0]
            param = inspect.signature(builder).parameters.get("n_raters") if builder else None
            value = options.get("n_raters", param.default if param is not None else None)
            counts[key] = int(value) if isinstance(value, int) and value > 0 else None
    return counts[key]


def _page_title(path: Path) -> str:
    """A page's title: ``mrseg: title:`` in the template's jupytext header, else from its name."""
    import jupytext

    title = (jupytext.read(path).metadata.get("mrseg") or {}).get("title")
    return str(title) if title else path.stem.replace("_", " ").capitalize()


def load_plan(plan: str | os.PathLike, profile: str, *, config_overrides: dict[str, Any] | None = None,
              include_pages: bool = True) -> list[PlanItem]:
    """Expand ``plan`` for ``profile`` into items in dependency order (dependencies first).

    ``config_overrides`` are applied to every training config (e.g. ``{"device": "cuda"}``).
    """
    spec = read_plan(plan)
    settings = profile_settings(spec, profile)
    gen = generated_dir()
    train_template = _template(spec, "train")

    items: dict[str, PlanItem] = {}
    configs: dict[str, RunConfig] = {}

    def add_train(config: RunConfig, membership: dict[str, Any] | None) -> PlanItem:
        run_id = config.run_id
        item = items.get(run_id)
        if item is None:
            deps = []
            stage1 = stage1_of(config)
            if stage1 is not None:
                deps.append(add_train(stage1, None).key)
            item = PlanItem(key=run_id, run_id=run_id, kind="train", template=train_template,
                            output=gen / "runs" / _notebook_name(run_id, "train"), title=_run_title(config),
                            depends_on=deps, config=config.to_dict())
            items[run_id] = item
            configs[run_id] = config
        else:
            differing = sorted(k for k, v in config.to_dict().items() if item.config.get(k) != v
                               and not (k in STAGE2_ONLY_FIELDS and not config.has_stage2))
            if differing:
                raise ValueError(f"run id {run_id} names two different configs (fields {differing}); "
                                 "a field that changes a run must be part of its run id")
        if membership is not None and membership not in item.memberships:
            item.memberships.append(membership)
        return item

    for config, membership in _expand_training(spec, profile, settings, dict(config_overrides or {})):
        add_train(config, membership)

    def add_diagnostic(kind: str, train: PlanItem) -> None:
        key = f"{train.run_id}#{kind}"
        if key in items:
            return
        items[key] = PlanItem(key=key, run_id=train.run_id, kind=kind, template=_template(spec, kind),
                              output=gen / "runs" / _notebook_name(train.run_id, kind),
                              title=f"{kind.capitalize()}: {train.title}", depends_on=[train.key],
                              memberships=list(train.memberships), config=train.config)

    trains = [item for item in items.values() if item.kind == "train"]
    for train in trains:
        model, studies = train.config["model"], {m["study"] for m in train.memberships}
        seeds, folds = settings["alignment_seeds"], settings["alignment_folds"]
        if (model in settings["alignment_models"] and studies & set(settings["alignment_studies"])
                and (seeds is None or train.config["seed"] in seeds)
                and (folds is None or train.config["fold"] in folds)):
            add_diagnostic("alignment", train)
    for train in trains:
        seeds = settings["diagnostic_seeds"]
        if (train.config["model"] in settings["latent_models"]
                and {m["study"] for m in train.memberships} & set(settings["latent_studies"])
                and train.config["fold"] == int(settings["latent_fold"])
                and (seeds is None or train.config["seed"] in seeds)):
            add_diagnostic("latent", train)

    if include_pages:
        pages_dir = _template(spec, "pages")
        for page in sorted(pages_dir.glob("*.py")) if pages_dir.is_dir() else []:
            key = f"page/{page.stem}"
            items[key] = PlanItem(key=key, run_id=key, kind="page", template=page,
                                  output=gen / "pages" / f"{page.stem}.ipynb",
                                  title=_page_title(page))

    ordered = _topological(list(items.values()))
    for item in ordered:
        if item.kind in ("train", "alignment", "latent"):
            item.parameters = {"config_json": _config_json(item.config), "run_dir": str(item.run_dir)}
        else:
            item.parameters = {"plan": spec["name"], "profile": profile}
    return ordered


def _config_json(config: dict[str, Any]) -> str:
    import json

    return json.dumps(config, sort_keys=True)


def _topological(items: list[PlanItem]) -> list[PlanItem]:
    """Dependencies before dependants; otherwise the plan's order (Kahn's algorithm, stable)."""
    by_key = {item.key: item for item in items}
    for item in items:
        missing = [d for d in item.depends_on if d not in by_key]
        if missing:
            raise ValueError(f"plan item {item.key} depends on unknown items {missing}")
    done: set[str] = set()
    out: list[PlanItem] = []
    remaining = list(items)
    while remaining:
        progressed = False
        for item in list(remaining):
            if all(d in done for d in item.depends_on):
                out.append(item)
                done.add(item.key)
                remaining.remove(item)
                progressed = True
        if not progressed:
            raise ValueError(f"dependency cycle among {[i.key for i in remaining]}")
    return out


def select(items: list[PlanItem], only: str | None) -> list[PlanItem]:
    """Items whose key matches the glob ``only`` (comma-separated globs), plus their dependencies."""
    if not only:
        return list(items)
    patterns = [p.strip() for p in only.split(",") if p.strip()]
    by_key = {item.key: item for item in items}
    wanted: set[str] = set()

    def want(key: str) -> None:
        if key not in wanted:
            wanted.add(key)
            for dep in by_key[key].depends_on:
                want(dep)

    for item in items:
        if any(fnmatch.fnmatchcase(item.key, p) for p in patterns):
            want(item.key)
    return [item for item in items if item.key in wanted]
