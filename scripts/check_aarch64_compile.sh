#!/usr/bin/env bash
# Proves the CPU kernel builds for ARM (aarch64: the SVE, NEON and portable paths) on an x86
# machine: cross-compiles the sort self-test (scripts/sort_selftest.cpp, every path of the
# build against std::sort) with the SVE units (csrc/cpu/sort_sve256.cpp, sort_sve512.cpp,
# each at its vector length as CMakeLists.txt builds them) and the CPU kernel's translation
# unit against torch's headers, with -march=armv8-a. The self-test runs under qemu-aarch64 at
# SVE vector lengths of 128 bits (the sve path is not taken: NEON and portable run), 256 and
# 512 (the sve path at each length, then NEON and portable). Without a cross compiler or qemu-user, they are installed
# with apt-get when this runs as root; without a compiler then, a SKIPPED line and exit 0
# (without qemu, the self-test is compiled but not run, and says so).
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
  for bytes in 16 32 64; do
    echo "   SVE vector length $((bytes * 8)) bits:"
    "$QEMU" -cpu "max,sve-default-vector-length=$bytes" "$OUT/sort_selftest" | sed 's/^/     /'
  done
else
  echo "   compiled (not run: no qemu-aarch64 here)"
fi

echo "== aarch64: CPU kernel (csrc/cpu/advantage_cpu.cpp) against torch's headers"
if ! TORCH_INCLUDES="$("$PYTHON" -c 'from torch.utils.cpp_extension import include_paths; print(" ".join(include_paths()))' 2>/dev/null)"; then
  echo "SKIPPED: cannot import torch with $PYTHON for its headers"
  exit 0
fi
INCLUDES=()
for dir in $TORCH_INCLUDES; do INCLUDES+=(-isystem "$dir"); done
"$CXX" "${FLAGS[@]}" -Wno-unused-parameter -DTORCH_TARGET_VERSION=0x020a000000000000 "${INCLUDES[@]}" \
  -c "$ROOT/csrc/cpu/advantage_cpu.cpp" -o "$OUT/advantage_cpu.o"
echo "   compiled: $(du -k "$OUT/advantage_cpu.o" | cut -f1) KiB object, NEON sort symbols: $(
  "${CXX%g++}nm" -C "$OUT/advantage_cpu.o" 2>/dev/null | grep -c 'gapo::cpu::neon::' || true), SVE sort symbols: $(
  "${CXX%g++}nm" -C "$OUT/sort_sve256.o" "$OUT/sort_sve512.o" 2>/dev/null | grep -c 'gapo::cpu::sve[0-9]*::' || true)"
echo "aarch64 compile check: OK"
