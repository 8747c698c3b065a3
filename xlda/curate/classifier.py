"""fastText quality classifier: training (tools/train_quality_classifier.py) and the text form
both training and scoring use.

fastText splits on whitespace, which Chinese and Japanese lack; both sides therefore feed it the
text lower-cased and split by xlda.curate.words (one token per CJK character), joined by spaces.
Needs the `fasttext` module (pip install -e .[curate] installs fasttext-community, the
maintained build with numpy 2 wheels).
"""
from __future__ import annotations

import json
import os
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

from xlda.curate.config import CurateError
from xlda.curate.words import ScriptWordTokenizer

_TOK = ScriptWordTokenizer()


def fasttext_text(text: str, max_chars: int = 100_000) -> str:
    return " ".join(_TOK.word_tokenize(text[:max_chars].lower()))


def _import_fasttext():
    try:
        import fasttext
    except ImportError as e:
        raise CurateError("the quality classifier needs fastText: pip install -e .[curate] "
                          "(fasttext-community)") from e
    return fasttext


def read_texts(path: str, text_key: str = "text") -> list[str]:
    import fsspec

    out = []
    with fsspec.open(path, "rt", compression="infer", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                t = json.loads(line)[text_key]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise CurateError(f"{path}:{n}: not a JSON object with a {text_key!r} string ({e})") from e
            if isinstance(t, str) and t.strip():
                out.append(t)
    return out


@dataclass
class ClassifierConfig:
    positive: list[str]
    negative: list[str]
    output: str
    text_key: str = "text"
    label: str = "__label__hq"
    negative_label: str = "__label__lq"
    epoch: int = 5
    lr: float = 0.5
    word_ngrams: int = 2
    dim: int = 64
    seed: int = 0
    valid_fraction: float = 0.1

    def build(self) -> "ClassifierTrainer":
        return ClassifierTrainer(self)


class ClassifierTrainer:
    def __init__(self, cfg: ClassifierConfig):
        self.cfg = cfg

    def run(self) -> dict:
        c = self.cfg
        ft = _import_fasttext()
        rows = [(c.label, t) for p in c.positive for t in read_texts(p, c.text_key)]
        rows += [(c.negative_label, t) for p in c.negative for t in read_texts(p, c.text_key)]
        if not any(r[0] == c.label for r in rows) or not any(r[0] == c.negative_label for r in rows):
            raise CurateError("need at least one positive and one negative document")
        random.Random(c.seed).shuffle(rows)
        n_valid = int(len(rows) * c.valid_fraction)
        valid, train = rows[:n_valid], rows[n_valid:]
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "train.txt")
            with open(path, "w", encoding="utf-8") as f:
                f.writelines(f"{lab} {fasttext_text(t)}\n" for lab, t in train)
            # thread=1 + seed: the same data gives the same model.
            model = ft.train_supervised(path, epoch=c.epoch, lr=c.lr, wordNgrams=c.word_ngrams,
                                        dim=c.dim, seed=c.seed, thread=1, verbose=0)
        out = Path(c.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        model.save_model(str(tmp))
        os.replace(tmp, out)
        acc = None
        if valid:
            pred = [model.predict(fasttext_text(t))[0][0] for _, t in valid]
            acc = sum(p == lab for p, (lab, _) in zip(pred, valid)) / len(valid)
        return {"model": str(out), "train": len(train), "valid": len(valid), "valid_accuracy": acc}
