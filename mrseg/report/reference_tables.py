"""Tables of the committed reference results (:mod:`mrseg.pipeline.reference`) beside this build's own."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from mrseg.config import Metric, Row
from mrseg.pipeline.reference import ReferenceResults
from mrseg.pipeline.reference_scoring import reference_as_results
from mrseg.scoring.results import Results

# (study, row, n_present): the central claims' rows, in the order the page shows them
CENTRAL_ROWS: tuple[tuple[str, str, int], ...] = (
    ("main", Row.PROBUNET, 4), ("main", Row.SHARED_S1, 4), ("main", Row.DPERSONA_S1S2, 4), ("main", Row.PER_RATER_S1, 4),
    ("sparsity", Row.SHARED_S1, 1), ("sparsity", Row.SHARED_MASKED_S1, 1), ("sparsity", Row.PER_RATER_S1, 1),
    ("sparsity_thesis_eq", Row.SHARED_S1, 1),
)
# (study, n_present, a, b): paired comparisons of the central claims (a - b; GED: lower is better)
CENTRAL_PAIRS: tuple[tuple[str, int, str, str], ...] = (
    ("main", 4, Row.PER_RATER_S1, Row.SHARED_S1), ("main", 4, Row.PER_RATER_S1, Row.DPERSONA_S1S2),
    ("main", 4, Row.DPERSONA_S1S2, Row.SHARED_S1), ("sparsity", 1, Row.PER_RATER_S1, Row.SHARED_S1),
    ("sparsity", 1, Row.SHARED_MASKED_S1, Row.SHARED_S1),
)


def reference_banner(exports: dict[str, ReferenceResults]) -> str:
    """The banner of a page that shows committed reference runs: per export its profile, datasets
    (with their provenance), epochs per study, M and runs, read from the export itself (not from
    this build, whose profile and epochs differ)."""
    from mrseg.config import RunConfig
    from mrseg.report.banner import _dataset_note, _epochs_text

    lines = [":::{admonition} What these numbers are", ":class: note"]
    for name, ref in exports.items():
        if not ref.available:
            lines.append(f"- **Reference profile `{name}`:** nothing exported yet.")
            continue
        datasets = sorted({str(r).split("/")[0].split("@")[0] for r in ref.runs.get("run_id", [])})
        epochs = ({str(s): sorted(int(e) for e in g["epochs"].dropna().unique())
                   for s, g in ref.summary.groupby("study")} if {"study", "epochs"} <= set(ref.summary) else None)
        m = RunConfig.from_profile(name).eval_samples
        lines += [f"- **Reference profile `{name}`:** {len(ref.runs)} committed runs "
                  f"({int(ref.runs['seed'].nunique()) if 'seed' in ref.runs else '?'} seeds at most per row).",
                  "  **Dataset:** " + "; ".join(f"`{d}`: {_dataset_note(d, None)}" for d in datasets) + ".",
                  f"  **Epochs:** {_epochs_text(epochs)}. **Samples per case M:** {m}."]
    lines += ["- **GED convention:** each table says which: d(∅,∅)=1 (D-Persona's code, hence the thesis) or "
              "d(∅,∅)=0 (the field's convention). GED depends on M.", ":::"]
    return "\n".join(lines)


def reference_status(ref: ReferenceResults) -> str:
    """One paragraph: what is committed, when and where it ran, and how much of it is stale."""
    if not ref.available:
        return (f"No reference results are committed for this plan and profile (looked in `{ref.folder.name}` under "
                "`reference/`). They are produced by `bash benchmarks/gpu_reference.sh` on a GPU machine, or by "
                "`python -m mrseg run --plan thesis --profile reference` on any machine (every run resumes), "
                "then `python -m mrseg reference export`.")
    runs = ref.runs
    hosts = ", ".join(sorted({str(h) for h in runs["host"] if str(h)})) or "not recorded"
    text = (f"{len(runs)} runs exported {ref.index.get('exported', '')[:10]} (profile `{ref.index.get('profile')}`; "
            f"models {', '.join(sorted(runs['model'].astype(str).unique()))}; folds "
            f"{', '.join(str(int(f)) for f in sorted(runs['fold'].unique()))}; seeds "
            f"{', '.join(str(int(s)) for s in sorted(runs['seed'].unique()))}; ran on {hosts}).")
    if ref.n_stale:
        text += (f" **{ref.n_stale} of them are stale**: today's code or config would not give the same numbers "
                 "(the reason per run is in the last table); read them as results of the code that made them.")
    else:
        text += " None is stale: today's code gives every one of them the same fingerprint."
    if ref.corrupt:
        text += (f" **{len(ref.corrupt)} exported run(s) are left out** because a file differs from the one "
                 "recorded at export or cannot be read: " + "; ".join(f"`{c}`" for c in ref.corrupt) + ".")
    return text + " " + attribute_study_status(ref)


def attribute_study_status(ref: ReferenceResults) -> str:
    """One sentence on the attribute study stored with the export (it trains nothing, so the export
    computes it): on how many scans, when, and whether the reference scores the attribute claims."""
    study = ref.attributes
    if study is None:
        why = ("none is stored" if ref.attributes_status == "not exported" else ref.attributes_status)
        return (f"The attribute study is not scored on this export ({why}): its claims are decided by this "
                "build's own study.")
    info = study.get("info") or {}
    return (f"The attribute study (no trained run: rater disagreement against the rated attributes) is stored "
            f"with the export, computed {str(study.get('computed', ''))[:10]} on {info.get('scans', '?')} of "
            f"`{study.get('dataset')}` ({info.get('patches', '?')} patches, {info.get('nodules', '?')} nodules), "
            "so the reference scores the attribute claims too.")


def _cell(summary: pd.DataFrame, study: str, row: str, n_present: int, metric: str) -> str:
    """``mean ± SD`` (SD only over two or more runs) of ``metric`` in ``summary``, read with
    :meth:`mrseg.scoring.results.Results.metric`; "—" when absent."""
    mean, sd, _ = Results(folder=Path(), plan="", profile="", summary=summary).metric(study, row, metric, n_present)
    if math.isnan(mean):
        return "—"
    return f"{mean:.3f}" + ("" if math.isnan(sd) else f" ± {sd:.3f}")


def reference_beside_ours(res: Results, ref: ReferenceResults, metrics: tuple[str, ...] = (Metric.GED, Metric.DICE_MATCH),
                          rows: tuple[tuple[str, str, int], ...] = CENTRAL_ROWS) -> pd.DataFrame:
    """One row per central (study, row, np): each metric as mean ± SD over runs, this build's profile
    beside the reference; ``converged`` is the share of converged runs. Rows neither has are left out."""
    ours_label, ref_label = res.profile, f"reference ({ref.index.get('profile', 'reference')})"
    records = []
    for study, row, n_present in rows:
        rec: dict[str, Any] = {"study": study, "row": row, "np": n_present}
        for metric in metrics:
            rec[f"{metric}: {ours_label}"] = _cell(res.summary, study, row, n_present, metric)
            rec[f"{metric}: {ref_label}"] = _cell(ref.summary, study, row, n_present, metric)
        for label, summary in ((ours_label, res.summary), (ref_label, ref.summary)):
            rec[f"converged: {label}"] = _cell(summary, study, row, n_present, "converged")
        if any(v != "—" for k, v in rec.items() if ":" in k):
            records.append(rec)
    return pd.DataFrame(records)


def _interval(rec: Any, low: str, high: str, sign: float) -> tuple[float, float]:
    lo, hi = sign * float(rec.get(low, math.nan)), sign * float(rec.get(high, math.nan))
    return (min(lo, hi), max(lo, hi)) if math.isfinite(lo) and math.isfinite(hi) else (math.nan, math.nan)


def _ci_text(bounds: tuple[float, float]) -> str:
    return f"[{bounds[0]:+.4f}, {bounds[1]:+.4f}]" if math.isfinite(bounds[0]) else "—"


def reference_paired(ref: ReferenceResults, metrics: tuple[str, ...] = (Metric.GED, Metric.DICE_MATCH),
                     pairs: tuple[tuple[str, int, str, str], ...] = CENTRAL_PAIRS) -> pd.DataFrame:
    """The reference's paired comparisons of the central claims (read from the paired table, as
    the aggregation computed them): mean difference a - b, its primary 95% CI (run-level for
    separately trained models: run pairs and patients), the run pairs it rests on, the t interval
    over run pairs, Nadeau & Bengio's corrected interval, the patient-bootstrap interval (test-set
    uncertainty only), the effect detectable with 80% power, and "inconclusive" when the primary
    CI contains zero."""
    paired = ref.paired
    if paired is None or paired.empty:
        return pd.DataFrame()
    records = []
    def find(study: str, n_present: int, a: str, b: str, metric: str) -> pd.DataFrame:
        return paired[(paired["study"].astype(str) == study) & (paired["a"].astype(str) == a)
                      & (paired["b"].astype(str) == b) & (paired["metric"].astype(str) == metric)
                      & (pd.to_numeric(paired["n_present"], errors="coerce") == n_present)]

    for study, n_present, a, b in pairs:
        for metric in metrics:
            sel, sign = find(study, n_present, a, b, metric), 1.0
            if sel.empty:   # stored the other way round: b - a
                sel, sign = find(study, n_present, b, a, metric), -1.0
            if sel.empty:
                continue
            rec = sel.iloc[0].to_dict()
            diff = sign * float(rec["mean_diff"])
            lo, hi = _interval(rec, "ci_low", "ci_high", sign)
            if not math.isfinite(lo):
                reading = "inconclusive (one run pair: no run-to-run spread)"
            else:
                reading = "inconclusive (CI contains 0)" if lo <= 0 <= hi else (f"{a} lower" if hi < 0 else f"{a} higher")
            run_level = rec.get("unit", "run") == "run"
            records.append({"study": study, "np": n_present, "a - b": f"{a} - {b}", "metric": metric,
                            "mean diff": f"{diff:+.4f}",
                            "95% CI" + (" (run-level)" if run_level else ""): _ci_text((lo, hi)),
                            "p": f"{float(rec['p']):.3g}" if pd.notna(rec.get("p")) else "—",
                            "run pairs": int(rec.get("n_runs") or 0),
                            "t over run pairs": _ci_text(_interval(rec, "t_ci_low", "t_ci_high", sign)),
                            "Nadeau-Bengio": _ci_text(_interval(rec, "nb_ci_low", "nb_ci_high", sign)),
                            "test-set only": _ci_text(_interval(rec, "patient_ci_low", "patient_ci_high", sign)),
                            "detectable (80% power)": (f"{float(rec['detectable_effect']):.4f}"
                                                       if pd.notna(rec.get("detectable_effect")) else "—"),
                            "n cases": int(rec["n"]),
                            "folds a lower": f"{rec.get('folds_a_lower' if sign > 0 else 'folds_a_higher', '—')}",
                            "reading": reading})
    return pd.DataFrame(records)


SPARSITY_ROWS = (Row.SHARED_S1, Row.SHARED_MASKED_S1, Row.PER_RATER_S1)
ABLATION_BASE = "1_dpersona_s1s2"


def _runs_of(summary: pd.DataFrame, study: str, row: str, n_present: int) -> int:
    sel = summary[(summary["study"].astype(str) == study) & (summary["row"].astype(str) == row)
                  & (pd.to_numeric(summary["n_present"], errors="coerce") == n_present)] if not summary.empty else summary
    return int(sel["n_folds"].iloc[0]) if len(sel) and "n_folds" in sel else 0


def reference_sparsity_trend(ref: ReferenceResults, metric: str = Metric.GED_DPERSONA,
                             levels: tuple[int, ...] = (4, 3, 2, 1)) -> pd.DataFrame:
    """The sparsity study over np levels in the reference: per level, each row's ``metric`` as mean ±
    SD over runs (with the number of runs), and per-rater - shared with its primary 95% CI (from the
    paired table, as the aggregation computed it). Levels without runs are left out."""
    records = []
    for n in levels:
        rec: dict[str, Any] = {"np": n}
        for row in SPARSITY_ROWS:
            rec[f"{row}"] = _cell(ref.summary, "sparsity", row, n, metric)
            rec[f"{row} runs"] = _runs_of(ref.summary, "sparsity", row, n)
        diff = reference_paired(ref, (metric,), (("sparsity", n, Row.PER_RATER_S1, Row.SHARED_S1),))
        rec["per_rater - shared"] = diff["mean diff"].iloc[0] if len(diff) else "—"
        rec["95% CI"] = diff.filter(like="95% CI").iloc[0, 0] if len(diff) else "—"
        rec["run pairs"] = int(diff["run pairs"].iloc[0]) if len(diff) else 0
        if any(rec[f"{row} runs"] for row in SPARSITY_ROWS):
            records.append(rec)
    return pd.DataFrame(records)


def reference_alignment(ref: ReferenceResults, study: str = "sparsity") -> pd.DataFrame:
    """The reference's gradient-alignment diagnostic (``alignment_cases.csv`` exported with its runs):
    per row and np, the latent cosine (mean over folds of the per-fold means, SD across folds, mean
    within-fold SD) and the decoder-parameter cosine, with the folds behind them. Empty when no
    exported run carries the diagnostic."""
    summary = ref.alignment_summary
    if summary is None or summary.empty or "latent_mean" not in summary:
        return pd.DataFrame()
    sel = summary[summary["study"].astype(str) == study].copy()
    sel["n_present"] = pd.to_numeric(sel["n_present"], errors="coerce")
    sel = sel.sort_values(["row", "n_present"], ascending=[True, False])

    def text(value: Any) -> str:
        return "undefined" if pd.isna(value) else f"{float(value):+.3f}"

    return pd.DataFrame({
        "row": sel["row"].astype(str), "np": sel["n_present"].astype(int), "folds": sel["n_folds"].astype(int),
        "latent cosine": sel["latent_mean"].map(text),
        "SD across folds": sel["latent_sd_across_folds"].map(lambda v: "—" if pd.isna(v) else f"{float(v):.3f}"),
        "within-fold SD": sel["latent_within_fold_sd"].map(lambda v: "—" if pd.isna(v) else f"{float(v):.3f}"),
        "decoder cosine": sel["decoder_mean"].map(text) if "decoder_mean" in sel else "—",
    }).reset_index(drop=True)


def reference_ablation(ref: ReferenceResults, metrics: tuple[str, ...] = (Metric.GED_DPERSONA, Metric.DICE_MATCH)
                       ) -> pd.DataFrame:
    """The ablation rows in the reference: each metric as mean ± SD over runs and each row minus row 1
    (D-Persona S1+S2) with its primary 95% CI from the paired table. Rows without runs are left out."""
    summary = ref.summary
    if summary is None or summary.empty:
        return pd.DataFrame()
    rows = [r for r in dict.fromkeys(summary.loc[summary["study"].astype(str) == "ablation", "row"].astype(str))]
    records = []
    for row in rows:
        rec: dict[str, Any] = {"row": row, "runs": _runs_of(summary, "ablation", row, 4)}
        for metric in metrics:
            rec[metric] = _cell(summary, "ablation", row, 4, metric)
            if row != ABLATION_BASE:
                diff = reference_paired(ref, (metric,), (("ablation", 4, row, ABLATION_BASE),))
                rec[f"{metric}: row - row 1"] = (f"{diff['mean diff'].iloc[0]} {diff.filter(like='95% CI').iloc[0, 0]}"
                                                 if len(diff) else "—")
            else:
                rec[f"{metric}: row - row 1"] = ""
        records.append(rec)
    return pd.DataFrame(records)


# a study's rows beside the same models trained on the four-rater cases at the full schedule (main)
STUDY_CONTRASTS: dict[str, tuple[tuple[str, str], ...]] = {
    "partial": ((Row.PER_RATER_S1, Row.SHARED_S1), (Row.PER_RATER_S1, Row.SHARED_MASKED_S1)),
    "control": ((Row.PER_RATER_S1, Row.SHARED_S1),),
}


FOUR_RATER_COLUMN = "four-rater cases (main; else sparsity at np 4)"


def _four_rater_cell(summary: pd.DataFrame, row: str, metric: str) -> str:
    """``row`` trained on the four-rater cases at the full schedule: main's runs, else (a row main
    does not train, such as shared-masked) the sparsity study's np 4 runs, the same training."""
    cell = _cell(summary, "main", row, 4, metric)
    return cell if cell != "—" else _cell(summary, "sparsity", row, 4, metric)


def reference_study_rows(ref: ReferenceResults, study: str, metric: str = Metric.GED_DPERSONA,
                         n_present: int = 4) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A study's rows in the reference (``partial``, ``control``): per row ``metric`` as mean ± SD over
    runs with the run count, beside the same row trained on the four-rater cases at the full schedule
    (main's runs, else sparsity's at np 4: :data:`FOUR_RATER_COLUMN`); and the
    study's contrasts (:data:`STUDY_CONTRASTS`) from the paired table with their run-level 95% CI.
    Two empty frames when the study has no exported runs."""
    summary = ref.summary
    if summary is None or summary.empty or not (summary["study"].astype(str) == study).any():
        return pd.DataFrame(), pd.DataFrame()
    rows = list(dict.fromkeys(summary.loc[summary["study"].astype(str) == study, "row"].astype(str)))
    table = pd.DataFrame([{"row": row, "runs": _runs_of(summary, study, row, n_present),
                           study: _cell(summary, study, row, n_present, metric),
                           FOUR_RATER_COLUMN: _four_rater_cell(summary, row, metric)} for row in rows])
    pairs = tuple((study, n_present, a, b) for a, b in STUDY_CONTRASTS.get(study, ()) if a in rows and b in rows)
    paired = reference_paired(ref, (metric,), pairs) if pairs else pd.DataFrame()
    if not paired.empty:
        paired = paired[["a - b", "mean diff", *[c for c in paired if c.startswith("95% CI")], "run pairs",
                         "detectable (80% power)", "n cases", "reading"]]
    return table, paired


def reference_verification(ref: ReferenceResults) -> pd.DataFrame:
    """The export's latest ``reference verify`` (``verify.json``): per retrained run and metric the
    committed and the retrained value, their difference, the seed-to-seed SD of that config and the
    reading; empty when the export was never verified."""
    from mrseg.pipeline.verify import read_verification

    data = read_verification(ref.folder)
    records = []
    for run in data.get("runs") or []:
        here = run.get("machine_here") or {}
        committed = run.get("machine_committed") or {}
        for m in run.get("metrics") or []:
            sd = m.get("seed_sd")
            records.append({"run": run["run_id"], "metric": m["metric"], "committed": f"{m['committed']:.4f}",
                            "retrained here": f"{m['here']:.4f}", "difference": f"{m['difference']:+.4f}",
                            "seed SD (n seeds)": f"{sd:.4f} ({m['n_seeds']})" if sd is not None else f"— ({m['n_seeds']})",
                            "reading": m["reading"],
                            "best epoch (committed / here)": f"{run.get('best_epoch_committed')} / {run.get('best_epoch_here')}",
                            "CPU kernels (committed / here)": f"{committed.get('torch_cpu_capability', 'not recorded')} / "
                                                              f"{here.get('torch_cpu_capability', '?')}",
                            "stale": run.get("stale_at_verify") or "no"})
    return pd.DataFrame(records)


def verification_status(ref: ReferenceResults) -> str:
    """One sentence: when the export was last verified and on what, or that it never was."""
    from mrseg.pipeline.verify import read_verification

    data = read_verification(ref.folder)
    if not data:
        return ("Not yet verified: `python -m mrseg reference verify --runs 1` retrains a committed run on this "
                "machine and compares it with the committed numbers.")
    machine = data.get("machine") or {}
    return (f"Last verified {str(data.get('verified', ''))[:10]}: {len(data.get('runs') or [])} run(s) retrained on "
            f"a {machine.get('cpus', '?')}-CPU machine ({machine.get('cpu_model', 'unknown CPU')}, PyTorch kernels "
            f"{machine.get('torch_cpu_capability', '?')}), judged against the SD between seeds of the same config "
            f"(within {data.get('within_sds', 2)} SDs reads \"within the seed spread\").")


def reference_cost(ref: ReferenceResults) -> pd.DataFrame:
    """What one reference run costs, per model and stage: runs, the machine, median training
    steps/s (optimisation only, from each exported ``history.csv``), median and total training
    minutes. Empty when nothing is exported."""
    from mrseg.io import read_json
    from mrseg.pipeline.aggregate import throughput_table

    if ref.runs is None or ref.runs.empty:
        return pd.DataFrame()
    runs, hosts = [], {}
    for run_id, host in zip(ref.runs["run_id"], ref.runs["host"]):
        config = (read_json(ref.folder / run_id / "manifest.json") or {}).get("config") or {}
        runs.append((run_id, config, ref.folder / run_id))
        hosts[run_id] = str(host)
    frame = throughput_table(runs)
    if frame.empty:
        return frame
    frame["host"] = frame["run_id"].map(hosts)
    out = (frame.groupby(["model", "stage", "n_present", "image_size", "batch_size", "threads", "host"], dropna=False)
           .agg(runs=("run_id", "nunique"), steps_per_run=("steps", "median"), steps_per_s=("steps_per_s", "median"),
                minutes_per_run=("train_seconds", "median"), total_hours=("train_seconds", "sum"))
           .reset_index())
    out["steps_per_s"] = out["steps_per_s"].round(2)
    out["minutes_per_run"] = (out["minutes_per_run"] / 60).round(1)
    out["total_hours"] = (out["total_hours"] / 3600).round(2)
    return out.sort_values(["stage", "n_present", "steps_per_s"], ascending=[True, False, False]).reset_index(drop=True)


def reference_runs(ref: ReferenceResults) -> pd.DataFrame:
    """The exported runs: id, model, fold, seed, np, host, training seconds and staleness."""
    if ref.runs is None or ref.runs.empty:
        return pd.DataFrame()
    out = ref.runs.copy()
    out["stale"] = out["stale"].astype(str).replace("", "no")
    return out


__all__ = ["CENTRAL_PAIRS", "CENTRAL_ROWS", "reference_ablation", "reference_alignment", "reference_as_results",
           "reference_beside_ours", "reference_cost", "reference_paired", "reference_runs", "reference_sparsity_trend",
           "reference_verification", "verification_status", "reference_status", "attribute_study_status"]
