"""GAPO advantage estimators for verl (0.9 and newer), registered in verl's own registry.

Importing this module registers, with ``verl.trainer.ppo.core_algos.register_adv_est``:

=================  ============================================================================
``gapo``           GAPO (paper default): Q = median of the highest-density window. The baseline
                   can be changed with ``gapo_baseline`` or the authors' ``find_method``.
``gapo_hdi_mean``  Q = mean of the highest-density window (the paper's ablation).
``gapo_median``    Q = median of the whole group.
=================  ============================================================================

It is imported, without editing verl, by any of:

* a plain ``import verl``: this package declares the module in the ``verl.plugins`` entry-point
  group, which verl loads at import (unless ``VERL_USE_EXTERNAL_PLUGINS=none``). verl swallows
  a plugin's import error (it logs it at DEBUG level only);
* ``VERL_USE_EXTERNAL_MODULES=gapo_kernels.integrations.verl``, which verl imports at import
  time and which does raise on error: use it when the entry point seems not to load;
* ``import gapo_kernels.integrations.verl`` in your own code. Importing again, or reloading the
  module, does not raise.

Configuration (``algorithm.*`` in verl's config; ``+`` adds a key verl does not declare)::

    algorithm.adv_estimator=gapo
    +algorithm.gapo_tau=0.5              # window fraction tau in (0, 1]
    +algorithm.gapo_baseline=hdi_median  # hdi_median | hdi_mean | median | mean
    +algorithm.gapo_scale=rms            # rms | std | none
    +algorithm.gapo_eps=1e-6
    algorithm.norm_adv_by_std_in_grpo=true   # false -> scale "none" (Dr. GRPO style)

The authors' fork (verl-GAPO) keys are accepted too, so a run from it moves over unchanged:
``+algorithm.find_method=median`` (-> ``hdi_median``), ``=mean`` (-> ``hdi_mean``); ``None`` or
``null`` means "not set"; ``+algorithm.find_target_fraction=0.5`` is tau. Precedence, per
setting: our ``gapo_*`` key, then the authors' key, then (scale only)
``norm_adv_by_std_in_grpo``, then the default (``hdi_median``, tau 0.5, ``rms``, eps 1e-6).
The ``gapo_hdi_mean`` and ``gapo_median`` names fix the baseline: a ``gapo_baseline`` or
``find_method`` that asks for another one is an error rather than silently ignored.

Each estimator follows verl's estimator signature and conventions: the score of a row is the
sum of its token-level rewards (as verl's GRPO reads it), rows are grouped by ``index`` (verl's
object array of uuid strings, in any order), and the result is broadcast over the response
tokens and multiplied by ``response_mask``: ``(advantages, returns)``, both float32 ``[bs, T]``
(the same tensor, as in verl's GRPO). A NaN/inf score is a missing reward: advantage 0.

Per-step diagnostics for logging: :func:`batch_diagnostics` (see
``gapo_kernels.integrations.diagnostics``).
"""

from __future__ import annotations

import ctypes
import numbers
from typing import Any

import numpy as np
import torch

try:
    from verl.trainer.ppo import core_algos as _core_algos
except ImportError as error:  # pragma: no cover - exercised only without verl
    raise ImportError(
        "gapo_kernels.integrations.verl needs verl (0.9 or newer): run scripts/install_trainers.sh "
        f"or pip install verl ({error})"
    ) from error

import gapo_kernels

from .._checks import BASELINES, SCALES
from .diagnostics import diagnostics_from_stats

__all__ = [
    "ESTIMATOR_BASELINES",
    "batch_diagnostics",
    "compute_gapo_advantage",
    "compute_gapo_hdi_mean_advantage",
    "compute_gapo_median_advantage",
    "factorize_index",
    "register",
    "resolve_settings",
]

#: Estimator name -> the baseline it fixes (None: read from the config, default hdi_median).
ESTIMATOR_BASELINES: dict[str, str | None] = {
    "gapo": None,
    "gapo_hdi_mean": "hdi_mean",
    "gapo_median": "median",
}

# The authors' fork (verl-GAPO, core_algos.compute_grpo_outcome_advantage) reads
# config.find_method in {"mean", "median"}: the mean or the median of the shortest window
# covering find_target_fraction of the sorted group; anything else there means plain GRPO.
_FIND_METHODS = {"median": "hdi_median", "mean": "hdi_mean"}
_UNSET = (None, "", "none", "null")
_DEFAULT_TAU = 0.5
_DEFAULT_EPS = 1e-6  # verl's epsilon default for its GRPO estimators


# --- configuration ---------------------------------------------------------------------------
_CONFIG_KEYS = (
    "gapo_tau",
    "gapo_baseline",
    "gapo_scale",
    "gapo_eps",
    "find_method",
    "find_target_fraction",
    "norm_adv_by_std_in_grpo",
)


def _read_config(config: Any) -> dict[str, Any]:
    """The keys we read, those present only, from verl's DictConfig, AlgoConfig, or a dict.

    Absent keys are found from ``keys()`` first: on a struct-mode DictConfig (what hydra gives
    verl) a ``get`` of an absent key costs ~0.1 ms, more than the rest of the estimator.
    """
    if config is None:
        return {}
    keys = getattr(config, "keys", None)
    if callable(keys):
        present = set(keys())
        getter = getattr(config, "get", None) or config.__getitem__
        return {key: getter(key) for key in _CONFIG_KEYS if key in present}
    return {key: getattr(config, key) for key in _CONFIG_KEYS if hasattr(config, key)}


def _is_unset(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in _UNSET)


def _as_tau(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, str)):
        raise TypeError(f"algorithm.{key} must be a number in (0, 1], got {value!r}")
    try:
        tau = float(value)
    except ValueError:
        raise ValueError(f"algorithm.{key} must be a number in (0, 1], got {value!r}") from None
    if not 0.0 < tau <= 1.0:
        hint = " (it is a fraction, not a percentage)" if 1.0 < tau <= 100.0 else ""
        raise ValueError(f"algorithm.{key} must be in (0, 1]{hint}, got {value!r}")
    return tau


def resolve_settings(
    config: Any,
    *,
    estimator: str = "gapo",
    epsilon: float | None = None,
    norm_adv_by_std_in_grpo: bool | None = None,
) -> dict[str, Any]:
    """``{"tau", "baseline", "scale", "eps"}`` for estimator ``estimator`` under ``config``.

    Precedence per setting: our ``gapo_*`` key > the authors' key (``find_method``,
    ``find_target_fraction``) > for the scale, ``norm_adv_by_std_in_grpo`` (an explicit argument
    first, then the config's) > default. ``epsilon`` (verl's argument) is used unless the config
    sets ``gapo_eps``. A value of None / "none" / "null" / "" counts as not set.
    """
    if estimator not in ESTIMATOR_BASELINES:
        raise ValueError(f"unknown GAPO estimator {estimator!r}; known: {sorted(ESTIMATOR_BASELINES)}")
    values = {key: value for key, value in _read_config(config).items() if not _is_unset(value)}

    # baseline
    requested, source = None, None
    if "gapo_baseline" in values:
        requested, source = str(values["gapo_baseline"]).strip(), "gapo_baseline"
        if requested not in BASELINES:
            raise ValueError(f"algorithm.gapo_baseline must be one of {BASELINES}, got {requested!r}")
    elif "find_method" in values:
        method = str(values["find_method"]).strip().lower()
        if method not in _FIND_METHODS:
            raise ValueError(
                "algorithm.find_method must be 'median' or 'mean' (the authors' fork's values), or unset; "
                f"got {values['find_method']!r}"
            )
        requested, source = _FIND_METHODS[method], "find_method"
    fixed = ESTIMATOR_BASELINES[estimator]
    if fixed is not None and requested is not None and requested != fixed:
        raise ValueError(
            f"adv_estimator={estimator} uses baseline {fixed!r}, but algorithm.{source} asks for {requested!r}: "
            "use adv_estimator=gapo to choose the baseline from the config"
        )
    baseline = fixed or requested or "hdi_median"

    # tau
    if "gapo_tau" in values:
        tau = _as_tau(values["gapo_tau"], "gapo_tau")
    elif "find_target_fraction" in values:
        tau = _as_tau(values["find_target_fraction"], "find_target_fraction")
    else:
        tau = _DEFAULT_TAU

    # scale
    if "gapo_scale" in values:
        scale = str(values["gapo_scale"]).strip()
        if scale not in SCALES:
            raise ValueError(f"algorithm.gapo_scale must be one of {SCALES}, got {scale!r}")
    else:
        norm = norm_adv_by_std_in_grpo
        if norm is None:
            norm = values.get("norm_adv_by_std_in_grpo", True)
        scale = "rms" if bool(norm) else "none"

    # eps
    if "gapo_eps" in values:
        eps = float(values["gapo_eps"])
    else:
        eps = _DEFAULT_EPS if epsilon is None else float(epsilon)
    if not eps >= 0.0:
        raise ValueError(f"algorithm.gapo_eps must be >= 0, got {eps!r}")
    return {"tau": tau, "baseline": baseline, "scale": scale, "eps": eps}


# --- grouping --------------------------------------------------------------------------------
def _object_addresses(labels: np.ndarray) -> np.ndarray:
    """The PyObject pointers held by a C-contiguous object array, as uint64, without a copy."""
    buffer = (ctypes.c_size_t * labels.size).from_address(labels.ctypes.data)
    return np.ctypeslib.as_array(buffer)


def _factorize_objects(labels: np.ndarray) -> np.ndarray:
    """Dense int64 codes (equal label <-> equal code) of a 1-D object array of hashable labels.

    Fast path: verl's uid arrays hold the same str object for every row of a prompt (the batch
    is repeated with ``np.repeat``, and pickling through Ray keeps shared objects shared), so
    rows are grouped by object identity with one sort of the pointers, in NumPy. That grouping
    equals grouping by value exactly when the distinct objects found hold distinct values,
    which one set of the G representatives checks. Otherwise (equal labels held by different
    objects), a dict over the labels does it: one hash lookup per row.
    """
    labels = np.ascontiguousarray(labels)
    if labels.size:
        addresses = _object_addresses(labels)
        unique_addresses, codes = np.unique(addresses, return_inverse=True)
        first_row = np.empty(unique_addresses.size, dtype=np.int64)
        first_row[codes] = np.arange(labels.size)  # any row of each group will do
        representatives = labels[first_row].tolist()
        if len(set(representatives)) == len(representatives):
            return codes.reshape(-1).astype(np.int64, copy=False)
    values = labels.tolist()
    code_of = {label: code for code, label in enumerate(dict.fromkeys(values))}
    return np.fromiter(map(code_of.__getitem__, values), dtype=np.int64, count=len(values))


def factorize_index(index: Any, num_rows: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """verl's ``index`` (uid per row) as an int64 tensor of group ids on ``device``.

    Accepts the object array of uuid strings verl passes, a NumPy array of str/bytes or integer
    ids, a list, or an integer tensor.
    """
    if isinstance(index, torch.Tensor):
        if index.dtype.is_floating_point or index.dtype.is_complex or index.dtype == torch.bool:
            raise TypeError(f"index must hold group labels (integers or strings), got a {index.dtype} tensor")
        ids = index.reshape(-1).to(device=device, dtype=torch.int64)
    else:
        labels = index if isinstance(index, np.ndarray) else np.asarray(index, dtype=object)
        labels = labels.reshape(-1)
        if labels.dtype.kind in "iu":
            codes = labels.astype(np.int64, copy=False)
        elif labels.dtype.kind in "US":
            codes = np.unique(labels, return_inverse=True)[1].reshape(-1)
        elif labels.dtype.kind == "O":
            codes = _factorize_objects(labels)
        else:
            raise TypeError(f"index must hold group labels (strings or integers), got dtype {labels.dtype}")
        ids = torch.from_numpy(np.ascontiguousarray(codes, dtype=np.int64))
        if ids.device != torch.device(device):
            ids = ids.to(device)
    if ids.numel() != num_rows:
        raise ValueError(f"index has {ids.numel()} entries but token_level_rewards has {num_rows} rows")
    return ids


def _scores(token_level_rewards: torch.Tensor) -> torch.Tensor:
    """One score per row, the sum over tokens as verl's GRPO takes it (float32, or float64)."""
    if token_level_rewards.dim() != 2:
        raise ValueError(f"token_level_rewards must be [bs, T], got shape {tuple(token_level_rewards.shape)}")
    dtype = torch.float64 if token_level_rewards.dtype == torch.float64 else torch.float32
    return token_level_rewards.sum(dim=-1, dtype=dtype)


# --- the estimators --------------------------------------------------------------------------
def _estimate(
    estimator: str,
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: Any,
    epsilon: float | None,
    norm_adv_by_std_in_grpo: bool | None,
    config: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    if index is None:
        raise ValueError(f"adv_estimator={estimator} groups rows by prompt: verl must pass index (the 'uid' column)")
    settings = resolve_settings(
        config, estimator=estimator, epsilon=epsilon, norm_adv_by_std_in_grpo=norm_adv_by_std_in_grpo
    )
    with torch.no_grad():
        scores = _scores(token_level_rewards)
        group_ids = factorize_index(index, scores.shape[0], scores.device)
        advantage = gapo_kernels.advantage(scores, group_ids=group_ids, **settings)
        advantages = (advantage.unsqueeze(-1) * response_mask).to(torch.float32)
    return advantages, advantages


def compute_gapo_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: np.ndarray | None = None,
    epsilon: float = _DEFAULT_EPS,
    norm_adv_by_std_in_grpo: bool | None = None,
    config: Any = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """verl estimator ``gapo``: GAPO advantages (baseline from the config, default hdi_median).

    ``norm_adv_by_std_in_grpo`` defaults to None, meaning "read it from ``config``" (verl does not
    pass it to registry estimators). Extra keyword arguments verl may pass are ignored.
    """
    return _estimate("gapo", token_level_rewards, response_mask, index, epsilon, norm_adv_by_std_in_grpo, config)


def compute_gapo_hdi_mean_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: np.ndarray | None = None,
    epsilon: float = _DEFAULT_EPS,
    norm_adv_by_std_in_grpo: bool | None = None,
    config: Any = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """verl estimator ``gapo_hdi_mean``: Q = mean of the highest-density window."""
    return _estimate(
        "gapo_hdi_mean", token_level_rewards, response_mask, index, epsilon, norm_adv_by_std_in_grpo, config
    )


def compute_gapo_median_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: np.ndarray | None = None,
    epsilon: float = _DEFAULT_EPS,
    norm_adv_by_std_in_grpo: bool | None = None,
    config: Any = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """verl estimator ``gapo_median``: Q = median of the whole group."""
    return _estimate("gapo_median", token_level_rewards, response_mask, index, epsilon, norm_adv_by_std_in_grpo, config)


_ESTIMATOR_FUNCTIONS = {
    "gapo": compute_gapo_advantage,
    "gapo_hdi_mean": compute_gapo_hdi_mean_advantage,
    "gapo_median": compute_gapo_median_advantage,
}


def batch_diagnostics(
    token_level_rewards: torch.Tensor,
    index: Any,
    config: Any = None,
    *,
    estimator: str = "gapo",
    prefix: str = "gapo/",
) -> dict[str, float]:
    """Per-step diagnostics of a verl batch, with the settings the estimator would use.

    E.g. in a trainer subclass, after ``compute_advantage``::

        metrics.update(batch_diagnostics(batch.batch["token_level_rewards"],
                                         batch.non_tensor_batch["uid"], self.config.algorithm))
    """
    settings = resolve_settings(config, estimator=estimator)
    with torch.no_grad():
        scores = _scores(token_level_rewards)
        group_ids = factorize_index(index, scores.shape[0], scores.device)
        stats = gapo_kernels.group_stats(
            scores, group_ids=group_ids, tau=settings["tau"], baseline=settings["baseline"], scale=settings["scale"]
        )
    return diagnostics_from_stats(stats, scores.numel(), prefix=prefix)


# --- registration ----------------------------------------------------------------------------
def register() -> None:
    """Put the estimators in verl's registry through ``register_adv_est``; safe to call again.

    verl's ``register_adv_est`` raises when a name is taken by a different function. A function
    of ours under that name (from an earlier import, or a reload of this module) is replaced;
    anyone else's is an error, as verl would report it.
    """
    registry = _core_algos.ADV_ESTIMATOR_REGISTRY
    for name, function in _ESTIMATOR_FUNCTIONS.items():
        current = registry.get(name)
        if current is not None and current is not function:
            if getattr(current, "__module__", None) != __name__:
                raise ValueError(
                    f"verl adv estimator {name!r} is already registered by {getattr(current, '__module__', '?')}."
                    f"{getattr(current, '__qualname__', current)}"
                )
            del registry[name]  # ours, from an earlier copy of this module
        _core_algos.register_adv_est(name)(function)


register()
