"""Compile the Triton kernels for NVIDIA GPUs without a GPU and report registers and spills.

Uses the ptxas and cuobjdump that triton ships (triton/backends/nvidia/bin), so it runs on any
machine with triton installed, no CUDA device or toolkit needed. Prints one JSON object per
line: arch, kernel, dtype, block, baseline, scale, num_warps, regs and stack (bytes of local
memory per thread: spills), and a last line {"cuobjdump": PATH or null}. A compile error
exits non-zero. Without cuobjdump the builds still prove the kernels compile, but regs and
stack are missing (tests/test_triton.py then skips its spill check, saying why).

    python scripts/triton_resource_usage.py [--archs 80,90]

TRITON_INTERPRET must be unset (the kernels are plain Python functions under the interpreter).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import torch
import triton
import triton.language as tl
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from gapo_kernels import _checks, triton_backend, triton_kernels

TL_NAMES = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32", torch.float64: "fp64"}

# (kernel, dtype, block, baseline, scale, listed): the smallest and largest tiles, both
# accumulation types, every baseline, listed and direct launches.
CONFIGS = [
    ("tile", torch.float32, 4, "hdi_median", "rms", False),
    ("tile", torch.float32, 4096, "hdi_median", "rms", True),
    ("tile", torch.float64, 4096, "hdi_mean", "std", False),
    ("tile", torch.bfloat16, 256, "median", "none", True),
    ("tile", torch.float16, 16, "mean", "rms", False),
    ("sorted", torch.float32, None, "hdi_median", "rms", False),
    ("sorted", torch.float64, None, "hdi_mean", "std", True),
]


def cuobjdump_path():
    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    return tool if os.path.exists(tool) else None


def resource_usage(cubin: bytes, tool) -> dict:
    """Registers and stack bytes per thread of a cubin ({} without cuobjdump)."""
    if tool is None:
        return {}
    with tempfile.NamedTemporaryFile(suffix=".cubin", delete=False) as f:
        f.write(cubin)
    try:
        text = subprocess.run([tool, "-res-usage", f.name], capture_output=True, text=True, check=False).stdout
    finally:
        os.unlink(f.name)
    match = re.search(r"REG:(\d+).*?STACK:(\d+)", text, re.S)
    return {"regs": int(match.group(1)), "stack": int(match.group(2))} if match else {}


def build(arch: int, kernel: str, dtype, block, baseline: str, scale: str, listed: bool, tool) -> dict:
    ty = TL_NAMES[dtype]
    acc = tl.float64 if dtype == torch.float64 else tl.float32
    acc_ty = "fp64" if dtype == torch.float64 else "fp32"
    common = {"BASELINE": _checks.BASELINES.index(baseline), "SCALE": _checks.SCALES.index(scale), "ACC": acc,
              "LISTED": listed}
    scalars = {"num_groups": "i64", "num_rewards": "i64", "tau_bits": "i64", "eps_bits": "i64"}
    if kernel == "tile":
        rows = triton_backend.rows_for(block)
        fn, warps = triton_kernels.tile_kernel, triton_backend.tile_warps(rows * block)
        signature = {"x_ptr": f"*{ty}", "x_stride": "constexpr", "out_ptr": f"*{ty}", "out_stride": "constexpr",
                     "srt_ptr": f"*{acc_ty}", "off_ptr": "*i64", "size_limit": "i64", "skip_above": "i64",
                     "list_ptr": "*i64", "list_info_ptr": "*i64", **scalars}
        constexprs = {"x_stride": 1, "out_stride": 1, "ROWS": rows, "BLOCK": block, "WRITE_ENDS": True, **common}
    else:
        fn, warps = triton_kernels.sorted_kernel, 4
        signature = {"x_ptr": f"*{ty}", "x_stride": "i64", "srt_ptr": f"*{acc_ty}", "out_ptr": f"*{ty}",
                     "out_stride": "i64", "off_ptr": "*i32", "size_limit": "i64", "min_size": "i64",
                     "list_ptr": "*i64", "list_info_ptr": "*i64", **scalars}
        constexprs = {"CHUNK": triton_backend.CHUNK, **common}
    signature.update({name: "constexpr" for name in constexprs if name not in signature})
    compiled = triton.compile(ASTSource(fn, signature, constexprs), target=GPUTarget("cuda", arch, 32),
                              options={"num_warps": warps})
    record = {"arch": arch, "kernel": kernel, "dtype": ty, "block": block, "baseline": baseline, "scale": scale,
              "listed": listed, "num_warps": warps}
    record.update(resource_usage(compiled.asm["cubin"], tool))
    return record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default="80,90", help="comma-separated compute capabilities (default 80,90)")
    args = parser.parse_args()
    if os.environ.get("TRITON_INTERPRET") == "1":
        print("triton_resource_usage: unset TRITON_INTERPRET (the kernels are interpreted functions now)",
              file=sys.stderr)
        return 2
    tool = cuobjdump_path()
    for arch in (int(a) for a in args.archs.split(",")):
        for config in CONFIGS:
            print(json.dumps(build(arch, *config, tool)), flush=True)
    print(json.dumps({"cuobjdump": tool}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
