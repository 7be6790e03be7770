"""GAPO advantage estimators for verl (0.9 and newer), on both of verl's PPO trainers.

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
``find_method`` that asks for another one is an error rather than silently ignored. Booleans
given as strings (a plain-dict config) are read as words: ``"false"``, ``"False"``, ``"0"`` are
False.

Each estimator follows verl's estimator signature and conventions: the score of a row is the
sum of its token-level rewards (as verl's GRPO reads it), rows are grouped by ``index`` (verl's
object array of uuid strings, in any order), and the result is broadcast over the response
tokens and multiplied by ``response_mask``: ``(advantages, returns)``, both float32 ``[bs, T]``
(the same tensor, as in verl's GRPO). A NaN/inf score is a missing reward: advantage 0. So is a
row whose ``response_mask`` is all zero (a response verl's rollout correction rejected, or one
filtered out): it does not move its group's baseline, and a group whose rows are all rejected
gets 0.

The v1 trainer and multi-output agent sessions
----------------------------------------------
verl's default trainer (``trainer.use_v1=true``) computes advantages with
``verl.trainer.ppo.v1.utils.compute_advantage_for_multi_trajectories``. Its rows are the outputs
of agent-loop sessions, keyed ``{uid}_{session_id}_{index}``; every output of a session carries
the session's final reward. For ``grpo`` verl scores each session once, by its final output
(the highest ``index``), and broadcasts that advantage to the session's other outputs; for any
other estimator name it passes every row through, so a session with k outputs would count k
times in the HDI window and the median. verl offers no hook for this, so this module wraps that
one function: for ``gapo``, ``gapo_hdi_mean`` and ``gapo_median`` the wrapper calls verl's own
function on the final output of each session and broadcasts each session's advantage to its
outputs, times their ``response_mask``, exactly as verl does for ``grpo``; every other estimator
name goes to verl's function untouched. A session whose final output is rejected (all-zero
mask) is a missing reward: all its outputs get 0.

The wrap is installed when verl imports ``verl.trainer.ppo.v1.utils`` (a ``sys.meta_path``
finder runs a check right after that module executes, so nothing of the v1 trainer is imported
early) or at once when that module is already loaded; the v1 trainer module, which imports the
function by name, then binds the wrapper. Two checks guard it, and verl's shape is only trusted
when both pass: the function exists with the parameters ``data``, ``batch_keys`` and
``adv_estimator``, and ``verl.trainer.ppo.v1.trainer_base`` calls it under that name. On a verl
where either fails, these estimators raise a ``RuntimeError`` that names what was not found
(GAPO would be silently wrong there); ``trainer.use_v1=false`` avoids the v1 trainer.
:func:`v1_session_support` reports the state.

Per-step diagnostics for logging: :func:`batch_diagnostics` (see
``gapo_kernels.integrations.diagnostics``).
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
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
    "make_estimator",
    "register",
    "resolve_settings",
    "v1_session_support",
]

_ESTIMATOR_DOCS = {
    "gapo": "GAPO advantages (baseline from the config, default hdi_median)",
    "gapo_hdi_mean": "Q = mean of the highest-density window",
    "gapo_median": "Q = median of the whole group",
}


# --- the estimators --------------------------------------------------------------------------
def make_estimator(name: str) -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """The verl-signature estimator registered as ``name`` (a key of ``ESTIMATOR_BASELINES``).

    ``norm_adv_by_std_in_grpo`` defaults to None, meaning "read it from ``config``" (verl does not
    pass it to registry estimators). Extra keyword arguments verl may pass are ignored.
    """
    if name not in ESTIMATOR_BASELINES:
        raise ValueError(f"unknown GAPO estimator {name!r}; known: {sorted(ESTIMATOR_BASELINES)}")

    def estimator(
        token_level_rewards: torch.Tensor,
        response_mask: torch.Tensor,
        index: np.ndarray | None = None,
        epsilon: float = _DEFAULT_EPS,
        norm_adv_by_std_in_grpo: bool | None = None,
        config: Any = None,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        _require_recognised_v1(name)
        return outcome_advantage(
            name,
            token_level_rewards,
            response_mask,
            index,
            epsilon=epsilon,
            norm_adv_by_std_in_grpo=norm_adv_by_std_in_grpo,
            config=config,
        )

    estimator.__name__ = estimator.__qualname__ = f"compute_{name}_advantage"
    estimator.__doc__ = f"verl estimator ``{name}``: {_ESTIMATOR_DOCS.get(name, 'GAPO family')}."
    return estimator


compute_gapo_advantage = make_estimator("gapo")
compute_gapo_hdi_mean_advantage = make_estimator("gapo_hdi_mean")
compute_gapo_median_advantage = make_estimator("gapo_median")

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
    response_mask: torch.Tensor | None = None,
    estimator: str = "gapo",
    prefix: str = "gapo/",
) -> dict[str, float]:
    """Per-step diagnostics of a verl batch, with the settings the estimator would use.

    With ``response_mask``, rows whose mask is all zero count as missing rewards, as in the
    estimator. E.g. in a trainer subclass, after ``compute_advantage``::

        metrics.update(batch_diagnostics(batch.batch["token_level_rewards"],
                                         batch.non_tensor_batch["uid"], self.config.algorithm))
    """
    settings = resolve_settings(config, estimator=estimator)
    with torch.no_grad():
        scores = sequence_scores(token_level_rewards, response_mask)
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


# --- the v1 trainer: one baseline sample per agent-loop session ------------------------------
_V1_UTILS = "verl.trainer.ppo.v1.utils"
_V1_TRAINER = "verl.trainer.ppo.v1.trainer_base"
_V1_FUNCTION = "compute_advantage_for_multi_trajectories"
_V1_PARAMETERS = ("data", "batch_keys", "adv_estimator")
_WRAPS = "__gapo_kernels_wraps__"  # set on our wrapper: the verl function it wraps

#: Module name -> what about it was not recognised; empty while every v1 check passed.
_v1_unrecognised: dict[str, str] = {}
_v1_wrapped: list[str] = []  # modules whose function is our wrapper


def v1_session_support() -> dict[str, Any]:
    """Where the v1 trainer's session-aware GAPO stands in this process.

    ``{"wrapped": [...modules holding the wrapper...], "unrecognised": {module: why}}``; both are
    empty until verl imports its v1 trainer.
    """
    return {"wrapped": list(_v1_wrapped), "unrecognised": dict(_v1_unrecognised)}


def _require_recognised_v1(estimator: str) -> None:
    if _v1_unrecognised:
        import verl

        reasons = "; ".join(f"{module}: {why}" for module, why in _v1_unrecognised.items())
        raise RuntimeError(
            f"adv_estimator={estimator}: the v1 trainer of this verl ({getattr(verl, '__version__', '?')}) is not "
            f"one gapo_kernels recognises ({reasons}). There GAPO would count every output of a multi-output "
            "agent session as its own sample instead of scoring each session once. Run the legacy trainer "
            "(trainer.use_v1=false) or a verl release gapo_kernels supports (0.9.x)."
        )


def _sessions(batch_keys: Sequence[Any]) -> tuple[list[int], list[int]]:
    """(row of each session's final output, session number of each row) from ``{uid}_{session}_{index}``.

    The final output is the one with the highest index; on a tie the first row, as verl picks.
    """
    final: dict[tuple[str, str], list[int]] = {}  # session -> [index, row, session number]
    session_of_row = []
    for row, key in enumerate(batch_keys):
        fields = str(key).rsplit("_", 2)
        try:
            output = int(fields[2]) if len(fields) == 3 else None
        except ValueError:
            output = None
        if output is None:
            raise ValueError(
                f"batch_keys[{row}] = {key!r} is not an agent-loop key '{{uid}}_{{session_id}}_{{index}}' "
                "(the key verl's v1 trainer writes): cannot find the session's final output"
            )
        entry = final.get((fields[0], fields[1]))
        if entry is None:
            entry = final[(fields[0], fields[1])] = [output, row, len(final)]
        elif output > entry[0]:
            entry[0], entry[1] = output, row
        session_of_row.append(entry[2])
    return [row for _, row, _ in final.values()], session_of_row


def _session_baseline(original: Callable[..., Any]) -> Callable[..., Any]:
    """``original`` (verl's compute_advantage_for_multi_trajectories), scoring our estimators per session."""
    signature = inspect.signature(original)

    @functools.wraps(original)
    def compute_advantage_for_multi_trajectories(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        estimator = bound.arguments["adv_estimator"]
        if not (isinstance(estimator, str) and estimator in ESTIMATOR_BASELINES):
            return original(*args, **kwargs)
        data, keys = bound.arguments["data"], list(bound.arguments["batch_keys"])
        if len(keys) != len(data):
            raise ValueError(f"batch_keys has {len(keys)} entries but the batch has {len(data)} rows")
        final_rows, session_of_row = _sessions(keys)
        if len(final_rows) == len(keys):  # one output per session: every row is a final output
            return original(*args, **kwargs)

        bound.arguments["data"] = data.select_idxs(final_rows)
        bound.arguments["batch_keys"] = [keys[row] for row in final_rows]
        final = original(*bound.args, **bound.kwargs)
        # A final row's advantage is one number times its mask: read it at its first response
        # token (0 for a rejected row, whose mask is all zero), as verl does for grpo.
        first_token = (final.batch["response_mask"] != 0).to(torch.int32).argmax(dim=1)
        advantages = final.batch["advantages"]
        per_session = advantages[torch.arange(advantages.shape[0], device=advantages.device), first_token]
        rows = torch.as_tensor(session_of_row, dtype=torch.int64, device=per_session.device)
        advantages = per_session[rows].unsqueeze(-1) * data.batch["response_mask"]
        data.batch["advantages"] = advantages
        data.batch["returns"] = advantages
        return data

    setattr(compute_advantage_for_multi_trajectories, _WRAPS, original)
    return compute_advantage_for_multi_trajectories


def _wrap_v1_utils(module: ModuleType) -> None:
    function = getattr(module, _V1_FUNCTION, None)
    if not callable(function):
        _v1_unrecognised[module.__name__] = f"it has no function {_V1_FUNCTION}"
        return
    original = getattr(function, _WRAPS, function)
    try:
        parameters = inspect.signature(original).parameters
    except (TypeError, ValueError) as error:
        _v1_unrecognised[module.__name__] = f"cannot read the signature of {_V1_FUNCTION} ({error})"
        return
    missing = [name for name in _V1_PARAMETERS if name not in parameters]
    if missing:
        _v1_unrecognised[module.__name__] = f"{_V1_FUNCTION} has no parameter {', '.join(missing)}"
        return
    wrapper = _session_baseline(original)
    # The module itself, and any module that already imported the function by name.
    for holder in [module, *list(sys.modules.values())]:
        namespace = getattr(holder, "__dict__", None)
        held = namespace.get(_V1_FUNCTION) if isinstance(namespace, dict) else None
        if held is not None and (held is function or held is original):
            namespace[_V1_FUNCTION] = wrapper
            name = getattr(holder, "__name__", repr(holder))
            if name not in _v1_wrapped:
                _v1_wrapped.append(name)
    _v1_unrecognised.pop(module.__name__, None)


def _check_v1_trainer(module: ModuleType) -> None:
    bound = getattr(module, _V1_FUNCTION, None)
    if bound is None or not hasattr(bound, _WRAPS):
        _v1_unrecognised[module.__name__] = f"it does not call {_V1_UTILS}.{_V1_FUNCTION} under that name"
        return
    callers = [
        f"{cls.__name__}.{attribute}"
        for cls in vars(module).values()
        if isinstance(cls, type) and cls.__module__ == module.__name__
        for attribute, member in vars(cls).items()
        if _V1_FUNCTION in getattr(getattr(member, "__code__", None), "co_names", ())
    ]
    if not callers:
        _v1_unrecognised[module.__name__] = f"no method of its classes calls {_V1_FUNCTION}"
        return
    if module.__name__ not in _v1_wrapped:
        _v1_wrapped.append(module.__name__)
    _v1_unrecognised.pop(module.__name__, None)


def _checked(callback: Callable[[ModuleType], None]) -> Callable[[ModuleType], None]:
    """``callback`` made safe to run inside verl's import: a failure is recorded, never raised."""

    @functools.wraps(callback)
    def run(module: ModuleType) -> None:
        try:
            callback(module)
        except Exception as error:  # noqa: BLE001 - verl's import must go on; the estimators raise instead
            _v1_unrecognised[module.__name__] = f"{type(error).__name__}: {error}"

    return run


_V1_CHECKS = {_V1_UTILS: _checked(_wrap_v1_utils), _V1_TRAINER: _checked(_check_v1_trainer)}


class _RunAfterImport:
    """A ``sys.meta_path`` finder: runs ``callbacks[name](module)`` right after module ``name`` executes.

    It finds nothing itself; it asks the finders after it for the spec and wraps the spec's
    loader, which hands the module its real loader back before executing it.
    """

    gapo_kernels_verl_hook = True  # how install() finds the finders of earlier copies of this module

    def __init__(self, callbacks: dict[str, Callable[[ModuleType], None]]):
        self.callbacks = callbacks
        self._finding = threading.local()

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        callback = self.callbacks.get(fullname)
        busy = getattr(self._finding, "names", None)
        if callback is None or (busy is not None and fullname in busy):
            return None
        self._finding.names = (busy or set()) | {fullname}
        try:
            for finder in list(sys.meta_path):
                find_spec = getattr(finder, "find_spec", None)
                if finder is self or find_spec is None:
                    continue
                spec = find_spec(fullname, path, target)
                if spec is not None:
                    break
            else:
                return None
        finally:
            self._finding.names = busy
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _LoaderThenCallback(spec.loader, callback)
        return spec


class _LoaderThenCallback:
    def __init__(self, loader: Any, callback: Callable[[ModuleType], None]):
        self.loader = loader
        self.callback = callback

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = self.loader
        if getattr(module, "__spec__", None) is not None:
            module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        self.callback(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)


def _install_v1_support() -> None:
    """Check (and wrap) verl's v1 modules now if loaded, else right after verl imports them."""
    sys.meta_path[:] = [finder for finder in sys.meta_path if not getattr(finder, "gapo_kernels_verl_hook", False)]
    _v1_unrecognised.clear()
    _v1_wrapped.clear()
    pending = {}
    for name, check in _V1_CHECKS.items():  # utils before the trainer module, which imports from it
        module = sys.modules.get(name)
        if module is None:
            pending[name] = check
        else:
            check(module)
    if pending:
        sys.meta_path.insert(0, _RunAfterImport(pending))


register()
_install_v1_support()
