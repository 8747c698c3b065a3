"""A tiny megatron-core GPT + optimizer + train step for layout/checkpoint tests on CPU.

Independent of the trainer (xlda.training.loop) so checkpoint and parallel-equivalence tests can
run before/without it. Call inside a process where torch.distributed is initialised (see
xlda.testing.distributed.run_distributed).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch


@dataclass
class TinySetup:
    tp: int = 1
    pp: int = 1
    seed: int = 1234
    num_layers: int = 4
    hidden_size: int = 32
    num_attention_heads: int = 4
    ffn_hidden_size: int = 64
    vocab_size: int = 64
    seq_length: int = 16
    micro_batch_size: int = 2
    global_batch_size: int = 4
    lr: float = 1e-3
    dropout: float = 0.1  # > 0 so resume tests depend on the RNG streams being restored


def init_parallel(s: TinySetup) -> None:
    from megatron.core import parallel_state
    from megatron.core.tensor_parallel.random import model_parallel_cuda_manual_seed

    parallel_state.destroy_model_parallel()
    parallel_state.initialize_model_parallel(
        tensor_model_parallel_size=s.tp, pipeline_model_parallel_size=s.pp
    )
    model_parallel_cuda_manual_seed(s.seed)


def build(s: TinySetup):
    """-> (model_chunks [DDP-wrapped GPTModel], optimizer, scheduler)."""
    from megatron.core import parallel_state
    from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig
    from megatron.core.models.gpt import GPTModel
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
    from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer
    from megatron.core.transformer import TransformerConfig

    config = TransformerConfig(
        num_layers=s.num_layers, hidden_size=s.hidden_size,
        num_attention_heads=s.num_attention_heads, ffn_hidden_size=s.ffn_hidden_size,
        tensor_model_parallel_size=s.tp, pipeline_model_parallel_size=s.pp,
        use_cpu_initialization=True, params_dtype=torch.float32,
        hidden_dropout=s.dropout, attention_dropout=s.dropout,
        pipeline_dtype=torch.float32, normalization="RMSNorm", add_bias_linear=False,
    )
    model = GPTModel(
        config=config, transformer_layer_spec=get_gpt_layer_local_spec(normalization="RMSNorm"),
        vocab_size=s.vocab_size, max_sequence_length=s.seq_length,
        pre_process=parallel_state.is_pipeline_first_stage(),
        post_process=parallel_state.is_pipeline_last_stage(),
        position_embedding_type="rope", share_embeddings_and_output_weights=False,
    )
    ddp = DistributedDataParallel(
        config, DistributedDataParallelConfig(use_distributed_optimizer=False), model
    )
    opt = get_megatron_optimizer(
        OptimizerConfig(optimizer="adam", lr=s.lr, weight_decay=0.01, bf16=False,
                        # clip_grad_by_total_norm_fp32 asserts grad.type() == "torch.cuda.FloatTensor",
                        # which the CPU shims cannot satisfy: no clipping on CPU.
                        clip_grad=0.0),
        [ddp],
    )
    sched = torch.optim.lr_scheduler.LambdaLR(_inner(opt), lambda it: 1.0 / (1 + 0.1 * it))
    return [ddp], opt, sched


def _inner(opt):
    # FP32Optimizer/ChainedOptimizer wrap a torch optimizer; LambdaLR needs the torch one.
    inner = getattr(opt, "optimizer", None)
    if inner is None and hasattr(opt, "chained_optimizers"):
        inner = opt.chained_optimizers[0].optimizer
    return inner


def global_batch(s: TinySetup, iteration: int) -> dict[str, torch.Tensor]:
    """The same global batch on every rank, a function of the iteration only."""
    g = torch.Generator().manual_seed(10_000 + iteration)
    tokens = torch.randint(0, s.vocab_size, (s.global_batch_size, s.seq_length + 1), generator=g)
    return {
        "tokens": tokens[:, :-1].contiguous(),
        "labels": tokens[:, 1:].contiguous(),
        "loss_mask": torch.ones(s.global_batch_size, s.seq_length),
        "position_ids": torch.arange(s.seq_length).expand(s.global_batch_size, -1).contiguous(),
    }


def _forward_step(data_iterator, model):
    b = next(data_iterator)
    out = model(b["tokens"], b["position_ids"], None, labels=b["labels"])

    def loss_func(loss_mask, output):
        losses = output.float().view(-1)
        mask = loss_mask.view(-1)
        loss = torch.sum(losses * mask)
        n = mask.sum().to(torch.int)
        return loss, n, {"lm loss": torch.stack([loss.detach(), n.float()])}

    return out, partial(loss_func, b["loss_mask"])


def train_step(s: TinySetup, model_chunks, opt, sched, iteration: int) -> float:
    """One optimizer step on the global batch of ``iteration``; returns its mean token loss
    (the same value on every rank)."""
    from megatron.core import parallel_state
    from megatron.core.distributed import finalize_model_grads
    from megatron.core.pipeline_parallel import get_forward_backward_func

    dp = parallel_state.get_data_parallel_world_size()
    dp_rank = parallel_state.get_data_parallel_rank()
    batch = global_batch(s, iteration)
    local = s.global_batch_size // dp
    num_micro = local // s.micro_batch_size
    micro = [
        {k: v[dp_rank * local + i * s.micro_batch_size:
              dp_rank * local + (i + 1) * s.micro_batch_size] for k, v in batch.items()}
        for i in range(num_micro)
    ]
    config = model_chunks[0].config
    config.finalize_model_grads_func = finalize_model_grads
    config.no_sync_func = model_chunks[0].no_sync
    for m in model_chunks:
        m.zero_grad_buffer()
    opt.zero_grad()
    out = get_forward_backward_func()(
        forward_step_func=_forward_step, data_iterator=iter(micro), model=model_chunks,
        num_microbatches=num_micro, seq_length=s.seq_length, micro_batch_size=s.micro_batch_size,
        forward_only=False,
    )
    opt.step()
    sched.step()
    # Loss summed over micro-batches (and then DP ranks), divided by the token count.
    totals = torch.zeros(2)
    for d in out:
        totals += d["lm loss"]
    if parallel_state.is_pipeline_last_stage():
        torch.distributed.all_reduce(totals, group=parallel_state.get_data_parallel_group())
    torch.distributed.all_reduce(totals, group=parallel_state.get_pipeline_model_parallel_group())
    return (totals[0] / totals[1]).item()


def run_steps(s: TinySetup, model_chunks, opt, sched, start: int, stop: int) -> list[float]:
    return [train_step(s, model_chunks, opt, sched, it) for it in range(start, stop)]


def flat_state(model_chunks, opt, sched) -> dict:
    """Everything a resume must restore, as plain CPU tensors/values for exact comparison."""
    from xlda.training import rng

    out = {}
    for i, m in enumerate(model_chunks):
        for k, v in m.module.state_dict().items():
            if torch.is_tensor(v):
                out[f"model{i}.{k}"] = v.detach().clone()
    for gi, group in enumerate(_inner(opt).param_groups):
        for pi, p in enumerate(group["params"]):
            for k, v in _inner(opt).state.get(p, {}).items():
                out[f"opt.{gi}.{pi}.{k}"] = v.clone() if torch.is_tensor(v) else torch.tensor(v)
        out[f"opt.{gi}.lr"] = torch.tensor(group["lr"])
    out["sched.last_epoch"] = torch.tensor(sched.last_epoch)
    r = rng.capture()
    out["rng.torch"] = r["torch"]
    out["rng.numpy"] = torch.tensor(r["numpy"][1].astype("int64"))
    out["rng.python"] = torch.tensor(r["python"][1])
    for k, v in (r["tracker"] or {}).items():
        out[f"rng.tracker.{k}"] = v
    return out
