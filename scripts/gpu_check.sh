#!/usr/bin/env bash
# One prepared check of the CUDA and Triton backends on a borrowed GPU, in one call of at most
# ~8 minutes: builds the package there, then smoke tests, no-sync and CUDA-graph checks,
# timings, compute-sanitizer and the GPU tests, each step time-boxed. Writes report.json,
# summary.md and logs/ into OUTDIR. Without a GPU it says so, checks that it can plan its
# steps, and exits 0. Details: scripts/gpu_check.py.
#
#   bash scripts/gpu_check.sh OUTDIR [--budget SECONDS] [--only STEP,STEP]
# Environment: PYTHON (default python3), GAPO_CUDA_ARCH (default 90), GPU_CHECK_BUDGET (440).
set -uo pipefail
if [[ $# -lt 1 ]]; then
  echo "usage: bash scripts/gpu_check.sh OUTDIR [--budget SECONDS] [--only STEP,STEP]" >&2
  exit 2
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
export GAPO_CUDA_ARCH="${GAPO_CUDA_ARCH:-90}"
mkdir -p "$1"
exec "$PYTHON" -u "$ROOT/scripts/gpu_check.py" "$@" 2>&1 | tee "$1/gpu_check.log"
