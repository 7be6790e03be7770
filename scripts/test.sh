#!/usr/bin/env bash
# The README's test command: set up, prove the CUDA sources compile, run every test.
# Extra arguments go to pytest (e.g. scripts/test.sh -k triton).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${GAPO_VENV:-.venv}"

bash scripts/setup_env.sh
bash scripts/install_trainers.sh "$VENV"
echo "== CUDA compile check"
bash scripts/check_cuda_compile.sh "$VENV/bin/python"
echo "== aarch64 compile check"
bash scripts/check_aarch64_compile.sh "$VENV/bin/python"
echo "== tests"
"$VENV/bin/python" -m pytest "$@"
