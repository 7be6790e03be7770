"""The object SkyRL's estimator registry holds for each GAPO estimator.

It lives apart from ``gapo_kernels.integrations.skyrl`` because SkyRL copies its registry to
every Ray process by pickling the registered objects through a named actor: unpickling one
imports this module only (it has no import side effects and does not import SkyRL), so a
worker gets the driver's settings by value and never re-runs the registration that importing
``gapo_kernels.integrations.skyrl`` performs. Works with SkyRL's cloudpickle and with the
plain ``pickle`` it falls back to.
"""

from __future__ import annotations

from typing import Any

import torch

from ._common import outcome_advantage, resolve_settings


class SkyRLEstimator:
    """A SkyRL advantage estimator computing GAPO estimator ``name`` with ``settings``.

    ``settings`` is a ``gapo_*`` config dict for :func:`resolve_settings` (keys ``gapo_tau``,
    ``gapo_baseline``, ``gapo_scale``, ``gapo_eps``, each optional). Called with SkyRL's
    estimator signature; returns ``(advantages, returns)`` like SkyRL's GRPO.
    """

    def __init__(self, name: str, settings: dict[str, Any]) -> None:
        resolve_settings(settings, estimator=name)  # fail at registration, not at the first step
        self.name = name
        self.settings = dict(settings)
        self.__name__ = self.__qualname__ = f"compute_{name}_advantage"
        self._logged = False

    def __getstate__(self) -> dict[str, Any]:
        return {"name": self.name, "settings": self.settings}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["name"], state["settings"])

    def __repr__(self) -> str:
        return f"SkyRLEstimator({self.name!r}, {self.settings!r})"

    def resolved(self, grpo_norm_by_std: bool = True, epsilon: float | None = None) -> dict[str, Any]:
        """``{"tau", "baseline", "scale", "eps"}`` used for a call with these SkyRL arguments."""
        return resolve_settings(
            self.settings, estimator=self.name, epsilon=epsilon, norm_adv_by_std_in_grpo=grpo_norm_by_std
        )

    def __call__(
        self,
        token_level_rewards: torch.Tensor,
        response_mask: torch.Tensor,
        index: Any = None,
        grpo_norm_by_std: bool = True,
        config: Any = None,
        epsilon: float | None = None,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # config (SkyRL's AlgorithmConfig) declares no GAPO keys; values, gamma, lambd: unused.
        if not self._logged:
            self._logged = True
            from loguru import logger  # SkyRL's logger; imported here so this module needs no SkyRL

            logger.info(
                f"gapo_kernels: SkyRL advantage estimator {self.name!r} computing with "
                f"{self.resolved(grpo_norm_by_std, epsilon)}"
            )
        return outcome_advantage(
            self.name,
            token_level_rewards,
            response_mask,
            index,
            epsilon=epsilon,
            norm_adv_by_std_in_grpo=grpo_norm_by_std,
            config=self.settings,
        )
