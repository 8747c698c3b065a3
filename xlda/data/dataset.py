"""XLDADatasetConfig, the multi-language low-level corpus, XLDADataset and its builder.

Integration with megatron-core's BlendedMegatronDatasetBuilder: XLDA samples mix languages, so
one XLDADataset must span every language, not one prefix. The config therefore presents
Megatron with a single synthetic blend entry (`blend=([XLDA_BLEND_ENTRY], None)`); the builder
takes its "single prefix" path and calls `XLDADataset.build_low_level_dataset(entry, config)`,
which returns an `XLDACorpus` (every language's indexed datasets, from `config.lang_prefixes`).
The builder's split/rank machinery (split_matrix, rank-0-first build + barrier, None for empty
splits, mock mode) is reused unchanged; only the document split is done per language here (the
builder's global `indices` ignore language boundaries), so splits are disjoint per language.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
from megatron.core.datasets.blended_megatron_dataset_config import (
    convert_split_vector_to_split_matrix,
    parse_and_normalize_split,
)
from megatron.core.datasets.gpt_dataset import GPTDatasetConfig
from megatron.core.datasets.indexed_dataset import IndexedDataset
from megatron.core.datasets.megatron_dataset import MegatronDataset
from megatron.core.datasets.utils import Split

from xlda.data.index_cache import load_or_build, params_hash
from xlda.data.mock import MockLanguageDataset, MockTokenizer
from xlda.data.packing import PackedIndex, build_packed_index, default_num_samples
from xlda.data.sampling import check_packable, language_probabilities, validate_rho

logger = logging.getLogger(__name__)

XLDA_BLEND_ENTRY = "xlda:multilingual"
DEFAULT_MOCK_LANGUAGES = ("en", "ko", "ja", "zh")


@dataclass
class XLDADatasetConfig(GPTDatasetConfig):
    """GPTDatasetConfig plus the XLDA knobs. Megatron flag names: --xlda-alpha, --xlda-beta,
    --xlda-rho; `lang_prefixes` replaces --data-path ({lang: [prefix, ...]})."""

    lang_prefixes: Optional[Dict[str, List[str]]] = None
    xlda_alpha: float = 1.0
    xlda_beta: Optional[Dict[str, float]] = None
    xlda_rho: float = 0.5
    mock: bool = False  # redeclared as an init field: --mock-data
    mock_languages: Sequence[str] = DEFAULT_MOCK_LANGUAGES
    mock_num_documents: int = 2000
    mock_max_document_length: int = 512
    reset_position_ids: Optional[bool] = False
    reset_attention_mask: Optional[bool] = False
    eod_mask_loss: Optional[bool] = False
    create_attention_mask: bool = False

    def __post_init__(self) -> None:
        user_split = self.split
        want_mock = self.mock or not self.lang_prefixes
        if self.blend is not None or self.blend_per_split is not None:
            raise ValueError("XLDADatasetConfig takes lang_prefixes={lang: [prefixes]}, "
                             "not blend/blend_per_split")
        if want_mock:
            if self.tokenizer is None:
                self.tokenizer = MockTokenizer()
        else:
            for lang, prefixes in self.lang_prefixes.items():
                if not prefixes:
                    raise ValueError(f"lang_prefixes[{lang!r}] is empty; give it at least one "
                                     f"indexed-dataset prefix or drop the language")
            self.blend = ([XLDA_BLEND_ENTRY], None)
            if self.split is None:
                self.split = "969,30,1"
        super().__post_init__()
        self.mock = want_mock
        if want_mock and user_split is not None:  # the base forces "1,1,1" for mock data
            self.split = user_split
            self.split_matrix = convert_split_vector_to_split_matrix(
                parse_and_normalize_split(user_split))
        validate_rho(self.xlda_rho)
        # alpha range, negative and unknown beta are checkable now; all-zero needs sizes
        language_probabilities(self.languages, [1] * len(self.languages),
                               self.xlda_alpha, self.xlda_beta)

    @property
    def languages(self) -> tuple:
        return tuple(self.mock_languages) if self.mock else tuple(self.lang_prefixes)


class XLDACorpus:
    """Low-level dataset: per language, its indexed datasets concatenated (doc ids are global
    within a language)."""

    def __init__(self, languages: Sequence[str], datasets: Sequence[Sequence], identity: list):
        self.languages = tuple(languages)
        self.datasets = [list(d) for d in datasets]
        self.identity = identity
        self.doc_offsets = []
        self.doc_lengths = []
        for parts in self.datasets:
            lens = [np.asarray(p.sequence_lengths, dtype=np.int64) for p in parts]
            self.doc_offsets.append(np.cumsum([0] + [len(x) for x in lens]))
            self.doc_lengths.append(np.concatenate(lens) if lens else np.zeros(0, np.int64))
        self.tokens = [int(x.sum()) for x in self.doc_lengths]

    @classmethod
    def from_config(cls, config: XLDADatasetConfig) -> "XLDACorpus":
        if config.mock:
            datasets = [[MockLanguageDataset(i, config.mock_num_documents, config.random_seed,
                                             config.tokenizer.eod,
                                             max_length=config.mock_max_document_length)]
                        for i in range(len(config.languages))]
            ident = ["mock", list(config.languages), config.mock_num_documents,
                     config.mock_max_document_length, config.random_seed, config.tokenizer.eod]
            return cls(config.languages, datasets, ident)
        datasets, ident = [], []
        for lang, prefixes in config.lang_prefixes.items():
            parts = []
            for prefix in prefixes:
                files = [prefix + ".idx", prefix + ".bin"]
                missing = [f for f in files if not os.path.isfile(f)]
                if missing:
                    raise FileNotFoundError(
                        f"language {lang!r}: indexed dataset files {missing} not found; make them "
                        f"with tools/preprocess_data.py or fix lang_prefixes[{lang!r}]")
                parts.append(IndexedDataset(prefix, multimodal=False, mmap=config.mmap_bin_files))
                ident.append([lang, os.path.abspath(prefix)]
                             + [[os.path.getsize(f), os.path.getmtime(f)] for f in files])
            datasets.append(parts)
        return cls(config.languages, datasets, ident)

    def get(self, lang: int, doc: int, offset: int, length: int) -> np.ndarray:
        part = int(np.searchsorted(self.doc_offsets[lang], doc, side="right")) - 1
        local = doc - int(self.doc_offsets[lang][part])
        return self.datasets[lang][part].get(local, offset=offset, length=length)

    def __len__(self) -> int:
        return sum(len(x) for x in self.doc_lengths)


class XLDADataset(MegatronDataset):
    """Samples mixing >= 2 languages; see xlda.data.packing for the packing model."""

    def __init__(self, dataset: XLDACorpus, dataset_path: Optional[str],
                 indices: Optional[np.ndarray], num_samples: Optional[int],
                 index_split: Split, config: XLDADatasetConfig) -> None:
        super().__init__(dataset, dataset_path, indices, num_samples, index_split, config)
        self.languages = dataset.languages
        self.extra = int(config.add_extra_token_to_sequence)
        lo, hi = config.split_matrix[index_split.value]
        self.doc_ids, lengths = [], []
        for lens in dataset.doc_lengths:  # per-language document split: disjoint by construction
            beg, end = int(round(lo * len(lens))), int(round(hi * len(lens)))
            self.doc_ids.append(range(beg, end))  # a range: the builder needs no id array
            lengths.append(lens[beg:end])
        self.probs = language_probabilities(self.languages, dataset.tokens,
                                            config.xlda_alpha, config.xlda_beta)
        split_tokens = [int(x.sum()) for x in lengths]
        check_packable(self.languages, self.probs, split_tokens,
                       f"the {index_split.name} split (split={config.split!r})")
        if num_samples is None:
            num_samples = default_num_samples(split_tokens, self.probs,
                                              config.sequence_length, self.extra)
        self.num_samples = num_samples
        params = {
            "corpus": dataset.identity, "languages": list(self.languages),
            "seed": config.random_seed, "seq_length": config.sequence_length,
            "probs": [round(p, 12) for p in self.probs], "rho": config.xlda_rho,
            "split_matrix": config.split_matrix, "split": index_split.name,
            "num_samples": num_samples, "extra": self.extra,
            "reset_position_ids": config.reset_position_ids,
            "eod_mask_loss": config.eod_mask_loss, "version": 2,
        }
        cache_dir = config.path_to_cache
        if cache_dir is None and not config.mock:
            first = next(iter(config.lang_prefixes.values()))[0]
            cache_dir = os.path.join(os.path.dirname(os.path.abspath(first)), "cache",
                                     "XLDADataset_indices")
        base = f"{params_hash(params)}-XLDADataset-{index_split.name}"
        self.index: PackedIndex = load_or_build(
            cache_dir, base, params,
            lambda: build_packed_index(lengths, self.doc_ids, self.probs, config.xlda_rho,
                                       config.sequence_length, num_samples,
                                       config.random_seed, index_split.value, self.extra))

    @staticmethod
    def build_low_level_dataset(dataset_path: Optional[str],
                                config: XLDADatasetConfig) -> XLDACorpus:
        return XLDACorpus.from_config(config)

    @staticmethod
    def numel_low_level_dataset(low_level_dataset: XLDACorpus) -> int:
        return len(low_level_dataset)

    @staticmethod
    def _key_config_attributes() -> List[str]:
        return ["random_seed", "sequence_length", "split", "split_matrix", "xlda_alpha",
                "xlda_beta", "xlda_rho", "reset_position_ids", "eod_mask_loss"]

    def __len__(self) -> int:
        return int(self.index.shuffle.shape[0])

    def sample_spans(self, idx: int) -> list[tuple]:
        """(lang, doc, offset, length) spans of dataset item idx, in order, covering its
        seq_length input tokens plus the extra label token."""
        return self.index.sample_spans(int(self.index.shuffle[idx]),
                                       self.config.sequence_length, self.extra)

    def __getitem__(self, idx: int) -> Dict[str, torch.Tensor]:
        S = self.config.sequence_length
        n = S + self.extra
        text = np.empty(n, dtype=np.int64)
        doc = np.empty(n, dtype=np.int32)
        lang = np.empty(n, dtype=np.int32)
        pos = np.empty(n, dtype=np.int64)
        ids, seen, c = {}, {}, 0
        for la, d, off, length in self.sample_spans(idx):
            key = (la, d)
            if off == 0 or key not in ids:  # a new document occurrence (epochs may repeat it)
                ids[key] = len(seen)
                seen[ids[key]] = 0
            did = ids[key]
            text[c:c + length] = self.dataset.get(la, d, off, length)
            doc[c:c + length] = did
            lang[c:c + length] = la
            pos[c:c + length] = np.arange(seen[did], seen[did] + length)
            seen[did] += length
            c += length
        tokens = torch.from_numpy(text[:S].copy())
        if self.extra:
            labels = torch.from_numpy(text[1:n].copy())
        else:
            labels = torch.roll(tokens, -1)
        loss_mask = torch.ones(S, dtype=torch.float32)
        if not self.extra:
            loss_mask[-1] = 0.0
        if self.config.eod_mask_loss:
            loss_mask[tokens == self.config.tokenizer.eod] = 0.0
        if self.config.reset_position_ids:
            position_ids = torch.from_numpy(pos[:S].copy())
        else:
            position_ids = torch.arange(S, dtype=torch.int64)
        return {
            "tokens": tokens, "labels": labels, "loss_mask": loss_mask,
            "position_ids": position_ids,
            "doc_ids": torch.from_numpy(doc[:S].copy()),
            "lang_ids": torch.from_numpy(lang[:S].copy()),
        }


def build_xlda_datasets(
    config: XLDADatasetConfig,
    num_samples: Optional[Sequence[Optional[int]]] = None,
    is_built_on_rank: Callable[[], bool] = lambda: True,
) -> tuple:
    """(train, valid, test) through megatron-core's BlendedMegatronDatasetBuilder; None for
    empty splits. num_samples: per split (Megatron's train_val_test_num_samples); None entries
    mean one epoch of the limiting language."""
    sizes = list(num_samples) if num_samples is not None else [None, None, None]
    datasets = BlendedMegatronDatasetBuilder(XLDADataset, sizes, is_built_on_rank, config).build()
    return tuple(datasets)
