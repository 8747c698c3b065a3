"""Tokenizer wrapper shared by preprocessing and training (see docs/CONTRACTS.md).

`build_tokenizer(tokenizer_type, tokenizer_model)` returns an object with `.tokenize(text)`,
`.detokenize(ids)`, `.eod`, `.vocab_size` and `.identity()`. Type names follow Megatron-LM's
`--tokenizer-type` values.
"""
from __future__ import annotations

import os
from pathlib import Path

from xlda.files import sha256_file as _sha256

# Looked up in this order in a HuggingFace tokenizer.json to find the end-of-document token.
EOD_CANDIDATES = ("<|endoftext|>", "</s>", "<eos>", "<|end_of_text|>", "<|eos|>", "[EOS]")
# A beginning-of-sequence token, in this order: what the HF export declares as bos_token, and
# what evaluation prefixes an empty context with (as lm-eval's hf backend does)
BOS_CANDIDATES = ("<s>", "<bos>", "<|begin_of_text|>")

TOKENIZER_TYPES = ("HuggingFaceTokenizer", "SentencePieceTokenizer")
# Chat templates' end-of-turn markers (ChatML, Llama 3, Gemma): a chat model stops generating at
# whichever of them its tokenizer holds as one token.
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>")


class TokenizerError(ValueError):
    """Bad tokenizer model or configuration; the message says what to do."""


def _check_readable(path: Path, what: str) -> None:
    if not path.exists():
        raise TokenizerError(f"--tokenizer-model {path}: file not found ({what} expected)")
    if not path.is_file() or not os.access(path, os.R_OK):
        raise TokenizerError(f"--tokenizer-model {path}: not a readable file ({what} expected)")


class _Base:
    type_name = ""

    def __init__(self, path: Path):
        self.path = path
        self._sha = None

    def identity(self) -> dict:
        if self._sha is None:
            self._sha = _sha256(self.path)
        return {
            "type": self.type_name,
            "path": str(self.path),
            "sha256": self._sha,
            "vocab_size": self.vocab_size,
            "eod": self.eod,
        }


class HuggingFaceTokenizer(_Base):
    """A `tokenizers` tokenizer.json (e.g. byte-level BPE); no `transformers` needed."""

    type_name = "HuggingFaceTokenizer"

    def __init__(self, tokenizer_model: str | os.PathLike):
        from tokenizers import Tokenizer

        path = Path(tokenizer_model)
        if path.is_dir():  # a HF model directory: use its tokenizer.json
            path = path / "tokenizer.json"
        _check_readable(path, "a HuggingFace tokenizer.json")
        super().__init__(path.resolve())
        try:
            self._tok = Tokenizer.from_file(str(path))
        except Exception as e:
            raise TokenizerError(
                f"--tokenizer-model {path}: cannot load as a HuggingFace tokenizer.json ({e}); "
                "for a SentencePiece .model use --tokenizer-type SentencePieceTokenizer"
            ) from e
        self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)
        for cand in EOD_CANDIDATES:
            tid = self._tok.token_to_id(cand)
            if tid is not None:
                self.eod = tid
                self.eod_token = cand
                break
        else:
            raise TokenizerError(
                f"--tokenizer-model {path}: no end-of-document token found; looked for "
                f"{', '.join(EOD_CANDIDATES)}. Add one of them as a special token when training "
                "the tokenizer."
            )

    def tokenize(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def detokenize(self, ids, skip_special: bool = False) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=skip_special)

    def token_to_id(self, token: str):
        """The id of a token string, None when the vocabulary has no such token."""
        return self._tok.token_to_id(token)


class SentencePieceTokenizer(_Base):
    """A SentencePiece `.model`; EOD is the model's `</s>` (eos_id)."""

    type_name = "SentencePieceTokenizer"

    def __init__(self, tokenizer_model: str | os.PathLike):
        import sentencepiece as spm

        path = Path(tokenizer_model)
        _check_readable(path, "a SentencePiece .model")
        super().__init__(path.resolve())
        try:
            self._sp = spm.SentencePieceProcessor(model_file=str(path))
        except Exception as e:
            raise TokenizerError(
                f"--tokenizer-model {path}: cannot load as a SentencePiece model ({e}); "
                "for a tokenizer.json use --tokenizer-type HuggingFaceTokenizer"
            ) from e
        self.vocab_size = self._sp.get_piece_size()
        self.eod = self._sp.eos_id()
        if self.eod < 0:
            raise TokenizerError(
                f"--tokenizer-model {path}: the SentencePiece model has no eos piece "
                "(trained with eos_id=-1); retrain it with an eos id."
            )

    def tokenize(self, text: str) -> list[int]:
        return self._sp.encode(text)

    def detokenize(self, ids, skip_special: bool = False) -> str:
        # SentencePiece's decode drops control pieces (eos, bos) either way
        return self._sp.decode([int(i) for i in ids])

    def token_to_id(self, token: str):
        tid = self._sp.piece_to_id(token)
        return None if tid == self._sp.unk_id() and token != self._sp.id_to_piece(tid) else tid


def build_tokenizer(tokenizer_type: str, tokenizer_model: str | os.PathLike):
    if tokenizer_type == "HuggingFaceTokenizer":
        return HuggingFaceTokenizer(tokenizer_model)
    if tokenizer_type == "SentencePieceTokenizer":
        return SentencePieceTokenizer(tokenizer_model)
    raise TokenizerError(
        f"--tokenizer-type {tokenizer_type!r} is not supported; use one of {', '.join(TOKENIZER_TYPES)}"
    )
