"""tools/build_packing_index.py builds the indices the trainer then opens from the cache; the
validation index is sized for what evaluation reads."""
import numpy as np

from tests.data.fixtures import word_level_tokenizer
from tests.data.test_dataset import EOD, write_indexed
from xlda.cli.build_index import main
from xlda.data.index_cache import BUILD_COUNTER


def _data(tmp_path):
    rng = np.random.default_rng(0)
    prefixes = []
    for lang, base in (("en", 100), ("ko", 200), ("ja", 300), ("zh", 400)):
        docs = [list(rng.integers(base, base + 99, size=rng.integers(5, 60))) + [EOD]
                for _ in range(150)]
        prefixes.append(write_indexed(tmp_path / f"lo_{lang}_text_document", docs))
    return prefixes


def _flags(tmp_path, prefixes):
    # a 600-token vocabulary covers the ids of _data (EOD 0, 100..499); no corpus needed
    tok = tmp_path / "tokenizer.json"
    if not tok.exists():
        word_level_tokenizer(tmp_path, [f"w{i}" for i in range(598)], name="tokenizer.json")
    return ["--config", "examples/trillion7b/tiny.yaml", "--data-path", *prefixes,
            "--tokenizer-type", "HuggingFaceTokenizer", "--tokenizer-model", str(tok),
            "--seq-length", "64", "--micro-batch-size", "2", "--global-batch-size", "4",
            "--train-iters", "10", "--eval-interval", "5", "--eval-iters", "3",
            "--split", "90,10,0", "--no-annealing"]


def test_prebuilt_indices_are_what_the_trainer_opens(tmp_path, capsys, corpus):
    prefixes = _data(tmp_path)
    before = BUILD_COUNTER["builds"]
    assert main(_flags(tmp_path, prefixes) + ["--verify"]) == 0
    out = capsys.readouterr().out
    assert "train: 40 windows" in out and "valid: 12 windows" in out  # 3 iters x 4 (not x 3 evals)
    assert out.count("verify: ok") == 2
    built = BUILD_COUNTER["builds"] - before
    assert built == 2  # train and valid; test is never read, so never built

    from xlda.cli.pretrain import resolve
    from xlda.training.batches import build_run_datasets

    cfg, _ = resolve(_flags(tmp_path, prefixes))
    ds = build_run_datasets(cfg, log=lambda *a: None)
    assert BUILD_COUNTER["builds"] - before == built  # opened from the cache
    assert len(ds.train) == 40 and len(ds.valid) == 12


def test_bad_flags_exit_2(tmp_path, capsys):
    assert main(["--config", "examples/trillion7b/tiny.yaml", "--seq-lenght", "3"]) == 2
    assert "build_packing_index: error" in capsys.readouterr().err


def test_a_mix_the_data_cannot_give_is_one_error_line(tmp_path, capsys):
    # en 0.995 at S = 64: the others get 0.32 tokens per window, the guarantee needs 1
    prefixes = _data(tmp_path)
    flags = _flags(tmp_path, prefixes) + ["--xlda-alpha", "0", "--xlda-beta",
                                          "en=0.995,ko=0.005"]
    assert main(flags) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("build_packing_index: error: language 'en'")
    assert "--seq-length to >= 200" in err[0] and "Traceback" not in err[0]


def test_output_is_a_few_short_lines(tmp_path):
    # megatron-core's INFO (a 1,400-character config dump, index reader lines) stays quiet
    import subprocess
    import sys

    flags = _flags(tmp_path, _data(tmp_path))
    out = subprocess.run([sys.executable, "tools/build_packing_index.py", *flags],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert len(lines) <= 10 and max(map(len, lines)) < 600, lines
    assert sum(line.startswith("[xlda] index ") for line in lines) == 2  # train, valid
    assert not any("XLDADatasetConfig(" in line or "_IndexReader" in line for line in lines)
