"""Rank functions for conversion tests (run via xlda.testing.distributed.run_distributed).

A tiny Llama-like xlda model (causal mask, so HF Llama is an independent reference) is saved with
the trainer's own save_checkpoint, or loaded with its load_checkpoint, at any TP/PP; every rank
returns the full-vocab logits it holds (the last pipeline stage) or None.
"""
from __future__ import annotations

import zlib

import torch
import torch.distributed as dist


def _init(tp: int, pp: int, seed: int = 1234) -> None:
    from megatron.core import parallel_state, tensor_parallel

    parallel_state.destroy_model_parallel()
    parallel_state.initialize_model_parallel(tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp)
    tensor_parallel.model_parallel_cuda_manual_seed(seed)


def _perturb_norms(model) -> None:
    # Norm weights start at 1; random ones make a swapped/missing norm mapping visible in logits.
    # Seeded by name so TP replicas agree.
    for name, p in model.named_parameters():
        if "norm" in name:
            g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
            p.data.copy_(0.5 + torch.rand(p.shape, generator=g))


def logits(model, mc, tokens: torch.Tensor):
    """Forward through this rank's stage; hidden states travel stage to stage by send/recv."""
    from megatron.core import parallel_state as ps
    from megatron.core import tensor_parallel

    b, s = tokens.shape
    pos = torch.arange(s).expand(b, s)
    mask = mc.mask_params(torch.zeros(b, s, dtype=torch.int32), torch.zeros(b, s, dtype=torch.int32))
    model.eval()
    with torch.no_grad():
        if not ps.is_pipeline_first_stage():
            hidden = torch.empty(s, b, mc.hidden_size)
            dist.recv(hidden, ps.get_pipeline_model_parallel_prev_rank())
            model.set_input_tensor(hidden)
        out = model(tokens, pos, mask)
        if not ps.is_pipeline_last_stage():
            dist.send(out.contiguous(), ps.get_pipeline_model_parallel_next_rank())
            return None
        full = tensor_parallel.gather_from_tensor_model_parallel_region(out)
    return full if ps.get_tensor_model_parallel_rank() == 0 else None


def save_source(rank, world, save_dir, tp, pp, model_dict, tokens, iteration):
    """Build a seeded model at TP/PP, save it with the trainer's save_checkpoint, return logits."""
    from xlda.model import ModelConfig
    from xlda.training.checkpointing import save_checkpoint
    from xlda.training.config import ParallelConfig, RunConfig

    _init(tp, pp)
    mc = ModelConfig.from_dict(model_dict)
    model = mc.build()
    _perturb_norms(model)
    rc = RunConfig(model=mc, parallel=ParallelConfig(tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp))
    save_checkpoint(save_dir, iteration, [model], None, None, run_config=rc)
    return logits(model, mc, tokens)


def load_converted(rank, world, load_dir, tp, pp, tokens):
    """Load a (converted) checkpoint with the trainer's load_checkpoint at TP/PP, return logits."""
    import yaml

    from xlda.model import ModelConfig
    from xlda.training.checkpointing import iter_dir, load_checkpoint, read_latest

    _init(tp, pp, seed=999)  # a different seed: every weight must come from the checkpoint
    rc = yaml.safe_load((iter_dir(load_dir, read_latest(load_dir)) / "run_config.yaml").read_text())
    mc = ModelConfig.from_dict({**rc["model"], "attention_mask_type": "causal"})
    model = mc.build()
    load_checkpoint(load_dir, [model], None, None, load_optimizer=False, required=True)
    return logits(model, mc, tokens)


def round_trip_2ranks(rank, world, tp2_dir, pp2_dir, src2_dir, model_dict, tokens):
    """(logits of the TP=2 reshard, of the PP=2 reshard, of a fresh TP=2 source saved to src2_dir)."""
    a = load_converted(rank, world, tp2_dir, 2, 1, tokens)
    b = load_converted(rank, world, pp2_dir, 1, 2, tokens)
    c = save_source(rank, world, src2_dir, 2, 1, model_dict, tokens, 20)
    return a, b, c
