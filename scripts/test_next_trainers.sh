#!/usr/bin/env bash
# The SkyRL and OpenRLHF adapter tests, in their Python 3.12 venv (scripts/install_next_trainers.sh
# makes it: a ~3 GB CUDA torch download on first use, then cached in the venv).
# Extra arguments go to pytest. GAPO_VENV312 picks the venv (default .venv312).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${GAPO_VENV312:-.venv312}"

bash scripts/install_next_trainers.sh "$VENV"
if [[ ! -x "$VENV/bin/python" ]]; then
    echo "SKIPPED: SkyRL/OpenRLHF tests: no Python 3.12 venv (see the line above)"
    exit 0
fi
echo "== SkyRL and OpenRLHF tests (Python 3.12)"
# The checkout on PYTHONPATH: Ray workers of the SkyRL test import gapo_kernels from it when
# the compiled build was not possible.
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$VENV/bin/python" -m pytest tests/test_skyrl.py tests/test_openrlhf.py "$@"
