"""User mistakes end in one ``pretrain: error: ...`` line that names the flag, exit code 2: no
traceback, nothing built first (issue 12.3/12.4/12.6, issue 11.16/11.17)."""
import json
import shutil
from pathlib import Path

import pytest

from tests.cli.conftest import TINY, data_flags
from tests.data.fixtures import word_level_tokenizer
from xlda.cli.pretrain import main


def _error(capsys, argv) -> str:
    rc = main(argv)
    out = capsys.readouterr()
    assert rc == 2, out
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pretrain: error: "), out.err
    assert "Traceback" not in out.err + out.out
    return lines[0]


def base(d, *extra, prefixes=None):
    return ["--config", TINY, *data_flags(d, prefixes), "--seq-length", "64", *extra]


def test_missing_and_unknown_data_prefix(cli_data, capsys, tmp_path):
    d = cli_data
    gone = str(tmp_path / "nowhere_ko_text_document")
    msg = _error(capsys, base(d, prefixes=[d["prefixes"][0], gone]))
    assert msg == (f"pretrain: error: --data-path {gone}: no files for `nowhere_ko` ({gone}.bin, "
                   f"{gone}.idx not found); make the data with tools/preprocess_data.py or fix the "
                   "prefix")
    # a language the preprocess run did not produce: the manifest says which exist
    lo_xx = d["prefixes"][0].replace("_en_", "_xx_")
    msg = _error(capsys, base(d, "--xlda-beta", "en=1,xx=1", prefixes=[d["prefixes"][0], lo_xx]))
    assert "--data-path" in msg and "no files for `lo_xx`" in msg
    assert "lo.manifest.json lists languages en, ja, ko, zh" in msg


def test_beta_mistakes(cli_data, capsys):
    d = cli_data
    for bad, why in (("en=nan", "'nan'"), ("en=inf,ko=1", "'inf'"), ("en=-1", "-1")):
        msg = _error(capsys, base(d, "--xlda-beta", bad))
        assert "--xlda-beta" in msg and "finite and >= 0" in msg and f"is {why.strip(chr(39))};" in msg
    msg = _error(capsys, base(d, "--xlda-beta", "en0.5"))
    assert "argument --xlda-beta: 'en0.5': expected lang=weight pairs" in msg
    msg = _error(capsys, base(d, "--xlda-beta", "en=1,lo=1"))
    assert msg == ("pretrain: error: --xlda-beta names lo, which --data-path gives no data for "
                   "(languages with data: en, ja, ko, zh); drop them from --xlda-beta or add their "
                   "prefixes to --data-path")


def test_recipe_beta_for_languages_without_data_names_the_recipe(cli_data, capsys):
    msg = _error(capsys, base(cli_data, prefixes=cli_data["prefixes"][:2]))
    assert msg.startswith(f"pretrain: error: data.xlda_beta of {TINY} names ja, zh, which "
                          "--data-path gives no data for (languages with data: en, ko)")


def test_unpackable_mixture_is_a_user_error(cli_data, capsys):
    msg = _error(capsys, base(cli_data, "--xlda-beta", "en=1", "--xlda-alpha", "0"))
    assert msg.startswith("pretrain: error: XLDA packing needs >= 2 languages with P(l) > 0")
    assert "add another language's prefixes to --data-path or give it a positive --xlda-beta" \
        in msg


@pytest.mark.parametrize("s", ["0", "1", "-3"])
def test_seq_length_below_two(cli_data, capsys, s):
    msg = _error(capsys, base(cli_data, "--seq-length", s))
    assert msg == (f"pretrain: error: --seq-length must be >= 2 (every sample packs documents "
                   f"of >= 2 languages), got {s}")


def test_flex_on_cpu_refused_before_training(cli_data, capsys):
    msg = _error(capsys, base(cli_data, "--attention-backend", "flex"))
    assert "--attention-backend flex cannot train on CPU" in msg
    assert "no FlexAttention backward on CPU" in msg


@pytest.mark.parametrize("flag, expect", [
    ("--bf16", "--bf16/--fp16 need a GPU"), ("--fp16", "--bf16/--fp16 need a GPU"),
    ("--use-distributed-optimizer", "--use-distributed-optimizer needs GPUs"),
    ("--sequence-parallel", "--sequence-parallel needs Transformer Engine norms")])
def test_gpu_only_flags_on_cpu_are_one_line(cli_data, capsys, flag, expect):
    """They used to surface as a ValueError traceback from the trainer's set-up (issue 21)."""
    assert expect in _error(capsys, base(cli_data, flag))


def test_reset_position_ids_with_rope(cli_data, capsys):
    msg = _error(capsys, base(cli_data, "--reset-position-ids"))
    assert "--reset-position-ids has no effect with RoPE" in msg
    cfg_ok = main(base(cli_data, "--reset-position-ids", "--position-embedding-type",
                       "learned_absolute", "--print-config"))
    assert cfg_ok == 0


@pytest.mark.parametrize("split, expect", [
    ("a,b", "--split 'a,b': expected up to three comma-separated numbers"),
    ("90,5,3,2", "--split '90,5,3,2': at most three shares"),
    ("0,10,0", "--split '0,10,0': the training share (first number) must be > 0"),
    ("90,-5,15", "--split '90,-5,15': shares must be finite and >= 0"),
    ("100,0,0", "--split 100,0,0 leaves no validation data but --eval-interval 20 --eval-iters 2"),
    ("100", "--split 100 leaves no validation data"),
])
def test_split_edge_cases(cli_data, capsys, split, expect):
    assert expect in _error(capsys, base(cli_data, "--split", split))


def test_split_short_forms_are_valid(cli_data, capsys):
    assert main(base(cli_data, "--split", "100", "--eval-iters", "0", "--print-config")) == 0
    assert main(base(cli_data, "--split", "98/2", "--print-config")) == 0


def test_data_path_weights(cli_data, capsys):
    d = cli_data
    en, ko, ja, zh = d["prefixes"]
    msg = _error(capsys, base(d, "--xlda-beta", "en=1,ko=1", prefixes=["0.3", en, "0.7", ko]))
    assert msg == ("pretrain: error: --data-path has weights and --xlda-beta is given too: give "
                   "the language mixture once, either as --data-path weights or as "
                   "--xlda-alpha/--xlda-beta")
    msg = _error(capsys, base(d, prefixes=["0.3", en, "0.7"]))
    assert "weights and prefixes must come in pairs" in msg
    msg = _error(capsys, base(d, prefixes=["0.3", en, ko, "0.7"]))
    assert "weights and prefixes must come in pairs" in msg
    msg = _error(capsys, base(d, "--annealing-data-path", "1", en, "1", ko))
    assert "--annealing-data-path" in msg and "weights are not supported there" in msg


def test_unknown_flags_one_line_with_suggestions(cli_data, capsys):
    msg = _error(capsys, base(cli_data, "--lr-wsd-decay-itres", "3", "--bogus"))
    assert msg == ("pretrain: error: unknown argument(s): --lr-wsd-decay-itres (did you mean "
                   "--lr-wsd-decay-iters, --lr-decay-iters, --lr-wsd-decay-style?); --bogus; run with --help for the supported "
                   "Megatron-LM flags")


def test_argparse_errors_are_one_line(cli_data, capsys):
    msg = _error(capsys, base(cli_data, "--xlda-mask", "bogus"))
    assert "argument --xlda-mask: invalid choice: 'bogus'" in msg
    msg = _error(capsys, base(cli_data, "--train-iters", "ten"))
    assert "argument --train-iters: invalid int value: 'ten'" in msg


def test_tokenizer_must_match_the_manifest(cli_data, capsys, tmp_path):
    d = cli_data
    other = word_level_tokenizer(tmp_path, ["a", "b", "c"])
    argv = ["--config", TINY, "--data-path", *d["prefixes"], "--tokenizer-type",
            "HuggingFaceTokenizer", "--tokenizer-model", str(other), "--seq-length", "64"]
    msg = _error(capsys, argv)
    assert msg.startswith(f"pretrain: error: --tokenizer-model {other} (sha256 ")
    assert "vocab 5) is not the tokenizer" in msg and d["tokenizer"] in msg
    # No manifest (e.g. data from Megatron-LM's own tools): token ids must fit the vocab.
    bare = tmp_path / "bare"
    bare.mkdir()
    for p in d["prefixes"]:
        for ext in (".bin", ".idx"):
            shutil.copy(p + ext, bare / (Path(p).name + ext))
    prefixes = [str(bare / Path(p).name) for p in d["prefixes"]]
    argv[argv.index("--data-path") + 1: argv.index("--tokenizer-type")] = prefixes
    msg = _error(capsys, argv)
    assert f"--tokenizer-model {other} has 5 tokens but {prefixes[0]} holds token id " in msg
    top = json.loads((Path(d["prefixes"][0]).parent / "lo.manifest.json").read_text())
    assert top["tokenizer"]["vocab_size"] == 242


def test_missing_tokenizer_file(cli_data, capsys, tmp_path):
    argv = ["--config", TINY, "--data-path", *cli_data["prefixes"], "--tokenizer-type",
            "HuggingFaceTokenizer", "--tokenizer-model", str(tmp_path / "nope.json")]
    assert f"--tokenizer-model {tmp_path / 'nope.json'}: file not found" in _error(capsys, argv)
