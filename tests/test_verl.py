"""GAPO estimators in the real verl (0.9), found by name after a plain ``import verl``: the
legacy trainer's path, settings and registration (the v1 trainer's path: test_verl_v1.py).

Needs verl installed (scripts/install_trainers.sh) and this package pip-installed (so that its
``verl.plugins`` entry point exists). Nothing of verl is mocked: batches go through verl's own
``compute_advantage`` (what its PPO trainer calls) and are compared with the NumPy reference,
and GRPO mode with verl's own ``compute_grpo_outcome_advantage``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

try:
    import verl  # noqa: F401 - a plain import: verl loads the verl.plugins entry points, ours among them
    from omegaconf import OmegaConf
    from verl import DataProto
    from verl.trainer.ppo import core_algos
    from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage, get_adv_estimator_fn
    from verl.trainer.ppo.ray_trainer import compute_advantage
except ImportError as error:  # fail loudly: CI installs the trainers
    raise ImportError(f"tests marked 'trainers' need verl: run scripts/install_trainers.sh ({error})") from error

from gapo_kernels import RewardShape, reference
from gapo_kernels.shape import shape_of_group
from gapo_kernels.integrations import gapo_diagnostics
from gapo_kernels.integrations._common import parse_bool, resolve_settings
from tests.outcome_batches import assert_close, token_batch

pytestmark = pytest.mark.trainers

MODULE = "gapo_kernels.integrations.verl"
NAMES = ("gapo", "gapo_hdi_mean", "gapo_median")
# What `import verl` above registered, before any test imports our module by name.
REGISTERED_BY_IMPORT_VERL = sorted(name for name in NAMES if name in core_algos.ADV_ESTIMATOR_REGISTRY)


def get_estimator(name: str):
    """verl's registry lookup, as the trainer does it, for a name `import verl` registered."""
    assert name in REGISTERED_BY_IMPORT_VERL, (
        f"{name!r} was not registered by a plain `import verl`: is this package pip-installed with its "
        "verl.plugins entry point? (see test_entry_point_is_declared)"
    )
    return get_adv_estimator_fn(name)


# --- a verl-style batch ---------------------------------------------------------------------
def verl_batch(seed: int, num_prompts: int = 48, max_group: int = 12, length: int = 24, missing: float = 0.0):
    """(token_level_rewards, response_mask, uid) as verl's PPO trainer holds them.

    Ragged groups (singletons included), one uuid string per prompt repeated over its rollouts
    with np.repeat (as DataProto.repeat(interleave=True) does), rows then shuffled (verl
    reorders the batch), responses of random length with right padding, the outcome reward on
    the last response token plus a small per-token term inside the response (so that the
    score is the row sum, not the last token). Rewards are skewed with outliers and ties; a
    ``missing`` share of them is NaN or +/-inf.
    """
    return token_batch(seed, num_prompts=num_prompts, max_group=max_group, length=length, missing=missing)


def algorithm_config(adv_estimator: str = "gapo", **extra):
    """``config.algorithm`` as verl's hydra config gives it (struct mode, + keys added)."""
    base = {"adv_estimator": adv_estimator, "gamma": 1.0, "lam": 1.0, "norm_adv_by_std_in_grpo": True}
    base.update(extra)
    config = OmegaConf.create(base)
    OmegaConf.set_struct(config, True)
    return config


def run_trainer_path(token_level_rewards, response_mask, index, config):
    """verl's own compute_advantage, called as RayPPOTrainer.fit calls it."""
    if config.adv_estimator in NAMES:
        get_estimator(config.adv_estimator)  # found by name after a plain `import verl`
    data = DataProto.from_dict(
        tensors={"token_level_rewards": token_level_rewards.clone(), "response_mask": response_mask.clone()},
        non_tensors={"uid": index},
    )
    data = compute_advantage(
        data,
        adv_estimator=config.adv_estimator,
        gamma=config.gamma,
        lam=config.lam,
        num_repeat=4,
        norm_adv_by_std_in_grpo=config.norm_adv_by_std_in_grpo,
        config=config,
    )
    return data.batch["advantages"], data.batch["returns"]


def expected(token_level_rewards, response_mask, index, *, tau, baseline, scale, eps=1e-6):
    """The reference on the scores verl reads (row sums in float32), broadcast over the mask.

    A row whose mask is all zero (rejected) is a missing reward.
    """
    scores = token_level_rewards.sum(dim=-1).double().numpy()
    scores[response_mask.sum(dim=-1).numpy() == 0] = np.nan
    adv = reference.advantage(scores, group_ids=np.asarray(index), tau=tau, baseline=baseline, scale=scale, eps=eps)
    return adv[:, None] * response_mask.double().numpy()


# --- registration ---------------------------------------------------------------------------
def _run_python(code: str, **env_changes: str | None) -> str:
    env = dict(os.environ)
    for key, value in env_changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], check=False, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"subprocess failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


PROBE = f"""
    import sys
    import verl
    from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY
    print(sorted(n for n in ADV_ESTIMATOR_REGISTRY if n.startswith("gapo")))
    print({MODULE!r} in sys.modules)
    print("verl.trainer.ppo.v1.utils" in sys.modules)  # the v1 wrap waits for verl to import it
"""


def test_entry_point_is_declared():
    points = importlib.metadata.entry_points(group="verl.plugins")
    ours = [ep for ep in points if ep.value == MODULE]
    assert ours, (
        f"no verl.plugins entry point with value {MODULE!r}: pip install this package (pip install -e .) "
        f"so that its pyproject entry point is registered; found {[(ep.name, ep.value) for ep in points]}"
    )


def test_plain_import_verl_registers_through_the_entry_point():
    # A fresh interpreter that never names our module: only the entry point can load it.
    out = _run_python(PROBE, VERL_USE_EXTERNAL_MODULES=None, VERL_USE_EXTERNAL_PLUGINS=None).split("\n")
    assert out[0] == str(sorted(NAMES)), out
    assert out[1] == "True", out
    assert out[2] == "False", out


def test_external_modules_variable_registers_without_the_entry_point():
    off = _run_python(PROBE, VERL_USE_EXTERNAL_MODULES=None, VERL_USE_EXTERNAL_PLUGINS="none").split("\n")
    assert off[0] == "[]", f"with plugins off and no variable nothing should register: {off}"
    on = _run_python(PROBE, VERL_USE_EXTERNAL_MODULES=MODULE, VERL_USE_EXTERNAL_PLUGINS="none").split("\n")
    assert on[0] == str(sorted(NAMES)), on


def test_importing_again_and_reloading_does_not_raise():
    module = importlib.import_module(MODULE)  # already imported by the entry point: a no-op
    importlib.import_module(MODULE)
    module.register()
    reloaded = importlib.reload(module)  # new function objects under the same names: replaced, no error
    for name in NAMES:
        assert get_adv_estimator_fn(name).__module__ == MODULE
    assert get_adv_estimator_fn("gapo") is reloaded.compute_gapo_advantage
    reloaded.register()


def test_a_foreign_estimator_under_our_name_is_reported():
    module = importlib.import_module(MODULE)
    registry = core_algos.ADV_ESTIMATOR_REGISTRY
    saved = registry["gapo_median"]

    def someone_elses(**kwargs):  # pragma: no cover - never called
        raise AssertionError

    registry["gapo_median"] = someone_elses
    try:
        with pytest.raises(ValueError, match="already registered"):
            module.register()
    finally:
        registry["gapo_median"] = saved


# --- numbers --------------------------------------------------------------------------------
CASES = [
    # (estimator, extra config, the settings they must resolve to)
    ("gapo", {}, dict(tau=0.5, baseline="hdi_median", scale="rms")),
    ("gapo", {"gapo_tau": 0.25, "gapo_baseline": "hdi_mean"}, dict(tau=0.25, baseline="hdi_mean", scale="rms")),
    ("gapo", {"gapo_scale": "std", "gapo_eps": 1e-3}, dict(tau=0.5, baseline="hdi_median", scale="std", eps=1e-3)),
    ("gapo", {"norm_adv_by_std_in_grpo": False}, dict(tau=0.5, baseline="hdi_median", scale="none")),
    # the authors' keys
    (
        "gapo",
        {"find_method": "median", "find_target_fraction": 0.75},
        dict(tau=0.75, baseline="hdi_median", scale="rms"),
    ),
    ("gapo", {"find_method": "mean"}, dict(tau=0.5, baseline="hdi_mean", scale="rms")),
    ("gapo", {"find_method": "None"}, dict(tau=0.5, baseline="hdi_median", scale="rms")),
    # precedence: gapo_* over the authors' keys, gapo_scale over norm_adv_by_std_in_grpo
    (
        "gapo",
        {"gapo_baseline": "median", "find_method": "mean", "gapo_tau": 0.3, "find_target_fraction": 0.9},
        dict(tau=0.3, baseline="median", scale="rms"),
    ),
    (
        "gapo",
        {"gapo_scale": "rms", "norm_adv_by_std_in_grpo": False},
        dict(tau=0.5, baseline="hdi_median", scale="rms"),
    ),
    ("gapo_hdi_mean", {"gapo_tau": 0.6}, dict(tau=0.6, baseline="hdi_mean", scale="rms")),
    ("gapo_hdi_mean", {"find_method": "mean"}, dict(tau=0.5, baseline="hdi_mean", scale="rms")),
    ("gapo_median", {"norm_adv_by_std_in_grpo": False}, dict(tau=0.5, baseline="median", scale="none")),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_trainer_path_matches_the_reference(case):
    estimator, extra, settings = CASES[case]
    token_level_rewards, response_mask, index = verl_batch(seed=case)
    config = algorithm_config(estimator, **extra)
    advantages, returns = run_trainer_path(token_level_rewards, response_mask, index, config)

    assert advantages.dtype == torch.float32 and returns.dtype == torch.float32
    assert advantages.shape == token_level_rewards.shape
    assert torch.equal(advantages, returns)
    assert torch.all(advantages[response_mask == 0] == 0)
    assert_close(advantages, expected(token_level_rewards, response_mask, index, **settings))


def test_direct_call_with_verl_keywords_and_missing_rewards():
    token_level_rewards, response_mask, index = verl_batch(seed=100, num_prompts=96, missing=0.05)
    fn = get_estimator("gapo")
    # exactly the keywords verl's compute_advantage passes to a registry estimator
    advantages, _ = fn(
        token_level_rewards=token_level_rewards, response_mask=response_mask, config=algorithm_config(), index=index
    )
    want = expected(token_level_rewards, response_mask, index, tau=0.5, baseline="hdi_median", scale="rms")
    assert_close(advantages, want)
    missing = ~torch.isfinite(token_level_rewards.sum(-1))
    assert missing.any() and torch.all(advantages[missing] == 0)


@pytest.mark.parametrize("norm", [True, False])
def test_grpo_mode_matches_verls_own_grpo(norm):
    token_level_rewards, response_mask, index = verl_batch(seed=7, num_prompts=64)
    config = algorithm_config("gapo", gapo_baseline="mean", norm_adv_by_std_in_grpo=norm)
    ours, _ = run_trainer_path(token_level_rewards, response_mask, index, config)

    theirs, _ = compute_grpo_outcome_advantage(
        token_level_rewards=token_level_rewards.clone(),
        response_mask=response_mask,
        index=index,
        epsilon=1e-6,
        norm_adv_by_std_in_grpo=norm,
    )
    # and through verl's trainer path with adv_estimator=grpo
    via_trainer, _ = run_trainer_path(
        token_level_rewards, response_mask, index, algorithm_config("grpo", norm_adv_by_std_in_grpo=norm)
    )
    assert torch.equal(theirs, via_trainer)
    assert_close(ours, theirs.double().numpy(), rtol=2e-5)


@pytest.mark.parametrize("kind", ["shared objects", "fresh objects", "list", "unicode array", "integers", "tensor"])
def test_index_forms_give_the_same_groups(kind):
    token_level_rewards, response_mask, index = verl_batch(seed=11)
    want = expected(token_level_rewards, response_mask, index, tau=0.5, baseline="hdi_median", scale="rms")
    if kind == "fresh objects":  # equal uids held by different str objects: the identity shortcut must not split them
        given = np.array(["".join(list(s)) for s in index.tolist()], dtype=object)
        assert given[0] is not index[0] and given[0] == index[0]
    elif kind == "list":
        given = index.tolist()
    elif kind == "unicode array":
        given = index.astype(str)
    elif kind in ("integers", "tensor"):
        codes = {u: 1000 + 7 * i for i, u in enumerate(dict.fromkeys(index.tolist()))}
        given = np.array([codes[u] for u in index.tolist()], dtype=np.int64)
        given = torch.from_numpy(given) if kind == "tensor" else given
    else:
        given = index
    advantages, _ = get_estimator("gapo")(
        token_level_rewards=token_level_rewards, response_mask=response_mask, index=given, config=algorithm_config()
    )
    assert_close(advantages, want)


def test_mixed_shared_and_fresh_objects():
    # Some rows of a prompt share one str object, others hold an equal copy.
    token_level_rewards, response_mask, index = verl_batch(seed=12)
    mixed = index.copy()
    mixed[::3] = np.array(["".join(list(s)) for s in index[::3].tolist()], dtype=object)
    want = expected(token_level_rewards, response_mask, index, tau=0.5, baseline="hdi_median", scale="rms")
    advantages, _ = get_estimator("gapo")(
        token_level_rewards=token_level_rewards, response_mask=response_mask, index=mixed, config=algorithm_config()
    )
    assert_close(advantages, want)


@pytest.mark.parametrize(
    "estimator, extra, message",
    [
        ("gapo_median", {"gapo_baseline": "hdi_median"}, "uses baseline 'median'"),
        ("gapo_hdi_mean", {"find_method": "median"}, "uses baseline 'hdi_mean'"),
        ("gapo", {"find_method": "mode"}, "find_method must be"),
        ("gapo", {"find_target_fraction": 50}, "fraction, not a percentage"),
        ("gapo", {"gapo_tau": 0.0}, r"gapo_tau must be in \(0, 1\]"),
        ("gapo", {"gapo_baseline": "trimmed"}, "gapo_baseline must be one of"),
        ("gapo", {"gapo_scale": "mad"}, "gapo_scale must be one of"),
        ("gapo", {"gapo_eps": "inf"}, "gapo_eps must be a finite number >= 0"),
        ("gapo", {"gapo_eps": -1e-6}, "gapo_eps must be a finite number >= 0"),
        ("gapo", {"gapo_eps": "tiny"}, "gapo_eps must be a finite number >= 0"),
        ("gapo", {"norm_adv_by_std_in_grpo": "maybe"}, "norm_adv_by_std_in_grpo must be a boolean"),
    ],
)
def test_bad_settings_are_reported_by_key(estimator, extra, message):
    token_level_rewards, response_mask, index = verl_batch(seed=3, num_prompts=4)
    with pytest.raises(ValueError, match=message):
        get_estimator(estimator)(
            token_level_rewards=token_level_rewards,
            response_mask=response_mask,
            index=index,
            config=algorithm_config(estimator, **extra),
        )


def test_index_is_required_and_must_match_the_batch():
    token_level_rewards, response_mask, index = verl_batch(seed=4, num_prompts=4)
    fn = get_estimator("gapo")
    with pytest.raises(ValueError, match="must pass index"):
        fn(token_level_rewards=token_level_rewards, response_mask=response_mask, config=algorithm_config())
    with pytest.raises(ValueError, match="entries but token_level_rewards has"):
        fn(token_level_rewards=token_level_rewards, response_mask=response_mask, index=index[:-1], config=None)


@pytest.mark.parametrize("estimator", NAMES)
def test_rejected_rows_are_missing_rewards(estimator):
    # verl's rollout correction rejects a response by zeroing its response_mask; its rewards stay.
    token_level_rewards, response_mask, index = verl_batch(seed=110, num_prompts=40)
    rng = np.random.default_rng(110)
    response_mask[torch.from_numpy(rng.random(index.size) < 0.2)] = 0.0
    labels, sizes = np.unique(index.astype(str), return_counts=True)
    all_rejected = torch.from_numpy(index == labels[sizes >= 3][0])
    response_mask[all_rejected] = 0.0
    rejected = response_mask.sum(-1) == 0
    assert torch.all(token_level_rewards[rejected].sum(-1) != 0)

    advantages, _ = run_trainer_path(token_level_rewards, response_mask, index, algorithm_config(estimator))
    settings = resolve_settings(algorithm_config(estimator), estimator=estimator)
    assert_close(
        advantages,
        expected(token_level_rewards, response_mask, index, **{k: settings[k] for k in ("tau", "baseline", "scale")}),
    )
    assert torch.all(advantages[rejected] == 0) and torch.all(advantages[all_rejected] == 0)
    # a rejected row does not move its group: dropping it changes nothing for the others
    kept = ~rejected
    alone, _ = run_trainer_path(
        token_level_rewards[kept], response_mask[kept], index[kept.numpy()], algorithm_config(estimator)
    )
    assert torch.equal(alone, advantages[kept])


@pytest.mark.parametrize(
    "value, scale",
    [
        ("false", "none"),
        ("False", "none"),
        ("0", "none"),
        (0, "none"),
        (False, "none"),
        ("true", "rms"),
        ("True", "rms"),
        ("1", "rms"),
        (True, "rms"),
    ],
)
def test_string_booleans_in_a_plain_dict_config(value, scale):
    token_level_rewards, response_mask, index = verl_batch(seed=120, num_prompts=16)
    config = {
        "adv_estimator": "gapo",
        "norm_adv_by_std_in_grpo": value,
    }  # a dict, as a YAML read without a schema gives
    data = DataProto.from_dict(
        tensors={"token_level_rewards": token_level_rewards, "response_mask": response_mask}, non_tensors={"uid": index}
    )
    advantages = compute_advantage(data, adv_estimator="gapo", config=config).batch["advantages"]
    assert_close(
        advantages, expected(token_level_rewards, response_mask, index, tau=0.5, baseline="hdi_median", scale=scale)
    )


def test_settings_from_verls_algo_config_dataclass():
    from verl.trainer.config import AlgoConfig

    assert resolve_settings(AlgoConfig(norm_adv_by_std_in_grpo=False)) == {
        "tau": 0.5,
        "baseline": "hdi_median",
        "scale": "none",
        "eps": 1e-6,
    }
    assert resolve_settings(AlgoConfig(), estimator="gapo_median", epsilon=1e-4)["eps"] == 1e-4


def test_the_estimators_come_from_one_factory():
    module = importlib.import_module(MODULE)
    for name in NAMES:
        function = get_adv_estimator_fn(name)
        assert function is getattr(module, f"compute_{name}_advantage")
        assert function.__name__ == f"compute_{name}_advantage" and function.__module__ == MODULE
        assert name in function.__doc__
    made = module.make_estimator("gapo_median")
    token_level_rewards, response_mask, index = verl_batch(seed=5, num_prompts=8)
    assert torch.equal(
        made(token_level_rewards, response_mask, index=index)[0],
        module.compute_gapo_median_advantage(token_level_rewards, response_mask, index=index)[0],
    )
    with pytest.raises(ValueError, match="unknown GAPO estimator 'grpo'"):
        module.make_estimator("grpo")


@pytest.mark.parametrize(
    "value, want",
    [
        (True, True),
        (False, False),
        (np.bool_(True), True),
        (1, True),
        (0, False),
        (np.int64(0), False),
        ("yes", True),
        ("Off", False),
        (" FALSE ", False),
        ("1", True),
    ],
)
def test_parse_bool(value, want):
    assert parse_bool(value, "key") is want


@pytest.mark.parametrize("value", ["maybe", "", 2, 0.0, None, "truthy"])
def test_parse_bool_rejects_what_is_not_clearly_a_boolean(value):
    with pytest.raises(ValueError, match=r"algorithm\.key must be a boolean"):
        parse_bool(value, "key")


# --- diagnostics ----------------------------------------------------------------------------
def diagnostics_by_hand(scores: np.ndarray, index: np.ndarray, tau: float, baseline: str) -> dict[str, float]:
    """An independent, loop-per-group computation of the diagnostics from the reference."""
    groups = {}
    for row, label in enumerate(index.tolist()):
        groups.setdefault(label, []).append(row)
    abs_diff, width_frac, above, below, singletons, empty, constant, scorable = [], [], 0, 0, 0, 0, 0, 0
    shapes = [shape_of_group(scores[rows])[2] for rows in groups.values()]
    classified = [s for s in shapes if s != RewardShape.TOO_FEW]
    for rows in groups.values():
        values = scores[rows]
        finite = np.sort(values[np.isfinite(values)])
        if finite.size == 0:
            empty += 1
            continue
        if finite.size == 1:
            singletons += 1
            continue
        scorable += 1
        stats = reference.group_stats(values, np.array([0, len(values)]), tau=tau, baseline=baseline)
        q, mean = stats.baseline[0], finite.mean()
        abs_diff.append(abs(q - mean))
        if finite[-1] > finite[0]:
            width_frac.append((stats.hdi_high[0] - stats.hdi_low[0]) / (finite[-1] - finite[0]))
        else:
            constant += 1
        tolerance = 8 * np.finfo(np.float32).eps * max(abs(finite[0]), abs(finite[-1]))  # as documented
        above += q - mean > tolerance
        below += mean - q > tolerance
    return {
        "gapo/abs_q_minus_mean": float(np.mean(abs_diff)),
        "gapo/hdi_width_frac": float(np.mean(width_frac)),
        "gapo/frac_q_above_mean": above / scorable,
        "gapo/frac_q_below_mean": below / scorable,
        "gapo/num_singleton_groups": float(singletons),
        "gapo/num_missing_rewards": float(np.sum(~np.isfinite(scores))),
        "gapo/num_groups": float(len(groups)),
        "gapo/num_empty_groups": float(empty),
        "gapo/num_constant_groups": float(constant),
        "gapo/frac_shape_normal": classified.count(RewardShape.NORMAL) / len(classified),
        "gapo/frac_shape_right_skewed": classified.count(RewardShape.RIGHT_SKEWED) / len(classified),
        "gapo/frac_shape_left_skewed": classified.count(RewardShape.LEFT_SKEWED) / len(classified),
        "gapo/frac_shape_symmetric_non_normal": classified.count(RewardShape.SYMMETRIC_NON_NORMAL) / len(classified),
        "gapo/num_shape_too_few_groups": float(len(shapes) - len(classified)),
    }


def test_batch_diagnostics_match_a_loop_over_groups():
    module = importlib.import_module(MODULE)
    token_level_rewards, _, index = verl_batch(seed=21, num_prompts=80, missing=0.03)
    # one prompt whose rollouts all failed, one with all-equal rewards (both with 2+ rollouts)
    labels, sizes = np.unique(index.astype(str), return_counts=True)
    failed, constant = labels[sizes >= 2][:2]
    token_level_rewards[torch.from_numpy(index == failed)] = float("nan")
    same = torch.from_numpy(index == constant)
    token_level_rewards[same] = 0.0
    token_level_rewards[same, 0] = 1.0
    config = algorithm_config(gapo_tau=0.5)
    got = module.batch_diagnostics(token_level_rewards, index, config)
    want = diagnostics_by_hand(token_level_rewards.sum(-1).double().numpy(), index, 0.5, "hdi_median")
    assert list(got) == list(want)
    for key in want:
        assert got[key] == pytest.approx(want[key], rel=1e-5, abs=1e-6), key
    assert got["gapo/num_empty_groups"] >= 1 and got["gapo/num_constant_groups"] >= 1
    assert got["gapo/num_missing_rewards"] > 0 and got["gapo/num_singleton_groups"] >= 1
    assert all(isinstance(v, float) for v in got.values())


def test_batch_diagnostics_count_rejected_rows_as_missing():
    module = importlib.import_module(MODULE)
    token_level_rewards, response_mask, index = verl_batch(seed=22, num_prompts=30)
    response_mask[::5] = 0.0
    got = module.batch_diagnostics(token_level_rewards, index, algorithm_config(), response_mask=response_mask)
    nan_rows = token_level_rewards.clone()
    nan_rows[::5] = float("nan")
    assert got == module.batch_diagnostics(nan_rows, index, algorithm_config())
    assert got["gapo/num_missing_rewards"] == len(range(0, index.size, 5))


def test_diagnostics_see_the_skew():
    # Right-skewed groups (mass low, a high outlier): Q below the mean; left-skewed: above.
    right = torch.tensor([0.0, 0.0, 0.1, 0.1, 0.2, 9.0])
    left = -right
    rewards = torch.cat([right, right, left])
    ids = torch.tensor([0] * 6 + [1] * 6 + [2] * 6)
    got = gapo_diagnostics(rewards, group_ids=ids)
    assert got["frac_q_below_mean"] == pytest.approx(2 / 3)
    assert got["frac_q_above_mean"] == pytest.approx(1 / 3)
    # right: window [0, 0, 0.1], Q = 0; left: window [-0.2, -0.1, -0.1], Q = -0.1; |mean| = 9.4 / 6
    mean = 9.4 / 6
    assert got["abs_q_minus_mean"] == pytest.approx((2 * mean + (mean - 0.1)) / 3, rel=1e-6)
    # windows of 3 spanning 0.1 of a 9.0 range
    assert got["hdi_width_frac"] == pytest.approx(0.1 / 9.0, rel=1e-5)
    # nothing scorable: means are NaN, counts still reported
    lone = gapo_diagnostics(torch.tensor([1.0, float("nan")]), group_ids=torch.tensor([0, 1]))
    assert np.isnan(lone["abs_q_minus_mean"]) and np.isnan(lone["frac_q_above_mean"])
    assert lone["num_singleton_groups"] == 1 and lone["num_empty_groups"] == 1 and lone["num_missing_rewards"] == 1


@pytest.mark.parametrize(("gapo_scale", "scale"), [("none", "none"), ("None", "none"), ("std", "std"), ("null", "rms")])
def test_gapo_scale_none_is_a_scale_not_an_unset_key(gapo_scale, scale):
    token_level_rewards, response_mask, index = verl_batch(seed=121, num_prompts=16)
    config = {"adv_estimator": "gapo", "gapo_scale": gapo_scale}
    data = DataProto.from_dict(
        tensors={"token_level_rewards": token_level_rewards, "response_mask": response_mask}, non_tensors={"uid": index}
    )
    advantages = compute_advantage(data, adv_estimator="gapo", config=config).batch["advantages"]
    assert_close(
        advantages, expected(token_level_rewards, response_mask, index, tau=0.5, baseline="hdi_median", scale=scale)
    )
