"""gapo_kernels: fast, exact GAPO advantages (and the GRPO family) over ragged groups.

    import gapo_kernels
    adv = gapo_kernels.advantage(rewards, offsets)            # GAPO, tau = 0.5
    adv = gapo_kernels.advantage(rewards, group_ids=prompt)   # rows in any order
    stats = gapo_kernels.group_stats(rewards, offsets)        # per group Q, S, window, shape, ...
    torch.ops.gapo.advantage(rewards, offsets, 0.5, "hdi_median", "rms", 1e-6)

``build_info()`` says what this install compiled and can run here; ``available_backends()``
lists the backends for a device. :class:`RewardShape` names the values of the ``shape`` column
of :class:`GroupStats`. Trainer adapters live in :mod:`gapo_kernels.integrations`; a report of
how skewed a run's rewards are in ``python -m gapo_kernels.report``.

The contract is docs/spec.md; ``gapo_kernels.reference`` is its executable form.
"""

from . import reference
from ._types import GroupStats
from .ops import advantage, available_backends, build_info, group_stats
from .shape import RewardShape

__version__ = "0.1.0"
__all__ = ["advantage", "group_stats", "available_backends", "build_info", "reference", "GroupStats", "RewardShape"]
