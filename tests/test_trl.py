"""GAPOTrainer in the real TRL (1.x): a couple of training steps on CPU, nothing downloaded.

The model is a tiny, randomly initialised Llama; the tokenizer a character-level one built
here with the ``tokenizers`` library; the dataset a few prompts in memory; the reward function
returns outliers and, now and then, None (an unscorable completion). The test records what
the trainer gathered and what its loss consumed, and checks the advantages against the NumPy
reference.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

try:
    from datasets import Dataset
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    from trl import GRPOConfig, GRPOTrainer

    from gapo_kernels.integrations.trl import GAPOConfig, GAPOTrainer
except ImportError as error:  # fail loudly: CI installs the trainers
    raise ImportError(f"tests marked 'trainers' need trl: run scripts/install_trainers.sh ({error})") from error

from gapo_kernels import reference
from gapo_kernels.integrations import DIAGNOSTIC_KEYS

pytestmark = pytest.mark.trainers

NUM_GENERATIONS = 4
PROMPTS = ["abc", "hello", "xyz", "the cat", "rl is", "gapo", "zz top", "q", "noisy", "reward"]


def char_tokenizer() -> PreTrainedTokenizerFast:
    chars = list("abcdefghijklmnopqrstuvwxyz ")
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, **{c: i + 4 for i, c in enumerate(chars)}}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    backend.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )


def tiny_model(tokenizer) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=64,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config)


class OutlierReward:
    """Length-based reward; every 5th completion an outlier (+/-40), every 7th (from the 4th)
    unscorable (None). Counting completions makes both certain whatever the model samples,
    and never leaves a group of 4 with fewer than 3 scorable completions."""

    __name__ = "outlier_reward"

    def __init__(self, with_missing: bool = True):
        self.calls = 0
        self.with_missing = with_missing

    def __call__(self, prompts, completions, completion_ids, **kwargs):
        rewards = []
        for ids in completion_ids:
            k = self.calls
            self.calls += 1
            if self.with_missing and k % 7 == 3:
                rewards.append(None)
                continue
            reward = len(ids) / 8.0
            if k % 5 == 0:
                reward += 40.0 if (k // 5) % 2 == 0 else -40.0
            rewards.append(reward)
        return rewards


def config_kwargs(tmp_path, **overrides):
    kwargs = dict(
        output_dir=str(tmp_path),
        per_device_train_batch_size=8,
        gradient_accumulation_steps=2,  # 2 micro-batches per generation: the batch is shuffled and split
        num_generations=NUM_GENERATIONS,
        max_completion_length=8,
        max_steps=2,
        learning_rate=1e-2,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        seed=0,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    kwargs.update(overrides)
    return kwargs


def recording(trainer_class):
    """A subclass that records, without changing anything, what the trainer computed and used."""

    class Recording(trainer_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.record = {"gathered": [], "advantages": [], "used": [], "losses": []}

        def _calculate_rewards(self, *args, **kwargs):
            rewards_per_func = super()._calculate_rewards(*args, **kwargs)
            self.record["gathered"].append(rewards_per_func.detach().clone())
            return rewards_per_func

        def _generate_and_score_completions(self, inputs):
            output = super()._generate_and_score_completions(inputs)
            self.record["advantages"].append(output["advantages"].detach().clone())
            return output

        def _compute_loss(self, model, inputs):
            self.record["used"].append(inputs["advantages"].detach().clone())
            loss = super()._compute_loss(model, inputs)
            self.record["losses"].append(float(loss.detach()))
            return loss

    return Recording


def train(trainer_class, args, reward):
    tokenizer = char_tokenizer()
    trainer = recording(trainer_class)(
        model=tiny_model(tokenizer),
        reward_funcs=reward,
        args=args,
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
        processing_class=tokenizer,
    )
    trainer.train()
    return trainer


def summed_rewards(rewards_per_func: torch.Tensor) -> np.ndarray:
    """TRL's sum over reward functions (weights 1), NaN where every function returned None."""
    values = rewards_per_func.double().numpy()
    unscorable = np.isnan(values).all(axis=1)
    summed = np.nansum(values, axis=1)
    summed[unscorable] = np.nan
    return summed


def group_offsets(n: int) -> np.ndarray:
    return np.arange(0, n + 1, NUM_GENERATIONS)


def test_gapo_trainer_trains_with_the_reference_advantages(tmp_path):
    args = GAPOConfig(**config_kwargs(tmp_path), gapo_tau=0.5)
    assert (args.gapo_baseline, args.gapo_scale, args.gapo_eps) == ("hdi_median", "rms", 1e-4)
    trainer = train(GAPOTrainer, args, OutlierReward())
    record = trainer.record

    assert len(record["gathered"]) == 2  # one generation per optimizer step
    assert len(record["advantages"]) == len(record["gathered"])  # every generation got its advantages
    assert len(record["used"]) == 4  # two micro-batches per generation
    all_rewards = np.concatenate([summed_rewards(g) for g in record["gathered"]])
    assert np.isnan(all_rewards).any(), "the run should include unscorable completions"
    assert (np.abs(all_rewards) > 30).any(), "the run should include outliers"

    for step, (gathered, advantages) in enumerate(zip(record["gathered"], record["advantages"])):
        rewards = summed_rewards(gathered)
        want = reference.advantage(
            rewards, group_offsets(rewards.size), tau=0.5, baseline="hdi_median", scale="rms", eps=1e-4
        )
        got = advantages.double().numpy()
        assert got.shape == want.shape == (16,)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(want).max()))
        assert np.all(got[np.isnan(rewards)] == 0), "unscorable completions get advantage 0"
        # what the loss consumed (shuffled, split in micro-batches) is exactly that batch
        used = torch.cat(record["used"][2 * step : 2 * step + 2]).double().numpy()
        np.testing.assert_array_equal(np.sort(used), np.sort(got))
        # and it is not GRPO's: with outliers the HDI median is far from the mean
        grouped = rewards.reshape(-1, NUM_GENERATIONS)
        grpo = (grouped - np.nanmean(grouped, 1, keepdims=True)) / (np.nanstd(grouped, 1, ddof=1, keepdims=True) + 1e-4)
        assert not np.allclose(np.nan_to_num(grpo.reshape(-1)), got, atol=1e-3)

    # the trainer exposes what its last generation used
    np.testing.assert_array_equal(trainer.gapo_rewards.double().numpy(), summed_rewards(record["gathered"][-1]))
    np.testing.assert_array_equal(trainer.gapo_advantages.numpy(), record["advantages"][-1].numpy())
    assert all(math.isfinite(loss) for loss in record["losses"])
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logged) == 2 and all(math.isfinite(entry["loss"]) for entry in logged)
    # diagnostics are logged with TRL's metrics, one generation per logged step
    for entry, gathered in zip(logged, record["gathered"]):
        for key in DIAGNOSTIC_KEYS:
            assert f"gapo/{key}" in entry, key
        rewards = summed_rewards(gathered)
        assert entry["gapo/num_missing_rewards"] == np.isnan(rewards).sum()
        assert entry["gapo/num_groups"] == rewards.size / NUM_GENERATIONS
        stats = reference.group_stats(rewards, group_offsets(rewards.size), tau=0.5)
        scorable = stats.count >= 2
        want = np.mean(np.abs(stats.baseline - stats.mean)[scorable])
        assert entry["gapo/abs_q_minus_mean"] == pytest.approx(want, rel=1e-5)


def test_mean_baseline_reproduces_trls_grpo(tmp_path):
    # Same seed, same model, same samples: GAPO with Q = mean, S = Bessel std, eps = 1e-4 is GRPO.
    reward = OutlierReward()
    grpo = train(GRPOTrainer, GRPOConfig(**config_kwargs(tmp_path / "grpo")), reward)
    reward = OutlierReward()
    gapo = train(GAPOTrainer, GAPOConfig(**config_kwargs(tmp_path / "gapo"), gapo_baseline="mean"), reward)
    # Both runs generated and scored the same number of batches (zip would hide a shortfall).
    assert len(grpo.record["gathered"]) == len(gapo.record["gathered"]) == 2
    assert len(grpo.record["advantages"]) == len(gapo.record["advantages"]) == 2
    for theirs_rewards, ours_rewards in zip(grpo.record["gathered"], gapo.record["gathered"]):
        np.testing.assert_array_equal(theirs_rewards.numpy(), ours_rewards.numpy())
    for theirs, ours in zip(grpo.record["advantages"], gapo.record["advantages"]):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-5)


def test_config_follows_scale_rewards_and_rejects_batch_normalisation(tmp_path):
    kw = dict(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    assert GAPOConfig(**kw).gapo_scale == "rms"
    assert GAPOConfig(**kw, scale_rewards="none").gapo_scale == "none"
    assert GAPOConfig(**kw, scale_rewards=False).gapo_scale == "none"
    assert GAPOConfig(**kw, scale_rewards="none", gapo_scale="std").gapo_scale == "std"
    with pytest.raises(ValueError, match="scale_rewards='batch'"):
        GAPOConfig(**kw, scale_rewards="batch")
    with pytest.raises(ValueError, match="sum_then_normalize"):
        GAPOConfig(**kw, multi_objective_aggregation="normalize_then_sum")
    with pytest.raises(ValueError, match="tau"):
        GAPOConfig(**kw, gapo_tau=1.5)
    with pytest.raises(ValueError, match="baseline"):
        GAPOConfig(**kw, gapo_baseline="trimmed")
    with pytest.raises(ValueError, match="gapo_scale"):
        GAPOConfig(**kw, gapo_scale="mad")


def test_trainer_needs_a_gapo_config(tmp_path):
    tokenizer = char_tokenizer()
    with pytest.raises(TypeError, match="GAPOConfig"):
        GAPOTrainer(
            model=tiny_model(tokenizer),
            reward_funcs=OutlierReward(),
            args=GRPOConfig(**config_kwargs(tmp_path)),
            train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
            processing_class=tokenizer,
        )
