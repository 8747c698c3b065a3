"""The packing index at real document lengths and scale (`bench_index.py --realistic`).

0. the mix: the 7B mix asked for vs the shares realized over the built index, on the lognormal
   corpus and the bundled LibreOffice help corpus, S = 256 / 1024 / 4096, rho 0.1 / 0.5, with
   switch rate, forced share, cuts and pieces per document (xlda vs plain packing);

Corpus: the 7B mix (token shares en .85 / ko .10 / ja .025 / zh .025), document lengths
lognormal (median 600, sigma 1: mean ~1,000 tokens), S = 4096. Only the .idx files are real
(the .bin is sparse: no index build reads tokens). Prints, in one run:

1. rho -> measured switch rate over all document boundaries and over unforced ones, and the
   forced-switch share (7B mix; and a balanced two-language mix, where every rho is reachable);
2. minority-language (ko/ja/zh) tokens whose document starts in the same sample, and pieces
   per document, for XLDA vs Megatron's plain contiguous packing of the same documents;
3. the THD K/V expansion (gathered rows / tokens) of the packed samples;
4. per corpus size (1M, 10M, optionally 100M documents): build time, peak memory, index bytes
   and the RSS of a rank opening the cached index, each as a ratio to megatron-core's
   GPTDataset + BlendedDataset indices for the same data and sample count (each measured in a
   fresh process), and all of it extrapolated linearly to 2T tokens (~2e9 documents).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

SHARES = {"en": 0.85, "ko": 0.10, "ja": 0.025, "zh": 0.025}
S = 4096


def lognormal_lengths(n_docs: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for i, (lang, share) in enumerate(SHARES.items()):
        n = max(100, int(n_docs * share))
        out[lang] = np.maximum(1, rng.lognormal(np.log(600), 1.0, n)).astype(np.int32)
    return out


def write_corpus(directory: str, n_docs: int) -> dict:
    from megatron.core.datasets.indexed_dataset import _IndexWriter

    prefixes = {}
    for lang, lengths in lognormal_lengths(n_docs).items():
        prefix = os.path.join(directory, f"{lang}_text_document")
        with _IndexWriter(prefix + ".idx", np.uint16) as w:
            w.write(lengths, None, np.arange(len(lengths) + 1))
        with open(prefix + ".bin", "wb") as f:
            f.truncate(int(lengths.sum(dtype=np.int64)) * 2)
        prefixes[lang] = prefix
    return prefixes


# -- behaviour: rho, context, K/V expansion (in-process, no files) --------------------------------
def behaviour(n_docs: int) -> None:
    from xlda.attention.stats import expansion_from_lengths
    from xlda.data.packing import build_packed_index
    from xlda.data.packing_stats import (doc_context, plain_context, stream_layout,
                                         switch_rate, token_shares)

    lengths = list(lognormal_lengths(n_docs, seed=1).values())
    probs = np.array([x.sum(dtype=np.int64) for x in lengths], dtype=np.float64)
    probs /= probs.sum()
    ids = [range(len(x)) for x in lengths]
    n = int(probs.size and sum(int(x.sum(dtype=np.int64)) for x in lengths) * 0.9) // S
    print(f"\n== behaviour: 7B mix, {sum(map(len, lengths))} documents, {n} samples of {S}")
    print("rho   effective  switch rate (all / unforced)  forced share  cuts/sample  "
          "max |share - P|")
    for rho in (0.1, 0.3, 0.5, 0.9):
        idx = build_packed_index(lengths, ids, probs, rho, S, n, 1)
        s, lay = idx.stats, stream_layout(idx, lengths)
        err = np.abs(token_shares(lay, 4, n * S) - probs).max()
        print(f"{rho:<5} {s['rho_effective']:<10.3f} {switch_rate(lay):.3f} / "
              f"{s['free_switches'] / max(s['free_boundaries'], 1):.3f}"
              f"{'':16}{s['forced_switches'] / s['boundaries']:.3f}{'':9}"
              f"{s['cuts'] / n:.3f}{'':8}{err:.4f}")
    bal = [lengths[0][: len(lengths[0]) // 2], lengths[0][len(lengths[0]) // 2:]]
    pb = np.array([x.sum(dtype=np.int64) for x in bal], dtype=np.float64)
    pb /= pb.sum()
    nb = int(sum(int(x.sum(dtype=np.int64)) for x in bal) * 0.9) // S
    print("balanced 2-language mix (same lengths), rho -> switch rate (all / unforced), forced:")
    for rho in (0.1, 0.3, 0.5, 0.9):
        idx = build_packed_index(bal, [range(len(x)) for x in bal], pb, rho, S, nb, 1)
        s = idx.stats
        print(f"  {rho}: {switch_rate(stream_layout(idx, bal)):.3f} / "
              f"{s['free_switches'] / max(s['free_boundaries'], 1):.3f}, forced "
              f"{s['forced_switches'] / s['boundaries']:.3f}")
    idx = build_packed_index(lengths, ids, probs, 0.3, S, n, 1)
    lay = stream_layout(idx, lengths)
    ours = doc_context(lay, S, n, langs=(1, 2, 3))
    plain = plain_context(lengths, S, n, langs=(1, 2, 3))
    print("minority (ko/ja/zh) tokens with their document start in the sample: "
          f"xlda {ours['start_in_sample']:.3f}, plain {plain['start_in_sample']:.3f} "
          f"(ratio {ours['start_in_sample'] / plain['start_in_sample']:.3f}, target >= 1)")
    allc = doc_context(lay, S, n, langs=(0, 1, 2, 3))
    allp = plain_context(lengths, S, n, langs=(0, 1, 2, 3))
    print(f"pieces per document (all languages; split by the index or a sample boundary): xlda "
          f"{allc['pieces_per_doc']:.3f}, plain {allp['pieces_per_doc']:.3f} (ratio "
          f"{allc['pieces_per_doc'] / allp['pieces_per_doc']:.3f}, target <= 1.05)")
    print(f"  of which minority documents: xlda {ours['pieces_per_doc']:.3f}, plain "
          f"{plain['pieces_per_doc']:.3f} (a minority document that serves two windows ends one "
          f"token into the next sample)")
    kv = []
    start, length = lay["start"], lay["length"]
    for i in range(min(n, 2000)):
        a, b = np.searchsorted(start, [i * S, (i + 1) * S], side="right")
        a -= 1
        seg_s = np.maximum(start[a:b], i * S)
        seg_e = np.minimum(start[a:b] + length[a:b], (i + 1) * S)
        kv.append(expansion_from_lengths(seg_e - seg_s, lay["lang"][a:b]).kv_expansion)
    kv = np.array(kv)
    print(f"THD K/V expansion of packed samples (xlda mask, S={S}, {kv.size} samples): mean "
          f"{kv.mean():.2f}, p50 {np.median(kv):.2f}, p99 {np.percentile(kv, 99):.2f}, max "
          f"{kv.max():.2f}")


# -- shares: the mix asked for vs the mix built ----------------------------------------------------
def bundled_lengths() -> dict:
    """Token lengths of every document of the bundled LibreOffice help corpus (../shared/corpus),
    under a byte-level BPE (8,000 tokens) trained on 300 documents per language, + EOD."""
    import gzip

    from xlda.paths import corpus_dir

    texts = {}
    for lang in SHARES:
        with gzip.open(os.path.join(corpus_dir(), f"libreoffice_help.{lang}.jsonl.gz"), "rt") as f:
            texts[lang] = [json.loads(line)["text"] for line in f if line.strip()]
    tok = train_bpe(texts)
    return {lang: np.array([len(e.ids) + 1 for e in tok.encode_batch(ts)], dtype=np.int32)
            for lang, ts in texts.items()}


def train_bpe(texts: dict):
    """A byte-level BPE (8,000 tokens) trained on the first 300 documents of each language."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([t for ts in texts.values() for t in ts[:300]], trainers.BpeTrainer(
        vocab_size=8000, special_tokens=["<|endoftext|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return tok


def shares(n_docs: int, max_windows: int = 200_000) -> None:
    """Realized token shares of the 7B mix over the built index (its N S input tokens), per
    corpus x S x rho, with the switch rate, forced share, cuts and pieces per document next to
    Megatron's plain packing of the same documents."""
    from xlda.data.packing import build_packed_index, default_num_samples
    from xlda.data.packing_stats import (doc_context, plain_context, stream_layout,
                                         token_shares)

    probs = np.array(list(SHARES.values()))
    corpora = {"lognormal": list(lognormal_lengths(n_docs, seed=1).values())}
    try:
        corpora["bundled"] = list(bundled_lengths().values())
    except OSError as e:
        print(f"(bundled corpus not found: {e}; lognormal only)")
    print("\n== shares: asked en/ko/ja/zh " + "/".join(f"{p:g}" for p in probs) +
          "; realized over every sample of the built index (N windows = one epoch of the "
          "limiting language)")
    for name, lengths in corpora.items():
        med = [int(np.median(x)) for x in lengths]
        print(f"{name}: {sum(map(len, lengths))} documents, median tokens per language {med}")
    print("corpus     S     rho  N        realized shares              max|d|   switch "
          "(rho eff)  forced  cuts/win  pieces/doc xlda/plain (ratio)  minority ctx ratio")
    for name, lengths in corpora.items():
        ids = [range(len(x)) for x in lengths]
        tokens = [int(x.sum(dtype=np.int64)) for x in lengths]
        for S_ in (256, 1024, 4096):
            n = min(max_windows, default_num_samples(tokens, probs, S_))
            for rho in (0.1, 0.5):
                idx = build_packed_index(lengths, ids, probs, rho, S_, n, 1)
                st, lay = idx.stats, stream_layout(idx, lengths)
                got = token_shares(lay, 4, n * S_)
                b = max(st["boundaries"], 1)
                ours = doc_context(lay, S_, n, langs=(0, 1, 2, 3))
                plain = plain_context(lengths, S_, n, langs=(0, 1, 2, 3))
                om = doc_context(lay, S_, n, langs=(1, 2, 3))
                pm = plain_context(lengths, S_, n, langs=(1, 2, 3))
                print(f"{name:<10} {S_:<5} {rho:<4} {n:<8} "
                      f"{'/'.join(f'{x:.4f}' for x in got)}  {np.abs(got - probs).max():.4f}   "
                      f"{st['boundary_switches'] / b:.3f} ({st['rho_effective']:.3f})    "
                      f"{st['forced_switches'] / b:.3f}   {st['cuts'] / n:.3f}     "
                      f"{ours['pieces_per_doc']:.3f}/{plain['pieces_per_doc']:.3f} "
                      f"({ours['pieces_per_doc'] / plain['pieces_per_doc']:.3f})        "
                      f"{om['start_in_sample'] / pm['start_in_sample']:.3f}", flush=True)


# -- scale: one measurement per fresh process ------------------------------------------------------
def _rss_mb(field: str = "VmRSS") -> float:
    """This process's resident set (VmRSS) or its peak (VmHWM: unlike ru_maxrss, it is not
    inherited from the parent across fork + exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def child(mode: str, corpus_dir: str, cache_dir: str, n_samples: int) -> dict:
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    import torch
    from megatron.core.datasets.blended_megatron_dataset_builder import (
        BlendedMegatronDatasetBuilder)
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig

    from xlda.data import XLDADatasetConfig, build_xlda_datasets
    from xlda.data.mock import MockTokenizer

    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(
            "gloo", rank=0, world_size=1, init_method=f"file://{tempfile.mktemp()}")
    prefixes = {l: os.path.join(corpus_dir, f"{l}_text_document") for l in SHARES}
    tok = MockTokenizer(eod=0, vocab_size=32000)
    base = _rss_mb()
    t, c = time.perf_counter(), time.process_time()
    if mode.startswith("megatron"):
        from megatron.core.datasets.indexed_dataset import IndexedDataset
        sizes = None
        if mode == "megatron-build":  # (keep each IndexedDataset alive: its mmap backs the view)
            parts = [IndexedDataset(p) for p in prefixes.values()]
            sizes = [int(np.asarray(d.sequence_lengths).sum(dtype=np.int64)) for d in parts]
            del parts
        if sizes is None:
            with open(os.path.join(cache_dir, "weights.json")) as f:
                weights = json.load(f)
        else:
            weights = [s / sum(sizes) for s in sizes]
            with open(os.path.join(cache_dir, "weights.json"), "w") as f:
                json.dump(weights, f)
        base = _rss_mb()
        t, c = time.perf_counter(), time.process_time()
        cfg = GPTDatasetConfig(
            random_seed=1, sequence_length=S, split="1,0,0",
            blend=(list(prefixes.values()), weights), tokenizer=tok,
            reset_position_ids=False, reset_attention_mask=False, eod_mask_loss=False,
            path_to_cache=cache_dir, mid_level_dataset_surplus=0.005)
        BlendedMegatronDatasetBuilder(GPTDataset, [n_samples, 0, 0], lambda: True, cfg).build()
    else:
        cfg = XLDADatasetConfig(random_seed=1, sequence_length=S, split="1,0,0",
                                lang_prefixes={l: [p] for l, p in prefixes.items()},
                                tokenizer=tok, xlda_rho=0.3, path_to_cache=cache_dir)
        train, _, _ = build_xlda_datasets(cfg, [n_samples, 0, 0])
        assert len(train) == n_samples
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    peak = _rss_mb("VmHWM")
    return {"wall": wall, "cpu": cpu, "peak_mb": peak, "base_mb": base,
            "rss_mb": _rss_mb() - base}


def run_child(mode, corpus_dir, cache_dir, n_samples) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, corpus_dir, cache_dir,
                          str(n_samples)], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{mode} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def dir_bytes(d: str) -> int:
    total = 0
    for root, _, files in os.walk(d):
        for f in files:
            if not f.endswith((".json", ".lock")):
                total += os.path.getsize(os.path.join(root, f))
    return total


def scale(sizes) -> None:
    print("\n== scale (fresh process per measurement; memory = peak RSS above the process "
          "after imports)")
    print("docs       samples    build s (xlda/mcore = ratio)   peak MB (ratio)        "
          "index MB (ratio)     open RSS MB (ratio)")
    rows = []
    for n_docs in sizes:
        tmp = tempfile.mkdtemp(prefix="xlda_bench_")
        write_corpus(tmp, n_docs)
        tokens = sum(int(x.sum(dtype=np.int64)) for x in lognormal_lengths(n_docs).values())
        n_samples = int(tokens * 0.95) // S
        res = {}
        for who in ("megatron", "xlda"):
            cache = os.path.join(tmp, f"cache_{who}")
            os.makedirs(cache)
            res[who] = {"build": run_child(f"{who}-build", tmp, cache, n_samples),
                        "open": run_child(f"{who}-open", tmp, cache, n_samples),
                        "bytes": dir_bytes(cache)}
        m, x = res["megatron"], res["xlda"]
        peak_m = m["build"]["peak_mb"] - m["build"]["base_mb"]
        peak_x = x["build"]["peak_mb"] - x["build"]["base_mb"]
        row = (n_docs, n_samples, x["build"]["wall"], m["build"]["wall"], peak_x, peak_m,
               x["bytes"] / 2**20, m["bytes"] / 2**20, x["open"]["rss_mb"], m["open"]["rss_mb"])
        rows.append(row)
        print(f"{n_docs:<10} {n_samples:<10} {row[2]:.2f}/{row[3]:.2f} = {row[2] / row[3]:.2f}"
              f"{'':10}{row[4]:.0f}/{row[5]:.0f} = {row[4] / max(row[5], 1):.2f}{'':6}"
              f"{row[6]:.0f}/{row[7]:.0f} = {row[6] / row[7]:.2f}{'':6}"
              f"{row[8]:.1f}/{row[9]:.1f} = {row[8] / max(row[9], 0.1):.2f}", flush=True)
        subprocess.run(["rm", "-rf", tmp], check=False)
    n_docs, n_samples, bx, bm, px, pm, ix, im, _, _ = rows[-1]
    f = 2e9 / n_docs
    print(f"\nextrapolated linearly to 2T tokens (~2e9 documents, {n_samples * f:.3g} samples "
          f"of {S}) from the {n_docs}-document row:")
    print(f"  build: xlda {bx * f / 60:.1f} min vs megatron-core {bm * f / 60:.1f} min")
    print(f"  peak build memory: xlda {px * f / 1024:.1f} GB vs megatron-core "
          f"{pm * f / 1024:.1f} GB")
    print(f"  index: xlda {ix * f / 1024:.1f} GB vs megatron-core {im * f / 1024:.1f} GB")


def main(argv=None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=lambda s: [int(float(x)) for x in s.split(",")],
                    default=[1_000_000, 10_000_000],
                    help="corpus sizes (documents) for the scale table, e.g. 1e6,1e7,1e8")
    ap.add_argument("--behaviour-docs", type=int, default=400_000)
    ap.add_argument("--skip-scale", action="store_true")
    ap.add_argument("--skip-behaviour", action="store_true")
    args = ap.parse_args(argv)
    shares(args.behaviour_docs)
    if not args.skip_behaviour:
        behaviour(args.behaviour_docs)
    if not args.skip_scale:
        scale(args.docs)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))))
    else:
        main()
