"""A converted checkpoint trains with the recipe it came from (issue 12.2): tiny recipe ->
convert.py --from mcore --to hf -> convert.py --from hf --to mcore --target-tensor-parallel-size 2
-> pretrain_trillion.py --config tiny.yaml --load <converted>, with no --finetune: the recipe's
nulls (kv_channels, max_position_embeddings) match the converter's resolved values and the
model-only checkpoint loads weights-only, saying so in one line. With --lr 0 the weights saved
after one step must be exactly the trained ones."""
import importlib.util
from pathlib import Path

import torch

from tests.cli.conftest import tiny_flags
from xlda.cli.pretrain import main

ROOT = Path(__file__).resolve().parents[2]


def _convert(argv) -> int:
    spec = importlib.util.spec_from_file_location("xlda_convert_tool",
                                                  ROOT / "tools" / "checkpoint" / "convert.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool.main(argv)


def test_hf_converted_tp2_checkpoint_trains_with_its_recipe(cli_data, tmp_path, capsys):
    from xlda.checkpoint_conversion.mcore_io import load_model_tensors

    d = cli_data
    trained, hf, tp2, after = (tmp_path / n for n in ("tiny", "hf", "tp2", "after"))
    assert main(tiny_flags(d, "--train-iters", "2", "--eval-interval", "0",
                           "--save", str(trained))) == 0
    assert _convert(["--from", "mcore", "--to", "hf", "--load-dir", str(trained),
                     "--save-dir", str(hf), "--tokenizer-model", d["tokenizer"]]) == 0
    assert _convert(["--from", "hf", "--to", "mcore", "--load-dir", str(hf), "--save-dir",
                     str(tp2), "--target-tensor-parallel-size", "2"]) == 0
    capsys.readouterr()
    rc = main(tiny_flags(d, "--load", str(tp2), "--save", str(after), "--train-iters", "1",
                         "--lr-warmup-iters", "0", "--eval-interval", "0", "--lr", "0",
                         "--min-lr", "0"))
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert (f"[xlda] {tp2} holds no optimizer state (a converted checkpoint?): loading weights "
            "only, starting at iteration 0 with a fresh optimizer") in out.out.splitlines()
    assert "Traceback" not in out.err
    before = load_model_tensors(trained / "iter_0000002")
    now = load_model_tensors(after / "iter_0000001")
    assert before.keys() == now.keys()
    vocab = 242  # the tokenizer's; rows beyond are padding the HF format does not carry
    for key, t in before.items():
        u = now[key]
        if key in ("embedding.word_embeddings.weight", "output_layer.weight"):
            t, u = t[:vocab], u[:vocab]
        assert torch.equal(t, u), key
