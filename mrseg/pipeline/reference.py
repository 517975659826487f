"""Committed reference results: completed runs exported without weights, and read back for the book.

The idea of showyourwork!'s cached expensive step: a longer profile (``reference``) is trained
where there is time for it (a GPU machine, or a CPU over several invocations: every run resumes),
and ``python -m mrseg reference export`` copies what the book needs of each completed run into
the repository, which is committed::

    reference/<plan>/<profile>/index.json            the export: runs, their fingerprints and hosts
    reference/<plan>/<profile>/<run_id>/manifest.json      config, code_fingerprint, host, timings
    reference/<plan>/<profile>/<run_id>/eval_summary.json  run-level metrics and collapse diagnostics
    reference/<plan>/<profile>/<run_id>/history.csv        per-epoch losses and validation scores
    reference/<plan>/<profile>/<run_id>/eval_cases.csv.gz  per-case metrics (gzip)
    reference/<plan>/<profile>/attributes.json       the attribute study (it trains nothing)

No checkpoint is exported. :func:`load_reference` reads an export back into the same tables the
aggregation writes (cases, per-fold, summary, paired), each run marked stale when its recorded
``code_fingerprint`` differs from the one today's code gives its config.
"""

from __future__ import annotations

import gzip
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mrseg.bookkeeping.integrity import record_tables, run_problem
from mrseg.bookkeeping.manifest import is_complete, now_iso, read_manifest
from mrseg.config import profile_scope
from mrseg.io import read_json, write_json
from mrseg.paths import REPO_ROOT, cache_dir, reference_root
from mrseg.pipeline.derived import derived_key, store_derived, stored_derived
from mrseg.pipeline.equivalence import certified_stale_reason, read_certificates
from mrseg.pipeline.plan import load_plan
from mrseg.pipeline.reference_attributes import export_attribute_study, read_attribute_study

PAIRED_FILE = "paired.csv.gz"      # the export's paired comparisons, valid while paired_key() matches
PAIRED_KEY_FILE = "paired.key"
# Modules whose code computes the paired comparisons: a change to them invalidates a stored table.
PAIRED_SOURCES = ("pipeline/paired.py", "diagnostics/run_level.py", "diagnostics/statistics.py")
# Reference profiles, most authoritative first: the GPU-sized profile, then the CPU-affordable one.
REFERENCE_PROFILES: tuple[str, ...] = ("reference", "reference-cpu")
LATENT_SUMMARY = "latent_summary.json"   # the latent diagnostic of a run, exported when it was made
ALIGNMENT_CASES = "alignment_cases.csv"  # the gradient-alignment diagnostic of a run, likewise
EXPORTED_FILES = ("manifest.json", "eval_summary.json", "history.csv", LATENT_SUMMARY, ALIGNMENT_CASES)
CASES_FILE = "eval_cases.csv.gz"


def reference_folder(plan: str, profile: str, root: str | os.PathLike | None = None) -> Path:
    return Path(root or reference_root()) / Path(str(plan)).stem / profile


def available_reference_profiles(plan: str = "thesis", root: str | os.PathLike | None = None) -> list[str]:
    """The profiles of :data:`REFERENCE_PROFILES` that have an export (``index.json``) for ``plan``, in that order."""
    return [p for p in REFERENCE_PROFILES if (reference_folder(plan, p, root) / "index.json").exists()]


def paired_key(folder: Path) -> str:
    """SHA-1 of the export's ``index.json`` and of the code that computes paired comparisons."""
    import hashlib

    from mrseg.bookkeeping.fingerprint import PACKAGE, hash_sources

    digest = hashlib.sha1((folder / "index.json").read_bytes())
    digest.update(hash_sources(PACKAGE, PAIRED_SOURCES).encode())
    return digest.hexdigest()


def _paired_cache(folder: Path) -> Path:
    """Where a checkout keeps an export's paired table when the committed one is out of date."""
    return cache_dir() / "reference" / folder.parent.name / folder.name


def read_stored_paired(folder: Path) -> pd.DataFrame | None:
    """The export's stored paired table if its key matches today's (committed with the export, or
    cached by an earlier read in this checkout); None otherwise."""
    key = paired_key(folder)
    for place in (folder, _paired_cache(folder)):
        try:
            if (place / PAIRED_KEY_FILE).read_text().strip() == key:
                return pd.read_csv(place / PAIRED_FILE)
        except (OSError, ValueError, EOFError, pd.errors.ParserError, pd.errors.EmptyDataError):
            continue
    return None


def store_paired(folder: Path, paired: pd.DataFrame, in_export: bool = False) -> None:
    """Keep ``paired`` beside the export (``in_export``) or in this checkout's cache, atomically,
    with the key it is valid for; a read-only place is skipped silently (the table is recomputed)."""
    place = folder if in_export else _paired_cache(folder)
    try:
        place.mkdir(parents=True, exist_ok=True)
        tmp = place / (PAIRED_FILE + ".tmp")
        paired.to_csv(tmp, index=False, compression={"method": "gzip", "mtime": 0})
        os.replace(tmp, place / PAIRED_FILE)
        key_tmp = place / (PAIRED_KEY_FILE + ".tmp")
        key_tmp.write_text(paired_key(folder) + "\n")
        os.replace(key_tmp, place / PAIRED_KEY_FILE)
    except OSError:
        pass


def portable_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """A manifest fit to commit: paths under the repository made relative to it, other absolute
    paths cut to their file name (a committed file names no machine's folders)."""
    out = dict(manifest)
    for key in ("notebook", "run_dir"):
        value = out.get(key)
        if isinstance(value, str) and os.path.isabs(value):
            path = Path(value)
            try:
                out[key] = path.relative_to(REPO_ROOT).as_posix()
            except ValueError:
                out[key] = path.name
    return out


def _write_portable_manifest(manifest: dict[str, Any], dst: Path) -> None:
    portable = portable_manifest(manifest)
    if portable != manifest or not dst.exists():
        write_json(dst, portable)


def _copy_atomic(src: Path, dst: Path) -> None:
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _gzip_atomic(src: Path, dst: Path) -> None:
    tmp = dst.with_name(dst.name + ".tmp")
    with open(src, "rb") as fin, open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as fout:
        shutil.copyfileobj(fin, fout)
    os.replace(tmp, dst)


def host_text(host: dict[str, Any] | None) -> str:
    """A manifest's ``host`` in words: the GPU's name, else ``"<n> CPUs"``; "" when none is recorded."""
    return (host.get("gpu") or f"{host.get('cpus', '?')} CPUs") if host else ""


def export_reference(plan: str = "thesis", profile: str = "reference", dest: str | os.PathLike | None = None,
                     progress: bool = False, attributes: bool = False) -> dict[str, Any]:
    """Copy every completed training run of ``plan``/``profile`` (manifest, summary, history,
    gzipped per-case table; no weights) into ``reference_folder(plan, profile, dest)`` and write its
    ``index.json`` (the runs, and each dataset's ``rater_order``: what rater slot k means). Runs
    already exported are replaced; a run of the plan that is not complete here but was exported
    before (its folder and index entry exist) is kept, so exports made on several machines or
    sessions add up; runs in neither are listed as skipped. With ``attributes`` (the command line's
    default) the attribute study (:mod:`mrseg.pipeline.reference_attributes`: it uses no trained run)
    is computed and stored too, on the scans the profile's scope reads; a failure there is reported,
    never fatal to the export.

    Returns ``{"folder", "exported", "kept", "skipped", "attributes", "bytes"}`` (``attributes``:
    "exported", "not asked" or the error).
    """
    from tqdm.auto import tqdm

    from mrseg.pipeline.aggregate import dataset_rater_order

    folder = reference_folder(plan, profile, dest)
    trains = [i for i in load_plan(plan, profile, include_pages=False) if i.kind == "train"]
    previous_index = read_json(folder / "index.json") if (folder / "index.json").exists() else {}
    earlier = {r["run_id"]: r for r in previous_index.get("runs") or []}
    certificates = read_certificates(folder)
    exported, kept, skipped = [], [], []
    for item in tqdm(trains, desc="export", disable=not progress):
        if not is_complete(item.run_dir):
            previous = earlier.get(item.run_id)
            if previous is not None and (folder / item.run_id / "manifest.json").exists():
                kept.append({**previous, "memberships": item.memberships})
                _write_portable_manifest(_with_tables(read_json(folder / item.run_id / "manifest.json"),
                                                      folder / item.run_id),
                                         folder / item.run_id / "manifest.json")
            else:
                skipped.append({"run_id": item.run_id, "reason": "not complete"})
            continue
        manifest = read_manifest(item.run_dir)
        problem = run_problem(item.run_dir, manifest)
        if problem:   # a table changed since the run completed: never exported as if whole
            skipped.append({"run_id": item.run_id, "reason": f"corrupt: {problem}"})
            continue
        # what the export holds is recorded, so that reading it back can tell a damaged copy
        manifest = {**manifest, "tables": record_tables(item.run_dir)}
        target = folder / item.run_id
        target.mkdir(parents=True, exist_ok=True)
        for name in EXPORTED_FILES:
            if name == "manifest.json":
                continue
            if (item.run_dir / name).exists():
                _copy_atomic(item.run_dir / name, target / name)
        if (item.run_dir / "eval_cases.csv").exists():
            _gzip_atomic(item.run_dir / "eval_cases.csv", target / CASES_FILE)
        _write_portable_manifest(manifest, target / "manifest.json")   # last: the export of this run is whole
        exported.append({"run_id": item.run_id, "model": item.config["model"], "fold": item.config["fold"],
                         "seed": item.config["seed"], "n_present": item.config["n_present"],
                         "memberships": item.memberships, "code_fingerprint": manifest.get("code_fingerprint"),
                         "stale_at_export": certified_stale_reason(manifest, item.config, certificates),
                         "host": manifest.get("host"), "machine": manifest.get("machine"),
                         "seconds": manifest.get("seconds"), "finished": manifest.get("finished")})
    order = {i.run_id: k for k, i in enumerate(trains)}
    runs = sorted(exported + kept, key=lambda r: order[r["run_id"]])
    in_export = {r["run_id"] for r in runs}
    # what each dataset's rater slot k means, so that per-slot claims are scored on the export alone
    rater_order = {**(previous_index.get("rater_order") or {}),
                   **dataset_rater_order([i.config for i in trains if i.run_id in in_export])}
    index = {"plan": Path(str(plan)).stem, "profile": profile, "exported": now_iso(), "runs": runs,
             "not_exported": skipped, "rater_order": rater_order}
    write_json(folder / "index.json", index)
    exported_back = load_reference(plan, profile, dest)
    store_paired(folder, exported_back.paired, in_export=True)
    store_derived(folder, exported_back.cases, exported_back.per_fold, derived_key(folder / "index.json"))
    attribute_status = "not asked"
    if attributes:
        try:
            export_attribute_study(folder, max_scans=profile_scope(profile).attribute_scans)
            attribute_status = "exported"
        except Exception as err:   # the runs are exported whatever happens to the study
            attribute_status = f"{type(err).__name__}: {err}"
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return {"folder": str(folder), "exported": len(exported), "kept": len(kept), "skipped": len(skipped),
            "attributes": attribute_status, "bytes": size}


def _with_tables(manifest: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """An exported run's manifest with its tables recorded, when it has no record yet and they read."""
    if manifest.get("tables"):
        return manifest
    try:
        tables = record_tables(run_dir, names={"eval_cases.csv": CASES_FILE})
    except (OSError, EOFError):
        return manifest
    return {**manifest, "tables": tables}


@dataclass
class ReferenceResults:
    """An export read back: the aggregation's tables plus one row per run (``runs``: run id, model,
    fold, seed, np, host, seconds, ``stale``: why today's code would not reproduce it, "" if it would)."""

    folder: Path
    index: dict[str, Any] = field(default_factory=dict)
    runs: pd.DataFrame = field(default_factory=pd.DataFrame)
    cases: pd.DataFrame = field(default_factory=pd.DataFrame)
    per_fold: pd.DataFrame = field(default_factory=pd.DataFrame)
    summary: pd.DataFrame = field(default_factory=pd.DataFrame)
    paired: pd.DataFrame = field(default_factory=pd.DataFrame)
    corrupt: list[str] = field(default_factory=list)   # runs left out: "<run id>: <file and problem>"
    latent: pd.DataFrame = field(default_factory=pd.DataFrame)   # latent_summary.json scalars, per embedded run
    alignment: pd.DataFrame = field(default_factory=pd.DataFrame)   # alignment.csv's rows, of the exported diagnostics
    alignment_summary: pd.DataFrame = field(default_factory=pd.DataFrame)
    derived: dict[str, pd.DataFrame] = field(default_factory=dict)   # mrseg.pipeline.derived's tables
    attributes: dict[str, Any] | None = None   # the attribute study (attributes.json), when current
    attributes_status: str = "not exported"    # "" when ``attributes`` is current, else why it is absent

    @property
    def available(self) -> bool:
        return not self.summary.empty

    @property
    def n_stale(self) -> int:
        return int((self.runs["stale"].astype(str) != "").sum()) if "stale" in self.runs else 0

    @property
    def rater_order(self) -> dict[str, str]:
        """``{dataset: rater_order}`` as recorded at export (what rater slot k means)."""
        return dict(self.index.get("rater_order") or {})

    def timings(self) -> pd.DataFrame:
        """One row per (run, study row it belongs to), shaped like a build's ``runs.csv`` (``status``,
        ``kind``, ``study``, ``row``, ``n_present``, ``fold``, ``seed``, ``seconds`` of training) plus
        ``host``, the machine it trained on; empty when nothing was exported."""
        rows = [{"run_id": run["run_id"], "kind": "train", "status": "complete", "study": m["study"],
                 "row": m["row"], "model": run.get("model"), "n_present": m.get("n_present", run.get("n_present")),
                 "fold": run.get("fold"), "seed": run.get("seed"), "host": host_text(run.get("host")),
                 "seconds": (run.get("seconds") or {}).get("train")}
                for run in self.index.get("runs") or [] for m in run.get("memberships") or []]
        return pd.DataFrame(rows)


def load_reference(plan: str = "thesis", profile: str = "reference",
                   root: str | os.PathLike | None = None, paired: bool = True) -> ReferenceResults:
    """Read ``reference_folder(plan, profile, root)``; an empty :class:`ReferenceResults` when
    nothing was exported. A run whose files cannot be read, or whose tables differ from the ones its
    manifest recorded at export, is left out and listed in ``corrupt`` with its file and problem.
    ``paired=False`` skips the paired comparisons (their bootstrap is the slow part); otherwise the
    table stored with the export (or cached here) is read when its key (:func:`paired_key`) matches."""
    from mrseg.pipeline.aggregate import (
        add_run_columns,
        alignment_row,
        alignment_summary_table,
        cases_table,
        paired_table,
        per_fold_table,
        summary_table,
    )

    folder = reference_folder(plan, profile, root)
    out = ReferenceResults(folder=folder)
    if not (folder / "index.json").exists():
        return out
    out.index = read_json(folder / "index.json")
    out.attributes, out.attributes_status = read_attribute_study(folder)
    certificates = read_certificates(folder)
    rows, tables, run_dirs, latent_rows, align_rows = [], [], {}, [], []
    for run in out.index.get("runs") or []:
        run_dir = folder / run["run_id"]
        try:
            manifest = read_json(run_dir / "manifest.json")
            problem = run_problem(run_dir, manifest, names={"eval_cases.csv": CASES_FILE})
            if problem:
                raise ValueError(problem)
            cases = pd.read_csv(run_dir / CASES_FILE)
        except (OSError, EOFError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            # reported with its file and left out, never averaged in, never fatal to the rest
            out.corrupt.append(f"{run['run_id']}: {err}")
            continue
        config = manifest.get("config") or {}
        try:
            stale = certified_stale_reason(manifest, config, certificates) if config else "no config recorded"
        except (TypeError, ValueError) as err:   # a config field today's code no longer knows
            stale = f"config no longer valid ({err})"
        host = manifest.get("host") or {}
        rows.append({"run_id": run["run_id"], "model": run.get("model"), "fold": run.get("fold"),
                     "seed": run.get("seed"), "n_present": run.get("n_present"),
                     "host": host_text(host),
                     "train_seconds": (manifest.get("seconds") or {}).get("train"), "stale": stale})
        tables.append((cases.assign(run_id=run["run_id"]), run.get("memberships") or []))
        run_dirs[run["run_id"]] = run_dir
        if (run_dir / LATENT_SUMMARY).exists():
            summary = read_json(run_dir / LATENT_SUMMARY)
            latent_rows.append({"run_id": run["run_id"], "model": run.get("model"), "fold": run.get("fold"),
                                "n_present": run.get("n_present"), "run_dir": str(run_dir),
                                **{k: v for k, v in summary.items()
                                   if isinstance(v, (int, float, str, bool)) or v is None}})
        if (run_dir / ALIGNMENT_CASES).exists():
            try:
                values = alignment_row(pd.read_csv(run_dir / ALIGNMENT_CASES))
            except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
                out.corrupt.append(f"{run['run_id']}: {ALIGNMENT_CASES}: {err} (its alignment left out)")
            else:   # one row per (study, row) the run belongs to, as the aggregation writes alignment.csv
                align_rows += [{"run_id": run["run_id"], "study": m["study"], "row": m["row"], "model": run.get("model"),
                                "n_present": run.get("n_present"), "fold": run.get("fold"),
                                "epochs": config.get("epochs"), **values} for m in run.get("memberships") or []]
    out.runs = pd.DataFrame(rows)
    out.latent = pd.DataFrame(latent_rows)
    out.alignment = pd.DataFrame(align_rows)
    out.alignment_summary = alignment_summary_table(out.alignment)
    out.cases = cases_table(tables)
    if not out.cases.empty:
        out.per_fold = add_run_columns(per_fold_table(out.cases), run_dirs)
        out.summary = summary_table(out.per_fold)
        if paired:
            out.paired = read_stored_paired(folder)
            if out.paired is None:
                out.paired = paired_table(out.cases)
                store_paired(folder, out.paired)
            key = derived_key(folder / "index.json")
            out.derived = (stored_derived([folder, _paired_cache(folder)], key)
                           or store_derived(_paired_cache(folder), out.cases, out.per_fold, key))
        else:
            out.paired = pd.DataFrame()
    return out


__all__ = ["CASES_FILE", "REFERENCE_PROFILES", "ReferenceResults", "available_reference_profiles",
           "export_reference", "host_text", "load_reference", "reference_folder", "reference_root"]
