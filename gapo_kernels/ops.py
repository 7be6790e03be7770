"""Public entry points: validate the arguments, pick a backend, call it. Nothing more.

The compiled ops live in ``torch.ops.gapo`` (schemas in csrc/ops.cpp); this module loads
them, registers their fake kernels for ``torch.compile``, and routes
``gapo_kernels.advantage`` / ``gapo_kernels.group_stats`` to a backend:

==========  =====================================================================
cpu         the C++ kernel (``torch.ops.gapo``), CPU tensors
cuda        the CUDA C++ kernel, CUDA tensors (in builds with CUDA)
triton      the Triton kernel (``torch.ops.gapo_triton``), needs triton
torch       pure PyTorch over a padded batch, any device
reference   the NumPy oracle, any device (copies to the host)
==========  =====================================================================
"""

from __future__ import annotations

import importlib.util
import numbers
import os

import numpy as np
import torch

from . import _checks, reference, torch_backend
from ._types import GroupStats
from .shape import shape_columns, stats_with_shape_columns

try:  # _C loads lib/libgapo_ops.so, the ops library, which registers torch.ops.gapo as it loads
    from . import _C
except ImportError as error:  # a source checkout never built, or a torch older than the ops' ABI
    _C = None
    _C_IMPORT_ERROR = error
    if tuple(int(part) for part in torch.__version__.split(".")[:2]) < (2, 10):
        _C_IMPORT_ERROR = ImportError(f"{error} (the compiled ops need torch >= 2.10, found {torch.__version__})")

BACKENDS = ("auto", "cpu", "cuda", "triton", "torch", "reference")
REWARD_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
INDEX_DTYPES = (torch.int32, torch.int64)
INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
                  torch.uint16, torch.uint32, torch.uint64)


# --- fake kernels: shapes and dtypes only, for torch.compile, opcheck and meta tensors --------
# The dispatcher runs these whenever any argument is on the meta device, so they make the
# raw ops' own argument checks (a CPU rewards tensor with meta offsets must fail, not return
# an uninitialised CPU tensor).
if _C is not None:

    @torch.library.register_fake("gapo::advantage")
    def _advantage_fake(rewards, offsets, tau, baseline, scale, eps, max_group_size=None):
        _check_rewards(rewards)
        _check_offsets(offsets, rewards, check_values=False)
        return rewards.new_empty(rewards.shape)

    @torch.library.register_fake("gapo::advantage_by_ids")
    def _advantage_by_ids_fake(rewards, group_ids, tau, baseline, scale, eps):
        _check_rewards(rewards)
        _check_group_ids(group_ids, rewards)
        return rewards.new_empty(rewards.shape)

    @torch.library.register_fake("gapo::group_stats")
    def _group_stats_fake(rewards, offsets, tau, baseline, scale):
        _check_rewards(rewards)
        _check_offsets(offsets, rewards, check_values=False)
        num_groups = offsets.shape[0] - 1
        stat_dtype = torch.float64 if rewards.dtype == torch.float64 else torch.float32
        floats = tuple(rewards.new_empty((num_groups,), dtype=stat_dtype) for _ in range(7))
        return (*floats, rewards.new_empty((num_groups,), dtype=torch.int64))

    @torch.library.register_fake("gapo::group_rows_by_ids")
    def _group_rows_by_ids_fake(group_ids):
        _check_group_ids_tensor(group_ids)
        num_groups = torch.library.get_ctx().new_dynamic_size()
        order = group_ids.new_empty(group_ids.shape, dtype=torch.int64)
        offsets = group_ids.new_empty((num_groups + 1,), dtype=torch.int64)
        return order, offsets, group_ids.new_empty((num_groups,))

    @torch.library.register_fake("gapo::group_stats_with_shape")
    def _group_stats_with_shape_fake(rewards, offsets, tau, baseline, scale):
        _check_rewards(rewards)
        _check_offsets(offsets, rewards, check_values=False)
        num_groups = offsets.shape[0] - 1
        stat_dtype = torch.float64 if rewards.dtype == torch.float64 else torch.float32
        return (rewards.new_empty((9, num_groups), dtype=stat_dtype), rewards.new_empty((2, num_groups), dtype=torch.int64))

    # Advantages and statistics are constants to the policy loss: the ops are not differentiable,
    # so autograd falls through to the kernels and no output requires grad, whatever the inputs.
    # A fallthrough costs nothing per call (the dispatcher skips the key), unlike an autograd
    # formula that raises.
    _AUTOGRAD_FALLTHROUGH = torch.library.Library("gapo", "IMPL")
    for _op in ("advantage", "advantage_by_ids", "group_stats", "group_rows_by_ids", "group_stats_with_shape"):
        _AUTOGRAD_FALLTHROUGH.impl(_op, torch.library.fallthrough_kernel, "Autograd")


# --- what this install can run ----------------------------------------------------------------
def build_info() -> dict:
    """How the compiled library was built (version, backends, CUDA archs, compiler)."""
    if _C is None:
        return {"version": None, "backends": (), "cuda_archs": "", "error": str(_C_IMPORT_ERROR)}
    return dict(_C.build_info())


# Read once: the hot path (and torch.compile's tracer) must not call into pybind11 or importlib.
_COMPILED_DEVICES = frozenset(_C.build_info()["backends"]) if _C is not None else frozenset()
_TRITON_INSTALLED = importlib.util.find_spec("triton") is not None


def _has_compiled(device_type: str) -> bool:
    return device_type in _COMPILED_DEVICES


def _has_triton() -> bool:
    return _TRITON_INSTALLED


def available_backends(device: str | torch.device = "cpu") -> list[str]:
    """Backends that can run on ``device`` in this install (``auto`` picks the first)."""
    device_type = torch.device(device).type
    names = []
    if device_type in ("cpu", "cuda") and _has_compiled(device_type):
        names.append(device_type)
    if _has_triton() and (device_type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1"):
        names.append("triton")
    return names + ["torch", "reference"]


def _resolve_backend(backend: str, device: torch.device) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        if device.type in ("cpu", "cuda") and _has_compiled(device.type):
            return device.type
        if device.type == "cuda" and _has_triton():
            return "triton"
        return "torch"
    if backend in ("cpu", "cuda"):
        if device.type != backend:
            raise ValueError(f"backend={backend!r} needs rewards on {backend}, got rewards on {device}")
        if not _has_compiled(backend):
            detail = f": {_C_IMPORT_ERROR}" if _C is None else f": {build_info()['cuda_error']}"
            raise RuntimeError(f"backend={backend!r} is not available in this install{detail}")
    if backend == "triton" and not _has_triton():
        raise RuntimeError("backend='triton' needs the triton package (pip install 'gapo-kernels[triton]')")
    return backend


# --- argument checks (cheap ones always; offsets values only where they cost no sync) ---------
def _check_rewards(rewards) -> None:
    if not isinstance(rewards, torch.Tensor):
        raise TypeError(f"rewards must be a torch.Tensor, got {type(rewards).__name__}")
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D, got shape {tuple(rewards.shape)}")
    if rewards.dtype not in REWARD_DTYPES:
        raise TypeError(f"rewards must be float16, bfloat16, float32 or float64, got {rewards.dtype}")


def _check_offsets(offsets, rewards: torch.Tensor, check_values: bool) -> None:
    if not isinstance(offsets, torch.Tensor):
        raise TypeError(f"offsets must be a torch.Tensor, got {type(offsets).__name__}")
    if offsets.dim() != 1 or offsets.numel() < 1:
        raise ValueError(f"offsets must be 1-D with G + 1 >= 1 entries, got shape {tuple(offsets.shape)}")
    if offsets.dtype not in INDEX_DTYPES:
        raise TypeError(f"offsets must be int32 or int64, got {offsets.dtype}")
    if offsets.device != rewards.device:
        raise ValueError(f"offsets must be on the same device as rewards ({rewards.device}), got {offsets.device}")
    if check_values and not torch.compiler.is_compiling():
        decreasing = torch.nonzero(offsets[1:] < offsets[:-1])
        _checks.check_offsets_values(
            int(offsets[0]),
            int(offsets[-1]),
            int(decreasing[0]) if decreasing.numel() else None,
            rewards.numel(),
        )


def _check_group_ids_tensor(group_ids) -> None:
    if not isinstance(group_ids, torch.Tensor):
        raise TypeError(f"group_ids must be a torch.Tensor of integer ids, got {type(group_ids).__name__}")
    if group_ids.dim() != 1:
        raise ValueError(f"group_ids must be 1-D, got shape {tuple(group_ids.shape)}")
    if group_ids.dtype not in INTEGER_DTYPES:
        raise TypeError(f"group_ids must hold integer ids, got {group_ids.dtype}")


def _check_group_ids(group_ids, rewards: torch.Tensor) -> None:
    _check_group_ids_tensor(group_ids)
    if group_ids.numel() != rewards.numel():
        raise ValueError(
            f"group_ids must have one id per reward ({rewards.numel()}), got shape {tuple(group_ids.shape)}"
        )
    if group_ids.device != rewards.device:
        raise ValueError(f"group_ids must be on the same device as rewards ({rewards.device}), got {group_ids.device}")


def _ids_in_order(group_ids: torch.Tensor) -> torch.Tensor:
    """int32/int64 ids with the order of group_ids, for the backends that sort ids in torch.

    uint64 ids flip their top bit (ids >= 2^63 stay above the rest), as the C++ grouping does;
    narrower types convert exactly.
    """
    if group_ids.dtype in INDEX_DTYPES:
        return group_ids
    if group_ids.dtype == torch.uint64:
        return group_ids.view(torch.int64) ^ torch.iinfo(torch.int64).min
    return group_ids.to(torch.int64)


def _rows_grouped_by_id(group_ids: torch.Tensor, exact_groups: bool):
    """(order, offsets) from one stable torch.sort of the ids: rows of each group, ascending id.

    With exact_groups=False nothing is read back to the host: offsets get N + 1 entries, the
    trailing groups empty, which the compiled kernels skip for free.
    """
    sorted_ids, order = torch.sort(group_ids, stable=True)
    num_rewards = group_ids.numel()
    starts_group = torch.ones(num_rewards, dtype=torch.bool, device=group_ids.device)
    starts_group[1:] = sorted_ids[1:] != sorted_ids[:-1]
    if exact_groups:
        group_starts = torch.nonzero(starts_group).flatten()
        offsets = torch.cat([group_starts, group_starts.new_tensor([num_rewards])])
    else:
        group_of_position = torch.cumsum(starts_group, 0) - 1
        offsets = torch.searchsorted(group_of_position, torch.arange(num_rewards + 1, device=group_ids.device))
    return order, offsets


# --- the backends behind one signature ----------------------------------------------------------
def _reference_advantage(rewards, offsets, tau, baseline, scale, eps, max_group_size=None):
    values = rewards.detach().to("cpu", torch.float64).numpy()
    out = reference.advantage(values, offsets.cpu().numpy(), tau=tau, baseline=baseline, scale=scale, eps=eps)
    return torch.from_numpy(out).to(rewards.device, rewards.dtype)


def _triton_advantage(rewards, offsets, tau, baseline, scale, eps, max_group_size=None):
    from . import triton_backend  # imported on first use: triton is optional

    return triton_backend.advantage(rewards, offsets, tau, baseline, scale, eps, max_group_size)


def _compiled_advantage(rewards, offsets, tau, baseline, scale, eps, max_group_size=None):
    return torch.ops.gapo.advantage(rewards, offsets, tau, baseline, scale, eps, max_group_size)


_ADVANTAGE = {
    "cpu": _compiled_advantage,
    "cuda": _compiled_advantage,
    "triton": _triton_advantage,
    "torch": torch_backend.advantage,
    "reference": _reference_advantage,
}


def advantage(
    rewards: torch.Tensor,
    offsets: torch.Tensor | None = None,
    *,
    group_ids: torch.Tensor | None = None,
    tau: float = 0.5,
    baseline: str = "hdi_median",
    scale: str = "rms",
    eps: float = 1e-6,
    backend: str = "auto",
    max_group_size: int | None = None,
    validate: bool = False,
) -> torch.Tensor:
    """GAPO (and GRPO, Dr. GRPO, median, window-mean) advantages of ragged groups.

    Groups are ``rewards[offsets[g]:offsets[g + 1]]`` or the rows sharing a ``group_ids``
    value (any order). NaN/inf rewards are missing: left out of their group, advantage 0.
    Returns a tensor of the dtype, device and shape of ``rewards``. See docs/spec.md.

    ``max_group_size`` bounds the largest group; on CUDA it saves the one host read the kernel
    otherwise needs to choose its launch, which makes the call CUDA-graph capturable.
    ``validate=True`` also checks offsets values on devices where that costs a host sync.
    """
    _checks.check_hyperparameters(tau, baseline, scale, eps)
    _checks.check_grouping_choice(offsets, group_ids)
    _check_rewards(rewards)
    name = _resolve_backend(backend, rewards.device)
    if max_group_size is not None:
        if isinstance(max_group_size, bool) or not isinstance(max_group_size, numbers.Integral) or max_group_size < 0:
            raise ValueError(f"max_group_size must be a non-negative int or None, got {max_group_size!r}")
        max_group_size = int(max_group_size)  # NumPy integers too
    # The C++ CPU kernel checks offsets values itself; elsewhere it is a host read on CUDA.
    check_values = name != "cpu" and (rewards.device.type == "cpu" or validate)
    if rewards.requires_grad:  # advantages are constants to the policy loss: no output requires grad
        rewards = rewards.detach()

    if offsets is not None:
        _check_offsets(offsets, rewards, check_values)
        if rewards.device.type == "meta":  # shape-only, what meta tensors are for
            return torch.empty_like(rewards)
        return _ADVANTAGE[name](rewards, offsets, float(tau), baseline, scale, float(eps), max_group_size)

    _check_group_ids(group_ids, rewards)
    if rewards.device.type == "meta":
        return torch.empty_like(rewards)
    if name == "cpu":
        return torch.ops.gapo.advantage_by_ids(rewards, group_ids, float(tau), baseline, scale, float(eps))
    order, offsets = _rows_grouped_by_id(_ids_in_order(group_ids), exact_groups=name != "cuda")
    grouped = _ADVANTAGE[name](rewards[order], offsets, float(tau), baseline, scale, float(eps), max_group_size)
    return torch.empty_like(grouped).index_copy_(0, order, grouped)


def group_stats(
    rewards: torch.Tensor,
    offsets: torch.Tensor | None = None,
    *,
    group_ids: torch.Tensor | None = None,
    tau: float = 0.5,
    baseline: str = "hdi_median",
    scale: str = "rms",
    eps: float = 1e-6,
    backend: str = "auto",
) -> GroupStats:
    """Per group: Q, S, the HDI window bounds, mean, min, max, n, skewness, kurtosis and shape.

    See ``GroupStats``; ``shape`` holds :class:`gapo_kernels.RewardShape` values.

    With ``group_ids`` the groups come in ascending id order (that of ``torch.unique``).
    ``eps`` changes no statistic; it is accepted so the call mirrors ``advantage``.
    The triton backend computes advantages only; here it falls back to the torch backend.
    """
    _checks.check_hyperparameters(tau, baseline, scale, eps)
    _checks.check_grouping_choice(offsets, group_ids)
    _check_rewards(rewards)
    name = _resolve_backend(backend, rewards.device)
    if rewards.requires_grad:  # statistics are for logging: no output requires grad
        rewards = rewards.detach()
    if offsets is None:
        _check_group_ids(group_ids, rewards)
        if rewards.device.type == "meta":
            raise ValueError("rewards on the meta device have no values: the number of groups of group_ids "
                             "is unknown (pass offsets for a shape-only result)")
        if name == "cpu":
            order, offsets, _ = torch.ops.gapo.group_rows_by_ids(group_ids)
        else:
            order, offsets = _rows_grouped_by_id(_ids_in_order(group_ids), exact_groups=True)
        rewards = rewards[order]
    else:
        _check_offsets(offsets, rewards, name != "cpu" and rewards.device.type == "cpu")
        if rewards.device.type == "meta":  # shape-only: the compiled op's fake kernel
            return GroupStats(*stats_with_shape_columns(*_group_stats_with_shape_fake(rewards, offsets, tau, baseline, scale)))

    if name == "cpu":  # one sort per group serves the statistics and the shape
        blocks = torch.ops.gapo.group_stats_with_shape(rewards, offsets, float(tau), baseline, scale)
        return GroupStats(*stats_with_shape_columns(*blocks))
    if name == "cuda":
        columns = torch.ops.gapo.group_stats(rewards, offsets, float(tau), baseline, scale)
        return GroupStats(*columns, *shape_columns(rewards, offsets))
    if name == "reference":
        values = rewards.detach().to("cpu", torch.float64).numpy()
        stats = reference.group_stats(values, offsets.cpu().numpy(), tau=tau, baseline=baseline, scale=scale)
        stat_dtype = torch.float64 if rewards.dtype == torch.float64 else torch.float32
        return GroupStats(  # float64 columns in the stats dtype; count and shape stay int64
            *(torch.from_numpy(c).to(rewards.device, stat_dtype if c.dtype.kind == "f" else torch.int64) for c in stats)
        )
    columns = torch_backend.group_stats(rewards, offsets, float(tau), baseline, scale)[:8]
    return GroupStats(*columns, *shape_columns(rewards, offsets))
