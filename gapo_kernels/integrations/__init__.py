"""Adapters that switch an RL trainer from GRPO to GAPO with one line of configuration.

Submodules (each imports its trainer library only when it is itself imported):

* ``gapo_kernels.integrations.verl``: registers the advantage estimators ``gapo``,
  ``gapo_hdi_mean`` and ``gapo_median`` with verl's ``register_adv_est``; loaded automatically on
  ``import verl`` through this package's ``verl.plugins`` entry point. Use
  ``algorithm.adv_estimator=gapo``.
  Under verl's v1 trainer each agent-loop session counts once, by its final output.
* ``gapo_kernels.integrations.trl``: ``GAPOConfig`` / ``GAPOTrainer``, drop-in subclasses of
  TRL's ``GRPOConfig`` / ``GRPOTrainer``.
* ``gapo_kernels.integrations.skyrl``: registers the same three estimators in SkyRL's
  ``AdvantageEstimatorRegistry`` (SkyRL 0.3, Python 3.12); ``python -m
  gapo_kernels.integrations.skyrl trainer.algorithm.advantage_estimator=gapo`` in place of
  SkyRL's entry point, or import it and call ``register(...)`` in your own.
* ``gapo_kernels.integrations.openrlhf``: ``python -m gapo_kernels.integrations.openrlhf ...
  --algo.advantage.estimator gapo`` in place of ``python -m openrlhf.cli.train_ppo_ray``
  (OpenRLHF 0.11.x).
* ``gapo_kernels.integrations.diagnostics``: :func:`gapo_diagnostics`, the per-step numbers the
  paper's analysis needs (|Q - mean|, HDI width, skew shares, singletons, missing rewards),
  returned as a dict of floats for any logger.

The verl, SkyRL and OpenRLHF adapters share their settings parsing and grouping
(``_common.py``): a row whose response mask is all zero (rejected or filtered by the trainer)
is a missing reward, which does not move its group's baseline and gets advantage 0.
"""

from .diagnostics import DIAGNOSTIC_KEYS, diagnostics_from_stats, gapo_diagnostics

__all__ = ["DIAGNOSTIC_KEYS", "diagnostics_from_stats", "gapo_diagnostics"]
