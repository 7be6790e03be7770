#!/usr/bin/env bash
# Proves the CPU kernel builds for ARM (aarch64: the SVE, NEON and portable paths) on an x86
# machine, in two steps:
#   1. the sort self-test (scripts/sort_selftest.cpp: every path of the build against
#      std::sort) with the SVE units (csrc/cpu/sort_sve256.cpp, sort_sve512.cpp, each at its
#      vector length), -march=armv8-a, run under qemu-aarch64: NEON and portable at an SVE
#      vector length of 128 bits (where the sve path is not taken), the sve path at 256 and
#      512;
#   2. the ops library's sources through CMakeLists.txt itself, against torch's headers.
# Without a cross compiler or qemu-user, they are installed with apt-get when this runs as
# root; without a compiler then, a SKIPPED line and exit 0 (without qemu, the self-test is
# compiled but not run, and says so).
#
#   scripts/check_aarch64_compile.sh [PYTHON]   PYTHON: the interpreter whose torch headers to use
#                                              (default: python3 on PATH)
# Environment:  CXX_AARCH64  the cross compiler (default aarch64-linux-gnu-g++)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${1:-python3}"
CXX="${CXX_AARCH64:-aarch64-linux-gnu-g++}"

if ! command -v "$CXX" >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing g++-aarch64-linux-gnu (apt-get; log in /tmp/gapo_apt_aarch64.log)"
    if ! { apt-get update -q && apt-get install -y -q g++-aarch64-linux-gnu; } >/tmp/gapo_apt_aarch64.log 2>&1; then
      echo "SKIPPED: aarch64 compile check: apt-get could not install g++-aarch64-linux-gnu (see /tmp/gapo_apt_aarch64.log)"
      exit 0
    fi
  else
    echo "SKIPPED: aarch64 compile check: $CXX not found and apt-get is not usable here (not root or no apt)"
    exit 0
  fi
fi

OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
FLAGS=(-std=c++20 -O2 -march=armv8-a -ffp-contract=off -Wall -Wextra -Werror -I"$ROOT/csrc" -DGAPO_WITH_SVE=1)

# Step 2, the ops library's sources through the project's own build: its aarch64 flags, its
# SVE detection and the per-unit vector lengths. The objects are linked into a shared library
# without libtorch (an x86 build here), which proves that every symbol of the kernel resolves
# but torch's. It runs in the background beside step 1 (2 cores: about a minute saved).
build_with_cmake() {
  BIN="$(dirname "$(command -v "$PYTHON")")"
  BIN="$(cd "$BIN" && pwd)"  # absolute: CMake runs the tools from other directories
  CMAKE="$(command -v "$BIN/cmake" || command -v cmake || true)"
  # Ninja: its object targets (CMakeFiles/<target>.dir/<source>.o) build one object each.
  NINJA="$(command -v "$BIN/ninja" || command -v ninja || true)"
  if [ -z "$CMAKE" ] || [ -z "$NINJA" ] || ! "$PYTHON" -c 'import torch, pybind11' 2>/dev/null; then
    echo "SKIPPED: aarch64 CMake build: needs cmake, ninja and a Python with torch and pybind11 ($PYTHON)"
    exit 0
  fi
  PATH="$BIN:$PATH" "$CMAKE" -S "$ROOT" -B "$OUT/cmake" -G Ninja -DCMAKE_MAKE_PROGRAM="$NINJA" -DCMAKE_SYSTEM_NAME=Linux \
    -DCMAKE_SYSTEM_PROCESSOR=aarch64 -DCMAKE_CXX_COMPILER="$CXX" -DCMAKE_CXX_FLAGS=-Werror -DGAPO_WITH_CUDA=OFF \
    -DPython_EXECUTABLE="$PYTHON" -DPython_INCLUDE_DIR="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')" \
    -Dpybind11_DIR="$("$PYTHON" -c 'import pybind11; print(pybind11.get_cmake_dir())')" >"$OUT/cmake.log" 2>&1 ||
    { cat "$OUT/cmake.log"; echo "aarch64 CMake configure failed"; exit 1; }
  grep "gapo_kernels:" "$OUT/cmake.log" | sed 's/^-- /   /'
  OBJECTS=()
  for src in csrc/ops.cpp csrc/build_info.cpp "$ROOT"/csrc/cpu/*.cpp; do
    OBJECTS+=("CMakeFiles/gapo_ops.dir/${src#"$ROOT"/}.o")
  done
  PATH="$BIN:$PATH" "$CMAKE" --build "$OUT/cmake" -j 2 --target "${OBJECTS[@]}" >"$OUT/build.log" 2>&1 ||
    { cat "$OUT/build.log"; echo "aarch64 build failed"; exit 1; }
  (cd "$OUT/cmake" && "$CXX" -shared -o "$OUT/libgapo_ops_aarch64.so" "${OBJECTS[@]}")
  local symbols
  symbols="$("${CXX%g++}nm" -C "$OUT/libgapo_ops_aarch64.so" 2>/dev/null || true)"
  echo "   built and linked (without libtorch): $(du -k "$OUT/libgapo_ops_aarch64.so" | cut -f1) KiB, NEON sort symbols: $(
    grep -c 'gapo::cpu::neon::' <<<"$symbols" || true), SVE sort symbols: $(grep -c 'gapo::cpu::sve[0-9]*::' <<<"$symbols" || true)"
}
build_with_cmake >"$OUT/cmake_step.log" 2>&1 &
CMAKE_STEP=$!

echo "== aarch64: sort self-test ($("$CXX" --version | head -1))"
for bits in 256 512; do
  "$CXX" "${FLAGS[@]}" -msve-vector-bits=$bits -c "$ROOT/csrc/cpu/sort_sve$bits.cpp" -o "$OUT/sort_sve$bits.o"
done
"$CXX" "${FLAGS[@]}" -static "$ROOT/scripts/sort_selftest.cpp" "$OUT/sort_sve256.o" "$OUT/sort_sve512.o" -o "$OUT/sort_selftest"
# The NEON sort runs only under emulation here: qemu-user is installed like the compiler.
if ! command -v qemu-aarch64 >/dev/null 2>&1 && ! command -v qemu-aarch64-static >/dev/null 2>&1 &&
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "   installing qemu-user (apt-get; log in /tmp/gapo_apt_qemu.log)"
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q qemu-user; } >/tmp/gapo_apt_qemu.log 2>&1 ||
    echo "   apt-get could not install qemu-user (see /tmp/gapo_apt_qemu.log)"
fi
QEMU="$(command -v qemu-aarch64 || command -v qemu-aarch64-static || true)"
if [ -n "$QEMU" ]; then
  # NEON and portable once, at 128 bits (where the sve path is not taken); then the sve path
  # at each length it is built for.
  for run in "16 neon scalar" "32 sve" "64 sve"; do
    read -r bytes paths <<<"$run"
    echo "   SVE vector length $((bytes * 8)) bits ($paths):"
    # shellcheck disable=SC2086  # paths: one argument per name
    "$QEMU" -cpu "max,sve-default-vector-length=$bytes" "$OUT/sort_selftest" $paths | sed 's/^/     /'
  done
else
  echo "   compiled (not run: no qemu-aarch64 here)"
fi

echo "== aarch64: the ops library's sources, built by CMakeLists.txt (cross-compiled, -Werror)"
if ! wait "$CMAKE_STEP"; then
  cat "$OUT/cmake_step.log"
  echo "aarch64 CMake build failed"
  exit 1
fi
cat "$OUT/cmake_step.log"
echo "aarch64 compile check: OK"
