"""The suite's speed targets: what each workload must reach, and their PASS / FAIL / N/A verdicts.

The thresholds are data (RATIO_TARGETS and the constants below); ``evaluate_targets`` reads a
run's results against them and ``print_targets`` prints one line per target with the measured
ratio and the two times it comes from. The group-size sweep (benchmarks/group_sizes.py) is
judged by ``group_size_targets``.
"""

from __future__ import annotations

import math

from . import timing as T
from . import workloads as W

TARGET = "cpu"  # the contender the CPU targets hold to account

# (id, text, numerator (workload, contender), denominator, op, threshold):
# measured = median time of the numerator / median time of the denominator.
RATIO_TARGETS = (
    ("512x16_vs_python_loop", "512x16: cpu >= 1000x faster than python_loop",
     ("512x16", "python_loop"), ("512x16", TARGET), ">=", 1000),
    ("512x16_vs_torch_padded", "512x16: cpu >= 3x faster than torch_padded",
     ("512x16", "torch_padded"), ("512x16", TARGET), ">=", 3),
    ("62500x16_vs_torch_padded", "62,500x16: cpu >= 5x faster than torch_padded",
     ("62500x16", "torch_padded"), ("62500x16", TARGET), ">=", 5),
    ("62500x16_vs_numpy_sort", "62,500x16: cpu no slower than NumPy's bare sort (padded batch)",
     ("62500x16", "numpy_sort"), ("62500x16", TARGET), ">=", 1),
    ("ragged_vs_uniform", "ragged 1M: cpu within 1.5x of its 62,500x16 time",
     ("ragged_1m", TARGET), ("62500x16", TARGET), "<=", 1.5),
    ("group_ids_vs_offsets", "group_ids, shuffled rows, 1M: cpu within 2x of offsets",
     ("groupids_1m", TARGET), ("62500x16", TARGET), "<=", 2),
)
SWEEP_FLATNESS = 1.5  # max / min time per reward over the size sweep 10^4..10^7

# Group-size sweep (N = 2^20 float32, every group size and ragged mixes, each CPU path): the raw
# op no slower than np.sort of the same padded batch, and at most this many ns per reward.
GROUP_SIZE_MIN_SPEEDUP_VS_NUMPY_SORT = 1.0
GROUP_SIZE_MAX_NS_PER_REWARD = 3.0
# The CPU paths the group-size targets hold: the vector ones. The scalar path (portable code,
# for CPUs with none of them) is measured and printed but not judged.
GROUP_SIZE_TARGET_PATHS = ("avx512", "avx2", "sve", "neon")


def ratio(num: float | None, den: float | None) -> float | None:
    """num / den, or None when either is missing, not finite, or den <= 0."""
    if num is None or den is None or den <= 0 or not math.isfinite(num) or not math.isfinite(den):
        return None
    return num / den


def timing_stat(rec: dict | None, stat: str = "median_s") -> float | None:
    """One statistic of a result record's timing, None unless the record is ok."""
    if rec and rec.get("status") == "ok":
        return rec["timing"][stat]
    return None


def verdict(tid: str, text: str, measured: float | None, op: str, threshold: float, detail: str) -> dict:
    if measured is None:
        status = "N/A"
    else:
        status = "PASS" if (measured >= threshold if op == ">=" else measured <= threshold) else "FAIL"
    return {"id": tid, "target": text, "status": status, "measured": measured, "op": op, "threshold": threshold,
            "detail": detail}


def evaluate_targets(results: list[dict], threads_rows: list[dict], memory_rows: list[dict]) -> list[dict]:
    """The CPU speed targets as PASS / FAIL / N/A, each with the measured ratio and its times."""
    cpu = {(r["workload"], r["contender"]): r for r in results if r["device"] == "cpu"}

    def med(workload, contender=TARGET, stat="median_s"):
        return timing_stat(cpu.get((workload, contender)), stat)

    def why_missing(*pairs):
        for wl, ct in pairs:
            r = cpu.get((wl, ct))
            if r is None:
                return f"{ct} not run on {wl}"
            if r["status"] != "ok":
                return f"{ct} on {wl}: {r['status']} ({r.get('reason', '')})"
        return "not measured"

    targets: list[dict] = []

    def record(tid, text, measured, op, threshold, detail):
        targets.append(verdict(tid, text, measured, op, threshold, detail))

    def ratio_target(tid, text, num, den, op, threshold):
        """measured = time(num) / time(den); num and den are (workload, contender)."""
        tn, td = med(*num), med(*den)
        measured = ratio(tn, td)
        if measured is None:
            detail = why_missing(num, den)
        else:
            by_min = ratio(med(*num, stat="min_s"), med(*den, stat="min_s"))
            detail = (f"measured {measured:,.2f}x (target {op} {threshold:g}x): "
                      f"{num[1]}@{num[0]} {T.fmt_time(tn)} / {den[1]}@{den[0]} {T.fmt_time(td)}"
                      f" [min-time ratio: {by_min:,.2f}x]")
        record(tid, text, measured, op, threshold, detail)

    for tid, text, num, den, op, threshold in RATIO_TARGETS:
        ratio_target(tid, text, num, den, op, threshold)

    sweep = sorted((r for r in results if r["device"] == "cpu" and r["contender"] == TARGET and r["status"] == "ok"
                    and r["workload"] in W.SWEEP_NAMES and 1e4 <= r["n"] <= 1e7), key=lambda r: r["n"])
    text = f"size sweep 10^4..10^7: cpu time per reward flat within {SWEEP_FLATNESS:g}x"
    if len(sweep) >= 2:
        per = [r["ns_per_reward"] for r in sweep]
        flat = max(per) / min(per)
        per_min = [r["timing"]["min_s"] / r["n"] * 1e9 for r in sweep]
        span = (f"ns/reward {min(per):.2f}..{max(per):.2f} over N={sweep[0]['n']:,}..{sweep[-1]['n']:,}"
                f" [min-time ratio: {max(per_min) / min(per_min):.2f}x]")
        if sweep[0]["n"] <= 1.1e4 and sweep[-1]["n"] >= 0.99e7:
            record("sweep_linear", text, flat, "<=", SWEEP_FLATNESS, f"measured max/min {flat:.2f}x (target <= 1.5x): {span}")
        else:
            record("sweep_linear", text, None, "<=", 1.5,
                   f"sweep does not span 10^4..10^7 (partial: max/min {flat:.2f}x, {span})")
    else:
        record("sweep_linear", text, None, "<=", 1.5, "cpu not run on the size sweep")

    tr = {(r["contender"], r["threads"]): r for r in threads_rows}
    one, two = tr.get((TARGET, 1)), tr.get((TARGET, 2))
    text = "threads: 2 threads >= 1.6x faster than 1 at 1M (62,500x16)"
    if one and two:
        t1, t2 = one["timing"]["median_s"], two["timing"]["median_s"]
        m1, m2 = one["timing"]["min_s"], two["timing"]["min_s"]
        record("threads_2_vs_1", text, t1 / t2, ">=", 1.6,
               f"measured {t1 / t2:.2f}x (target >= 1.6x): 1 thread {T.fmt_time(t1)} / 2 threads {T.fmt_time(t2)}"
               f" [min-time ratio: {m1 / m2:.2f}x]")
    else:
        record("threads_2_vs_1", text, None, ">=", 1.6, "cpu not measured at 1 and 2 threads (--thread-sweep none, or fewer than 2 usable cores)")

    text = "memory: cpu peak extra memory <= 2x the input's bytes"
    mem = [m for m in memory_rows if m.get("contender") == TARGET and "error" not in m]
    if mem:
        worst = max(mem, key=lambda m: m["ratio_to_input"])
        record("memory", text, worst["ratio_to_input"], "<=", 2.0,
               f"measured worst {worst['ratio_to_input']:.2f}x (target <= 2x): "
               + ", ".join(f"{m['workload']} {m['ratio_to_input']:.2f}x" for m in mem) + " (output included)")
    else:
        errs = [m for m in memory_rows if m.get("contender") == TARGET]
        record("memory", text, None, "<=", 2.0,
               errs[0]["error"] if errs else "not measured (cpu unavailable, or --no-memory)")
    return targets


def print_targets(targets: list[dict], threads: int, title: str | None = None) -> None:
    print(f"\n=== {title} (fp32, {threads} thread(s)) ===" if title else
          f"\n=== CPU targets (fp32, {threads} thread(s), ratios of medians from this run;"
          " [min-time ratios] for reference on a busy machine) ===")
    for t in targets:
        print(f"{t['status']:<5} {t['target']}\n      {t['detail']}")
    counts = {s: sum(t["status"] == s for t in targets) for s in ("PASS", "FAIL", "N/A")}
    print(f"      {counts['PASS']} PASS, {counts['FAIL']} FAIL, {counts['N/A']} N/A")


def group_size_targets(rows: list[dict]) -> list[dict]:
    """Verdicts of the group-size sweep: rows of benchmarks/group_sizes.py, one per (path, workload),
    for the vector paths (GROUP_SIZE_TARGET_PATHS).

    np.sort is the one timed in the same subprocess, with NumPy held to that path's instruction
    sets (what a CPU with only that path runs). Ratios use the minimum times of samples taken
    round-robin (op and np.sort alternate), the figure least moved by other processes on a
    shared machine; medians are in the detail."""
    out = []
    for r in rows:
        if r["isa"] not in GROUP_SIZE_TARGET_PATHS:
            continue
        if r.get("status") != "ok":
            out.append(verdict(f"gs_{r['isa']}_{r['label']}_vs_numpy_sort", f"{r['isa']} · {r['label']}: op no slower than np.sort",
                               None, ">=", GROUP_SIZE_MIN_SPEEDUP_VS_NUMPY_SORT, r.get("reason", "not measured")))
            continue
        op, npsort = r["op"], r["numpy_sort"]
        speedup = ratio(npsort["min_s"], op["min_s"])
        out.append(verdict(
            f"gs_{r['isa']}_{r['label']}_vs_numpy_sort", f"{r['isa']} · {r['label']}: op no slower than np.sort (padded batch)",
            speedup, ">=", GROUP_SIZE_MIN_SPEEDUP_VS_NUMPY_SORT,
            f"np.sort / op = {speedup:.2f}x on min times ({T.fmt_time(npsort['min_s'])} / {T.fmt_time(op['min_s'])});"
            f" medians {T.fmt_time(npsort['median_s'])} / {T.fmt_time(op['median_s'])};"
            f" NumPy's targets: {r.get('numpy_simd', 'not recorded')}"))
        ns = op["min_s"] / r["n"] * 1e9
        out.append(verdict(
            f"gs_{r['isa']}_{r['label']}_ns_per_reward", f"{r['isa']} · {r['label']}: op <= {GROUP_SIZE_MAX_NS_PER_REWARD:g} ns per reward",
            ns, "<=", GROUP_SIZE_MAX_NS_PER_REWARD, f"{ns:.2f} ns per reward (min), {op['median_s'] / r['n'] * 1e9:.2f} (median)"))
    return out
