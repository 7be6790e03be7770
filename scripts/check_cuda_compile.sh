#!/usr/bin/env bash
# Compile every CUDA source (csrc/cuda/*.cu) for sm_80 and sm_90a, as CI's proof that the CUDA
# kernels build (CI has no GPU). A compile error exits non-zero. Without nvcc: a SKIPPED line,
# exit 0. The ptxas resource report (registers, shared memory, stack frame, spills) of every
# kernel is printed so register pressure or local-memory use shows in the CI log.
#
#   scripts/check_cuda_compile.sh [PYTHON]      PYTHON: the interpreter whose torch headers to use
#                                               (default: the repository's .venv, else python3)
# Environment:
#   NVCC                  the compiler (default: nvcc on PATH)
#   GAPO_CHECK_ARCHS      gencode targets, default "80 90a"
#   GAPO_CHECK_CUDA_LINK  1: also configure and build both libraries with CMake in a temp dir
#                         with GAPO_WITH_CUDA=ON, proving the CUDA objects link into the ops
#                         library (libgapo_ops.so) and the pybind11 module links against it
#   CMAKE                 the cmake for that (default: cmake on PATH; needs one that knows nvcc's
#                         C++20 flag: 3.25 does not, 3.31 does)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEFAULT_PYTHON="$ROOT/.venv/bin/python"
[[ -x "$DEFAULT_PYTHON" ]] || DEFAULT_PYTHON="python3"
PYTHON="${1:-$DEFAULT_PYTHON}"
NVCC="${NVCC:-nvcc}"
CMAKE="${CMAKE:-cmake}"
ARCHS="${GAPO_CHECK_ARCHS:-80 90a}"

if ! command -v "$NVCC" >/dev/null 2>&1; then
  echo "SKIPPED: CUDA compile check: nvcc not found (set NVCC or put the CUDA toolkit on PATH)"
  exit 0
fi
if ! "$PYTHON" -c "import torch" >/dev/null 2>&1; then
  echo "check_cuda_compile: cannot import torch with $PYTHON" >&2
  exit 1
fi

TORCH_INCLUDES="$("$PYTHON" -c "from torch.utils.cpp_extension import include_paths; print(' '.join(include_paths()))" 2>/dev/null \
  || "$PYTHON" -c "import os, torch; d = os.path.join(os.path.dirname(torch.__file__), 'include'); print(d, os.path.join(d, 'torch/csrc/api/include'))")"
INCLUDE_FLAGS=(-I"$ROOT/csrc")
for dir in $TORCH_INCLUDES; do INCLUDE_FLAGS+=(-I"$dir"); done

GENCODE=()
for arch in $ARCHS; do GENCODE+=("-gencode=arch=compute_${arch},code=sm_${arch}"); done

# The same flags as CMakeLists.txt gives the CUDA sources (stable ABI target 2.10, C++20,
# torch's CUDA headers usable without a CUDA torch's generated config).
FLAGS=(-std=c++20 -O3 -Xcompiler -fPIC --expt-relaxed-constexpr -lineinfo
       -DTORCH_TARGET_VERSION=0x020a000000000000 -DC10_CUDA_NO_CMAKE_CONFIGURE_FILE -DGAPO_WITH_CUDA=1
       -Xptxas -v --threads 2)

CXXFILT="$(dirname "$(command -v "$NVCC")")/cu++filt"
[[ -x "$CXXFILT" ]] || CXXFILT="$(command -v c++filt || echo cat)"

OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
echo "== $("$NVCC" --version | tail -n 1)"
echo "== targets: ${GENCODE[*]}"
status=0
shopt -s nullglob
sources=("$ROOT"/csrc/cuda/*.cu)
if [[ ${#sources[@]} -eq 0 ]]; then
  echo "check_cuda_compile: no csrc/cuda/*.cu sources" >&2
  exit 1
fi
for src in "${sources[@]}"; do
  name="$(basename "$src" .cu)"
  echo "== nvcc ${src#"$ROOT"/}"
  start=$SECONDS
  if ! "$NVCC" "${FLAGS[@]}" "${GENCODE[@]}" "${INCLUDE_FLAGS[@]}" -c "$src" -o "$OUT/$name.o" 2>"$OUT/$name.log"; then
    grep -v '^ptxas info' "$OUT/$name.log" >&2 || true
    echo "FAILED: $src does not compile" >&2
    status=1
    continue
  fi
  grep -v '^ptxas info\|^    [0-9]* bytes stack frame' "$OUT/$name.log" || true  # warnings, if any
  echo "   compiled in $((SECONDS - start)) s"
  # Resource report: one line per kernel and target.
  awk '
    /Compiling entry function/ { fn = $0; sub(/.*function ./, "", fn); sub(/. for .*/, "", fn);
                                 arch = $0; sub(/.* for ./, "", arch); sub(/.$/, "", arch) }
    /bytes stack frame/ { stack = $1; spill_st = $5; spill_ld = $9 }
    /Used [0-9]+ registers/ { regs = $5; smem = "0"; line = $0;
                              if (line ~ /bytes smem/) { sub(/ bytes smem.*/, "", line); sub(/.* /, "", line); smem = line }
                              printf "%s\t%s\t%s\t%s\t%s/%s\t%s\n", arch, regs, smem, stack, spill_st, spill_ld, fn }
  ' "$OUT/$name.log" >"$OUT/$name.res"
  printf '   %-7s %5s %7s %6s %9s  %s\n' arch regs smem stack spills kernel
  while IFS=$'\t' read -r arch regs smem stack spills fn; do
    pretty="$(echo "$fn" | "$CXXFILT" | sed -e 's/gapo::team:://g' -e 's/(gapo::team::KernelArgs<.*//' -e 's/(.*//' | cut -c1-110)"
    printf '   %-7s %5s %7s %6s %9s  %s\n' "$arch" "$regs" "$smem" "$stack" "$spills" "$pretty"
  done <"$OUT/$name.res"
  local_mem="$(awk -F'\t' '$4 != 0 || $5 != "0/0" { print $1 " " $6 }' "$OUT/$name.res" | "$CXXFILT" | cut -c1-100 | sort -u)"
  if [[ -n "$local_mem" ]]; then
    echo "   note: kernels with a stack frame or spills (local memory):"
    echo "$local_mem" | sed 's/^/     /'
  fi
done

if [[ "${GAPO_CHECK_CUDA_LINK:-0}" == "1" && $status -eq 0 ]]; then
  echo "== CMake build with GAPO_WITH_CUDA=ON (link check)"
  BUILD="$OUT/cmake-build"
  archs_cmake="$(echo "$ARCHS" | tr ' ' ';')"
  if ! "$CMAKE" -S "$ROOT" -B "$BUILD" -DGAPO_WITH_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$archs_cmake" \
      -DPython_EXECUTABLE="$PYTHON" -Dpybind11_DIR="$("$PYTHON" -m pybind11 --cmakedir)" >"$OUT/cmake.log" 2>&1 \
    || ! "$CMAKE" --build "$BUILD" -j 2 >>"$OUT/cmake.log" 2>&1; then
    tail -n 40 "$OUT/cmake.log" >&2
    echo "FAILED: the CUDA-enabled CMake build does not configure, compile or link" >&2
    status=1
  else
    lib="$(find "$BUILD" -name 'libgapo_ops.so' | head -n 1)"
    if [[ -z "$lib" ]]; then
      echo "FAILED: the CMake build produced no libgapo_ops.so" >&2
      status=1
    else
      echo "   linked: ${lib#"$BUILD"/} ($(du -h "$lib" | cut -f1))"
    fi
  fi
fi

if [[ $status -eq 0 ]]; then
  echo "OK: CUDA sources compile for: $ARCHS"
fi
exit $status
