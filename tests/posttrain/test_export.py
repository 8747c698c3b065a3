"""HF export of an SFT result through the existing converter: the chat template lands in
tokenizer_config.json and transformers' apply_chat_template + generate chat with the model."""
import json

import torch

from tests.data.fixtures import write_jsonl
from tests.posttrain.fixtures import chat_tokenizer, sft_records, tiny_cfg
from xlda.posttrain.chat import DEFAULT_TEMPLATE


def test_sft_export_chats_through_apply_chat_template(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from xlda.checkpoint_conversion.convert import ConvertConfig
    from xlda.posttrain.cli import build_trainer

    tok = chat_tokenizer(tmp_path)
    train = write_jsonl(tmp_path / "train.jsonl", sft_records(64, seed=0))
    cfg = tiny_cfg(tmp_path, tok, train, iters=40)
    cfg.checkpoint.save = str(tmp_path / "sft")
    build_trainer(cfg, print_fn=lambda *a, **k: None).setup().train()
    out = ConvertConfig(source="mcore", target="hf", load_dir=str(tmp_path / "sft"),
                        save_dir=str(tmp_path / "hf"), tokenizer_model=str(tok)).run()
    assert json.loads((out / "tokenizer_config.json").read_text())["chat_template"] == DEFAULT_TEMPLATE

    hf_tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out, torch_dtype=torch.float32).eval()
    ids = hf_tok.apply_chat_template([{"role": "user", "content": "what is n3 plus n4"}],
                                     add_generation_prompt=True, return_tensors="pt",
                                     return_dict=True)["input_ids"]
    assert hf_tok.convert_ids_to_tokens(ids[0].tolist())[-2:] == ["<|im_start|>", "assistant"]
    gen = model.generate(ids, max_new_tokens=5, do_sample=False)
    new = hf_tok.convert_ids_to_tokens(gen[0, ids.shape[1]:].tolist())
    # the format SFT taught: one number word, then the end of the turn, where generate stops
    assert len(new) == 2 and new[0] in [f"n{i}" for i in range(10)] and new[1] == "<|im_end|>", new

    # and back: post-training starts from the HF folder (converted through the same converter)
    from xlda.posttrain.cli import main

    save = tmp_path / "again"
    flags = ["sft", "--num-layers", "2", "--hidden-size", "32", "--num-attention-heads", "4",
             "--num-query-groups", "2", "--ffn-hidden-size", "64", "--seq-length", "64",
             "--train-iters", "1", "--lr-warmup-iters", "0", "--lr-decay-style", "constant",
             "--global-batch-size", "4", "--micro-batch-size", "2", "--tokenizer-model", str(tok),
             "--data-path", str(train), "--hf-load", str(out), "--save", str(save),
             # launch.sh's form: --load is the --save dir, the start comes from elsewhere
             "--load", str(save)]
    assert main(flags) == 0
    assert (save / "start_hf" / "latest_checkpointed_iteration.txt").exists()
    assert (save / "latest_checkpointed_iteration.txt").read_text().strip() == "1"


def _own_tokenizer(tmp_path, records):
    """A tokenizer from the project's own tool (tools/build_tokenizer.py), on the records' text."""
    from xlda.tokenizer_build.cli import main as build

    text = [{"text": " ".join(m["content"] for m in r["messages"]), "lang": "en"}
            for r in records]
    src = write_jsonl(tmp_path / "tok_text.jsonl", text * 4)
    assert build(["--base-input", str(src), "--base-vocab-size", "275", "--min-frequency", "1",
                  "--output-dir", str(tmp_path / "tok"), "--speed-repeats", "0"]) == 0
    return tmp_path / "tok" / "tokenizer.json"


def test_chat_model_on_the_project_tokenizer_stops_by_itself(tmp_path):
    # issue: a model SFT'd with build_tokenizer.py's tokenizer never stopped (no <|im_end|>
    # token; generation_config held eos 0 only): the tool reserves it, the export stops at it
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from xlda.checkpoint_conversion.convert import ConvertConfig
    from xlda.posttrain.cli import build_trainer

    records = sft_records(64, seed=0)
    tok = _own_tokenizer(tmp_path, records)
    train = write_jsonl(tmp_path / "train.jsonl", records)
    cfg = tiny_cfg(tmp_path, tok, train, iters=60)
    cfg.checkpoint.save = str(tmp_path / "sft")
    build_trainer(cfg, print_fn=lambda *a, **k: None).setup().train()
    out = ConvertConfig(source="mcore", target="hf", load_dir=str(tmp_path / "sft"),
                        save_dir=str(tmp_path / "hf"), tokenizer_model=str(tok)).run()
    hf_tok = AutoTokenizer.from_pretrained(out)
    end = hf_tok.convert_tokens_to_ids("<|im_end|>")
    assert end == 4
    gen_cfg = json.loads((out / "generation_config.json").read_text())
    assert gen_cfg["eos_token_id"] == [0, 4]  # <|endoftext|> and the end of turn
    model = AutoModelForCausalLM.from_pretrained(out, torch_dtype=torch.float32).eval()
    ids = hf_tok.apply_chat_template([{"role": "user", "content": "what is n3 plus n4"}],
                                     add_generation_prompt=True, return_tensors="pt",
                                     return_dict=True)["input_ids"]
    gen = model.generate(ids, max_new_tokens=30, do_sample=False)
    new = gen[0, ids.shape[1]:].tolist()
    assert len(new) < 30 and new[-1] == end, hf_tok.convert_ids_to_tokens(new)


def test_sft_refuses_a_template_whose_end_of_turn_the_tokenizer_lacks(tmp_path, capsys):
    from tests.data.fixtures import word_level_tokenizer
    from xlda.posttrain.cli import main

    tok = word_level_tokenizer(tmp_path, ["what", "is"], name="tokenizer.json")  # no ChatML
    train = write_jsonl(tmp_path / "train.jsonl", sft_records(8, seed=0))
    flags = ["sft", "--num-layers", "2", "--hidden-size", "32", "--num-attention-heads", "4",
             "--num-query-groups", "2", "--ffn-hidden-size", "64", "--seq-length", "64",
             "--train-iters", "1", "--lr-warmup-iters", "0", "--lr-decay-style", "constant",
             "--global-batch-size", "4", "--micro-batch-size", "2", "--tokenizer-model", str(tok),
             "--data-path", str(train), "--save", str(tmp_path / "s")]
    assert main(flags) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ends turns with '<|im_end|>'" in err[0]
    assert err[0].startswith("posttrain: error: ") and "tools/build_tokenizer.py" in err[0]
