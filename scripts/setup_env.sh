#!/usr/bin/env bash
# Sets up everything on a fresh machine: a virtual environment in .venv (or $GAPO_VENV) with
# the development torch (pinned in requirements/base.txt for reproducible results; the package
# itself works with any torch >= 2.10) and the build/test tools, then builds gapo_kernels (C++
# and, where a CUDA toolkit and a CUDA torch exist, CUDA) and installs it in editable mode.
# Safe to re-run: pip skips what is installed and CMake rebuilds only what changed.
#
# Prints one line per step; pip's and the compiler's output go to build/logs/setup.log, which
# is shown when a step fails (GAPO_VERBOSE=1 shows it as it runs).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_log.sh
log_to setup
VENV="${GAPO_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check --no-input)

if [ ! -x "$VENV/bin/python" ]; then
  step "creating $VENV with $("$PYTHON" --version 2>&1)" "$PYTHON" -m venv "$VENV"
  step "upgrading pip" "${PIP[@]}" install --upgrade pip
fi
step "installing torch and the build and test tools (requirements/base.txt)" \
  "${PIP[@]}" install -r requirements/base.txt -c requirements/constraints.txt
# --no-build-isolation: build against the torch in the venv, never a freshly downloaded one.
step "building gapo_kernels and installing it (editable)" \
  "${PIP[@]}" install --no-build-isolation --no-deps -e .
say "$("$VENV/bin/python" - <<'EOF'
import gapo_kernels, torch
info = gapo_kernels.build_info()
cuda = f"CUDA {info['cuda_archs']}" if info["cuda_archs"] else "no CUDA kernels"
print(f"gapo_kernels {gapo_kernels.__version__}: backends {', '.join(info['backends'])} ({cuda}), torch {torch.__version__}")
EOF
)"
