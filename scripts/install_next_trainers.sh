#!/usr/bin/env bash
# Install SkyRL 0.3 and OpenRLHF 0.11, the trainers of gapo_kernels/integrations/skyrl.py and
# openrlhf.py, into a Python 3.12 virtual environment, and build gapo_kernels there.
#
#   scripts/install_next_trainers.sh [VENV]       # VENV defaults to <repo>/.venv312
#
# - Python 3.12 is needed (SkyRL 0.3.0 does not import on 3.11): $GAPO_PYTHON312, else
#   python3.12 on PATH, else pyenv's 3.12. Without one the script prints a SKIPPED line and
#   exits 0, and the tests of these trainers skip.
# - torch on 3.12 comes from the registry as its CUDA build (about 3 GB; it runs on the CPU).
# - The trainers and their GPU stacks go in with --no-deps; what importing them needs is pinned in
#   requirements/trainers-next.txt. Every pip call uses requirements/constraints.txt.
# - gapo_kernels is built CPU-only (GAPO_WITH_CUDA=OFF). torch's CMake package insists on finding
#   CUDA for a CUDA torch, through the FindCUDA module that CMake 3.27+ hides behind policy
#   CMP0146; the policy is set OLD for that. If the build still fails (no CUDA toolkit at all),
#   the package is used from the source tree with its pure-PyTorch backend, and this says so.
# - Idempotent: a stamp (hash of the requirement files) skips a completed install of the
#   packages; the gapo_kernels build runs every time (CMake rebuilds only what changed).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-$ROOT/.venv312}"
REQ="$ROOT/requirements/trainers-next.txt"
CONSTRAINTS="$ROOT/requirements/constraints.txt"
STAMP="$VENV/.gapo-next-trainers-installed"

find_python312() {
    local candidate
    for candidate in "${GAPO_PYTHON312:-}" "$(command -v python3.12 || true)" /root/.pyenv/versions/3.12*/bin/python \
        "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python; do
        if [[ -n "$candidate" && -x "$candidate" ]] &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' >/dev/null 2>&1; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

if [[ ! -x "$VENV/bin/python" ]]; then
    if ! PY312="$(find_python312)"; then
        echo "SKIPPED: install_next_trainers: no Python 3.12 found (set GAPO_PYTHON312); SkyRL/OpenRLHF tests will skip"
        exit 0
    fi
    echo "install_next_trainers: creating $VENV with $PY312"
    "$PY312" -m venv "$VENV"
fi
PY="$VENV/bin/python"

no_deps_pins() { sed -n 's/^#[[:space:]]*no-deps:[[:space:]]*//p' "$REQ"; }
WANT_STAMP="$(cat "$REQ" "$CONSTRAINTS" | sha256sum | cut -d' ' -f1)"
PIP=("$PY" -m pip install --disable-pip-version-check --no-input -q -c "$CONSTRAINTS")
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT_STAMP" ]]; then
    echo "install_next_trainers: SkyRL, OpenRLHF and their pins already installed in $VENV"
else
    rm -f "$STAMP"
    "${PIP[@]}" --upgrade pip
    # 1. torch, the build tools and what importing the trainers needs.
    "${PIP[@]}" -r "$REQ"
    # 2. The trainers (and the GPU libraries they import at module level) without their
    #    dependencies; deepspeed is an sdist: DS_BUILD_OPS=0 builds none of its CUDA ops.
    mapfile -t NO_DEPS < <(no_deps_pins)
    DS_BUILD_OPS=0 "${PIP[@]}" --no-deps "${NO_DEPS[@]}"
fi

# 3. gapo_kernels from this checkout, CPU kernels only.
CMAKE_ARGS_NEXT="-DGAPO_WITH_CUDA=OFF -DCMAKE_POLICY_DEFAULT_CMP0146=OLD"
for cuda in "${CUDA_HOME:-}" /usr/local/cuda; do
    if [[ -n "$cuda" && -d "$cuda" ]]; then
        CMAKE_ARGS_NEXT="$CMAKE_ARGS_NEXT -DCUDA_TOOLKIT_ROOT_DIR=$cuda"
        break
    fi
done
if ! (cd "$ROOT" && PATH="$VENV/bin:$PATH" CMAKE_ARGS="$CMAKE_ARGS_NEXT" \
    "$PY" -m pip install -q --disable-pip-version-check --no-build-isolation --no-deps -e .); then
    echo "install_next_trainers: WARNING: building gapo_kernels against torch $("$PY" -c 'import torch; print(torch.__version__)') failed;"
    echo "  scripts/test_next_trainers.sh imports it from the source tree (pure-PyTorch backend, no compiled kernel)"
fi

# 4. Check: torch untouched, the modules the adapters and tests use import.
PYTHONPATH="$ROOT:$ROOT/tests/stubs${PYTHONPATH:+:$PYTHONPATH}" "$PY" - <<'PYEOF'
import importlib.metadata as metadata

import torch

assert torch.__version__.split("+")[0] == "2.13.0", f"torch was changed to {torch.__version__}"
from skyrl.backends.skyrl_train.utils import ppo_utils  # noqa: F401
import openrlhf.cli.train_ppo_ray  # noqa: F401
import openrlhf.trainer.ppo_trainer  # noqa: F401
import gapo_kernels

print(
    f"install_next_trainers: skyrl {metadata.version('skyrl')}, openrlhf {metadata.version('openrlhf')}, "
    f"torch {torch.__version__}, gapo_kernels backends {gapo_kernels.build_info().get('backends')}"
)
PYEOF
echo "$WANT_STAMP" >"$STAMP"
