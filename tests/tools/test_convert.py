"""tools/checkpoint/convert.py: megatron-core <-> HF Llama and TP/PP resharding, end to end.

An xlda model (causal mask) saved by the trainer's save_checkpoint is converted to HF and run by
transformers' LlamaForCausalLM, an independent implementation: logits on real corpus text must
agree. HF -> mcore -> HF must be bit-identical; resharded checkpoints must load (with the
trainer's load_checkpoint) at TP=2 / PP=2 and give the same logits.
"""
import json
import shutil

import pytest
import torch

from tests.checkpoint_conversion import workers
from tests.data.fixtures import corpus_docs, train_test_tokenizer
from xlda.checkpoint_conversion import ConversionError, ConvertConfig

VOCAB = 450  # padded to 500 at TP=1 and 600 at TP=2 (make_vocab_size_divisible_by=100)
MODEL = dict(num_layers=2, hidden_size=64, num_attention_heads=4, num_query_groups=2, ffn_hidden_size=96,
             vocab_size=VOCAB, make_vocab_size_divisible_by=100, seq_length=64, rotary_base=500000,
             norm_epsilon=1e-5, attention_mask_type="causal", attention_backend="sdpa",
             init_method_std=0.1)  # larger weights: mapping errors show clearly in the logits
TOL = 1e-4


@pytest.fixture(scope="module")
def tok_path(tmp_path_factory, corpus):
    return train_test_tokenizer(tmp_path_factory.mktemp("tok"), vocab_size=VOCAB, corpus_dir=corpus, docs_per_lang=30)


@pytest.fixture(scope="module")
def tokens(tok_path, corpus):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tok_path))
    rows = [tok.encode(corpus_docs(corpus, lang, 3)[2]["text"]).ids[:32] for lang in ("en", "ko")]
    assert all(len(r) == 32 for r in rows)
    return torch.tensor(rows)


def _hf_logits(hf_dir, tokens):
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(str(hf_dir), dtype=torch.float32).eval()
    with torch.no_grad():
        return model(tokens).logits


@pytest.fixture(scope="module")
def source_tp1(tmp_path_factory, tokens):
    """A TP=1 checkpoint saved in this process by the trainer's save_checkpoint, and its logits."""
    from tests.model.dist_fixtures import init_single_process

    init_single_process(seed=1234)
    from xlda.model import ModelConfig
    from xlda.training.checkpointing import save_checkpoint
    from xlda.training.config import RunConfig

    mc = ModelConfig.from_dict(MODEL)
    model = mc.build()
    workers._perturb_norms(model)
    d = tmp_path_factory.mktemp("src_tp1")
    save_checkpoint(d, 10, [model], None, None, run_config=RunConfig(model=mc))
    return d, workers.logits(model, mc, tokens)


@pytest.fixture(scope="module")
def hf_tp1(source_tp1, tok_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("hf") / "model"
    ConvertConfig("mcore", "hf", str(source_tp1[0]), str(out), tokenizer_model=str(tok_path)).run()
    return out


def _assert_close(a, b, what):
    diff = (a - b).abs().max().item()
    print(f"{what}: max |logit diff| = {diff:.3e} (logit std {b.std().item():.3f})")
    assert b.std() > 0.1  # real logits, not a degenerate model
    assert diff < TOL, f"{what}: max logit diff {diff}"


def test_mcore_to_hf_matches_transformers_llama(source_tp1, hf_tp1, tokens, tok_path):
    _, ref = source_tp1
    assert ref.shape == (2, 32, 500)
    _assert_close(_hf_logits(hf_tp1, tokens), ref[..., :VOCAB], "mcore TP=1 -> HF")
    cfg = json.loads((hf_tp1 / "config.json").read_text())
    assert (cfg["vocab_size"], cfg["num_key_value_heads"], cfg["rope_theta"], cfg["tie_word_embeddings"]) == (
        VOCAB, 2, 500000, False)
    assert json.loads((hf_tp1 / "generation_config.json").read_text())["eos_token_id"] == 0
    from transformers import AutoTokenizer

    hf_tok = AutoTokenizer.from_pretrained(str(hf_tp1))
    assert hf_tok.eos_token == "<|endoftext|>" and hf_tok.eos_token_id == 0
    text = "Open the Format menu. 서식 메뉴를 엽니다."
    from tokenizers import Tokenizer

    assert hf_tok(text)["input_ids"] == Tokenizer.from_file(str(tok_path)).encode(text).ids


def _tensors(d):
    from xlda.checkpoint_conversion.hf_io import read_hf

    return read_hf(d)


def _assert_identical(a_dir, b_dir):
    (ca, ta), (cb, tb) = _tensors(a_dir), _tensors(b_dir)
    assert ca == cb
    assert set(ta) == set(tb)
    for k in ta:
        assert ta[k].dtype == tb[k].dtype and torch.equal(ta[k], tb[k]), k


def test_hf_to_mcore_loads_in_trainer_and_round_trips_bit_identical(hf_tp1, tokens, tmp_path, tok_path):
    from tests.model.dist_fixtures import init_single_process

    mc_dir = tmp_path / "mcore"
    ConvertConfig("hf", "mcore", str(hf_tp1), str(mc_dir), tokenizer_model=str(tok_path)).run()
    assert (mc_dir / "latest_checkpointed_iteration.txt").read_text() == "0"
    # the trainer's own load_checkpoint takes it (TP=1, fresh seed), same logits as HF
    init_single_process()
    ref = _hf_logits(hf_tp1, tokens)
    out = workers.load_converted(0, 1, mc_dir, 1, 1, tokens)
    _assert_close(out[..., :VOCAB], ref, "HF -> mcore TP=1 (trainer load)")
    back = tmp_path / "hf_back"
    ConvertConfig("mcore", "hf", str(mc_dir), str(back), tokenizer_model=str(tok_path)).run()
    _assert_identical(hf_tp1, back)
    # through a TP=2/PP=2 target (vocab padded to 600) and a sharded HF folder
    mc2 = tmp_path / "mcore_tp2"
    ConvertConfig("hf", "mcore", str(hf_tp1), str(mc2), target_tensor_parallel_size=2,
                  target_pipeline_parallel_size=2).run()
    back2 = tmp_path / "hf_back2"
    ConvertConfig("mcore", "hf", str(mc2), str(back2), tokenizer_model=str(tok_path), max_shard_size="50KB").run()
    index = json.loads((back2 / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    _assert_identical(hf_tp1, back2)


def test_bf16_export(source_tp1, tmp_path, tokens):
    out = tmp_path / "hf16"
    ConvertConfig("mcore", "hf", str(source_tp1[0]), str(out), dtype="bfloat16").run()
    cfg, t = _tensors(out)
    assert cfg["torch_dtype"] == "bfloat16" and all(v.dtype == torch.bfloat16 for v in t.values())
    # bf16 weights: close to the fp32 logits, not equal
    diff = (_hf_logits(out, tokens) - source_tp1[1][..., :VOCAB]).abs().max().item()
    assert 1e-4 < diff < 0.5


@pytest.mark.slow
def test_multiprocess_tp2_source_and_reshards(source_tp1, tokens, tmp_path, tok_path):
    """TP=2 source -> HF; TP=1 -> TP=2 and -> PP=2 reshards loaded by 2 gloo ranks."""
    from xlda.testing.distributed import run_distributed

    src, ref = source_tp1
    tp2, pp2 = tmp_path / "tp2", tmp_path / "pp2"
    ConvertConfig("mcore", "mcore", str(src), str(tp2), target_tensor_parallel_size=2).run()
    ConvertConfig("mcore", "mcore", str(src), str(pp2), target_pipeline_parallel_size=2).run()
    src2 = tmp_path / "src_tp2"
    res = run_distributed(workers.round_trip_2ranks, 2, args=(str(tp2), str(pp2), str(src2), MODEL, tokens),
                          timeout=600)
    l_tp2, l_pp2, l_src2 = (next(r[i] for r in res if r[i] is not None) for i in range(3))
    assert l_tp2.shape[-1] == 600  # re-padded for TP=2
    _assert_close(l_tp2[..., :VOCAB], ref[..., :VOCAB], "mcore TP=1 -> TP=2 reshard")
    _assert_close(l_pp2, ref, "mcore TP=1 -> PP=2 reshard")
    hf2 = tmp_path / "hf_from_tp2"
    ConvertConfig("mcore", "hf", str(src2), str(hf2), tokenizer_model=str(tok_path)).run()
    _assert_close(_hf_logits(hf2, tokens), l_src2[..., :VOCAB], "mcore TP=2 -> HF")


# ---- errors: which file, what to do ----------------------------------------------------------

def test_missing_tracker_and_iter_dir(tmp_path):
    (tmp_path / "iter_0000005").mkdir()
    with pytest.raises(ConversionError, match=r"latest_checkpointed_iteration.txt not found.*iter_0000005.*--iteration"):
        ConvertConfig("mcore", "hf", str(tmp_path), str(tmp_path / "o")).run()
    with pytest.raises(ConversionError, match=r"iter_0000007 is missing \(iteration 7\)"):
        ConvertConfig("mcore", "hf", str(tmp_path), str(tmp_path / "o"), iteration=7).run()
    with pytest.raises(ConversionError, match=r"iter_0000005/metadata.json is missing.*interrupted"):
        ConvertConfig("mcore", "hf", str(tmp_path), str(tmp_path / "o"), iteration=5).run()


def test_partial_checkpoint_and_missing_run_config(source_tp1, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(source_tp1[0], src)
    (src / "iter_0000010" / "run_config.yaml").unlink()
    with pytest.raises(ConversionError, match=r"iter_0000010/run_config.yaml is missing"):
        ConvertConfig("mcore", "hf", str(src), str(tmp_path / "o")).run()
    shutil.copy(source_tp1[0] / "iter_0000010" / "run_config.yaml", src / "iter_0000010")
    for f in (src / "iter_0000010").glob("*.distcp"):
        f.unlink()  # the tensor data of a torn save
    with pytest.raises(ConversionError, match=r"iter_0000010: reading tensors failed \(.*__0_0.distcp is missing\).*incomplete"):
        ConvertConfig("mcore", "hf", str(src), str(tmp_path / "o")).run()


def test_tokenizer_larger_than_model_vocab(source_tp1, hf_tp1, tmp_path, corpus):
    big = train_test_tokenizer(tmp_path, vocab_size=VOCAB + 60, corpus_dir=corpus, docs_per_lang=30)
    with pytest.raises(ConversionError, match=rf"{big.name} has 510 tokens but the model .*run_config.yaml.*vocab_size={VOCAB}"):
        ConvertConfig("mcore", "hf", str(source_tp1[0]), str(tmp_path / "o"), tokenizer_model=str(big)).run()
    with pytest.raises(ConversionError, match=r"has 510 tokens but the model .*config.json"):
        ConvertConfig("hf", "mcore", str(hf_tp1), str(tmp_path / "o2"), tokenizer_model=str(big)).run()


def test_hf_missing_files(hf_tp1, tmp_path):
    d = tmp_path / "hf"
    shutil.copytree(hf_tp1, d)
    (d / "config.json").unlink()
    with pytest.raises(ConversionError, match=r"hf/config.json is missing"):
        ConvertConfig("hf", "mcore", str(d), str(tmp_path / "o")).run()
    shutil.copy(hf_tp1 / "config.json", d)
    # a sharded folder with one shard gone
    from xlda.checkpoint_conversion.hf_io import read_hf, write_hf

    cfg, t = read_hf(hf_tp1)
    sh = tmp_path / "sharded"
    write_hf(sh, t, cfg, None, max_shard_size="50KB")
    shards = sorted(set(json.loads((sh / "model.safetensors.index.json").read_text())["weight_map"].values()))
    assert len(shards) > 2
    (sh / shards[1]).unlink()
    with pytest.raises(ConversionError, match=rf"{shards[1]} is listed in model.safetensors.index.json but missing"):
        ConvertConfig("hf", "mcore", str(sh), str(tmp_path / "o")).run()


def test_bad_target_parallelism_and_cli_exit_code(hf_tp1, tmp_path, capsys):
    with pytest.raises(ConversionError, match=r"--target-tensor-parallel-size 3 does not divide num_attention_heads=4"):
        ConvertConfig("hf", "mcore", str(hf_tp1), str(tmp_path / "o"), target_tensor_parallel_size=3).run()
    import importlib.util

    spec = importlib.util.spec_from_file_location("convert_cli", "tools/checkpoint/convert.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    rc = cli.main(["--from", "hf", "--to", "mcore", "--load-dir", str(hf_tp1), "--save-dir", str(tmp_path / "o"),
                   "--target-pipeline-parallel-size", "3"])
    assert rc == 2
    assert "--target-pipeline-parallel-size 3 does not divide num_layers=2" in capsys.readouterr().err


def test_transformers_saved_mha_model_imports(tmp_path, tokens):
    """An HF Llama written by transformers itself (MHA, random weights) -> mcore -> trainer load."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests.model.dist_fixtures import init_single_process

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                      rms_norm_eps=1e-6, tie_word_embeddings=False, initializer_range=0.2,
                      rope_parameters={"rope_type": "default", "rope_theta": 20000.0})
    hf = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for n, p in hf.named_parameters():
            if "norm" in n:
                p.uniform_(0.5, 1.5)
    hf.save_pretrained(tmp_path / "hf")
    with torch.no_grad():
        ref = hf(tokens).logits
    ConvertConfig("hf", "mcore", str(tmp_path / "hf"), str(tmp_path / "mc")).run()
    init_single_process()
    out = workers.load_converted(0, 1, tmp_path / "mc", 1, 1, tokens)
    _assert_close(out[..., :VOCAB], ref, "transformers MHA -> mcore (trainer load)")


def test_mtp_head_is_dropped_on_export(tmp_path, tokens):
    from tests.model.dist_fixtures import init_single_process

    init_single_process(seed=7)
    from xlda.model import ModelConfig
    from xlda.training.checkpointing import save_checkpoint
    from xlda.training.config import RunConfig

    mc = ModelConfig.from_dict({**MODEL, "mtp_num_layers": 1, "num_query_groups": None})
    model = mc.build()
    workers._perturb_norms(model)
    save_checkpoint(tmp_path / "src", 3, [model], None, None, run_config=RunConfig(model=mc))
    ConvertConfig("mcore", "hf", str(tmp_path / "src"), str(tmp_path / "hf")).run()
    _, t = _tensors(tmp_path / "hf")
    assert not any("mtp" in k for k in t) and len(t) == 2 + 2 * 9 + 1
    # megatron's forward needs labels once MTP is on; the same weights without the MTP head give
    # the main head's logits
    plain = ModelConfig.from_dict({**MODEL, "num_query_groups": None}).build()
    sd = {k: v for k, v in model.state_dict().items() if not k.startswith("mtp.")}
    plain.load_state_dict(sd, strict=True)
    ref = workers.logits(plain, mc, tokens)
    _assert_close(_hf_logits(tmp_path / "hf", tokens), ref[..., :VOCAB], "mcore MHA+MTP -> HF")


# ---- hardening (issue 11 items 18-19, issue 12 items 1 and 8) ---------------------------------

def test_bad_tokenizer_safetensors_and_config_name_the_file(hf_tp1, source_tp1, tmp_path):
    bad_tok = tmp_path / "tokenizer.json"
    bad_tok.write_text('{"model": {"type": "BPE", "vocab": ')  # truncated JSON
    with pytest.raises(ConversionError, match=rf"--tokenizer-model {bad_tok}: not a valid HF tokenizer.json"):
        ConvertConfig("mcore", "hf", str(source_tp1[0]), str(tmp_path / "o"), tokenizer_model=str(bad_tok)).run()
    d = tmp_path / "hf"
    shutil.copytree(hf_tp1, d)
    good = (d / "model.safetensors").read_bytes()
    for name, data in (("truncated", good[: len(good) // 2]), ("garbled header", b"\xff" * 8 + good[8:])):
        (d / "model.safetensors").write_bytes(data)
        with pytest.raises(ConversionError, match=rf"{d / 'model.safetensors'}: not a readable safetensors file"):
            ConvertConfig("hf", "mcore", str(d), str(tmp_path / "o")).run()
    (d / "model.safetensors").write_bytes(good)
    gpt2 = {"architectures": ["GPT2LMHeadModel"], "n_layer": 2, "n_embd": 64, "n_head": 4, "vocab_size": VOCAB}
    (d / "config.json").write_text(json.dumps(gpt2))
    with pytest.raises(ConversionError, match=r"hf/config.json: no model_type \(architectures=\['GPT2LMHeadModel'\]\)"):
        ConvertConfig("hf", "mcore", str(d), str(tmp_path / "o")).run()
    (d / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "hidden_size": 64}))
    with pytest.raises(ConversionError, match=r"config.json: a Llama config needs integer num_hidden_layers, "
                                              r"num_attention_heads, intermediate_size, vocab_size"):
        ConvertConfig("hf", "mcore", str(d), str(tmp_path / "o")).run()
    assert not (tmp_path / "o").exists()


def test_outputs_have_umask_modes_and_no_staging_left(hf_tp1, tmp_path):
    import os

    for p in hf_tp1.iterdir():
        assert p.stat().st_mode & 0o777 == 0o666 & ~_umask(), p  # safetensors alone writes 0600
    assert sorted(p.name for p in hf_tp1.parent.iterdir()) == ["model"]  # no .model.tmp-PID
    mc = tmp_path / "mc"
    ConvertConfig("hf", "mcore", str(hf_tp1), str(mc)).run()
    assert sorted(p.name for p in mc.iterdir()) == ["iter_0000000", "latest_checkpointed_iteration.txt"]
    assert os.stat(mc / "iter_0000000").st_mode & 0o777 == 0o777 & ~_umask()
    with pytest.raises(ConversionError, match=r"iter_0000000 already exists and is not empty"):
        ConvertConfig("hf", "mcore", str(hf_tp1), str(mc)).run()
    with pytest.raises(ConversionError, match=rf"{hf_tp1} already exists and is not empty"):
        ConvertConfig("mcore", "hf", str(mc), str(hf_tp1)).run()


def _umask():
    import os

    m = os.umask(0)
    os.umask(m)
    return m


def test_convert_help_and_misspelt_flags(capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("convert_cli", "tools/checkpoint/convert.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    with pytest.raises(SystemExit):
        cli.parse_args(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    for text in ("Target tensor model parallel size (default: 1)", "Directory to load model checkpoint from",
                 "(default: 5GB)", "--dtype {float32,bfloat16,float16}"):
        assert text in out
    assert out.count("(default:") == 7  # every optional flag but --help
    for argv, bad, hint in ((["--from", "hf", "--to", "mcore", "--load-dir", "a", "--save-dir", "b",
                              "--target-tensor-parallel", "2"], "--target-tensor-parallel",
                             "--target-tensor-parallel-size"),
                            (["--from", "hf", "--to", "mcore", "--lod-dir", "a", "--save-dir", "b"], "--lod-dir",
                             "--load-dir")):
        with pytest.raises(SystemExit) as e:
            cli.parse_args(argv)
        assert e.value.code == 2 and f"{bad} (did you mean {hint}" in capsys.readouterr().err
