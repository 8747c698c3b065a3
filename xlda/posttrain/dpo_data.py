"""DPO data: JSONL ``prompt`` / ``chosen`` / ``rejected``, each a string or a message list (TRL's
standard and conversational formats). A string prompt is one user turn; a string response is one
assistant turn; a message-list prompt may hold earlier turns (optional system first).

Each pair is two CONTRACTS samples of S tokens (prompt + chosen, prompt + rejected), one
document each plus padding, rendered with the chat template (xlda.posttrain.chat); the
``loss_mask`` marks the response's tokens (assistant tokens of the turns after the prompt, with
the end-of-turn text, as SFT), over which log-probs are summed. ``dataset[i]`` stacks them as
``[2, S]`` (chosen row first) with ``ref_logps`` ``[2]`` (the frozen start model's, from the
cache) and ``index``. A pair with either side over S tokens is dropped (``over_length``).
"""
from __future__ import annotations

import numpy as np
import torch

from xlda.posttrain.chat import ChatRenderer, RecordError, check_messages
from xlda.posttrain.records import BadRecords, read_records
from xlda.posttrain.sft_data import Conversation, build_sample
from xlda.training.batches import SAMPLE_KEYS, BatchCollator, collate


def _messages(value, role: str, key: str) -> list:
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    if isinstance(value, list):
        return value
    raise RecordError("bad_pair", f"'{key}' must be a string or a list of messages")


def tokenize_pairs(paths, renderer: ChatRenderer, seq_length: int, bad: BadRecords) -> list:
    def convert(rec):
        missing = [k for k in ("prompt", "chosen", "rejected") if k not in rec]
        if missing:
            raise RecordError("bad_pair", f"missing key(s) {missing}")
        prompt = _messages(rec["prompt"], "user", "prompt")
        sides = []
        for key in ("chosen", "rejected"):
            msgs = check_messages(prompt + _messages(rec[key], "assistant", key))
            r = renderer.render(msgs, first=len(prompt))
            if len(r.ids) > seq_length:
                raise RecordError("over_length",
                                  f"prompt + {key}: {len(r.ids)} tokens > --seq-length {seq_length}")
            sides.append(Conversation(np.asarray(r.ids, np.int64), np.asarray(r.assistant, np.int8)))
        if np.array_equal(sides[0].ids, sides[1].ids):
            raise RecordError("same_response", "chosen and rejected render to the same tokens")
        return tuple(sides)

    return list(read_records(paths, convert, bad))


class PairDataset(torch.utils.data.Dataset):
    languages = ("chat",)

    def __init__(self, pairs: list, seq_length: int, pad_id: int):
        if not pairs:
            raise ValueError("DPO data: no usable pair (all records bad or no records)")
        self.pairs, self.seq_length, self.pad_id = pairs, seq_length, pad_id
        self.ref_logps = None  # [N, 2] float64, set by DPOTask.ready (the reference pass)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict:
        rows = [build_sample([side], self.seq_length, self.pad_id) for side in self.pairs[i]]
        out = {k: torch.stack([r[k] for r in rows]) for k in SAMPLE_KEYS}
        ref = self.ref_logps[i] if self.ref_logps is not None else np.zeros(2)
        out["ref_logps"] = torch.as_tensor(ref, dtype=torch.float64)
        out["index"] = torch.tensor(i, dtype=torch.int64)
        return out


class PairCollator(BatchCollator):
    """Micro-batch of B pairs -> ``[2B, S]`` rows (chosen_0, rejected_0, chosen_1, ...)."""

    def __call__(self, samples: list) -> dict:
        batch = collate(samples)
        for k in SAMPLE_KEYS:
            batch[k] = batch[k].flatten(0, 1)
        return self.finish(batch)
