"""XLDA packing-index build time vs megatron-core's own GPT index build, same corpus.

Corpus: synthetic per-language indexed datasets (only the .idx is real; the .bin is a sparse file
of the right size, since neither index build reads tokens). Baseline: megatron-core's
BlendedMegatronDatasetBuilder over the same per-language prefixes with weights P(l) (GPTDataset
indices with the C++ helpers + the BlendedDataset index), i.e. what Megatron builds for a
multilingual blend. Both build from scratch into a fresh cache dir, same number of samples.
Prints the ratio XLDA / Megatron (target <= 1.5).

    OMP_NUM_THREADS=1 python benchmarks/bench_index.py [--docs-per-lang 350000] [--repeats 3]
"""
from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)

from megatron.core.datasets.blended_megatron_dataset_builder import (  # noqa: E402
    BlendedMegatronDatasetBuilder,
)
from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig  # noqa: E402
from megatron.core.datasets.indexed_dataset import _IndexWriter  # noqa: E402

from xlda.data import XLDADatasetConfig, build_xlda_datasets  # noqa: E402
from xlda.data.mock import MockTokenizer  # noqa: E402
from xlda.data.sampling import language_probabilities  # noqa: E402


def write_fake_indexed(prefix: str, lengths: np.ndarray) -> None:
    with _IndexWriter(prefix + ".idx", np.uint16) as w:
        w.write(lengths, None, np.arange(len(lengths) + 1))
    with open(prefix + ".bin", "wb") as f:
        f.truncate(int(lengths.sum()) * 2)  # sparse: no token is read by an index build


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs-per-lang", type=int, default=350_000)
    ap.add_argument("--seq-length", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    import torch

    if not torch.distributed.is_initialized():  # megatron's BlendedDataset cache path needs it
        torch.distributed.init_process_group(
            "gloo", rank=0, world_size=1, init_method=f"file://{tempfile.mktemp()}")
    langs = ("en", "ko", "ja", "zh")
    tmp = tempfile.mkdtemp(prefix="bench_xlda_")
    rng = np.random.default_rng(0)
    prefixes, tokens = {}, []
    t0 = time.time()
    for i, lang in enumerate(langs):
        n = args.docs_per_lang // (1 + i % 2)  # unequal languages
        lengths = rng.integers(20, 2000, size=n).astype(np.int32)
        prefixes[lang] = [os.path.join(tmp, f"{lang}_text_document")]
        write_fake_indexed(prefixes[lang][0], lengths)
        tokens.append(int(lengths.sum()))
    n_docs = sum(args.docs_per_lang // (1 + i % 2) for i in range(len(langs)))
    print(f"corpus: {n_docs} documents, {sum(tokens)} tokens, {len(langs)} languages "
          f"(written in {time.time() - t0:.1f}s)")
    probs = language_probabilities(langs, tokens, 1.0, None)
    S = args.seq_length
    num_samples = int(sum(tokens) * 0.95) // S
    tok = MockTokenizer(eod=0, vocab_size=32000)

    def megatron() -> float:
        cfg = GPTDatasetConfig(
            random_seed=1, sequence_length=S, split="1,0,0",
            blend=([prefixes[l][0] for l in langs], probs), tokenizer=tok,
            reset_position_ids=False, reset_attention_mask=False, eod_mask_loss=False,
            path_to_cache=tempfile.mkdtemp(dir=tmp), mid_level_dataset_surplus=0.005)
        t = time.perf_counter()
        BlendedMegatronDatasetBuilder(GPTDataset, [num_samples, 0, 0], lambda: True,
                                      cfg).build()
        return time.perf_counter() - t

    def xlda() -> float:
        cfg = XLDADatasetConfig(random_seed=1, sequence_length=S, split="1,0,0",
                                lang_prefixes=prefixes, tokenizer=tok, xlda_rho=0.5,
                                path_to_cache=tempfile.mkdtemp(dir=tmp))
        t = time.perf_counter()
        train, _, _ = build_xlda_datasets(cfg, [num_samples, None, None])
        assert len(train) == num_samples
        return time.perf_counter() - t

    megatron(), xlda()  # warm-up: imports, page cache
    tm = min(megatron() for _ in range(args.repeats))
    tx = min(xlda() for _ in range(args.repeats))
    print(f"samples: {num_samples} of {S} tokens")
    print(f"megatron-core GPTDataset+BlendedDataset index build: {tm:.3f}s (best of {args.repeats})")
    print(f"XLDA packing index build:                            {tx:.3f}s (best of {args.repeats})")
    print(f"ratio XLDA / megatron-core: {tx / tm:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
