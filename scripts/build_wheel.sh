#!/usr/bin/env bash
# Builds the gapo-kernels wheels: one per CPython, all holding the same ops library.
#
#   scripts/build_wheel.sh                  # CPython 3.10-3.13; CUDA kernels when nvcc is on PATH
#   scripts/build_wheel.sh --cpu            # CPU kernels only
#   scripts/build_wheel.sh --cuda           # CUDA kernels too (needs nvcc): machine code for
#                                           # sm_80 and sm_90, PTX for compute_90
#   scripts/build_wheel.sh --python "3.11 3.12"   # only these CPythons
#   scripts/build_wheel.sh --out DIR        # where the wheels go (default dist/)
#   scripts/build_wheel.sh --torch-env VENV # compile the ops with this venv's torch and Python
#                                           # (e.g. .venv from scripts/setup_env.sh) instead of
#                                           # a build venv with $GAPO_WHEEL_TORCH
#
# How: the ops (lib/libgapo_ops.so) use the LibTorch stable ABI and no Python, so they are
# compiled once, against torch $GAPO_WHEEL_TORCH on CPython $GAPO_WHEEL_TORCH_PYTHON; every
# other CPython's wheel compiles only its pybind11 module around that library
# (GAPO_OPS_LIBRARY, see CMakeLists.txt) and needs no torch. auditwheel then gives each wheel
# its manylinux tag, leaving torch's libraries (libtorch_cpu, libc10) to the installed torch;
# the CUDA runtime is linked statically, so there is nothing of CUDA to leave out.
#
# Build environments are venvs in build/wheel/env-<python> (kept: a re-run reuses them), with
# the tools pinned in requirements/wheel.txt. Interpreters: python3.X on PATH, else pyenv's;
# (or a manylinux image's /opt/python); PYTHON3_10=/path/to/python (and so on) chooses one. Output of pip, CMake and the compilers:
# build/logs/wheel.log, shown when a step fails.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
source scripts/_log.sh
source scripts/_find_python.sh
log_to wheel

PYTHONS="3.10 3.11 3.12 3.13"
OUT="dist"
CUDA="auto"
TORCH_ENV=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --cpu) CUDA="OFF" ;;
    --cuda) CUDA="ON" ;;
    --python) PYTHONS="$(echo ${2//,/ })"; shift ;;  # (echo: no stray spaces)
    --out) OUT="$2"; shift ;;
    --torch-env) TORCH_ENV="$(cd "$2" && pwd)"; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "build_wheel: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [[ "$CUDA" == "auto" ]]; then
  CUDA="$(command -v "${CUDACXX:-nvcc}" >/dev/null 2>&1 && echo ON || echo OFF)"
fi
TORCH_PYTHON="${GAPO_WHEEL_TORCH_PYTHON:-3.11}"
if [[ -n "$TORCH_ENV" ]]; then
  TORCH_PYTHON="$("$TORCH_ENV/bin/python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
fi
TORCH_REQ="${GAPO_WHEEL_TORCH:-$(grep -E '^torch==' requirements/base.txt)}"
WORK="build/wheel"
KIND="$([[ "$CUDA" == "ON" ]] && echo cuda || echo cpu)"
mkdir -p "$WORK" "$OUT"
OUT="$(cd "$OUT" && pwd)"

env_dir() {  # env_dir VERSION: the build venv of that CPython
  if [[ "$1" == "$TORCH_PYTHON" && -n "$TORCH_ENV" ]]; then echo "$TORCH_ENV"; else echo "$ROOT/$WORK/env-$1"; fi
}

make_env() {  # make_env VERSION [EXTRA REQUIREMENT...]: the build venv of that CPython
  local version="$1" env python
  env="$(env_dir "$1")"
  shift
  if [[ ! -x "$env/bin/python" ]]; then
    python="$(find_python "$version")"
    if [[ -z "$python" ]]; then
      echo "build_wheel: no Python $version found: install it (pyenv install $version) or set PYTHON${version//./_}" >&2
      exit 1
    fi
    "$python" -m venv "$env"
    "$env/bin/python" -m pip install --disable-pip-version-check --no-input --upgrade pip  # -C needs pip >= 23.1
  fi
  "$env/bin/python" -m pip install --disable-pip-version-check --no-input -r requirements/wheel.txt "$@"
}

build_one() {  # build_one VERSION: pip wheel into $WORK/raw with that CPython's build venv
  local env
  env="$(env_dir "$1")"
  # The tools of the build venv (cmake, ninja) first on PATH; the venv's own Python builds.
  PATH="$env/bin:$PATH" GAPO_WITH_CUDA="$CUDA" "$env/bin/python" -m pip wheel \
    --disable-pip-version-check --no-input --no-build-isolation --no-deps -w "$WORK/raw" \
    -C "build-dir=build/wheel/$KIND-{wheel_tag}" .
}

repair() {  # repair WHEEL: manylinux tag, with torch's own libraries left to the installed torch
  local env
  env="$(env_dir "$TORCH_PYTHON")"
  PATH="$env/bin:$PATH" "$env/bin/python" -m auditwheel repair --wheel-dir "$OUT" \
    --exclude 'libtorch*.so' --exclude 'libc10*.so' "$1"
}

say "wheels for CPython $PYTHONS, CUDA kernels: $CUDA, ops compiled on CPython $TORCH_PYTHON"
rm -rf "$WORK/raw" "$WORK/ops"
mkdir -p "$WORK/raw" "$WORK/ops"

# 1. The ops library, and the wheel of the CPython that has torch.
if [[ -n "$TORCH_ENV" ]]; then
  step "adding the wheel tools to $TORCH_ENV" make_env "$TORCH_PYTHON"
  TORCH_REQ="torch==$("$TORCH_ENV/bin/python" -c 'import torch; print(torch.__version__)')"
else
  step "preparing the Python $TORCH_PYTHON build environment ($TORCH_REQ)" make_env "$TORCH_PYTHON" "$TORCH_REQ"
fi
start=$SECONDS
step "compiling the ops library against $TORCH_REQ, and the Python $TORCH_PYTHON wheel" build_one "$TORCH_PYTHON"
ops_seconds=$((SECONDS - start))
torch_wheel="$(ls "$WORK"/raw/*.whl)"
step "extracting lib/libgapo_ops.so" unzip -o -j -q "$torch_wheel" 'gapo_kernels/lib/libgapo_ops.so' -d "$WORK/ops"

# 2. The other CPythons: only their pybind11 module, around the same library.
export GAPO_OPS_LIBRARY="$ROOT/$WORK/ops/libgapo_ops.so"
for version in $PYTHONS; do
  [[ "$version" == "$TORCH_PYTHON" ]] && continue
  step "preparing the Python $version build environment" make_env "$version"
  step "building the Python $version wheel (its module only)" build_one "$version"
done
unset GAPO_OPS_LIBRARY

# 3. manylinux tags; the CPythons not asked for are dropped.
for wheel in "$WORK"/raw/*.whl; do
  tag="$(basename "$wheel" | cut -d- -f3)"  # cp311
  if [[ " $PYTHONS " != *" ${tag:2:1}.${tag:3} "* ]]; then continue; fi
  rm -f "$OUT/$(basename "$wheel" | cut -d- -f1-3)"-*.whl
  step "tagging $(basename "$wheel") (auditwheel)" repair "$wheel"
done

say "the ops library's step took ${ops_seconds} s; wheels in ${OUT#"$ROOT"/}:"
for version in $PYTHONS; do
  tag="cp${version/./}"
  wheel="$(ls "$OUT"/*-"$tag"-"$tag"-*.whl 2>/dev/null | head -n 1)"
  [[ -n "$wheel" ]] || { echo "build_wheel: no wheel for CPython $version" >&2; exit 1; }
  say "  $(basename "$wheel") ($(du -h "$wheel" | cut -f1))"
done
