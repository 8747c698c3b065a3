"""ModelConfig: the typed config of the GPT model (Megatron flag names) and its builder."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from xlda.attention.modes import BACKENDS, MODES

# torch is imported where a method needs it: building and validating a config (RunConfig(), the
# CLI's checks, --help) must not pay its import.
if TYPE_CHECKING:
    import torch


@dataclass
class ModelConfig:
    num_layers: int = 2
    hidden_size: int = 128
    num_attention_heads: int = 4
    num_query_groups: Optional[int] = None  # None = MHA
    ffn_hidden_size: Optional[int] = None  # None = 4*hidden (Megatron's default)
    kv_channels: Optional[int] = None  # None = hidden/heads
    vocab_size: int = 1024  # tokenizer vocab; the model uses padded_vocab_size(tp)
    make_vocab_size_divisible_by: int = 128
    seq_length: int = 256
    max_position_embeddings: Optional[int] = None  # None = seq_length
    position_embedding_type: str = "rope"
    rotary_base: int = 10000
    rotary_percent: float = 1.0
    normalization: str = "RMSNorm"
    norm_epsilon: float = 1e-5
    swiglu: bool = True
    add_bias_linear: bool = False
    qk_layernorm: bool = False
    untie_embeddings_and_output_weights: bool = True
    init_method_std: float = 0.02
    hidden_dropout: float = 0.0
    attention_dropout: float = 0.0
    mtp_num_layers: Optional[int] = None  # 0/None = off
    mtp_loss_scaling_factor: float = 0.1
    transformer_impl: str = "local"  # "local" | "transformer_engine"
    attention_backend: str = "sdpa"  # "sdpa" | "thd" | "flex" | "te"
    attention_mask_type: str = "xlda"  # "xlda" | "document" | "causal"
    bf16: bool = False
    fp16: bool = False
    params_dtype: Optional[str] = None  # None = from bf16/fp16, else "float32"/"bfloat16"/...
    fp8_format: Optional[str] = None  # None | "e4m3" | "hybrid" (needs transformer_engine)
    fp8_recipe: str = "delayed"
    sequence_parallel: bool = False
    recompute_granularity: Optional[str] = None  # None | "selective" (core_attn not supported)
    use_cpu_initialization: Optional[bool] = None  # None = True when no CUDA
    perform_initialization: bool = True  # False: skip random init (meta builds, loading weights)

    # -- derived -------------------------------------------------------------------------------
    def padded_vocab_size(self, tp: int = 1) -> int:
        """Megatron's padding: round vocab_size up to make_vocab_size_divisible_by * tp."""
        m = self.make_vocab_size_divisible_by * tp
        return -(-self.vocab_size // m) * m

    @property
    def query_groups(self) -> int:
        return self.num_query_groups or self.num_attention_heads

    @property
    def head_dim(self) -> int:
        return self.kv_channels or self.hidden_size // self.num_attention_heads

    @property
    def ffn_size(self) -> int:
        return self.ffn_hidden_size or 4 * self.hidden_size

    @property
    def mtp_layers(self) -> int:
        return self.mtp_num_layers or 0

    def torch_params_dtype(self) -> torch.dtype:
        import torch

        if self.params_dtype is not None:
            return getattr(torch, self.params_dtype)
        return torch.bfloat16 if self.bf16 else torch.float16 if self.fp16 else torch.float32

    def validate(self) -> "ModelConfig":
        def bad(msg):
            raise ValueError(f"ModelConfig: {msg}")

        if self.attention_backend not in BACKENDS:
            bad(f"unknown attention_backend {self.attention_backend!r}; expected one of {BACKENDS}")
        if self.attention_mask_type not in MODES:
            bad(f"unknown attention_mask_type {self.attention_mask_type!r}; expected one of {MODES}")
        if self.transformer_impl not in ("local", "transformer_engine"):
            bad(f"unknown transformer_impl {self.transformer_impl!r}; use 'local' or 'transformer_engine'")
        if self.hidden_size % self.num_attention_heads and self.kv_channels is None:
            bad(f"hidden_size {self.hidden_size} not divisible by num_attention_heads {self.num_attention_heads}")
        if self.num_attention_heads % self.query_groups:
            bad(f"num_attention_heads {self.num_attention_heads} not divisible by num_query_groups {self.query_groups}")
        if self.normalization not in ("RMSNorm", "LayerNorm"):
            bad(f"normalization must be 'RMSNorm' or 'LayerNorm', got {self.normalization!r}")
        if self.bf16 and self.fp16:
            bad("bf16 and fp16 are exclusive")
        if self.attention_backend == "flex" and self.attention_dropout > 0:
            bad("attention_backend='flex' has no attention dropout; set attention_dropout=0.0")
        if self.fp8_format is not None and self.transformer_impl == "local":
            # local linears ignore FP8: the run would train in BF16 and say nothing.
            bad(f"fp8_format={self.fp8_format!r} needs Transformer Engine linears; local linears "
                "ignore FP8. Use --transformer-impl transformer_engine (or drop --fp8-format)")
        from xlda.attention.te import te_available

        needs_te = [n for n, on in (("attention_backend='te'", self.attention_backend == "te"),
                                    ("transformer_impl='transformer_engine'", self.transformer_impl == "transformer_engine"),
                                    ("fp8_format", self.fp8_format is not None)) if on]
        if needs_te and not te_available():
            import torch

            where = "" if torch.cuda.is_available() else " (flex cannot train on CPU: no backward)"
            bad(f"{', '.join(needs_te)} need Transformer Engine, which is not installed; use "
                f"attention_backend='thd' or 'sdpa' (or 'flex' on a GPU{where}) with "
                "transformer_impl='local' and no fp8")
        if self.recompute_granularity not in (None, "selective"):
            # megatron's full recompute saves attention_mask with save_for_backward, which takes
            # tensors only; MaskParams is not one.
            bad(f"recompute_granularity={self.recompute_granularity!r} is not supported with the "
                "XLDA MaskParams; use None or 'selective'")
        return self

    def transformer_config(self):
        """megatron-core TransformerConfig; parallel sizes come from parallel_state."""
        import torch
        import torch.nn.functional as F
        from megatron.core import parallel_state as ps
        from megatron.core.transformer.transformer_config import TransformerConfig

        from xlda.model.fusions import fusion_flags

        self.validate()
        init = ps.model_parallel_is_initialized()
        tp = ps.get_tensor_model_parallel_world_size() if init else 1
        pp = ps.get_pipeline_model_parallel_world_size() if init else 1
        vpp = ps.get_virtual_pipeline_model_parallel_world_size() if init else None
        dtype = self.torch_params_dtype()
        cpu_init = (not torch.cuda.is_available()) if self.use_cpu_initialization is None else self.use_cpu_initialization
        extra = {}
        if self.fp8_format is not None:
            extra.update(fp8=self.fp8_format, fp8_recipe=self.fp8_recipe)
        if self.recompute_granularity == "selective":
            # "core_attn" recompute goes through tensor_parallel.checkpoint (tensors only).
            extra.update(recompute_granularity="selective", recompute_modules=["mlp"])
        return TransformerConfig(
            num_layers=self.num_layers,
            hidden_size=self.hidden_size,
            num_attention_heads=self.num_attention_heads,
            num_query_groups=self.num_query_groups,
            ffn_hidden_size=self.ffn_size,
            kv_channels=self.head_dim,
            tensor_model_parallel_size=tp,
            pipeline_model_parallel_size=pp,
            virtual_pipeline_model_parallel_size=vpp,
            sequence_parallel=self.sequence_parallel,
            normalization=self.normalization,
            layernorm_epsilon=self.norm_epsilon,
            gated_linear_unit=self.swiglu,
            activation_func=F.silu if self.swiglu else F.gelu,
            add_bias_linear=self.add_bias_linear,
            qk_layernorm=self.qk_layernorm,
            init_method_std=self.init_method_std,
            hidden_dropout=self.hidden_dropout,
            attention_dropout=self.attention_dropout,
            bf16=self.bf16,
            fp16=self.fp16,
            params_dtype=dtype,
            pipeline_dtype=dtype,
            use_cpu_initialization=cpu_init,
            perform_initialization=self.perform_initialization,
            mtp_num_layers=self.mtp_layers or None,
            mtp_loss_scaling_factor=self.mtp_loss_scaling_factor,
            attention_softmax_in_fp32=True,
            # XLDACoreAttention does its own softmax; the other fusions follow the device.
            masked_softmax_fusion=False,
            **fusion_flags(self.fusions()),
            **extra,
        )

    def fusions(self, cuda: Optional[bool] = None) -> dict:
        """{fusion: (on, why)}: megatron-core's fused kernels on for CUDA where importable."""
        import torch

        from xlda.model.fusions import fusion_plan

        return fusion_plan(self, torch.cuda.is_available() if cuda is None else cuda)

    def layer_spec(self):
        from xlda.model.spec import xlda_layer_spec

        return xlda_layer_spec(self.transformer_impl, self.attention_backend, self.normalization,
                               self.qk_layernorm)

    def build(self, pre_process: Optional[bool] = None, post_process: Optional[bool] = None,
              vp_stage: Optional[int] = None):
        """A megatron-core GPTModel for this rank's pipeline stage."""
        from megatron.core import parallel_state as ps
        from megatron.core.models.gpt import GPTModel

        from xlda.model.spec import xlda_mtp_block_spec

        tc = self.transformer_config()
        spec = self.layer_spec()
        if pre_process is None:
            pre_process = ps.is_pipeline_first_stage(ignore_virtual=vp_stage is None, vp_stage=vp_stage)
        if post_process is None:
            post_process = ps.is_pipeline_last_stage(ignore_virtual=vp_stage is None, vp_stage=vp_stage)
        mtp_spec = (
            xlda_mtp_block_spec(tc, spec, self.transformer_impl, vp_stage=vp_stage)
            if self.mtp_layers else None
        )
        return GPTModel(
            config=tc,
            transformer_layer_spec=spec,
            vocab_size=self.padded_vocab_size(tc.tensor_model_parallel_size),
            max_sequence_length=self.max_position_embeddings or self.seq_length,
            pre_process=pre_process,
            post_process=post_process,
            share_embeddings_and_output_weights=not self.untie_embeddings_and_output_weights,
            position_embedding_type=self.position_embedding_type,
            rotary_percent=self.rotary_percent,
            rotary_base=self.rotary_base,
            mtp_block_spec=mtp_spec,
            vp_stage=vp_stage,
        )

    def mask_params(self, doc_ids: torch.Tensor, lang_ids: torch.Tensor):
        """The MaskParams to pass as attention_mask= for a micro-batch."""
        from xlda.attention.params import MaskParams

        return MaskParams(doc_ids, lang_ids, self.attention_mask_type)

    # -- counting ------------------------------------------------------------------------------
    def layer_parameters(self) -> int:
        """Parameters of one transformer layer (its two norms included): the one count the
        parameter total, the memory plan, the FLOP model's dense part and the ablation use."""
        h, d, H, G, f = self.hidden_size, self.head_dim, self.num_attention_heads, self.query_groups, self.ffn_size
        norm = h if self.normalization == "RMSNorm" else 2 * h
        b = self.add_bias_linear
        qkv = h * (H + 2 * G) * d + (b and (H + 2 * G) * d)
        proj = H * d * h + (b and h)
        fc1 = h * f * (2 if self.swiglu else 1) + (b and f * (2 if self.swiglu else 1))
        fc2 = f * h + (b and h)
        qk_norm = 0
        if self.qk_layernorm:
            qk_norm = 2 * (d if self.normalization == "RMSNorm" else 2 * d)
        return 2 * norm + qkv + proj + fc1 + fc2 + qk_norm

    def num_parameters(self, include_mtp: bool = False, tp: int = 1) -> int:
        """Analytic parameter count of the whole model (all pipeline stages, unsharded)."""
        h = self.hidden_size
        norm = h if self.normalization == "RMSNorm" else 2 * h
        V = self.padded_vocab_size(tp)
        n = V * h * (2 if self.untie_embeddings_and_output_weights else 1)
        if self.position_embedding_type == "learned_absolute":
            n += (self.max_position_embeddings or self.seq_length) * h
        n += self.num_layers * self.layer_parameters() + norm
        if include_mtp and self.mtp_layers:
            # enorm, hnorm, eh_proj [2h -> h], one transformer layer, final norm (output layer and
            # embedding are shared with the main model)
            n += self.mtp_layers * (3 * norm + 2 * h * h + self.layer_parameters())
        return n

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @staticmethod
    def weight_shaping(d: dict) -> dict:
        """A ModelConfig dict with derived defaults filled in (``kv_channels: None`` ->
        hidden/heads, ...) and without what does not shape the weights, so a recipe with nulls
        and the resolved config a converter writes compare equal when they build the same model.
        ``seq_length`` never shapes weights; ``max_position_embeddings`` only with learned
        absolute positions (RoPE is built from the sequence length)."""
        out = dict(d)
        h, heads = out.get("hidden_size"), out.get("num_attention_heads")
        fill = {"kv_channels": h // heads if h and heads else None,
                "num_query_groups": heads,
                "ffn_hidden_size": 4 * h if h else None,
                "max_position_embeddings": out.get("seq_length"),
                "mtp_num_layers": 0}
        for key, value in fill.items():
            if out.get(key) is None:
                out[key] = value
        out.pop("seq_length", None)
        if out.get("position_embedding_type") != "learned_absolute":
            out.pop("max_position_embeddings", None)
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"ModelConfig: unknown fields {sorted(unknown)}")
        return cls(**d)
