"""The evaluation forward pass shared by the held-out metrics and the probe: one model, one mask,
batches moved to the model's device, per-token losses in float64, the model back in train mode
afterwards."""
from __future__ import annotations

from typing import Iterable, Iterator

import torch


@torch.no_grad()
def per_token_losses(model, batches: Iterable[dict], mode: str) -> Iterator[tuple[dict, torch.Tensor]]:
    """``(batch on the model's device, per-token loss [b, s] as float64)`` for each batch, under
    attention mask ``mode``."""
    from xlda.attention.params import MaskParams

    device = next(model.parameters()).device
    model.eval()
    try:
        for b in batches:
            b = {k: v.to(device) for k, v in b.items()}
            loss = model(b["tokens"], b["position_ids"],
                         MaskParams(b["doc_ids"], b["lang_ids"], mode),
                         labels=b["labels"], loss_mask=b["loss_mask"])
            yield b, loss.double()
    finally:
        model.train()
