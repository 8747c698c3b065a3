"""Tokenizer construction: byte-level BPE base + per-language extensions (tools/build_tokenizer.py)."""
from .build import TokenizerBuildConfig
from .train import EOD_TOKEN, SPECIAL_TOKENS

__all__ = ["TokenizerBuildConfig", "EOD_TOKEN", "SPECIAL_TOKENS"]
