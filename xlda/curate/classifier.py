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
    # fastText's word-ngram hash table is 2M rows x dim floats (517 MB at dim 64) whatever the
    # data; pruning to the `cutoff` most useful rows and product quantization (.ftz) keep the
    # scores close at ~1% of the size. quantize=False writes the full model.
    quantize: bool = True
    cutoff: int = 100_000
    imbalance_warn: float = 10.0  # larger:smaller class ratio that earns a warning

    def build(self) -> "ClassifierTrainer":
        """Checks the inputs before any reading or training (one line per problem kind)."""
        import os

        for flag, paths in (("--positive", self.positive), ("--negative", self.negative)):
            for path in paths:
                if "://" not in str(path) and not os.path.isfile(path):
                    raise CurateError(f"{flag} {path}: no such file")
        if not 0 <= self.valid_fraction < 1:
            raise CurateError(f"--valid-fraction {self.valid_fraction}: must be in [0, 1)")
        return ClassifierTrainer(self)


def balanced_accuracy(pairs: list[tuple[str, str]]) -> tuple[float, dict[str, float]]:
    """(predicted, true) pairs -> mean per-class recall and the recalls: accuracy is ~1 on a
    999:1 set by predicting the majority; balanced accuracy is 0.5 there."""
    recall = {}
    for lab in sorted({t for _, t in pairs}):
        mine = [p for p, t in pairs if t == lab]
        recall[lab] = sum(p == lab for p in mine) / len(mine)
    return sum(recall.values()) / len(recall), recall


def stratified_split(rows: list[tuple[str, str]], fraction: float, seed: int):
    """Shuffle (seeded) and hold out `fraction` of each class, at least one of any class with
    two or more documents, so the balanced accuracy sees both classes."""
    rng = random.Random(seed)
    valid, train = [], []
    for lab in sorted({r[0] for r in rows}):
        mine = [r for r in rows if r[0] == lab]
        rng.shuffle(mine)
        k = int(len(mine) * fraction)
        if fraction > 0 and k == 0 and len(mine) >= 2:
            k = 1
        valid += mine[:k]
        train += mine[k:]
    rng.shuffle(train)
    return valid, train


class ClassifierTrainer:
    def __init__(self, cfg: ClassifierConfig):
        self.cfg = cfg

    def run(self, warn=print) -> dict:
        c = self.cfg
        ft = _import_fasttext()
        rows = [(c.label, t) for p in c.positive for t in read_texts(p, c.text_key)]
        n_pos = len(rows)
        rows += [(c.negative_label, t) for p in c.negative for t in read_texts(p, c.text_key)]
        n_neg = len(rows) - n_pos
        if not n_pos or not n_neg:
            raise CurateError(f"need at least one positive and one negative document "
                              f"(read {n_pos} positive, {n_neg} negative)")
        ratio = max(n_pos, n_neg) / min(n_pos, n_neg)
        if ratio >= c.imbalance_warn:
            few = "negative" if n_neg < n_pos else "positive"
            warn(f"warning: {n_pos} positive vs {n_neg} negative documents ({ratio:.0f}:1): "
                 f"accuracy says little here, read the balanced accuracy; add {few} documents "
                 f"(e.g. a random sample of the raw shards as negatives)")
        valid, train = stratified_split(rows, c.valid_fraction, c.seed)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "train.txt")
            with open(path, "w", encoding="utf-8") as f:
                f.writelines(f"{lab} {fasttext_text(t)}\n" for lab, t in train)
            # thread=1 + seed: the same data gives the same model.
            model = ft.train_supervised(path, epoch=c.epoch, lr=c.lr, wordNgrams=c.word_ngrams,
                                        dim=c.dim, seed=c.seed, thread=1, verbose=0)
            if c.quantize:
                model.quantize(input=path, qnorm=True, retrain=True, cutoff=c.cutoff, thread=1,
                               verbose=0)
        out = Path(c.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        model.save_model(str(tmp))
        os.replace(tmp, out)
        r = {"model": str(out), "bytes": out.stat().st_size, "quantized": c.quantize,
             "positive": n_pos, "negative": n_neg, "train": len(train), "valid": len(valid),
             "valid_accuracy": None, "valid_balanced_accuracy": None, "valid_recall": None}
        if valid:
            pairs = [(model.predict(fasttext_text(t))[0][0], lab) for lab, t in valid]
            r["valid_accuracy"] = sum(p == t for p, t in pairs) / len(pairs)
            r["valid_balanced_accuracy"], r["valid_recall"] = balanced_accuracy(pairs)
        return r
