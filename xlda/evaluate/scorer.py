"""Scoring token sequences with the project's own model, at any TP/PP/DP layout.

``Scorer`` holds a Trainer set up with ``ScoringTask`` (a checkpoint's weights, no optimizer)
and answers what lm-eval asks of a causal LM:

- ``loglikelihood(pairs)``: for each (context ids, continuation ids), the summed log-prob of
  the continuation and whether greedy decoding would have produced it;
- ``greedy(contexts, max_new_tokens, stop)``: greedy continuations.

Every pass is ``Trainer.forward_only``: megatron-core's schedule runs the pipeline stages, the
logits stay sharded over the tensor-parallel vocabulary (the reductions below are collectives
over the TP group, nothing gathers a ``[B, S, V]`` tensor) and samples are sharded over DP and
gathered back, so every rank gets every answer.

Sequences are scored one document each (doc 0, language 0): under every mask mode that is
plain causal attention. Padded vocabulary rows (Megatron's ``make_vocab_size_divisible_by``)
are masked out: probabilities are over the tokenizer's vocabulary, as in the HF export.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from xlda.training.task import BaseTask, TaskData

WIDTH_MULTIPLE = 64  # sample lengths are rounded up to this (fewer shapes; TE wants it)


class SequenceDataset(torch.utils.data.Dataset):
    """``items[i] = (ids, n_scored)``: a sample of inputs ``ids[:-1]`` and labels ``ids[1:]``,
    the last ``n_scored`` labels scored, padded to ``width``; ``last``: the position of the
    last input (where a greedy step reads the next token)."""

    languages = ("eval",)

    def __init__(self, items: Sequence[tuple], width: int, pad_id: int):
        self.items, self.width, self.pad_id = list(items), width, pad_id

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        ids, n_scored = self.items[i]
        W, n = self.width, len(ids) - 1
        tokens = torch.full((W,), self.pad_id, dtype=torch.int64)
        labels = torch.full((W,), self.pad_id, dtype=torch.int64)
        loss_mask = torch.zeros(W, dtype=torch.float32)
        t = torch.as_tensor(ids, dtype=torch.int64)
        tokens[:n] = t[:-1]
        labels[:n] = t[1:]
        if n_scored:
            loss_mask[n - n_scored:n] = 1.0
        doc_ids = torch.zeros(W, dtype=torch.int32)
        doc_ids[n:] = 1  # padding: its own document, after the text (never attended by it)
        return {"tokens": tokens, "labels": labels, "loss_mask": loss_mask,
                "position_ids": torch.arange(W, dtype=torch.int64), "doc_ids": doc_ids,
                "lang_ids": torch.zeros(W, dtype=torch.int32),
                "index": torch.tensor(i, dtype=torch.int64),
                "last": torch.tensor(n - 1, dtype=torch.int64)}


def _inputs(item: tuple) -> int:
    return len(item[0]) - 1


def vocab_parallel_stats(logits: torch.Tensor, targets: torch.Tensor, vocab_size: int):
    """From this TP rank's logits shard ``[B, S, V/tp]``: the log-prob of ``targets`` ``[B, S]``
    and the greedy token ``[B, S]`` over ids < ``vocab_size`` (ties: the lowest id, as
    torch.argmax). Collectives over the TP group; with TP = 1 none."""
    from megatron.core import parallel_state as ps

    dist = torch.distributed
    on = ps.model_parallel_is_initialized()  # (a plain tensor outside a run: one shard)
    tp = ps.get_tensor_model_parallel_world_size() if on else 1
    group = ps.get_tensor_model_parallel_group() if tp > 1 else None

    def reduce(x, op):
        if tp > 1:
            dist.all_reduce(x, op=op, group=group)
        return x

    x = logits.float()
    shard = x.shape[-1]
    lo = ps.get_tensor_model_parallel_rank() * shard if tp > 1 else 0
    ids = torch.arange(lo, lo + shard, device=x.device)
    x = x.masked_fill(ids >= vocab_size, float("-inf"))
    local_max, local_arg = x.max(-1)
    top = reduce(local_max.clone(), dist.ReduceOp.MAX)
    big = torch.iinfo(torch.int64).max
    greedy = reduce(torch.where(local_max == top, local_arg + lo, big), dist.ReduceOp.MIN)
    lse = top + reduce((x - top[..., None]).exp().sum(-1), dist.ReduceOp.SUM).log()
    inside = (targets >= lo) & (targets < lo + shard)
    picked = x.gather(-1, (targets - lo).clamp(0, shard - 1)[..., None])[..., 0]
    target_logit = reduce(torch.where(inside, picked, torch.zeros_like(picked)),
                          dist.ReduceOp.SUM)
    return target_logit - lse, greedy


def collect_scores(vocab_size: int) -> Callable:
    """forward_only's ``collect``: per sample (summed log-prob of the scored labels, 1.0 when
    each scored label is the greedy token, the greedy token after position ``last``). Only the
    scored positions and ``last`` go through the vocabulary reductions (a continuation is a
    few tokens of a padded row)."""

    def collect(batch, logits):
        mask = batch["loss_mask"] > 0
        B, W = mask.shape
        pos = torch.arange(W, device=mask.device)
        at_last = pos[None, :] == batch["last"][:, None]
        sel = mask | at_last
        owner = torch.arange(B, device=mask.device)[:, None].expand(B, W)[sel]
        targets = batch["labels"][sel]
        logp, greedy = vocab_parallel_stats(logits[sel][None], targets[None], vocab_size)
        logp, greedy = logp[0], greedy[0]
        scored = mask[sel].to(logp.dtype)
        total = torch.zeros(B, dtype=logp.dtype, device=logp.device).index_add_(0, owner, logp * scored)
        misses = torch.zeros(B, dtype=logp.dtype, device=logp.device).index_add_(
            0, owner, (greedy != targets).to(logp.dtype) * scored)
        nxt = torch.zeros(B, dtype=logp.dtype, device=logp.device)
        nxt[owner[at_last[sel]]] = greedy[at_last[sel]].to(logp.dtype)
        return batch["index"], torch.stack([total, (misses == 0).to(logp.dtype), nxt], dim=-1)

    return collect


class ScoringTask(BaseTask):
    """A TrainTask that trains nothing: the start checkpoint's weights, scored by ``Scorer``."""

    trains = False
    loss_name = "score"

    def __init__(self, load: str, vocab_size: int, pad_id: int):
        self.load, self.vocab_size, self.pad_id = load, vocab_size, pad_id

    def build_data(self, cfg, log) -> TaskData:
        from xlda.training.lm_task import lm_collator

        # the trainer's data stream needs a dataset; nothing is ever drawn from it
        placeholder = SequenceDataset([([self.pad_id, self.pad_id], 0)], WIDTH_MULTIPLE, self.pad_id)
        return TaskData(placeholder, lm_collator(cfg, 1), SequenceDataset.languages,
                        vocab_size=self.vocab_size)

    def start(self, cfg):
        from xlda.training.task import Start

        return Start(self.load, weights_only=True)

    def loss(self, batch, output_tensor, training: bool):
        raise RuntimeError("ScoringTask trains nothing: use Scorer (Trainer.forward_only)")


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


class Scorer:
    """Log-likelihoods and greedy continuations under a Trainer's weights (see module doc)."""

    def __init__(self, trainer, vocab_size: int, pad_id: int, max_length: int,
                 call_size: int = 128):
        self.trainer, self.vocab_size, self.pad_id = trainer, vocab_size, pad_id
        self.max_length = max_length  # the model's --seq-length
        # sequences per forward_only call (sorted by length, padded to the call's longest;
        # the trainer splits a call into micro-batches)
        self.call_size = call_size

    def _run(self, items: list):
        """``items = [(ids, n_scored)]`` -> float64 ``[len(items), 3]`` (collect_scores)."""
        import numpy as np

        out = np.zeros((len(items), 3))
        order = sorted(range(len(items)), key=lambda i: _inputs(items[i]))  # similar lengths
        for start in range(0, len(order), self.call_size):
            chunk = order[start:start + self.call_size]
            width = min(_round_up(_inputs(items[chunk[-1]]), WIDTH_MULTIPLE), self.max_length)
            ds = SequenceDataset([items[i] for i in chunk], width, self.pad_id)
            out[chunk] = self.trainer.forward_only(ds, collect_scores(self.vocab_size), width=3,
                                                   logits=True, seq_length=width)
        return out

    def _window(self, context: list, continuation: list) -> tuple:
        """The last max_length + 1 tokens of context + continuation (lm-eval's hf truncation)."""
        ids = (list(context) + list(continuation))[-(self.max_length + 1):]
        return ids, min(len(continuation), len(ids) - 1)

    def loglikelihood(self, pairs: Sequence[tuple]) -> list[tuple[float, bool]]:
        """``(log-prob, greedy)`` per (context ids, continuation ids). An empty continuation (a
        choice that merged into the context's last token when the pair was tokenized) scores
        (0.0, True), as lm-eval's hf backend scores it; a warning counts them."""
        pairs = [(list(c), list(x)) for c, x in pairs]
        empty = [i for i, (_, x) in enumerate(pairs) if not x]
        if empty:
            import logging

            logging.getLogger(__name__).warning(
                "%d of %d requests have an empty continuation after tokenization (scored 0.0, as "
                "lm-eval's hf backend does): check the task's target_delimiter", len(empty),
                len(pairs))
        out = [(0.0, True)] * len(pairs)
        real = [i for i, (_, x) in enumerate(pairs) if x]
        if real:
            vals = self._run([self._window(*pairs[i]) for i in real])
            for i, v in zip(real, vals):
                out[i] = (float(v[0]), bool(v[1] > 0.5))
        return out

    def greedy(self, contexts: Sequence[list], max_new_tokens: int,
               stop: Callable[[list], bool] = lambda new: False) -> list[list]:
        """Greedy continuations (token ids) of each context, ``max_new_tokens`` at most; a
        sequence ends early when ``stop(new_ids)`` says so. One forward_only per step over
        the live sequences, recomputing the prefix (no KV cache)."""
        keep = self.max_length - 1  # a context is cut from the left to leave room to generate
        seqs = [list(c)[-keep:] if len(c) > keep else list(c) for c in contexts]
        if any(not s for s in seqs):
            raise ValueError("greedy: an empty context (give at least one token, e.g. the EOD)")
        new: list[list] = [[] for _ in seqs]
        live = list(range(len(seqs)))
        for _ in range(max_new_tokens):
            if not live:
                break
            # inputs: the last max_length tokens; the appended pad is the (unscored) label
            items = [((seqs[i] + new[i])[-self.max_length:] + [self.pad_id], 0) for i in live]
            nxt = self._run(items)[:, 2]
            still = []
            for i, tok in zip(live, nxt):
                new[i].append(int(tok))
                if not stop(new[i]):
                    still.append(i)
            live = still
        return new
