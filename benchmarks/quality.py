"""When does GAPO help, and which tau? A quality benchmark beside the speed suite.

    python -m benchmarks.quality            # a few minutes on 2 CPU cores
    python -m benchmarks.quality --quick    # a smoke run of a few seconds (CI)

Two experiments, both with groups contaminated the way the GAPO paper (arXiv 2510.21830)
describes real code-editing rewards: 15.5% of prompts have left-skewed rewards (a rollout now
and then scores far BELOW the rest: a crash, a timeout), 14.4% right-skewed ones (now and then
far ABOVE: a lucky pass), the rest are clean. Within a skewed prompt each rollout is an outlier
with probability ``rate`` (swept).

1. Baselines. Each group has a known clean centre c (its rollouts are c + N(0, sigma^2) before
   contamination). For GRPO (the mean), the median, and GAPO at several tau: the baseline error
   |Q - c| / sigma, and how often a rollout's advantage sign (r - Q) disagrees with its clean
   sign (r - c), over all groups and over the skewed ones.
2. Learning. A contextual bandit (prompts x actions, tabular softmax policy) trained by
   group-relative policy gradient: each step samples G actions per prompt, scores them with
   the contaminated reward, and moves the logits by A * grad log pi with A from each
   estimator (S = RMS about Q, as in GAPO and GRPO). Reported: the CLEAN expected reward the
   policy reaches (outliers removed), as the fraction of the gap from the uniform policy to the
   best one that it closes, at the end and averaged over training, with 95% confidence
   intervals over seeds, and the paired difference to GRPO (same task and draws per seed),
   for G = 8 and 16.

Results go to ``benchmarks/results/quality/`` (quality.json and quality.png).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np
import torch

import gapo_kernels

LEFT_SHARE, RIGHT_SHARE = 0.155, 0.144  # the paper's shares of left- and right-skewed groups
SIGMA = 0.1  # clean reward noise
ESTIMATORS = {  # name -> (baseline, tau)
    "GRPO (mean)": ("mean", 0.5),
    "median": ("median", 0.5),
    "GAPO tau=0.25": ("hdi_median", 0.25),
    "GAPO tau=0.5": ("hdi_median", 0.5),
    "GAPO tau=0.75": ("hdi_median", 0.75),
}


def outlier_shift(rng: np.random.Generator, size) -> np.ndarray:
    """How far an outlier lands from the clean reward: 0.5 to a few units, heavy-tailed."""
    return 0.5 + rng.exponential(0.5, size=size)


def contaminate(rng: np.random.Generator, clean: np.ndarray, direction: np.ndarray, rate: float) -> np.ndarray:
    """clean (groups x n) with each rollout of a skewed group (direction -1 or +1) an outlier w.p. rate."""
    hit = (rng.random(clean.shape) < rate) & (direction[:, None] != 0)
    return clean + hit * direction[:, None] * outlier_shift(rng, clean.shape)


def skew_directions(rng: np.random.Generator, num_groups: int) -> np.ndarray:
    """-1 (left-skewed), +1 (right-skewed) or 0 (clean) per group, in the paper's proportions."""
    u = rng.random(num_groups)
    return np.where(u < LEFT_SHARE, -1, np.where(u < LEFT_SHARE + RIGHT_SHARE, 1, 0))


# --- 1. baselines against a known clean centre ---------------------------------------------------
def baseline_quality(group_size: int, rate: float, num_groups: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    centre = rng.uniform(0.2, 0.8, num_groups)
    direction = skew_directions(rng, num_groups)
    rewards = contaminate(rng, centre[:, None] + SIGMA * rng.normal(size=(num_groups, group_size)), direction, rate)
    flat = torch.from_numpy(rewards.reshape(-1))
    offsets = torch.arange(0, flat.numel() + 1, group_size)
    skewed = direction != 0
    clean_sign = np.sign(rewards - centre[:, None])
    out = {}
    for name, (baseline, tau) in ESTIMATORS.items():
        q = gapo_kernels.group_stats(flat, offsets, tau=tau, baseline=baseline).baseline.double().numpy()
        error = np.abs(q - centre) / SIGMA
        disagree = np.sign(rewards - q[:, None]) != clean_sign
        out[name] = {
            "baseline_error": float(error.mean()),
            "baseline_error_skewed": float(error[skewed].mean()),
            "baseline_error_clean": float(error[~skewed].mean()),
            "sign_disagreement": float(disagree.mean()),
            "sign_disagreement_skewed": float(disagree[skewed].mean()),
        }
    return out


# --- 2. a contextual bandit trained with each estimator -----------------------------------------
def train_bandit(baseline: str, tau: float, group_size: int, rate: float, seed: int, *, prompts: int, actions: int,
                 batch: int, steps: int, lr: float, record_every: int, spread: float) -> list[float]:
    """Clean reward gained, (E_pi[clean] - E_uniform) / (best - E_uniform), every ``record_every`` steps."""
    rng = np.random.default_rng(seed)  # the same task and the same draws for every estimator
    mu = rng.uniform(0.5 - spread / 2, 0.5 + spread / 2, (prompts, actions))  # clean expected reward of each action
    direction = skew_directions(rng, prompts)
    best, uniform = mu.max(1).mean(), mu.mean()
    logits = np.zeros((prompts, actions))
    curve = []
    offsets = torch.arange(0, batch * group_size + 1, group_size)
    for step in range(steps + 1):
        policy = np.exp(logits - logits.max(1, keepdims=True))
        policy /= policy.sum(1, keepdims=True)
        if step % record_every == 0:
            curve.append(float(((policy * mu).sum(1).mean() - uniform) / (best - uniform)))
        if step == steps:
            break
        chosen = rng.choice(prompts, size=batch, replace=False)
        cumulative = policy[chosen].cumsum(1)
        draws = rng.random((batch, group_size, 1))
        acts = np.minimum((draws > cumulative[:, None, :]).sum(-1), actions - 1)  # (batch, G)
        clean = mu[chosen[:, None], acts] + SIGMA * rng.normal(size=(batch, group_size))
        rewards = contaminate(rng, clean, direction[chosen], rate)
        adv = gapo_kernels.advantage(torch.from_numpy(rewards.reshape(-1)), offsets, tau=tau, baseline=baseline)
        adv = adv.numpy().reshape(batch, group_size)
        # grad of log pi(a | k) w.r.t. the logits of k: onehot(a) - pi(k)
        onehot = np.zeros((batch, group_size, actions))
        np.put_along_axis(onehot, acts[..., None], 1.0, axis=-1)
        grad = (adv[..., None] * (onehot - policy[chosen][:, None, :])).mean(1)
        logits[chosen] += lr * grad
    return curve


def confidence_interval(values: np.ndarray) -> tuple[float, float]:
    """(mean, half-width of the 95% t interval) over seeds."""
    t95 = {2: 12.71, 3: 4.30, 4: 3.18, 5: 2.78, 6: 2.57, 8: 2.36, 10: 2.26, 12: 2.20, 16: 2.13, 20: 2.09}
    n = len(values)
    if n < 2:
        return float(values.mean()), math.nan
    t = t95.get(n, 1.96 if n > 20 else t95[min(k for k in t95 if k >= n)])
    return float(values.mean()), float(t * values.std(ddof=1) / math.sqrt(n))


# --- driver ------------------------------------------------------------------------------------
def run(args) -> dict:
    results = {"settings": vars(args).copy(), "baselines": {}, "bandit": {}}
    started = time.time()
    print(f"1. Baselines vs the clean centre ({args.groups} groups per cell; error in units of the clean sigma)")
    for size in args.group_sizes:
        for rate in args.rates:
            cell = baseline_quality(size, rate, args.groups, seed=1000 + size)
            results["baselines"][f"G={size} rate={rate}"] = cell
    for size in args.group_sizes:
        print(f"\n  G = {size}: mean |Q - c| / sigma over all groups (skewed groups only)")
        print("  " + f"{'outlier rate':>14}" + "".join(f"{name:>18}" for name in ESTIMATORS))
        for rate in args.rates:
            cell = results["baselines"][f"G={size} rate={rate}"]
            row = "".join(f"{cell[n]['baseline_error']:>8.3f} ({cell[n]['baseline_error_skewed']:5.2f})  "
                          for n in ESTIMATORS)
            print("  " + f"{rate:>14}" + row)
        print(f"  G = {size}: share of advantage signs that disagree with the clean sign (skewed groups only)")
        for rate in args.rates:
            cell = results["baselines"][f"G={size} rate={rate}"]
            row = "".join(
                f"{100 * cell[n]['sign_disagreement']:>7.2f}% ({100 * cell[n]['sign_disagreement_skewed']:5.2f}%)"
                for n in ESTIMATORS
            )
            print("  " + f"{rate:>14}" + row)

    print(f"\n2. Bandit: {args.prompts} prompts x {args.actions} actions, {args.batch} prompts per step, "
          f"{args.steps} steps, outlier rate {args.bandit_rate} in skewed prompts, {args.seeds} seeds.\n"
          "  Clean reward gained, (E[clean] - uniform) / (best - uniform), with 95% CIs:")
    record_every = max(1, args.steps // 40)
    for size in args.group_sizes:
        results["bandit"][f"G={size}"] = {}
        grpo_curves = None
        for name, (baseline, tau) in ESTIMATORS.items():
            curves = np.array([
                train_bandit(baseline, tau, size, args.bandit_rate, seed, prompts=args.prompts, actions=args.actions,
                             batch=args.batch, steps=args.steps, lr=args.lr, record_every=record_every,
                             spread=args.spread)
                for seed in range(args.seeds)
            ])
            final_mean, final_ci = confidence_interval(curves[:, -1])
            auc_mean, auc_ci = confidence_interval(curves.mean(1))
            grpo_curves = curves if grpo_curves is None else grpo_curves  # GRPO comes first
            diff_mean, diff_ci = confidence_interval(curves.mean(1) - grpo_curves.mean(1))
            results["bandit"][f"G={size}"][name] = {
                "final": final_mean, "final_ci95": final_ci, "area": auc_mean, "area_ci95": auc_ci,
                "area_minus_grpo": diff_mean, "area_minus_grpo_ci95": diff_ci,
                "curve_mean": curves.mean(0).tolist(), "curve_steps": list(range(0, args.steps + 1, record_every)),
                "curve_ci95": [confidence_interval(curves[:, i])[1] for i in range(curves.shape[1])],
            }
            paired = "" if curves is grpo_curves else f"   vs GRPO (paired) {diff_mean:+.4f} +- {diff_ci:.4f}"
            print(f"  G = {size:>2}  {name:<14}  final {final_mean:.4f} +- {final_ci:.4f}   "
                  f"mean over training {auc_mean:.4f} +- {auc_ci:.4f}{paired}")
    results["seconds"] = time.time() - started
    print(f"\n({results['seconds']:.1f} s)")
    return results


def plot(results: dict, path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = results["settings"]["group_sizes"]
    rates = results["settings"]["rates"]
    fig, axes = plt.subplots(2, len(sizes), figsize=(6.5 * len(sizes), 9), dpi=110, squeeze=False)
    colors = dict(zip(ESTIMATORS, ["#C44E52", "#8172B3", "#8DB6D9", "#4C72B0", "#1F3A68"]))
    for col, size in enumerate(sizes):
        ax = axes[0, col]
        for name in ESTIMATORS:
            errors = [results["baselines"][f"G={size} rate={r}"][name]["baseline_error_skewed"] for r in rates]
            ax.plot(rates, errors, marker="o", color=colors[name], label=name, linewidth=1.8)
        ax.set_xlabel("outlier rate within a skewed group")
        ax.set_ylabel("mean |Q - clean centre| / sigma, skewed groups")
        ax.set_title(f"Baseline error, G = {size}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax = axes[1, col]
        bandit = results["bandit"][f"G={size}"]
        for name in ESTIMATORS:
            steps = np.array(bandit[name]["curve_steps"])
            mean, ci = np.array(bandit[name]["curve_mean"]), np.nan_to_num(np.array(bandit[name]["curve_ci95"]))
            ax.plot(steps, mean, color=colors[name], label=f"{name}: {bandit[name]['final']:.3f}", linewidth=1.6)
            ax.fill_between(steps, mean - ci, mean + ci, color=colors[name], alpha=0.15)
        ax.set_xlabel("policy-gradient step")
        ax.set_ylabel("clean reward gained (0 = uniform policy, 1 = best)")
        ax.set_title(f"Bandit, G = {size} (outlier rate {results['settings']['bandit_rate']}; 95% CI over "
                     f"{results['settings']['seeds']} seeds)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle("GAPO quality benchmark: 15.5% left- and 14.4% right-skewed groups, the rest clean", fontsize=12)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--groups", type=int, default=20000, help="groups per cell of the baseline experiment")
    parser.add_argument("--rates", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.3, 0.4])
    parser.add_argument("--group-sizes", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--bandit-rate", type=float, default=0.2)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--actions", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--spread", type=float, default=0.3, help="clean action values span 0.5 +- spread / 2")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "quality"))
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.steps, args.groups, args.rates = 2, 30, 500, [0.1, 0.3]
        args.prompts, args.batch = 16, 8
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    results = run(args)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "quality.json"), "w") as handle:
        json.dump(results, handle, indent=1)
    print(f"wrote {os.path.join(args.out, 'quality.json')}")
    if not args.no_plot:
        try:
            print(f"wrote {plot(results, os.path.join(args.out, 'quality.png'))}")
        except ImportError:
            print("no plot: matplotlib is not installed (pip install -r requirements/bench.txt)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
