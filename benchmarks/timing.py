"""Shared measuring tools: wall-clock and CUDA-event timers, summary statistics, a peak-memory
probe that runs in a fresh subprocess, progress lines and a description of the machine.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import subprocess
import sys
import time
from typing import Any, Callable

import numpy as np

# --------------------------------------------------------------------------- statistics


def summarize(samples: list[float]) -> dict:
    """Median, quartiles, min and max of per-call times (seconds)."""
    a = np.asarray(samples, dtype=np.float64)
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return {
        "median_s": float(med),
        "q1_s": float(q1),
        "q3_s": float(q3),
        "iqr_s": float(q3 - q1),
        "min_s": float(a.min()),
        "max_s": float(a.max()),
        "mean_s": float(a.mean()),
        "repeats": int(a.size),
    }


# --------------------------------------------------------------------------- timers


class CpuPlan:
    """One contender's wall-clock measurement, calibrated, ready to be sampled.

    A sample is the mean of ``inner`` back-to-back calls, so calls far shorter than the clock's
    resolution (or than ``time.perf_counter``'s own cost) are still measured right.
    """

    def __init__(
        self,
        fn: Callable[[], Any],
        *,
        estimate_s: float,
        repeats: int,
        warmup: int,
        min_repeats: int = 3,
        max_total_s: float = 2.0,
        min_sample_s: float = 2e-4,
        before: Callable[[], Any] | None = None,
    ):
        """``estimate_s`` is one call's time as already seen (the correctness run, which also
        served as the first warm-up). Further warm-up calls are made for calls under 0.5 s.
        ``repeats`` is cut, to no fewer than ``min_repeats``, so the samples take about
        ``max_total_s``; the summary says how many it got. ``before`` runs ahead of every
        sample, outside the clock (e.g. torch.set_num_threads)."""
        self.fn = fn
        self.before = before
        est = max(estimate_s, 1e-7)
        if est < 0.5:
            if before:
                before()
            for _ in range(warmup):
                fn()
            t0 = time.perf_counter()
            fn()
            est = max(time.perf_counter() - t0, 1e-7)
        self.estimate_s = est
        self.inner = max(1, min(10_000, math.ceil(min_sample_s / est)))
        budget = int(max_total_s / (est * self.inner))
        self.repeats = max(min_repeats, min(repeats, budget))
        self.samples: list[float] = []

    @property
    def pending(self) -> bool:
        return len(self.samples) < self.repeats

    def sample(self) -> None:
        if self.before:
            self.before()
        fn, inner = self.fn, self.inner
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        self.samples.append((time.perf_counter() - t0) / inner)

    def summary(self) -> dict:
        out = summarize(self.samples)
        out.update(inner=self.inner, samples_s=list(self.samples), clock="time.perf_counter (wall)")
        return out


def run_interleaved(plans: list[CpuPlan]) -> None:
    """Take the plans' samples round-robin (one sample of each in turn) with the GC off.

    On a shared machine a burst of someone else's load then hits every contender alike
    instead of one of them, so the ratios between contenders stay fair.
    """
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        while any(p.pending for p in plans):
            for p in plans:
                if p.pending:
                    p.sample()
    finally:
        if was_enabled:
            gc.enable()


def time_cuda(fn: Callable[[], Any], *, repeats: int, warmup: int) -> dict:
    """Time ``fn`` on the current CUDA stream with CUDA events, one event pair per call.

    The events bracket the whole call as the host issues it, so host-side work and any host
    sync inside ``fn`` show up as time between the events too.
    """
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
    gc.collect()
    for i in range(repeats):
        starts[i].record()
        fn()
        ends[i].record()
    torch.cuda.synchronize()
    samples = [s.elapsed_time(e) / 1e3 for s, e in zip(starts, ends)]
    out = summarize(samples)
    out.update(inner=1, samples_s=samples, clock="torch.cuda.Event")
    return out


def fmt_time(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


# --------------------------------------------------------------------------- progress


class Progress:
    """One line per step on stderr, with the elapsed time, so long runs show they are alive."""

    def __init__(self, total: int, enabled: bool = True):
        self.total = total
        self.done = 0
        self.start = time.perf_counter()
        self.enabled = enabled

    def step(self, text: str) -> None:
        self.done += 1
        self.note(f"[{self.done:>3}/{self.total}] {text}")

    def note(self, text: str) -> None:
        if self.enabled:
            elapsed = time.perf_counter() - self.start
            print(f"  {elapsed:7.1f}s  {text}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- machine


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _version(module: str) -> str | None:
    try:
        mod = __import__(module)
        return str(getattr(mod, "__version__", "?"))
    except Exception:
        return None


def machine_info() -> dict:
    """What the numbers were measured on: CPU, cores, memory, versions, load."""
    import torch

    cpu_model, cpu_id, flags = None, {}, set()
    for line in _read("/proc/cpuinfo").splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name" and cpu_model is None:
            cpu_model = value
        elif key in ("vendor_id", "cpu family", "model", "stepping", "cache size") and key not in cpu_id:
            cpu_id[key] = value
        elif key == "flags" and not flags:
            flags = set(value.split())
    mem_total_kib = None
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            mem_total_kib = int(line.split()[1])
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": cpu_model or platform.processor() or None,
        "cpu_id": cpu_id,
        "cpu_simd": [f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl") if f in flags],
        "logical_cpus": os.cpu_count(),
        "usable_cpus": affinity,
        "memory_total_gib": round(mem_total_kib / 2**20, 1) if mem_total_kib else None,
        "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "versions": {
            "torch": torch.__version__,
            "numpy": np.__version__,
            "triton": _version("triton"),
            "matplotlib": _version("matplotlib"),
            "verl": _version("verl"),
            "gapo_kernels": _version("gapo_kernels"),
        },
        "torch_parallel": torch.__config__.parallel_info().strip().splitlines()[:6],
        "cuda_available": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["cuda_device"] = props.name
        info["cuda_memory_gib"] = round(props.total_memory / 2**30, 1)
        info["cuda_version"] = torch.version.cuda
    try:
        import gapo_kernels

        if hasattr(gapo_kernels, "build_info"):
            info["gapo_build_info"] = gapo_kernels.build_info()
        if hasattr(gapo_kernels, "available_backends"):
            info["gapo_available_backends"] = list(gapo_kernels.available_backends())
    except Exception as exc:
        info["gapo_import_error"] = f"{type(exc).__name__}: {exc}"
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        info["git_commit"] = commit or None
    except Exception:
        info["git_commit"] = None
    return info


# --------------------------------------------------------------------------- peak memory

_PROBE_ENV = {
    # A fixed mmap threshold turns off glibc's dynamic one: every block over 64 KiB is its own
    # mapping, returned to the OS when freed, so a warm-up's freed workspace cannot hide in
    # the heap and make the measured call look cheaper than it is.
    "MALLOC_MMAP_THRESHOLD_": "65536",
    "MALLOC_TRIM_THRESHOLD_": "0",
}


def _status_kib(field: str) -> int:
    for line in _read("/proc/self/status").splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _measure_call(fn: Callable[[], Any]) -> tuple[int, int, Any]:
    """(RSS before in bytes, peak RSS growth during the call in bytes, output)."""
    gc.collect()
    if not _reset_peak():
        raise RuntimeError("cannot reset VmHWM (/proc/self/clear_refs not writable)")
    before = _status_kib("VmRSS")
    out = fn()
    peak = _status_kib("VmHWM")
    return before * 1024, (peak - before) * 1024, out


def _out_nbytes(out: Any) -> int:
    if hasattr(out, "nbytes"):
        return int(out.nbytes)
    if hasattr(out, "numel"):
        return int(out.numel() * out.element_size())
    if isinstance(out, (tuple, list)):
        return sum(_out_nbytes(o) for o in out)
    return 0


def memory_probe_main(argv: list[str]) -> None:
    """In a fresh process: peak RSS growth of one contender's call on one workload.

    Steps: build the workload and inputs; run the contender once on a small slice of the same
    workload (loads libraries, starts thread pools, without touching big buffers); reset the
    peak; run it on the full workload ("cold": includes any workspace the op keeps after the
    call); then run it again after a reset ("warm"). Both numbers include the output tensor,
    which the caller keeps.
    """
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", required=True)
    ap.add_argument("--contender", required=True)
    ap.add_argument("--threads", type=int, required=True)
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from . import contenders, workloads

    w = workloads.get(args.workload)
    small = workloads.head(w, 64)
    (c,) = contenders.select([args.contender], "cpu")
    prepared_small = c.prepare(small)
    prepared = c.prepare(w)
    prepared_small.fn()
    del prepared_small, small
    before, cold, out = _measure_call(prepared.fn)
    out_bytes = _out_nbytes(out)
    del out
    _, warm, out = _measure_call(prepared.fn)
    del out
    print(
        json.dumps(
            {
                "workload": w.name,
                "contender": c.name,
                "threads": args.threads,
                "input_bytes": w.input_bytes,
                "output_bytes": out_bytes,
                "rss_before_bytes": before,
                "peak_extra_cold_bytes": cold,
                "peak_extra_warm_bytes": warm,
                "peak_extra_bytes": max(cold, warm),
                "ratio_to_input": max(cold, warm) / w.input_bytes,
                "method": "VmHWM - VmRSS around one call, fresh process, glibc mmap threshold fixed at 64 KiB; "
                "includes the output tensor",
            }
        )
    )


def measure_memory(workload: str, contender: str, threads: int, timeout_s: float = 300) -> dict:
    """Run the memory probe in a fresh Python process and return its JSON answer."""
    env = dict(os.environ, **_PROBE_ENV)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [sys.executable, "-m", "benchmarks.timing", "memprobe", "--workload", workload,
           "--contender", contender, "--threads", str(threads)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s, cwd=root)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"workload": workload, "contender": contender, "error": " | ".join(tail) or f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "memprobe":
        memory_probe_main(sys.argv[2:])
    else:
        raise SystemExit("usage: python -m benchmarks.timing memprobe --workload W --contender C --threads T")
