"""Rollouts from the policy being trained: KV-cached sampling with the megatron-core model itself.

``Generator(trainer, ...)`` decodes with megatron-core's ``StaticInferenceContext`` (its
attention layers keep the K/V cache; one prefill pass over the prompts, then one token per
pass) through the same pipeline schedule the trainer runs, so any TP/PP layout generates:

- TP: the last stage asks megatron-core for the gathered logits (``runtime_gather_output``,
  ``[B, 1, V]``); every TP rank samples the same token from the same numbers.
- PP: each pass is a forward-only schedule call of one micro-batch (activations of shape
  ``[new tokens, B, hidden]`` travel the stages); the last stage's tokens are broadcast over
  the pipeline group so the first stage can feed them back.

Prompts are left-padded to a common length; pad keys are masked out (a pad query sees only
itself, so no row is empty and no NaN enters the cache). RoPE scores depend on relative
positions only, so the shift the left padding gives a prompt does not change its logits beyond
rounding.

Sampling is reproducible and layout-independent: the uniform that picks row ``key``'s token at
step ``t`` is a counter-based hash of (seed, key, t) (splitmix64), not a stateful generator, so
a resumed run, another DP/TP/PP layout or another rollout micro-batch size draws the same
tokens. Temperature 0 is greedy (the lowest id on ties, as ``torch.argmax``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
        return x ^ (x >> np.uint64(31))


def uniforms(seed: int, keys: Sequence[int], step: int) -> np.ndarray:
    """One float64 in [0, 1) per key: a pure function of (seed, key, step)."""
    k = np.asarray(keys, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = _splitmix64(np.uint64(seed % (1 << 64)) ^ _splitmix64(k))
        x = _splitmix64(x ^ np.uint64(step % (1 << 64)))
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def sample_tokens(logits: torch.Tensor, vocab_size: int, temperature: float, top_p: float,
                  u: torch.Tensor) -> torch.Tensor:
    """Next tokens ``[B]`` from logits ``[B, V]`` over ids < ``vocab_size`` (Megatron's padded
    vocabulary rows never win): greedy at temperature 0, else softmax(logits / T) cut to the
    smallest set of top tokens with mass >= ``top_p`` (nucleus), drawn by inverse CDF at ``u``."""
    x = logits[:, :vocab_size].double()
    if temperature == 0:
        return x.argmax(-1)
    p = torch.softmax(x / temperature, dim=-1)
    sp, si = p.sort(dim=-1, descending=True, stable=True)
    if top_p < 1.0:
        before = sp.cumsum(-1) - sp  # the mass of the tokens ranked above each token
        sp = sp * (before < top_p)  # the top token always stays
    c = sp.cumsum(-1)
    r = (u.to(c) * c[:, -1])[:, None]
    j = torch.searchsorted(c, r, right=True).clamp_(max=c.shape[-1] - 1)
    return si.gather(-1, j)[:, 0]


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0


class Generator:
    """Completions of token prompts under the trainer's current weights (module doc). Every rank
    of a model-parallel group calls ``generate`` with the same prompts, in step."""

    def __init__(self, trainer, vocab_size: int, pad_id: int, stop_ids: Sequence[int]):
        self.trainer, self.vocab_size, self.pad_id = trainer, vocab_size, pad_id
        self.stop_ids = torch.tensor(sorted(set(int(s) for s in stop_ids)), dtype=torch.int64)
        self.tokens_generated = 0  # completion tokens of all generate() calls (throughput)

    def generate(self, prompts: Sequence[Sequence[int]], keys: Sequence[int],
                 params: SamplingParams, micro_batch_size: int) -> list[list[int]]:
        """Completion ids per prompt (the stop token included when one was produced), in
        chunks of ``micro_batch_size`` rows; ``keys[i]`` names row i's random stream."""
        out: list[list[int]] = []
        for s in range(0, len(prompts), micro_batch_size):
            out += self._generate(prompts[s:s + micro_batch_size], keys[s:s + micro_batch_size],
                                  params)
        return out

    # -- one chunk -----------------------------------------------------------------------------
    def _generate(self, prompts, keys, params: SamplingParams) -> list[list[int]]:
        from megatron.core import parallel_state as ps
        from megatron.core.inference.contexts import StaticInferenceContext

        if any(len(p) == 0 for p in prompts):
            raise ValueError("generate: an empty prompt (a prompt needs at least one token)")
        tr, dev = self.trainer, self.trainer.device
        B, P = len(prompts), max(len(p) for p in prompts)
        T = params.max_new_tokens
        ctx = StaticInferenceContext(B, P + T)
        tokens = torch.full((B, P), self.pad_id, dtype=torch.int64)
        valid = torch.zeros(B, P + T, dtype=torch.bool)
        for i, p in enumerate(prompts):
            tokens[i, P - len(p):] = torch.as_tensor(list(p), dtype=torch.int64)
            valid[i, P - len(p):] = True
        valid[:, P:] = True  # generated positions (a finished row's are never read back)
        stops = self.stop_ids.to(dev)
        done = torch.zeros(B, dtype=torch.bool, device=dev)
        new = torch.full((B, T), self.pad_id, dtype=torch.int64, device=dev)
        lengths = torch.full((B,), T, dtype=torch.int64, device=dev)
        step_in = tokens.to(dev)
        pp_group = ps.get_pipeline_model_parallel_group()
        pp = ps.get_pipeline_model_parallel_world_size()
        last = ps.is_pipeline_last_stage()
        with tr.inference():  # eval mode, no grad, the main head only
            for t in range(T):
                q0, q = (0, P) if t == 0 else (P + t - 1, 1)
                logits = self._pass(step_in, ctx, valid, q0, q)  # [B, V] on the last stage
                if last:
                    u = torch.from_numpy(uniforms(params.seed, keys, t)).to(dev)
                    nxt = sample_tokens(logits, self.vocab_size, params.temperature,
                                        params.top_p, u)
                else:
                    nxt = torch.empty(B, dtype=torch.int64, device=dev)
                if pp > 1:
                    torch.distributed.broadcast(nxt, src=ps.get_pipeline_model_parallel_last_rank(),
                                                group=pp_group)
                nxt = torch.where(done, torch.full_like(nxt, self.pad_id), nxt)
                new[:, t] = nxt
                stopped = ~done & torch.isin(nxt, stops)
                lengths = torch.where(stopped, torch.full_like(lengths, t + 1), lengths)
                done = done | stopped
                ctx.sequence_len_offset += q
                step_in = nxt[:, None]
                if bool(done.all()):
                    break
        new, lengths = new.cpu(), lengths.cpu()
        self.tokens_generated += int(lengths.sum())
        return [new[i, :int(lengths[i])].tolist() for i in range(B)]

    def _pass(self, step_in: torch.Tensor, ctx, valid: torch.Tensor, q0: int, q: int):
        """One schedule call over ``q`` new positions (from ``q0``): the last stage's logits of
        the last position ``[B, V]`` (None elsewhere)."""
        from megatron.core.pipeline_parallel import get_forward_backward_func

        tr = self.trainer
        B, k = step_in.shape[0], q0 + q
        qpos = torch.arange(q0, k)[:, None]
        kpos = torch.arange(k)[None, :]
        allowed = (kpos <= qpos)[None] & valid[:, None, :k]  # [B, q, k]
        allowed |= (kpos == qpos)[None]  # a pad query sees itself: no empty row, no NaN
        mask = (~allowed)[:, None].to(tr.device)  # megatron's convention: True = masked out
        positions = torch.arange(q0, k, device=tr.device)[None].expand(B, q)
        got = []

        def forward_step(data_iterator, model):
            next(data_iterator)
            out = model(step_in, positions, mask, inference_context=ctx,
                        runtime_gather_output=True)

            def keep(output_tensor):
                got.append(output_tensor[:, -1, :].float())
                zero = output_tensor.float().sum() * 0
                return zero, torch.ones((), dtype=torch.int, device=zero.device), {}

            return out, keep

        get_forward_backward_func()(
            forward_step_func=forward_step, data_iterator=iter([None]), model=tr.model_chunks,
            num_microbatches=1, seq_length=q, micro_batch_size=B, forward_only=True)
        return got[0] if got else None
