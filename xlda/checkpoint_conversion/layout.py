"""Tensor layout mapping between megatron-core GPTModel and HF Llama state dicts.

The megatron side uses dist-checkpoint keys, which are the TE spec's names for every spec (the local
spec maps ``input_layernorm.``/``pre_mlp_layernorm.`` onto them via sharded_state_dict_keys_map),
one entry per layer: ``decoder.layers.{i}.self_attention.linear_qkv.weight`` etc. Full (unsharded)
tensors only; TP/PP never show up here because dist checkpoints store global tensors.
"""
from __future__ import annotations

import logging
import re

import torch

from xlda.checkpoint_conversion.arch import ConversionError, ModelArch

log = logging.getLogger(__name__)

_LAYER = re.compile(r"^decoder\.layers\.(\d+)\.(.+)$")
# Local-spec (module state_dict) names -> dist-checkpoint (TE) names.
_LOCAL_TO_TE = {
    "input_layernorm.weight": "self_attention.linear_qkv.layer_norm_weight",
    "pre_mlp_layernorm.weight": "mlp.linear_fc1.layer_norm_weight",
}
# Per-layer megatron suffix -> HF suffix for the tensors that map one to one.
_DIRECT = {
    "self_attention.linear_qkv.layer_norm_weight": "input_layernorm.weight",
    "self_attention.linear_proj.weight": "self_attn.o_proj.weight",
    "mlp.linear_fc1.layer_norm_weight": "post_attention_layernorm.weight",
    "mlp.linear_fc2.weight": "mlp.down_proj.weight",
}
_SPLIT = ("self_attention.linear_qkv.weight", "mlp.linear_fc1.weight")


def split_qkv(qkv: torch.Tensor, arch: ModelArch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """megatron fused QKV rows are grouped per query group g: [q heads of g, k_g, v_g]."""
    g, n, d = arch.num_query_groups, arch.heads_per_group, arch.kv_channels
    expected = (g * (n + 2) * d, arch.hidden_size)
    if tuple(qkv.shape) != expected:
        raise ConversionError(f"linear_qkv.weight has shape {tuple(qkv.shape)}, expected {expected} for "
                              f"{arch.num_attention_heads} heads / {g} query groups / head dim {d}")
    w = qkv.reshape(g, n + 2, d, -1)
    q = w[:, :n].reshape(g * n * d, -1)
    k = w[:, n].reshape(g * d, -1)
    v = w[:, n + 1].reshape(g * d, -1)
    return q.contiguous(), k.contiguous(), v.contiguous()


def merge_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, arch: ModelArch) -> torch.Tensor:
    g, n, d = arch.num_query_groups, arch.heads_per_group, arch.kv_channels
    h = q.shape[-1]
    if tuple(q.shape) != (g * n * d, h) or tuple(k.shape) != (g * d, h) or tuple(v.shape) != (g * d, h):
        raise ConversionError(f"q/k/v_proj shapes {tuple(q.shape)}/{tuple(k.shape)}/{tuple(v.shape)} do not "
                              f"match {arch.num_attention_heads} heads, {g} kv heads, head dim {d}")
    w = torch.cat([q.reshape(g, n, d, h), k.reshape(g, 1, d, h), v.reshape(g, 1, d, h)], dim=1)
    return w.reshape(g * (n + 2) * d, h)


def split_fc1(fc1: torch.Tensor, arch: ModelArch) -> tuple[torch.Tensor, torch.Tensor]:
    """SwiGLU fc1 = cat([gate, up]) along rows (megatron applies silu to the first half)."""
    f = arch.ffn_hidden_size
    if fc1.shape[0] != 2 * f:
        raise ConversionError(f"linear_fc1.weight has {fc1.shape[0]} rows, expected 2 * ffn_hidden_size = {2 * f}")
    return fc1[:f].contiguous(), fc1[f:].contiguous()


def resize_vocab(w: torch.Tensor, rows: int) -> torch.Tensor:
    """Trim, or pad by repeating the last row (as Megatron-LM's converters do)."""
    if w.shape[0] >= rows:
        return w[:rows].contiguous()
    return torch.cat([w, w[-1:].expand(rows - w.shape[0], -1)], dim=0)


def normalize_mcore(state: dict[str, torch.Tensor], num_layers: int) -> dict[str, torch.Tensor]:
    """Per-layer keys with TE names, from stacked (``decoder.layers.X`` of shape [L, ...]) keys,
    local-spec module names, or already-canonical keys."""
    out = {}
    for key, t in state.items():
        if key.endswith("_extra_state"):
            continue
        m = _LAYER.match(key)
        if m:
            out[f"decoder.layers.{m[1]}.{_LOCAL_TO_TE.get(m[2], m[2])}"] = t
        elif key.startswith("decoder.layers.") and key != "decoder.layers.":
            suffix = key[len("decoder.layers."):]
            if t.shape[0] != num_layers:
                raise ConversionError(f"stacked layer tensor {key} has {t.shape[0]} layers, expected {num_layers}")
            for i in range(num_layers):
                out[f"decoder.layers.{i}.{_LOCAL_TO_TE.get(suffix, suffix)}"] = t[i]
        else:
            out[key] = t
    return out


def stack_layers(state: dict[str, torch.Tensor], num_layers: int) -> dict[str, torch.Tensor]:
    """Inverse of normalize_mcore: megatron-core's default (homogeneous) dist-checkpoint layer keys."""
    out, per_suffix = {}, {}
    for key, t in state.items():
        m = _LAYER.match(key)
        if m:
            per_suffix.setdefault(m[2], {})[int(m[1])] = t
        else:
            out[key] = t
    for suffix, layers in per_suffix.items():
        if sorted(layers) != list(range(num_layers)):
            raise ConversionError(f"decoder.layers.*.{suffix}: have layers {sorted(layers)}, expected 0..{num_layers - 1}")
        out[f"decoder.layers.{suffix}"] = torch.stack([layers[i] for i in range(num_layers)])
    return out


def mcore_to_hf(state: dict[str, torch.Tensor], arch: ModelArch) -> dict[str, torch.Tensor]:
    """Canonical megatron tensors -> HF Llama tensors (vocab trimmed to arch.vocab_size; mtp.* dropped)."""
    state = normalize_mcore(state, arch.num_layers)
    hf, used = {}, set()

    def take(key):
        if key not in state:
            raise ConversionError(f"checkpoint has no tensor {key!r}; is it a GPT model with "
                                  "untied embeddings, RMSNorm and SwiGLU?")
        used.add(key)
        return state[key]

    emb = take("embedding.word_embeddings.weight")
    if emb.shape[0] < arch.vocab_size:
        raise ConversionError(f"vocab_size {arch.vocab_size} exceeds the checkpoint's {emb.shape[0]} embedding "
                              "rows; pass the tokenizer the model was trained with")
    hf["model.embed_tokens.weight"] = resize_vocab(emb, arch.vocab_size)
    for i in range(arch.num_layers):
        p, h = f"decoder.layers.{i}.", f"model.layers.{i}."
        for src, dst in _DIRECT.items():
            hf[h + dst] = take(p + src)
        q, k, v = split_qkv(take(p + "self_attention.linear_qkv.weight"), arch)
        hf[h + "self_attn.q_proj.weight"], hf[h + "self_attn.k_proj.weight"], hf[h + "self_attn.v_proj.weight"] = q, k, v
        gate, up = split_fc1(take(p + "mlp.linear_fc1.weight"), arch)
        hf[h + "mlp.gate_proj.weight"], hf[h + "mlp.up_proj.weight"] = gate, up
    hf["model.norm.weight"] = take("decoder.final_layernorm.weight")
    hf["lm_head.weight"] = resize_vocab(take("output_layer.weight"), arch.vocab_size)
    mtp = [k for k in state if k.startswith("mtp.")]
    if mtp:
        log.info("dropping %d multi-token-prediction tensors (mtp.*): HF Llama has no MTP head", len(mtp))
    rest = sorted(set(state) - used - set(mtp))
    if rest:
        raise ConversionError(f"checkpoint tensors with no HF Llama counterpart: {rest[:8]}"
                              f"{' ...' if len(rest) > 8 else ''} (biases, qk-layernorm, MoE are not supported)")
    return hf


def hf_to_mcore(hf: dict[str, torch.Tensor], arch: ModelArch, padded_vocab_size: int) -> dict[str, torch.Tensor]:
    """HF Llama tensors -> canonical per-layer megatron tensors, vocab padded to padded_vocab_size."""
    used = set()

    def take(key):
        if key not in hf:
            raise ConversionError(f"HF checkpoint has no tensor {key!r}" + (
                " (tied embeddings are not supported)" if key == "lm_head.weight" else ""))
        used.add(key)
        return hf[key]

    out = {"embedding.word_embeddings.weight": resize_vocab(take("model.embed_tokens.weight"), padded_vocab_size)}
    for i in range(arch.num_layers):
        p, h = f"decoder.layers.{i}.", f"model.layers.{i}."
        for dst, src in _DIRECT.items():
            out[p + dst] = take(h + src)
        out[p + "self_attention.linear_qkv.weight"] = merge_qkv(
            take(h + "self_attn.q_proj.weight"), take(h + "self_attn.k_proj.weight"),
            take(h + "self_attn.v_proj.weight"), arch)
        out[p + "mlp.linear_fc1.weight"] = torch.cat(
            [take(h + "mlp.gate_proj.weight"), take(h + "mlp.up_proj.weight")], dim=0)
    out["decoder.final_layernorm.weight"] = take("model.norm.weight")
    out["output_layer.weight"] = resize_vocab(take("lm_head.weight"), padded_vocab_size)
    rest = sorted(k for k in set(hf) - used if not k.endswith("rotary_emb.inv_freq"))
    if rest:
        raise ConversionError(f"HF tensors with no megatron counterpart: {rest[:8]}")
    return out
