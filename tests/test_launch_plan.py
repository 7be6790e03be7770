"""The CUDA op's launch plan (csrc/cuda/launch_plan.h), checked on CPU.

The plan is a plain host function: which groups take the fused kernel (one direct launch of a
size class, or a launch per class over device-built lists), which take the large-group path,
and how many blocks each launch has. csrc/cuda/host_emulation/print_launch_plan.cpp prints it
as JSON; the emulation tests in tests/test_cuda.py run the same plans end to end.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.host_programs import CAPACITIES, HOST_EMULATION, build_host_program

LARGE = len(CAPACITIES)
NO_LIMIT = 2**63 - 1


@pytest.fixture(scope="module")
def planner(tmp_path_factory) -> Path:
    return build_host_program(tmp_path_factory, HOST_EMULATION / "print_launch_plan.cpp", "the launch-plan printer")


def path_of(size: int) -> int:
    for path, capacity in enumerate(CAPACITIES):
        if size <= capacity:
            return path
    return LARGE


def plan_exact(exe, sizes, stats=False) -> dict:
    """The plan when the op has read the sizes (no max_group_size)."""
    sizes = np.asarray(sizes, dtype=np.int64)
    histogram = np.bincount([path_of(int(s)) for s in sizes[sizes > 0]], minlength=LARGE + 1)
    args = ["exact", len(sizes), int(sizes.sum()), int(stats), int((sizes == 0).sum()), *histogram.tolist()]
    return json.loads(subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, check=True).stdout)


def plan_hint(exe, num_groups, num_rewards, hint) -> dict:
    args = ["hint", num_groups, num_rewards, hint]
    return json.loads(subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, check=True).stdout)


def test_one_large_group_does_not_send_the_small_ones_down_the_large_path(planner):
    sizes = [16] * 65_536 + [2_000]
    plan = plan_exact(planner, sizes)
    assert plan["direct_class"] == CAPACITIES.index(16) and not plan["listed"]
    assert plan["direct_blocks"] == -(-len(sizes) // plan["teams_per_block"][2]) == 1025
    assert plan["fused_launches"] == 1
    assert plan["large_segments"] == 1 and plan["list_room"][LARGE] == 1  # the one large group
    assert plan["blocks"][:LARGE] == [0] * LARGE
    assert plan["size_limit"] == NO_LIMIT


def test_a_cautious_hint_lists_groups_by_their_own_size(planner):
    num_groups, num_rewards = 65_537, 65_536 * 16 + 2_000
    plan = plan_hint(planner, num_groups, num_rewards, 2048)
    assert plan["listed"] and plan["direct_class"] == -1
    assert plan["size_limit"] == 2048 and plan["top_path"] == LARGE
    for path in range(LARGE + 1):
        smallest = 1 if path == 0 else CAPACITIES[path - 1] + 1
        # Room for every group of the path that non-overlapping offsets allow, and no more.
        assert plan["list_room"][path] == min(num_groups, num_rewards // smallest)
    assert plan["large_segments"] == num_rewards // 1025
    # The launches are sized by the room, not by G blocks of the largest class: the block
    # threads of all fused launches together stay within a few threads per reward.
    threads = sum(b * t for b, t in zip(plan["blocks"][:LARGE], plan["block_threads"]))
    assert threads < 4 * num_rewards
    assert plan["list_total"] == sum(plan["list_room"])
    assert plan["list_offset"] == np.concatenate([[0], np.cumsum(plan["list_room"])[:-1]]).tolist()


@pytest.mark.parametrize("hint,size_class", [(0, 0), (1, 0), (4, 0), (5, 1), (16, 2), (17, 3), (64, 4)])
def test_a_small_hint_launches_its_class_directly(planner, hint, size_class):
    plan = plan_hint(planner, 1000, 9000, hint)
    assert plan["direct_class"] == size_class and not plan["listed"] and not plan["classify"]
    assert plan["direct_blocks"] == -(-1000 // plan["teams_per_block"][size_class])
    assert plan["size_limit"] == hint and plan["large_segments"] == 0


@pytest.mark.parametrize("hint,top", [(65, 5), (1024, 8), (1025, LARGE), (10**9, LARGE)])
def test_a_larger_hint_lists_up_to_its_path(planner, hint, top):
    plan = plan_hint(planner, 500, 40_000, hint)
    assert plan["listed"] and plan["top_path"] == top
    assert all(room > 0 for room in plan["list_room"][: top + 1])
    assert all(room == 0 for room in plan["list_room"][top + 1 :])
    assert (plan["large_segments"] > 0) == (top == LARGE)


def test_uniform_sizes_take_one_direct_launch_without_lists(planner):
    for size in (1, 2, 4, 8, 16, 100, 1024):
        plan = plan_exact(planner, [size] * 3000)
        assert plan["direct_class"] == path_of(size) and not plan["classify"] and plan["fused_launches"] == 1


def test_ragged_sizes_are_listed_when_one_class_would_mostly_sort_padding(planner):
    sizes = [16] * 65_536 + [1000] * 10
    plan = plan_exact(planner, sizes)
    assert plan["listed"] and plan["direct_class"] == -1
    assert plan["list_room"][2] == 65_536 and plan["list_room"][8] == 10
    assert plan["blocks"][2] == 65_536 // 64 and plan["blocks"][8] == 10
    assert plan["fused_launches"] == 2 and plan["large_segments"] == 0
    # Close sizes stay in one direct launch: a list and a second launch would cost more.
    plan = plan_exact(planner, [16] * 1000 + [9] * 1000 + [30] * 3)
    assert plan["direct_class"] == 3 and not plan["listed"]


def test_group_ids_style_batches_of_mostly_empty_groups(planner):
    # The CUDA group_ids path passes N + 1 offsets: N groups, most of them empty, which are not
    # counted in any class and return at once in the direct launch.
    sizes = [16] * 4096 + [0] * (65_536 - 4096)
    plan = plan_exact(planner, sizes)
    assert plan["direct_class"] == 2 and plan["list_room"] == [0] * (LARGE + 1)


def test_group_stats_give_every_empty_group_a_team(planner):
    sizes = [0] * 100 + [16] * 65_536 + [1000] * 10 + [3000]
    plan = plan_exact(planner, sizes, stats=True)
    assert plan["listed"] and plan["empty_groups_listed"]
    assert plan["list_room"][0] == 100 and plan["list_room"][LARGE] == 1
    plan = plan_exact(planner, [0] * 5, stats=True)  # only empty groups: one direct launch
    assert plan["direct_class"] == 0 and plan["direct_blocks"] == 1
    assert plan_exact(planner, [0] * 5)["fused_launches"] == 0  # advantages of nothing: no launch


def test_nothing_to_do_launches_nothing(planner):
    for plan in (plan_exact(planner, []), plan_hint(planner, 0, 0, 16), plan_hint(planner, 0, 100, 4096)):
        assert plan["fused_launches"] == 0 and plan["large_segments"] == 0 and not plan["classify"]
