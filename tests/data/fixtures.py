"""Test helpers other tests may import: small tokenizers and JSONL writers."""
from __future__ import annotations

import gzip
import itertools
import json
from pathlib import Path

EOD = "<|endoftext|>"
CORPUS_LANGS = ("en", "ko", "ja", "zh")


def write_jsonl(path, records, compression: str | None = None) -> Path:
    """Write records (dicts, or raw str lines written verbatim) as JSONL; compression: None|'gz'|'zst'."""
    path = Path(path)
    lines = []
    for r in records:
        lines.append(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False))
    data = ("\n".join(lines) + "\n").encode("utf-8") if lines else b""
    if compression == "gz":
        data = gzip.compress(data)
    elif compression == "zst":
        import zstandard

        data = zstandard.ZstdCompressor().compress(data)
    elif compression is not None:
        raise ValueError(compression)
    path.write_bytes(data)
    return path


def corpus_docs(corpus_dir, lang: str, n: int, source: str = "libreoffice_help") -> list[dict]:
    """The first n documents of a language from the real corpus (streamed)."""
    with gzip.open(Path(corpus_dir) / f"{source}.{lang}.jsonl.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in itertools.islice(f, n)]


def train_test_tokenizer(tmp_path, vocab_size: int = 2000, corpus_dir=None, docs_per_lang: int = 100,
                         name: str = "tokenizer.json", chat: bool = False) -> Path:
    """Train a byte-level BPE tokenizer.json (with <|endoftext|>, and with chat: the ChatML
    <|im_start|>/<|im_end|>) on real en/ko/ja/zh text; ~1-2 s."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if corpus_dir is None:
        from xlda.paths import corpus_dir as _cd

        corpus_dir = _cd()
    texts = [d["text"] for lang in CORPUS_LANGS for d in corpus_docs(corpus_dir, lang, docs_per_lang)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[EOD] + (["<|im_start|>", "<|im_end|>"] if chat else []),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    path = Path(tmp_path) / name
    tok.save(str(path))
    return path


def word_level_tokenizer(tmp_path, words, specials=(EOD,), name: str = "wordlevel.json") -> Path:
    """A hand-built whitespace WordLevel tokenizer.json: ids are specials, then [UNK], then words."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {}
    for w in [*specials, "[UNK]", *words]:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    if specials:
        tok.add_special_tokens(list(specials))
    path = Path(tmp_path) / name
    tok.save(str(path))
    return path


def train_sentencepiece(tmp_path, texts, vocab_size: int = 300, name: str = "sp") -> Path:
    """Train a tiny SentencePiece BPE model in-process; returns the .model path."""
    import sentencepiece as spm

    prefix = Path(tmp_path) / name
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_prefix=str(prefix), vocab_size=vocab_size, model_type="bpe",
        character_coverage=1.0, bos_id=-1, eos_id=1, unk_id=0, pad_id=-1, minloglevel=2,
    )
    return prefix.with_suffix(".model")
