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


def scale_as_norm_flag(settings: dict[str, Any], norm_adv_by_std: bool | None) -> tuple[dict[str, Any], bool | None]:
    """``(config, norm_adv_by_std_in_grpo)`` for :func:`resolve_settings`.

    resolve_settings reads the string "none" as "not set" for every key, so an explicit
    ``gapo_scale="none"`` is passed on as ``norm_adv_by_std_in_grpo=False``, which means the same.
    """
    if str(settings.get("gapo_scale", "")).strip().lower() == "none":
        return {key: value for key, value in settings.items() if key != "gapo_scale"}, False
    return settings, norm_adv_by_std


class SkyRLEstimator:
    """A SkyRL advantage estimator computing GAPO estimator ``name`` with ``settings``.

    ``settings`` is a ``gapo_*`` config dict for :func:`resolve_settings` (keys ``gapo_tau``,
    ``gapo_baseline``, ``gapo_scale``, ``gapo_eps``, each optional). Called with SkyRL's
    estimator signature; returns ``(advantages, returns)`` like SkyRL's GRPO.
    """

    def __init__(self, name: str, settings: dict[str, Any]) -> None:
        resolve_settings(scale_as_norm_flag(settings, True)[0], estimator=name)  # fail now, not at a step
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
        config, norm = scale_as_norm_flag(self.settings, grpo_norm_by_std)
        return resolve_settings(config, estimator=self.name, epsilon=epsilon, norm_adv_by_std_in_grpo=norm)

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
        config, norm = scale_as_norm_flag(self.settings, grpo_norm_by_std)
        return outcome_advantage(
            self.name,
            token_level_rewards,
            response_mask,
            index,
            epsilon=epsilon,
            norm_adv_by_std_in_grpo=norm,
            config=config,
        )
