#!/usr/bin/env bash
# Sets up everything on a fresh machine: a virtual environment in .venv (or $GAPO_VENV) with
# the pinned torch and the build/test tools, then builds gapo_kernels (C++ and, where a CUDA
# toolkit and a CUDA torch exist, CUDA) and installs it in editable mode. Safe to re-run:
# pip skips what is installed and CMake rebuilds only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${GAPO_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
echo "== installing build and test requirements"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -r requirements/base.txt -c requirements/constraints.txt
echo "== building and installing gapo_kernels"
# --no-build-isolation: build against the torch in the venv, never a freshly downloaded one.
"$VENV/bin/python" -m pip install -q --no-build-isolation --no-deps -e .
"$VENV/bin/python" -c "import gapo_kernels as g; print('gapo_kernels', g.__version__, g.build_info())"
