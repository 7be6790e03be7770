#!/usr/bin/env bash
# Install the RL trainer libraries the adapters in gapo_kernels/integrations target
# (versions in requirements/trainers.txt) into a virtual environment.
#
#   scripts/install_trainers.sh [VENV]        # VENV defaults to <repo>/.venv
#
# - Requirements whose line says "no-deps" (verl, TransferQueue) go in with --no-deps: their
#   metadata pins CUDA-era torch and serving stacks. The packages they import are listed in
#   requirements/trainers.txt and installed normally, in one resolver call.
# - Every pip call uses requirements/constraints.txt, which pins torch, so nothing here can
#   replace the CPU torch the package is built against.
# - One line per step; pip's output goes to $VENV/.gapo-trainers-install.log, printed when a
#   step fails.
# - Idempotent: after a successful install it leaves a stamp in the venv (a hash of both
#   requirement files); when the stamp matches and every pinned distribution is present at its
#   pinned version, the script exits after one Python start, touching nothing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/_log.sh"  # one line per pip step; pip's output in build/logs/trainers.log
log_to trainers
VENV="${1:-$ROOT/.venv}"
PY="$VENV/bin/python"
REQ="$ROOT/requirements/trainers.txt"
CONSTRAINTS="$ROOT/requirements/constraints.txt"
STAMP="$VENV/.gapo-trainers-installed"

if [[ ! -x "$PY" ]]; then
    echo "install_trainers: no Python at $PY (create the venv first)" >&2
    exit 2
fi

# Pinned "name==version" lines of the given files (comments and unpinned names dropped).
pins() { sed -e 's/#.*//' -e 's/[[:space:]]//g' "$@" | grep -E '^[A-Za-z0-9_.-]+==' || true; }
# Requirements of trainers.txt installed without their dependencies, and all the others.
no_deps() { grep -E '#.*\bno-deps\b' "$REQ" | sed -e 's/#.*//' -e 's/[[:space:]]//g' | grep -v '^$' || true; }
with_deps() { grep -vE '#.*\bno-deps\b' "$REQ" | sed -e 's/#.*//' -e 's/[[:space:]]//g' | grep -v '^$' || true; }
WANT_STAMP="$(cat "$REQ" "$CONSTRAINTS" | sha256sum | cut -d' ' -f1)"

# Fast path: the last full install of these very files succeeded, and every pin is still there.
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT_STAMP" ]] && pins "$REQ" "$CONSTRAINTS" | "$PY" -c '
import sys
from importlib.metadata import PackageNotFoundError, version
missing = []
for line in sys.stdin:
    name, want = line.strip().split("==")
    try:
        have = version(name)
    except PackageNotFoundError:
        have = None
    # torch reports "2.13.0+cpu": compare the public part only.
    if have is None or have.split("+")[0] != want:
        missing.append(f"{name}=={want} (have {have})")
if missing:
    print("install_trainers: to install: " + ", ".join(missing))
    sys.exit(1)
'; then
    say "trainers and their pins already installed in $VENV"
    exit 0
fi
rm -f "$STAMP"
PIP=("$PY" -m pip install --disable-pip-version-check --no-input -c "$CONSTRAINTS")
TMP_REQ="$(mktemp)"
trap 'rm -f "$TMP_REQ"' EXIT

# 1. The packages whose declared dependencies we replace by hand.
mapfile -t NO_DEPS < <(no_deps)
step "installing without dependencies: ${NO_DEPS[*]}" "${PIP[@]}" --no-deps "${NO_DEPS[@]}"

# 2. Everything else, in one resolver call, torch held by the constraints file.
with_deps >"$TMP_REQ"
step "installing $(wc -l <"$TMP_REQ") requirements of requirements/trainers.txt" "${PIP[@]}" -r "$TMP_REQ"

# 3. Check the result: torch untouched, the trainers and the verl modules the tests use import.
TORCH_PIN="$(pins "$CONSTRAINTS" | grep -iE '^torch==' | cut -d= -f3)"
CHECK_TRAINERS='
import os

import torch

assert torch.__version__.split("+")[0] == os.environ["TORCH_PIN"], f"torch was changed to {torch.__version__}"
import trl
import verl
from verl.trainer.ppo import core_algos  # noqa: F401
from verl.trainer.ppo.ray_trainer import compute_advantage  # noqa: F401  (the legacy trainer path)
from verl.trainer.ppo.v1 import trainer_base  # noqa: F401  (the default trainer path)

print(f"verl {verl.__version__}, trl {trl.__version__}, torch {torch.__version__}")
'
step "checking that the trainers import" env TORCH_PIN="$TORCH_PIN" "$PY" -c "$CHECK_TRAINERS"
say "$(tail -n 1 "$GAPO_LOG")"
echo "$WANT_STAMP" >"$STAMP"
