"""Tensor mappings megatron-core <-> HF Llama, on hand-built tensors with exact expected values."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from xlda.checkpoint_conversion import layout
from xlda.checkpoint_conversion.arch import ConversionError, ModelArch, pad_vocab


def _arch(heads=4, groups=2, d=1, hidden=1, ffn=2, layers=1, vocab=3):
    return ModelArch(num_layers=layers, hidden_size=hidden, num_attention_heads=heads, num_query_groups=groups,
                     ffn_hidden_size=ffn, vocab_size=vocab, seq_length=8, kv_channels=d)


def test_split_qkv_gqa_exact():
    # rows per group g: [q heads of g, k_g, v_g]; group 0 = rows 0..3, group 1 = rows 4..7
    qkv = torch.arange(8.0).reshape(8, 1)
    q, k, v = layout.split_qkv(qkv, _arch(heads=4, groups=2))
    assert q.flatten().tolist() == [0, 1, 4, 5]
    assert k.flatten().tolist() == [2, 6]
    assert v.flatten().tolist() == [3, 7]


def test_split_qkv_mha_head_dim_2_exact():
    # MHA, 2 heads, head dim 2: head h = rows [q_h (2 rows), k_h (2), v_h (2)]
    qkv = torch.arange(12.0).reshape(12, 1)
    q, k, v = layout.split_qkv(qkv, _arch(heads=2, groups=2, d=2))
    assert q.flatten().tolist() == [0, 1, 6, 7]
    assert k.flatten().tolist() == [2, 3, 8, 9]
    assert v.flatten().tolist() == [4, 5, 10, 11]


def test_split_qkv_rejects_wrong_shape():
    with pytest.raises(ConversionError, match=r"expected \(8, 1\)"):
        layout.split_qkv(torch.zeros(6, 1), _arch())


@settings(max_examples=40, deadline=None)
@given(groups=st.integers(1, 4), per_group=st.integers(1, 4), d=st.integers(1, 4), hidden=st.integers(1, 5))
def test_qkv_round_trip(groups, per_group, d, hidden):
    arch = _arch(heads=groups * per_group, groups=groups, d=d, hidden=hidden)
    w = torch.randn(groups * (per_group + 2) * d, hidden)
    q, k, v = layout.split_qkv(w, arch)
    assert q.shape == (groups * per_group * d, hidden) and k.shape == v.shape == (groups * d, hidden)
    assert torch.equal(layout.merge_qkv(q, k, v, arch), w)


def test_split_fc1_gate_first():
    fc1 = torch.arange(8.0).reshape(4, 2)
    gate, up = layout.split_fc1(fc1, _arch(ffn=2))
    assert gate.tolist() == [[0, 1], [2, 3]] and up.tolist() == [[4, 5], [6, 7]]


def test_resize_vocab_trims_and_pads_with_last_row():
    w = torch.arange(6.0).reshape(3, 2)
    assert layout.resize_vocab(w, 2).tolist() == [[0, 1], [2, 3]]
    assert layout.resize_vocab(w, 5).tolist() == [[0, 1], [2, 3], [4, 5], [4, 5], [4, 5]]


def test_pad_vocab_like_megatron():
    assert pad_vocab(450, 100, 1) == 500
    assert pad_vocab(450, 100, 2) == 600
    assert pad_vocab(50257, 128, 1) == 50304
    assert pad_vocab(512, 128, 4) == 512


def _mcore_state(arch, seed=0):
    g = torch.Generator().manual_seed(seed)
    h, d = arch.hidden_size, arch.kv_channels
    s = {"embedding.word_embeddings.weight": torch.randn(6, h, generator=g),
         "decoder.final_layernorm.weight": torch.randn(h, generator=g),
         "output_layer.weight": torch.randn(6, h, generator=g)}
    for i in range(arch.num_layers):
        p = f"decoder.layers.{i}."
        s[p + "self_attention.linear_qkv.layer_norm_weight"] = torch.randn(h, generator=g)
        s[p + "self_attention.linear_qkv.weight"] = torch.randn(
            (arch.heads_per_group + 2) * arch.num_query_groups * d, h, generator=g)
        s[p + "self_attention.linear_proj.weight"] = torch.randn(h, arch.num_attention_heads * d, generator=g)
        s[p + "mlp.linear_fc1.layer_norm_weight"] = torch.randn(h, generator=g)
        s[p + "mlp.linear_fc1.weight"] = torch.randn(2 * arch.ffn_hidden_size, h, generator=g)
        s[p + "mlp.linear_fc2.weight"] = torch.randn(h, arch.ffn_hidden_size, generator=g)
    return s


def test_mcore_hf_round_trip_stacked_local_names_and_mtp():
    arch = _arch(heads=4, groups=2, d=2, hidden=8, ffn=6, layers=3, vocab=5)
    state = _mcore_state(arch)
    hf = layout.mcore_to_hf(state, arch)
    assert hf["model.embed_tokens.weight"].shape == (5, 8)  # 6 padded rows trimmed to the true vocab
    assert torch.equal(hf["model.layers.2.input_layernorm.weight"],
                       state["decoder.layers.2.self_attention.linear_qkv.layer_norm_weight"])
    assert torch.equal(hf["model.layers.1.post_attention_layernorm.weight"],
                       state["decoder.layers.1.mlp.linear_fc1.layer_norm_weight"])
    back = layout.hf_to_mcore(hf, arch, padded_vocab_size=6)
    assert set(back) == set(state)
    for k in state:
        if "word_embeddings" in k or "output_layer" in k:
            assert torch.equal(back[k][:5], state[k][:5]) and torch.equal(back[k][5], state[k][4])
        else:
            assert torch.equal(back[k], state[k]), k
    # the same tensors as megatron-core's stacked dist-checkpoint keys, with local-spec norm names
    # and an MTP head (dropped on export) give the same HF tensors
    stacked = layout.stack_layers(state, arch.num_layers)
    assert stacked["decoder.layers.mlp.linear_fc2.weight"].shape == (3, 8, 6)
    stacked["decoder.layers.input_layernorm.weight"] = stacked.pop(
        "decoder.layers.self_attention.linear_qkv.layer_norm_weight")
    stacked["mtp.layers.0.enorm.weight"] = torch.ones(8)
    hf2 = layout.mcore_to_hf(stacked, arch)
    assert set(hf2) == set(hf) and all(torch.equal(hf2[k], hf[k]) for k in hf)


def test_unknown_tensors_are_errors_not_dropped():
    arch = _arch(hidden=8, d=2, ffn=6)
    state = _mcore_state(arch)
    state["decoder.layers.0.self_attention.linear_qkv.bias"] = torch.zeros(16)
    with pytest.raises(ConversionError, match="linear_qkv.bias"):
        layout.mcore_to_hf(state, arch)
    del state["decoder.layers.0.self_attention.linear_qkv.bias"], state["output_layer.weight"]
    with pytest.raises(ConversionError, match="output_layer.weight"):
        layout.mcore_to_hf(state, arch)


def test_vocab_larger_than_embedding_is_an_error():
    arch = _arch(hidden=8, d=2, ffn=6, vocab=7)
    with pytest.raises(ConversionError, match="vocab_size 7 exceeds the checkpoint's 6"):
        layout.mcore_to_hf(_mcore_state(arch), arch)
