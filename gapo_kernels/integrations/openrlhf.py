"""GAPO advantage estimators for OpenRLHF (0.11.x), through OpenRLHF's own PPO command line.

OpenRLHF has no estimator registry: its names are argparse ``choices`` in
``openrlhf/cli/train_ppo_ray.py`` and ``RemoteExperienceMaker.compute_advantages_and_returns``
branches over them. Switching a run is one change to its launch: this module's entry point in
place of OpenRLHF's, with the same arguments::

    python -m gapo_kernels.integrations.openrlhf ...train_ppo_ray arguments... \\
        --algo.advantage.estimator gapo \\
        --algo.advantage.gapo_tau 0.5 --algo.advantage.gapo_baseline hdi_median \\
        --algo.advantage.gapo_scale rms --algo.advantage.gapo_eps 1e-6      # all optional

Estimators: ``gapo`` (baseline from ``--algo.advantage.gapo_baseline``, default the HDI median),
``gapo_hdi_mean`` and ``gapo_median`` (fixed baselines). Unset, the scale is ``rms``, or ``none``
with OpenRLHF's ``--algo.advantage.no_std_norm``; eps is 1e-6. GAPO groups the
``n_samples_per_prompt`` rollouts of each prompt, as OpenRLHF's ``group_norm`` (its GRPO) does,
so it needs ``--rollout.n_samples_per_prompt`` > 1.

How it is wired, smallest override first:

* :class:`GAPOExperienceMaker` subclasses OpenRLHF's ``RemoteExperienceMaker`` and overrides
  one method, ``compute_advantages_and_returns``, for the GAPO names only (every other name goes
  to OpenRLHF's own method). For GAPO it keeps OpenRLHF's order and uses OpenRLHF's own helpers:
  float32 promotion and length penalties (``apply_length_penalties``), then the GAPO advantage of
  each rollout's scalar reward within its prompt group in place of ``group_norm``'s
  ``(r - mean) / std``, then ``compute_reward`` (reward clipping, KL penalty at each token) and
  ``get_cumulative_returns`` with gamma 1, advantages = returns, no batch whitening.
* OpenRLHF builds the maker inside its PPO trainer Ray actor from the name
  ``openrlhf.trainer.ppo_trainer.RemoteExperienceMaker``; importing this module rebinds that name
  to :class:`GAPOExperienceMaker` (which behaves as OpenRLHF's for its own estimators). The
  parsed arguments carry a :class:`GAPOSettings` object (``args.algo.advantage.gapo``), and Ray
  unpickles the arguments in the trainer actor before building the trainer, so unpickling them
  imports this module there first: no runtime-env hook is needed.
* The entry point runs OpenRLHF's own ``train_ppo_ray`` as ``__main__``: it takes the GAPO
  flags off the command line, gives OpenRLHF's parser ``group_norm`` in place of the GAPO name
  (only so that its argparse ``choices`` accept the run), and puts the GAPO name and settings
  back into the nested arguments when OpenRLHF's ``hierarchize`` builds them, before OpenRLHF
  checks them and starts training; it checks ``n_samples_per_prompt`` > 1 there itself, as
  OpenRLHF does for its group estimators.

Versions: tested with OpenRLHF 0.11.2 and accepted for 0.11.x, whose nested ``args.algo.*``
layout and experience maker this override is written against; any other minor version is
refused at import, naming the version found, and the pieces overridden are checked to exist.
"""

from __future__ import annotations

import argparse
import itertools
import runpy
import sys
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import torch

#: OpenRLHF versions this adapter fits: (major, minor) pairs.
SUPPORTED_VERSIONS = ((0, 11),)


def check_version(version: str) -> None:
    """Raise ImportError unless ``version`` (OpenRLHF's) is one this adapter was written for."""
    parts = version.split("+")[0].split(".")
    try:
        key = (int(parts[0]), int(parts[1]))
    except (IndexError, ValueError):
        key = None
    if key not in SUPPORTED_VERSIONS:
        supported = ", ".join(f"{major}.{minor}.x" for major, minor in SUPPORTED_VERSIONS)
        raise ImportError(
            f"gapo_kernels.integrations.openrlhf supports OpenRLHF {supported}; found openrlhf {version}. "
            "Its experience maker and argument layout differ between minor versions: install a supported one."
        )


try:
    _OPENRLHF_VERSION = metadata.version("openrlhf")
except metadata.PackageNotFoundError as error:  # pragma: no cover - exercised only without openrlhf
    raise ImportError(
        "gapo_kernels.integrations.openrlhf needs OpenRLHF 0.11 (see scripts/install_next_trainers.sh)"
    ) from error
check_version(_OPENRLHF_VERSION)

import openrlhf.trainer.ppo_trainer as _ppo_trainer  # noqa: E402
import openrlhf.utils.config as _openrlhf_config  # noqa: E402
from openrlhf.models.utils import compute_reward  # noqa: E402
from openrlhf.trainer.ppo_utils.experience_maker import RemoteExperienceMaker  # noqa: E402
from openrlhf.trainer.ppo_utils.length_penalty import apply_length_penalties  # noqa: E402

import gapo_kernels  # noqa: E402

from ._common import ESTIMATOR_BASELINES, resolve_settings  # noqa: E402

__all__ = [
    "ESTIMATOR_BASELINES",
    "GAPOExperienceMaker",
    "GAPOSettings",
    "SUPPORTED_VERSIONS",
    "check_version",
    "main",
    "parse_cli",
]

_CLI_MODULE = "openrlhf.cli.train_ppo_ray"
_ESTIMATOR_FLAG = "--algo.advantage.estimator"
#: What OpenRLHF's parser is given in place of a GAPO name: its GRPO, the group estimator whose
#: constraints (no critic, prompt groups of n_samples_per_prompt) GAPO shares.
_STAND_IN = "group_norm"


def _check_structure() -> None:
    """Fail at import when OpenRLHF's pieces this adapter uses are not where 0.11 has them."""
    needed = (
        (RemoteExperienceMaker, "RemoteExperienceMaker", "compute_advantages_and_returns"),
        (RemoteExperienceMaker, "RemoteExperienceMaker", "get_cumulative_returns"),
        (_ppo_trainer, "openrlhf.trainer.ppo_trainer", "RemoteExperienceMaker"),
        (_openrlhf_config, "openrlhf.utils.config", "hierarchize"),
    )
    missing = [f"{where}.{attribute}" for owner, where, attribute in needed if not hasattr(owner, attribute)]
    if missing:
        raise ImportError(
            f"openrlhf {_OPENRLHF_VERSION} lacks what gapo_kernels.integrations.openrlhf overrides: "
            + ", ".join(missing)
        )


_check_structure()


# --- settings --------------------------------------------------------------------------------
@dataclass(frozen=True)
class GAPOSettings:
    """The GAPO flags of a run, carried in ``args.algo.advantage.gapo``.

    None means "not set" (the default, or for the scale OpenRLHF's ``no_std_norm``). Its class
    lives in this module so that unpickling the run's arguments in a Ray actor imports it.
    """

    estimator: str = "gapo"
    tau: float | None = None
    baseline: str | None = None
    scale: str | None = None
    eps: float | None = None

    def config(self) -> dict[str, Any]:
        """As ``gapo_*`` keys for :func:`resolve_settings`."""
        keys = {"gapo_tau": self.tau, "gapo_baseline": self.baseline, "gapo_scale": self.scale, "gapo_eps": self.eps}
        return {key: value for key, value in keys.items() if value is not None}

    def resolved(self, no_std_norm: bool = False) -> dict[str, Any]:
        """``{"tau", "baseline", "scale", "eps"}`` for :func:`gapo_kernels.advantage`."""
        config, norm = self.config(), not no_std_norm
        if str(config.get("gapo_scale", "")).strip().lower() == "none":
            # resolve_settings reads the string "none" as "not set"; the norm flag says it instead.
            del config["gapo_scale"]
            norm = False
        return resolve_settings(config, estimator=self.estimator, norm_adv_by_std_in_grpo=norm)


def _settings_of(args: Any, estimator: str) -> GAPOSettings:
    settings = getattr(args.algo.advantage, "gapo", None)
    if settings is None:  # args built without this entry point: the defaults
        return GAPOSettings(estimator=estimator)
    if settings.estimator != estimator:
        raise ValueError(
            f"args.algo.advantage.estimator is {estimator!r} but its GAPO settings are for {settings.estimator!r}"
        )
    return settings


# --- the experience maker --------------------------------------------------------------------
class GAPOExperienceMaker(RemoteExperienceMaker):
    """OpenRLHF's experience maker with the GAPO estimators added (see the module doc)."""

    def compute_advantages_and_returns(self, experiences):
        estimator = self.strategy.args.algo.advantage.estimator
        if estimator not in ESTIMATOR_BASELINES:
            return super().compute_advantages_and_returns(experiences)
        return self._gapo_advantages_and_returns(estimator, experiences)

    @torch.no_grad()
    def _gapo_advantages_and_returns(self, estimator: str, experiences):
        args = self.strategy.args
        no_std_norm = bool(getattr(args.algo.advantage, "no_std_norm", False))
        settings = _settings_of(args, estimator).resolved(no_std_norm=no_std_norm)
        if not getattr(self, "_gapo_logged", False):
            self._gapo_logged = True
            _log(f"gapo_kernels: OpenRLHF advantage estimator {estimator!r} computing with {settings}")
        group_size = int(args.rollout.n_samples_per_prompt)

        for experience in experiences:  # as OpenRLHF does: statistics in at least float32
            experience.rewards = experience.rewards.to(torch.promote_types(experience.rewards.dtype, torch.float32))
        apply_length_penalties(experiences, args)

        rewards = torch.cat([experience.rewards for experience in experiences])
        # experience.index: each rollout's position in the prompt-major rollout order, where the
        # n_samples_per_prompt rollouts of a prompt are consecutive.
        positions = torch.tensor(
            list(itertools.chain.from_iterable(experience.index for experience in experiences)), dtype=torch.int64
        )
        if positions.numel() != rewards.numel():
            raise ValueError(f"experiences hold {rewards.numel()} rewards but {positions.numel()} index entries")
        if rewards.numel() % group_size:
            raise ValueError(
                f"{rewards.numel()} rollouts do not split into groups of n_samples_per_prompt={group_size}"
            )
        # A rollout with no action token (filtered or empty) is a missing reward, like NaN.
        rejected = torch.cat([~experience.action_mask.bool().any(dim=-1) for experience in experiences])
        scores = rewards.masked_fill(rejected.to(rewards.device), float("nan"))
        group_ids = positions.to(rewards.device) // group_size
        advantages = gapo_kernels.advantage(scores, group_ids=group_ids, **settings).to(rewards.dtype)

        if group_size > 1:  # the metric OpenRLHF logs for its group estimators
            in_prompt_order = torch.empty_like(rewards)
            in_prompt_order[positions] = rewards
            group_std = in_prompt_order.view(-1, group_size).std(dim=-1)[group_ids]
            for experience, std in zip(experiences, group_std.split([len(e.index) for e in experiences])):
                experience.info["group_reward_std"] = std

        for experience, advantage in zip(experiences, advantages.split([len(e.index) for e in experiences])):
            reward = compute_reward(
                advantage,
                self.kl_ctl.value,
                experience.kl,
                action_mask=experience.action_mask,
                reward_clip_range=getattr(args.reward, "clip_range", None),
            )
            # An outcome estimator, like OpenRLHF's group ones: undiscounted returns.
            experience.returns = self.get_cumulative_returns(reward, experience.action_mask, 1.0)
            experience.advantages = experience.returns.clone()
            experience.info["return"] = reward.sum(dim=-1)
            experience.kl = None
        return experiences


def _log(message: str) -> None:
    from openrlhf.utils.logging_utils import init_logger

    init_logger(__name__).info(message)


def install() -> None:
    """Make OpenRLHF's PPO trainers build :class:`GAPOExperienceMaker` in this process."""
    _ppo_trainer.RemoteExperienceMaker = GAPOExperienceMaker


install()


# --- command line ----------------------------------------------------------------------------
def _gapo_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument(_ESTIMATOR_FLAG, dest="estimator", default=None)
    parser.add_argument("--algo.advantage.gapo_tau", dest="tau", type=float, default=None)
    parser.add_argument("--algo.advantage.gapo_baseline", dest="baseline", default=None)
    parser.add_argument("--algo.advantage.gapo_scale", dest="scale", default=None)
    parser.add_argument("--algo.advantage.gapo_eps", dest="eps", type=float, default=None)
    return parser


def split_cli(argv: list[str]) -> tuple[GAPOSettings | None, list[str]]:
    """The GAPO settings (None when the estimator is not a GAPO name) and OpenRLHF's own argv."""
    known, rest = _gapo_parser().parse_known_args(argv)
    gapo_flags = {key: getattr(known, key) for key in ("tau", "baseline", "scale", "eps")}
    if known.estimator not in ESTIMATOR_BASELINES:
        given = [f"--algo.advantage.gapo_{key}" for key, value in gapo_flags.items() if value is not None]
        if given:
            raise ValueError(f"{', '.join(given)} need {_ESTIMATOR_FLAG} one of {sorted(ESTIMATOR_BASELINES)}")
        estimator_args = [] if known.estimator is None else [_ESTIMATOR_FLAG, known.estimator]
        return None, rest + estimator_args
    settings = GAPOSettings(estimator=known.estimator, **gapo_flags)
    settings.resolved()  # bad values fail here, before OpenRLHF starts anything
    return settings, rest + [_ESTIMATOR_FLAG, _STAND_IN]


class _ParsedArgs(Exception):
    """Carries the parsed arguments out of OpenRLHF's ``__main__`` block in a dry run."""

    def __init__(self, parsed: Any) -> None:
        super().__init__("parsed")
        self.parsed = parsed


def _run_cli(argv: list[str], *, stop_after_parse: bool) -> Any:
    settings, openrlhf_argv = split_cli(argv)
    original = _openrlhf_config.hierarchize

    def hierarchize_with_gapo(flat_args):
        args = original(flat_args)
        if settings is not None:
            if int(args.rollout.n_samples_per_prompt) < 2:
                raise SystemExit(
                    f"{settings.estimator}: the GAPO baseline is per prompt group; "
                    "--rollout.n_samples_per_prompt must be > 1"
                )
            args.algo.advantage.estimator = settings.estimator
            args.algo.advantage.gapo = settings
            _log(
                f"gapo_kernels: --algo.advantage.estimator {settings.estimator} with "
                f"{settings.resolved(no_std_norm=bool(getattr(args.algo.advantage, 'no_std_norm', False)))}"
            )
        if stop_after_parse:
            raise _ParsedArgs(args)
        return args

    saved_argv = sys.argv
    _openrlhf_config.hierarchize = hierarchize_with_gapo
    sys.argv = [_CLI_MODULE, *openrlhf_argv]
    try:
        runpy.run_module(_CLI_MODULE, run_name="__main__", alter_sys=False)
    except _ParsedArgs as parsed:
        return parsed.parsed
    finally:
        _openrlhf_config.hierarchize = original
        sys.argv = saved_argv
    if stop_after_parse:
        raise RuntimeError(f"{_CLI_MODULE} did not build its arguments with openrlhf.utils.config.hierarchize")
    return None


def parse_cli(argv: list[str]) -> Any:
    """``train_ppo_ray``'s nested arguments for ``argv``, parsed by OpenRLHF's own parser.

    With a GAPO estimator they hold its name and ``args.algo.advantage.gapo``. Stops before
    OpenRLHF's own checks and before anything starts (a dry run of the command line).
    """
    return _run_cli(list(argv), stop_after_parse=True)


def main(argv: list[str] | None = None) -> None:
    """OpenRLHF's ``train_ppo_ray`` with the GAPO estimators (see the module doc)."""
    _run_cli(sys.argv[1:] if argv is None else list(argv), stop_after_parse=False)


if __name__ == "__main__":  # pragma: no cover - a training launch
    # Through the importable module, so that what is pickled for Ray names it, not __main__.
    from gapo_kernels.integrations.openrlhf import main as _main

    _main()
