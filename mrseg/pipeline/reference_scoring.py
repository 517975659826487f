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
from mrseg.pipeline.ladder import ladder
from mrseg.pipeline.reference import ReferenceResults, available_reference_profiles, load_reference
from mrseg.scoring.claims import SCORECARD_JSON, attach_reference, count_verdicts, evaluate_claims, load_claims
from mrseg.scoring.ladder import attach_ladder, ladder_rungs, rung_view
from mrseg.scoring.results import Results
from mrseg.thesis import load_thesis_reported


def reference_as_results(ref: ReferenceResults, plan: str = "thesis") -> Results:
    """An export as a :class:`~mrseg.scoring.results.Results` (cases, per-fold, summary, paired, latent and
    alignment tables; the runs' training seconds and hosts; each dataset's rater order as exported; the
    gradient-isolation diagnostic, a property of today's code, measured here; the attribute study
    stored with the export, when current),
    so that the claim rules that read those tables score the reference runs as they score ours."""
    return Results(folder=ref.folder, plan=plan, profile=str(ref.index.get("profile", ref.folder.name)),
                   cases=ref.cases, per_fold=ref.per_fold, summary=ref.summary, paired=ref.paired,
                   latent=ref.latent, alignment=ref.alignment, alignment_summary=ref.alignment_summary,
                   runs=ref.timings(), context={"rater_order": ref.rater_order},
                   extra={"gradient_isolation": isolation_record(),
                          **({"attributes": ref.attributes} if ref.attributes is not None else {})})


def first_reference(plan: str, root: str | Path | None = None) -> ReferenceResults | None:
    """The first available reference export of ``plan`` (``REFERENCE_PROFILES`` order), or None."""
    for profile in available_reference_profiles(plan, root):
        ref = load_reference(plan, profile, root)
        if ref.available:
            return ref
    return None


def reference_records(plan: str, thesis: dict[str, Any], claims: list[dict[str, Any]],
                      root: str | Path | None = None) -> tuple[str, list[dict[str, Any]], int, int]:
    """The claims scored on the first available reference export of ``plan`` (``REFERENCE_PROFILES``
    order): ``(profile, records, runs, stale runs)``; ``("", [], 0, 0)`` when none is committed."""
    ref = first_reference(plan, root)
    if ref is None:
        return "", [], 0, 0
    return _profile(ref), evaluate_claims(reference_as_results(ref, plan), thesis, claims), len(ref.runs), ref.n_stale


def _profile(ref: ReferenceResults) -> str:
    """The export's profile: its folder's name (``reference/<plan>/<profile>``)."""
    return ref.folder.name


def ladder_records(ref: ReferenceResults, plan: str, thesis: dict[str, Any], claims: list[dict[str, Any]],
                   res: Results | None = None) -> tuple[str, list[tuple[str, str, list[dict[str, Any]]]]]:
    """The claims scored at every rung of the capacity ladder in ``ref`` (:func:`mrseg.scoring.ladder.rung_view`),
    in order of size: ``(own network's description, [(rung, description, records), ...])``; no rungs
    when the export has no scale study. ``res``: the export as results, when already read."""
    res = res if res is not None else reference_as_results(ref, plan)
    present = set(ladder_rungs(res))
    rungs = ladder(plan, _profile(ref), only=present)
    own = next(r for r in rungs if r.own_network)
    return own.description, [(r.label, r.description, evaluate_claims(rung_view(res, r.label), thesis, claims))
                             for r in rungs if not r.own_network and r.label in present]


def add_reference_to_scorecard(folder: str | Path, plan: str, profile: str,
                               root: str | Path | None = None) -> dict[str, Any] | None:
    """Add the reference verdicts and the decision to ``folder/scorecard.json`` (atomically) and
    return the updated scorecard; None (nothing changed) when no scorecard or no export exists.
    (The intro's headline is rendered from it by the scorecard page.)"""
    path = Path(folder) / SCORECARD_JSON
    if not path.exists():
        return None
    ref = first_reference(Path(str(plan)).stem, root)
    if ref is None:
        return None
    thesis, claims = load_thesis_reported(), load_claims()
    ref_profile = _profile(ref)
    ref_res = reference_as_results(ref, plan)
    ref_records = evaluate_claims(ref_res, thesis, claims)
    payload = read_json(path)
    records = payload["claims"]
    attach_reference(records, ref_records, ref_profile, ref.n_stale)
    own, rung_records = ladder_records(ref, plan, thesis, claims, ref_res)
    build = next(r for r in ladder(plan, profile, only=set()) if r.own_network)
    attach_ladder(records, claims, rung_records, build.description, own)
    payload["reference"] = {"profile": ref_profile, "runs": len(ref.runs), "stale_runs": ref.n_stale,
                            "counts": count_verdicts(ref_records), "decision_counts": count_verdicts(records, "decision"),
                            "own_network": own, "rungs": [{"rung": rung, "network": text} for rung, text, _ in rung_records]}
    write_json(path, payload)
    return payload


__all__ = ["add_reference_to_scorecard", "first_reference", "ladder_records", "reference_as_results", "reference_records"]
