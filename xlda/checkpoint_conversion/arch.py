"""The architecture facts a conversion needs, read from / written to both worlds' configs.

Megatron side: the ``model`` section of ``run_config.yaml`` (Megatron flag names, as
``xlda.model.ModelConfig``). HF side: a Llama ``config.json``. ``vocab_size`` is the true
(tokenizer) vocabulary; ``padded_vocab_size`` the rows of Megatron's embedding/output matrices.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ConversionError(RuntimeError):
    """A checkpoint cannot be converted; the message names the file and what to do."""


def pad_vocab(vocab_size: int, divisible_by: int, tensor_parallel_size: int) -> int:
    """Megatron's ``_vocab_size_with_padding``: round up to a multiple of divisible_by * TP."""
    multiple = divisible_by * tensor_parallel_size
    return ((vocab_size + multiple - 1) // multiple) * multiple


@dataclass
class ModelArch:
    num_layers: int
    hidden_size: int
    num_attention_heads: int
    num_query_groups: int
    ffn_hidden_size: int
    vocab_size: int
    seq_length: int
    kv_channels: int | None = None
    padded_vocab_size: int | None = None
    rotary_base: float = 10000.0
    norm_epsilon: float = 1e-5
    make_vocab_size_divisible_by: int = 128
    params_dtype: str = "float32"
    mtp_num_layers: int = 0

    def __post_init__(self):
        if self.kv_channels is None:
            self.kv_channels = self.hidden_size // self.num_attention_heads
        if self.num_attention_heads % self.num_query_groups:
            raise ConversionError(
                f"num_attention_heads={self.num_attention_heads} is not a multiple of "
                f"num_query_groups={self.num_query_groups}")

    @property
    def heads_per_group(self) -> int:
        return self.num_attention_heads // self.num_query_groups

    def check_parallel(self, tp: int, pp: int) -> None:
        """Raise if the target TP/PP cannot split this model (as Megatron would, but earlier)."""
        problems = []
        if self.num_attention_heads % tp:
            problems.append(f"num_attention_heads={self.num_attention_heads}")
        if self.num_query_groups % tp:
            problems.append(f"num_query_groups={self.num_query_groups}")
        if self.ffn_hidden_size % tp:
            problems.append(f"ffn_hidden_size={self.ffn_hidden_size}")
        if problems:
            raise ConversionError(f"--target-tensor-parallel-size {tp} does not divide {', '.join(problems)}")
        if self.num_layers % pp:
            raise ConversionError(
                f"--target-pipeline-parallel-size {pp} does not divide num_layers={self.num_layers}")

    # ---- Megatron run_config.yaml ``model`` section (xlda.model.ModelConfig fields) ----
    @classmethod
    def from_model_section(cls, m: dict, where: str = "run_config.yaml") -> "ModelArch":
        required = ("num_layers", "hidden_size", "num_attention_heads", "vocab_size")
        missing = [k for k in required if m.get(k) is None]
        if missing:
            raise ConversionError(f"{where}: section 'model' lacks {missing}; it must hold the ModelConfig "
                                  "the checkpoint was trained with")
        for key, want in (("normalization", "RMSNorm"), ("swiglu", True), ("add_bias_linear", False),
                          ("qk_layernorm", False), ("untie_embeddings_and_output_weights", True),
                          ("position_embedding_type", "rope")):
            if key in m and m[key] != want:
                raise ConversionError(f"{where}: model.{key}={m[key]!r}; only Llama-like models "
                                      f"({key}={want!r}) convert to HF Llama")
        heads = m["num_attention_heads"]
        dtype = m.get("params_dtype") or ("bfloat16" if m.get("bf16") else "float16" if m.get("fp16") else "float32")
        return cls(
            num_layers=m["num_layers"], hidden_size=m["hidden_size"], num_attention_heads=heads,
            num_query_groups=m.get("num_query_groups") or heads,
            ffn_hidden_size=m.get("ffn_hidden_size") or 4 * m["hidden_size"], vocab_size=m["vocab_size"],
            seq_length=m.get("max_position_embeddings") or m.get("seq_length") or 4096,
            kv_channels=m.get("kv_channels"), rotary_base=float(m.get("rotary_base", 10000)),
            norm_epsilon=float(m.get("norm_epsilon", m.get("layernorm_epsilon", 1e-5))),
            make_vocab_size_divisible_by=m.get("make_vocab_size_divisible_by", 128),
            params_dtype=str(dtype).replace("torch.", ""), mtp_num_layers=m.get("mtp_num_layers") or 0,
        )

    def to_model_section(self) -> dict:
        """ModelConfig fields of this Llama-like model (RoPE, RMSNorm, SwiGLU, no biases, untied)."""
        base = self.rotary_base
        sec = {
            "num_layers": self.num_layers, "hidden_size": self.hidden_size,
            "num_attention_heads": self.num_attention_heads,
            "num_query_groups": None if self.num_query_groups == self.num_attention_heads else self.num_query_groups,
            "ffn_hidden_size": self.ffn_hidden_size, "kv_channels": self.kv_channels,
            "vocab_size": self.vocab_size, "make_vocab_size_divisible_by": self.make_vocab_size_divisible_by,
            "seq_length": self.seq_length, "max_position_embeddings": self.seq_length,
            "position_embedding_type": "rope", "rotary_base": int(base) if float(base).is_integer() else base,
            "normalization": "RMSNorm", "norm_epsilon": self.norm_epsilon, "swiglu": True,
            "add_bias_linear": False, "untie_embeddings_and_output_weights": True,
            "mtp_num_layers": self.mtp_num_layers or None, "params_dtype": self.params_dtype,
            "bf16": self.params_dtype == "bfloat16", "fp16": self.params_dtype == "float16",
        }
        try:  # fill the remaining fields with ModelConfig's defaults so RunConfig.from_dict accepts it
            from xlda.model import ModelConfig
        except ImportError:
            return sec
        return ModelConfig.from_dict(sec).to_dict()

    # ---- HF Llama config.json ----
    @classmethod
    def from_hf_config(cls, c: dict, where: str = "config.json") -> "ModelArch":
        required = ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size", "vocab_size")
        missing = [k for k in required if not isinstance(c.get(k), int) or isinstance(c.get(k), bool)]
        if missing:
            raise ConversionError(f"{where}: a Llama config needs integer {', '.join(missing)}; this one has "
                                  f"keys {sorted(c)[:12]}: not a Llama config.json")
        if c.get("tie_word_embeddings"):
            raise ConversionError(f"{where}: tie_word_embeddings=true; xlda models keep separate "
                                  "input and output embeddings")
        if c.get("attention_bias") or c.get("mlp_bias"):
            raise ConversionError(f"{where}: biases are not supported (Llama without biases only)")
        rope = c.get("rope_parameters") or c.get("rope_scaling") or {}
        if rope.get("rope_type", "default") not in ("default", None):
            raise ConversionError(f"{where}: rope_type={rope.get('rope_type')!r} is not supported (default RoPE only)")
        theta = rope.get("rope_theta", c.get("rope_theta", 10000.0))
        heads = c["num_attention_heads"]
        dtype = c.get("torch_dtype") or c.get("dtype") or "float32"
        return cls(
            num_layers=c["num_hidden_layers"], hidden_size=c["hidden_size"], num_attention_heads=heads,
            num_query_groups=c.get("num_key_value_heads") or heads, ffn_hidden_size=c["intermediate_size"],
            vocab_size=c["vocab_size"], seq_length=c.get("max_position_embeddings", 4096),
            kv_channels=c.get("head_dim") or c["hidden_size"] // heads, rotary_base=float(theta),
            norm_epsilon=float(c.get("rms_norm_eps", 1e-6)), params_dtype=str(dtype).replace("torch.", ""),
        )

    def to_hf_config(self, dtype: str, eos_token_id: int | None, bos_token_id: int | None) -> dict:
        theta = self.rotary_base
        return {
            "architectures": ["LlamaForCausalLM"], "model_type": "llama",
            "vocab_size": self.vocab_size, "hidden_size": self.hidden_size,
            "intermediate_size": self.ffn_hidden_size, "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_attention_heads, "num_key_value_heads": self.num_query_groups,
            "head_dim": self.kv_channels, "hidden_act": "silu", "max_position_embeddings": self.seq_length,
            "rms_norm_eps": self.norm_epsilon, "tie_word_embeddings": False,
            "attention_bias": False, "mlp_bias": False, "initializer_range": 0.02, "use_cache": True,
            # transformers >= 5 reads rope_parameters; 4.x reads rope_theta.
            "rope_theta": theta, "rope_parameters": {"rope_type": "default", "rope_theta": theta},
            "bos_token_id": bos_token_id, "eos_token_id": eos_token_id,
            "torch_dtype": dtype, "dtype": dtype,
        }

    def replace(self, **kw) -> "ModelArch":
        return dataclasses.replace(self, **kw)


def torch_dtype(name: str) -> torch.dtype:
    try:
        return _DTYPES[name]
    except KeyError:
        raise ConversionError(f"unknown dtype {name!r}; use one of {sorted(_DTYPES)}") from None
