#!/usr/bin/env bash
# The SkyRL and OpenRLHF adapter tests, in their own Python 3.12 venv (SkyRL 0.3 needs 3.12).
#
#   scripts/test_next_trainers.sh [PYTEST ARGS...]
#
# Opt-in where the venv does not exist yet: making it (scripts/install_next_trainers.sh) downloads
# about 3.5 GB (torch's CUDA build for 3.12, vLLM) and took 7 minutes on this project's 2-core CI
# machine, too much for the 15-minute CI budget. So:
#   - venv present (GAPO_VENV312, default .venv312): installs what changed, runs the tests;
#   - venv absent: runs only with GAPO_NEXT_TRAINERS=1, else prints a SKIPPED line and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${GAPO_VENV312:-.venv312}"

if [[ ! -x "$VENV/bin/python" && "${GAPO_NEXT_TRAINERS:-0}" != 1 ]]; then
    echo "SKIPPED: SkyRL/OpenRLHF tests: no $VENV; set GAPO_NEXT_TRAINERS=1 to make it (~3.5 GB, ~7 min) and run them"
    exit 0
fi
bash scripts/install_next_trainers.sh "$VENV"
if [[ ! -x "$VENV/bin/python" ]]; then
    echo "SKIPPED: SkyRL/OpenRLHF tests: no Python 3.12 venv (see the line above)"
    exit 0
fi
echo "== SkyRL and OpenRLHF tests (Python 3.12, $VENV)"
# The checkout on PYTHONPATH too, for Ray workers, should the compiled build have failed (the
# editable install takes precedence over it when the build succeeded).
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$VENV/bin/python" -m pytest tests/test_skyrl.py tests/test_openrlhf.py "$@"
