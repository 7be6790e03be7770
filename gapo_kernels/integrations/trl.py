"""GAPO for TRL 1.x: ``GAPOConfig`` and ``GAPOTrainer``, drop-in for ``GRPOConfig`` / ``GRPOTrainer``.

    from gapo_kernels.integrations.trl import GAPOConfig, GAPOTrainer
    args = GAPOConfig(output_dir="out", num_generations=8, gapo_tau=0.5)   # was GRPOConfig(...)
    trainer = GAPOTrainer(model=..., reward_funcs=..., args=args, train_dataset=...)

Only the advantage changes: the rewards of the whole generation batch (gathered from every
process, weighted and summed over reward functions exactly as TRL does) are grouped by prompt,
``num_generations`` consecutive completions per group, and each group gets the GAPO advantage
(:func:`gapo_kernels.advantage` with ``gapo_tau``, ``gapo_baseline``, ``gapo_scale``,
``gapo_eps``); this process keeps its own slice, as TRL does. A completion every reward
function returned None for (NaN) is missing: left out of its group's statistics, advantage 0,
as in TRL. Everything else (generation, reward functions, loss, KL, vLLM, tools) is TRL's.

The diagnostics of :mod:`gapo_kernels.integrations.diagnostics` are logged with TRL's metrics
under ``gapo/...`` (averaged over the logging interval like TRL's own ``reward`` etc.), among
them ``gapo/frac_shape_right_skewed`` and ``gapo/frac_shape_left_skewed``: the paper's 14.4% /
15.5% statistic for this run's own reward groups.

Why there is no RLOOTrainer counterpart: ``RLOOTrainer`` folds a sequence-level KL penalty
(``beta``, 0.05 by default) and ``reward_clip_range`` into the rewards inside
``_generate_and_score_completions``, after ``_calculate_rewards`` returns and from reference
log-probabilities that it does not return. Swapping the baseline there would mean either
running the reference model a second time or copying that method; neither is "override as little
as possible". Its leave-one-out mean is the part GAPO replaces anyway: use ``GAPOTrainer``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

try:
    from trl import GRPOConfig, GRPOTrainer
except ImportError as error:  # pragma: no cover - exercised only without TRL
    raise ImportError(
        f"gapo_kernels.integrations.trl needs TRL 1.x: run scripts/install_trainers.sh or pip install trl ({error})"
    ) from error

import gapo_kernels

from .._checks import BASELINES, SCALES, check_hyperparameters
from .diagnostics import diagnostics_from_stats

__all__ = ["GAPOConfig", "GAPOTrainer"]

# TRL's scale_rewards (after GRPOConfig maps True/False to "group"/"none") -> our scale.
_SCALE_OF_SCALE_REWARDS = {"group": "rms", "none": "none"}


@dataclass
class GAPOConfig(GRPOConfig):
    r"""A [`GRPOConfig`] with the GAPO advantage settings.

    Parameters:
        gapo_tau (`float`, defaults to `0.5`):
            Fraction of each group the highest-density window covers, in (0, 1].
        gapo_baseline (`str`, defaults to `"hdi_median"`):
            Q: `"hdi_median"` (GAPO), `"hdi_mean"`, `"median"` or `"mean"` (GRPO).
        gapo_scale (`str` or `None`, defaults to `None`):
            S: `"rms"` (root mean square about Q), `"std"` (about the mean) or `"none"`. `None`
            follows TRL's `scale_rewards`: `"group"` -> `"rms"`, `"none"` -> `"none"`. An explicit
            value wins over `scale_rewards`.
        gapo_eps (`float`, defaults to `1e-4`):
            Added to S, as TRL's GRPO adds 1e-4 to the std (so that `gapo_baseline="mean"`
            reproduces `GRPOTrainer`'s advantages).

    `scale_rewards="batch"` and `multi_objective_aggregation="normalize_then_sum"` normalise
    over the whole batch rather than per group and are rejected.
    """

    gapo_tau: float = field(
        default=0.5,
        metadata={
            "help": "GAPO window fraction tau in (0, 1]: the highest-density window covers ceil(n * tau) "
            "of a group's n rewards."
        },
    )
    gapo_baseline: str = field(
        default="hdi_median",
        metadata={"help": "GAPO baseline Q.", "choices": list(BASELINES)},
    )
    gapo_scale: str | None = field(
        default=None,
        metadata={
            "help": "GAPO scale S: 'rms', 'std' or 'none'. Unset: from scale_rewards ('group' -> 'rms', "
            "'none' -> 'none')."
        },
    )
    gapo_eps: float = field(
        default=1e-4,
        metadata={"help": "Added to the scale S (TRL's GRPO adds 1e-4 to the std)."},
    )

    def __post_init__(self):
        super().__post_init__()
        if self.multi_objective_aggregation != "sum_then_normalize":
            raise ValueError(
                "GAPOConfig needs multi_objective_aggregation='sum_then_normalize': GAPO computes its per-group "
                f"baseline on the summed reward (got {self.multi_objective_aggregation!r})"
            )
        if self.gapo_scale is None:
            if self.scale_rewards not in _SCALE_OF_SCALE_REWARDS:
                raise ValueError(
                    f"GAPO normalises per group; scale_rewards={self.scale_rewards!r} is not supported "
                    "(use 'group' or 'none', or set gapo_scale explicitly)"
                )
            self.gapo_scale = _SCALE_OF_SCALE_REWARDS[self.scale_rewards]
        if self.gapo_scale not in SCALES:
            raise ValueError(f"gapo_scale must be one of {SCALES} or None, got {self.gapo_scale!r}")
        if self.scale_rewards == "batch":
            raise ValueError("GAPO normalises per group; scale_rewards='batch' is not supported")
        check_hyperparameters(self.gapo_tau, self.gapo_baseline, self.gapo_scale, self.gapo_eps)


class GAPOTrainer(GRPOTrainer):
    """A [`GRPOTrainer`] whose advantages are GAPO's (see the module docstring).

    TRL 1.x computes the advantages inline in ``_generate_and_score_completions`` (~600 lines of
    generation, scoring and logging), so there is no method that computes only them. Two
    overrides, each calling TRL's own method first, replace that one step:

    * ``_calculate_rewards``: unchanged result; keeps the gathered per-function rewards of the
      whole generation batch (the exact tensor TRL normalises), which TRL does not return.
    * ``_generate_and_score_completions``: after TRL's method, recomputes the advantages from
      those rewards with :func:`gapo_kernels.advantage`, puts this process's slice in the
      output, fixes the advantages TRL logs for the completions table, and logs the diagnostics.

    After each generation, ``gapo_rewards`` (all processes' summed rewards, NaN = unscorable) and
    ``gapo_advantages`` (their advantages) hold what the last step used.
    """

    _tag_names = ["trl", "grpo", "gapo"]  # model-card tags

    def __init__(self, model, reward_funcs=None, args: GAPOConfig | None = None, *more, **kwargs):
        if args is None:  # as GRPOTrainer does, but with the GAPO defaults
            name = model if isinstance(model, str) else getattr(model.config, "_name_or_path", "") or "model"
            args = GAPOConfig(f"{name.split('/')[-1]}-GAPO")
        if not isinstance(args, GAPOConfig):
            raise TypeError(
                "GAPOTrainer needs args=GAPOConfig(...) (a GRPOConfig with the gapo_* settings), "
                f"got {type(args).__name__}"
            )
        super().__init__(model, reward_funcs, args, *more, **kwargs)
        self._gapo_rewards_per_func: torch.Tensor | None = None
        self.gapo_rewards: torch.Tensor | None = None
        self.gapo_advantages: torch.Tensor | None = None

    # Overridden to keep the gathered rewards: TRL computes the advantages from this return value
    # inside _generate_and_score_completions and does not hand it back.
    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._gapo_rewards_per_func = rewards_per_func
        return rewards_per_func

    # Overridden to replace the advantages TRL computed inline (GRPO's mean/std) with GAPO's.
    def _generate_and_score_completions(self, inputs):
        self._gapo_rewards_per_func = None
        output = super()._generate_and_score_completions(inputs)
        rewards_per_func = self._gapo_rewards_per_func
        if rewards_per_func is None:
            raise RuntimeError("GAPOTrainer: TRL's _generate_and_score_completions did not call _calculate_rewards")
        mode = "train" if self.model.training else "eval"
        num_generations = self.num_generations if mode == "train" else self.num_generations_eval
        args = self.args

        # The summed reward exactly as TRL forms it for sum_then_normalize: weighted nansum over
        # reward functions, NaN where every function returned None (unscorable -> missing).
        unscorable = torch.isnan(rewards_per_func).all(dim=1)
        weights = self.reward_weights.to(rewards_per_func.device)
        rewards = (rewards_per_func * weights.unsqueeze(0)).nansum(dim=1)
        rewards[unscorable] = torch.nan

        # TRL groups completions as num_generations consecutive rows per prompt.
        num_rewards = rewards.numel()
        if num_rewards % num_generations:
            raise ValueError(f"{num_rewards} gathered rewards do not split into groups of {num_generations}")
        offsets = torch.arange(0, num_rewards + 1, num_generations, device=rewards.device, dtype=torch.int64)
        advantages = gapo_kernels.advantage(
            rewards, offsets, tau=args.gapo_tau, baseline=args.gapo_baseline, scale=args.gapo_scale, eps=args.gapo_eps
        )

        # This process's slice, as TRL slices it (len(inputs) completions per process).
        local = len(inputs)
        process_slice = slice(self.accelerator.process_index * local, (self.accelerator.process_index + 1) * local)
        output["advantages"] = advantages[process_slice].to(output["advantages"].dtype)

        # TRL appended its own advantages of the whole batch to the completions-table log: replace them.
        logged = self._logs["advantages"]
        for _ in range(min(num_rewards, len(logged))):
            logged.pop()
        logged.extend(advantages.tolist())

        stats = gapo_kernels.group_stats(
            rewards, offsets, tau=args.gapo_tau, baseline=args.gapo_baseline, scale=args.gapo_scale
        )
        for key, value in diagnostics_from_stats(stats, num_rewards, prefix="gapo/").items():
            self._metrics[mode][key].append(value)  # NaN (nothing to report) is skipped by TRL's log()

        self.gapo_rewards, self.gapo_advantages = rewards, advantages
        self._gapo_rewards_per_func = None
        return output
