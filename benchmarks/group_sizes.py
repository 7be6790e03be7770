"""The group-size sweep: the CPU op at N = 2^20 float32 rewards for every group size and ragged
mixes, on every CPU path the machine supports, against np.sort of the same padded batch.

``python -m benchmarks.group_sizes [flags]`` (``--help``); ``benchmarks.run`` runs it as a
section too. Each path runs in its own subprocess with GAPO_CPU_ISA set (the path is chosen
when the library loads). In each, per workload: the raw op ``torch.ops.gapo.advantage`` is
checked against the reference on a sample of groups, then it and ``np.sort`` of the NaN-padded
[G, n] batch are timed round-robin (wall clock, min and median of the samples). NumPy in that
subprocess is held to the path's instruction sets (NPY_DISABLE_CPU_FEATURES: on the avx2 run,
no AVX-512), because np.sort is the floor on a CPU that has that path and no more; the fastest
np.sort of any path is printed beside it. The first path
also times ``torch_padded`` (the pure-PyTorch backend) and a copy of the rewards, which do not
depend on the path. Targets (benchmarks/targets.py) are printed PASS / FAIL with ratios and a
PNG of time per reward against group size is drawn.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
N = 1 << 20
GROUP_SIZES = (2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
# Ragged mixes: label -> (sizes drawn uniformly from 1..max, share of rewards NaN).
RAGGED_MIXES = {"ragged_1-64_nan5%": (64, 0.05), "ragged_1-1024": (1024, 0.0)}
TAU, EPS = 0.5, 1e-6


def workload(label: str):
    from . import workloads as W

    if label in RAGGED_MIXES:
        max_size, missing = RAGGED_MIXES[label]
        return W.ragged(f"gs_{label}", label, N, max_size, missing)
    size = int(label)
    return W.uniform_groups(f"gs_{size}", f"{N // size:,} x {size}", N // size, size)


def _check(w, out: np.ndarray) -> None:
    from gapo_kernels import reference

    rng = np.random.default_rng(0)
    groups = np.sort(rng.choice(w.num_groups, size=min(w.num_groups, 512), replace=False))
    for g in groups:
        lo, hi = w.offsets[g], w.offsets[g + 1]
        want = reference.advantage(w.rewards[lo:hi].astype(np.float64), np.array([0, hi - lo]), tau=TAU, eps=EPS)
        np.testing.assert_allclose(out[lo:hi], want, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(want).max(initial=0))))


def worker(labels: list[str], threads: int, repeats: int, max_time: float, extras: bool) -> list[dict]:
    """Measure every workload on this process's CPU path (GAPO_CPU_ISA as set by the caller)."""
    import time

    import torch

    import gapo_kernels

    from . import timing as T

    torch.set_num_threads(threads)
    isa = gapo_kernels.build_info()["cpu_isa"]
    rows = []
    for label in labels:
        w = workload(label)
        rewards = torch.from_numpy(w.rewards)
        offsets = torch.from_numpy(w.offsets)
        padded = w.padded()
        calls = {
            "op": lambda: torch.ops.gapo.advantage(rewards, offsets, TAU, "hdi_median", "rms", EPS, None),
            "numpy_sort": lambda: np.sort(padded, axis=1),
        }
        if extras:
            calls["torch_padded"] = lambda: gapo_kernels.advantage(rewards, offsets, tau=TAU, eps=EPS, backend="torch")
            calls["copy"] = rewards.clone
        row = {"isa": isa, "label": label, "n": w.n, "groups": w.num_groups, "threads": threads,
               "numpy_simd": numpy_simd()}
        try:
            _check(w, calls["op"]().numpy())
        except AssertionError as exc:
            rows.append(row | {"status": "FAILED", "reason": str(exc)[:500]})
            continue
        plans = {}
        for name, fn in calls.items():
            t0 = time.perf_counter()
            fn()
            plans[name] = T.CpuPlan(fn, estimate_s=time.perf_counter() - t0, repeats=repeats, warmup=2,
                                    max_total_s=max_time)
        T.run_interleaved(list(plans.values()))
        row["status"] = "ok"
        for name, plan in plans.items():
            s = plan.summary()
            row[name] = {k: s[k] for k in ("min_s", "median_s", "q1_s", "q3_s", "repeats")}
        rows.append(row)
        print(f"  {isa:<7}{label:<22} op {row['op']['min_s'] * 1e3:7.2f} ms   np.sort {row['numpy_sort']['min_s'] * 1e3:7.2f} ms",
              file=sys.stderr, flush=True)
    return rows


# NumPy's dispatch targets above each CPU path: a CPU that has only that path has none of them,
# so its np.sort (x86-simd-sort, Highway's vqsort) runs without them. Names by prefix, for the
# NumPy 1.x names (AVX512F, AVX512_SKX, ...) and the 2.4+ ones (X86_V4, AVX512_ICL, ...).
# They apply only where this machine runs a path above the one timed: where `neon` is the best
# path (128-bit SVE: Grace, Graviton4), the CPU has SVE and its np.sort uses it.
NUMPY_TARGETS_ABOVE_PATH = {"avx2": ("AVX512", "X86_V4"), "neon": ("SVE",)}


def _numpy_dispatch() -> tuple[list[str], dict[str, bool]]:
    """This NumPy's dispatch targets and the CPU features it found (and was allowed to use)."""
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:  # NumPy 1.x
        from numpy.core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    return __cpu_dispatch__, __cpu_features__


def numpy_targets_above(isa: str) -> list[str]:
    """The dispatch targets of this NumPy that a CPU with only `isa` lacks (NPY_DISABLE_CPU_FEATURES);
    none where `isa` is this machine's best path."""
    import gapo_kernels

    supported = list(gapo_kernels.build_info().get("cpu_isas_supported") or [])
    prefixes = NUMPY_TARGETS_ABOVE_PATH.get(isa, ())
    if not prefixes or isa not in supported or supported.index(isa) == 0:
        return []
    return [t for t in _numpy_dispatch()[0] if t.startswith(prefixes)]


def numpy_held_to(isa: str, env: dict) -> dict:
    """A copy of the environment `env` with NumPy held to `isa`'s instruction sets.

    NumPy refuses NPY_ENABLE_CPU_FEATURES and NPY_DISABLE_CPU_FEATURES together, so where the
    user enables a list, the targets above the path leave that list instead (and where nothing
    would be left, the list goes and the targets are disabled)."""
    env = dict(env)
    above = numpy_targets_above(isa)
    if not above:
        return env
    enabled = env.pop("NPY_ENABLE_CPU_FEATURES", "").replace(",", " ").split()
    kept = [t for t in enabled if t not in above]
    if kept:
        env["NPY_ENABLE_CPU_FEATURES"] = " ".join(kept)
        return env
    disabled = env.get("NPY_DISABLE_CPU_FEATURES", "").replace(",", " ").split()
    env["NPY_DISABLE_CPU_FEATURES"] = " ".join(dict.fromkeys(disabled + above))
    return env


def numpy_simd() -> str:
    """NumPy's dispatch targets in use in this process (after NPY_DISABLE_CPU_FEATURES)."""
    targets, features = _numpy_dispatch()
    return " ".join(t for t in targets if features.get(t)) or "baseline only"


def run_paths(isas: list[str], labels: list[str], threads: int, repeats: int, max_time: float) -> list[dict]:
    """One subprocess per path, with NumPy held to what a CPU with that path has (so np.sort is
    the floor on that CPU); the first one also times torch_padded and the copy."""
    rows = []
    for i, isa in enumerate(isas):
        env = numpy_held_to(isa, dict(os.environ, GAPO_CPU_ISA=isa))
        cmd = [sys.executable, "-m", "benchmarks.group_sizes", "--worker", "--threads", str(threads),
               "--repeats", str(repeats), "--max-time", str(max_time), "--sizes", ",".join(labels)]
        if i == 0:
            cmd.append("--extras")
        proc = subprocess.run(cmd, cwd=os.path.dirname(HERE), env=env, capture_output=True, text=True)
        sys.stderr.write(proc.stderr)
        if proc.returncode != 0:
            rows.append({"isa": isa, "label": "*", "status": "error", "reason": proc.stderr[-800:]})
            continue
        rows += json.loads(proc.stdout.splitlines()[-1])
    return rows


def print_rows(rows: list[dict]) -> None:
    print(f"\n--- group-size sweep: N = {N:,} float32, raw op vs np.sort of the padded batch (min of samples; "
          "samples round-robin on a shared machine) ---")
    print("np.sort runs with NumPy held to the path's instruction sets (what a CPU with only that path"
          " runs); 'best np.sort' is the fastest np.sort this machine ran for that workload, on any path.")
    print(f"{'path':<8}{'workload':<22}{'op':>10}{'ns/reward':>11}{'np.sort':>10}{'np.sort/op':>12}"
          f"{'best np.sort/op':>17}{'torch_padded':>14}{'copy':>10}")
    from . import timing as T

    best_sort: dict[str, float] = {}
    for r in rows:
        if r.get("status") == "ok":
            best_sort[r["label"]] = min(r["numpy_sort"]["min_s"], best_sort.get(r["label"], float("inf")))
    for r in rows:
        if r.get("status") != "ok":
            print(f"{r['isa']:<8}{r['label']:<22}{r.get('status')}: {r.get('reason', '')[:200]}")
            continue
        op, ns = r["op"]["min_s"], r["op"]["min_s"] / r["n"] * 1e9
        extra = "".join(f"{T.fmt_time(r[k]['min_s']) if k in r else '-':>{w}}" for k, w in (("torch_padded", 14), ("copy", 10)))
        print(f"{r['isa']:<8}{r['label']:<22}{T.fmt_time(op):>10}{ns:>11.2f}{T.fmt_time(r['numpy_sort']['min_s']):>10}"
              f"{r['numpy_sort']['min_s'] / op:>11.2f}x{best_sort[r['label']] / op:>16.2f}x{extra}")
    for isa in dict.fromkeys(r["isa"] for r in rows if r.get("status") == "ok"):
        simd = next(r["numpy_simd"] for r in rows if r["isa"] == isa and r.get("status") == "ok")
        print(f"  NumPy's dispatch targets on the {isa} run: {simd}")


def plot(rows: list[dict], path: str) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r.get("status") == "ok" and r["label"].isdigit()]
    if not ok:
        return None
    fig, ax = plt.subplots(figsize=(8.5, 5.5), dpi=120)
    series = {f"op ({isa})": [(int(r["label"]), r["op"]["min_s"] / r["n"] * 1e9) for r in ok if r["isa"] == isa]
              for isa in dict.fromkeys(r["isa"] for r in ok)}
    for name in ("numpy_sort", "torch_padded", "copy"):
        pts = [(int(r["label"]), r[name]["min_s"] / r["n"] * 1e9) for r in ok if name in r]
        if name != "numpy_sort":
            pts = pts[: len(GROUP_SIZES)]
            series[name] = pts
        else:  # one line per NumPy dispatch set used (runs with the same set: their best sample)
            for simd in dict.fromkeys(r.get("numpy_simd", "") for r in ok):
                best: dict[int, float] = {}
                for r in ok:
                    if r.get("numpy_simd", "") == simd:
                        size, ns = int(r["label"]), r[name]["min_s"] / r["n"] * 1e9
                        best[size] = min(ns, best.get(size, ns))
                series[f"np.sort (NumPy targets: {simd or '?'})"] = sorted(best.items())
    for name, pts in series.items():
        style = dict(linewidth=2.0, marker="o") if name.startswith("op") else dict(linestyle="--", marker=".")
        pts = sorted(pts)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=name, **style)
    from .targets import GROUP_SIZE_MAX_NS_PER_REWARD

    ax.axhline(GROUP_SIZE_MAX_NS_PER_REWARD, color="0.5", linewidth=0.8)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("group size (N = 2^20 rewards)")
    ax.set_ylabel("time per reward (ns, min of samples)")
    ax.set_title(f"GAPO advantages by group size, {ok[0]['threads']} thread(s)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def section(threads: int, repeats: int, max_time: float, out_dir: str, isas: list[str] | None = None,
            labels: list[str] | None = None, draw: bool = True) -> tuple[list[dict], list[dict]]:
    """Run, print and judge the sweep; returns (rows, targets). Used by benchmarks.run."""
    import gapo_kernels

    from . import targets as TG

    supported = list(gapo_kernels.build_info().get("cpu_isas_supported") or ["scalar"])
    isas = [i for i in (isas or supported) if i in supported]
    labels = labels or [str(s) for s in GROUP_SIZES] + list(RAGGED_MIXES)
    print(f"\n=== CPU group-size sweep: paths {', '.join(isas)} (of {', '.join(supported)}), {threads} thread(s) ===")
    rows = run_paths(isas, labels, threads, repeats, max_time)
    print_rows(rows)
    unjudged = [isa for isa in isas if isa not in TG.GROUP_SIZE_TARGET_PATHS]
    if unjudged:
        print(f"({', '.join(unjudged)}: the portable path, measured for reference; the targets hold the vector paths)")
    targets = TG.group_size_targets(rows)
    TG.print_targets(targets, threads, title="group-size targets")
    if draw:
        try:
            png = plot(rows, os.path.join(out_dir, "group_sizes.png"))
            print(f"plot:    {png}" if png else "plot:    skipped (no results)")
        except ImportError as exc:
            print(f"plot:    skipped ({exc})")
    return rows, targets


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.group_sizes", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--isas", default=None, help="comma list of CPU paths (default: every one this machine supports)")
    ap.add_argument("--sizes", default=None,
                    help=f"comma list of group sizes and ragged mixes (default: {', '.join(map(str, GROUP_SIZES))}, "
                    f"{', '.join(RAGGED_MIXES)})".replace("%", "%%"))
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: every usable core)")
    ap.add_argument("--repeats", type=int, default=15, help="samples per measurement")
    ap.add_argument("--max-time", type=float, default=0.6, help="seconds of samples per measurement at most")
    ap.add_argument("--out", default=os.path.join(HERE, "results"), help="directory for group_sizes.json and .png")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--extras", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    labels = [s.strip() for s in args.sizes.split(",")] if args.sizes else None
    if args.worker:
        rows = worker(labels, args.threads, args.repeats, args.max_time, args.extras)
        print(json.dumps(rows))
        return 0
    import torch

    threads = args.threads or torch.get_num_threads()
    isas = [s.strip() for s in args.isas.split(",")] if args.isas else None
    rows, targets = section(threads, args.repeats, args.max_time, args.out, isas, labels, draw=not args.no_plot)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "group_sizes.json"), "w") as f:
        json.dump({"rows": rows, "targets": targets}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
