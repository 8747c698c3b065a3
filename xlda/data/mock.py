"""In-memory synthetic multilingual corpus for `mock=True` (Megatron's --mock-data analogue).

Language i's content tokens lie in [MOCK_BASE + i * MOCK_SPAN, MOCK_BASE + (i + 1) * MOCK_SPAN),
so tests can tell languages apart from token ids alone; every document ends with EOD.
Deterministic from the seed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

MOCK_BASE = 100
MOCK_SPAN = 1000


@dataclass
class MockTokenizer:
    """The two attributes megatron-core's GPTDatasetConfig needs (eod, vocab_size)."""

    eod: int = 0
    vocab_size: int = MOCK_BASE + 8 * MOCK_SPAN

    @property
    def unique_identifiers(self) -> dict:  # megatron-core hashes the tokenizer by this
        return {"class": "MockTokenizer", "eod": self.eod, "vocab_size": self.vocab_size}


def mock_token_range(lang_index: int) -> tuple[int, int]:
    lo = MOCK_BASE + lang_index * MOCK_SPAN
    return lo, lo + MOCK_SPAN


class MockLanguageDataset:
    """Quacks like IndexedDataset for what XLDA needs: `sequence_lengths` and `get`."""

    def __init__(self, lang_index: int, num_documents: int, seed: int, eod: int,
                 min_length: int = 4, max_length: int = 512) -> None:
        self.lang_index = lang_index
        self.seed = seed
        self.eod = eod
        rng = np.random.default_rng([seed, 7919, lang_index])
        self.sequence_lengths = rng.integers(
            min_length, max_length + 1, size=num_documents).astype(np.int32)

    def __len__(self) -> int:
        return int(self.sequence_lengths.shape[0])

    def document(self, idx: int) -> np.ndarray:
        n = int(self.sequence_lengths[idx])
        lo, hi = mock_token_range(self.lang_index)
        doc = np.random.default_rng([self.seed, self.lang_index, int(idx)]).integers(lo, hi, size=n)
        doc[-1] = self.eod
        return doc.astype(np.int32)

    def get(self, idx: int, offset: int = 0, length: Optional[int] = None) -> np.ndarray:
        doc = self.document(idx)
        end = doc.shape[0] if length is None else offset + length
        return doc[offset:end]
