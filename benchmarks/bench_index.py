"""XLDA packing-index build time vs megatron-core's own GPT index build, same corpus.

Corpus: synthetic per-language indexed datasets (only the .idx is real; the .bin is a sparse file
of the right size, since neither index build reads tokens). Baseline: megatron-core's
BlendedMegatronDatasetBuilder over the same per-language prefixes with weights P(l) (GPTDataset
indices with the C++ helpers + the BlendedDataset index), i.e. what Megatron builds for a
multilingual blend. Both build from scratch into a fresh cache dir, same number of samples.
Prints the ratio XLDA / Megatron (target <= 1.5), on wall time and on process CPU time (the
second is steadier on a shared machine). XLDA uses its compiled loops when built
(xlda/data/_packing_kernel); --backend python measures its Python twin.

    OMP_NUM_THREADS=1 python benchmarks/bench_index.py [--docs-per-lang 350000] [--repeats 3]
        [--backend {auto,c,python}]
    OMP_NUM_THREADS=1 python benchmarks/bench_index.py --realistic [--docs 1e6,1e7,1e8]

--realistic: the 7B mix at real document lengths (rho, document context vs plain packing,
K/V expansion, and build time / memory / index bytes / open RSS vs megatron-core at 1M-100M
documents, extrapolated to 2T tokens); see benchmarks/bench_index_realistic.py.
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
from xlda.data import packing  # noqa: E402
from xlda.data.mock import MockTokenizer  # noqa: E402
from xlda.data.sampling import language_probabilities  # noqa: E402


def write_fake_indexed(prefix: str, lengths: np.ndarray) -> None:
    with _IndexWriter(prefix + ".idx", np.uint16) as w:
        w.write(lengths, None, np.arange(len(lengths) + 1))
    with open(prefix + ".bin", "wb") as f:
        f.truncate(int(lengths.sum()) * 2)  # sparse: no token is read by an index build


def main() -> None:
    import sys

    if "--realistic" in sys.argv:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import bench_index_realistic

        bench_index_realistic.main([a for a in sys.argv[1:] if a != "--realistic"])
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs-per-lang", type=int, default=350_000)
    ap.add_argument("--seq-length", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--backend", choices=("auto", "c", "python"), default="auto")
    args = ap.parse_args()
    if args.backend != "auto":  # the dataset calls build_packed_index with the default backend
        from functools import partial

        import xlda.data.dataset as xdd
        xdd.build_packed_index = partial(packing.build_packed_index, backend=args.backend)
    try:
        from xlda.data import _packing_kernel  # noqa: F401
        built = "built"
    except ImportError:
        built = "not built"
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

    def megatron() -> tuple:
        cfg = GPTDatasetConfig(
            random_seed=1, sequence_length=S, split="1,0,0",
            blend=([prefixes[l][0] for l in langs], probs), tokenizer=tok,
            reset_position_ids=False, reset_attention_mask=False, eod_mask_loss=False,
            path_to_cache=tempfile.mkdtemp(dir=tmp), mid_level_dataset_surplus=0.005)
        t, c = time.perf_counter(), time.process_time()
        BlendedMegatronDatasetBuilder(GPTDataset, [num_samples, 0, 0], lambda: True,
                                      cfg).build()
        return time.perf_counter() - t, time.process_time() - c

    def xlda() -> tuple:
        cfg = XLDADatasetConfig(random_seed=1, sequence_length=S, split="1,0,0",
                                lang_prefixes=prefixes, tokenizer=tok, xlda_rho=0.5,
                                path_to_cache=tempfile.mkdtemp(dir=tmp))
        t, c = time.perf_counter(), time.process_time()
        train, _, _ = build_xlda_datasets(cfg, [num_samples, None, None])
        took = time.perf_counter() - t, time.process_time() - c
        assert len(train) == num_samples
        return took

    megatron(), xlda()  # warm-up: imports, page cache
    # alternate the two so that load from other processes hits both alike
    m, x = [], []
    for _ in range(args.repeats):
        m.append(megatron())
        x.append(xlda())
    tm, cm = min(w for w, _ in m), min(c for _, c in m)
    tx, cx = min(w for w, _ in x), min(c for _, c in x)
    print(f"samples: {num_samples} of {S} tokens; XLDA backend: {args.backend} "
          f"(compiled loops {built})")
    print(f"megatron-core GPTDataset+BlendedDataset index build: {tm:.3f}s wall, {cm:.3f}s CPU "
          f"(best of {args.repeats})")
    print(f"XLDA packing index build:                            {tx:.3f}s wall, {cx:.3f}s CPU "
          f"(best of {args.repeats})")
    print(f"ratio XLDA / megatron-core: {tx / tm:.2f}x wall, {cx / cm:.2f}x CPU (target <= 1.5x)")


if __name__ == "__main__":
    main()
