"""GAPO advantage estimators for SkyRL (0.3), registered in SkyRL's own estimator registry.

Importing this module registers, with SkyRL's ``AdvantageEstimatorRegistry``
(``skyrl.backends.skyrl_train.utils.ppo_utils``):

=================  ============================================================================
``gapo``           GAPO (paper default): Q = median of the highest-density window; the baseline
                   can be changed with ``register(baseline=...)``.
``gapo_hdi_mean``  Q = mean of the highest-density window (the paper's ablation).
``gapo_median``    Q = median of the whole group.
=================  ============================================================================

Switching a SkyRL run: launch through this module instead of SkyRL's entry point, with the
same overrides plus the estimator's name, and optionally ``gapo.*`` settings::

    python -m gapo_kernels.integrations.skyrl trainer.algorithm.advantage_estimator=gapo \\
        gapo.tau=0.5 gapo.baseline=hdi_median gapo.scale=rms gapo.eps=1e-6  ...SkyRL overrides...

(``trainer.override_entrypoint=gapo_kernels.integrations.skyrl`` on SkyRL's own command does
the same.) In your own entry point, ``import gapo_kernels.integrations.skyrl`` registers the
paper's defaults and :func:`register` sets other ones; do either before SkyRL validates its
config (``validate_cfg``) and initialises Ray.

How the settings are chosen. SkyRL's config is a typed dataclass that rejects keys it does not
declare, so tau, the baseline, the scale and eps are the arguments of :func:`register` (the
``gapo.*`` overrides above are parsed into them), never extra config keys. Each registered
estimator (a :class:`SkyRLEstimator`) carries its settings inside itself: SkyRL copies the
registry to every Ray process by pickling the registered objects through its named registry
actor, so a worker computes with the settings the driver registered, whatever its environment.
Unpickling one imports only ``gapo_kernels.integrations._skyrl_estimator``, never this module,
so a worker cannot re-register defaults over the driver's settings. Registration logs the
settings (loguru, SkyRL's logger) and each process logs them again on its first call.

When the scale is not given, it follows SkyRL's ``trainer.algorithm.grpo_norm_by_std``, as
SkyRL's GRPO does: true -> ``rms``, false -> ``none``. With ``baseline="mean"`` an estimator is
SkyRL's GRPO exactly (same singleton and zero-variance conventions).

Each estimator has SkyRL's estimator signature (``token_level_rewards``, ``response_mask``,
``index``, ``grpo_norm_by_std``, ``config``, ``**kwargs``): the score of a row is the sum of its
token-level rewards, rows are grouped by ``index`` (SkyRL's uid strings, in any order), a row
whose response mask is all zero is a missing reward (like NaN/inf: it does not move its
group's baseline and gets 0), and the advantage is broadcast over the response tokens and
multiplied by ``response_mask``: ``(advantages, returns)``, both float32 ``[bs, T]``.
"""

from __future__ import annotations

import sys
from typing import Any

try:
    from loguru import logger
    from skyrl.backends.skyrl_train.utils.ppo_utils import AdvantageEstimatorRegistry
except ImportError as error:  # pragma: no cover - exercised only without skyrl
    raise ImportError(
        "gapo_kernels.integrations.skyrl needs SkyRL 0.3 (`pip install skyrl`, Python >= 3.12: "
        f"see scripts/install_next_trainers.sh) ({error})"
    ) from error

from ._common import ESTIMATOR_BASELINES, resolve_settings
from ._skyrl_estimator import SkyRLEstimator, scale_as_norm_flag

__all__ = ["ESTIMATOR_BASELINES", "SkyRLEstimator", "main", "register", "registered_settings"]

_MODULE = "gapo_kernels.integrations.skyrl"  # also when run as __main__
_CLI_KEYS = {"gapo.tau": "tau", "gapo.baseline": "baseline", "gapo.scale": "scale", "gapo.eps": "eps"}


def _settings_config(name: str, tau: Any, baseline: Any, scale: Any, eps: Any) -> dict[str, Any]:
    """The ``gapo_*`` config an estimator is built with, validated now (at registration).

    Only explicitly given values are kept, so that an unset scale follows SkyRL's
    ``grpo_norm_by_std`` and an unset eps follows an ``epsilon`` SkyRL may pass.
    """
    config: dict[str, Any] = {"gapo_tau": tau}
    if ESTIMATOR_BASELINES[name] is None and baseline is not None:
        config["gapo_baseline"] = baseline
    if scale is not None:
        config["gapo_scale"] = scale
    if eps is not None:
        config["gapo_eps"] = eps
    try:
        resolved = resolve_settings(scale_as_norm_flag(config, True)[0], estimator=name)
    except (TypeError, ValueError) as error:
        raise type(error)(f"gapo_kernels.integrations.skyrl.register: {error}") from None
    # Store parsed values (the gapo.* command-line overrides arrive as strings).
    config["gapo_tau"] = resolved["tau"]
    if "gapo_baseline" in config:
        config["gapo_baseline"] = resolved["baseline"]
    if "gapo_eps" in config:
        config["gapo_eps"] = resolved["eps"]
    return config


def _registered(name: str) -> Any:
    if name not in AdvantageEstimatorRegistry.list_available():
        return None
    return AdvantageEstimatorRegistry.get(name)


def _check_free_or_ours(name: str, current: Any) -> bool:
    """True when ``name`` holds one of our estimators; raises when someone else's holds it."""
    if current is None:
        return False
    if isinstance(current, SkyRLEstimator) and current.name == name:
        return True
    raise ValueError(
        f"SkyRL advantage estimator {name!r} is already registered by "
        f"{getattr(current, '__module__', '?')}.{getattr(current, '__qualname__', current)}"
    )


def register(
    *,
    tau: float = 0.5,
    baseline: str | None = None,
    scale: str | None = None,
    eps: float | None = None,
) -> dict[str, dict[str, Any]]:
    """(Re)register ``gapo``, ``gapo_hdi_mean`` and ``gapo_median`` with these settings.

    ``tau`` in (0, 1]; ``baseline`` (``gapo`` only; the other two fix theirs): ``hdi_median``
    (default), ``hdi_mean``, ``median`` or ``mean``; ``scale``: ``rms``, ``std`` or ``none``
    (default: from SkyRL's ``grpo_norm_by_std``); ``eps`` >= 0 (default 1e-6, or an
    ``epsilon`` SkyRL passes). Values are checked here, before anything is registered.
    Replaces earlier registrations of ours; a name held by another estimator is an error.
    Returns the settings registered under each name.
    """
    configs = {name: _settings_config(name, tau, baseline, scale, eps) for name in ESTIMATOR_BASELINES}
    for name in configs:
        _check_free_or_ours(name, _registered(name))
    for name, config in configs.items():
        _install(name, config)
    logger.info(f"gapo_kernels: SkyRL advantage estimators registered: {_describe(configs)}")
    return configs


def registered_settings() -> dict[str, dict[str, Any]]:
    """The settings of our estimators now in SkyRL's registry (synced with its actor under Ray)."""
    result = {}
    for name in ESTIMATOR_BASELINES:
        current = _registered(name)
        if isinstance(current, SkyRLEstimator) and current.name == name:
            result[name] = dict(current.settings)
    return result


def _describe(configs: dict[str, dict[str, Any]]) -> str:
    parts = []
    for name, config in configs.items():
        baseline = ESTIMATOR_BASELINES[name] or config.get("gapo_baseline", "hdi_median")
        scale = config.get("gapo_scale", "rms if grpo_norm_by_std else none")
        eps = config.get("gapo_eps", "1e-6 or SkyRL's epsilon")
        parts.append(f"{name} (tau={config['gapo_tau']}, baseline={baseline}, scale={scale}, eps={eps})")
    return "; ".join(parts)


def _install(name: str, config: dict[str, Any]) -> None:
    if _registered(name) is not None:
        AdvantageEstimatorRegistry.unregister(name)
    AdvantageEstimatorRegistry.register(name, SkyRLEstimator(name, config))


def _register_on_import() -> None:
    """Register the defaults under each name that does not hold an estimator of ours yet.

    An estimator of ours already in the registry (registered with other settings by
    :func:`register`, or synced from SkyRL's registry actor in a Ray worker) is kept.
    """
    free = [name for name in ESTIMATOR_BASELINES if not _check_free_or_ours(name, _registered(name))]
    configs = {name: _settings_config(name, 0.5, None, None, None) for name in free}
    for name, config in configs.items():
        _install(name, config)
    if configs:
        logger.info(f"gapo_kernels: SkyRL advantage estimators registered: {_describe(configs)}")


# --- command line ----------------------------------------------------------------------------
def split_cli_overrides(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """``gapo.KEY=VALUE`` overrides (KEY in tau, baseline, scale, eps) and the rest of ``argv``.

    A leading ``+`` (hydra's "add a key") is accepted. ``trainer.override_entrypoint`` naming this
    module is dropped from the rest, since SkyRL would dispatch back here.
    """
    settings: dict[str, str] = {}
    rest: list[str] = []
    for arg in argv:
        key, sep, value = arg.lstrip("+").partition("=")
        if key.startswith("gapo."):
            if key not in _CLI_KEYS or not sep:
                raise ValueError(f"unknown GAPO override {arg!r}: use {', '.join(k + '=...' for k in _CLI_KEYS)}")
            settings[_CLI_KEYS[key]] = value
        elif key == "trainer.override_entrypoint" and value == _MODULE:
            continue
        else:
            rest.append(arg)
    return settings, rest


def main(argv: list[str] | None = None) -> None:
    """SkyRL's training entry point with the GAPO estimators registered (see the module doc)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    settings, rest = split_cli_overrides(argv)
    register(**settings)
    from skyrl.train.entrypoints import main_base

    sys.argv = [sys.argv[0] if sys.argv else _MODULE, *rest]
    main_base.main()


_register_on_import()

if __name__ == "__main__":  # pragma: no cover - a training launch
    # Through the importable module, so that what is pickled for Ray names it, not __main__.
    from gapo_kernels.integrations.skyrl import main as _main

    _main()
