"""Per-GPU memory plan of a training layout (TP/PP/DP, micro-batch, recompute, distributed
optimizer) for an xlda ModelConfig — an estimate to pick a layout before asking for GPUs.

Weights/gradients/optimizer: bytes per parameter as in Megatron's distributed-optimizer docs
(bf16 params, fp32 grads since the trainer reduces grads in fp32, fp32 main params, Adam m and
v: 2 + 4 + 4 + 4 + 4 = 18 B; the distributed optimizer shards the 12 B of main params + Adam over
DP: 6 + 12/DP).

Activations: Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large Transformer
Models"), generalised from MHA/GELU/4h to GQA, SwiGLU and any FFN size, term by term:
layer norms 4sbh; attention: QKV input 2sbh, Q and K 2sb(h + Gd), V 2sbGd, projection input
2sbh, softmax/dropout 5as²b (only when the attention matrix is materialised — never for xlda's
flash-style executors), dropout mask sbh; MLP: input 2sbh, fc1 output 2sbf·(2 if SwiGLU), the
activation output 2sbf, dropout mask sbh. For MHA, f=4h, GELU, dropout this is the paper's
sbh(34 + 5as/h). TP divides everything but the norms, the QKV/MLP inputs and the masks (10sbh),
unless sequence parallelism shards those too. With 1F1B the first stage keeps PP micro-batches in
flight, i.e. the activations of all L layers for one micro-batch.

XLDA attention: the thd/te executors gather K/V per query document (xlda.attention.thd); the
gathered copies are kept for backward: 2 (K, V) x 2 B x E x sb x Gd per layer, E the K/V expansion
(gathered rows / tokens) of the micro-batch, plus the int64 gather index (8 E sb, once per
micro-batch). E defaults to the p99 of the per-step worst sample in a trainer's metrics.jsonl
(``--metrics-jsonl``, the trainer's data report: ``kv_expansion_max``), else ``--kv-expansion``,
else DEFAULT_KV_EXPANSION (p99 measured on real packed samples at S = 4096, bench_attention.py).
The flex executor keeps one BlockMask per micro-batch (4 int32 [B, S/128, S/128] index tensors
plus counts) and builds it with O(B x S/128 x S) int32 temporaries (xlda.attention.flex).

RLVR rollouts (``rollout_rows`` > 0): megatron-core's static KV cache holds K and V of every
layer of the stage for ``rollout_rows`` rows x ``rollout_length`` tokens (2 x 2 B x G d / TP per
token and layer) while a round decodes; it is freed before the step trains, so it competes with
the step's activations, not on top of them: the plan adds what it needs beyond them. With
``kl_reference`` (``--beta > 0``) a bf16 copy of the start weights stays beside the model.

FP8 (note only): Megatron keeps bf16 params + fp32 master weights, so FP8 does not shrink the
weight/optimizer rows; it adds transient FP8 weight copies and can halve linear-layer inputs.
"""
from __future__ import annotations

from dataclasses import dataclass, field

GB = 1e9
DEFAULT_KV_EXPANSION = 6.3  # p99 over real packed samples, S = 4096 (issue 10's measurement)
FLEX_BLOCK = 128


def kv_expansion_from_metrics(path, quantile: float = 0.99) -> float:
    """p99 (by default) of the per-step worst-sample K/V expansion a trainer run logged."""
    import json

    import numpy as np

    vals = []
    with open(path) as fh:
        for i, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{i}: not JSON ({exc.msg})") from exc
            if "kv_expansion_max" in rec:
                vals.append(float(rec["kv_expansion_max"]))
    if not vals:
        raise ValueError(f"{path}: no 'kv_expansion_max' entries (is it a trainer metrics.jsonl?)")
    return float(np.quantile(np.asarray(vals), quantile))


def flex_block_mask_bytes(s: int, b: int, block: int = FLEX_BLOCK) -> float:
    """The BlockMask kept for a micro-batch plus its build temporaries (xlda.attention.flex)."""
    nb = -(-s // block)
    kept = 4 * (4 * b * nb * nb + 4 * b * nb)  # kv/full_kv/q/full_q indices + block counts
    build = 4 * 4 * b * nb * max(nb * block, 1024)  # two count tables, two gathers (int32)
    return kept + build


@dataclass
class MemoryPlanConfig:
    tensor_model_parallel_size: int = 1
    pipeline_model_parallel_size: int = 1
    num_nodes: int = 1
    gpus_per_node: int = 8
    micro_batch_size: int = 1
    seq_length: int | None = None  # None: the model's
    recompute_granularity: str | None = None  # None | "selective" (MLP, as the trainer) | "full"
    use_distributed_optimizer: bool = True
    sequence_parallel: bool = False
    grad_reduce_in_fp32: bool = True  # what xlda's trainer uses
    gpu_memory_gb: float = 80.0
    reserved_gb: float = 4.0  # CUDA context, NCCL buffers, allocator fragmentation (a guess)
    attention_matrix_stored: bool = False  # True only for an unfused (non-flash) attention
    attention_backend: str | None = None  # None: the model's (thd/te gather K/V, flex a BlockMask)
    kv_expansion: float = DEFAULT_KV_EXPANSION
    kv_expansion_source: str = "default: p99 of real packed samples at S=4096"
    rollout_rows: int = 0  # RLVR: rows decoded together per model replica (0: no rollouts)
    rollout_length: int = 0  # RLVR: prompt + completion tokens of a decoded row
    kl_reference: bool = False  # RLVR --beta > 0: a bf16 copy of the start weights

    @property
    def world_size(self) -> int:
        return self.num_nodes * self.gpus_per_node

    @property
    def data_parallel_size(self) -> int:
        mp = self.tensor_model_parallel_size * self.pipeline_model_parallel_size
        if self.world_size % mp:
            raise ValueError(
                f"{self.world_size} GPUs ({self.num_nodes} nodes x {self.gpus_per_node}) are not "
                f"divisible by TP {self.tensor_model_parallel_size} x PP "
                f"{self.pipeline_model_parallel_size}"
            )
        return self.world_size // mp

    def build(self, model_cfg) -> "MemoryPlan":
        return plan(model_cfg, self)


@dataclass
class MemoryPlan:
    config: MemoryPlanConfig
    stage: str  # which pipeline stage is the worst ("first", "last", "only")
    params_per_gpu: int
    bytes_per_param: dict[str, float]
    rows: dict[str, float] = field(default_factory=dict)  # component -> bytes per GPU

    @property
    def total_bytes(self) -> float:
        return sum(self.rows.values())

    @property
    def fits(self) -> bool:
        return self.total_bytes <= self.config.gpu_memory_gb * GB

    def _attention_line(self) -> str:
        c = self.config
        if any(k.startswith("THD K/V") for k in self.rows):
            return (f"attention: THD/TE K/V gather, K/V expansion {c.kv_expansion:g} "
                    f"({c.kv_expansion_source}); activations include the gathered K/V")
        if any(k.startswith("flex") for k in self.rows):
            return "attention: flex (BlockMask row; no K/V expansion)"
        return "attention: no K/V expansion (sdpa/causal)"

    def table(self) -> str:
        c = self.config
        lines = [
            f"layout: TP {c.tensor_model_parallel_size} x PP {c.pipeline_model_parallel_size} x "
            f"DP {c.data_parallel_size} = {c.world_size} GPUs; micro-batch {c.micro_batch_size}; "
            f"recompute {c.recompute_granularity or 'none'}; distributed optimizer "
            f"{'on' if c.use_distributed_optimizer else 'off'}; SP "
            f"{'on' if c.sequence_parallel else 'off'}",
            self._attention_line(),
            f"worst stage: {self.stage}; parameters on one GPU: {self.params_per_gpu:,}",
            "bytes/param: " + ", ".join(f"{k} {v:g}" for k, v in self.bytes_per_param.items())
            + f" = {sum(self.bytes_per_param.values()):g}",
            f"{'component':<34}{'GB/GPU':>10}",
        ]
        lines += [f"{k:<34}{v / GB:>10.2f}" for k, v in self.rows.items()]
        total = self.total_bytes / GB
        verdict = "fits" if self.fits else "DOES NOT FIT"
        lines.append(f"{'total':<34}{total:>10.2f}  ({verdict} in {c.gpu_memory_gb:g} GB, "
                     f"{100 * total / c.gpu_memory_gb:.0f}%)")
        lines.append("FP8: weight/optimizer rows unchanged (bf16 params + fp32 master kept); "
                     "adds transient FP8 weight copies")
        return "\n".join(lines)


def bytes_per_param(bf16: bool, distributed: bool, dp: int, grad_fp32: bool = True) -> dict:
    """Megatron's table: weights, gradients, optimizer (fp32 main params + Adam m, v)."""
    if bf16:
        optim = 12.0  # fp32 main param + m + v
        out = {"param": 2.0, "grad": 4.0 if grad_fp32 else 2.0}
    else:
        optim = 8.0  # m + v; the param itself is the main param
        out = {"param": 4.0, "grad": 4.0}
    out["optimizer"] = optim / dp if distributed else optim
    return out


def layer_activation_bytes(model_cfg, s: int, b: int, t: int = 1, sp: bool = False,
                           recompute: str | None = None, attention_matrix: bool = False,
                           kv_expansion: float = 0.0) -> float:
    """Activation bytes one transformer layer keeps for backward, per micro-batch (16-bit).
    ``kv_expansion`` > 0: the thd/te executors' gathered K/V copies (see the module doc)."""
    h, f = model_cfg.hidden_size, model_cfg.ffn_size
    a, g, d = model_cfg.num_attention_heads, model_cfg.query_groups, model_cfg.head_dim
    dropout = model_cfg.hidden_dropout > 0 or model_cfg.attention_dropout > 0
    sb = s * b
    rep = sb * (4 * h + 2 * h + 2 * h)  # norms, QKV input, MLP input: TP-replicated
    rep += 2 * sb * h if dropout else 0  # two dropout masks (1 B each)
    par = sb * (2 * (h + g * d) + 2 * g * d + 2 * h)  # Q, K, V, projection input
    if attention_matrix:
        par += 5 * a * s * s * b
    par += 2 * 2 * sb * g * d * kv_expansion
    mlp = sb * (2 * f * (2 if model_cfg.swiglu else 1) + 2 * f)
    if recompute == "full":
        return 2 * sb * h / (t if sp else 1)  # only the layer input is kept
    if recompute == "selective":
        mlp = 0  # the trainer's selective recompute redoes the MLP from its (kept) input
    return rep / (t if sp else 1) + (par + mlp) / t


def rollout_kv_cache_bytes(model_cfg, rows: int, length: int, tp: int, layers: int) -> float:
    """megatron-core's static KV cache on one GPU: K and V (16-bit) per token and layer."""
    g, d = model_cfg.query_groups, model_cfg.head_dim
    return 2 * 2 * rows * length * layers * g * d / tp


def stage_parameters(model_cfg, tp: int, pp: int) -> dict[str, int]:
    """Parameters on one GPU of the first and the last pipeline stage (TP-sharded)."""
    h, L = model_cfg.hidden_size, model_cfg.num_layers
    norm = h if model_cfg.normalization == "RMSNorm" else 2 * h
    layer = model_cfg.layer_parameters()
    # Norms are replicated across TP, the rest is split.
    per_layer = (layer - 2 * norm) // tp + 2 * norm
    layers = -(-L // pp) * per_layer
    V = model_cfg.padded_vocab_size(tp)
    emb = V * h // tp
    last = layers + norm + (emb if model_cfg.untie_embeddings_and_output_weights or pp > 1 else 0)
    if model_cfg.mtp_layers:
        last += model_cfg.mtp_layers * (3 * norm + (2 * h * h) // tp + per_layer)
    if pp == 1:
        return {"only": last + emb}
    return {"first": layers + emb, "last": last}


def plan(model_cfg, c: MemoryPlanConfig) -> MemoryPlan:
    tp, pp, dp = c.tensor_model_parallel_size, c.pipeline_model_parallel_size, c.data_parallel_size
    s = c.seq_length or model_cfg.seq_length
    b = c.micro_batch_size
    h = model_cfg.hidden_size
    bpp = bytes_per_param(model_cfg.bf16, c.use_distributed_optimizer, dp, c.grad_reduce_in_fp32)
    sp = c.sequence_parallel and tp > 1
    backend = c.attention_backend or model_cfg.attention_backend
    gathers = backend in ("thd", "te") and model_cfg.attention_mask_type != "causal"
    E = c.kv_expansion if gathers else 0.0
    per_layer = layer_activation_bytes(model_cfg, s, b, tp, sp, c.recompute_granularity,
                                       c.attention_matrix_stored, E)
    layers_per_stage = -(-model_cfg.num_layers // pp)
    in_flight = pp  # 1F1B: stage i holds pp - i micro-batches; the first stage is the worst
    logits = 4 * s * b * model_cfg.padded_vocab_size(tp) / tp  # fp32 logits for the loss
    best = None
    for stage, n in stage_parameters(model_cfg, tp, pp).items():
        flight = in_flight if stage in ("first", "only") else 1
        rows = {
            "weights (bf16)" if model_cfg.bf16 else "weights (fp32)": n * bpp["param"],
            "gradients": n * bpp["grad"],
            "optimizer (fp32 main + Adam m,v)": n * bpp["optimizer"],
            f"activations ({layers_per_stage} layers x {flight} mb)":
                per_layer * layers_per_stage * flight,
        }
        if stage in ("last", "only"):
            rows["logits (fp32, 1 micro-batch)"] = logits
            if model_cfg.mtp_layers:
                rows["MTP activations + logits"] = model_cfg.mtp_layers * (per_layer + logits)
        if gathers:
            rows[f"THD K/V gather index (E={E:g})"] = 8 * E * s * b * flight
        if backend == "flex":
            rows["flex BlockMask (per micro-batch)"] = flex_block_mask_bytes(s, b) * flight
        if c.recompute_granularity == "full":
            rows["recompute working set (1 layer)"] = layer_activation_bytes(
                model_cfg, s, b, tp, sp, None, c.attention_matrix_stored, E)
        if c.kl_reference:
            rows["KL reference weights (bf16 copy)"] = 2.0 * n
        if c.rollout_rows:
            kv = rollout_kv_cache_bytes(model_cfg, c.rollout_rows, c.rollout_length, tp,
                                        layers_per_stage)
            step = sum(v for k, v in rows.items() if k.startswith(("activations", "logits",
                                                                   "MTP", "THD", "flex")))
            rows[f"rollout KV {kv / GB:.1f} GB - activations"] = max(0.0, kv - step)
        rows["reserved (context/NCCL/fragm.)"] = c.reserved_gb * GB
        p = MemoryPlan(c, stage, n, bpp, rows)
        if best is None or p.total_bytes > best.total_bytes:
            best = p
    return best


def meta_parameter_count(model_cfg, include_mtp: bool = False) -> int:
    """Build the model on the meta device (no memory) and count its parameters; single process.

    Initialises a 1-rank gloo group and megatron's parallel state when none exists.
    """
    import dataclasses
    import socket

    import torch
    from megatron.core import parallel_state

    from xlda import cpu_shims

    cpu_shims.maybe_install()
    if not torch.distributed.is_initialized():
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        torch.distributed.init_process_group(
            "gloo", world_size=1, rank=0, init_method=f"tcp://127.0.0.1:{port}")
    if not parallel_state.model_parallel_is_initialized():
        parallel_state.initialize_model_parallel()
    cfg = dataclasses.replace(model_cfg, perform_initialization=False)
    with torch.device("meta"):
        model = cfg.build(pre_process=True, post_process=True)
    return sum(p.numel() for n, p in model.named_parameters()
               if include_mtp or not n.startswith("mtp."))
