"""Affinity packing at real document lengths: what p buys, what it costs.

    python benchmarks/bench_affinity.py [--windows 2000] [--scale-docs 2000000]

1. The bundled LibreOffice help corpus (../shared/corpus: the same pages in en/ko/ja/zh, the
   page path in ``id`` is the group), tokenized by a byte-level BPE trained on it (as
   bench_index_realistic.py), packed at S = 1024 and 4096 for two mixes (the 7B mix en .85 /
   ko .10 / ja .025 / zh .025, and an even one), p = 0 / 0.25 / 0.5 / 1: the realized affinity
   rate (documents whose window has, right before them, their page in another language, per
   document started), the share of windows holding such a pair, the walk's attempts and swaps, the realized shares next to P, the switch
   rate, forced switches and cuts, all against p = 0 (today's packing) in the same run.
2. Build time at scale: a lognormal corpus (median 600 tokens) of ``--scale-docs`` documents in
   translation sets of 4, S = 4096, the 7B mix, the compiled walk with p = 0.5 vs p = 0 (ratio)
   measured in the same run, extrapolated to 2T tokens.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import logging
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the other benchmarks' helpers

MIXES = {"7B mix": [0.85, 0.10, 0.025, 0.025], "even": [0.25, 0.25, 0.25, 0.25]}
LANGS = ("en", "ko", "ja", "zh")
PATTERN = r"^lo/[^/]+/(.+)$"  # the page path without its locale


def bundled() -> tuple:
    """(lengths, groups) per language of the bundled corpus."""
    import re

    from xlda.data.groups import group_hash
    from xlda.paths import corpus_dir

    texts, groups = {}, {}
    rx = re.compile(PATTERN)
    for lang in LANGS:
        with gzip.open(os.path.join(corpus_dir(), f"libreoffice_help.{lang}.jsonl.gz"), "rt") as f:
            docs = [json.loads(line) for line in f if line.strip()]
        texts[lang] = [d["text"] for d in docs]
        groups[lang] = np.array([group_hash(m.group(1)) if (m := rx.search(d["id"])) else 0
                                 for d in docs], dtype=np.int64)
    from bench_index_realistic import train_bpe  # the same tokenizer as the shares benchmark

    tok = train_bpe(texts)
    lengths = [np.array([len(e.ids) + 1 for e in tok.encode_batch(texts[lang])], np.int32)
               for lang in LANGS]
    return lengths, [groups[lang] for lang in LANGS]


def quality(windows: int) -> None:
    from xlda.data.packing import build_packed_index

    lengths, groups = bundled()
    shared = len(set.intersection(*(set(g.tolist()) - {0} for g in groups)))
    print(f"== 1. bundled corpus: {', '.join(f'{l} {len(x)} docs' for l, x in zip(LANGS, lengths))}"
          f"; median length {int(np.median(np.concatenate(lengths)))} tokens; {shared} pages in "
          f"all four languages")
    ids = [range(len(x)) for x in lengths]
    for S in (1024, 4096):
        for name, probs in MIXES.items():
            print(f"\n  S = {S}, {name} (P = {'/'.join(f'{p:g}' for p in probs)}), {windows} "
                  f"windows")
            print(f"  {'p':>5} {'rate':>7} {'windows':>8} {'pairs':>6} {'tries':>6} {'swaps':>6} "
                  f"{'max |share-P|':>14} {'switch':>7} {'forced':>7} {'cuts':>6} {'s':>6}")
            base = None
            for p in (0.0, 0.25, 0.5, 1.0):
                t = time.perf_counter()
                idx = build_packed_index(lengths, ids, probs, 0.5, S, windows, 1, groups=groups,
                                         affinity_p=p)
                dt = time.perf_counter() - t
                st = idx.stats
                if p == 0:  # today's packing: the same measurement on its index
                    from xlda.data.packing import affinity_stats, affinity_tables

                    dense = affinity_tables(groups, lengths, 1.0, 0)[2]
                    st = {**st, **affinity_stats(idx.arrays(), lengths, np.zeros(4, np.int64),
                                                 dense, S, windows * S),
                          "affinity_tries": 0, "affinity_swaps": 0}
                    base = st
                b = max(st["boundaries"], 1)
                err = max(abs(a - q) for a, q in zip(st["shares"], probs))
                print(f"  {p:>5g} {st['affinity_rate']:>7.3f} {st['affinity_windows']:>8.3f} "
                      f"{st['affinity_pairs']:>6} "
                      f"{st['affinity_tries']:>6} {st['affinity_swaps']:>6} {err:>14.4f} "
                      f"{st['boundary_switches'] / b:>7.3f} {st['forced_switches'] / b:>7.3f} "
                      f"{st['cuts']:>6} {dt:>6.2f}")
            print(f"  (p = 0 is today's packing: its rate {base['affinity_rate']:.3f} is the "
                  "translations that meet by chance)")


def scale(n_docs: int) -> None:
    from xlda.data.packing import build_packed_index, default_num_samples

    rng = np.random.default_rng(0)
    probs = MIXES["7B mix"]
    sets = n_docs // 4
    lengths = [np.maximum(1, rng.lognormal(np.log(600), 1.0, sets)).astype(np.int32)
               for _ in LANGS]
    groups = [np.arange(1, sets + 1, dtype=np.int64) for _ in LANGS]
    ids = [range(sets) for _ in LANGS]
    S = 4096
    n = default_num_samples([int(x.sum()) for x in lengths], probs, S)
    times = {}
    for p in (0.0, 0.5):
        t = time.perf_counter()
        idx = build_packed_index(lengths, ids, probs, 0.5, S, n, 1, groups=groups, affinity_p=p)
        times[p] = time.perf_counter() - t
        rate = idx.stats.get("affinity_rate", 0.0)
        print(f"  p {p:g}: {times[p]:.2f} s for {n} windows ({n * S / 1e6:.0f}M tokens), "
              f"affinity rate {rate:.3f}")
    per_token = times[0.5] / (n * S)
    print(f"  ratio p 0.5 / p 0: {times[0.5] / times[0]:.2f}x; at 2T tokens: "
          f"{per_token * 2e12 / 3600:.1f} h (p 0: {times[0] / (n * S) * 2e12 / 3600:.1f} h), "
          "single-threaded, linear extrapolation")


def main(argv=None) -> int:
    logging.getLogger("xlda.data.packing").setLevel(logging.ERROR)  # the rho cap, per build
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--windows", type=int, default=2000, help="windows per bundled-corpus index")
    p.add_argument("--scale-docs", type=int, default=2_000_000,
                   help="documents of the build-time corpus (part 2)")
    a = p.parse_args(argv)
    try:
        quality(a.windows)
    except OSError as e:
        print(f"(bundled corpus not found: {e}; part 1 skipped)")
    print(f"\n== 2. build time, {a.scale_docs} documents in translation sets of 4, S = 4096, "
          "7B mix, compiled walk")
    scale(a.scale_docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
