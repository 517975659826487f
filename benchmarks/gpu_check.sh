#!/usr/bin/env bash
# Paper-profile check on one CUDA GPU: trains `shared` and `per-rater` for a few epochs at the
# thesis's configuration (128x128, ResNet-34, batch 12, K = 10) and prints epoch times, peak GPU
# memory and the per-rater/shared step ratio as JSON. Exits 3 with a message when no CUDA GPU is visible.
# Usage: benchmarks/gpu_check.sh [--epochs 2] [--cases 1609] [--amp]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
py="${PYTHON:-}"
if [[ -z "$py" ]]; then
  if [[ -x "$root/.venv/bin/python" ]]; then py="$root/.venv/bin/python"; else py="python3"; fi
fi
cd "$root"
exec "$py" "$here/gpu_check.py" "$@"
