"""The benchmark suite: ``python -m benchmarks.run [flags]`` (``--help`` lists them).

For every workload (benchmarks/workloads.py) and every available contender
(benchmarks/contenders.py), in one process and on the same data:
  1. run the contender once and check its output against the NumPy reference (in full for
     small workloads, on a fixed sample of whole groups for big ones); a wrong answer is
     reported as FAILED and not timed;
  2. time it (wall clock, samples of all contenders of a workload taken round-robin);
then print a table per workload, the thread scaling, the peak memory, the CPU speed targets
as PASS/FAIL lines, and a GPU section when CUDA is there. Results go to a JSON file and the
size sweep to a PNG plot (``--out``, default benchmarks/results/).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
import time
import traceback

import numpy as np
import torch

from . import contenders as C
from . import targets as TG
from . import timing as T
from . import workloads as W

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = TG.TARGET
THREAD_WORKLOAD = "62500x16"
MEMORY_WORKLOADS = ("62500x16", "ragged_1m", "groupids_1m")


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="Time gapo_kernels against python_loop, torch_padded, verl's GRPO and floors; "
        "check every answer against the reference first.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("--workloads", default="all",
                    help="comma list of workload names, or 'main', 'sweep', 'all'. "
                    f"Names: {', '.join(W.MAIN_NAMES + W.SWEEP_NAMES)}")
    ap.add_argument("--backends", "--contenders", dest="contenders", default=None,
                    help="comma list of contenders (default: all but 'reference' and 'python_loop_tensors'). "
                    f"Names: {', '.join(C.all_names())}")
    ap.add_argument("--repeats", type=int, default=25, help="timed samples per measurement (cut for slow calls)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed calls before timing (after the checked call)")
    ap.add_argument("--max-time", type=float, default=1.5,
                    help="seconds of samples per measurement at most (never fewer than 3 samples)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads for the tables (default: every usable core)")
    ap.add_argument("--thread-sweep", default="auto",
                    help=f"thread counts for the scaling section on {THREAD_WORKLOAD} ('auto' = 1 and --threads; 'none')")
    ap.add_argument("--python-loop-max-n", type=float, default=3e6,
                    help="largest N that python_loop (and reference) are run on; bigger workloads skip them")
    ap.add_argument("--sweep-max", type=float, default=1e7, help="largest N of the size sweep")
    ap.add_argument("--check-full-max-n", type=float, default=2e6,
                    help="workloads up to this N are checked in full; bigger ones on a sample of whole groups")
    ap.add_argument("--check-sample-groups", type=int, default=1024, help="groups in the check's sample")
    ap.add_argument("--gpu-repeats", type=int, default=100, help="CUDA-event samples per GPU measurement")
    ap.add_argument("--gpu-warmup", type=int, default=10, help="warm-up calls per GPU measurement")
    ap.add_argument("--no-gpu", action="store_true", help="skip the GPU section even when CUDA is there")
    ap.add_argument("--no-cpu", action="store_true", help="skip the CPU section (and thread scaling, memory)")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory probes")
    ap.add_argument("--no-plot", action="store_true", help="do not draw the size-sweep PNG")
    ap.add_argument("--group-sizes", choices=("auto", "on", "off"), default="auto",
                    help="the group-size sweep on every CPU path (benchmarks/group_sizes.py); auto: with --workloads all")
    ap.add_argument("--quick", action="store_true",
                    help="a fast smoke run: fewer workloads (sweep to 1e6), fewer repeats, memory on one workload")
    ap.add_argument("--out", default=os.path.join(HERE, "results"), help="directory for results.json and size_sweep.png")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = ap.parse_args(argv)
    if args.quick:
        if args.workloads == "all":
            args.workloads = "512x16,62500x16,ragged_1m,groupids_1m,sweep"
        args.sweep_max = min(args.sweep_max, 1e6)
        args.repeats = min(args.repeats, 9)
        args.max_time = min(args.max_time, 0.4)
        args.python_loop_max_n = min(args.python_loop_max_n, 1.1e6)
        args.gpu_repeats = min(args.gpu_repeats, 30)
    return args


# --------------------------------------------------------------------------- helpers


def _fmt_ratio(r: float | None) -> str:
    if r is None:
        return "-"
    if r >= 100:
        return f"{r:,.0f}x"
    if r >= 10:
        return f"{r:.1f}x"
    return f"{r:.2f}x"


class Suite:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.results: list[dict] = []
        self.oracle = C.Oracle(int(args.check_full_max_n), args.check_sample_groups)
        self.threads = args.threads or torch.get_num_threads()
        torch.set_num_threads(self.threads)
        self.names = W.expand(args.workloads, args.sweep_max)
        wanted = [s.strip() for s in args.contenders.split(",")] if args.contenders else None
        if wanted:
            unknown = [n for n in wanted if n not in C.all_names()]
            if unknown:
                raise SystemExit(f"unknown contender(s) {unknown}; known: {', '.join(C.all_names())}")
        self.wanted = wanted
        self.progress = T.Progress(0, enabled=not args.quiet)
        self.contender_info: dict[str, dict] = {}
        self.workload_summaries: dict[str, dict] = {}

    # ---------------------------------------------------------------- one workload, one device

    def _skip(self, device, w, c, status, reason, **extra) -> dict:
        rec = {"device": device, "workload": w.name, "n": w.n, "contender": c.name, "role": c.role,
               "status": status, "reason": reason, **extra}
        self.results.append(rec)
        return rec

    def run_workload(self, w: W.Workload, device: str, cands: list[C.Contender]) -> list[dict]:
        recs, plans = [], []
        for c in cands:
            ok, why = c.supports(w)
            if not ok:
                recs.append(self._skip(device, w, c, "skipped", why))
                continue
            if c.max_n is not None and w.n > c.max_n:
                recs.append(self._skip(device, w, c, "skipped", f"N={w.n:,} > {c.max_n:,}, this contender's limit (too slow)"))
                continue
            if c.slow and w.n > self.args.python_loop_max_n:
                recs.append(self._skip(device, w, c, "skipped",
                                       f"N={w.n:,} > --python-loop-max-n {int(self.args.python_loop_max_n):,} (too slow to time here)"))
                continue
            self.progress.note(f"{device} · {w.name} · {c.name}: check")
            try:
                prepared = c.prepare(w)
                if device == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                out = prepared.fn()
                if device == "cuda":
                    torch.cuda.synchronize()
                first_s = time.perf_counter() - t0
                check = None
                if c.check is not None:
                    check = self.oracle.check(w, c, prepared.to_numpy(out))
                del out
            except Exception as exc:
                recs.append(self._skip(device, w, c, "error", f"{type(exc).__name__}: {exc}",
                                       traceback=traceback.format_exc(limit=4)))
                continue
            if check is not None and not check["ok"]:
                recs.append(self._skip(device, w, c, "FAILED", check.get("detail", "mismatch"), check=check))
                continue
            rec = {"device": device, "workload": w.name, "n": w.n, "contender": c.name, "role": c.role,
                   "status": "ok", "check": check or {"ok": None, "scope": "not an advantage (floor): unchecked"},
                   "first_call_s": first_s}
            self.results.append(rec)
            recs.append(rec)
            if device == "cpu":
                plans.append((rec, T.CpuPlan(prepared.fn, estimate_s=first_s, repeats=self.args.repeats,
                                             warmup=self.args.warmup, max_total_s=self.args.max_time)))
            else:
                self.progress.note(f"{device} · {w.name} · {c.name}: timing")
                rec["timing"] = T.time_cuda(prepared.fn, repeats=self.args.gpu_repeats, warmup=self.args.gpu_warmup)
        if plans:
            self.progress.note(f"{device} · {w.name}: timing {len(plans)} contenders (interleaved)")
            T.run_interleaved([p for _, p in plans])
            for rec, plan in plans:
                rec["timing"] = plan.summary()
        by_name = {r["contender"]: r for r in recs}
        for r in recs:
            if r["status"] != "ok":
                continue
            med = r["timing"]["median_s"]
            r["ns_per_reward"] = med / w.n * 1e9 if w.n else None
            r["speedup_vs_python_loop"] = TG.ratio(TG.timing_stat(by_name.get("python_loop")), med)
            r["speedup_vs_torch_padded"] = TG.ratio(TG.timing_stat(by_name.get("torch_padded")), med)
        return recs

    # ---------------------------------------------------------------- sections

    def available(self, device: str) -> list[C.Contender]:
        out = []
        for c in C.select(self.wanted, device):
            ok, why = c.available()
            self.contender_info[f"{device}:{c.name}"] = {"device": device, "role": c.role, "description": c.description,
                                                        "available": ok, "reason": why}
            if ok:
                out.append(c)
            else:
                print(f"  [{device}] {c.name}: skipped: {why}")
        return out

    def cpu_section(self) -> None:
        print(f"\n=== CPU: {self.threads} thread(s), float32, tau={C.TAU}, eps={C.EPS} ===")
        cands = self.available("cpu")
        for name in self.names:
            self.progress.step(f"cpu · {name}: generating")
            w = W.get(name)
            self.workload_summaries[name] = w.summary()
            recs = self.run_workload(w, "cpu", cands)
            print_table(w, recs, self.args.repeats)

    def thread_section(self) -> list[dict]:
        spec = self.args.thread_sweep
        if spec == "none":
            return []
        counts = sorted({1, self.threads}) if spec == "auto" else sorted({int(x) for x in spec.split(",") if x})
        if len(counts) < 2 and spec == "auto":
            print(f"\n(thread scaling skipped: only {self.threads} thread available)")
            return []
        cands = [c for c in C.select(self.wanted, "cpu") if c.name in (TARGET, "torch_padded") and c.available()[0]]
        if not cands:
            return []
        w = W.get(THREAD_WORKLOAD)
        self.progress.step(f"cpu · {w.name}: thread scaling {counts}")
        rows, plans = [], []
        for c in cands:
            prepared = c.prepare(w)
            for t in counts:
                before = (lambda t=t: torch.set_num_threads(t))
                before()
                t0 = time.perf_counter()
                prepared.fn()
                est = time.perf_counter() - t0
                plan = T.CpuPlan(prepared.fn, estimate_s=est, repeats=self.args.repeats, warmup=self.args.warmup,
                                 max_total_s=self.args.max_time, before=before)
                row = {"workload": w.name, "n": w.n, "contender": c.name, "threads": t}
                rows.append(row)
                plans.append((row, plan))
        T.run_interleaved([p for _, p in plans])
        torch.set_num_threads(self.threads)
        for row, plan in plans:
            row["timing"] = plan.summary()
        print(f"\n--- thread scaling on {w.name} ({w.describe()}) ---")
        print(f"{'contender':<14}{'threads':>8}{'median':>12}{'IQR':>12}{'speed-up vs 1 thread':>24}")
        for row in rows:
            base = next((r for r in rows if r["contender"] == row["contender"] and r["threads"] == counts[0]), None)
            row["speedup_vs_min_threads"] = TG.ratio(base["timing"]["median_s"], row["timing"]["median_s"]) if base else None
            tm = row["timing"]
            print(f"{row['contender']:<14}{row['threads']:>8}{T.fmt_time(tm['median_s']):>12}"
                  f"{T.fmt_time(tm['iqr_s']):>12}{_fmt_ratio(row['speedup_vs_min_threads']):>24}")
        return rows

    def memory_section(self) -> list[dict]:
        if self.args.no_memory:
            return []
        names = [n for n in MEMORY_WORKLOADS if n in self.names] or [THREAD_WORKLOAD]
        if self.args.quick:
            names = names[:1]
        cands = [c.name for c in C.select(self.wanted, "cpu") if c.name in (TARGET, "torch_padded") and c.available()[0]]
        rows = []
        for name in names:
            for c in cands:
                self.progress.step(f"memory · {name} · {c} (fresh process)")
                rows.append(T.measure_memory(name, c, self.threads))
        if rows:
            print("\n--- peak extra memory of one call (fresh process; VmHWM - VmRSS; includes the output) ---")
            print(f"{'workload':<14}{'contender':<14}{'input':>10}{'output':>10}{'peak extra':>12}{'x input':>9}"
                  f"{'cold':>10}{'warm':>10}")
            for r in rows:
                if "error" in r:
                    print(f"{r['workload']:<14}{r['contender']:<14} error: {r['error']}")
                    continue
                mib = lambda b: f"{b / 2**20:.1f}M"  # noqa: E731
                print(f"{r['workload']:<14}{r['contender']:<14}{mib(r['input_bytes']):>10}{mib(r['output_bytes']):>10}"
                      f"{mib(r['peak_extra_bytes']):>12}{r['ratio_to_input']:>8.2f}x"
                      f"{mib(r['peak_extra_cold_bytes']):>10}{mib(r['peak_extra_warm_bytes']):>10}")
        return rows

    def gpu_section(self) -> None:
        if self.args.no_gpu:
            return
        if not torch.cuda.is_available():
            print("\n=== GPU: skipped (torch.cuda.is_available() is False) ===")
            return
        dev = torch.cuda.get_device_name(0)
        print(f"\n=== GPU: {dev}; CUDA events, {self.args.gpu_warmup} warm-up calls, "
              f"{self.args.gpu_repeats} samples per measurement ===")
        cands = self.available("cuda")
        for name in self.names:
            self.progress.step(f"cuda · {name}")
            w = W.get(name)
            self.workload_summaries.setdefault(name, w.summary())
            recs = self.run_workload(w, "cuda", cands)
            print_table(w, recs, None, device="cuda")
            torch.cuda.empty_cache()


# --------------------------------------------------------------------------- output


def print_table(w: W.Workload, recs: list[dict], requested: int | None, device: str = "cpu") -> None:
    print(f"\n--- {w.name}: {w.title} [{device}] ---")
    print(f"    {w.describe()}" + (f"; {w.note}" if w.note else ""))
    head = (f"{'contender':<22}{'check':<10}{'median':>10}{'IQR':>10}{'min':>10}{'max':>10}"
            f"{'ns/reward':>11}{'samples':>10}{'vs python_loop':>16}{'vs torch_padded':>17}")
    print(head)
    scopes = set()
    for r in recs:
        name = r["contender"]
        if r["status"] != "ok":
            print(f"{name:<22}{r['status']:<10}{r.get('reason', '')}")
            continue
        chk = r["check"]
        if chk.get("ok") is None:
            cs = "floor"
        else:
            cs = "ok" + ("*" if chk["scope"].startswith("sampled") else "")
            scopes.add(chk["scope"])
        tm = r["timing"]
        samples = f"{tm['repeats']}" + (f"x{tm['inner']}" if tm.get("inner", 1) > 1 else "")
        print(f"{name:<22}{cs:<10}{T.fmt_time(tm['median_s']):>10}{T.fmt_time(tm['iqr_s']):>10}"
              f"{T.fmt_time(tm['min_s']):>10}{T.fmt_time(tm['max_s']):>10}{r['ns_per_reward']:>11.2f}{samples:>10}"
              f"{_fmt_ratio(r['speedup_vs_python_loop']):>16}{_fmt_ratio(r['speedup_vs_torch_padded']):>17}")
    for s in sorted(scopes):
        mark = " (*)" if s.startswith("sampled") else ""
        print(f"    checked vs reference{mark}: {s}")
    for r in recs:
        chk = r.get("check") or {}
        if r["status"] == "ok" and chk.get("against") and "hdi_median" not in chk["against"]:
            print(f"    {r['contender']} is plain GRPO: checked vs {chk['against']} (rtol {chk['rtol']:g})")
    if requested:
        cut = [r for r in recs if r["status"] == "ok" and r["timing"]["repeats"] < requested]
        if cut:
            print(f"    fewer than {requested} samples (slow calls; --max-time budget): "
                  + ", ".join(f"{r['contender']} ({r['timing']['repeats']})" for r in cut))


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.time()
    suite = Suite(args)
    machine = T.machine_info()
    names = suite.names
    gpu = torch.cuda.is_available() and not args.no_gpu
    suite.progress.total = len(names) * (2 if gpu else 1) + 1 + (0 if args.no_memory else 6)
    print("gapo_kernels benchmark suite")
    print(f"  machine: {machine['cpu_model']} · {machine['usable_cpus']} usable CPUs · "
          f"{machine['memory_total_gib']} GiB · load avg {', '.join(f'{x:.2f}' for x in machine['loadavg_at_start'] or [])}")
    print(f"  torch {machine['versions']['torch']} · numpy {machine['versions']['numpy']} · "
          f"verl {machine['versions']['verl'] or 'not installed'} · gapo_kernels backends "
          f"{machine.get('gapo_available_backends', machine.get('gapo_import_error', '?'))}")
    print(f"  workloads: {', '.join(names)}")
    load = (machine.get("loadavg_at_start") or [0.0])[0]
    if load > 0.5:
        print(f"  WARNING: load average {load:.2f} at start: other processes share these cores, "
              "so timings are noisier than on an idle machine (see IQR, min)")

    threads_rows: list[dict] = []
    memory_rows: list[dict] = []
    if not args.no_cpu:
        suite.cpu_section()
        threads_rows = suite.thread_section()
        memory_rows = suite.memory_section()
    group_size_rows: list[dict] = []
    group_size_verdicts: list[dict] = []
    if not args.no_cpu and (args.group_sizes == "on" or (args.group_sizes == "auto" and args.workloads == "all")):
        from . import group_sizes as GS

        labels = ["2", "16", "256", "4096", next(iter(GS.RAGGED_MIXES))] if args.quick else None
        group_size_rows, group_size_verdicts = GS.section(suite.threads, args.repeats, args.max_time, args.out,
                                                          labels=labels, draw=not args.no_plot)
    suite.gpu_section()
    targets = TG.evaluate_targets(suite.results, threads_rows, memory_rows)
    TG.print_targets(targets, suite.threads)

    os.makedirs(args.out, exist_ok=True)
    payload = {
        "schema": "gapo_kernels.bench/1",
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([os.path.basename(sys.executable), "-m", "benchmarks.run"] + (argv or sys.argv[1:])),
        "config": {k: v for k, v in vars(args).items()} | {"threads": suite.threads, "tau": C.TAU, "eps": C.EPS,
                                                           "dtype": "float32", "seed": W.BASE_SEED},
        "machine": machine,
        "workloads": {n: suite.workload_summaries.get(n) or W.get(n).summary() for n in names},
        "contenders": suite.contender_info,
        "results": suite.results,
        "thread_scaling": threads_rows,
        "memory": memory_rows,
        "targets": targets,
        "group_sizes": group_size_rows,
        "group_size_targets": group_size_verdicts,
        "loadavg_at_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "wall_s": time.time() - started,
    }
    path = os.path.join(args.out, "results.json")
    with open(path, "w") as f:
        json.dump(payload, f, indent=1, default=_json_default)
    print(f"\nresults: {path}")
    if not args.no_plot:
        try:
            from .plot import plot_sweep

            png = plot_sweep(payload, os.path.join(args.out, "size_sweep.png"))
            print(f"plot:    {png}" if png else "plot:    skipped (no size-sweep results)")
        except ImportError as exc:
            print(f"plot:    skipped ({exc}; pip install -r requirements/bench.txt)")
    end_load = payload["loadavg_at_end"]
    print(f"total wall time {time.time() - started:.0f} s; load average at end "
          + (", ".join(f"{x:.2f}" for x in end_load) if end_load else "?"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
