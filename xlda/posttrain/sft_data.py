"""SFT data: ``messages`` conversations rendered (xlda.posttrain.chat) and packed whole into
S-token samples with the ``document`` mask.

Layout of a sample (CONTRACTS 'Samples'): conversations are laid end to end in file order (next
fit: a conversation that does not fit in what is left starts the next sample); each one is a
document (its own doc id, so no attention crosses conversations); the tail is padding (one more
doc id, loss 0). ``labels[i] = tokens[i+1]`` inside a conversation; the label of a
conversation's last token would be the next conversation's first one, so its loss mask is 0 --
exactly what running the conversation alone gives. ``loss_mask[i] = 1`` iff ``labels[i]`` is an
assistant token. ``lang_ids`` are all 0 (one language bucket, "chat"). Position ids run 0..S-1
over the whole sample: the trainer refuses ``--reset-position-ids`` with RoPE (it has no effect
there), and RoPE attention depends on relative positions only, so inside its document a
conversation computes what it computes alone; with learned absolute positions
``--reset-position-ids`` restarts them at 0 per conversation. A conversation longer than S is dropped and
counted (``over_length``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from xlda.posttrain.chat import ChatRenderer, RecordError, check_messages
from xlda.posttrain.records import BadRecords, read_records

LANGUAGES = ("chat",)


@dataclass
class Conversation:
    ids: np.ndarray  # int64
    assistant: np.ndarray  # int8, 1 on assistant tokens


def tokenize_conversations(paths, renderer: ChatRenderer, seq_length: int, bad: BadRecords) -> list:
    def convert(rec):
        if "messages" not in rec:
            raise RecordError("no_messages", "record has no 'messages' key")
        r = renderer.render(check_messages(rec["messages"]))
        if len(r.ids) > seq_length:
            raise RecordError("over_length", f"{len(r.ids)} tokens > --seq-length {seq_length}")
        if not any(r.assistant[1:]):
            raise RecordError("empty_assistant", "no assistant token after rendering")
        return Conversation(np.asarray(r.ids, np.int64), np.asarray(r.assistant, np.int8))

    return list(read_records(paths, convert, bad))


def pack(lengths: list, seq_length: int) -> list:
    """Next-fit packing in order: a list of samples, each a list of conversation indices."""
    bins, cur, used = [], [], 0
    for i, n in enumerate(lengths):
        if used + n > seq_length and cur:
            bins.append(cur)
            cur, used = [], 0
        cur.append(i)
        used += n
    if cur:
        bins.append(cur)
    return bins


def build_sample(convs: list, seq_length: int, pad_id: int, reset_positions: bool = False) -> dict:
    S = seq_length
    position_ids = np.arange(S, dtype=np.int64)
    tokens = np.full(S, pad_id, np.int64)
    labels = np.full(S, pad_id, np.int64)
    loss_mask = np.zeros(S, np.float32)
    doc_ids = np.zeros(S, np.int32)
    pos = 0
    for d, c in enumerate(convs):
        n = len(c.ids)
        tokens[pos:pos + n] = c.ids
        labels[pos:pos + n - 1] = c.ids[1:]
        loss_mask[pos:pos + n - 1] = c.assistant[1:]
        doc_ids[pos:pos + n] = d
        if reset_positions:
            position_ids[pos:pos + n] = np.arange(n)
        pos += n
    doc_ids[pos:] = len(convs)  # padding: its own document, no loss
    return {"tokens": torch.from_numpy(tokens), "labels": torch.from_numpy(labels),
            "loss_mask": torch.from_numpy(loss_mask),
            "position_ids": torch.from_numpy(position_ids),
            "doc_ids": torch.from_numpy(doc_ids),
            "lang_ids": torch.zeros(S, dtype=torch.int32)}


class SFTDataset(torch.utils.data.Dataset):
    """Packed conversations; ``dataset[i]`` is a CONTRACTS sample dict."""

    languages = LANGUAGES

    def __init__(self, conversations: list, seq_length: int, pad_id: int,
                 reset_positions: bool = False):
        if not conversations:
            raise ValueError("SFT data: no usable conversation (all records bad or no records)")
        self.convs, self.seq_length, self.pad_id = conversations, seq_length, pad_id
        self.reset_positions = reset_positions
        self.bins = pack([len(c.ids) for c in conversations], seq_length)

    def __len__(self) -> int:
        return len(self.bins)

    def __getitem__(self, i: int) -> dict:
        return build_sample([self.convs[j] for j in self.bins[i]], self.seq_length, self.pad_id,
                            self.reset_positions)

    def stats(self) -> dict:
        toks = sum(len(c.ids) for c in self.convs)
        return {"conversations": len(self.convs), "samples": len(self), "tokens": toks,
                "fill": toks / (len(self) * self.seq_length),
                "assistant_tokens": int(sum(c.assistant[1:].sum() for c in self.convs))}
