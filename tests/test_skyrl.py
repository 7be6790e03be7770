"""GAPO estimators in the real SkyRL (0.3), found by name in its registry, also across Ray.

SkyRL needs Python >= 3.12: scripts/test_next_trainers.sh makes that venv and runs this file
there; elsewhere it is skipped with the reason. Nothing of SkyRL is mocked: batches go through
SkyRL's own dispatch ``ppo_utils.compute_advantages_and_returns`` (what its trainer calls) and
are compared with the NumPy reference, and mean-baseline mode with SkyRL's own GRPO.
"""

from __future__ import annotations

import os
import pickle
import sys

import numpy as np
import pytest
import torch

ppo_utils = pytest.importorskip(
    "skyrl.backends.skyrl_train.utils.ppo_utils",
    reason="needs SkyRL 0.3 (Python >= 3.12): run GAPO_NEXT_TRAINERS=1 scripts/test_next_trainers.sh",
)
from skyrl.train.config import AlgorithmConfig  # noqa: E402

import gapo_kernels.integrations.skyrl as gapo_skyrl  # noqa: E402  (registers the estimators)
from gapo_kernels.integrations._skyrl_estimator import SkyRLEstimator  # noqa: E402

from .outcome_batches import assert_close, expected_token_advantages, token_batch  # noqa: E402

pytestmark = pytest.mark.trainers

Registry = ppo_utils.AdvantageEstimatorRegistry
NAMES = {"gapo": "hdi_median", "gapo_hdi_mean": "hdi_mean", "gapo_median": "median"}
REGISTERED_BY_IMPORT = sorted(name for name in NAMES if name in Registry.list_available())


@pytest.fixture(autouse=True)
def default_registration():
    """Every test starts and ends with the defaults that importing the module registers."""
    gapo_skyrl.register()
    yield
    gapo_skyrl.register()


def trainer_call(token_level_rewards, response_mask, index, estimator, *, grpo_norm_by_std=True):
    """SkyRL's dispatch, with the arguments RayPPOTrainer.compute_advantages_and_returns passes."""
    algorithm = AlgorithmConfig(advantage_estimator=estimator, grpo_norm_by_std=grpo_norm_by_std)
    return ppo_utils.compute_advantages_and_returns(
        token_level_rewards=token_level_rewards.clone(),
        response_mask=response_mask.clone(),
        index=index,
        adv_estimator=algorithm.advantage_estimator,
        config=algorithm,
        values=None,
        gamma=algorithm.gamma,
        lambd=algorithm.lambd,
        grpo_norm_by_std=algorithm.grpo_norm_by_std,
    )


# --- registration ---------------------------------------------------------------------------
def test_importing_the_module_registers_every_name():
    assert REGISTERED_BY_IMPORT == sorted(NAMES)
    for name in NAMES:
        estimator = Registry.get(name)
        assert isinstance(estimator, SkyRLEstimator) and estimator.name == name
    assert gapo_skyrl.registered_settings() == {name: {"gapo_tau": 0.5} for name in NAMES}


def test_skyrls_config_validation_accepts_the_names():
    """SkyRL's validate_cfg (run by its entry point before training) checks the registry."""
    from skyrl.train.config import SkyRLTrainConfig
    from skyrl.train.utils.utils import validate_cfg

    def config(estimator):
        overrides = [f"trainer.algorithm.advantage_estimator={estimator}", "trainer.logger=console"]
        return SkyRLTrainConfig.from_cli_overrides(overrides)

    for name in NAMES:
        validate_cfg(config(name))
    with pytest.raises(AssertionError, match="invalid advantage_estimator: gapo_typo"):
        validate_cfg(config("gapo_typo"))


def test_register_replaces_ours_and_refuses_anyone_elses():
    gapo_skyrl.register(tau=0.25, baseline="mean", scale="std", eps=0.0)
    assert gapo_skyrl.registered_settings()["gapo"] == {
        "gapo_tau": 0.25,
        "gapo_baseline": "mean",
        "gapo_scale": "std",
        "gapo_eps": 0.0,
    }
    # the names that fix their baseline ignore the baseline argument
    assert "gapo_baseline" not in gapo_skyrl.registered_settings()["gapo_median"]

    def foreign(token_level_rewards, response_mask, index, **kwargs):
        return token_level_rewards, token_level_rewards

    Registry.unregister("gapo_median")
    Registry.register("gapo_median", foreign)
    try:
        with pytest.raises(ValueError, match="gapo_median.*already registered"):
            gapo_skyrl.register()
        assert Registry.get("gapo_median") is foreign
        # nothing was half-registered: gapo kept the settings of the last good call
        assert gapo_skyrl.registered_settings()["gapo"]["gapo_tau"] == 0.25
    finally:
        Registry.unregister("gapo_median")
        gapo_skyrl.register()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tau": 0.0}, "tau"),
        ({"tau": 50}, "fraction"),
        ({"tau": True}, "tau"),
        ({"baseline": "hdi"}, "baseline"),
        ({"scale": "mad"}, "scale"),
        ({"eps": -1e-6}, "eps"),
    ],
)
def test_register_checks_settings_before_registering(kwargs, match):
    gapo_skyrl.register(tau=0.75)
    with pytest.raises((TypeError, ValueError), match=match):
        gapo_skyrl.register(**kwargs)
    assert {config["gapo_tau"] for config in gapo_skyrl.registered_settings().values()} == {0.75}


def test_estimators_pickle_by_value_with_their_settings():
    """SkyRL ships registered objects to Ray processes with cloudpickle, or plain pickle without it."""
    import cloudpickle

    gapo_skyrl.register(tau=0.3, scale="none")
    estimator = Registry.get("gapo")
    for dumps in (pickle.dumps, cloudpickle.dumps):
        payload = dumps(estimator)
        assert b"gapo_kernels.integrations._skyrl_estimator" in payload
        copy = pickle.loads(payload)
        assert isinstance(copy, SkyRLEstimator) and copy.settings == estimator.settings


def test_command_line_overrides():
    settings, rest = gapo_skyrl.split_cli_overrides(
        [
            "trainer.algorithm.advantage_estimator=gapo",
            "gapo.tau=0.25",
            "+gapo.baseline=hdi_mean",
            "trainer.override_entrypoint=gapo_kernels.integrations.skyrl",
            "trainer.epochs=1",
        ]
    )
    assert settings == {"tau": "0.25", "baseline": "hdi_mean"}
    assert rest == ["trainer.algorithm.advantage_estimator=gapo", "trainer.epochs=1"]
    configs = gapo_skyrl.register(**settings)
    assert configs["gapo"] == {"gapo_tau": 0.25, "gapo_baseline": "hdi_mean"}
    with pytest.raises(ValueError, match="gapo.tau"):
        gapo_skyrl.split_cli_overrides(["gapo.window=3"])


# --- the estimators through SkyRL's dispatch -------------------------------------------------
@pytest.mark.parametrize("name", sorted(NAMES))
@pytest.mark.parametrize("grpo_norm_by_std", [True, False])
@pytest.mark.parametrize("seed", [0, 1])
def test_dispatch_matches_reference(name, grpo_norm_by_std, seed):
    rewards, mask, uids = token_batch(seed, missing=0.1, rejected=0.05)
    advantages, returns = trainer_call(rewards, mask, list(uids), name, grpo_norm_by_std=grpo_norm_by_std)
    assert advantages.dtype == torch.float32 and advantages.shape == rewards.shape
    assert torch.equal(advantages, returns)
    want = expected_token_advantages(
        rewards, mask, uids, tau=0.5, baseline=NAMES[name], scale="rms" if grpo_norm_by_std else "none"
    )
    assert_close(advantages, want)


def test_registered_settings_reach_the_estimator():
    gapo_skyrl.register(tau=0.2, baseline="median", scale="std", eps=1e-3)
    rewards, mask, uids = token_batch(7, missing=0.05)
    # an explicit scale wins over grpo_norm_by_std
    advantages, _ = trainer_call(rewards, mask, list(uids), "gapo", grpo_norm_by_std=False)
    want = expected_token_advantages(rewards, mask, uids, tau=0.2, baseline="median", scale="std", eps=1e-3)
    assert_close(advantages, want)


def test_scale_none_is_not_read_as_unset():
    gapo_skyrl.register(scale="none")
    rewards, mask, uids = token_batch(9)
    advantages, _ = trainer_call(rewards, mask, list(uids), "gapo", grpo_norm_by_std=True)
    want = expected_token_advantages(rewards, mask, uids, tau=0.5, baseline="hdi_median", scale="none")
    assert_close(advantages, want)


def test_step_wise_index_and_all_ones_mask():
    """Step-wise training passes np.array(uids)[is_last_step] (a str array) and an all-ones mask."""
    rewards, mask, uids = token_batch(3, missing=0.05)
    index = np.array(list(uids))  # dtype <U36, as trainer.py builds it
    ones = torch.ones_like(mask)
    advantages, _ = trainer_call(rewards, ones, index, "gapo")
    want = expected_token_advantages(rewards, ones, uids, tau=0.5, baseline="hdi_median", scale="rms")
    assert_close(advantages, want)


def test_labels_in_any_order_give_the_same_rows():
    rewards, mask, uids = token_batch(4)
    advantages, _ = trainer_call(rewards, mask, list(uids), "gapo")
    order = np.random.default_rng(0).permutation(len(uids))
    relabel = {uid: f"prompt-{i}" for i, uid in enumerate(sorted(set(uids), reverse=True))}
    shuffled, _ = trainer_call(rewards[order], mask[order], [relabel[u] for u in uids[order]], "gapo")
    torch.testing.assert_close(shuffled, advantages[order], rtol=0, atol=0)


@pytest.mark.parametrize("grpo_norm_by_std", [True, False])
def test_mean_baseline_is_skyrls_grpo(grpo_norm_by_std):
    """baseline=mean through SkyRL's dispatch equals SkyRL's own GRPO on the same batch."""
    gapo_skyrl.register(baseline="mean")
    rewards, mask, uids = token_batch(5, num_prompts=32)
    ours, _ = trainer_call(rewards, mask, list(uids), "gapo", grpo_norm_by_std=grpo_norm_by_std)
    grpo, _ = trainer_call(rewards, mask, list(uids), "grpo", grpo_norm_by_std=grpo_norm_by_std)
    torch.testing.assert_close(ours, grpo.float(), rtol=1e-5, atol=1e-5)
    assert ours.abs().max() > 0.1


def test_bad_input_is_named():
    rewards, mask, uids = token_batch(6, num_prompts=4)
    with pytest.raises(ValueError, match="index"):
        trainer_call(rewards, mask, list(uids)[:-1], "gapo")
    with pytest.raises(ValueError, match="index"):
        trainer_call(rewards, mask, None, "gapo")


# --- across Ray: SkyRL's registry actor -------------------------------------------------------
@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def test_registration_survives_skyrls_ray_sync(local_ray):
    """Settings registered in the driver are what a Ray worker computes with, via SkyRL's actor.

    The worker imports only SkyRL; it finds ``gapo`` through SkyRL's registry, which syncs it from
    the named actor that ``sync_registries`` (SkyRL's ``initialize_ray``) filled, and it never
    imports the registering module.
    """
    gapo_skyrl.register(tau=0.3, baseline="hdi_mean")
    ppo_utils.sync_registries()
    rewards, mask, uids = token_batch(8, missing=0.1, rejected=0.05)

    @local_ray.remote(num_cpus=1)
    def worker_step(token_level_rewards, response_mask, index):
        import os
        import sys

        from skyrl.backends.skyrl_train.utils import ppo_utils as worker_ppo_utils

        advantages, _ = worker_ppo_utils.compute_advantages_and_returns(
            token_level_rewards=token_level_rewards,
            response_mask=response_mask,
            index=index,
            adv_estimator="gapo",
            config=None,
            grpo_norm_by_std=True,
        )
        estimator = worker_ppo_utils.AdvantageEstimatorRegistry.get("gapo")
        imported_registering_module = "gapo_kernels.integrations.skyrl" in sys.modules
        # Importing the module in a worker keeps the synced estimators (no defaults over them).
        import gapo_kernels.integrations.skyrl  # noqa: F401

        after_import = worker_ppo_utils.AdvantageEstimatorRegistry.get("gapo")
        settings = (dict(estimator.settings), dict(after_import.settings))
        return advantages, *settings, imported_registering_module, os.getpid()

    result = local_ray.get(worker_step.remote(rewards, mask, list(uids)))
    advantages, settings, settings_after_import, imported_registering_module, pid = result
    assert pid != os.getpid()
    assert settings == settings_after_import == {"gapo_tau": 0.3, "gapo_baseline": "hdi_mean"}
    assert not imported_registering_module
    assert_close(advantages, expected_token_advantages(rewards, mask, uids, tau=0.3, baseline="hdi_mean", scale="rms"))

    actor = local_ray.get_actor(Registry._actor_name)
    shipped = pickle.loads(local_ray.get(actor.get.remote("gapo")))
    assert shipped.settings == {"gapo_tau": 0.3, "gapo_baseline": "hdi_mean"}
    # A later register() in the driver reaches the actor too (register pushes when Ray is up).
    gapo_skyrl.register(tau=0.9)
    shipped = pickle.loads(local_ray.get(actor.get.remote("gapo")))
    assert shipped.settings == {"gapo_tau": 0.9}
    assert "gapo_kernels" in sys.modules  # (the driver, of course, has it)
