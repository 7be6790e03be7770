"""python -m gapo_kernels.report on logs written the way verl 0.9.1 writes them, and on tables."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import gapo_kernels
from gapo_kernels import RewardShape
from gapo_kernels.report import format_table, load_rewards, main, summarise

ROOT = Path(__file__).resolve().parents[1]


def write_verl_dump(directory: Path, steps: int, prompts: int, rollouts: int, seed: int = 0) -> dict:
    """A trainer.rollout_data_dir as verl 0.9.1's RayPPOTrainer._write_generations writes it.

    One ``<step>.jsonl`` per step; each line is json.dumps({input, output, gts, score, step,
    <reward extras of length n>}, ensure_ascii=False, default=str), in that key order. Returns
    the rewards by (step, prompt) for checking.
    """
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    truth = {}
    for step in range(1, steps + 1):
        inputs, outputs, gts, scores, acc = [], [], [], [], []
        for p in range(prompts):
            prompt = f"system\nFix the bug in function_{p}() — «ünïcode» {p}\nuser\n"
            kind = p % 4
            if kind == 0:  # a tight cluster with a failed rollout: left-skewed
                rewards = np.clip(rng.normal(0.8, 0.03, rollouts), 0, 1)
                rewards[0] = 0.0
            elif kind == 1:  # mostly failing, one success: right-skewed
                rewards = np.clip(rng.normal(0.1, 0.03, rollouts), 0, 1)
                rewards[-1] = 1.0
            elif kind == 2:
                rewards = rng.uniform(0, 1, rollouts)
            else:
                rewards = rng.integers(0, 2, rollouts).astype(float)
            if p == 5:
                rewards[1] = math.nan  # a reward function that failed
            truth[(step, prompt)] = rewards
            for r in rewards:
                inputs.append(prompt)
                outputs.append(f"def function_{p}():\n    return {rng.integers(100)}")
                gts.append(None if p % 2 else "expected")
                scores.append(float(r))
                acc.append(bool(r > 0.5))
        base = {"input": inputs, "output": outputs, "gts": gts, "score": scores, "step": [step] * len(inputs)}
        for key, values in {"acc": acc, "uid": [f"{i // rollouts}_0_{i % rollouts}" for i in range(len(inputs))]}.items():
            if len(values) == len(inputs):
                base[key] = values
        with open(directory / f"{step}.jsonl", "w") as handle:
            for i in range(len(inputs)):
                entry = {k: v[i] for k, v in base.items()}
                handle.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")
    return truth


def test_verl_dump_is_grouped_by_prompt_per_step(tmp_path):
    truth = write_verl_dump(tmp_path / "rollouts", steps=3, prompts=12, rollouts=8)
    log = load_rewards(str(tmp_path / "rollouts"))
    assert log.rewards.size == 3 * 12 * 8
    summaries = summarise(log, tau=0.5)
    assert [s.step for s in summaries] == [1, 2, 3]
    for s in summaries:
        assert s.groups == 12
        for label, rewards in zip(s.group_labels, s.group_rewards):
            np.testing.assert_array_equal(np.sort(rewards), np.sort(truth[(s.step, label)]))
        # the shares are those of group_stats on the same groups
        want = gapo_kernels.group_stats(torch.from_numpy(np.concatenate(s.group_rewards)),
                                        torch.tensor(np.concatenate([[0], np.cumsum([len(r) for r in s.group_rewards])])))
        for shape in (RewardShape.RIGHT_SKEWED, RewardShape.LEFT_SKEWED):
            assert s.shares[shape] == pytest.approx(np.mean(want.shape.numpy() == shape))
        assert s.shares[RewardShape.RIGHT_SKEWED] >= 0.2 and s.shares[RewardShape.LEFT_SKEWED] >= 0.2


def test_step_numbers_mean_shift_and_sign_flips_by_hand(tmp_path):
    # One step, two groups: a right-skewed one where GAPO and GRPO disagree in sign, one constant.
    path = tmp_path / "table.csv"
    rows = [(7, "a", r) for r in (0.0, 0.0, 0.1, 0.1, 0.2, 9.0)] + [(7, "b", 1.0)] * 4
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "group", "reward"])
        writer.writerows(rows)
    (s,) = summarise(load_rewards(str(path)))
    assert s.step == 7 and s.groups == 2 and s.classified == 2
    a = np.array([0.0, 0.0, 0.1, 0.1, 0.2, 9.0])
    q, mean = 0.0, a.mean()  # window [0, 0, 0.1], median 0
    scale = math.sqrt(np.sum((a - q) ** 2) / 5)
    assert s.mean_shift == pytest.approx(abs(q - mean) / scale, rel=1e-6)  # the constant group has S = 0
    # GRPO: 0.1 and 0.2 lie below the mean (negative); GAPO: above Q = 0 (positive) -> 3 flips of 6
    assert s.sign_flips == pytest.approx(3 / 6)
    assert s.shares[RewardShape.NORMAL] == pytest.approx(0.5)  # the constant group


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_table_formats_give_the_same_report(tmp_path, fmt):
    rng = np.random.default_rng(3)
    steps = np.repeat(np.arange(4), 40)
    groups = np.tile(np.repeat(np.arange(5), 8), 4)
    rewards = rng.exponential(size=160)
    rewards[::17] = np.nan
    path = tmp_path / f"log.{fmt}"
    if fmt == "jsonl":
        with open(path, "w") as handle:
            for s, g, r in zip(steps, groups, rewards):
                handle.write(json.dumps({"step": int(s), "group": f"g{g}", "reward": None if np.isnan(r) else float(r)}) + "\n")
    elif fmt == "csv":
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["group", "reward", "step"])
            for s, g, r in zip(steps, groups, rewards):
                writer.writerow([f"g{g}", "" if np.isnan(r) else repr(float(r)), s])
    else:
        pa = pytest.importorskip("pyarrow")
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"step": steps, "group": [f"g{g}" for g in groups], "reward": rewards}), path)
    summaries = summarise(load_rewards(str(path)))
    assert [s.groups for s in summaries] == [5] * 4
    reference = [gapo_kernels.group_stats(torch.from_numpy(rewards[steps == k]), torch.arange(0, 41, 8)) for k in range(4)]
    for s, stats in zip(summaries, reference):
        for shape in (RewardShape.NORMAL, RewardShape.RIGHT_SKEWED):
            assert s.shares[shape] == pytest.approx(np.mean(stats.shape.numpy() == shape))
    table = format_table(summaries)
    assert table.splitlines()[0].split() == ["step", "groups", "normal", "right", "left", "sym", "|Q-mean|/S", "sign", "flips"]


def test_command_line_prints_the_table_and_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    write_verl_dump(tmp_path / "rollouts", steps=6, prompts=16, rollouts=8, seed=1)
    png = tmp_path / "report.png"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    result = subprocess.run([sys.executable, "-m", "gapo_kernels.report", str(tmp_path / "rollouts"), "--png", str(png),
                             "--progress"], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "768 rollouts, 6 steps" in lines[0]
    assert [line.split()[0] for line in lines[3:9]] == ["1", "2", "3", "4", "5", "6"]
    assert "100%" in result.stderr  # the progress bar ran to the end
    assert png.stat().st_size > 20_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_inputs_are_reported_by_name(tmp_path, capsys):
    assert main([str(tmp_path / "missing")]) == 2
    assert "no such file or directory" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("step,prompt,score\n1,a,0.5\n")
    assert main([str(bad), "--no-png"]) == 2
    assert "no column(s) ['group', 'reward']" in capsys.readouterr().err
    assert main([str(bad), "--no-png", "--group-col", "prompt", "--reward-col", "score"]) == 0
    assert "1 rollouts, 1 steps" in capsys.readouterr().out
    empty_dir = tmp_path / "dumps"
    empty_dir.mkdir()
    assert main([str(empty_dir)]) == 2
    assert "no .jsonl files" in capsys.readouterr().err
