#!/usr/bin/env bash
# The compatibility matrix: builds the wheels once, then, for each environment in the list,
# makes a fresh venv with that CPython, installs that torch (and triton) and the wheel as
# built (no rebuild), and runs the tests that compare every backend with the reference there.
#
#   scripts/compat.sh                        # the matrix below
#   scripts/compat.sh 3.12:torch==2.11.0     # chosen environments: PYTHON:REQUIREMENT[:REQUIREMENT...]
#   scripts/compat.sh --wheels DIR ...       # use wheels built already (scripts/build_wheel.sh --out DIR)
#   scripts/compat.sh --cpu ...              # build CPU-only wheels (default: CUDA ones where nvcc exists)
#   scripts/compat.sh --torch-env VENV ...   # compile the ops with that venv's torch (build_wheel.sh)
#   scripts/compat.sh --from-source ...      # no wheel: `pip install --no-build-isolation .` in
#                                            # each environment, against its own torch
#
# Tests (GAPO_COMPAT_TESTS overrides): the property tests of the cpu, torch and triton backends
# against the reference (Triton under its interpreter without a GPU; with a GPU the cuda
# backend's too), the errors, opcheck and torch.compile. They run from a copy of tests/, so the
# package under test is the installed wheel, never the source tree.
#
# Downloads go through pip's cache (~/.cache/pip), so only the first run of an environment
# downloads its torch; each venv is made anew (and removed when the next one is made). One
# line per step and per environment; the full output is in build/logs/compat.log; the results,
# one line per environment, in build/compat/results.txt. An environment is not run, and says
# so, when the disk has less than GAPO_COMPAT_MIN_FREE_GIB (default 10) GiB free. Exit status:
# non-zero when any environment failed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
source scripts/_log.sh
log_to compat

# PYTHON:REQUIREMENTS. torch 2.13.0 (CPU) and 2.14.1 (CUDA 13 build, runs on the CPU) lie on
# this project's machines; 2.11.0 is verl 0.9.1's pin and the GPU machines' torch (a download of
# about 3 GB with its CUDA libraries). torch's own triton comes with each CUDA build; the CPU
# build brings none, so that environment names it.
# Triton 3.6's interpreter turns a 1-element array into a Python int, which numpy >= 2.4
# refuses; on a GPU the kernels are compiled and numpy plays no part, so the torch 2.11
# environments hold numpy below 2.4 to run the Triton kernels on the CPU at all.
MATRIX=(
  "3.11:torch==2.13.0:triton==3.7.1"
  "3.11:torch==2.14.1"
  "3.12:torch==2.11.0:numpy<2.4"
)
TESTS="${GAPO_COMPAT_TESTS:-tests/test_triton.py tests/test_advantage.py tests/test_errors.py tests/test_ops.py tests/test_large.py}"
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  TESTS="$TESTS tests/test_cuda.py"
fi

WHEELS=""
FROM_SOURCE=0
BUILD_ARGS=()
ENVS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --wheels) WHEELS="$2"; shift ;;
    --from-source) FROM_SOURCE=1 ;;
    --cpu|--cuda) BUILD_ARGS+=("$1") ;;
    --torch-env) BUILD_ARGS+=("$1" "$2"); shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *:*) ENVS+=("$1") ;;
    *) echo "compat: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ ${#ENVS[@]} -gt 0 ]] || ENVS=("${MATRIX[@]}")

MIN_FREE_GIB="${GAPO_COMPAT_MIN_FREE_GIB:-10}"
if ! [[ "$MIN_FREE_GIB" =~ ^[0-9]+$ ]]; then
  echo "compat: GAPO_COMPAT_MIN_FREE_GIB must be a whole number of GiB, got '$MIN_FREE_GIB'" >&2
  exit 2
fi
WORK="${GAPO_COMPAT_WORK:-$ROOT/build/compat}"  # another folder lets two runs go side by side
mkdir -p "$WORK"
if [[ $FROM_SOURCE -eq 1 ]]; then
  WHEELS="$WORK"  # unused
elif [[ -z "$WHEELS" ]]; then
  WHEELS="$WORK/dist"
  pythons="$(for env in "${ENVS[@]}"; do echo "${env%%:*}"; done | sort -uV | tr '\n' ' ')"
  bash scripts/build_wheel.sh "${BUILD_ARGS[@]}" --python "$pythons" --out "$WHEELS"
fi
WHEELS="$(cd "$WHEELS" && pwd)"

source scripts/_find_python.sh

run_env() {  # run_env PYTHON:REQ[:REQ...]; prints its summary line, returns non-zero on failure
  local spec="$1" version reqs name venv python wheel tag run_dir start versions summary status
  version="${spec%%:*}"
  IFS=: read -r -a reqs <<<"${spec#*:}"
  name="py$version-$(echo "${reqs[*]}" | tr -c 'A-Za-z0-9.\n' '_')"
  venv="$WORK/venv-$name"
  tag="cp${version/./}"
  wheel="$(ls "$WHEELS"/*-"$tag"-"$tag"-*.whl 2>/dev/null | head -n 1 || true)"
  if [[ $FROM_SOURCE -eq 0 && -z "$wheel" ]]; then
    say "$spec: FAILED: no $tag wheel in $WHEELS"
    return 1
  fi
  python="$(find_python "$version")"
  if [[ -z "$python" ]]; then
    say "$spec: FAILED: no Python $version (install it with pyenv, or set PYTHON${version//./_})"
    return 1
  fi
  start=$SECONDS
  rm -rf "$WORK"/venv-*  # the last environment's venv stays until the next run, for a look
  # A CUDA build of torch with its libraries takes about 6 GiB installed, and pip holds its
  # downloads (about 2.5 GiB) at the same time: on a fuller disk the install would die half
  # way with ENOSPC, so the environment is reported as not run instead, with the reason.
  # (An unreadable free space counts as enough: the install then says what went wrong.)
  local free_gib
  free_gib="$(df -Pk "$WORK" 2>/dev/null | awk 'NR == 2 { print int($4 / 1048576) }' || true)"
  if [[ "$free_gib" =~ ^[0-9]+$ && "$free_gib" -lt "$MIN_FREE_GIB" ]]; then
    say "$spec: NOT RUN: $free_gib GiB free under ${WORK#"$ROOT"/}, and an environment needs about $MIN_FREE_GIB GiB (GAPO_COMPAT_MIN_FREE_GIB); free some disk and run: scripts/compat.sh '$spec'"
    echo "$spec|not run|NOT RUN: $free_gib GiB free, $MIN_FREE_GIB GiB needed" >>"$WORK/results.txt"
    return 0
  fi
  step "$spec: fresh venv, ${reqs[*]}" \
    pip_in_new_venv "$python" "$venv" "${reqs[@]}"
  run_dir="$WORK/run-$name"
  rm -rf "$run_dir"
  mkdir -p "$run_dir"
  if [[ $FROM_SOURCE -eq 1 ]]; then
    step "$spec: building gapo_kernels from source against that torch" build_from_source "$venv" "$run_dir/build"
  else
    step "$spec: installing $(basename "$wheel") and the test tools" \
      "$venv/bin/python" -m pip install --disable-pip-version-check --no-input "$wheel" "pytest>=8" "hypothesis>=6.100"
  fi
  cp -r tests "$run_dir/"
  # Sources some tests read as text (the C++ enums, the Triton resource tool); no Python package
  # among them, so the installed wheel is still the gapo_kernels that is imported.
  mkdir -p "$run_dir/csrc" "$run_dir/scripts"
  cp -r csrc/gapo "$run_dir/csrc/"
  cp scripts/triton_resource_usage.py "$run_dir/scripts/"
  cp pyproject.toml "$run_dir/"  # pytest's settings (markers)
  # From the copy's folder, where no gapo_kernels source tree can shadow the installed wheel.
  if ! versions="$(cd "$run_dir" && "$venv/bin/python" - 2>>"$GAPO_LOG" <<'EOF'
import importlib.metadata as md, platform, sys, torch, gapo_kernels
assert "site-packages" in gapo_kernels.__file__, f"testing the source tree, not the wheel: {gapo_kernels.__file__}"
try:
    triton = md.version("triton")
except md.PackageNotFoundError:
    triton = "none"
info = gapo_kernels.build_info()
print(f"python {platform.python_version()}, torch {torch.__version__}, triton {triton}, "
      f"numpy {md.version('numpy')}, backends {'+'.join(info['backends'])}")
EOF
  )"; then
    say "$spec: FAILED: the installed wheel does not import (see ${GAPO_LOG#"$ROOT"/})"
    return 1
  fi
  echo "### $spec: $versions" >>"$GAPO_LOG"
  status=0
  (cd "$run_dir" && "$venv/bin/python" -m pytest -q -p no:cacheprovider $TESTS) >"$run_dir/pytest.log" 2>&1 || status=$?
  cat "$run_dir/pytest.log" >>"$GAPO_LOG"
  summary="$(tail -n 1 "$run_dir/pytest.log" | sed -e 's/^=* *//' -e 's/ *=*$//')"
  if [[ $status -ne 0 ]]; then
    say "$spec: FAILED ($versions): $summary"
    echo "$spec|$versions|FAILED: $summary" >>"$WORK/results.txt"
    grep -E '^(FAILED|ERROR)' "$run_dir/pytest.log" | head -n 20 | sed 's/^/    /'
    return 1
  fi
  say "$spec: ok ($versions): $summary, $((SECONDS - start)) s in all"
  echo "$spec|$versions|$summary$([[ $FROM_SOURCE -eq 1 ]] && echo ' (built from source)')" >>"$WORK/results.txt"
}

build_from_source() {  # build_from_source VENV BUILD_DIR: pip install --no-build-isolation .
  local venv="$1"
  "$venv/bin/python" -m pip install --disable-pip-version-check --no-input -r requirements/wheel.txt \
    "pytest>=8" "hypothesis>=6.100" "numpy>=1.24"
  PATH="$venv/bin:$PATH" "$venv/bin/python" -m pip install --disable-pip-version-check --no-input \
    --no-build-isolation --no-deps -C "build-dir=$2" "$ROOT"
}

pip_in_new_venv() {  # pip_in_new_venv PYTHON VENV REQ...: a fresh venv with those requirements
  local python="$1" venv="$2"
  shift 2
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --disable-pip-version-check --no-input --upgrade pip
  "$venv/bin/python" -m pip install --disable-pip-version-check --no-input "$@"
}

: >"$WORK/results.txt"
failed=0
for env in "${ENVS[@]}"; do
  # Each environment in a subshell with errexit on: a failed step ends that environment only.
  set +e
  (set -e; run_env "$env")
  [[ $? -eq 0 ]] || failed=$((failed + 1))
  set -e
done
# Too little disk: said above and recorded as "not run", neither passed nor failed.
not_run="$(grep -c '|not run|' "$WORK/results.txt" || true)"
say "$((${#ENVS[@]} - failed - not_run)) of ${#ENVS[@]} environments passed, $failed failed, $not_run not run (results: ${WORK#"$ROOT"/}/results.txt, log: ${GAPO_LOG#"$ROOT"/})"
[[ $failed -eq 0 ]]
