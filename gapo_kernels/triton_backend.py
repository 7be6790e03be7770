"""Host side of ``backend="triton"``: the launch plan and the custom op around the kernels.

Kernels: ``gapo_kernels/triton_kernels.py``; design and measurements: docs/triton.md.
``gapo_kernels.ops`` imports this module only when the Triton backend is asked for, so
``import gapo_kernels`` works without triton. The entry point is :func:`advantage`, which goes
through ``torch.ops.gapo_triton.advantage`` (``torch.library.custom_op`` + ``register_fake``).
"""

from __future__ import annotations

import contextlib
import struct
from dataclasses import dataclass, field
from typing import Optional

import torch
import triton
import triton.language as tl

from . import _checks
from .triton_kernels import sorted_kernel, tile_kernel

__all__ = ["advantage", "plan_launch", "block_for", "MAX_BLOCK", "MIN_BLOCK", "TILE_ELEMS", "CHUNK"]

MIN_BLOCK = 4  # smallest per-group padding (groups of 2-4 rollouts sort 4 lanes, not 16)
MAX_BLOCK = 4096  # largest group the tile kernel holds; larger ones take the sorted path
TILE_ELEMS = 1024  # rewards per tile-kernel program (ROWS = TILE_ELEMS // BLOCK groups)
CHUNK = 1024  # elements per step of the sorted kernel's loops
NUM_CLASSES = 11  # tile sizes MIN_BLOCK << c, c = 0 .. 10 (4 .. 4096)
LARGE = NUM_CLASSES  # the class index of groups above MAX_BLOCK
NO_LIMIT = 2**62
# As csrc/cuda/launch_plan.h: a hint up to this launches its tile directly; above it groups are
# listed by their own size so a cautious hint does not make every group pay for the largest
# tile. From exact sizes, lists are used when they sort fewer slots, counting each extra launch
# as LAUNCH_COST_SLOTS.
DIRECT_HINT_LIMIT = 64
LAUNCH_COST_SLOTS = 1 << 16
LIST_COST_SLOTS = 8


def class_block(c: int) -> int:
    return MIN_BLOCK << c


def class_of_size(size: int) -> int:
    """The smallest tile class holding ``size`` rewards, or LARGE."""
    for c in range(NUM_CLASSES):
        if size <= class_block(c):
            return c
    return LARGE


def block_for(max_group_size: int) -> int:
    """The per-group padding the tile kernel uses for groups of at most ``max_group_size``."""
    return class_block(min(class_of_size(max(int(max_group_size), 1)), NUM_CLASSES - 1))


def rows_for(block: int) -> int:
    """Groups per tile-kernel program. Fixed per BLOCK, so the batch size never recompiles."""
    return max(1, TILE_ELEMS // block)


def tile_warps(elements: int) -> int:
    """Warps per program of the tile kernel: 4 rewards per thread (8 for BLOCK = 4096), 1 to 16.

    Chosen from register counts of sm_90 builds (no spills; see scripts/triton_resource_usage.py)."""
    return max(1, min(16, elements // 128))


def _min_size(c: int) -> int:
    return 1 if c == 0 else class_block(c - 1) + 1


@dataclass
class Plan:
    """Which launches run: one direct tile launch, or one per listed class, and the sorted path."""

    size_limit: int = NO_LIMIT  # larger groups get NaN
    direct_block: Optional[int] = None  # direct: the tile size over every group
    skip_above: int = NO_LIMIT  # direct: larger groups are the sorted kernel's
    listed: bool = False
    top: int = LARGE  # listed: larger groups land in this class (and get NaN if over the limit)
    rooms: list = field(default_factory=lambda: [0] * (NUM_CLASSES + 1))  # listed: groups per class (bound)
    sorted_groups: int = 0  # programs of the sorted kernel (0: none)
    sorted_listed: bool = False


def plan_launch(num_groups: int, num_rewards: int, *, hint: Optional[int] = None,
                histogram: Optional[list] = None) -> Plan:
    """The launch plan from the hint alone (nothing read back) or the exact class histogram.

    ``histogram[c]``: non-empty groups of class c (c = 0 .. NUM_CLASSES - 1), then of LARGE.
    """
    plan = Plan()
    if num_groups <= 0 or num_rewards <= 0:
        return plan
    if hint is not None:
        plan.size_limit = hint
        top = class_of_size(max(hint, 1))
        if hint <= DIRECT_HINT_LIMIT:
            plan.direct_block = class_block(top)
            return plan
        plan.listed, plan.top = True, top
        plan.rooms = [min(num_groups, num_rewards // _min_size(c)) if c <= top else 0 for c in range(LARGE + 1)]
        plan.sorted_groups, plan.sorted_listed = plan.rooms[LARGE], True
        return plan
    small = [(c, h) for c, h in enumerate(histogram[:LARGE]) if h > 0]
    large = histogram[LARGE]
    if small:
        top_small = small[-1][0]
        direct_slots = sum(h for _, h in small) * class_block(top_small)
        listed_slots = sum(h * (class_block(c) + LIST_COST_SLOTS) for c, h in small)
        listed_slots += (len(small) - 1) * LAUNCH_COST_SLOTS + LAUNCH_COST_SLOTS // 2
        if len(small) >= 2 and listed_slots < direct_slots:
            plan.listed = True
            plan.rooms = list(histogram[: LARGE + 1])
            plan.sorted_groups, plan.sorted_listed = large, True
            return plan
        plan.direct_block = class_block(top_small)
    if large:
        plan.skip_above = MAX_BLOCK
        plan.sorted_groups = num_groups
    return plan


def _float64_bits(value: float) -> int:
    """The IEEE-754 bit pattern of a float64, as a signed int64 (bitcast back in the kernel)."""
    return struct.unpack("<q", struct.pack("<d", float(value)))[0]


def _interpreting() -> bool:
    return not isinstance(tile_kernel, triton.runtime.jit.JITFunction)


def _clamped_bounds(offsets: torch.Tensor, num_rewards: int):
    """Every group's clamped [start, end) as the kernels compute it (int64, no host sync)."""
    o = offsets.to(torch.int64).clamp(0, num_rewards)
    start = o[:-1]
    return start, torch.maximum(o[1:], start)


def _size_classes(sizes: torch.Tensor) -> torch.Tensor:
    """Class of every group size, 0 .. NUM_CLASSES - 1 or LARGE (searchsorted: no device assert)."""
    caps = MIN_BLOCK << torch.arange(NUM_CLASSES, device=sizes.device, dtype=torch.int64)
    return torch.searchsorted(caps, sizes)


def _read_sizes(offsets: torch.Tensor, num_rewards: int) -> list:
    """The one device-to-host read without a hint: the class histogram and the offsets checks."""
    num_groups = offsets.shape[0] - 1
    if num_groups == 0:  # offsets == [0] is the only valid one
        first = int(offsets[0])
        _checks.check_offsets_values(first, first, None, num_rewards)
        return [0] * (LARGE + 1)
    start, end = _clamped_bounds(offsets, num_rewards)
    sizes = end - start
    classes = torch.where(sizes > 0, _size_classes(sizes), LARGE + 1)
    histogram = torch.zeros(LARGE + 2, dtype=torch.int64, device=offsets.device)
    histogram.scatter_add_(0, classes, torch.ones_like(classes))
    index = torch.arange(num_groups, device=offsets.device)
    first_decrease = torch.where(offsets[1:] < offsets[:-1], index, num_groups).min(0, keepdim=True).values
    o = offsets.to(torch.int64)
    values = torch.cat([histogram, o[:1], o[-1:], first_decrease]).tolist()
    first, last, decrease = values[-3:]
    _checks.check_offsets_values(first, last, decrease if decrease < num_groups else None, num_rewards)
    return values[: LARGE + 1]


def _class_lists(offsets: torch.Tensor, num_rewards: int, top: int):
    """(order, info): group indices sorted by class, and per class [start, length] in order."""
    start, end = _clamped_bounds(offsets, num_rewards)
    sizes = end - start
    classes = torch.minimum(_size_classes(sizes), torch.full_like(sizes, top))
    classes = torch.where(sizes > 0, classes, LARGE + 1)
    order = torch.argsort(classes, stable=True)
    counts = torch.zeros(LARGE + 2, dtype=torch.int64, device=offsets.device)
    counts.scatter_add_(0, classes, torch.ones_like(classes))
    info = torch.stack([torch.cumsum(counts, 0) - counts, counts], 1).contiguous()
    return order, info


def _segment_sorted(rewards: torch.Tensor, offsets: torch.Tensor, torch_acc) -> torch.Tensor:
    """Rewards sorted within each group (missing as +inf, -0.0 as +0.0), with no host sync and
    nothing that can assert on the device whatever the offsets: two stable sorts, by value and
    then by group, the group of a row found by searchsorted over the monotone clamped offsets."""
    n_total = rewards.shape[0]
    values = rewards.to(torch_acc)
    values = torch.where(torch.isfinite(values), values + 0.0, float("inf"))
    bounds = offsets.to(torch.int64).clamp(0, n_total).cummax(0).values
    segment = torch.searchsorted(bounds[1:], torch.arange(n_total, device=rewards.device), right=True)
    by_value, perm = torch.sort(values, stable=True)
    _, perm2 = torch.sort(segment[perm], stable=True)
    return by_value[perm2].contiguous()


def _new_output(rewards: torch.Tensor) -> torch.Tensor:
    """The uninitialised output: every row of it is written by a kernel (tests poison it)."""
    return torch.empty_like(rewards)


def _advantage_impl(
    rewards: torch.Tensor,
    offsets: torch.Tensor,
    tau: float,
    baseline: str,
    scale: str,
    eps: float,
    max_group_size: Optional[int] = None,
    *,
    force_sorted: bool = False,
    chunk: int = CHUNK,
) -> torch.Tensor:
    """The op's body. ``force_sorted``/``chunk`` exist for tests of the sorted path."""
    if rewards.device.type == "cpu" and not _interpreting():
        raise RuntimeError(
            "the Triton backend needs CUDA tensors; to run its kernels on CPU in Triton's "
            "interpreter (slow, for tests), set TRITON_INTERPRET=1 before triton is imported"
        )
    if max_group_size is not None and max_group_size < 0:
        raise ValueError(f"max_group_size must be >= 0, got {max_group_size}")
    offsets = offsets.contiguous()  # G + 1 entries; the kernels index them densely
    num_groups, num_rewards = offsets.shape[0] - 1, rewards.shape[0]
    if max_group_size is None:  # the one documented device-to-host read (it checks the offsets too)
        plan = plan_launch(num_groups, num_rewards, histogram=_read_sizes(offsets, num_rewards))
    else:
        plan = plan_launch(num_groups, num_rewards, hint=max_group_size)
    if num_groups <= 0 or num_rewards == 0:
        return torch.zeros_like(rewards)
    if force_sorted:
        plan = Plan(sorted_groups=num_groups, size_limit=plan.size_limit)
    out = _new_output(rewards)
    acc = tl.float64 if rewards.dtype == torch.float64 else tl.float32
    torch_acc = torch.float64 if acc == tl.float64 else torch.float32
    consts = dict(BASELINE=_checks.BASELINES.index(baseline), SCALE=_checks.SCALES.index(scale), ACC=acc)
    scalars = dict(tau_bits=_float64_bits(tau), eps_bits=_float64_bits(eps))
    # Scratch for the tile kernel's sorted values: `out` itself when it holds them exactly
    # (float32/float64 rewards, contiguous output), else N accumulation-type values.
    scratch = out if out.dtype == torch_acc and out.stride(0) == 1 else torch.empty(
        num_rewards, dtype=torch_acc, device=rewards.device)
    write_ends = max_group_size is not None  # unchecked offsets: rows outside them get 0

    def launch_tile(block, grid_rows, list_ptr, info, listed, skip_above):
        nonlocal write_ends
        rows = rows_for(block)
        tile_kernel[(triton.cdiv(grid_rows, rows),)](
            rewards, rewards.stride(0), out, out.stride(0), scratch, offsets, num_groups, num_rewards,
            min(plan.size_limit, NO_LIMIT), skip_above, list_ptr, info, **scalars, **consts, ROWS=rows, BLOCK=block,
            LISTED=listed, WRITE_ENDS=write_ends, num_warps=tile_warps(rows * block),
        )
        write_ends = False

    # Triton launches on the current CUDA device: make it the tensors' one.
    with torch.cuda.device(rewards.device) if rewards.is_cuda else contextlib.nullcontext():
        order = info = None
        if plan.listed:
            order, info = _class_lists(offsets, num_rewards, plan.top)
            for c in range(NUM_CLASSES):
                if plan.rooms[c] > 0:
                    launch_tile(class_block(c), plan.rooms[c], order, info[c], True, NO_LIMIT)
        elif plan.direct_block is not None:
            launch_tile(plan.direct_block, num_groups, offsets, offsets, False, plan.skip_above)
        if plan.sorted_groups > 0:
            srt = _segment_sorted(rewards, offsets, torch_acc)
            listed = plan.sorted_listed
            sorted_kernel[(plan.sorted_groups,)](
                rewards, rewards.stride(0), srt, out, out.stride(0), offsets, num_groups, num_rewards,
                min(plan.size_limit, NO_LIMIT), 0 if listed or force_sorted else MAX_BLOCK + 1,
                order if listed else offsets, info[LARGE] if listed else offsets, **scalars, **consts,
                CHUNK=chunk, LISTED=listed, num_warps=4,
            )
    return out


@torch.library.custom_op("gapo_triton::advantage", mutates_args=())
def _advantage_op(
    rewards: torch.Tensor,
    offsets: torch.Tensor,
    tau: float,
    baseline: str,
    scale: str,
    eps: float,
    max_group_size: Optional[int] = None,
) -> torch.Tensor:
    return _advantage_impl(rewards, offsets, tau, baseline, scale, eps, max_group_size)


@_advantage_op.register_fake
def _advantage_fake(rewards, offsets, tau, baseline, scale, eps, max_group_size=None):
    return torch.empty_like(rewards)


def advantage(
    rewards: torch.Tensor,
    offsets: torch.Tensor,
    tau: float,
    baseline: str,
    scale: str,
    eps: float,
    max_group_size: Optional[int] = None,
) -> torch.Tensor:
    """GAPO-family advantages of ``rewards`` grouped by ``offsets`` (arguments already validated).

    ``rewards``: 1-D float16/bfloat16/float32/float64, any stride; ``offsets``: 1-D int32/int64,
    G + 1 entries, same device. Returns a tensor of ``rewards``' dtype, device and shape.
    ``max_group_size`` (optional, >= the largest group) avoids the one host read of the
    group sizes; a larger group gets NaN advantages.
    """
    return _advantage_op(rewards, offsets, float(tau), baseline, scale, float(eps), max_group_size)
