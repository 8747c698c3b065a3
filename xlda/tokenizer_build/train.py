"""Base byte-level BPE training and assembly of base + extensions into one tokenizer.json."""
from __future__ import annotations

import json
import sys

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from .extend import Extension

# Special tokens, ids 0.. in this order (the trainer puts them first):
#   <|endoftext|>  end of document: the EOD token Megatron appends (--append-eod) and the
#                  eos_token of the HF tokenizer; tools/preprocess_data.py looks it up by name.
#   <|pad|>        padding for HF batching; never produced by encoding text.
#   <|bos|>        optional beginning-of-sequence marker (not added automatically).
#   <|im_start|>   ChatML turn start and end (posttrain's default chat template): reserved so a
#   <|im_end|>     chat model's end of turn is one token, which generation can stop at; text
#                  never encodes to them.
SPECIAL_TOKENS = ("<|endoftext|>", "<|pad|>", "<|bos|>", "<|im_start|>", "<|im_end|>")
EOD_TOKEN = SPECIAL_TOKENS[0]


def new_tokenizer() -> Tokenizer:
    """Empty byte-level BPE pipeline: no normalizer (decode(encode(x)) == x), GPT-2 split regex."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def train_base(texts: list[str], vocab_size: int, min_frequency: int = 2,
               special_tokens: tuple[str, ...] = SPECIAL_TOKENS) -> Tokenizer:
    """Byte-level BPE with exactly `vocab_size` entries (specials + 256 bytes + merges)."""
    floor = len(special_tokens) + 256
    if vocab_size <= floor:
        raise ValueError(f"--base-vocab-size must exceed {floor} (special tokens + 256 bytes), got {vocab_size}")
    tok = new_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False,
        special_tokens=list(special_tokens), initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    print(f"[build_tokenizer] training base BPE ({vocab_size} tokens) on {len(texts)} documents", file=sys.stderr)
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    got = tok.get_vocab_size(with_added_tokens=True)
    if got != vocab_size:
        raise ValueError(
            f"base: requested --base-vocab-size {vocab_size}, but the base text ({len(texts)} documents, "
            f"{sum(map(len, texts))} characters) supports only {got} tokens with merges occurring >= "
            f"{min_frequency} times. Give more base text or use --base-vocab-size {got}."
        )
    return tok


def combine(base: Tokenizer, extensions: list[tuple[Extension, int]]) -> Tokenizer:
    """Base tokenizer with the first n merges of each extension appended, new ids after the base."""
    obj = json.loads(base.to_str())
    vocab: dict[str, int] = obj["model"]["vocab"]
    merges = obj["model"]["merges"]
    as_lists = bool(merges) and isinstance(merges[0], list)
    next_id = max(vocab.values()) + 1
    for ext, n in extensions:
        if len(ext.merges) < n:
            raise ValueError(f"extension {ext.lang}: only {len(ext.merges)} merges learned, {n} requested")
        for a, b in ext.merges[:n]:
            if a not in vocab or b not in vocab:
                raise AssertionError(f"extension {ext.lang}: merge parts {a!r} {b!r} not in vocab")
            if a + b in vocab:
                raise AssertionError(f"extension {ext.lang}: token {a + b!r} already in vocab")
            vocab[a + b] = next_id
            next_id += 1
            merges.append([a, b] if as_lists else f"{a} {b}")
    return Tokenizer.from_str(json.dumps(obj, ensure_ascii=False))


def check_extension(base: Tokenizer, combined: Tokenizer, n_added: int) -> None:
    """Invariants of an extended tokenizer; raises AssertionError naming the first violation."""
    bv = base.get_vocab(with_added_tokens=True)
    cv = combined.get_vocab(with_added_tokens=True)
    for t, i in bv.items():
        if cv.get(t) != i:
            raise AssertionError(f"base token {t!r} moved from id {i} to {cv.get(t)}")
    if len(cv) != len(bv) + n_added:
        raise AssertionError(f"vocab has {len(cv)} tokens, expected {len(bv)} + {n_added}")
    if sorted(cv.values()) != list(range(len(cv))):
        raise AssertionError("ids are not contiguous 0..V-1")
    cm = json.loads(combined.to_str())["model"]["merges"]
    bm = json.loads(base.to_str())["model"]["merges"]
    if cm[: len(bm)] != bm:
        raise AssertionError("base merges changed or reordered")
    for m in cm[len(bm):]:
        a, b = m if isinstance(m, list) else m.split(" ", 1)
        if a not in cv or b not in cv or a + b not in cv:
            raise AssertionError(f"merge {a!r}+{b!r} has a part or result outside the vocab")
