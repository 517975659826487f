"""Score the claims on the committed reference export and add that to a build's ``scorecard.json``.

Run after the aggregation (the runner and ``python -m mrseg scorecard`` call
:func:`add_reference_to_scorecard`): the first export of :data:`REFERENCE_PROFILES` that is
committed is read, every claim is evaluated on it with the same rules, and each claim of the
scorecard gets the reference's verdict and a ``decision`` (:func:`mrseg.scoring.claims.attach_reference`).
Kept apart from :mod:`mrseg.scoring.claims` so that the aggregation does not import the reference
reader (which imports the aggregation's table builders).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mrseg.diagnostics.isolation import isolation_record
from mrseg.io import read_json, write_json
from mrseg.pipeline.reference import ReferenceResults, available_reference_profiles, load_reference
from mrseg.scoring.claims import SCORECARD_JSON, attach_reference, count_verdicts, evaluate_claims, load_claims
from mrseg.scoring.results import Results
from mrseg.thesis import load_thesis_reported


def reference_as_results(ref: ReferenceResults, plan: str = "thesis") -> Results:
    """An export as a :class:`~mrseg.scoring.results.Results` (cases, per-fold, summary, paired, latent and
    alignment tables; the gradient-isolation diagnostic, a property of today's code, measured here),
    so that the claim rules that read those tables score the reference runs as they score ours."""
    return Results(folder=ref.folder, plan=plan, profile=str(ref.index.get("profile", ref.folder.name)),
                   cases=ref.cases, per_fold=ref.per_fold, summary=ref.summary, paired=ref.paired,
                   latent=ref.latent, alignment=ref.alignment, alignment_summary=ref.alignment_summary,
                   extra={"gradient_isolation": isolation_record()})


def reference_records(plan: str, thesis: dict[str, Any], claims: list[dict[str, Any]],
                      root: str | Path | None = None) -> tuple[str, list[dict[str, Any]], int, int]:
    """The claims scored on the first available reference export of ``plan`` (``REFERENCE_PROFILES``
    order): ``(profile, records, runs, stale runs)``; ``("", [], 0, 0)`` when none is committed."""
    for profile in available_reference_profiles(plan, root):
        ref = load_reference(plan, profile, root)
        if ref.available:
            return profile, evaluate_claims(reference_as_results(ref, plan), thesis, claims), len(ref.runs), ref.n_stale
    return "", [], 0, 0


def add_reference_to_scorecard(folder: str | Path, plan: str, profile: str,
                               root: str | Path | None = None) -> dict[str, Any] | None:
    """Add the reference verdicts and the decision to ``folder/scorecard.json`` (atomically) and
    return the updated scorecard; None (nothing changed) when no scorecard or no export exists.
    (The intro's headline is rendered from it by the scorecard page.)"""
    path = Path(folder) / SCORECARD_JSON
    if not path.exists():
        return None
    ref_profile, ref_records, n_runs, n_stale = reference_records(Path(str(plan)).stem, load_thesis_reported(),
                                                                  load_claims(), root)
    if not ref_profile:
        return None
    payload = read_json(path)
    records = payload["claims"]
    attach_reference(records, ref_records, ref_profile, n_stale)
    payload["reference"] = {"profile": ref_profile, "runs": n_runs, "stale_runs": n_stale,
                            "counts": count_verdicts(ref_records), "decision_counts": count_verdicts(records, "decision")}
    write_json(path, payload)
    return payload


__all__ = ["add_reference_to_scorecard", "reference_as_results", "reference_records"]
