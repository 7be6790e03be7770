"""GAPO under verl's v1 trainer (its default, ``trainer.use_v1=true``): agent-loop sessions.

Nothing of verl is mocked. Batches of agent-loop outputs, keyed ``{uid}_{session_id}_{index}``
as verl's AgentLoopWorkerTQ writes them, go through verl's own
``compute_advantage_for_multi_trajectories`` (what the v1 trainer calls) and, with a real
TransferQueue on a local Ray, through the v1 trainer's own ``_compute_advantage``. Results are
compared with an independent computation: the NumPy reference over each session's final output,
broadcast to the session's outputs.
"""

from __future__ import annotations

import importlib
import sys
import types
import uuid
from typing import NamedTuple

import numpy as np
import pytest
import torch

try:
    import verl  # noqa: F401 - a plain import: verl loads the verl.plugins entry points, ours among them
    from omegaconf import OmegaConf
    from verl import DataProto
    from verl.trainer.ppo.ray_trainer import compute_advantage
    from verl.trainer.ppo.v1 import trainer_base as v1_trainer_base
    from verl.trainer.ppo.v1 import utils as v1_utils
except ImportError as error:  # fail loudly: CI installs the trainers
    raise ImportError(
        f"tests marked 'trainers' need verl and its v1 trainer: run scripts/install_trainers.sh ({error})"
    ) from error

from gapo_kernels import reference
from tests.outcome_batches import assert_close

pytestmark = pytest.mark.trainers

MODULE = "gapo_kernels.integrations.verl"
FUNCTION = "compute_advantage_for_multi_trajectories"
# What `import verl` and the v1 imports above did, before any test touches our module.
SUPPORT_AFTER_IMPORT = sys.modules[MODULE].v1_session_support()


# --- agent-loop batches ---------------------------------------------------------------------
class AgentLoopBatch(NamedTuple):
    token_level_rewards: torch.Tensor
    response_mask: torch.Tensor
    uid: np.ndarray
    keys: list[str]
    lengths: list[int]  # response lengths (a rejected row keeps its length, with an all-zero mask)


def agent_loop_batch(
    seed: int,
    num_prompts: int = 10,
    max_sessions: int = 6,
    max_outputs: int = 4,
    length: int = 20,
    rejected: float = 0.0,
    intermediate: str = "random",
):
    """(token_level_rewards, response_mask, uid, batch_keys, lengths) as the v1 trainer holds them.

    Each prompt has 1..max_sessions sessions (rollout.n, ragged to cover singletons), each
    session 1..max_outputs outputs keyed ``{uid}_{session}_{index}``; some uids contain
    underscores. Responses have random lengths (right padding), the outcome on the last
    response token plus a small per-token term. Intermediate outputs carry the session's final
    reward (``intermediate="copy"``, as verl's agent loop does) or a reward of their own
    (``"random"``, so that any use of them shows). ``rejected``: the share of rows whose
    response mask is all zero while their rewards stay in place. Rows are shuffled.
    """
    rng = np.random.default_rng(seed)
    keys, uids, outcomes = [], [], []
    for prompt in range(num_prompts):
        label = str(uuid.UUID(bytes=rng.bytes(16), version=4))
        if prompt % 3 == 1:
            label = f"task_{prompt}_{label}"  # verl splits keys from the right: uids may hold "_"
        for session in range(int(rng.integers(1, max_sessions + 1))):
            outputs = int(rng.integers(1, max_outputs + 1))
            final = float(np.round(rng.beta(5, 2) * 4) / 4)
            if rng.random() < 0.15:
                final += float(rng.choice([-1.0, 1.0]) * rng.pareto(1.5) * 5)
            for index in range(outputs):
                keys.append(f"{label}_{session}_{index}")
                uids.append(label)
                last = index == outputs - 1
                outcomes.append(final if last or intermediate == "copy" else float(rng.normal(0, 3)))
    bs = len(keys)
    lengths = rng.integers(1, length + 1, size=bs)
    response_mask = (np.arange(length)[None, :] < lengths[:, None]).astype(np.float32)
    token_level_rewards = rng.normal(0, 0.01, size=(bs, length)).astype(np.float32) * response_mask
    token_level_rewards[np.arange(bs), lengths - 1] += np.asarray(outcomes, dtype=np.float32)
    if rejected:
        response_mask[rng.random(bs) < rejected] = 0.0

    order = rng.permutation(bs)
    return AgentLoopBatch(
        torch.from_numpy(token_level_rewards[order]),
        torch.from_numpy(response_mask[order]),
        np.asarray(uids, dtype=object)[order],
        [keys[i] for i in order],
        lengths[order].tolist(),
    )


def expected_by_sessions(token_level_rewards, response_mask, keys, *, tau=0.5, baseline="hdi_median", scale="rms"):
    """The reference over each session's final output (highest index), broadcast to the session.

    A session whose final output has an all-zero mask is a missing reward (NaN score).
    """
    final: dict[tuple[str, str], tuple[int, int]] = {}
    for row, key in enumerate(keys):
        uid, session, index = key.rsplit("_", 2)
        if (uid, session) not in final or int(index) > final[(uid, session)][0]:
            final[(uid, session)] = (int(index), row)
    sessions = list(final)
    rows = np.array([final[s][1] for s in sessions])
    scores = token_level_rewards.sum(dim=-1).double().numpy()[rows]  # float32 row sums, as verl reads them
    scores[response_mask.numpy()[rows].sum(-1) == 0] = np.nan
    labels = np.array([uid for uid, _ in sessions], dtype=object)
    per_session = reference.advantage(scores, group_ids=labels, tau=tau, baseline=baseline, scale=scale)
    session_number = {s: i for i, s in enumerate(sessions)}
    per_row = np.array([per_session[session_number[tuple(k.rsplit("_", 2)[:2])]] for k in keys])
    return per_row[:, None] * response_mask.double().numpy()


def algorithm_config(adv_estimator="gapo", **extra):
    base = {"adv_estimator": adv_estimator, "gamma": 1.0, "lam": 1.0, "norm_adv_by_std_in_grpo": True}
    base.update(extra)
    config = OmegaConf.create(base)
    OmegaConf.set_struct(config, True)
    return config


def run_v1(token_level_rewards, response_mask, uid, keys, config, num_repeat=4):
    """verl's compute_advantage_for_multi_trajectories, called as the v1 trainer calls it."""
    data = DataProto.from_dict(
        tensors={"token_level_rewards": token_level_rewards.clone(), "response_mask": response_mask.clone()},
        non_tensors={"uid": uid},
    )
    data = v1_utils.compute_advantage_for_multi_trajectories(
        data,
        batch_keys=list(keys),
        adv_estimator=config["adv_estimator"],
        gamma=config.get("gamma", 1.0),
        lam=config.get("lam", 1.0),
        num_repeat=num_repeat,
        norm_adv_by_std_in_grpo=config.get("norm_adv_by_std_in_grpo", True),
        config=config,
    )
    return data.batch["advantages"], data.batch["returns"]


# --- the wrap --------------------------------------------------------------------------------
def test_the_v1_trainer_calls_the_session_aware_function():
    # Installed at `import verl` by the entry point, before verl imported its v1 trainer.
    assert SUPPORT_AFTER_IMPORT == {
        "wrapped": ["verl.trainer.ppo.v1.utils", "verl.trainer.ppo.v1.trainer_base"],
        "unrecognised": {},
    }
    wrapper = getattr(v1_utils, FUNCTION)
    assert getattr(v1_trainer_base, FUNCTION) is wrapper
    assert wrapper.__gapo_kernels_wraps__.__module__ == "verl.trainer.ppo.v1.utils"
    # verl's modules keep their own loader
    assert type(v1_utils.__loader__).__name__ == "SourceFileLoader"
    assert v1_utils.__spec__.loader is v1_utils.__loader__


def test_reloading_our_module_wraps_verls_function_once():
    module = importlib.import_module(MODULE)
    verls = getattr(v1_utils, FUNCTION).__gapo_kernels_wraps__
    reloaded = importlib.reload(module)  # v1 already loaded: wrapped at once, not through the import hook
    assert reloaded.v1_session_support()["unrecognised"] == {}
    wrapper = getattr(v1_utils, FUNCTION)
    assert wrapper.__gapo_kernels_wraps__ is verls
    assert getattr(v1_trainer_base, FUNCTION) is wrapper
    assert sum(getattr(finder, "gapo_kernels_verl_hook", False) for finder in sys.meta_path) == 0
    # verl's v1 imported before our module (plugins off, our module imported later by hand):
    # both modules hold verl's own function, and both get the wrapper.
    setattr(v1_utils, FUNCTION, verls)
    setattr(v1_trainer_base, FUNCTION, verls)
    reloaded._install_v1_support()
    assert getattr(v1_utils, FUNCTION).__gapo_kernels_wraps__ is verls
    assert getattr(v1_trainer_base, FUNCTION) is getattr(v1_utils, FUNCTION)
    assert reloaded.v1_session_support()["unrecognised"] == {}


def test_an_unrecognised_v1_fails_loudly():
    module = sys.modules[MODULE]
    wrapper = getattr(v1_utils, FUNCTION)
    token_level_rewards, response_mask, uid, keys, _ = agent_loop_batch(seed=1, num_prompts=3)
    try:
        # a verl whose v1 modules lack the function
        delattr(v1_utils, FUNCTION)
        delattr(v1_trainer_base, FUNCTION)
        module._install_v1_support()
        assert list(module.v1_session_support()["unrecognised"]) == [
            "verl.trainer.ppo.v1.utils",
            "verl.trainer.ppo.v1.trainer_base",
        ]
        with pytest.raises(RuntimeError, match="has no function compute_advantage_for_multi_trajectories"):
            compute_advantage(
                DataProto.from_dict(
                    tensors={"token_level_rewards": token_level_rewards, "response_mask": response_mask},
                    non_tensors={"uid": uid},
                ),
                adv_estimator="gapo",
                config=algorithm_config(),
            )

        # a verl whose function takes other parameters
        def compute_advantage_for_multi_trajectories(data, keys, estimator):  # pragma: no cover - never called
            raise AssertionError

        setattr(v1_utils, FUNCTION, compute_advantage_for_multi_trajectories)
        module._install_v1_support()
        assert (
            "has no parameter batch_keys, adv_estimator"
            in module.v1_session_support()["unrecognised"][v1_utils.__name__]
        )
        # a v1 trainer module that does not call it
        lone = types.ModuleType(v1_trainer_base.__name__)
        module._check_v1_trainer(lone)
        assert "does not call" in module.v1_session_support()["unrecognised"][v1_trainer_base.__name__]
        with pytest.raises(RuntimeError, match=r"trainer\.use_v1=false"):
            module.compute_gapo_median_advantage(token_level_rewards, response_mask, index=uid)
    finally:
        setattr(v1_utils, FUNCTION, wrapper)
        setattr(v1_trainer_base, FUNCTION, wrapper)
        module._install_v1_support()
    assert module.v1_session_support()["unrecognised"] == {}
    assert getattr(v1_trainer_base, FUNCTION) is getattr(v1_utils, FUNCTION)


# --- numbers ---------------------------------------------------------------------------------
CASES = [
    # (estimator, extra config, the settings they must resolve to)
    ("gapo", {}, dict(tau=0.5, baseline="hdi_median", scale="rms")),
    ("gapo", {"gapo_tau": 0.25, "gapo_scale": "std"}, dict(tau=0.25, baseline="hdi_median", scale="std")),
    ("gapo", {"find_method": "mean", "find_target_fraction": 0.75}, dict(tau=0.75, baseline="hdi_mean", scale="rms")),
    ("gapo_hdi_mean", {}, dict(tau=0.5, baseline="hdi_mean", scale="rms")),
    ("gapo_median", {"norm_adv_by_std_in_grpo": False}, dict(tau=0.5, baseline="median", scale="none")),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_sessions_are_scored_by_their_final_output(case):
    estimator, extra, settings = CASES[case]
    token_level_rewards, response_mask, uid, keys, _ = agent_loop_batch(seed=10 + case, num_prompts=14)
    assert len(set(keys)) == len(keys) > len({k.rsplit("_", 1)[0] for k in keys})  # multi-output sessions
    advantages, returns = run_v1(token_level_rewards, response_mask, uid, keys, algorithm_config(estimator, **extra))
    assert advantages.dtype == torch.float32 and advantages.shape == token_level_rewards.shape
    assert torch.equal(advantages, returns)
    assert_close(advantages, expected_by_sessions(token_level_rewards, response_mask, keys, **settings))


def test_a_session_counts_once_however_many_outputs_it_has():
    # Realistic batches: intermediate outputs carry the final reward. Counting each output
    # would weight long sessions; the result must equal the one-row-per-session computation.
    token_level_rewards, response_mask, uid, keys, _ = agent_loop_batch(seed=30, num_prompts=16, intermediate="copy")
    ours, _ = run_v1(token_level_rewards, response_mask, uid, keys, algorithm_config())
    want = expected_by_sessions(token_level_rewards, response_mask, keys)
    assert_close(ours, want)
    scores = token_level_rewards.sum(dim=-1).double().numpy()
    per_output = reference.advantage(scores, group_ids=uid)[:, None] * response_mask.double().numpy()
    assert not np.allclose(per_output, want, atol=1e-3), "the batch does not tell the two apart"


def test_single_output_sessions_equal_the_legacy_path():
    token_level_rewards, response_mask, uid, keys, _ = agent_loop_batch(seed=31, num_prompts=20, max_outputs=1)
    config = algorithm_config(gapo_tau=0.4)
    ours, _ = run_v1(token_level_rewards, response_mask, uid, keys, config)
    legacy = compute_advantage(
        DataProto.from_dict(
            tensors={"token_level_rewards": token_level_rewards.clone(), "response_mask": response_mask.clone()},
            non_tensors={"uid": uid},
        ),
        adv_estimator="gapo",
        config=config,
    ).batch["advantages"]
    assert torch.equal(ours, legacy)
    assert_close(ours, expected_by_sessions(token_level_rewards, response_mask, keys, tau=0.4))


@pytest.mark.parametrize("norm", [True, False])
def test_grpo_mode_matches_verls_own_grpo_on_sessions(norm):
    token_level_rewards, response_mask, uid, keys, _ = agent_loop_batch(seed=40, num_prompts=24)
    ours, _ = run_v1(
        token_level_rewards,
        response_mask,
        uid,
        keys,
        algorithm_config(gapo_baseline="mean", norm_adv_by_std_in_grpo=norm),
    )
    theirs, _ = run_v1(
        token_level_rewards, response_mask, uid, keys, algorithm_config("grpo", norm_adv_by_std_in_grpo=norm)
    )
    assert_close(ours, theirs.double().numpy(), rtol=2e-5)
    # and verl's grpo is verl's, untouched by the wrap
    untouched = getattr(v1_utils, FUNCTION).__gapo_kernels_wraps__
    data = DataProto.from_dict(
        tensors={"token_level_rewards": token_level_rewards.clone(), "response_mask": response_mask.clone()},
        non_tensors={"uid": uid},
    )
    direct = untouched(
        data, batch_keys=keys, adv_estimator="grpo", norm_adv_by_std_in_grpo=norm, config=algorithm_config("grpo")
    )
    assert torch.equal(direct.batch["advantages"], theirs)


def test_rejected_outputs_are_missing_rewards():
    token_level_rewards, response_mask, uid, keys, _ = agent_loop_batch(seed=50, num_prompts=16, rejected=0.2)
    # one prompt whose every output is rejected, another whose final outputs only are
    labels = list(dict.fromkeys(uid.tolist()))
    all_rejected, finals_rejected = labels[0], labels[1]
    response_mask[torch.from_numpy(uid == all_rejected)] = 0.0
    final_index = {}
    for key in keys:
        session, index = key.rsplit("_", 1)
        final_index[session] = max(final_index.get(session, -1), int(index))
    for row, key in enumerate(keys):
        session, index = key.rsplit("_", 1)
        if uid[row] == finals_rejected and int(index) == final_index[session]:
            response_mask[row] = 0.0

    advantages, _ = run_v1(token_level_rewards, response_mask, uid, keys, algorithm_config())
    want = expected_by_sessions(token_level_rewards, response_mask, keys)
    assert_close(advantages, want)
    assert torch.all(advantages[torch.from_numpy(uid == all_rejected)] == 0)
    assert torch.all(advantages[torch.from_numpy(uid == finals_rejected)] == 0)  # every session lost its reward
    assert torch.all(advantages[response_mask.sum(-1) == 0] == 0)
    assert advantages.abs().sum() > 0


def test_string_booleans_in_a_plain_dict_config():
    token_level_rewards, response_mask, uid, keys, _ = agent_loop_batch(seed=60, num_prompts=8)
    none = expected_by_sessions(token_level_rewards, response_mask, keys, scale="none")
    rms = expected_by_sessions(token_level_rewards, response_mask, keys, scale="rms")
    for value, want in [("false", none), ("False", none), ("0", none), ("true", rms), ("1", rms)]:
        config = {"adv_estimator": "gapo", "norm_adv_by_std_in_grpo": value}
        advantages, _ = run_v1(token_level_rewards, response_mask, uid, keys, config)
        assert_close(advantages, want)


def test_keys_that_are_not_agent_loop_keys_are_reported():
    token_level_rewards, response_mask, uid, keys, _ = agent_loop_batch(seed=70, num_prompts=3)
    bad = list(keys)
    bad[1] = "no-session-here"
    with pytest.raises(ValueError, match=r"batch_keys\[1\] = 'no-session-here' is not an agent-loop key"):
        run_v1(token_level_rewards, response_mask, uid, bad, algorithm_config())
    with pytest.raises(ValueError, match="batch_keys has"):
        run_v1(token_level_rewards, response_mask, uid, keys[:-1], algorithm_config())


# --- the v1 trainer itself, on a real TransferQueue ------------------------------------------
@pytest.fixture(scope="module")
def transfer_queue():
    """A local Ray with a TransferQueue controller and one storage unit, as the v1 trainer uses."""
    import ray
    import transfer_queue as tq

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        tq.init(OmegaConf.create({"backend": {"SimpleStorage": {"num_data_storage_units": 1}}}))
        yield tq
    finally:
        try:
            tq.close()
        finally:
            ray.shutdown()


def run_v1_trainer(tq, batch: AgentLoopBatch, algorithm: dict) -> torch.Tensor:
    """The v1 trainer's own _compute_advantage on rows put in TransferQueue as its agent loop puts them."""
    from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict

    rows = [
        {
            "uid": batch.uid[i],
            "response_mask": batch.response_mask[i, :length].to(torch.int64),
            "rm_scores": batch.token_level_rewards[i, :length].clone(),
        }
        for i, length in enumerate(batch.lengths)
    ]
    stored = tq.kv_batch_put(keys=batch.keys, partition_id="train", fields=list_of_dict_to_tensordict(rows))
    trainer = PPOTrainerSync.__new__(PPOTrainerSync)  # the method reads only the config
    trainer.config = OmegaConf.create(
        {"algorithm": {"use_kl_in_reward": False, **algorithm}, "actor_rollout_ref": {"rollout": {"n": 4}}}
    )
    try:
        trainer._compute_advantage(stored, metrics={})
        nested = tq.kv_batch_get(keys=batch.keys, partition_id="train", select_fields=["advantages"])["advantages"]
    finally:
        tq.kv_clear(keys=batch.keys, partition_id="train")
    advantages = torch.zeros_like(batch.token_level_rewards)
    for i, row in enumerate(nested.unbind(0)):
        assert row.shape == (batch.lengths[i],)
        advantages[i, : row.shape[0]] = row
    return advantages


def test_the_v1_trainers_own_compute_advantage(transfer_queue):
    batch = agent_loop_batch(seed=80, num_prompts=12, rejected=0.1)
    algorithm = {"adv_estimator": "gapo", "gamma": 1.0, "lam": 1.0, "norm_adv_by_std_in_grpo": "false"}
    got = run_v1_trainer(transfer_queue, batch, algorithm)
    assert_close(got, expected_by_sessions(batch.token_level_rewards, batch.response_mask, batch.keys, scale="none"))
    assert torch.all(got[batch.response_mask.sum(-1) == 0] == 0)

    batch = agent_loop_batch(seed=81, num_prompts=12)
    grpo = run_v1_trainer(transfer_queue, batch, {"adv_estimator": "grpo", "gamma": 1.0, "lam": 1.0})
    mean = run_v1_trainer(
        transfer_queue, batch, {"adv_estimator": "gapo", "gamma": 1.0, "lam": 1.0, "gapo_baseline": "mean"}
    )
    assert_close(mean, grpo.double().numpy(), rtol=2e-5)
    assert_close(
        mean, expected_by_sessions(batch.token_level_rewards, batch.response_mask, batch.keys, baseline="mean")
    )
