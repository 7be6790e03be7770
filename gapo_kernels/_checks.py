"""Argument checks shared by every backend, so each error reads the same everywhere.

The compiled op repeats the cheap checks in C++ (it is public as ``torch.ops.gapo.advantage``);
this module is what the Python entry points and the NumPy reference call first, so that a bad
argument is reported by name before any backend runs.
"""

from __future__ import annotations

import numbers
import sys

# In the order of the C++ enums (csrc/gapo/op_checks.h names them in this order; the index is
# the code a kernel sees). tests/test_errors.py holds the two lists equal.
BASELINES = ("hdi_median", "hdi_mean", "median", "mean")
SCALES = ("rms", "std", "none")
_LARGEST_FLOAT = sys.float_info.max


def check_hyperparameters(tau, baseline, scale, eps) -> None:
    """Validate the scalar arguments that every backend shares."""
    if isinstance(tau, bool) or not isinstance(tau, numbers.Real):
        raise TypeError(f"tau must be a real number in (0, 1], got {type(tau).__name__}")
    if not (0.0 < float(tau) <= 1.0):  # also rejects NaN
        raise ValueError(f"tau must be in (0, 1], got {tau!r}")
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise TypeError(f"eps must be a real number >= 0, got {type(eps).__name__}")
    if not (0.0 <= eps <= _LARGEST_FLOAT):  # rejects NaN and inf too (plain compares: traceable)
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    if baseline not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}, got {baseline!r}")
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")


def check_grouping_choice(offsets, group_ids) -> None:
    """Exactly one of ``offsets`` and ``group_ids`` names the groups."""
    if offsets is None and group_ids is None:
        raise ValueError("pass exactly one of offsets and group_ids; got neither")
    if offsets is not None and group_ids is not None:
        raise ValueError("pass exactly one of offsets and group_ids; got both")


def check_offsets_values(first: int, last: int, first_decrease: int | None, num_rewards: int) -> None:
    """Report offsets that do not describe a partition of ``num_rewards`` rows.

    ``first_decrease`` is the index i of the first offsets[i] > offsets[i + 1], or None.
    """
    if first != 0:
        raise ValueError(f"offsets must start at 0, got offsets[0] = {first}")
    if first_decrease is not None:
        raise ValueError(
            f"offsets must be non-decreasing, but offsets[{first_decrease}] > offsets[{first_decrease + 1}]"
        )
    if last != num_rewards:
        raise ValueError(
            f"offsets must end at the number of rewards ({num_rewards}), got offsets[-1] = {last}"
        )
