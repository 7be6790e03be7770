"""Should I use GAPO on my data? A per-step report of a reward log.

    python -m gapo_kernels.report PATH [--tau 0.5] [--png report.png]

PATH is one of:

* verl rollout dumps (``trainer.rollout_data_dir``): a directory of ``<step>.jsonl`` files, or one
  of them. Each line holds ``input`` (the prompt), ``output``, ``score`` and ``step``; the
  rollouts of one prompt in one step form a group.
* a plain table with ``step``, ``group`` and ``reward`` columns (other names with ``--step-col``,
  ``--group-col``, ``--reward-col``): JSONL, CSV, or Parquet (needs pyarrow).

For each step it prints the number of groups; the share of the groups of 3+ finite rewards in
each :class:`gapo_kernels.RewardShape` (the GAPO authors' rule; the paper reports 14.4%
right- and 15.5% left-skewed groups on real code-editing rollouts); the mean baseline shift
``|Q - mean| / S`` (how far GAPO's baseline Q moves from GRPO's mean, in units of the group's
scale S); and the share of rollouts whose advantage has the opposite sign under GRPO and GAPO.
It writes a PNG (with matplotlib) of the shape shares over steps, the distribution of the
signed shift ``(Q - mean) / S``, and a few groups drawn as strip plots with the HDI window and
both baselines. Missing rewards (NaN, inf, null) are left out, as everywhere in this package.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import sys
from dataclasses import dataclass, field

import numpy as np
import torch

import gapo_kernels

from .shape import RewardShape

__all__ = ["RewardLog", "StepSummary", "load_rewards", "summarise", "format_table", "plot_report", "main"]

SHAPES = (RewardShape.NORMAL, RewardShape.RIGHT_SKEWED, RewardShape.LEFT_SKEWED, RewardShape.SYMMETRIC_NON_NORMAL)
SHAPE_NAMES = {
    RewardShape.NORMAL: "normal",
    RewardShape.RIGHT_SKEWED: "right-skewed",
    RewardShape.LEFT_SKEWED: "left-skewed",
    RewardShape.SYMMETRIC_NON_NORMAL: "symmetric, not normal",
}
PAPER_SHARES = {RewardShape.RIGHT_SKEWED: 0.144, RewardShape.LEFT_SKEWED: 0.155}
PROGRESS_MIN_BYTES = 8 << 20  # logs smaller than this read too fast for a progress bar to help


# --- progress bar (plain text on stderr) --------------------------------------------------------
class Progress:
    """``[#####.....]  50%  label`` redrawn in place on stderr; silent when disabled."""

    def __init__(self, total: float, label: str, enabled: bool, width: int = 30):
        self.total, self.label, self.enabled, self.width = max(total, 1), label, enabled, width
        self.done, self._shown = 0.0, -1

    def advance(self, amount: float) -> None:
        self.done += amount
        percent = int(100 * min(self.done / self.total, 1.0))
        if self.enabled and percent != self._shown:
            filled = self.width * percent // 100
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] {percent:3d}%  {self.label}")
            sys.stderr.flush()
            self._shown = percent

    def close(self) -> None:
        if self.enabled and self._shown >= 0:
            sys.stderr.write("\n")
            sys.stderr.flush()


# --- reading logs -------------------------------------------------------------------------------
@dataclass
class RewardLog:
    """Rewards with their step and group label (one entry per rollout)."""

    steps: np.ndarray  # int64
    groups: list  # hashable labels (prompt text, group id...)
    rewards: np.ndarray  # float64, NaN for a missing reward
    source: str = ""
    prompts: dict = field(default_factory=dict)  # group label -> text to show, when there is one


def _as_reward(value) -> float:
    try:
        return float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def _step_of_file(path: str) -> int | None:
    match = re.fullmatch(r"(\d+)\.jsonl", os.path.basename(path))
    return int(match.group(1)) if match else None


def _jsonl_lines(paths: list[str], progress: Progress):
    for path in paths:
        with open(path, "rb") as handle:
            for number, line in enumerate(handle, 1):
                progress.advance(len(line))
                if line.strip():
                    try:
                        yield path, json.loads(line)
                    except json.JSONDecodeError as error:
                        raise ValueError(f"{path}:{number}: not a JSON line ({error.msg})") from None


def _read_verl(paths: list[str], progress: Progress, reward_key: str) -> RewardLog:
    steps, groups, rewards = [], [], []
    for path, entry in _jsonl_lines(paths, progress):
        if "input" not in entry or reward_key not in entry:
            raise ValueError(f"{path}: a verl rollout dump line needs 'input' and '{reward_key}', got {sorted(entry)}")
        step = entry.get("step", _step_of_file(path))
        if step is None:
            raise ValueError(f"{path}: no 'step' field and the file name is not <step>.jsonl")
        steps.append(int(step))
        groups.append(entry["input"])
        rewards.append(_as_reward(entry[reward_key]))
    return RewardLog(np.array(steps, dtype=np.int64), groups, np.array(rewards, dtype=np.float64))


def _read_table(path: str, progress: Progress, step_col: str, group_col: str, reward_col: str) -> RewardLog:
    lower = path.lower()
    if lower.endswith(".parquet"):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise RuntimeError("reading Parquet needs pyarrow (pip install pyarrow); or give a CSV/JSONL table") from None
        table = pq.read_table(path)
        missing = [c for c in (step_col, group_col, reward_col) if c not in table.column_names]
        if missing:
            raise ValueError(f"{path}: no column(s) {missing}; it has {table.column_names}")
        progress.advance(progress.total)
        rows = {c: table.column(c).to_pylist() for c in (step_col, group_col, reward_col)}
    elif lower.endswith(".csv"):
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in (step_col, group_col, reward_col) if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"{path}: no column(s) {missing}; it has {reader.fieldnames}")
            rows = {step_col: [], group_col: [], reward_col: []}
            for record in reader:
                for c in rows:
                    rows[c].append(record[c])
        progress.advance(progress.total)
    else:
        rows = {step_col: [], group_col: [], reward_col: []}
        for _, entry in _jsonl_lines([path], progress):
            missing = [c for c in rows if c not in entry]
            if missing:
                raise ValueError(f"{path}: a line has no {missing}; it has {sorted(entry)}")
            for c in rows:
                rows[c].append(entry[c])
    steps = np.array([int(float(s)) for s in rows[step_col]], dtype=np.int64)
    rewards = np.array([_as_reward(r) for r in rows[reward_col]], dtype=np.float64)
    return RewardLog(steps, list(rows[group_col]), rewards)


def load_rewards(path: str, *, step_col: str = "step", group_col: str = "group", reward_col: str = "reward",
                 verl_score_key: str = "score", progress: bool | None = None) -> RewardLog:
    """Read a verl rollout dump (directory or file) or a step/group/reward table."""
    if os.path.isdir(path):
        files = [os.path.join(path, name) for name in os.listdir(path) if name.endswith(".jsonl")]
        if not files:
            raise ValueError(f"{path}: no .jsonl files (expected verl's trainer.rollout_data_dir)")
        files.sort(key=lambda f: (_step_of_file(f) is None, _step_of_file(f) or 0, f))
    elif os.path.isfile(path):
        files = [path]
    else:
        raise FileNotFoundError(f"{path}: no such file or directory")
    total = sum(os.path.getsize(f) for f in files)
    bar = Progress(total, f"reading {path}", total >= PROGRESS_MIN_BYTES if progress is None else progress)
    try:
        verl = os.path.isdir(path) or _looks_like_verl(files[0], verl_score_key)
        if verl:
            log = _read_verl(files, bar, verl_score_key)
        else:
            log = _read_table(files[0], bar, step_col, group_col, reward_col)
    finally:
        bar.close()
    log.source = path
    return log


def _looks_like_verl(path: str, score_key: str) -> bool:
    if not path.lower().endswith(".jsonl"):
        return False
    with open(path) as handle:
        for line in handle:
            if line.strip():
                entry = json.loads(line)
                return "input" in entry and score_key in entry
    return False


# --- per-step numbers ---------------------------------------------------------------------------
@dataclass
class StepSummary:
    step: int
    groups: int
    classified: int  # groups with 3+ finite rewards
    shares: dict  # RewardShape -> share of the classified groups
    mean_shift: float  # mean over groups with S > 0 of |Q - mean| / S
    sign_flips: float  # share of finite rewards whose advantage has opposite signs under GRPO and GAPO
    # per group, for the plots
    shift: np.ndarray = field(repr=False, default=None)  # (Q - mean) / S, NaN where S == 0 or n < 2
    shape: np.ndarray = field(repr=False, default=None)
    group_labels: list = field(repr=False, default=None)
    group_rewards: list = field(repr=False, default=None)
    stats: object = field(repr=False, default=None)


def _summarise_step(step: int, labels: list, rewards: np.ndarray, tau: float) -> StepSummary:
    order_labels: dict = {}
    group_of_row = np.array([order_labels.setdefault(label, len(order_labels)) for label in labels], dtype=np.int64)
    order = np.argsort(group_of_row, kind="stable")
    sizes = np.bincount(group_of_row, minlength=len(order_labels))
    offsets = torch.from_numpy(np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64))
    grouped = torch.from_numpy(rewards[order])
    stats = gapo_kernels.group_stats(grouped, offsets, tau=tau)
    gapo = gapo_kernels.advantage(grouped, offsets, tau=tau).numpy()
    grpo = gapo_kernels.advantage(grouped, offsets, baseline="mean").numpy()
    count, shape = stats.count.numpy(), stats.shape.numpy()
    q, mean, scale = stats.baseline.numpy(), stats.mean.numpy(), stats.scale.numpy()
    scorable = (count >= 2) & (scale > 0)
    shift = np.full(len(count), np.nan)
    shift[scorable] = (q[scorable] - mean[scorable]) / scale[scorable]
    classified = shape != RewardShape.TOO_FEW
    n_classified = int(classified.sum())
    shares = {s: (float(np.sum(shape == s)) / n_classified if n_classified else math.nan) for s in SHAPES}
    in_scorable = np.repeat(scorable, sizes) & np.isfinite(grouped.numpy())
    flips = np.sign(gapo) * np.sign(grpo) < 0
    return StepSummary(
        step=step,
        groups=len(count),
        classified=n_classified,
        shares=shares,
        mean_shift=float(np.mean(np.abs(shift[scorable]))) if scorable.any() else math.nan,
        sign_flips=float(flips[in_scorable].mean()) if in_scorable.any() else math.nan,
        shift=shift,
        shape=shape,
        group_labels=list(order_labels),
        group_rewards=np.split(grouped.numpy(), np.cumsum(sizes)[:-1]),
        stats=stats,
    )


def summarise(log: RewardLog, *, tau: float = 0.5, progress: bool | None = None) -> list[StepSummary]:
    """One :class:`StepSummary` per step, in step order."""
    steps = np.unique(log.steps)
    rows_of = {s: np.nonzero(log.steps == s)[0] for s in steps} if len(steps) < 64 else _rows_by_step(log.steps)
    bar = Progress(len(log.rewards), "computing", len(log.rewards) >= 200_000 if progress is None else progress)
    out = []
    try:
        for s in steps:
            rows = rows_of[s]
            out.append(_summarise_step(int(s), [log.groups[i] for i in rows], log.rewards[rows], tau))
            bar.advance(len(rows))
    finally:
        bar.close()
    return out


def _rows_by_step(steps: np.ndarray) -> dict:
    order = np.argsort(steps, kind="stable")
    values, starts = np.unique(steps[order], return_index=True)
    return dict(zip(values, np.split(order, starts[1:])))


def format_table(summaries: list[StepSummary]) -> str:
    """The compact per-step table, then one line over all steps."""
    header = (f"{'step':>6} {'groups':>7} {'normal':>7} {'right':>7} {'left':>7} {'sym':>7} "
              f"{'|Q-mean|/S':>11} {'sign flips':>11}")
    lines = [header, "-" * len(header)]

    def pct(x: float) -> str:
        return "      -" if math.isnan(x) else f"{100 * x:6.1f}%"

    def num(x: float, width: int) -> str:
        return f"{'-':>{width}}" if math.isnan(x) else f"{x:{width}.3f}"

    for s in summaries:
        shares = " ".join(pct(s.shares[k]) for k in SHAPES)
        lines.append(f"{s.step:>6} {s.groups:>7} {shares} {num(s.mean_shift, 11)} {pct(s.sign_flips):>11}")
    classified = sum(s.classified for s in summaries)
    if classified:
        overall = {k: sum(s.shares[k] * s.classified for s in summaries if s.classified) / classified for k in SHAPES}
        lines.append("-" * len(header))
        lines.append(
            f"{'all':>6} {sum(s.groups for s in summaries):>7} {' '.join(pct(overall[k]) for k in SHAPES)}"
        )
        lines.append(
            f"paper (real code-editing rollouts): right {100 * PAPER_SHARES[RewardShape.RIGHT_SKEWED]:.1f}%, "
            f"left {100 * PAPER_SHARES[RewardShape.LEFT_SKEWED]:.1f}%; shares are of groups with 3+ finite rewards"
        )
    return "\n".join(lines)


# --- the picture --------------------------------------------------------------------------------
COLORS = {
    RewardShape.NORMAL: "#4C72B0",
    RewardShape.RIGHT_SKEWED: "#DD8452",
    RewardShape.LEFT_SKEWED: "#55A868",
    RewardShape.SYMMETRIC_NON_NORMAL: "#8172B3",
}


def _example_groups(summaries: list[StepSummary], count: int) -> list[tuple[StepSummary, int]]:
    """Groups worth looking at: the largest baseline shift of each shape, then the largest others."""
    candidates = []
    for s in summaries:
        for g in np.nonzero(np.isfinite(s.shift))[0]:
            candidates.append((abs(s.shift[g]), int(s.shape[g]), s, int(g)))
    candidates.sort(key=lambda c: -c[0])
    picked, seen = [], set()
    for _, shape, s, g in candidates:  # one of each shape first
        if shape not in seen and len(picked) < count:
            picked.append((s, g))
            seen.add(shape)
    for _, _, s, g in candidates:
        if len(picked) >= count:
            break
        if (s, g) not in picked:
            picked.append((s, g))
    return picked


def plot_report(summaries: list[StepSummary], path: str, *, tau: float = 0.5, examples: int = 4,
                title: str = "") -> str:
    """Write the report's PNG to ``path`` and return it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    from matplotlib.gridspec import GridSpec

    picked = _example_groups(summaries, examples)
    fig = plt.figure(figsize=(13, 8.2), dpi=110)
    grid = GridSpec(2, max(len(picked), 2), figure=fig, height_ratios=[1.3, 0.75], hspace=0.5, wspace=0.3)
    half = max(len(picked), 2) // 2

    # 1. shape shares over steps
    ax = fig.add_subplot(grid[0, :half])
    steps = [s.step for s in summaries]
    for shape in SHAPES:
        values = [100 * s.shares[shape] for s in summaries]
        style = dict(marker="o", markersize=3) if len(steps) <= 60 else {}
        ax.plot(steps, values, color=COLORS[shape], linewidth=1.8, label=SHAPE_NAMES[shape], **style)
    for shape, share in PAPER_SHARES.items():
        ax.axhline(100 * share, color=COLORS[shape], linestyle=":", linewidth=1.2)
    ax.plot([], [], color="0.4", linestyle=":", label="paper: 14.4% right, 15.5% left")
    ax.set_xlabel("step")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel("share of groups with 3+ rewards (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Reward shape of each group (GAPO authors' rule)")
    ax.legend(fontsize=8, loc="upper right", framealpha=0.9)
    ax.grid(alpha=0.3)

    # 2. the baseline shift
    ax = fig.add_subplot(grid[0, half:])
    shifts = np.concatenate([s.shift[np.isfinite(s.shift)] for s in summaries]) if summaries else np.array([])
    if shifts.size:
        nonzero = shifts[shifts != 0]
        lim = max(0.05, float(np.quantile(np.abs(shifts), 0.995)))
        heights, _, _ = ax.hist(np.clip(shifts, -lim, lim), bins=60, range=(-lim, lim), color="#4C72B0", alpha=0.85)
        ax.set_ylim(0, 1.45 * max(heights.max(), 1))  # headroom for the summary box
        ax.axvline(0, color="black", linewidth=0.8)
        ax.text(0.02, 0.97,
                f"{shifts.size} groups\nunmoved (Q = mean): {100 * (1 - nonzero.size / shifts.size):.0f}%\n"
                f"median |shift|: {np.median(np.abs(shifts)):.3f}\n"
                f"Q above mean (left tail): {100 * np.mean(shifts > 0):.0f}%\n"
                f"Q below mean (right tail): {100 * np.mean(shifts < 0):.0f}%",
                transform=ax.transAxes, va="top", fontsize=8, bbox=dict(facecolor="white", alpha=0.85, edgecolor="0.8"))
    ax.set_xlabel("baseline shift (Q_GAPO - mean) / S")
    ax.set_ylabel("groups")
    ax.set_title(f"How far GAPO moves the baseline (tau = {tau})")
    ax.grid(alpha=0.3)

    # 3. example groups
    for slot, (s, g) in enumerate(picked):
        ax = fig.add_subplot(grid[1, slot])
        values = s.group_rewards[g]
        finite = values[np.isfinite(values)]
        jitter = np.random.default_rng(g).uniform(-0.25, 0.25, size=finite.size)
        low, high = float(s.stats.hdi_low[g]), float(s.stats.hdi_high[g])
        ax.axvspan(low, high, color="0.85", zorder=0, label=f"HDI window (tau = {tau} of the group)")
        ax.scatter(finite, jitter, s=28, color=COLORS.get(RewardShape(int(s.shape[g])), "0.3"), alpha=0.8,
                   edgecolor="white", linewidth=0.5, zorder=3)
        ax.axvline(float(s.stats.mean[g]), color="#C44E52", linewidth=2, label="GRPO: mean", zorder=4)
        ax.axvline(float(s.stats.baseline[g]), color="black", linewidth=2, linestyle="--", label="GAPO: Q", zorder=5)
        ax.set_ylim(-0.45, 0.45)
        ax.set_yticks([])
        span = float(finite.max() - finite.min()) or 1.0
        ax.set_xlim(float(finite.min()) - 0.08 * span, float(finite.max()) + 0.08 * span)
        shape_name = SHAPE_NAMES.get(RewardShape(int(s.shape[g])), "too few")
        ax.set_title(f"step {s.step}, n = {finite.size}: {shape_name}\nQ - mean = {s.shift[g]:+.2f} S", fontsize=9)
        ax.set_xlabel("reward", fontsize=8)
        ax.tick_params(labelsize=7)
        if slot == 0:
            handles, labels = ax.get_legend_handles_labels()
            fig.legend(handles, labels, fontsize=9, loc="lower center", ncol=3, frameon=False,
                       bbox_to_anchor=(0.5, -0.02))
    if not picked:
        ax = fig.add_subplot(grid[1, :])
        ax.axis("off")
        ax.text(0.5, 0.5, "no group with two or more distinct finite rewards", ha="center", va="center")
    fig.suptitle(title or "Should I use GAPO on my data?", fontsize=13)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


# --- command line -------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gapo_kernels.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="verl rollout_data_dir (or one of its <step>.jsonl), or a step/group/reward table")
    parser.add_argument("--tau", type=float, default=0.5, help="GAPO window fraction (default 0.5)")
    parser.add_argument("--png", default=None, help="where to write the plot (default: <path>_gapo_report.png)")
    parser.add_argument("--no-png", action="store_true", help="print the table only")
    parser.add_argument("--examples", type=int, default=4, help="example groups drawn as strip plots (default 4)")
    parser.add_argument("--step-col", default="step")
    parser.add_argument("--group-col", default="group")
    parser.add_argument("--reward-col", default="reward")
    parser.add_argument("--score-key", default="score", help="the reward field of verl dump lines (default score)")
    bar = parser.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None, help="always show progress")
    bar.add_argument("--no-progress", dest="progress", action="store_false", help="never show progress")
    args = parser.parse_args(argv)
    if not 0 < args.tau <= 1:
        parser.error(f"--tau must be in (0, 1], got {args.tau}")

    try:
        log = load_rewards(args.path, step_col=args.step_col, group_col=args.group_col, reward_col=args.reward_col,
                           verl_score_key=args.score_key, progress=args.progress)
    except (OSError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if log.rewards.size == 0:
        print(f"error: {args.path}: no rewards", file=sys.stderr)
        return 2
    summaries = summarise(log, tau=args.tau, progress=args.progress)
    print(f"{args.path}: {log.rewards.size} rollouts, {len(summaries)} steps, tau = {args.tau}")
    print(format_table(summaries))
    if not args.no_png:
        png = args.png or f"{os.path.normpath(args.path)}_gapo_report.png"
        try:
            plot_report(summaries, png, tau=args.tau, examples=args.examples,
                        title=f"Should I use GAPO on {os.path.basename(os.path.normpath(args.path))}?")
        except ImportError:
            print("no PNG: matplotlib is not installed (pip install matplotlib, or -r requirements/bench.txt)",
                  file=sys.stderr)
            return 0
        print(f"wrote {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
