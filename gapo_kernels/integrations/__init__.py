"""Adapters that switch an RL trainer from GRPO to GAPO with one line of configuration.

Submodules (each imports its trainer library only when it is itself imported):

* ``gapo_kernels.integrations.verl``: registers the advantage estimators ``gapo``,
  ``gapo_hdi_mean`` and ``gapo_median`` with verl's ``register_adv_est``; loaded automatically on
  ``import verl`` through this package's ``verl.plugins`` entry point. Use
  ``algorithm.adv_estimator=gapo``.
* ``gapo_kernels.integrations.trl``: ``GAPOConfig`` / ``GAPOTrainer``, drop-in subclasses of
  TRL's ``GRPOConfig`` / ``GRPOTrainer``.
* ``gapo_kernels.integrations.diagnostics``: :func:`gapo_diagnostics`, the per-step numbers the
  paper's analysis needs (|Q - mean|, HDI width, skew shares, singletons, missing rewards),
  returned as a dict of floats for any logger.
"""

from .diagnostics import DIAGNOSTIC_KEYS, diagnostics_from_stats, gapo_diagnostics

__all__ = ["DIAGNOSTIC_KEYS", "diagnostics_from_stats", "gapo_diagnostics"]
