"""What an executed notebook shows in the book: no machine paths, no progress bars, code folded.

:func:`scrub_notebook` rewrites a notebook that papermill has executed, in place (atomically):

- absolute paths of this checkout (the repository root, the runs, results and cache folders) in
  the injected parameters and in text outputs become paths relative to the repository root;
- progress-bar output (stream text drawn with carriage returns or tqdm's ``|###|`` bars) is dropped;
- every code cell without a ``hide-input``/``remove-input``/``remove-cell`` tag gets ``hide-input``,
  so page code is folded by default and one click away.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat

from mrseg.io import atomic_path
from mrseg.paths import REPO_ROOT, cache_dir, results_dir, runs_dir

HIDE_TAGS = {"hide-input", "remove-input", "remove-cell", "hide-cell"}
_BAR = re.compile(r"\r|\d+%\|[^|]*\|")


def _roots() -> list[tuple[str, str]]:
    """(absolute prefix, replacement) pairs, longest first."""

    pairs = {str(REPO_ROOT.resolve()): ".", str(runs_dir().resolve()): "runs",
             str(results_dir().resolve()): "results", str(cache_dir().resolve()): "cache"}
    for path, name in list(pairs.items()):  # the unresolved spellings too
        pairs.setdefault(str(Path(path)), name)
    return sorted(pairs.items(), key=lambda kv: -len(kv[0]))


def relativise(text: str, roots: list[tuple[str, str]] | None = None) -> str:
    """Replace absolute checkout paths in ``text`` by names relative to the repository."""
    for prefix, name in roots or _roots():
        if prefix and prefix != os.sep:
            text = text.replace(prefix + os.sep, "" if name == "." else name + "/").replace(prefix, name)
    return text


def scrub_notebook(path: str | os.PathLike) -> None:
    """Apply the module's three rules to the notebook at ``path`` (in place)."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    roots = _roots()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = set(cell.metadata.get("tags", []))
        if "injected-parameters" in tags or "parameters" in tags:
            cell.source = relativise(cell.source, roots)
        if not tags & HIDE_TAGS:
            cell.metadata["tags"] = [*cell.metadata.get("tags", []), "hide-input"]
        outputs = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                if _BAR.search(out.get("text", "")):
                    continue
                out["text"] = relativise(out["text"], roots)
            elif "data" in out and "text/plain" in out["data"]:
                out["data"]["text/plain"] = relativise(out["data"]["text/plain"], roots)
            outputs.append(out)
        cell.outputs = outputs
    with atomic_path(path) as tmp:
        nbformat.write(nb, tmp)
