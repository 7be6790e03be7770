"""No op leaks: live heap bytes (glibc mallinfo2) stay flat over 10,000 calls of each op.

A trainer calls these ops every step for days, so even a few bytes per call add up. Each op is
called on success and on an argument error (arguments are unboxed before the kernel runs, so a
conversion leak shows on both paths).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

import pytest
import torch

import gapo_kernels

CALLS = 10_000
# Allocator bookkeeping may move a few pages; a leak of even 8 bytes per call is 80 kB.
SLACK_BYTES = 32 * 1024


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def _libc_mallinfo2():
    if platform.system() != "Linux":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallinfo2 = libc.mallinfo2  # glibc >= 2.33
    except (OSError, AttributeError):
        return None
    mallinfo2.restype = _Mallinfo2
    return mallinfo2


_MALLINFO2 = _libc_mallinfo2()
pytestmark = pytest.mark.skipif(_MALLINFO2 is None, reason="needs glibc's mallinfo2 to read live heap bytes")


def _live_heap_bytes() -> int:
    info = _MALLINFO2()
    return info.uordblks + info.hblkhd  # bytes in use: small chunks plus mmapped blocks


R = torch.randn(64)
O = torch.arange(0, 65, 16)
IDS = torch.arange(64) % 4


def _raises(op, *args):
    def call():
        try:
            op(*args)
        except ValueError:
            return
        raise AssertionError("the call was expected to fail")

    return call


CASES = {
    "advantage": lambda: torch.ops.gapo.advantage(R, O, 0.5, "hdi_median", "rms", 1e-6),
    "advantage-hint": lambda: torch.ops.gapo.advantage(R, O, 0.5, "mean", "none", 0.0, 16),
    "group_stats": lambda: torch.ops.gapo.group_stats(R, O, 0.5, "hdi_mean", "std"),
    "advantage_by_ids": lambda: torch.ops.gapo.advantage_by_ids(R, IDS, 0.5, "median", "rms", 1e-6),
    "group_rows_by_ids": lambda: torch.ops.gapo.group_rows_by_ids(IDS),
    "public-offsets": lambda: gapo_kernels.advantage(R, O),
    "public-ids": lambda: gapo_kernels.advantage(R, group_ids=IDS),
    "public-stats": lambda: gapo_kernels.group_stats(R, O),
    "advantage-bad-baseline": _raises(torch.ops.gapo.advantage, R, O, 0.5, "modal", "rms", 1e-6),
    "advantage-bad-offsets": _raises(torch.ops.gapo.advantage, R, torch.tensor([0, 3]), 0.5, "mean", "rms", 1e-6),
    "group_stats-bad-scale": _raises(torch.ops.gapo.group_stats, R, O, 0.5, "mean", "mad"),
    "advantage_by_ids-bad-ids": _raises(torch.ops.gapo.advantage_by_ids, R, IDS[:3], 0.5, "mean", "rms", 1e-6),
}


@pytest.mark.parametrize("name", list(CASES))
def test_live_heap_does_not_grow_over_many_calls(name):
    call = CASES[name]
    for _ in range(500):  # warm up caches, the allocator's free lists and torch's op tables
        call()
    before = _live_heap_bytes()
    for _ in range(CALLS):
        call()
    grown = _live_heap_bytes() - before
    assert grown < SLACK_BYTES, f"{name}: live heap grew by {grown} bytes in {CALLS} calls ({grown / CALLS:.1f} B/call)"
