"""Sizes at the edges: one group of 10^6, 10^6 groups of one, a million shuffled rows by id.

Offsets values past 2^31 would need a batch of more than 2^31 rewards (4 GiB of float16 in,
4 GiB out, plus the kernel's scratch): more than CI's shared machine can hold, so no test here
claims them. What is checked is that int32 and int64 offsets are read as what they are.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import gapo_kernels
from gapo_kernels import reference
from tests.oracle import assert_advantage_matches


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_one_group_of_a_million(backend):
    g = torch.Generator().manual_seed(3)
    rewards = torch.randn(1_000_000, generator=g)
    rewards[torch.randint(0, 1_000_000, (1000,), generator=g)] = float("nan")
    rewards[:50_000] += 40.0  # a right-skewed lump far from the bulk
    offsets = torch.tensor([0, 1_000_000])
    out = gapo_kernels.advantage(rewards, offsets, backend=backend)
    assert_advantage_matches(out, rewards, offsets.numpy())
    stats = gapo_kernels.group_stats(rewards, offsets, backend=backend)
    expected = reference.group_stats(rewards.double().numpy(), offsets.numpy())
    assert stats.hdi_low.item() == expected.hdi_low[0] and stats.hdi_high.item() == expected.hdi_high[0]
    assert stats.count.item() == expected.count[0] == int(torch.isfinite(rewards).sum())


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_a_million_singletons(backend):
    rewards = torch.linspace(-3.0, 3.0, 1_000_000, dtype=torch.float64)
    offsets = torch.arange(1_000_001)
    out = gapo_kernels.advantage(rewards, offsets, backend=backend)
    # Singleton convention: Q = 0, S = 1, so A = r / (1 + eps).
    torch.testing.assert_close(out, rewards / (1 + 1e-6), rtol=1e-12, atol=0)
    # The reference agrees on a slice (it is a Python loop; a million groups would take minutes).
    np.testing.assert_allclose(out[:1000].numpy(), reference.advantage(rewards[:1000].numpy(), np.arange(1001)))


def test_int32_and_int64_offsets_give_identical_results():
    g = torch.Generator().manual_seed(5)
    sizes = torch.randint(0, 40, (15_000,), generator=g)
    rewards = torch.randn(int(sizes.sum()), generator=g)
    offsets64 = torch.cat([torch.zeros(1, dtype=torch.long), sizes.cumsum(0)])
    out64 = gapo_kernels.advantage(rewards, offsets64)
    out32 = gapo_kernels.advantage(rewards, offsets64.int())
    assert torch.equal(out64, out32)
    sample = slice(0, int(offsets64[2000]))
    assert_advantage_matches(out64[sample], rewards[sample], offsets64[:2001].numpy())


@pytest.mark.parametrize("backend", ["cpu", "torch", "reference"])
def test_int64_offsets_values_are_never_truncated(backend):
    # 2^32 + 4 truncated to 32 bits is 4, which would make [0, 2^32 + 4] a valid partition of
    # four rewards: the call must see the full value and refuse it.
    rewards = torch.arange(4.0)
    with pytest.raises(ValueError, match=r"got offsets\[-1\] = 4294967300"):
        gapo_kernels.advantage(rewards, torch.tensor([0, 2**32 + 4]), backend=backend)
    with pytest.raises(ValueError, match=r"non-decreasing, but offsets\[1\] > offsets\[2\]"):
        gapo_kernels.advantage(rewards, torch.tensor([0, 2**32 + 1, 4]), backend=backend)


def test_group_ids_path_on_a_million_shuffled_rows():
    g = torch.Generator().manual_seed(7)
    num_groups, size = 62_500, 16
    rewards = torch.rand(num_groups * size, generator=g)
    perm = torch.randperm(num_groups * size, generator=g)
    ids = torch.arange(num_groups).repeat_interleave(size)[perm]
    out = gapo_kernels.advantage(rewards[perm], group_ids=ids)
    by_offsets = gapo_kernels.advantage(rewards, torch.arange(0, num_groups * size + 1, size))
    assert torch.equal(out, by_offsets[perm])
    # Sparse ids (a hash-like spread) take the sort-based grouping; same answer.
    sparse = ids * 1_000_003_337 - 4_000_000_000_000
    assert torch.equal(gapo_kernels.advantage(rewards[perm], group_ids=sparse), out)
    assert math.isfinite(float(out.abs().max()))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_outputs_on_huge_pages_are_exact(dtype):
    # Buffers of 8 MiB and more are advised onto transparent huge pages (csrc/cpu/huge_pages.h);
    # every byte must still be written, and written right: the offsets path against the
    # reference on sampled groups and on the unaligned tail, the shuffled-ids path (its grouped
    # copies and order are advised too) against the offsets path, bit for bit.
    g = torch.Generator().manual_seed(11)
    sizes = torch.randint(1, 48, (200_000,), generator=g)
    n = int(sizes.sum())
    assert n * torch.finfo(dtype).bits // 8 > (8 << 20) + (4 << 20)  # past the threshold, several huge pages
    rewards = torch.randn(n, generator=g, dtype=dtype)
    rewards[torch.randint(0, n, (n // 50,), generator=g)] = float("nan")
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), sizes.cumsum(0)])
    out = gapo_kernels.advantage(rewards, offsets, backend="cpu")
    for first_group in (0, 64_999, sizes.numel() - 1000):
        sample = slice(int(offsets[first_group]), int(offsets[first_group + 1000]))
        assert_advantage_matches(out[sample], rewards[sample], (offsets[first_group:first_group + 1001] - offsets[first_group]).numpy())
    perm = torch.randperm(n, generator=g)
    ids = torch.repeat_interleave(torch.arange(sizes.numel()), sizes)[perm]
    by_ids = gapo_kernels.advantage(rewards[perm], group_ids=ids, backend="cpu")
    assert torch.equal(by_ids, out[perm])


def test_huge_page_advice_can_be_turned_off_and_changes_no_bit(tmp_path):
    # GAPO_HUGE_PAGES is read once per process, so each setting runs in its own interpreter;
    # both write the advantages of the same 12 MiB batch, which must be equal byte for byte.
    code = ("import sys, torch, gapo_kernels\n"
            "g = torch.Generator().manual_seed(3)\n"
            "r = torch.randn(3_000_000, generator=g)\n"
            "out = gapo_kernels.advantage(r, torch.arange(0, 3_000_001, 24), backend='cpu')\n"
            "torch.save(out, sys.argv[1])\n")
    outputs = []
    for setting in ("0", "1"):
        path = tmp_path / f"out_{setting}.pt"
        env = dict(os.environ, GAPO_HUGE_PAGES=setting)
        proc = subprocess.run([sys.executable, "-c", code, str(path)], env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        outputs.append(torch.load(path))
    assert outputs[0].numel() == 3_000_000 and torch.equal(outputs[0].view(torch.int32), outputs[1].view(torch.int32))
