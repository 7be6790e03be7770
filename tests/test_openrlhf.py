"""GAPO in the real OpenRLHF (0.11): its own CLI parser, its experience maker, its helpers.

Needs OpenRLHF and what importing its PPO trainer needs (deepspeed, vLLM, transformers, ...:
scripts/install_next_trainers.sh); skipped with the reason without OpenRLHF. flash-attn, a CUDA
kernel library that cannot be built without a GPU toolchain, is replaced by an import-only
stand-in (tests/stubs/flash_attn) when it is absent: OpenRLHF imports a few of its padding
helpers at module level and the advantage step never calls them. Nothing of OpenRLHF itself is
mocked: arguments come from OpenRLHF's own ``train_ppo_ray`` parser, experiences are OpenRLHF's
``Experience`` objects, and GRPO parity is checked against OpenRLHF's own ``group_norm`` and
``dr_grpo`` branches. Not exercised here: a training step (models, vLLM, DeepSpeed engines and
GPUs), so the Ray trainer actor is replaced by what Ray does to reach it, unpickling the
arguments in a fresh process.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

pytest.importorskip("openrlhf", reason="needs OpenRLHF 0.11: run GAPO_NEXT_TRAINERS=1 scripts/test_next_trainers.sh")

STUBS = Path(__file__).parent / "stubs"
if importlib.util.find_spec("flash_attn") is None:
    sys.path.insert(0, str(STUBS))

import openrlhf.trainer.ppo_trainer as ppo_trainer  # noqa: E402
from openrlhf.trainer.ppo_utils.experience import Experience  # noqa: E402
from openrlhf.trainer.ppo_utils.experience_maker import RemoteExperienceMaker  # noqa: E402
from openrlhf.trainer.ppo_utils.kl_controller import FixedKLController  # noqa: E402

import gapo_kernels.integrations.openrlhf as gapo_openrlhf  # noqa: E402
from gapo_kernels import reference  # noqa: E402

from .outcome_batches import skewed_outcomes  # noqa: E402

pytestmark = pytest.mark.trainers

NAMES = {"gapo": "hdi_median", "gapo_hdi_mean": "hdi_mean", "gapo_median": "median"}


def cli_args(*extra: str, n: int = 6):
    """``train_ppo_ray``'s nested args from OpenRLHF's own parser (a dry run, nothing started)."""
    return gapo_openrlhf.parse_cli(["--rollout.n_samples_per_prompt", str(n), *extra])


def make_experiences(seed, *, n, num_prompts=12, length=12, micro=5, missing=0.0, rejected=0.0):
    """OpenRLHF Experiences: rollouts in any order (``index`` = prompt-major position), micro-batched."""
    rng = np.random.default_rng(seed)
    total = n * num_prompts
    rewards = skewed_outcomes(rng, total, missing).astype(np.float32)
    lengths = rng.integers(1, length + 1, size=total)
    action_mask = np.arange(length)[None, :] < lengths[:, None]
    if rejected:
        action_mask[rng.random(total) < rejected] = False
    kl = rng.normal(0, 0.05, size=(total, length)).astype(np.float32)
    order = rng.permutation(total)
    experiences = []
    for start in range(0, total, micro):
        rows = order[start : start + micro]
        experiences.append(
            Experience(
                rewards=torch.from_numpy(rewards[rows]),
                action_mask=torch.from_numpy(action_mask[rows]),
                kl=torch.from_numpy(kl[rows]),
                response_length=torch.from_numpy(lengths[rows].astype(np.float32)),
                truncated=torch.from_numpy(lengths[rows] == length),
                index=[int(i) for i in rows],
                info={"reward": torch.from_numpy(rewards[rows])},
            )
        )
    return experiences


def maker_for(args, kl_coef=0.0, cls=None):
    """The experience maker PPOTrainer builds, with no model groups: the advantage step uses none."""
    cls = cls or ppo_trainer.RemoteExperienceMaker
    return cls(None, None, None, None, FixedKLController(kl_coef), SimpleNamespace(args=args), None)


def expected(experiences, args, *, n, kl_coef, tau, baseline, scale, eps=1e-6):
    """Independent computation: the reference advantage of each rollout in its prompt group, clipped,
    on its last action token plus the KL penalty on every token, summed backwards over the mask."""
    rewards = torch.cat([e.rewards for e in experiences]).double().numpy()
    mask = torch.cat([e.action_mask for e in experiences]).numpy()
    kl = torch.cat([e.kl for e in experiences]).double().numpy()
    positions = np.concatenate([e.index for e in experiences])
    scores = np.where(mask.any(axis=1), rewards, np.nan)
    adv = reference.advantage(scores, group_ids=positions // n, tau=tau, baseline=baseline, scale=scale, eps=eps)
    low, high = args.reward.clip_range
    per_token = -kl_coef * kl
    last = np.where(mask.any(axis=1), mask.shape[1] - 1 - np.argmax(mask[:, ::-1], axis=1), mask.shape[1] - 1)
    per_token[np.arange(len(adv)), last] += np.clip(adv, low, high)
    masked = per_token * mask
    returns = np.cumsum(masked[:, ::-1], axis=1)[:, ::-1]
    return returns


def gathered(experiences, field):
    return torch.cat([getattr(e, field) for e in experiences]).double().numpy()


# --- wiring -----------------------------------------------------------------------------------
def test_importing_installs_the_maker_openrlhf_trainers_build():
    assert ppo_trainer.RemoteExperienceMaker is gapo_openrlhf.GAPOExperienceMaker
    assert issubclass(gapo_openrlhf.GAPOExperienceMaker, RemoteExperienceMaker)


def test_version_gate():
    gapo_openrlhf.check_version("0.11.0")
    gapo_openrlhf.check_version("0.11.2+cu130")
    for version in ("0.10.4", "0.12.0", "1.0.0", "nightly"):
        with pytest.raises(ImportError, match=f"found openrlhf {version}"):
            gapo_openrlhf.check_version(version)


def test_cli_adds_the_estimators_and_their_flags():
    args = cli_args(
        "--algo.advantage.estimator", "gapo",
        "--algo.advantage.gapo_tau", "0.25",
        "--algo.advantage.gapo_baseline", "hdi_mean",
        "--algo.advantage.gapo_scale", "std",
        "--algo.advantage.gapo_eps", "0",
    )  # fmt: skip
    assert args.algo.advantage.estimator == "gapo"
    assert args.algo.advantage.gapo == gapo_openrlhf.GAPOSettings("gapo", 0.25, "hdi_mean", "std", 0.0)
    assert args.rollout.n_samples_per_prompt == 6 and tuple(args.reward.clip_range) == (-10, 10)

    args = cli_args("--algo.advantage.estimator=gapo_median")
    assert args.algo.advantage.estimator == "gapo_median"
    assert args.algo.advantage.gapo.resolved() == {"tau": 0.5, "baseline": "median", "scale": "rms", "eps": 1e-6}

    plain = cli_args("--algo.advantage.estimator", "group_norm")
    assert plain.algo.advantage.estimator == "group_norm" and not hasattr(plain.algo.advantage, "gapo")


@pytest.mark.parametrize(
    ("argv", "error", "match"),
    [
        (["--algo.advantage.estimator", "gapo", "--algo.advantage.gapo_tau", "0"], ValueError, "tau"),
        (["--algo.advantage.estimator", "gapo", "--algo.advantage.gapo_baseline", "hdi"], ValueError, "baseline"),
        (
            ["--algo.advantage.estimator", "gapo_median", "--algo.advantage.gapo_baseline", "mean"],
            ValueError,
            "gapo_median",
        ),
        (["--algo.advantage.estimator", "group_norm", "--algo.advantage.gapo_tau", "0.5"], ValueError, "gapo_tau"),
        (["--algo.advantage.estimator", "gapo", "--rollout.n_samples_per_prompt", "1"], SystemExit, None),
    ],
)
def test_cli_rejects_bad_settings(argv, error, match):
    with pytest.raises(error, match=match):
        gapo_openrlhf.parse_cli(argv)


def test_settings_reach_a_fresh_process_through_the_pickled_args():
    """Ray hands PPOTrainer its strategy (with args) by pickling: unpickling installs the maker."""
    args = cli_args("--algo.advantage.estimator", "gapo", "--algo.advantage.gapo_tau", "0.3")
    payload = pickle.dumps(SimpleNamespace(args=args))
    code = textwrap.dedent(
        """
        import pickle, sys
        import openrlhf.trainer.ppo_trainer as ppo_trainer
        before = ppo_trainer.RemoteExperienceMaker.__name__
        strategy = pickle.loads(sys.stdin.buffer.read())
        print(before, ppo_trainer.RemoteExperienceMaker.__name__, strategy.args.algo.advantage.gapo.tau)
        """
    )
    env = dict(os.environ)
    if str(STUBS) in sys.path:  # the stand-in, for the fresh process too
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(STUBS), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", code], input=payload, env=env, capture_output=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    assert result.stdout.decode().split()[-3:] == ["RemoteExperienceMaker", "GAPOExperienceMaker", "0.3"]


# --- the advantage step -----------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(NAMES))
@pytest.mark.parametrize("no_std_norm", [False, True])
@pytest.mark.parametrize("kl_coef", [0.0, 0.05])
def test_advantages_match_reference(name, no_std_norm, kl_coef):
    n = 6
    args = cli_args("--algo.advantage.estimator", name, *(["--algo.advantage.no_std_norm"] if no_std_norm else []), n=n)
    experiences = make_experiences(11, n=n, missing=0.1, rejected=0.05)
    want = expected(
        experiences, args, n=n, kl_coef=kl_coef, tau=0.5, baseline=NAMES[name], scale="none" if no_std_norm else "rms"
    )
    out = maker_for(args, kl_coef).compute_advantages_and_returns(experiences)
    advantages, returns = gathered(out, "advantages"), gathered(out, "returns")
    assert np.all(np.isfinite(advantages))
    np.testing.assert_allclose(advantages, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(advantages, returns)
    assert all(e.kl is None and "return" in e.info and "group_reward_std" in e.info for e in out)


def test_args_built_elsewhere_get_the_defaults():
    """A trainer given args with the GAPO name but without this entry point's settings."""
    n = 4
    args = SimpleNamespace(
        algo=SimpleNamespace(advantage=SimpleNamespace(estimator="gapo")),
        rollout=SimpleNamespace(n_samples_per_prompt=n),
        reward=SimpleNamespace(clip_range=(-10, 10)),
    )
    experiences = make_experiences(16, n=n, missing=0.1, rejected=0.1)
    want = expected(experiences, args, n=n, kl_coef=0.01, tau=0.5, baseline="hdi_median", scale="rms")
    out = maker_for(args, 0.01).compute_advantages_and_returns(experiences)
    np.testing.assert_allclose(gathered(out, "advantages"), want, rtol=1e-5, atol=1e-5)


def test_explicit_settings_are_used():
    n = 8
    args = cli_args(
        "--algo.advantage.estimator", "gapo", "--algo.advantage.gapo_tau", "0.3",
        "--algo.advantage.gapo_baseline", "hdi_mean", "--algo.advantage.gapo_scale", "std",
        "--algo.advantage.gapo_eps", "0.001", n=n,
    )  # fmt: skip
    experiences = make_experiences(12, n=n, missing=0.05)
    want = expected(experiences, args, n=n, kl_coef=0.0, tau=0.3, baseline="hdi_mean", scale="std", eps=1e-3)
    out = maker_for(args).compute_advantages_and_returns(experiences)
    np.testing.assert_allclose(gathered(out, "advantages"), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("openrlhf_estimator", "extra"),
    [("group_norm", []), ("dr_grpo", ["--algo.advantage.gapo_scale", "none"])],
)
@pytest.mark.parametrize("kl_coef", [0.0, 0.05])
def test_mean_baseline_is_openrlhfs_grpo(openrlhf_estimator, extra, kl_coef):
    """gapo with baseline=mean equals OpenRLHF's own group_norm (GRPO) / dr_grpo branch, length
    penalties included (they apply before the baseline in both)."""
    n = 5
    penalties = ["--reward.overlong_buffer_len", "4", "--rollout.max_new_tokens", "12"]
    ours_args = cli_args(
        "--algo.advantage.estimator", "gapo", "--algo.advantage.gapo_baseline", "mean",
        "--algo.advantage.gapo_eps", "1e-9", *extra, *penalties, n=n,
    )  # fmt: skip
    theirs_args = cli_args("--algo.advantage.estimator", openrlhf_estimator, *penalties, n=n)
    experiences = make_experiences(13, n=n, num_prompts=16)
    ours = maker_for(ours_args, kl_coef).compute_advantages_and_returns(copy.deepcopy(experiences))
    theirs = maker_for(theirs_args, kl_coef, cls=RemoteExperienceMaker).compute_advantages_and_returns(
        copy.deepcopy(experiences)
    )
    for field in ("advantages", "returns"):
        np.testing.assert_allclose(gathered(ours, field), gathered(theirs, field), rtol=1e-5, atol=1e-6)
    for key in ("return", "group_reward_std", "reward"):
        np.testing.assert_allclose(
            torch.cat([e.info[key] for e in ours]).numpy(), torch.cat([e.info[key] for e in theirs]).numpy(),
            rtol=1e-5,
            atol=1e-6,
        )
    assert np.abs(gathered(ours, "advantages")).max() > 0.1


def test_openrlhfs_own_estimators_are_untouched():
    n = 4
    args = cli_args("--algo.advantage.estimator", "rloo", n=n)
    experiences = make_experiences(14, n=n)
    ours = maker_for(args, 0.05).compute_advantages_and_returns(copy.deepcopy(experiences))
    theirs = maker_for(args, 0.05, cls=RemoteExperienceMaker).compute_advantages_and_returns(copy.deepcopy(experiences))
    np.testing.assert_array_equal(gathered(ours, "advantages"), gathered(theirs, "advantages"))


def test_groups_must_be_whole():
    n = 4
    args = cli_args("--algo.advantage.estimator", "gapo", n=n)
    experiences = make_experiences(15, n=n, num_prompts=3)
    experiences[-1].rewards = experiences[-1].rewards[:-1]
    experiences[-1].index = experiences[-1].index[:-1]
    experiences[-1].action_mask = experiences[-1].action_mask[:-1]
    experiences[-1].kl = experiences[-1].kl[:-1]
    with pytest.raises(ValueError, match="n_samples_per_prompt=4"):
        maker_for(args).compute_advantages_and_returns(experiences)
