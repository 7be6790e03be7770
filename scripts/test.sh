#!/usr/bin/env bash
# The README's test command: set up, prove the CUDA sources compile, run every test, then
# install the wheel unchanged beside another torch than the one it was built with and run the
# reference tests there.
#
#   scripts/test.sh               # everything (CI runs exactly this)
#   scripts/test.sh -k triton     # arguments go to pytest; the wheel check is then left out
#
# GAPO_TEST_COMPAT="3.11:torch==2.14.1" picks the wheel check's environment (see
# scripts/compat.sh); GAPO_TEST_COMPAT=none leaves it out. Set-up prints one line per step;
# pip's output is in build/logs/test.log, shown when a step fails.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_log.sh
log_to test
VENV="${GAPO_VENV:-.venv}"
# torch 2.11.0 is the oldest torch pinned by a trainer we support (verl 0.9.1), and it brings
# the oldest triton we support (3.6): the build's torch is 2.13.0 with triton 3.7.1. (numpy
# below 2.4 for triton 3.6's interpreter: see scripts/compat.sh.)
COMPAT_ENV="${GAPO_TEST_COMPAT:-3.11:torch==2.11.0:numpy<2.4}"
[[ $# -eq 0 ]] || COMPAT_ENV="none"

bash scripts/setup_env.sh
bash scripts/install_trainers.sh "$VENV"
# matplotlib: the report's and the benchmarks' PNGs are drawn and looked at in the tests too.
step "installing the plotting requirements (requirements/bench.txt)" \
  "$VENV/bin/python" -m pip install --disable-pip-version-check -r requirements/bench.txt -c requirements/constraints.txt
echo "== CUDA compile check"
bash scripts/check_cuda_compile.sh "$VENV/bin/python"
echo "== aarch64 compile check"
bash scripts/check_aarch64_compile.sh "$VENV/bin/python"
echo "== tests"
"$VENV/bin/python" -m pytest "$@"
echo "== SkyRL and OpenRLHF (Python 3.12 venv)"
bash scripts/test_next_trainers.sh
if [[ "$COMPAT_ENV" != "none" ]]; then
  echo "== the wheel beside another torch"
  bash scripts/compat.sh --cpu --torch-env "$VENV" "$COMPAT_ENV"
fi
