"""scripts/gpu_check.sh without a GPU: it says so, plans its steps, builds its inputs, exits 0.

(On a GPU machine the script runs the whole check for minutes; this test is for the CPU path.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU the script runs the full check (minutes)")
def test_gpu_check_without_a_gpu_plans_and_exits_0(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable)
    env.pop("GPU_CHECK_FORCE", None)
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), str(tmp_path)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "no CUDA device is visible" in done.stdout
    for step in ("build", "smoke", "capture", "timings", "sanitizer", "pytest"):
        assert step in done.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["gpu"] is None and report["problems"] == [], report["problems"]
    assert (tmp_path / "summary.md").read_text().startswith("# gapo_kernels GPU check")
