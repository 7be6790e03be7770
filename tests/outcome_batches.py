"""Outcome-reward batches as RL trainers hold them, and the reference advantages for them.

Shared by the trainer-integration tests whose trainers score one scalar per response (SkyRL,
OpenRLHF): no trainer is imported here.
"""

from __future__ import annotations

import uuid

import numpy as np
import torch

from gapo_kernels import reference


def skewed_outcomes(rng: np.random.Generator, size: int, missing: float = 0.0) -> np.ndarray:
    """Mostly-high rewards on a 0.25 grid (many ties) with heavy-tailed outliers of both signs."""
    outcome = np.round(rng.beta(5, 2, size=size) * 4) / 4
    outliers = rng.random(size) < 0.12
    outcome[outliers] += rng.choice([-1.0, 1.0], size=outliers.sum()) * rng.pareto(1.5, size=outliers.sum()) * 5
    if missing:
        holes = rng.random(size) < missing
        outcome[holes] = rng.choice([np.nan, np.inf, -np.inf], size=holes.sum())
    return outcome


def token_batch(
    seed: int,
    *,
    num_prompts: int = 40,
    max_group: int = 10,
    length: int = 16,
    missing: float = 0.0,
    rejected: float = 0.0,
    shuffle: bool = True,
):
    """``(token_level_rewards, response_mask, uids)`` of a ragged, shuffled batch.

    One uuid string per prompt repeated over its rollouts (singletons and a large group
    included), rows shuffled, right-padded responses of random length; the outcome reward sits
    on the last response token plus a small per-token term inside the response, so the score is
    the row sum. ``missing``: share of NaN/+inf/-inf outcomes; ``rejected``: share of rows
    whose response mask is all zero (what a trainer's filter leaves).
    """
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, max_group + 1, size=num_prompts)
    sizes[:3] = (1, 2, max_group)
    uids = np.array([str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(num_prompts)], dtype=object)
    index = np.repeat(uids, sizes)
    bs = index.size

    outcome = skewed_outcomes(rng, bs, missing)
    lengths = rng.integers(1, length + 1, size=bs)
    response_mask = (np.arange(length)[None, :] < lengths[:, None]).astype(np.float32)
    if rejected:
        response_mask[rng.random(bs) < rejected] = 0.0
    token_level_rewards = rng.normal(0, 0.01, size=(bs, length)).astype(np.float32) * response_mask
    token_level_rewards[np.arange(bs), lengths - 1] += outcome.astype(np.float32)

    order = rng.permutation(bs) if shuffle else np.arange(bs)
    return (
        torch.from_numpy(np.ascontiguousarray(token_level_rewards[order])),
        torch.from_numpy(np.ascontiguousarray(response_mask[order])),
        index[order],
    )


def expected_token_advantages(token_level_rewards, response_mask, uids, *, tau, baseline, scale, eps=1e-6):
    """The NumPy reference on the row sums, rows with an all-zero mask missing, times the mask.

    The sums are float32, as the trainers take them: the same scores, so the same HDI window
    even where two windows tie to within float32 rounding.
    """
    scores = token_level_rewards.sum(dim=-1).double().numpy().copy()
    mask = response_mask.double().numpy()
    scores[~(mask != 0).any(axis=-1)] = np.nan
    codes = np.unique(np.asarray(uids, dtype=str), return_inverse=True)[1]
    adv = reference.advantage(scores, group_ids=codes, tau=tau, baseline=baseline, scale=scale, eps=eps)
    return adv[:, None] * mask


def assert_close(actual: torch.Tensor, want: np.ndarray, rtol: float = 1e-5) -> None:
    got = actual.double().numpy()
    assert got.shape == want.shape, (got.shape, want.shape)
    assert np.all(np.isfinite(got)), "advantages must be finite (missing rewards get 0)"
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * max(1.0, float(np.abs(want).max())))
