"""The sigmoid DPO loss (Rafailov et al. 2023; TRL's ``loss_type="sigmoid"`` without label
smoothing) on summed response log-probs, and the rewards TRL logs."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def dpo_sigmoid(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor,
                ref_chosen: torch.Tensor, ref_rejected: torch.Tensor, beta: float) -> dict:
    """Per-pair ``loss = -log sigmoid(beta * ((pc - rc) - (pr - rr)))``; rewards
    ``beta * (policy - ref)`` (detached), margin = chosen - rejected reward, accuracy = margin > 0.
    All inputs are ``[P]`` sums of log-probs over each response's tokens."""
    chosen_lr = policy_chosen - ref_chosen
    rejected_lr = policy_rejected - ref_rejected
    losses = -F.logsigmoid(beta * (chosen_lr - rejected_lr))
    rc, rr = beta * chosen_lr.detach(), beta * rejected_lr.detach()
    return {"losses": losses, "chosen_rewards": rc, "rejected_rewards": rr,
            "margins": rc - rr, "accuracies": (rc > rr).float()}
