#!/usr/bin/env bash
# The README's main-job command: set up (or refresh) the environment, then run the whole
# benchmark suite on its built-in data and print the table and the CPU targets.
#
#   scripts/bench.sh                 # full suite (a few minutes on 2 cores)
#   scripts/bench.sh --quick         # smoke run; any other flag goes to `python -m benchmarks.run`
#
# Results: benchmarks/results/results.json and benchmarks/results/size_sweep.png.
# GAPO_BENCH_NO_TRAINERS=1 skips installing verl (its GRPO contender is then skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${GAPO_VENV:-.venv}"

# 1. venv with the pinned torch, gapo_kernels built and installed (editable).
bash scripts/setup_env.sh
# 2. what the suite needs on top (matplotlib), torch held by the constraints.
echo "== installing benchmark requirements"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r requirements/bench.txt -c requirements/constraints.txt
# 3. verl for the verl_grpo_vectorized contender (optional: the suite skips it without verl).
if [ "${GAPO_BENCH_NO_TRAINERS:-0}" != "1" ]; then
  bash scripts/install_trainers.sh "$VENV" \
    || echo "== bench: installing verl failed; verl_grpo_vectorized will be skipped" >&2
fi
# 4. the suite.
echo "== running the benchmark suite"
exec "$VENV/bin/python" -m benchmarks.run "$@"
