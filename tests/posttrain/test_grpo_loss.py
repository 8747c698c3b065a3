"""GRPO loss: hand-computed advantages and clipped ratios, parity with TRL's GRPOTrainer (the
advantages of ``_generate_and_score_completions`` and the loss and clip metrics of
``_compute_loss``, both run on stand-ins), and the on-policy gradient -A * mask / num_tokens."""
import math
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from xlda.posttrain.grpo_loss import (dapo_loss, group_advantages, grpo_sequence_mean_loss,
                                      grpo_token_loss, masked_mean)

F64 = torch.float64


def _acc():
    """accelerate.Accelerator for one process: gather / reduce are the identity."""
    return SimpleNamespace(device=torch.device("cpu"), process_index=0, num_processes=1,
                           gather=lambda t: t, gather_for_metrics=lambda t: t,
                           reduce=lambda t, reduction="sum": t, sync_gradients=True)


def _trl_advantages(rewards, G, scale, monkeypatch):
    """TRL's own GRPOTrainer._generate_and_score_completions (trl 1.16) on a stand-in `self`:
    _generate returns fixed token ids, _calculate_rewards returns ``rewards`` as the single reward
    function's column (NaN = unscorable), no reference model (beta 0), no vLLM, one process.
    The advantages and frac_reward_zero_std come from TRL's inline block ("Calculate rewards for
    each reward function" ... ``advantages = torch.nan_to_num(advantages, nan=0.0)``, around
    grpo_trainer.py lines 2753-2810, with the sum_then_normalize aggregation)."""
    trl = pytest.importorskip("trl")
    import trl.trainer.grpo_trainer as gt

    monkeypatch.setattr(gt, "gather_object", lambda x: x)  # one process, no PartialState
    N = len(rewards)
    comp = [[5] * (1 + i % 3) for i in range(N)]
    me = SimpleNamespace(
        accelerator=_acc(), model=SimpleNamespace(training=True, is_gradient_checkpointing=False),
        environment_factories=None, tools=None, environments=None,
        _generate=lambda prompts: ([[1, 2]] * N, comp, None, ["c"] * N, None, None, None, None),
        _tokenizer=SimpleNamespace(pad_token_id=0), pad_to_multiple_of=None,
        mask_truncated_completions=False, num_iterations=1, use_vllm=False, beta=0.0,
        vllm_importance_sampling_correction=False,
        args=SimpleNamespace(per_device_train_batch_size=N, steps_per_generation=1,
                             gradient_accumulation_steps=1, gradient_checkpointing_kwargs=None),
        _calculate_rewards=lambda inputs, prompts, completions, ids: rewards[:, None].clone(),
        num_generations=G, multi_objective_aggregation="sum_then_normalize",
        reward_weights=torch.ones(1, dtype=rewards.dtype), scale_rewards=scale,
        reward_func_names=["r"],
        _metrics=defaultdict(lambda: defaultdict(list)),
        _logs=defaultdict(list, rewards=defaultdict(list), extra=defaultdict(list)),
        _pending_extra_logs={}, _pending_metrics={}, log_multimodal=False)
    # TRL's nanstd takes Bessel's count / (count - 1) in the default dtype: run it in the
    # rewards' dtype so float64 rewards get a float64 correction (ours is in the rewards' dtype)
    default = torch.get_default_dtype()
    torch.set_default_dtype(rewards.dtype)
    try:
        out = trl.GRPOTrainer._generate_and_score_completions(me, [{"prompt": "p"}] * N)
    finally:
        torch.set_default_dtype(default)
    return out, me._metrics["train"]


def _trl_loss(logps, old, ref, adv, mask, loss_type, beta, eps_low=0.2, eps_high=0.28):
    """TRL's GRPOTrainer._compute_loss (trl 1.16; token-level ratios, no entropy masking, no
    vLLM correction, no two-sided delta) on a stand-in `self` whose
    _get_per_token_logps_and_entropies returns ``logps``: one process, one accumulation step,
    steps_per_generation 1, so the dapo normalizer num_items_in_batch / num_processes *
    accumulation / steps_per_generation is just the tokens in ``mask``."""
    trl = pytest.importorskip("trl")
    B, T = logps.shape
    me = SimpleNamespace(
        _get_per_token_logps_and_entropies=lambda *a, **k: (logps, torch.zeros_like(logps), None),
        aux_loss_enabled=False, top_entropy_quantile=1.0, off_policy_mask_threshold=None,
        importance_sampling_level="token", beta=beta, loss_type=loss_type, epsilon_low=eps_low,
        epsilon_high=eps_high, use_vllm=False, vllm_importance_sampling_correction=False,
        args=SimpleNamespace(delta=None, use_bias_correction_kl=False, steps_per_generation=1),
        model=SimpleNamespace(training=True), current_gradient_accumulation_steps=1,
        accelerator=_acc(), _entropy_bonus_enabled=False,
        _metrics=defaultdict(lambda: defaultdict(list)))
    inputs = {"prompt_ids": torch.ones(B, 2, dtype=torch.long),
              "prompt_mask": torch.ones(B, 2, dtype=torch.long),
              "completion_ids": torch.ones(B, T, dtype=torch.long), "completion_mask": mask,
              "advantages": adv, "old_per_token_logps": old, "ref_per_token_logps": ref,
              # _generate_and_score_completions: accelerator.gather(loss_mask.sum()).sum()
              "num_items_in_batch": mask.sum()}
    loss = trl.GRPOTrainer._compute_loss(me, me._get_per_token_logps_and_entropies, inputs)
    return loss, me._metrics["train"]


# --- hand-built cases --------------------------------------------------------------------------

def test_group_advantages_by_hand():
    adv, zero = group_advantages(torch.tensor([1., 0, 0, 1, 1, 1, 1, 1], dtype=F64), 4)
    std = math.sqrt(1 / 3)  # unbiased std of [1, 0, 0, 1]: sum sq dev 4 * 0.25 = 1, / 3
    assert std == pytest.approx(0.5773502691896257)
    a = 0.5 / (std + 1e-4)
    torch.testing.assert_close(adv, torch.tensor([a, -a, -a, a, 0, 0, 0, 0], dtype=F64),
                               rtol=0, atol=1e-15)
    assert zero.tolist() == [False] * 4 + [True] * 4
    # scale "none": just r - mean; "batch": the group mean over the batch std
    none, _ = group_advantages(torch.tensor([1., 0, 0, 1, 1, 1, 1, 1], dtype=F64), 4, "none")
    assert none.tolist() == [0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0]
    batch, _ = group_advantages(torch.tensor([1., 0, 0, 1, 1, 1, 1, 1], dtype=F64), 4, "batch")
    bstd = torch.tensor([1., 0, 0, 1, 1, 1, 1, 1], dtype=F64).std().item()
    torch.testing.assert_close(batch, none / (bstd + 1e-4), rtol=0, atol=1e-15)


def test_nan_reward_is_excluded_and_gets_zero():
    adv, zero = group_advantages(torch.tensor([1., math.nan, 0, 0], dtype=F64), 4, "none")
    m = 1 / 3  # nanmean over [1, 0, 0]
    torch.testing.assert_close(adv, torch.tensor([1 - m, 0, -m, -m], dtype=F64))
    adv, zero = group_advantages(torch.tensor([1., math.nan, 0, 0], dtype=F64), 4)
    std = math.sqrt(((1 - m) ** 2 + 2 * m * m) / 2)  # unbiased over the 3 scored rewards
    torch.testing.assert_close(adv, torch.tensor([1 - m, 0, -m, -m], dtype=F64) / (std + 1e-4))
    assert not zero.any()
    # a group with a single scored reward has no std: advantages 0 (TRL: NaN -> 0)
    adv, zero = group_advantages(torch.tensor([2., math.nan, math.nan, 5.], dtype=F64), 2)
    assert adv.tolist() == [0.0, 0.0, 0.0, 0.0] and zero.tolist() == [False] * 4


def test_group_advantages_validation():
    with pytest.raises(ValueError, match="--num-generations"):
        group_advantages(torch.zeros(6), 4)
    with pytest.raises(ValueError, match="--num-generations"):
        group_advantages(torch.zeros(6), 0)
    with pytest.raises(ValueError, match="scale"):
        group_advantages(torch.zeros(4), 2, "rank")
    one, zero = group_advantages(torch.tensor([3., 4.]), 1)  # G=1: std taken as 0, as TRL
    assert one.tolist() == [0.0, 0.0] and zero.all()


def test_clipped_ratio_by_hand():
    old = torch.zeros(2, 1, dtype=F64)
    logps = torch.tensor([[math.log(1.5)], [math.log(0.5)]], dtype=F64)
    out = grpo_token_loss(logps, old, torch.tensor([1.0, -1.0], dtype=F64), torch.ones(2, 1),
                          epsilon_low=0.2, epsilon_high=0.28)
    # A=+1, ratio 1.5: -min(1.5, 1.28) = -1.28; A=-1, ratio 0.5: -min(-0.5, -0.8) = 0.8
    torch.testing.assert_close(out["per_token_loss"], torch.tensor([[-1.28], [0.8]], dtype=F64))
    torch.testing.assert_close(out["ratio"], torch.tensor([[1.5], [0.5]], dtype=F64))
    assert out["high_clipped"].tolist() == [[True], [False]]
    assert out["low_clipped"].tolist() == [[False], [True]]
    assert out["kl"].eq(0).all()
    # unclipped side: A=-1 with ratio 1.5 -> -min(-1.5, -1.28) = 1.5, and no flag
    out = grpo_token_loss(logps[:1], old[:1], torch.tensor([-1.0], dtype=F64), torch.ones(1, 1))
    assert out["per_token_loss"].item() == pytest.approx(1.5)
    assert not out["high_clipped"].any() and not out["low_clipped"].any()
    # the k3 KL: ref - logp = 1 -> e - 2
    out = grpo_token_loss(torch.zeros(1, 1), None, torch.zeros(1), torch.ones(1, 1), beta=0.5,
                          ref_logps=torch.ones(1, 1))
    assert out["kl"].item() == pytest.approx(math.e - 2)
    assert out["per_token_loss"].item() == pytest.approx(0.5 * (math.e - 2))


def test_loss_validation():
    x, a, m = torch.zeros(2, 3), torch.zeros(2), torch.ones(2, 3)
    for kw, flag in [({"epsilon_low": 1.0}, "--epsilon"), ({"epsilon_low": -0.1}, "--epsilon"),
                     ({"epsilon_high": -0.1}, "--epsilon-high"), ({"beta": -1.0}, "--beta"),
                     ({"beta": 0.1}, "--beta")]:  # beta > 0 without ref_logps
        with pytest.raises(ValueError, match=flag):
            grpo_token_loss(x, None, a, m, **kw)
    with pytest.raises(ValueError, match=r"\[B\]"):
        grpo_token_loss(x, None, torch.zeros(3), m)


def test_reductions_by_hand():
    ptl = torch.tensor([[1., 2, 3], [4, 5, 6]], dtype=F64)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=F64)
    assert dapo_loss(ptl, mask, 3).item() == pytest.approx(7 / 3)
    assert dapo_loss(ptl, mask, torch.tensor(10)).item() == pytest.approx(0.7)  # global count
    assert grpo_sequence_mean_loss(ptl, mask).item() == pytest.approx((1.5 + 4) / 2)
    assert masked_mean(ptl > 1.5, mask).item() == pytest.approx(2 / 3)


# --- TRL parity ---------------------------------------------------------------------------------

def _rollouts(seed=0, B=8, T=7, G=4):
    g = torch.Generator().manual_seed(seed)
    logps = -3 * torch.rand(B, T, generator=g, dtype=F64)
    old = logps + 0.4 * torch.randn(B, T, generator=g, dtype=F64)  # ratios well outside the clip
    ref = logps + 0.3 * torch.randn(B, T, generator=g, dtype=F64)
    lengths = torch.tensor([7, 3, 5, 1, 6, 2, 7, 4])
    mask = (torch.arange(T)[None] < lengths[:, None]).long()
    rewards = torch.randint(0, 3, (B,), generator=g).to(F64)
    rewards[5] = math.nan
    adv, _ = group_advantages(rewards, G)
    return logps, old, ref, adv, mask


@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_dapo_loss_and_clip_metrics_equal_trl(beta):
    logps, old, ref, adv, mask = _rollouts()
    trl_loss, metrics = _trl_loss(logps, old, ref, adv, mask, "dapo", beta)
    out = grpo_token_loss(logps, old, adv, mask, 0.2, 0.28, beta, ref if beta else None)
    ours = dapo_loss(out["per_token_loss"], mask, mask.sum())
    torch.testing.assert_close(ours, trl_loss, rtol=1e-12, atol=1e-12)
    low, high = masked_mean(out["low_clipped"], mask), masked_mean(out["high_clipped"], mask)
    region = masked_mean(out["low_clipped"] | out["high_clipped"], mask)
    assert 0 < low < 1 and 0 < high < 1  # the case exercises both clips
    for name, v in [("low_mean", low), ("high_mean", high), ("region_mean", region)]:
        # TRL logs these from float32 flags (is_low_clipped.float()): equal to our float64
        # fraction to float32 rounding, and exactly equal when ours is taken in float32 too
        assert v.item() == pytest.approx(metrics[f"clip_ratio/{name}"][0], rel=1e-7), name
    for name, flag in [("low_mean", out["low_clipped"]), ("high_mean", out["high_clipped"])]:
        assert masked_mean(flag.float(), mask).item() == metrics[f"clip_ratio/{name}"][0], name
    if beta:
        assert masked_mean(out["kl"], mask).item() == pytest.approx(metrics["kl"][0], abs=1e-12)


@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_grpo_sequence_mean_loss_equals_trl(beta):
    logps, old, ref, adv, mask = _rollouts(seed=1)
    trl_loss, _ = _trl_loss(logps, old, ref, adv, mask, "grpo", beta, eps_high=0.2)
    out = grpo_token_loss(logps, old, adv, mask, 0.2, 0.2, beta, ref if beta else None)
    torch.testing.assert_close(grpo_sequence_mean_loss(out["per_token_loss"], mask), trl_loss,
                               rtol=1e-12, atol=1e-12)


def test_on_policy_loss_equals_trl():
    logps, _, _, adv, mask = _rollouts(seed=2)
    trl_loss, _ = _trl_loss(logps, None, None, adv, mask, "dapo", 0.0)
    out = grpo_token_loss(logps, None, adv, mask)
    torch.testing.assert_close(dapo_loss(out["per_token_loss"], mask, mask.sum()), trl_loss,
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [F64, torch.float32])
@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_advantages_equal_trl(scale, dtype, monkeypatch):
    rewards = torch.tensor([1., 0, 2, 4, 3, 3, 3, 3, 0.5, math.nan, 2, 1, math.nan, 4, math.nan,
                            math.nan], dtype=dtype)
    out, metrics = _trl_advantages(rewards, 4, scale, monkeypatch)
    adv, zero = group_advantages(rewards, 4, scale)
    assert out["advantages"].dtype == dtype
    tol = 1e-12 if dtype == F64 else 0.0  # float32 (what a run feeds): bit-identical
    torch.testing.assert_close(adv, out["advantages"], rtol=tol, atol=tol)
    assert adv[[9, 12, 13, 14, 15]].eq(0).all() and adv[:4].ne(0).all()
    if scale != "batch":  # with "batch" TRL's is_std_zero is of the batch std, ours the group's
        assert zero.double().mean().item() == pytest.approx(metrics["frac_reward_zero_std"][0])
    assert zero.tolist() == [False] * 4 + [True] * 4 + [False] * 8
    # the dapo normalizer TRL hands to _compute_loss: every completion token of the batch
    assert out["num_items_in_batch"].item() == out["completion_mask"].sum().item()


# --- properties ---------------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.integers(1, 5), st.integers(0, 2 ** 31 - 1))
def test_advantages_sum_to_zero_and_on_policy_gradient(groups, G, seed):
    g = torch.Generator().manual_seed(seed)
    rewards = torch.randn(groups * G, generator=g, dtype=F64)
    adv, _ = group_advantages(rewards, G, "none")
    assert adv.view(groups, G).sum(1).abs().max().item() < 1e-12
    # ratio 1 (old = None): d loss / d logps = -A * mask / num_tokens, whatever eps and beta 0
    B, T = groups * G, 5
    mask = (torch.rand(B, T, generator=g) < 0.7).to(F64)
    num_tokens = mask.sum() + 3  # the world-wide count may exceed this rank's
    logps = (-2 * torch.rand(B, T, generator=g, dtype=F64)).requires_grad_()
    out = grpo_token_loss(logps, None, adv, mask, epsilon_low=0.1, epsilon_high=0.0)
    dapo_loss(out["per_token_loss"], mask, num_tokens).backward()
    torch.testing.assert_close(logps.grad, -adv[:, None] * mask / num_tokens, rtol=0, atol=1e-15)
    assert out["ratio"].eq(1).all() and not out["low_clipped"].any()
