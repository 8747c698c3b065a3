"""Memory plan: exact parameter counts for the 7B recipe (analytic == meta-device build), the
bytes-per-param table, Korthikanti et al.'s activation formulas, one hand-checked layout, CLI."""
from __future__ import annotations

import dataclasses

import pytest

from xlda.model.recipes import tiny, trillion_7b
from xlda.cli.memory_plan import main
from xlda.training.memory_plan import (GB, MemoryPlanConfig, bytes_per_param,
                                       layer_activation_bytes, meta_parameter_count,
                                       stage_parameters)

SEVEN_B = 7_525_896_192  # 2*128128*4096 + 32*(4*4096^2 + 3*4096*11008 + 2*4096) + 4096


def test_7b_parameter_count_analytic_and_meta():
    cfg = trillion_7b()
    assert cfg.num_parameters() == SEVEN_B
    assert round(SEVEN_B * 2 / GB, 2) == 15.05  # bf16 weights
    assert meta_parameter_count(cfg) == SEVEN_B
    assert meta_parameter_count(cfg, include_mtp=True) == cfg.num_parameters(include_mtp=True)


def test_bytes_per_param_table():
    # Megatron's table (bf16 params, fp32 grads): 18 B; distributed optimizer: 6 + 12/DP.
    assert bytes_per_param(True, False, 64) == {"param": 2, "grad": 4, "optimizer": 12}
    assert bytes_per_param(True, True, 64) == {"param": 2, "grad": 4, "optimizer": 0.1875}
    assert bytes_per_param(True, True, 8, grad_fp32=False) == {"param": 2, "grad": 2,
                                                               "optimizer": 1.5}
    assert bytes_per_param(False, True, 4) == {"param": 4, "grad": 4, "optimizer": 2}


def _paper_model():
    # The paper's assumptions: MHA, GELU, FFN 4h, dropout, attention matrix materialised.
    return tiny(hidden_size=64, num_attention_heads=8, num_query_groups=None,
                ffn_hidden_size=256, swiglu=False, hidden_dropout=0.1, attention_dropout=0.1)


@pytest.mark.parametrize("s,b,t", [(128, 1, 1), (256, 2, 2), (512, 4, 8)])
def test_activations_reproduce_korthikanti(s, b, t):
    m = _paper_model()
    h, a = m.hidden_size, m.num_attention_heads
    sbh = s * b * h
    assert layer_activation_bytes(m, s, b, 1, attention_matrix=True) == pytest.approx(
        sbh * (34 + 5 * a * s / h))
    assert layer_activation_bytes(m, s, b, t, attention_matrix=True) == pytest.approx(
        sbh * (10 + 24 / t + 5 * a * s / (h * t)))
    assert layer_activation_bytes(m, s, b, t, sp=True, attention_matrix=True) == pytest.approx(
        sbh / t * (34 + 5 * a * s / h))
    # Flash-style attention (all xlda executors) never stores the s^2 terms.
    assert layer_activation_bytes(m, s, b, 1) == 34 * sbh
    assert layer_activation_bytes(m, s, b, t, sp=True, recompute="full") == 2 * sbh / t


def test_hand_checked_7b_layout():
    """TP2 x PP2 x DP64 on 32 nodes x 8 GPUs, micro-batch 1, seq 4096, distributed optimizer."""
    m = trillion_7b()
    c = MemoryPlanConfig(tensor_model_parallel_size=2, pipeline_model_parallel_size=2,
                         num_nodes=32, gpus_per_node=8)
    assert c.data_parallel_size == 64
    h, f, L = 4096, 11008, 32
    layer_tp2 = (4 * h * h + 3 * h * f) // 2 + 2 * h  # norms replicated
    emb_tp2 = 128256 * h // 2  # vocab padded to a multiple of 128*TP = 256
    first = 16 * layer_tp2 + emb_tp2
    assert first == 1_881_800_704
    mtp = 3 * h + 2 * h * h // 2 + layer_tp2
    assert stage_parameters(m, 2, 2) == {"first": first, "last": 16 * layer_tp2 + h + emb_tp2 + mtp}
    # Per layer, s=4096 b=1 t=2, no SP, no dropout: replicated 8sbh; Q,K,V,proj-in
    # 2sb(h+Gd)+2sbGd+2sbh = 8sbh over t; SwiGLU MLP 6sbf over t.
    sb = 4096
    per_layer = 8 * sb * h + (8 * sb * h) // 2 + (6 * sb * f) // 2
    assert layer_activation_bytes(m, 4096, 1, 2) == per_layer == 336_592_896
    p = c.build(m)
    assert p.stage == "first" and p.params_per_gpu == first
    expected = {
        "weights (bf16)": 2 * first, "gradients": 4 * first,
        "optimizer (fp32 main + Adam m,v)": 12 * first / 64,
        "activations (16 layers x 2 mb)": per_layer * 16 * 2,  # 1F1B: PP micro-batches in flight
        "reserved (context/NCCL/fragm.)": 4 * GB,
        # flex: kept BlockMask 4 x 4 B x (32^2 + 32) and build temporaries 4 x 4 B x 32 x 4096,
        # for each of the 2 micro-batches in flight
        "flex BlockMask (per micro-batch)": 2 * (16 * (32 * 32 + 32) + 16 * 32 * 4096),
    }
    assert p.rows == pytest.approx(expected)
    assert round(p.total_bytes / GB, 2) == 26.42 and p.fits
    # Without the distributed optimizer and without PP the 7B needs more than an 80 GB GPU.
    big = dataclasses.replace(c, tensor_model_parallel_size=1, pipeline_model_parallel_size=1,
                              use_distributed_optimizer=False)
    assert not big.build(m).fits


def test_thd_te_kv_expansion_and_metrics_p99(tmp_path, capsys):
    from xlda.training.memory_plan import kv_expansion_from_metrics

    m = trillion_7b()
    # gathered K and V, bf16: 2 x 2 B x E x s x b x (G d / t) per layer, on top of the plain layer
    plain = layer_activation_bytes(m, 4096, 1, 2)
    assert layer_activation_bytes(m, 4096, 1, 2, kv_expansion=6.3) - plain == pytest.approx(
        4 * 6.3 * 4096 * 4096 / 2)
    c = MemoryPlanConfig(tensor_model_parallel_size=2, num_nodes=32, sequence_parallel=True,
                         attention_backend="te")
    te, flex = c.build(m), dataclasses.replace(c, attention_backend="flex").build(m)
    acts = lambda p: next(v for k, v in p.rows.items() if k.startswith("activations"))
    assert acts(te) - acts(flex) == pytest.approx(32 * 4 * 6.3 * 4096 * 4096 / 2)
    assert te.rows["THD K/V gather index (E=6.3)"] == pytest.approx(8 * 6.3 * 4096)
    causal = dataclasses.replace(m, attention_mask_type="causal")
    assert not any(k.startswith("THD") for k in c.build(causal).rows)  # causal: no gather
    # p99 of the per-step worst sample a trainer run logged (numpy's linear interpolation)
    log = tmp_path / "metrics.jsonl"
    log.write_text("".join(f'{{"iteration": {i}, "kv_expansion_max": {x}}}\n'
                           for i, x in enumerate([2.0] * 99 + [12.0])) + '{"eval": 1}\n')
    assert kv_expansion_from_metrics(log) == pytest.approx(2.0 + (12.0 - 2.0) * 0.01)
    base = ["--config", "examples/trillion7b/trillion_7b.yaml", "--tensor-model-parallel-size",
            "2", "--num-nodes", "32", "--sequence-parallel", "--attention-backend", "te"]
    assert main(base + ["--metrics-jsonl", str(log)]) == 0
    assert f"K/V expansion 2.1 (p99 of kv_expansion_max in {log})" in capsys.readouterr().out
    assert main(base + ["--kv-expansion", "4"]) == 0
    assert "K/V expansion 4 (--kv-expansion)" in capsys.readouterr().out
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"iteration": 1}\nnot json\n')
    with pytest.raises(SystemExit):
        main(base + ["--metrics-jsonl", str(bad)])
    assert f"{bad}:2: not JSON" in capsys.readouterr().err


def test_recompute_and_distributed_optimizer_only_reduce_memory():
    m = trillion_7b()
    base = MemoryPlanConfig(tensor_model_parallel_size=2, num_nodes=2, use_distributed_optimizer=False)
    totals = [dataclasses.replace(base, **kw).build(m).total_bytes for kw in (
        {}, {"recompute_granularity": "selective"}, {"recompute_granularity": "full"})]
    assert totals[0] > totals[1] > totals[2]
    assert dataclasses.replace(base, use_distributed_optimizer=True).build(m).total_bytes < totals[0]


def test_cli_prints_table(capsys):
    assert main(["--config", "examples/trillion7b/trillion_7b.yaml",
                 "--tensor-model-parallel-size", "2", "--pipeline-model-parallel-size", "2",
                 "--num-nodes", "32", "--gpus-per-node", "8"]) == 0
    out = capsys.readouterr().out
    assert "7,525,896,192 parameters without MTP (15.05 GB in bf16)" in out
    assert "TP 2 x PP 2 x DP 64 = 256 GPUs" in out
    assert "26.42  (fits in 80 GB" in out  # 26.41 + the flex BlockMask (the recipe's executor)


def test_cli_errors(capsys):
    with pytest.raises(SystemExit):
        main(["--config", "nope.yaml"])
    assert "nope.yaml: no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--config", "examples/trillion7b/trillion_7b.yaml",
              "--tensor-model-parallel-size", "3", "--num-nodes", "1"])
    assert "8 GPUs (1 nodes x 8) are not divisible by TP 3" in capsys.readouterr().err


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(layers=st.integers(1, 8), heads=st.sampled_from([2, 4, 8]), groups=st.sampled_from([1, 2]),
       ffn=st.integers(8, 300), swiglu=st.booleans(), tied=st.booleans(),
       mtp=st.sampled_from([None, 1]), norm=st.sampled_from(["RMSNorm", "LayerNorm"]),
       s=st.integers(1, 64), b=st.integers(1, 4), t=st.sampled_from([1, 2, 4]))
def test_stage_counts_and_activation_invariants(layers, heads, groups, ffn, swiglu, tied, mtp,
                                                norm, s, b, t):
    m = tiny(num_layers=layers, hidden_size=16 * heads, num_attention_heads=heads,
             num_query_groups=groups, ffn_hidden_size=ffn, swiglu=swiglu, normalization=norm,
             untie_embeddings_and_output_weights=not tied, mtp_num_layers=mtp)
    # One GPU holds the whole model: the plan's count is the model's count.
    assert stage_parameters(m, 1, 1) == {"only": m.num_parameters(include_mtp=True)}
    full = layer_activation_bytes(m, s, b, 1)
    # Sequence parallelism divides everything by t; TP alone never beats it, recompute only helps.
    assert layer_activation_bytes(m, s, b, t, sp=True) == pytest.approx(full / t)
    assert layer_activation_bytes(m, s, b, t) >= layer_activation_bytes(m, s, b, t, sp=True)
    assert (layer_activation_bytes(m, s, b, t, recompute="full")
            <= layer_activation_bytes(m, s, b, t, recompute="selective")
            <= layer_activation_bytes(m, s, b, t))


def test_rlvr_rollout_kv_cache_and_reference_by_hand(capsys):
    from xlda.training.memory_plan import rollout_kv_cache_bytes

    # 32 rows x 3072 tokens x 32 layers x K and V x 32 heads x 128 x 2 B / TP 2 = 25.77 GB
    kv = rollout_kv_cache_bytes(trillion_7b(), 32, 3072, 2, 32)
    assert kv == 32 * 3072 * 32 * 2 * 4096 * 2 / 2 == 25_769_803_776
    # the rlvr_7b.sbatch layout; the recipe's rollout_micro_batch_size (32) is the default rows
    args = ["--config", "examples/trillion7b/rlvr_7b.yaml", "--tensor-model-parallel-size", "2",
            "--num-nodes", "4", "--micro-batch-size", "1", "--no-sequence-parallel",
            "--attention-backend", "te", "--kv-expansion", "1.0"]
    assert main(args) == 0
    out = capsys.readouterr().out
    # the cache replaces the step's activations while a round decodes: only what it needs beyond
    # them (25.77 - 8.88 activations - 0.79 logits - 1.07 MTP = 15.03) is added
    assert "rollout KV 25.8 GB - activations       15.03" in out
    assert "55.97  (fits in 80 GB" in out and "KL reference" not in out
    assert main(args + ["--kl-reference", "--rollout-rows", "64"]) == 0
    out = capsys.readouterr().out
    assert "KL reference weights (bf16 copy)        7.76" in out  # 2 B x 3.88 G parameters
    assert "rollout KV 51.5 GB - activations       40.80" in out
