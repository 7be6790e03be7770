"""benchmarks/quality.py stays runnable: its --quick mode, and the contamination it models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from benchmarks import quality

ROOT = Path(__file__).resolve().parents[1]


def test_quick_run_reports_every_estimator(tmp_path):
    command = [sys.executable, "-m", "benchmarks.quality", "--quick", "--no-plot", "--out", str(tmp_path)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = json.loads((tmp_path / "quality.json").read_text())
    for size in (8, 16):
        for name in quality.ESTIMATORS:
            final = results["bandit"][f"G={size}"][name]["final"]
            assert 0.0 < final <= 1.0, (size, name, final)  # a fraction of the best clean reward
            for rate in (0.1, 0.3):
                cell = results["baselines"][f"G={size} rate={rate}"][name]
                assert 0.0 <= cell["sign_disagreement"] <= 1.0 and cell["baseline_error"] >= 0.0
        # the mean is dragged by the outliers of skewed groups; the median is not (by much)
        cell = results["baselines"][f"G={size} rate=0.3"]
        assert cell["GRPO (mean)"]["baseline_error_skewed"] > 1.5 * cell["median"]["baseline_error_skewed"]


def test_contamination_follows_the_papers_proportions():
    rng = np.random.default_rng(0)
    direction = quality.skew_directions(rng, 200_000)
    assert abs(np.mean(direction == -1) - 0.155) < 0.005 and abs(np.mean(direction == 1) - 0.144) < 0.005
    clean = np.zeros((len(direction), 8))
    rewards = quality.contaminate(rng, clean, direction, rate=0.25)
    moved = rewards != 0
    assert not moved[direction == 0].any()  # clean groups stay clean
    assert (rewards[direction == -1] <= 0).all() and (rewards[direction == 1] >= 0).all()
    assert abs(moved[direction != 0].mean() - 0.25) < 0.01
