#!/usr/bin/env bash
# The README's main-job command: set up (or refresh) the environment, then run the whole
# benchmark suite on its built-in data and print the table and the CPU targets.
#
#   scripts/bench.sh                 # full suite (a few minutes on 2 cores)
#   scripts/bench.sh --quick         # smoke run; any other flag goes to `python -m benchmarks.run`
#
# Results: benchmarks/results/results.json and benchmarks/results/size_sweep.png.
# GAPO_BENCH_NO_TRAINERS=1 skips installing verl (its GRPO contender is then skipped).
#
# Set-up prints one line per step; pip's output is in build/logs/bench.log (shown on failure).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_log.sh
log_to bench
VENV="${GAPO_VENV:-.venv}"

# 1. venv with the pinned torch, gapo_kernels built and installed (editable).
bash scripts/setup_env.sh
# 2. what the suite needs on top (matplotlib), torch held by the constraints.
step "installing the benchmark requirements (requirements/bench.txt)" \
  "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -r requirements/bench.txt -c requirements/constraints.txt
# 3. verl for the verl_grpo_vectorized contender (optional: the suite skips it without verl).
if [ "${GAPO_BENCH_NO_TRAINERS:-0}" != "1" ]; then
  if ! bash scripts/install_trainers.sh "$VENV"; then
    say "installing verl failed (see above); the verl_grpo_vectorized contender will be skipped"
  fi
fi
# 4. the suite.
say "running the benchmark suite"
exec "$VENV/bin/python" -m benchmarks.run "$@"
