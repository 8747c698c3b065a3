"""A small real dataset for CLI tests: a hand-built WordLevel tokenizer, four languages of
random words run through the project's own preprocessing (so the manifest is the real one)."""
import io
import random
from pathlib import Path

import pytest

from tests.data.fixtures import word_level_tokenizer, write_jsonl

LANGS = ("en", "ko", "ja", "zh")
TINY = str(Path(__file__).resolve().parents[2] / "examples" / "trillion7b" / "tiny.yaml")
SEQ = "64"


@pytest.fixture(scope="session")
def cli_data(tmp_path_factory):
    from xlda.data.preprocess import PreprocessConfig

    root = tmp_path_factory.mktemp("cli_data")
    words = {lang: [f"{lang}{i}" for i in range(60)] for lang in LANGS}
    tok = word_level_tokenizer(root, [w for ws in words.values() for w in ws])
    rng = random.Random(0)
    files = [write_jsonl(root / f"{lang}.jsonl",
                         [{"text": " ".join(rng.choices(words[lang], k=rng.randint(20, 60))),
                           "lang": lang} for _ in range(40)]) for lang in LANGS]
    PreprocessConfig(input=[str(f) for f in files], output_prefix=str(root / "data" / "lo"),
                     tokenizer_type="HuggingFaceTokenizer", tokenizer_model=str(tok),
                     append_eod=True).build().run(log=io.StringIO())
    prefixes = [str(root / "data" / f"lo_{lang}_text_document") for lang in LANGS]
    return {"root": root, "tokenizer": str(tok), "prefixes": prefixes}


def data_flags(d, prefixes=None) -> list[str]:
    return ["--data-path", *(prefixes or d["prefixes"]), "--tokenizer-type",
            "HuggingFaceTokenizer", "--tokenizer-model", d["tokenizer"]]


def tiny_flags(d, *extra) -> list[str]:
    """The tiny recipe on cli_data, shortened to run in seconds."""
    return ["--config", TINY, *data_flags(d), "--seq-length", SEQ, "--train-iters", "4",
            "--lr-warmup-iters", "1", "--lr-wsd-decay-iters", "1", "--eval-interval", "2",
            "--log-interval", "1", "--split", "80,20,0", *extra]
