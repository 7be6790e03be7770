"""One prepared check of the CUDA and Triton backends on a real GPU (H100/H200), in one call.

    python scripts/gpu_check.py OUTDIR [--budget SECONDS]      (scripts/gpu_check.sh wraps it)

Steps, in order of importance, each a subprocess with its own time box (shrunk to what is left
of the budget, default 440 s), so a hang or a crash costs one step, never the report:

  env        driver, GPU, torch, triton, nvcc, compute-sanitizer and ncu versions
  build      pip wheel (GAPO_CUDA_ARCH, default 90); its built files copied into gapo_kernels/
  info       gapo_kernels.build_info() and the backends this build offers on cuda
  warm       Triton's JIT cache warmed in parallel processes (the later steps then compile nothing)
  smoke      every size-class boundary, empty / all-missing / signed-zero groups, 4 dtypes,
             int32/int64 offsets, strided input, hints (none, exact, cautious, too small),
             against the reference; window bounds and Q bit for bit between cpu and cuda
  capture    no host sync with a hint (torch.cuda.set_sync_debug_mode("error")), and CUDA-graph
             capture + replay of every path, cuda and triton
  timings    CUDA-event timings at 1M rewards (sizes 2..1024 and the cliff cases): cuda, triton
             and the torch backend, eager and graph-replayed, against torch.sort of the padded
             batch and a device copy
  sanitizer  compute-sanitizer memcheck, racecheck, synccheck, initcheck on tiny inputs of
             every path (the four tools in parallel)
  pytest     pytest -m gpu -x with a small hypothesis profile

OUTDIR gets three files (a borrowed machine sends back only a few): report.json (every step's
status, time and results), summary.md (the tables a person reads) and logs.txt (the tail of
every step's log); scratch lives in build/gpu-check/. Without a GPU the check says so, shows the steps it would run
and checks that it can build its inputs, then exits 0. The exit status is 0 unless the check
itself could not run; failures are in the report.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
THIS = Path(__file__).resolve()
sys.path.insert(0, str(ROOT))  # the source tree, with the built _C copied in by the build step
STEPS = ["env", "build", "info", "warm", "smoke", "capture", "timings", "sanitizer", "pytest"]
# Time box of each step in seconds (before shrinking to the budget left).
TIME_BOX = {"env": 30, "build": 240, "info": 40, "warm": 120, "smoke": 120, "capture": 90, "timings": 150,
            "sanitizer": 150, "pytest": 150}
NEEDS_BUILD = {"info"}  # the others check whatever backends the tree offers (triton without _C)
RESERVE = 10  # seconds kept for writing the report
WORK = ROOT / "build" / "gpu-check"  # step logs, step results, scratch: not sent back
LOG_TAIL = 60_000  # characters of each step's log kept in logs.txt
DTYPES = ("float32", "bfloat16", "float16", "float64")


# --------------------------------------------------------------------------------------------
# Inputs shared by the steps
# --------------------------------------------------------------------------------------------
def boundary_sizes() -> list:
    """Group sizes around every size-class boundary of both kernels, plus the large path."""
    sizes = [0, 1, 2, 3]
    for capacity in (4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096):
        sizes += [capacity, capacity + 1]
    return sizes + [0, 7, 3000]


def smoke_batch(dtype_name: str, seed: int = 0):
    """(values float64 ndarray, offsets int64 ndarray, sizes) exact in dtype_name."""
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    parts = []
    for size in boundary_sizes():
        values = np.round(rng.normal(rng.normal(), rng.uniform(0.1, 3.0), size=size), 2)
        if size > 8:
            values[rng.random(size) < 0.05] = np.nan
        parts.append(values)
    parts.append(np.array([np.nan, np.inf, -np.inf, np.nan]))  # all missing
    parts.append(np.array([-0.0, 0.0, 0.0, -0.0, 1.0, -0.0, 2.0]))  # signed zeros
    parts.append(np.array([0.0, -0.0] * 20 + [0.5]))
    parts.append(np.full(9, 0.1))  # all equal
    values = np.concatenate(parts)
    dtype = getattr(torch, dtype_name)
    values = torch.as_tensor(values).to(dtype).double().numpy()  # exact in the dtype
    sizes = [len(p) for p in parts]
    return values, np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64), sizes


def strided(values, dtype, stride, device="cuda"):
    import torch

    storage = torch.full((max(1, len(values) * stride),), float("nan"), dtype=dtype, device=device)
    view = storage[::stride][: len(values)]
    view.copy_(torch.as_tensor(values, dtype=torch.float64).to(dtype))
    return view


RTOL = {"float64": 1e-10, "float32": 1e-5, "float16": 2e-3, "bfloat16": 1.6e-2}


def compare(out, values, offsets, sizes, dtype_name, hint, **kw) -> dict:
    """Max errors of `out` against the reference; groups larger than the hint must be NaN."""
    import numpy as np

    from gapo_kernels import reference

    got = out.detach().to("cpu").double().numpy()
    expected = reference.advantage(values, offsets, **kw)
    bad_nan = 0
    ok = np.ones(len(values), dtype=bool)
    if hint is not None:
        for g, size in enumerate(sizes):
            if size > hint:
                rows = slice(offsets[g], offsets[g + 1])
                bad_nan += int((~np.isnan(got[rows])).sum())
                ok[rows] = False
    rtol = RTOL[dtype_name]
    err = np.abs(got[ok] - expected[ok])
    scale = np.maximum(1.0, np.abs(expected[ok]).max(initial=0.0))
    nonfinite = int((~np.isfinite(got[ok])).sum())
    max_rel = float((err / scale).max(initial=0.0)) if err.size else 0.0
    passed = nonfinite == 0 and bad_nan == 0 and bool(np.all(err <= rtol * (np.abs(expected[ok]) + scale)))
    return {"passed": passed, "max_err_over_scale": max_rel, "nonfinite": nonfinite, "not_nan_beyond_hint": bad_nan}


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, default=str))


def cuda_backends():
    import gapo_kernels

    return [b for b in ("cuda", "triton") if b in gapo_kernels.available_backends("cuda")]


# --------------------------------------------------------------------------------------------
# Steps (each runs in its own process: python gpu_check.py --step NAME OUTDIR)
# --------------------------------------------------------------------------------------------
def run_cmd(cmd, timeout=60, **kw) -> dict:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
        return {"cmd": " ".join(map(str, cmd)), "rc": done.returncode, "out": (done.stdout + done.stderr)[-3000:]}
    except FileNotFoundError:
        return {"cmd": " ".join(map(str, cmd)), "rc": None, "out": "not found"}
    except subprocess.TimeoutExpired:
        return {"cmd": " ".join(map(str, cmd)), "rc": None, "out": "timed out"}


def step_env(out: Path) -> dict:
    import torch

    result = {"python": sys.version.split()[0], "platform": platform.platform(), "torch": torch.__version__,
              "torch_cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available()}
    try:
        import triton

        result["triton"] = triton.__version__
    except ImportError as error:
        result["triton"] = f"not importable: {error}"
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        result.update(gpu=props.name, capability=f"{props.major}.{props.minor}", sms=props.multi_processor_count,
                      memory_gib=round(props.total_memory / 2**30, 1))
    result["nvidia_smi"] = run_cmd(["nvidia-smi", "--query-gpu=name,driver_version,clocks.max.sm,power.limit",
                                    "--format=csv,noheader"])["out"].strip()
    for tool in ("nvcc", "compute-sanitizer", "ncu", "cmake", "ninja"):
        path = shutil.which(tool)
        lines = run_cmd([tool, "--version"])["out"].strip().splitlines() if path else []
        result[tool] = sorted({lines[0], lines[-1]}) if lines else None
    for module in ("scikit_build_core", "pybind11", "pytest", "hypothesis"):
        try:
            result[module] = __import__(module).__version__
        except Exception as error:  # noqa: BLE001 - reported, not raised
            result[module] = f"missing: {error}"
    print(json.dumps(result, indent=1))
    return result


def step_build(out: Path) -> dict:
    wheel_dir = ROOT / "build" / "gpu-check-wheel"
    shutil.rmtree(wheel_dir, ignore_errors=True)
    env = dict(os.environ)
    env.setdefault("GAPO_CUDA_ARCH", "90")
    env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 8))
    start = time.time()
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-w", str(wheel_dir), str(ROOT)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    print(done.stdout[-6000:], done.stderr[-6000:])
    result = {"cmd": " ".join(cmd), "rc": done.returncode, "seconds": round(time.time() - start, 1),
              "GAPO_CUDA_ARCH": env["GAPO_CUDA_ARCH"]}
    if done.returncode != 0:
        lines = (done.stdout + done.stderr).splitlines()
        errors = [line for line in lines if "error" in line.lower() and "warning" not in line.lower()]
        result["error"] = "\n".join(errors[:40]) + "\n" + "\n".join(lines[-20:])
        print("\n".join(errors[:40]))
        return result
    import zipfile

    wheel = next(wheel_dir.glob("*.whl"))
    with zipfile.ZipFile(wheel) as z:
        # Every built file of the package (the extension, libraries under it), put beside the
        # sources in the wheel's layout: the tree then imports as the installed package does.
        libs = [n for n in z.namelist() if n.startswith("gapo_kernels/") and not n.endswith("/")
                and not n.endswith((".py", ".pyc", ".md", ".txt", ".json"))]
        for name in libs:
            (ROOT / name).parent.mkdir(parents=True, exist_ok=True)
            (ROOT / name).write_bytes(z.read(name))
    result.update(wheel=wheel.name, libraries=libs)
    return result


def step_info(out: Path) -> dict:
    import torch

    import gapo_kernels

    info = gapo_kernels.build_info()
    result = {"build_info": info, "available_backends_cuda": gapo_kernels.available_backends("cuda")}
    r = torch.rand(64, device="cuda")
    o = torch.arange(0, 65, 8, device="cuda")
    result["first_call"] = gapo_kernels.advantage(r, o, backend="cuda")[:4].tolist()
    print(json.dumps(result, indent=1, default=str))
    return result


def _warm_one(spec):
    """Runs one Triton call shape so its kernels are compiled into triton's on-disk cache."""
    kind, payload = spec
    import torch

    import gapo_kernels

    start = time.time()
    if kind == "smoke":
        run_smoke_call("triton", payload)
    else:  # (sizes, hint): float32 rand, as the capture and timing steps call it
        sizes, hint = payload
        offsets = torch.tensor([0] + list(__import__("itertools").accumulate(sizes)), device="cuda")
        rewards = torch.rand(int(offsets[-1]), device="cuda")
        gapo_kernels.advantage(rewards, offsets, backend="triton", max_group_size=hint)
    torch.cuda.synchronize()
    return round(time.time() - start, 2)


def warm_specs() -> list:
    """Every Triton call shape of the smoke, capture and timing steps (timings on tiny batches:
    the kernels' sizes are runtime arguments, so a tiny batch compiles the same kernels)."""
    specs = [("smoke", call) for call in smoke_calls("triton")]
    for _, sizes, hint in _paths("triton"):
        specs.append(("shape", (sizes, hint)))
    for size in (2, 4, 8, 16, 32, 64, 128, 256, 512, 1024):
        specs += [("shape", ([size] * 3, size)), ("shape", ([size] * 3, None))]
    specs += [("shape", ([16] * 3 + [2000], 2000)), ("shape", ([16] * 3 + [2000], None)),
              ("shape", ([16] * 3, 2048)), ("shape", ([16] * 3 + [2000], 2048)),
              ("shape", ([1, 7, 100, 1000, 300], 1024)), ("shape", ([1, 7, 100, 1000, 300], None))]
    return specs


def step_warm(out: Path) -> dict:
    import multiprocessing as mp

    if "triton" not in cuda_backends():
        return {"skipped": "triton is not available"}
    specs = warm_specs()
    ctx = mp.get_context("spawn")
    start = time.time()
    with ctx.Pool(min(len(specs), max(2, (os.cpu_count() or 8) - 2))) as pool:
        seconds = pool.map(_warm_one, specs, chunksize=1)
    result = {"call_shapes": len(specs), "seconds": round(time.time() - start, 1), "slowest_call_s": max(seconds),
              "sum_of_calls_s": round(sum(seconds), 1)}
    print(json.dumps(result, indent=1))
    return result


def smoke_calls(backend: str) -> list:
    """(dtype, index dtype, stride, hint, baseline, scale, eps, batch seed) of the smoke step.

    CUDA gets the whole matrix. Triton compiles a kernel per launch shape (~3 s each), so it
    gets every hint on float32, and one plan per other dtype, offsets type and stride."""
    largest = max(boundary_sizes())
    calls = []
    for dtype in DTYPES:
        for index_dtype in ("int32", "int64"):
            for stride in (1, 3):
                for hint in (None, largest, 2048, 16):
                    full = dtype == "float32" and index_dtype == "int64" and stride == 1
                    if backend == "triton" and not (full or (hint is None and (
                            (index_dtype == "int64" and stride == 1) or dtype == "float32"))):
                        continue
                    if stride == 3 and hint not in (None, 2048):
                        continue
                    calls.append((dtype, index_dtype, stride, hint, "hdi_median", "rms", 1e-6, 0))
    # Every baseline and scale: on CUDA with the boundary batch, on Triton with small groups
    # under a hint of 16 (one direct launch each).
    for dtype in ("float32", "float64"):
        for baseline in ("hdi_median", "hdi_mean", "median", "mean"):
            for scale in ("rms", "std", "none"):
                for eps in (1e-6, 0.0):
                    if backend == "cuda":
                        calls.append((dtype, "int64", 1, None, baseline, scale, eps, 1))
                    elif dtype == "float64":
                        calls.append((dtype, "int64", 1, 16, baseline, scale, eps, 1))
    return calls


def run_smoke_call(backend: str, call) -> dict:
    import torch

    import gapo_kernels

    dtype_name, index_dtype, stride, hint, baseline, scale, eps, seed = call
    values, offsets_np, sizes = smoke_batch(dtype_name, seed)
    rewards = strided(values, getattr(torch, dtype_name), stride)
    offsets = torch.as_tensor(offsets_np, dtype=getattr(torch, index_dtype), device="cuda")
    kw = dict(baseline=baseline, scale=scale, eps=eps)
    try:
        out = gapo_kernels.advantage(rewards, offsets, backend=backend, max_group_size=hint, **kw)
        record = compare(out, values, offsets_np, sizes, dtype_name, hint, **kw)
    except Exception as error:  # noqa: BLE001 - recorded
        record = {"passed": False, "error": f"{type(error).__name__}: {error}"[:500]}
    record.update(backend=backend, dtype=dtype_name, offsets=index_dtype, stride=stride, hint=hint, **kw)
    return record


def step_smoke(out: Path) -> dict:
    import numpy as np
    import torch

    import gapo_kernels

    backends = cuda_backends()
    checks = [run_smoke_call(backend, call) for backend in backends for call in smoke_calls(backend)]
    failures = [c for c in checks if not c["passed"]]
    # Window bounds and Q bit for bit: cpu kernel vs cuda kernel (group_stats), every baseline.
    bitwise = []
    if "cuda" in backends:
        for dtype_name in ("float32", "float64"):
            values, offsets_np, _ = smoke_batch(dtype_name, seed=2)
            dtype = getattr(torch, dtype_name)
            r_cpu = torch.as_tensor(values).to(dtype)
            o_cpu = torch.as_tensor(offsets_np)
            for baseline in ("hdi_median", "hdi_mean", "median", "mean"):
                a = gapo_kernels.group_stats(r_cpu, o_cpu, baseline=baseline, backend="cpu")
                b = gapo_kernels.group_stats(r_cpu.cuda(), o_cpu.cuda(), baseline=baseline, backend="cuda")
                row = {"dtype": dtype_name, "baseline": baseline}
                for field in ("hdi_low", "hdi_high", "baseline", "min", "max", "count"):
                    x, y = getattr(a, field).numpy(), getattr(b, field).cpu().numpy()
                    same = x.dtype == y.dtype and np.array_equal(x, y, equal_nan=x.dtype.kind == "f") and (
                        x.dtype.kind != "f" or np.array_equal(np.signbit(x), np.signbit(y)))
                    row[field] = "bitwise" if same else (
                        "differs: " + str(int((x != y).sum())) + " groups")
                bitwise.append(row)
            # Triton and cuda advantages, same input.
            if "triton" in backends:
                rc = torch.as_tensor(values).to(dtype).cuda()
                oc = torch.as_tensor(offsets_np).cuda()
                x = gapo_kernels.advantage(rc, oc, backend="cuda")
                y = gapo_kernels.advantage(rc, oc, backend="triton")
                bitwise.append({"dtype": dtype_name, "cuda_vs_triton_advantage_max_abs_diff":
                                float((x.double() - y.double()).abs().max())})
    result = {"backends": backends, "checks": len(checks), "passed": len(checks) - len(failures),
              "failures": failures[:40], "bitwise_cpu_vs_cuda": bitwise}
    print(json.dumps(result, indent=1, default=str))
    return result


def _paths(backend: str):
    """(name, sizes, hint) of every path of a backend, for capture and the sanitizer."""
    paths = [("direct", [16] * 200 + [3, 0, 9], 16), ("listed", [16] * 200 + [3, 0, 300, 9], 2048),
             ("large", [16] * 50 + [3000, 0, 5], 4096), ("exact-mixed", [16] * 200 + [2000, 1], None)]
    if backend == "triton":
        paths.append(("large", [16] * 50 + [5000, 0, 5], 8192))
    return paths


def step_capture(out: Path) -> dict:
    import numpy as np
    import torch

    import gapo_kernels

    results = []
    for backend in cuda_backends():
        for name, sizes, hint in _paths(backend):
            if hint is None:
                continue
            offsets = torch.tensor(np.concatenate([[0], np.cumsum(sizes)]), device="cuda")
            rewards = torch.rand(int(offsets[-1]), device="cuda")
            row = {"backend": backend, "path": name, "hint": hint}
            try:
                call = lambda: gapo_kernels.advantage(rewards, offsets, backend=backend, max_group_size=hint)  # noqa: E731
                call()  # compile and warm the allocator outside the checks
                torch.cuda.synchronize()
                torch.cuda.set_sync_debug_mode("error")
                try:
                    call()
                    row["no_host_sync"] = True
                except RuntimeError as error:
                    row["no_host_sync"] = f"synchronised: {error}"[:300]
                finally:
                    torch.cuda.set_sync_debug_mode(0)
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    call()
                torch.cuda.current_stream().wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    captured = call()
                same = []
                for seed in (1, 2):
                    rewards.copy_(torch.rand(rewards.shape, generator=torch.Generator().manual_seed(seed)).cuda())
                    graph.replay()
                    torch.cuda.synchronize()
                    same.append(bool(torch.equal(captured, call())))
                row["replay_equals_eager"] = all(same)
                row["captured"] = True
            except Exception as error:  # noqa: BLE001 - recorded
                row["error"] = f"{type(error).__name__}: {error}"[:500]
            results.append(row)
    print(json.dumps(results, indent=1))
    return {"paths": results}


def _time_ms(fn, reps=20, warmup=3) -> float:
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


def _graph_ms(fn, reps=20) -> float:
    import torch

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return _time_ms(graph.replay, reps=reps)


def step_timings(out: Path) -> dict:
    import numpy as np
    import torch

    import gapo_kernels
    from gapo_kernels import torch_backend

    backends = cuda_backends()
    total = 1 << 20
    workloads = [(f"{total // s} x {s}", [s] * (total // s), s) for s in (2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)]
    rng = np.random.default_rng(0)
    ragged = rng.integers(1, 1025, size=2 * total // 1025).tolist()
    workloads += [
        ("65536 x 16 + one of 2000", [16] * 65_536 + [2000], 2000),
        ("65536 x 16, hint 2048", [16] * 65_536, "2048"),
        ("65536 x 16 + one of 2000, hint 2048", [16] * 65_536 + [2000], "2048"),
        ("ragged 1..1024 (~1M)", ragged, 1024),
    ]
    rows = []
    for name, sizes, size_for_hint in workloads:
        offsets = torch.tensor(np.concatenate([[0], np.cumsum(sizes)]), device="cuda")
        n = int(offsets[-1])
        rewards = torch.rand(n, device="cuda")
        hint = int(size_for_hint)
        row = {"workload": name, "rewards": n, "groups": len(sizes)}
        row["copy_ms"] = _time_ms(lambda: rewards.clone())
        width = max(sizes)
        if len(set(sizes)) == 1:
            padded = rewards.view(len(sizes), width)
            row["torch_sort_padded_ms"] = _time_ms(lambda: torch.sort(padded, dim=1))
        for backend in backends:
            try:
                row[f"{backend}_hint_ms"] = _time_ms(
                    lambda: gapo_kernels.advantage(rewards, offsets, backend=backend, max_group_size=hint))
                row[f"{backend}_graph_ms"] = _graph_ms(
                    lambda: gapo_kernels.advantage(rewards, offsets, backend=backend, max_group_size=hint))
                if isinstance(size_for_hint, int):
                    row[f"{backend}_nohint_ms"] = _time_ms(
                        lambda: gapo_kernels.advantage(rewards, offsets, backend=backend), reps=10)
            except Exception as error:  # noqa: BLE001 - recorded
                row[f"{backend}_error"] = f"{type(error).__name__}: {error}"[:300]
        if width <= 64 and len(set(sizes)) == 1:
            try:
                row["torch_backend_ms"] = _time_ms(
                    lambda: torch_backend.advantage(rewards, offsets, 0.5, "hdi_median", "rms", 1e-6), reps=5)
            except Exception as error:  # noqa: BLE001 - recorded
                row["torch_backend_error"] = str(error)[:300]
        print(json.dumps(row), flush=True)
        rows.append(row)
    return {"dtype": "float32", "baseline": "hdi_median", "scale": "rms", "rows": rows}


SANITIZER_SCRIPT = r"""
import sys, numpy as np, torch
sys.path.insert(0, {root!r})
import gapo_kernels
from gapo_kernels import reference
sys.path.insert(0, {here!r})
import gpu_check
for backend in gpu_check.cuda_backends():
    for name, sizes, hint in gpu_check._paths(backend):
        big = 5000 if backend == 'triton' else 3000  # above the largest tile / fused class
        sizes = [min(s, 2100) if s > 1024 else s for s in sizes][:40] + [big if name == 'large' else 1]
        offsets = torch.tensor(np.concatenate([[0], np.cumsum(sizes)]), device='cuda')
        for dtype in (torch.float32, torch.bfloat16):
            r = torch.randn(int(offsets[-1]), device='cuda').to(dtype)
            a = gapo_kernels.advantage(r, offsets, backend=backend, max_group_size=hint)
            torch.cuda.synchronize()
    if backend == 'cuda':
        gapo_kernels.group_stats(r, offsets, backend='cuda')
        torch.cuda.synchronize()
print('sanitizer workload done')
"""


def step_sanitizer(out: Path) -> dict:
    tool = shutil.which("compute-sanitizer")
    if tool is None:
        return {"skipped": "compute-sanitizer not found"}
    script = WORK / "sanitizer_workload.py"
    script.write_text(SANITIZER_SCRIPT.format(root=str(ROOT), here=str(THIS.parent)))
    env = dict(os.environ, PYTORCH_NO_CUDA_MEMORY_CACHING="1", CUDA_MODULE_LOADING="LAZY")
    procs = {}
    for check in ("memcheck", "racecheck", "synccheck", "initcheck"):
        log = open(WORK / "logs" / f"sanitizer-{check}.log", "w")
        cmd = [tool, f"--tool={check}", "--error-exitcode=9", "--print-limit=20", sys.executable, str(script)]
        if check == "memcheck":
            cmd[2:2] = ["--leak-check=no"]
        procs[check] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=WORK), log)
    deadline = time.time() + float(os.environ.get("GPU_CHECK_STEP_TIMEOUT", "140")) - 5
    result = {}
    for check, (proc, log) in procs.items():
        try:
            rc = proc.wait(timeout=max(1.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = "timed out"
        log.close()
        text = (WORK / "logs" / f"sanitizer-{check}.log").read_text(errors="replace")
        summary = [line for line in text.splitlines() if "ERROR SUMMARY" in line or "RACECHECK SUMMARY" in line]
        result[check] = {"rc": rc, "summary": summary[-2:], "workload_done": "sanitizer workload done" in text,
                         "first_errors": [line for line in text.splitlines() if "=========" in line][:12]}
    print(json.dumps(result, indent=1))
    return result


def step_pytest(out: Path) -> dict:
    plugin_dir = WORK / "pytest_plugin"
    plugin_dir.mkdir(exist_ok=True)
    (plugin_dir / "gpu_check_profile.py").write_text(
        "from hypothesis import HealthCheck, settings\n"
        "def pytest_configure(config):\n"
        "    settings.register_profile('gpu-check', max_examples=8, deadline=None,\n"
        "                              suppress_health_check=list(HealthCheck))\n"
        "    settings.load_profile('gpu-check')\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(plugin_dir), env.get("PYTHONPATH", "")])
    env.pop("TRITON_INTERPRET", None)
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-x", "-q", "-p", "gpu_check_profile", "--durations=5",
           "--continue-on-collection-errors",
           "-p", "no:cacheprovider", "tests"]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    text = done.stdout + done.stderr
    print(text[-20000:])
    return {"rc": done.returncode, "tail": text.strip().splitlines()[-15:]}


STEP_FUNCTIONS = {"env": step_env, "build": step_build, "info": step_info, "warm": step_warm, "smoke": step_smoke,
                  "capture": step_capture, "timings": step_timings, "sanitizer": step_sanitizer, "pytest": step_pytest}


# --------------------------------------------------------------------------------------------
# The driver
# --------------------------------------------------------------------------------------------
def run_step(name: str, out: Path, timeout: float) -> dict:
    """Runs one step in its own process group, so a time-out also ends whatever it started."""
    import signal

    log_path = WORK / "logs" / f"{name}.log"
    result_path = WORK / "steps" / f"{name}.json"
    result_path.unlink(missing_ok=True)
    env = dict(os.environ, GPU_CHECK_STEP_TIMEOUT=str(int(timeout)))
    env.pop("TRITON_INTERPRET", None)
    start = time.time()
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-u", str(THIS), "--step", name, str(out)], stdout=log,
                                stderr=subprocess.STDOUT, cwd=ROOT, env=env, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
            status = "ok" if rc == 0 else f"failed (exit {rc})"
        except subprocess.TimeoutExpired:
            status = f"timed out after {int(timeout)} s"
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the step's children (pool workers, sanitizers)
        except ProcessLookupError:
            pass
        proc.wait()
    record = {"status": status, "seconds": round(time.time() - start, 1)}
    if result_path.exists():
        record["result"] = json.loads(result_path.read_text())
        if record["result"].get("step_error"):
            record["status"] = "failed"
    else:
        record["log_tail"] = log_path.read_text(errors="replace").strip().splitlines()[-12:]
    return record


def step_entry(name: str, out: Path) -> int:
    try:
        result = STEP_FUNCTIONS[name](out)
    except Exception:  # noqa: BLE001 - the report shows it
        result = {"step_error": traceback.format_exc()[-3000:]}
        print(result["step_error"])
    write_json(WORK / "steps" / f"{name}.json", result)
    return 1 if "step_error" in result else 0


def collect_logs(out: Path) -> None:
    """The tail of every log of this run, in one file."""
    parts = []
    for path in sorted((WORK / "logs").glob("*.log")):
        text = path.read_text(errors="replace")
        parts.append(f"===== {path.name} ({len(text)} characters, last {LOG_TAIL} kept)\n{text[-LOG_TAIL:]}\n")
    (out / "logs.txt").write_text("".join(parts))


def step_passed(record: dict, name: str) -> bool:
    if record["status"] != "ok":
        return False
    result = record.get("result", {})
    if name == "build":
        return result.get("rc") == 0
    if name == "info":
        return "cuda" in result.get("available_backends_cuda", [])
    if name == "smoke":
        return result.get("checks", 0) > 0 and result.get("passed") == result.get("checks")
    if name == "capture":
        return all(p.get("captured") and p.get("replay_equals_eager") and p.get("no_host_sync") is True
                   for p in result.get("paths", []))
    if name == "sanitizer":
        return all(v.get("rc") == 0 for v in result.values() if isinstance(v, dict))
    if name == "pytest":
        return result.get("rc") == 0
    return True


def summary_markdown(report: dict) -> str:
    lines = ["# gapo_kernels GPU check", ""]
    env = report["steps"].get("env", {}).get("result", {})
    lines.append(f"- GPU: {env.get('gpu')} (sm_{str(env.get('capability', '')).replace('.', '')}), "
                 f"driver/clock/power: {env.get('nvidia_smi')}")
    lines.append(f"- torch {env.get('torch')} (CUDA {env.get('torch_cuda')}), triton {env.get('triton')}, "
                 f"python {env.get('python')}")
    info = report["steps"].get("info", {}).get("result", {}).get("build_info")
    lines.append(f"- build_info: {info}")
    lines += ["", "| step | status | seconds | passed |", "|---|---|---|---|"]
    for name, record in report["steps"].items():
        lines.append(f"| {name} | {record['status']} | {record['seconds']} | {record.get('passed')} |")
    smoke = report["steps"].get("smoke", {}).get("result", {})
    if smoke:
        lines += ["", f"Smoke: {smoke.get('passed')}/{smoke.get('checks')} checks passed "
                      f"(backends {smoke.get('backends')})."]
        for failure in smoke.get("failures", [])[:10]:
            lines.append(f"- FAILED {failure}")
        for row in smoke.get("bitwise_cpu_vs_cuda", []):
            lines.append(f"- {row}")
    capture = report["steps"].get("capture", {}).get("result", {})
    if capture:
        lines += ["", "| backend | path | hint | no host sync | graph replay == eager |", "|---|---|---|---|---|"]
        for p in capture.get("paths", []):
            lines.append(f"| {p['backend']} | {p['path']} | {p['hint']} | {p.get('no_host_sync')} | "
                         f"{p.get('replay_equals_eager', p.get('error'))} |")
    timings = report["steps"].get("timings", {}).get("result", {})
    if timings.get("rows"):
        keys = ["copy_ms", "torch_sort_padded_ms", "cuda_hint_ms", "cuda_graph_ms", "cuda_nohint_ms",
                "triton_hint_ms", "triton_graph_ms", "triton_nohint_ms", "torch_backend_ms"]
        lines += ["", "Timings, float32, hdi_median/rms, median of CUDA-event timings (ms):", "",
                  "| workload | " + " | ".join(k[:-3] for k in keys) + " |", "|---" * (len(keys) + 1) + "|"]
        for row in timings["rows"]:
            cells = [f"{row[k]:.4f}" if isinstance(row.get(k), float) else "" for k in keys]
            lines.append(f"| {row['workload']} | " + " | ".join(cells) + " |")
    sanitizer = report["steps"].get("sanitizer", {}).get("result", {})
    if sanitizer:
        lines += [""] + [f"- compute-sanitizer {k}: rc {v.get('rc')}, {v.get('summary')}"
                         for k, v in sanitizer.items() if isinstance(v, dict)]
    for name, record in report["steps"].items():
        result = record.get("result", {})
        tail = result.get("step_error") if isinstance(result, dict) else None
        tail = tail or ("\n".join(record.get("log_tail", [])) if record.get("log_tail") else None)
        if tail:
            lines += ["", f"{name}: " + record["status"], "```", tail.strip()[-1500:], "```"]
    pytest_result = report["steps"].get("pytest", {}).get("result", {})
    if pytest_result:
        lines += ["", "pytest -m gpu: " + " / ".join(pytest_result.get("tail", [])[-2:])]
    return "\n".join(lines) + "\n"


def plan_only(out: Path, budget: float) -> int:
    """No GPU: show the steps and check that their inputs can be built; exit 0."""
    print("gpu_check: no CUDA device is visible: nothing is measured. The steps it would run:")
    left = budget - RESERVE
    for name in STEPS:
        box = min(TIME_BOX[name], left)
        print(f"  {name:10s} time box {box:5.0f} s")
    problems = []
    try:
        for dtype in DTYPES:
            values, offsets, sizes = smoke_batch(dtype)
            assert len(values) == offsets[-1] and len(sizes) == len(offsets) - 1
        import numpy as np
        import torch

        import gapo_kernels

        values, offsets, sizes = smoke_batch("float32")
        out_cpu = gapo_kernels.advantage(torch.as_tensor(values, dtype=torch.float32), torch.as_tensor(offsets),
                                         backend="cpu" if "cpu" in gapo_kernels.available_backends("cpu") else "torch")
        record = compare(out_cpu, values, offsets, sizes, "float32", None)
        if not record["passed"]:
            problems.append(f"the smoke batch does not match the reference on CPU: {record}")
        assert len(warm_specs()) > 0 and all(len(_paths(b)) >= 4 for b in ("cuda", "triton"))
        compile(SANITIZER_SCRIPT.format(root=str(ROOT), here=str(THIS.parent)), "sanitizer_workload", "exec")
        for tool in ("nvcc", "compute-sanitizer", "ncu"):
            print(f"  {tool}: {shutil.which(tool) or 'not on PATH'}")
        print(f"  numpy {np.__version__}, torch {torch.__version__}, smoke batch {len(values)} rewards in "
              f"{len(sizes)} groups")
    except Exception:  # noqa: BLE001 - reported
        problems.append(traceback.format_exc()[-2000:])
    report = {"gpu": None, "planned_steps": STEPS, "problems": problems}
    write_json(out / "report.json", report)
    (out / "summary.md").write_text("# gapo_kernels GPU check\n\nNo CUDA device was visible: nothing measured.\n"
                                    + "".join(f"\n- problem: {p}" for p in problems))
    for problem in problems:
        print("PROBLEM:", problem)
    print("gpu_check: planned", "with problems (see above)" if problems else "fine", f"; report in {out}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir")
    parser.add_argument("--budget", type=float, default=float(os.environ.get("GPU_CHECK_BUDGET", 440)))
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--only", help="comma-separated steps to run (default: all)")
    args = parser.parse_args()
    out = Path(args.outdir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.step:
        return step_entry(args.step, out)
    started = time.time()
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    if not has_gpu and os.environ.get("GPU_CHECK_FORCE") != "1":  # FORCE: exercise the driver anyway
        return plan_only(out, args.budget)
    shutil.rmtree(WORK, ignore_errors=True)
    (WORK / "logs").mkdir(parents=True, exist_ok=True)
    (WORK / "steps").mkdir(parents=True, exist_ok=True)
    steps = [s for s in STEPS if not args.only or s in args.only.split(",")]
    report = {"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "budget_s": args.budget,
              "steps": {}}
    built = True
    for name in steps:
        left = args.budget - (time.time() - started) - RESERVE
        if left < 5:
            report["steps"][name] = {"status": "not run: budget spent", "seconds": 0}
            continue
        if name in NEEDS_BUILD and not built:
            report["steps"][name] = {"status": "not run: the build failed", "seconds": 0}
            continue
        print(f"== {name} (time box {min(TIME_BOX[name], left):.0f} s)", flush=True)
        record = run_step(name, out, min(TIME_BOX[name], left))
        record["passed"] = step_passed(record, name)
        if name == "build":
            built = record["passed"]
        report["steps"][name] = record
        print(f"   {record['status']} in {record['seconds']} s, passed: {record['passed']}", flush=True)
        write_json(out / "report.json", report)
        (out / "summary.md").write_text(summary_markdown(report))
        collect_logs(out)
    report["seconds"] = round(time.time() - started, 1)
    write_json(out / "report.json", report)
    text = summary_markdown(report)
    (out / "summary.md").write_text(text)
    collect_logs(out)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
