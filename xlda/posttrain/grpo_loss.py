"""The GRPO objective (Shao et al. 2024) as TRL's GRPOTrainer computes it (trl 1.16,
``_generate_and_score_completions`` for the advantages, ``_compute_loss`` for the loss), so that
a run here and a TRL run on the same rollouts optimise the same number.

* Group-relative advantages: the completions of one prompt form a group of ``num_generations``
  consecutive rows; each reward minus its group's mean, optionally divided by the group's (or the
  whole batch's) unbiased std + 1e-4. Unscorable completions (NaN reward) are left out of the
  group statistics and get advantage 0, as in TRL.
* The clipped surrogate with DAPO's clip-higher (Yu et al. 2025): the ratio is clipped to
  ``[1 - epsilon_low, 1 + epsilon_high]`` with a wider upper bound, per token.
* Token-level normalisation (DAPO, TRL ``loss_type="dapo"``): the masked token sum divided by the
  number of completion tokens the whole optimizer step covers, over all data-parallel ranks and
  micro-batches, so long completions are not down-weighted per token; TRL's original
  ``loss_type="grpo"`` (mean of per-sequence token means) is here too.
* An optional KL penalty to a reference policy, the k3 estimator ``exp(r - p) - (r - p) - 1``.

Only torch; every function works on plain tensors so it can be checked against TRL directly.
"""
from __future__ import annotations

import torch

SCALES = ("group", "batch", "none")
STD_EPS = 1e-4  # TRL: advantages / (std_rewards + 1e-4)


def check_grpo_args(epsilon_low: float | None = None, epsilon_high: float | None = None,
                    beta: float | None = None, num_generations: int | None = None) -> None:
    """ValueError, naming the command-line flag, for an out-of-range GRPO hyper-parameter
    (arguments left None are not checked)."""
    if epsilon_low is not None and not 0.0 <= epsilon_low < 1.0:
        raise ValueError(f"--epsilon must be in [0, 1) (the ratio's lower clip is 1 - epsilon), "
                         f"got {epsilon_low}")
    if epsilon_high is not None and not epsilon_high >= 0.0:
        raise ValueError(f"--epsilon-high must be >= 0, got {epsilon_high}")
    if beta is not None and not beta >= 0.0:
        raise ValueError(f"--beta (the KL coefficient) must be >= 0, got {beta}")
    if num_generations is not None and (isinstance(num_generations, bool)
                                        or int(num_generations) != num_generations
                                        or num_generations < 1):
        raise ValueError(f"--num-generations must be an integer >= 1, got {num_generations}")


def nanstd(x: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Unbiased std over the non-NaN entries (TRL's ``trl.trainer.utils.nanstd``): NaN where
    fewer than two entries are not NaN."""
    mean = torch.nanmean(x, dim=dim, keepdim=True)
    var = torch.nanmean((x - mean) ** 2, dim=dim, keepdim=True)
    count = (~torch.isnan(x)).sum(dim=dim, keepdim=True).to(var.dtype)
    # Bessel's correction in x's dtype (TRL's count / (count - 1) is in the default dtype)
    corr = torch.where(count > 1, count / (count - 1), torch.full_like(var, float("nan")))
    std = torch.sqrt(var * corr)
    return std.squeeze() if dim is None else std.squeeze(dim)


def group_advantages(rewards: torch.Tensor, num_generations: int,
                     scale: str = "group") -> tuple[torch.Tensor, torch.Tensor]:
    """``(advantages [N], zero_std [N] bool)`` for ``rewards [N]`` ordered as consecutive groups
    of ``num_generations`` completions of one prompt.

    advantage = r - mean(group), divided by ``std(group) + 1e-4`` (scale "group"), by
    ``std(batch) + 1e-4`` (scale "batch"; the mean stays the group's, as in TRL) or not at all
    ("none"). NaN rewards are excluded from means and stds and get advantage 0; a group with
    fewer than two scored rewards has an undefined (NaN) std, so its advantages are 0 too.
    ``zero_std``: whether the row's *group* std is close to 0 (TRL's ``is_std_zero``, which with
    scale "batch" TRL takes of the batch std instead; a NaN std is not zero). With
    ``num_generations == 1`` the group std is taken as 0, as TRL does.
    """
    check_grpo_args(num_generations=num_generations)
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    if rewards.dim() != 1 or rewards.numel() % num_generations:
        raise ValueError(f"rewards must be 1-D with a multiple of --num-generations "
                         f"{num_generations} entries, got shape {tuple(rewards.shape)}")
    grouped = rewards.view(-1, num_generations)
    mean = torch.nanmean(grouped, dim=1).repeat_interleave(num_generations)
    if num_generations > 1:
        group_std = nanstd(grouped, dim=1).repeat_interleave(num_generations)
    else:
        group_std = torch.zeros_like(rewards)
    adv = rewards - mean
    if scale == "group":
        adv = adv / (group_std + STD_EPS)
    elif scale == "batch":
        batch_std = nanstd(rewards) if rewards.numel() > 1 else torch.zeros((), dtype=rewards.dtype)
        adv = adv / (batch_std + STD_EPS)
    zero_std = torch.isclose(group_std, torch.zeros_like(group_std))
    return torch.nan_to_num(adv, nan=0.0), zero_std


def kl_k3(logps: torch.Tensor, ref_logps: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(policy || reference): ``exp(ref - logp) - (ref - logp) - 1``
    (>= 0, TRL's ``per_token_kl``)."""
    d = ref_logps - logps
    return torch.exp(d) - d - 1


def grpo_token_loss(logps: torch.Tensor, old_logps: torch.Tensor | None,
                    advantages: torch.Tensor, mask: torch.Tensor, epsilon_low: float = 0.2,
                    epsilon_high: float = 0.28, beta: float = 0.0,
                    ref_logps: torch.Tensor | None = None) -> dict:
    """The per-token clipped GRPO loss. ``logps``/``old_logps``/``ref_logps``/``mask`` are
    ``[B, T]`` completion-token log-probs and loss mask, ``advantages`` is ``[B]``;
    ``old_logps=None`` means on-policy (``logps.detach()``: ratio 1, TRL's shortcut).

    Returns ``per_token_loss`` = ``-min(ratio * A, clip(ratio, 1 - eps_low, 1 + eps_high) * A)
    + beta * kl``, ``kl`` (k3; zeros when beta == 0), ``ratio``, and the bool ``low_clipped``
    (ratio < 1 - eps_low and A < 0) / ``high_clipped`` (ratio > 1 + eps_high and A > 0) masks,
    all ``[B, T]``. The mask is not applied here (reduce with dapo_loss or
    grpo_sequence_mean_loss); it is taken only to check shapes.
    """
    check_grpo_args(epsilon_low=epsilon_low, epsilon_high=epsilon_high, beta=beta)
    if beta > 0 and ref_logps is None:
        raise ValueError(f"--beta {beta} > 0 needs the reference model's log-probs (ref_logps)")
    if logps.dim() != 2 or mask.shape != logps.shape or advantages.shape != logps.shape[:1]:
        raise ValueError(f"want logps and mask [B, T] and advantages [B], got "
                         f"{tuple(logps.shape)}, {tuple(mask.shape)}, {tuple(advantages.shape)}")
    old = logps.detach() if old_logps is None else old_logps
    a = advantages.unsqueeze(1)
    keep = mask > 0  # positions the mask drops get ratio 1 and KL 0: no exp(inf) * 0 = NaN
    ratio = torch.exp(torch.where(keep, logps - old, torch.zeros_like(logps)))
    clipped = torch.clamp(ratio, 1 - epsilon_low, 1 + epsilon_high)
    loss = -torch.min(ratio * a, clipped * a)
    if beta != 0.0:
        kl = kl_k3(logps, torch.where(keep, ref_logps, logps))
        loss = loss + beta * kl
    else:
        kl = torch.zeros_like(logps)
    return {"per_token_loss": loss, "kl": kl, "ratio": ratio,
            "low_clipped": (ratio < 1 - epsilon_low) & (a < 0),
            "high_clipped": (ratio > 1 + epsilon_high) & (a > 0)}


def dapo_loss(per_token_loss: torch.Tensor, mask: torch.Tensor, num_tokens) -> torch.Tensor:
    """Token-level normalisation: ``sum(per_token_loss * mask) / num_tokens``, where
    ``num_tokens`` is the number of loss tokens the whole optimizer step covers, summed over
    every data-parallel rank and micro-batch (TRL ``loss_type="dapo"``). With gradients summed
    (not averaged) over ranks and micro-batches, the step then minimises the mean over all its
    tokens. ``num_tokens`` is clamped to >= 1, as TRL does."""
    if not torch.is_tensor(num_tokens):
        num_tokens = torch.tensor(float(num_tokens), dtype=per_token_loss.dtype)
    return (per_token_loss * mask).sum() / num_tokens.to(per_token_loss).clamp(min=1.0)


def grpo_sequence_mean_loss(per_token_loss: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """TRL ``loss_type="grpo"``: the mean over sequences of each sequence's masked token mean
    (a sequence with no loss tokens counts as 0)."""
    return ((per_token_loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``sum(x * mask) / sum(mask)`` (how TRL logs kl and the clip ratios; bool x counts as
    0/1), 0 where there are no tokens."""
    x = x if x.is_floating_point() else x.double()
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp(min=1)
