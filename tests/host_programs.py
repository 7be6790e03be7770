"""Host C++ programs built from csrc/ for tests: the CUDA code checked without a GPU, and the
CPU sort's standalone self-test.

The CUDA kernel bodies and the launch plan are plain C++ behind a small interface
(csrc/cuda/host_emulation/), so a host compiler builds them into programs the tests drive.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HOST_EMULATION = ROOT / "csrc" / "cuda" / "host_emulation"

# The fused kernel's size classes (csrc/cuda/launch_plan.h), in order: path p serves groups of
# up to CAPACITIES[p] rewards; the path after the last is the sorted-segment (large) path.
CAPACITIES = (4, 8, 16, 32, 64, 128, 256, 512, 1024)


def build_host_program(tmp_path_factory, source: Path, what: str, *flags: str) -> Path:
    """Compiles ``source`` with the host C++ compiler; skips when there is none."""
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if cxx is None:
        pytest.skip(f"no host C++ compiler to build {what}")
    exe = tmp_path_factory.mktemp(source.stem) / source.stem
    build = subprocess.run([cxx, "-std=c++20", "-O1", *flags, f"-I{ROOT / 'csrc'}", str(source), "-o", str(exe)],
                           capture_output=True, text=True)
    assert build.returncode == 0, f"{what} does not compile:\n{build.stderr[-4000:]}"
    return exe
