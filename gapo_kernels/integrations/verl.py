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

from ._common import (
    _DEFAULT_EPS,
    ESTIMATOR_BASELINES,
    factorize_index,
    outcome_advantage,
    resolve_settings,
    sequence_scores,
)
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
    return outcome_advantage(
        estimator,
        token_level_rewards,
        response_mask,
        index,
        epsilon=epsilon,
        norm_adv_by_std_in_grpo=norm_adv_by_std_in_grpo,
        config=config,
    )


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
        scores = sequence_scores(token_level_rewards)
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
