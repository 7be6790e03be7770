#!/usr/bin/env bash
# Install the RL trainer libraries the adapters in gapo_kernels/integrations target
# (verl 0.9.x and TRL 1.x, versions in requirements/trainers.txt) into a virtual environment.
#
#   scripts/install_trainers.sh [VENV]        # VENV defaults to <repo>/.venv
#
# - verl goes in with --no-deps: its metadata pins a CUDA-era torch and vLLM/SGLang stacks; the
#   few packages its core and its PPO trainer module import are listed in
#   requirements/trainers.txt and installed normally.
# - Every pip call uses requirements/constraints.txt, which pins torch==2.13.0, so nothing here
#   can replace the CPU torch the package is built against.
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

# Pinned "name==version" lines of both files (comments and unpinned names dropped).
pins() { sed -e 's/#.*//' -e 's/[[:space:]]//g' "$@" | grep -E '^[A-Za-z0-9_.-]+==' || true; }
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
    say "verl, trl and their pins already installed in $VENV"
    exit 0
fi
rm -f "$STAMP"

PIP=("$PY" -m pip install --disable-pip-version-check --no-input -c "$CONSTRAINTS")

# 1. verl itself, without its declared dependencies.
VERL_PIN="$(pins "$REQ" | grep -iE '^verl==')"
step "installing $VERL_PIN (without its declared dependencies)" "${PIP[@]}" --no-deps "$VERL_PIN"

# 2. Everything else (what verl imports, TRL with its own dependencies), torch held by the
#    constraints file.
TMP_REQ="$(mktemp)"
trap 'rm -f "$TMP_REQ"' EXIT
sed -e 's/#.*//' "$REQ" | grep -viE '^[[:space:]]*verl([=<>! ]|$)' | grep -vE '^[[:space:]]*$' >"$TMP_REQ"
step "installing TRL and what verl imports (requirements/trainers.txt)" "${PIP[@]}" -r "$TMP_REQ"

# 3. Check the result: torch untouched, the trainers and the verl modules the tests use import.
#    (verl's import warnings go to the log; the last line, the versions, is printed.)
check_trainers() {
"$PY" - <<'PYEOF'
import torch
assert torch.__version__.split("+")[0] == "2.13.0", f"torch was changed to {torch.__version__}"
import trl
import verl
from verl.trainer.ppo import core_algos  # noqa: F401
from verl.trainer.ppo.ray_trainer import compute_advantage  # noqa: F401  (what tests/test_verl.py calls)

print(f"verl {verl.__version__}, trl {trl.__version__}, torch {torch.__version__}")
PYEOF
}
step "checking that torch, verl and TRL import" check_trainers
say "$(tail -n 1 "$GAPO_LOG")"
echo "$WANT_STAMP" >"$STAMP"
