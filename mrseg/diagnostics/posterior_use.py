"""Does the posterior carry information? The pilot's settings, and the central comparisons repeated
where it does (beyond the thesis).

Under D-Persona's objective every posterior this project trained collapses onto the prior (KL ~1e-5
nats, 0 active units), so "per-rater vs shared posterior" can differ only through the loss
decomposition, never through what a posterior encodes. Two studies of ``mrseg/plans/thesis.yaml``:

- ``posterior_pilot``: shared and per-rater at np = 4 on one fold and seed under objective settings
  that keep latents in use elsewhere (rows ``<model>_<setting>``, e.g. ``shared_geco0.05``). A setting
  *qualifies* (:func:`qualifying_settings`) when both models carry information on the validation of
  the test fold (:data:`INFORMATIVE_UNITS` active units and :data:`INFORMATIVE_KL` nats, the run's
  ``eval_summary.json``) and neither loses fit (Dice_match within :data:`FIT_MARGIN` of the same
  model, fold and seed under D-Persona's objective: the main study's run).
- ``posterior``: the qualifying settings' shared S1, per-rater S1, D-Persona S1+S2 and shared-target
  at np = 4 and 1 on every fold (rows ``<setting>__<row>``). :func:`regime_comparisons` repeats the
  central comparisons in each regime, D-Persona's objective (the main and sparsity studies' runs)
  included, with the run-level 95% CI (:func:`mrseg.diagnostics.run_level.compare_rows`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from mrseg.config import Metric, Row
from mrseg.diagnostics.run_level import PAIR_COLUMNS, compare_rows

PILOT_STUDY = "posterior_pilot"
STUDY = "posterior"
BASELINE = "dpersona-objective"   # the regime of every other study: D-Persona's objective
INFORMATIVE_UNITS = 2
INFORMATIVE_KL = 0.5
FIT_MARGIN = 0.02
PILOT_MODELS: dict[str, str] = {"shared": Row.SHARED_S1, "per_rater": Row.PER_RATER_S1}
# (label, a, b, np levels): the comparisons repeated in every regime; a - b
COMPARISONS: tuple[tuple[str, str, str], ...] = (
    ("per-rater - shared S1", Row.PER_RATER_S1, Row.SHARED_S1),
    ("D-Persona S1+S2 - per-rater", Row.DPERSONA_S1S2, Row.PER_RATER_S1),
    ("shared-target - shared S1", Row.SHARED_TARGET_S1, Row.SHARED_S1),
    ("per-rater - shared-target", Row.PER_RATER_S1, Row.SHARED_TARGET_S1),
)
USE_COLUMNS: tuple[str, ...] = ("kl_nats", "active_units", "ds_over_dyy", Metric.DICE_MATCH, Metric.GED_DPERSONA, "converged")


def pilot_setting(row: str) -> tuple[str, str] | None:
    """``"shared_geco0.05"`` -> ``("geco0.05", "shared_s1")``; ``None`` for a row of another form."""
    for prefix, model_row in PILOT_MODELS.items():
        if row.startswith(prefix + "_"):
            return row[len(prefix) + 1:], model_row
    return None


def study_setting(row: str) -> tuple[str, str] | None:
    """``"geco0.05__shared_s1"`` -> ``("geco0.05", "shared_s1")``; ``None`` without the separator."""
    setting, sep, model_row = row.partition("__")
    return (setting, model_row) if sep else None


def pilot_table(per_fold: pd.DataFrame) -> pd.DataFrame:
    """One row per (setting, model) of the pilot, plus D-Persona's objective (the main study's runs on
    the pilot's folds and seeds): ``setting``, ``model``, ``n_runs``, the means of :data:`USE_COLUMNS`,
    ``informative``, ``fit_change`` (Dice_match minus D-Persona's objective's, same model, fold and
    seed) and ``fit_kept``. Empty without pilot runs."""
    columns = ["setting", "model", "n_runs", *USE_COLUMNS, "informative", "fit_change", "fit_kept"]
    if per_fold is None or per_fold.empty or "study" not in per_fold:
        return pd.DataFrame(columns=columns)
    pilot = per_fold[per_fold["study"] == PILOT_STUDY].copy()
    if pilot.empty:
        return pd.DataFrame(columns=columns)
    parsed = pilot["row"].map(pilot_setting)
    pilot = pilot[parsed.notna()].assign(setting=parsed.dropna().map(lambda p: p[0]),
                                         model=parsed.dropna().map(lambda p: p[1]))
    runs = set(zip(pilot["fold"], pilot["seed"]))
    base = per_fold[(per_fold["study"] == "main") & per_fold["row"].isin(list(PILOT_MODELS.values()))
                    & (per_fold["n_present"] == 4)]
    base = base[[(f, s) in runs for f, s in zip(base["fold"], base["seed"])]].assign(setting=BASELINE, model=base["row"])
    both = pd.concat([base, pilot], ignore_index=True)
    reference = base.set_index(["model", "fold", "seed"])[Metric.DICE_MATCH]
    rows = []
    for (setting, model), group in both.groupby(["setting", "model"], sort=False):
        keys = list(zip([model] * len(group), group["fold"], group["seed"]))
        baseline = [reference.get(k, math.nan) for k in keys]
        change = float((group[Metric.DICE_MATCH].to_numpy(dtype=float) - pd.Series(baseline, dtype=float).to_numpy()).mean())
        means = {c: float(pd.to_numeric(group[c], errors="coerce").mean()) if c in group else math.nan
                 for c in USE_COLUMNS}
        informative = bool(means["active_units"] >= INFORMATIVE_UNITS and means["kl_nats"] >= INFORMATIVE_KL)
        rows.append({"setting": setting, "model": model, "n_runs": int(len(group)), **means,
                     "informative": informative, "fit_change": change,
                     "fit_kept": bool(math.isfinite(change) and change >= -FIT_MARGIN)})
    return pd.DataFrame(rows, columns=columns)


def qualifying_settings(pilot: pd.DataFrame) -> list[str]:
    """Settings of :func:`pilot_table` where every pilot model is informative and keeps its fit."""
    if pilot is None or pilot.empty:
        return []
    out = []
    for setting, group in pilot[pilot["setting"] != BASELINE].groupby("setting", sort=False):
        if set(group["model"]) >= set(PILOT_MODELS.values()) and group["informative"].all() and group["fit_kept"].all():
            out.append(str(setting))
    return out


def regime_cases(cases: pd.DataFrame) -> pd.DataFrame:
    """The per-case rows of every regime with ``regime`` and the plain row name in ``row``: the
    ``posterior`` study's rows by setting, and D-Persona's objective from the main study (np = 4)
    and the sparsity study (np = 1)."""
    if cases is None or cases.empty or "study" not in cases:
        return pd.DataFrame()
    names = {name for _, a, b in COMPARISONS for name in (a, b)}
    main = cases[(cases["study"] == "main") & cases["row"].isin(names) & (cases["n_present"] == 4)]
    sparse = cases[(cases["study"] == "sparsity") & cases["row"].isin(names) & (cases["n_present"] < 4)]
    base = pd.concat([main, sparse], ignore_index=True).assign(regime=BASELINE)
    study = cases[cases["study"] == STUDY]
    parsed = study["row"].map(study_setting)
    study = study[parsed.notna()]
    parsed = parsed.dropna()
    study = study.assign(regime=parsed.map(lambda p: p[0]).to_numpy(), row=parsed.map(lambda p: p[1]).to_numpy())
    return pd.concat([base, study], ignore_index=True)


def regime_comparisons(cases: pd.DataFrame, metric: str = Metric.GED_DPERSONA, lower_is_better: bool = True,
                       seed: int = 0) -> pd.DataFrame:
    """One row per (regime, comparison of :data:`COMPARISONS`, np) whose two rows ran: ``regime``,
    ``comparison``, ``a``, ``b``, ``np`` and the :data:`~mrseg.diagnostics.run_level.PAIR_COLUMNS`."""
    columns = ["regime", "comparison", "a", "b", "np", *PAIR_COLUMNS]
    frame = regime_cases(cases)
    if frame.empty or metric not in frame:
        return pd.DataFrame(columns=columns)
    rows = []
    for regime, in_regime in frame.groupby("regime", sort=False):
        for n_p, group in in_regime.groupby("n_present", sort=True):
            for label, a, b in COMPARISONS:
                found = compare_rows(group, a, b, metric, lower_is_better, seed=seed)
                if found is not None:
                    rows.append({"regime": regime, "comparison": label, "a": a, "b": b, "np": int(n_p), **found})
    out = pd.DataFrame(rows, columns=columns)
    return out.sort_values(["comparison", "np", "regime"], key=lambda s: s.map(_regime_order) if s.name == "regime" else s,
                           kind="stable").reset_index(drop=True) if len(out) else out


def _regime_order(regime: str) -> tuple[int, str]:
    return (0 if regime == BASELINE else 1, str(regime))


def use_table(per_fold: pd.DataFrame) -> pd.DataFrame:
    """Posterior use per (regime, row, np): ``n_runs``, the means of :data:`USE_COLUMNS` over runs and
    the smallest KL and active units of any run (``kl_nats_min``, ``active_units_min``)."""
    columns = ["regime", "row", "np", "n_runs", *USE_COLUMNS, "kl_nats_min", "active_units_min"]
    if per_fold is None or per_fold.empty or "study" not in per_fold:
        return pd.DataFrame(columns=columns)
    frame = regime_cases(per_fold.assign(case_id=0, patient_id=0))
    if frame.empty:
        return pd.DataFrame(columns=columns)
    frame = frame.drop_duplicates(["regime", "row", "n_present", "fold", "seed"])
    rows = []
    for (regime, row, n_p), group in frame.groupby(["regime", "row", "n_present"], sort=False):
        rows.append({"regime": regime, "row": row, "np": int(n_p), "n_runs": int(len(group)),
                     **{c: float(pd.to_numeric(group[c], errors="coerce").mean()) if c in group else math.nan
                        for c in USE_COLUMNS},
                     **{f"{c}_min": float(pd.to_numeric(group[c], errors="coerce").min()) if c in group else math.nan
                        for c in ("kl_nats", "active_units")}})
    return pd.DataFrame(rows, columns=columns).sort_values(["regime", "np", "row"], key=lambda s: s.map(_regime_order)
                                                           if s.name == "regime" else s, kind="stable"
                                                           ).reset_index(drop=True)



COLLAPSED_KL = 0.01   # nats: below this a posterior is read as collapsed onto the prior
# the rows that change the network: every rung of the capacity ladder, and the ablation's MiT-B2 backbone
NETWORK_ROWS: tuple[tuple[str, str], ...] = (("scale", "*"), ("ablation", "2_mit_b2_backbone"))


def network_use_table(per_fold: pd.DataFrame) -> pd.DataFrame:
    """Posterior use per network (D-Persona's objective): for the capacity ladder's rows and the
    ablation's MiT-B2 backbone row, per (study, row, np) the runs, the mean KL (nats) and active units
    on the test fold and the largest of any run (``kl_nats_max``, ``active_units_max``): does a larger
    network keep its posterior in use?"""
    columns = ["study", "row", "np", "n_runs", "kl_nats", "active_units", "kl_nats_max", "active_units_max"]
    if per_fold is None or per_fold.empty or not {"study", "row", "kl_nats"} <= set(per_fold):
        return pd.DataFrame(columns=columns)
    study, row = per_fold["study"].astype(str), per_fold["row"].astype(str)
    keep = pd.Series(False, index=per_fold.index)
    for s, r in NETWORK_ROWS:
        keep |= (study == s) & ((row == r) if r != "*" else True)
    frame = per_fold[keep].drop_duplicates(["study", "row", "n_present", "fold", "seed"])
    rows = []
    for (s, r, n_p), group in frame.groupby(["study", "row", "n_present"], sort=False):
        kl = pd.to_numeric(group["kl_nats"], errors="coerce")
        units = pd.to_numeric(group.get("active_units", pd.Series(math.nan, index=group.index)), errors="coerce")
        rows.append({"study": s, "row": r, "np": int(n_p), "n_runs": int(len(group)), "kl_nats": float(kl.mean()),
                     "active_units": float(units.mean()), "kl_nats_max": float(kl.max()),
                     "active_units_max": float(units.max())})
    return pd.DataFrame(rows, columns=columns)


def curve_summary(curves: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per model of :func:`mrseg.diagnostics.kl_curve.read_kl_curves`: ``steps``, KL at the first step,
    at step 10, the mean of the last 10 steps, the first step below :data:`COLLAPSED_KL` nats
    (``None`` if never) and the seconds per step (median)."""
    rows = []
    for model, table in curves.items():
        kl = table["kl"].to_numpy(dtype=float)
        below = table.loc[table["kl"] < COLLAPSED_KL, "step"]
        rows.append({"model": model, "steps": int(len(table)), "kl_first": float(kl[0]),
                     "kl_step10": float(kl[9]) if len(kl) >= 10 else math.nan,
                     "kl_last10": float(kl[-10:].mean()), "first_step_below": int(below.iloc[0]) if len(below) else None,
                     "seconds_per_step": float(table["seconds"].median()) if "seconds" in table else math.nan})
    return pd.DataFrame(rows)



def epoch_history(folder: Path, index: dict[str, Any]) -> pd.DataFrame:
    """The pilot's runs' ``history.csv`` (in the export ``folder``) as one long table: ``setting``,
    ``model``, ``epoch``, ``kl`` (training), ``val_kl``, ``val_active_units``, ``val_ged`` and
    ``kl_scale``; only Stage 1 rows, only runs that logged the validation KL (trained by code that
    records it). Empty when none."""
    columns = ["setting", "model", "epoch", "kl", "val_kl", "val_active_units", "val_ged", "kl_scale"]
    frames = []
    for run in index.get("runs") or []:
        for membership in run.get("memberships") or []:
            parsed = pilot_setting(str(membership.get("row", ""))) if membership.get("study") == PILOT_STUDY else None
            path = Path(folder) / run["run_id"] / "history.csv"
            if parsed is None or not path.exists():
                continue
            history = pd.read_csv(path)
            if "val_kl" not in history:
                continue
            if "stage" in history:
                history = history[history["stage"] == 1]
            frames.append(history.reindex(columns=columns[2:]).assign(setting=parsed[0], model=parsed[1]))
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


__all__ = ["BASELINE", "COLLAPSED_KL", "COMPARISONS", "FIT_MARGIN", "INFORMATIVE_KL", "INFORMATIVE_UNITS",
           "PILOT_STUDY", "STUDY", "curve_summary", "epoch_history", "pilot_setting", "pilot_table", "qualifying_settings",
           "NETWORK_ROWS", "network_use_table", "regime_comparisons", "study_setting", "use_table"]
