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

from xlda.data.index_cache import find_cached, is_cached, load_or_build, params_hash
from xlda.data.mock import MockLanguageDataset, MockTokenizer
from xlda.data.packing import build_packed_index, default_num_samples
from xlda.data.sampling import check_mix, check_packable, language_probabilities, validate_rho

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
    # affinity packing (xlda.data.packing): the documents' group field, stored beside each
    # dataset by tools/preprocess_data.py --group-key FIELD, and the probability p
    xlda_affinity_key: Optional[str] = None
    xlda_affinity_p: float = 0.0
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
        if not 0.0 <= self.xlda_affinity_p <= 1.0:
            raise ValueError(f"--xlda-affinity-p {self.xlda_affinity_p}: must be in [0, 1]")
        if self.xlda_affinity_p > 0 and (self.mock or not self.xlda_affinity_key):
            raise ValueError("--xlda-affinity-p > 0 needs --xlda-affinity-key FIELD and real data "
                             "whose groups tools/preprocess_data.py --group-key FIELD stored")
        # alpha range, negative and unknown beta are checkable now; all-zero needs sizes
        language_probabilities(self.languages, [1] * len(self.languages),
                               self.xlda_alpha, self.xlda_beta)

    @property
    def languages(self) -> tuple:
        return tuple(self.mock_languages) if self.mock else tuple(self.lang_prefixes)


class XLDACorpus:
    """Low-level dataset: per language, its indexed datasets concatenated (doc ids are global
    within a language). Document lengths stay memory-mapped (IndexedDataset's int32 views): a
    rank that opens a cached index reads none of them; token totals are computed on demand."""

    def __init__(self, languages: Sequence[str], datasets: Sequence[Sequence], identity: list):
        self.languages = tuple(languages)
        self.datasets = [list(d) for d in datasets]
        self.identity = identity
        self.doc_offsets = [np.cumsum([0] + [len(p.sequence_lengths) for p in parts])
                            for parts in self.datasets]
        self._tokens: Optional[list] = None

    def lengths(self, lang: int) -> np.ndarray:
        """Language `lang`'s document lengths (int32; a concatenated copy only when it has
        several prefixes, which only an index build asks for)."""
        parts = [p.sequence_lengths for p in self.datasets[lang]]
        if len(parts) == 1:
            return np.asarray(parts[0])
        return np.concatenate(parts).astype(np.int32, copy=False) if parts else \
            np.zeros(0, np.int32)

    def num_docs(self, lang: int) -> int:
        return int(self.doc_offsets[lang][-1])

    @property
    def tokens(self) -> list:
        if self._tokens is None:
            self._tokens = [int(sum(int(np.asarray(p.sequence_lengths).sum(dtype=np.int64))
                                    for p in parts)) for parts in self.datasets]
        return self._tokens

    def groups(self, lang: int, field: str) -> np.ndarray:
        """Language ``lang``'s document groups (int64, xlda.data.groups), its parts
        concatenated as the documents are."""
        from xlda.data.groups import read_groups

        parts = [read_groups(p.path_prefix, field, len(p.sequence_lengths))
                 for p in self.datasets[lang]]
        if len(parts) == 1:
            return np.asarray(parts[0])
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def groups_identity(self, field: str) -> list:
        """The groups files' paths, sizes and mtimes (the index cache key with affinity)."""
        from xlda.data.groups import groups_path

        out = []
        for lang, parts in zip(self.languages, self.datasets):
            for p in parts:
                f = groups_path(p.path_prefix, field)
                st = os.stat(f) if os.path.isfile(f) else None
                out.append([lang, os.path.abspath(f)] + ([st.st_size, st.st_mtime] if st else []))
        return out

    def doc_length(self, lang: int, doc: int) -> int:
        part = int(np.searchsorted(self.doc_offsets[lang], doc, side="right")) - 1
        return int(self.datasets[lang][part].sequence_lengths[doc - self.doc_offsets[lang][part]])

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
        return sum(self.num_docs(l) for l in range(len(self.languages)))


def split_ranges(corpus: XLDACorpus, split_matrix, split: Split) -> list:
    """Per language, the dataset ids of `split`'s documents: disjoint by construction."""
    lo, hi = split_matrix[split.value]
    out = []
    for l in range(len(corpus.languages)):
        n = corpus.num_docs(l)
        out.append(range(int(round(lo * n)), int(round(hi * n))))
    return out


def index_params(config: XLDADatasetConfig, corpus: XLDACorpus, split: Split,
                 num_samples: Optional[int], extra: int) -> dict:
    """What the index depends on, without reading any document length (the cache key: a rank
    whose index is cached touches no per-document array)."""
    return {
        "corpus": corpus.identity, "languages": list(corpus.languages),
        "seed": config.random_seed, "seq_length": config.sequence_length,
        "alpha": config.xlda_alpha, "beta": config.xlda_beta, "rho": config.xlda_rho,
        "split_matrix": config.split_matrix, "split": split.name,
        "num_samples": num_samples, "extra": extra,
        "reset_position_ids": config.reset_position_ids, "eod_mask_loss": config.eod_mask_loss,
        # (only with affinity: an index without it keeps its cache key)
        **({"affinity": {"key": config.xlda_affinity_key, "p": config.xlda_affinity_p,
                         "groups": corpus.groups_identity(config.xlda_affinity_key)}}
           if config.xlda_affinity_p > 0 else {}),
    }


def index_cache_base(params: dict) -> str:
    """The name of a split's cached index, from its index_params."""
    return f"{params_hash(params)}-XLDADataset-{params['split']}"


def index_cache_dir(config: XLDADatasetConfig) -> Optional[str]:
    if config.path_to_cache is not None or config.mock:
        return config.path_to_cache
    first = next(iter(config.lang_prefixes.values()))[0]
    return os.path.join(os.path.dirname(os.path.abspath(first)), "cache", "XLDADataset_indices")


class XLDADataset(MegatronDataset):
    """Samples mixing >= 2 languages; see xlda.data.packing for the packing model."""

    def __init__(self, dataset: XLDACorpus, dataset_path: Optional[str],
                 indices: Optional[np.ndarray], num_samples: Optional[int],
                 index_split: Split, config: XLDADatasetConfig) -> None:
        super().__init__(dataset, dataset_path, indices, num_samples, index_split, config)
        self.languages = dataset.languages
        self.extra = int(config.add_extra_token_to_sequence)
        self.doc_ids = split_ranges(dataset, config.split_matrix, index_split)
        params = index_params(config, dataset, index_split, num_samples, self.extra)
        cache_dir = index_cache_dir(config)
        self.cache_base = index_cache_base(params)
        if num_samples == 0:  # a split nobody reads (e.g. test): no index, nothing to check
            self.probs = [0.0] * len(self.languages)
            self.index = None
            self.num_samples = 0
            return
        cached = find_cached(cache_dir, self.cache_base)
        if cached is not None:  # nothing else to compute: the description has it
            self.probs = list(cached.description["probs"])
            self.num_samples = int(cached.description["resolved_num_samples"])
            self.index = cached
            return
        self.probs = language_probabilities(self.languages, dataset.tokens,
                                            config.xlda_alpha, config.xlda_beta)
        lengths = [dataset.lengths(l)[r.start:r.stop] for l, r in enumerate(self.doc_ids)]
        groups = [dataset.groups(l, config.xlda_affinity_key)[r.start:r.stop]
                  for l, r in enumerate(self.doc_ids)] if config.xlda_affinity_p > 0 else None
        split_tokens = [int(x.sum(dtype=np.int64)) for x in lengths]
        where = f"the {index_split.name} split (split={config.split!r})"
        check_packable(self.languages, self.probs, split_tokens, where)
        check_mix(self.languages, self.probs, config.sequence_length, where)
        if num_samples is None:
            num_samples = default_num_samples(split_tokens, self.probs,
                                              config.sequence_length, self.extra)
        self.num_samples = num_samples
        description = dict(params, probs=self.probs, resolved_num_samples=num_samples,
                           split_tokens=split_tokens)
        self.index = load_or_build(
            cache_dir, self.cache_base, description,
            lambda out_dir: build_packed_index(
                lengths, self.doc_ids, self.probs, config.xlda_rho, config.sequence_length,
                num_samples, config.random_seed, index_split.value, self.extra,
                progress=logger.info, out_dir=out_dir, languages=self.languages,
                groups=groups, affinity_p=config.xlda_affinity_p))

    @staticmethod
    def build_low_level_dataset(dataset_path: Optional[str],
                                config: XLDADatasetConfig) -> XLDACorpus:
        return XLDACorpus.from_config(config)

    @staticmethod
    def numel_low_level_dataset(low_level_dataset: XLDACorpus) -> int:
        # megatron-core's builder only uses this to give each split an np.arange over the
        # document indices (4 bytes per document, held by every rank for the whole run). XLDA
        # splits per language itself (split_ranges) and never reads those indices: 0 keeps
        # them empty.
        return 0

    @staticmethod
    def _key_config_attributes() -> List[str]:
        return ["random_seed", "sequence_length", "split", "split_matrix", "xlda_alpha",
                "xlda_beta", "xlda_rho", "xlda_affinity_key", "xlda_affinity_p",
                "reset_position_ids", "eod_mask_loss"]

    def __len__(self) -> int:
        return 0 if self.index is None else int(self.index.shuffle.shape[0])

    def sample_spans(self, idx: int) -> list[tuple]:
        """(lang, doc, offset, length, cut) spans of dataset item idx, in order, covering its
        seq_length input tokens plus the extra label token; cut: the document goes on later
        (its last token here is followed by another document)."""
        if self.index is None:
            raise IndexError(f"the {self.index_split.name} split was built with 0 samples")
        return self.index.sample_spans(int(self.index.shuffle[idx]),
                                       self.config.sequence_length, self.dataset.doc_length,
                                       self.extra)

    def __getitem__(self, idx: int) -> Dict[str, torch.Tensor]:
        S = self.config.sequence_length
        n = S + self.extra
        text = np.empty(n, dtype=np.int64)
        doc = np.empty(n, dtype=np.int32)
        lang = np.empty(n, dtype=np.int32)
        pos = np.empty(n, dtype=np.int64)
        loss_mask = torch.ones(S, dtype=torch.float32)
        ids, seen, c = {}, {}, 0
        for la, d, off, length, cut in self.sample_spans(idx):
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
            if cut and c - 1 < S:  # its label is another document's token: no loss there
                loss_mask[c - 1] = 0.0
        tokens = torch.from_numpy(text[:S].copy())
        if self.extra:
            labels = torch.from_numpy(text[1:n].copy())
        else:
            labels = torch.roll(tokens, -1)
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
    build_timeout_minutes: Optional[float] = None,
) -> tuple:
    """(train, valid, test) through megatron-core's BlendedMegatronDatasetBuilder; None for
    empty splits. num_samples: per split (Megatron's train_val_test_num_samples); None entries
    mean one epoch of the limiting language, 0 a split that is never read (no index).
    Under torch.distributed, missing indices are built on rank 0 first while the others wait
    on a group whose timeout is set for the build (build_timeout_minutes, else estimated from
    the corpus): megatron-core's own barrier would use the default 30-minute timeout."""
    sizes = list(num_samples) if num_samples is not None else [None, None, None]
    _build_missing_on_rank0(config, sizes, build_timeout_minutes)
    datasets = BlendedMegatronDatasetBuilder(XLDADataset, sizes, is_built_on_rank, config).build()
    return tuple(datasets)


# Build cost per document and per sample, rounded up from benchmarks/bench_index.py --realistic
# (1e8 documents + 2.3e7 samples: 19.6 s on one core); the estimate takes 4x that for slow
# shared file systems and busy nodes.
SECONDS_PER_DOC, SECONDS_PER_SAMPLE = 1e-7, 1e-6


def estimate_build_seconds(corpus: XLDACorpus, sizes: Sequence[Optional[int]]) -> float:
    docs = len(corpus)
    samples = sum(s if s is not None else docs for s in sizes)
    return 4 * (docs * SECONDS_PER_DOC + samples * SECONDS_PER_SAMPLE) + 10.0


def _build_missing_on_rank0(config: XLDADatasetConfig, sizes: list,
                            timeout_minutes: Optional[float]) -> None:
    import datetime

    import torch.distributed as dist

    if config.mock or not dist.is_initialized() or dist.get_world_size() == 1:
        return
    corpus = XLDACorpus.from_config(config)  # opens the .idx files only (memory-mapped)
    extra = int(config.add_extra_token_to_sequence)
    cache_dir = index_cache_dir(config)
    todo = []
    for split in Split:
        lo, hi = config.split_matrix[split.value] if config.split_matrix[split.value] else (0, 0)
        n = sizes[split.value]
        if hi <= lo or n == 0:
            continue
        # presence only: each rank verifies the arrays once, when it opens them
        base = index_cache_base(index_params(config, corpus, split, n, extra))
        if not is_cached(cache_dir, base):
            todo.append((split, n))
    # Every rank must take the same branch (new_group below is collective): a cache that another
    # job completes between two ranks' checks would otherwise leave some ranks waiting forever.
    anyone = [None] * dist.get_world_size()
    dist.all_gather_object(anyone, bool(todo))
    if not any(anyone):
        return
    est = estimate_build_seconds(corpus, [n for _, n in todo])
    minutes = timeout_minutes or max(30.0, 3 * est / 60 + 10)
    if dist.get_rank() == 0:
        logger.warning(
            "XLDA packing index for %s not cached in %s: building it on rank 0 (expected "
            "~%.1f min); the other ranks wait up to %.0f min. Build it ahead of the job with "
            "tools/build_packing_index.py.", [s.name for s, _ in todo], cache_dir, est / 60,
            minutes)
    group = dist.new_group(backend="gloo", timeout=datetime.timedelta(minutes=minutes))
    status = [None]
    try:
        if dist.get_rank() == 0:
            try:
                for split, n in todo:
                    XLDADataset(corpus, None, None, n, split, config)
                status = ["ok"]
            except Exception as e:  # tell the others, then fail here with the real error
                status = [f"{type(e).__name__}: {e}"]
                dist.broadcast_object_list(status, src=0, group=group)
                raise
        dist.broadcast_object_list(status, src=0, group=group)
    finally:
        dist.destroy_process_group(group)  # its gloo threads would otherwise poll for the job
    if status[0] != "ok":
        raise RuntimeError(f"rank 0 failed to build the XLDA packing index: {status[0]}")
