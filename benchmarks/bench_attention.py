"""XLDA attention executors vs plain causal SDPA, and the K/V expansion of real packed samples.

Prints, per sequence length, time(executor) / time(SDPA is_causal=True) measured in this run:
  sdpa-dense   SDPA with the dense bool mask (mask built once, outside the timing)
  thd-ref      the THD decomposition with the torch reference varlen kernel (one SDPA/segment)
  flex         flex_attention with the cached BlockMask (compiled when it compiles, else eager)
  thd-<kernel> the THD decomposition with a fused varlen kernel (CUDA: flash_attn / torch varlen_attn)
  index-build  build_thd_layout (pure index math, once per micro-batch)
  blockmask    the flex BlockMask build (xlda.attention.flex, once per micro-batch)
With --blockmask-only: the flex BlockMask build time and peak memory per S (each in a fresh
process), xlda's block-count builder vs torch's create_block_mask (eager: it materialises the
dense B x S x S mask), e.g. --blockmask-only --seq 4096 16384 --batch 1.
Then the K/V expansion / FLOPs ratio of packed samples: through xlda.data's real packer on
documents whose lengths come from ../shared/corpus (tokens ~ chars/3), or, if xlda.data is not
importable, from a synthetic packer drawing documents from the same length distribution.

usage: python benchmarks/bench_attention.py [--seq 1024 4096] [--heads 8] [--head-dim 64]
       [--batch 1] [--backward] [--samples 200]
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore")

from xlda.attention.params import MaskParams  # noqa: E402
from xlda.attention.stats import expansion_from_ids, expansion_from_lengths  # noqa: E402
from xlda.attention.thd import (  # noqa: E402
    build_thd_layout, fused_varlen_kernel, thd_attention_fused, thd_attention_reference,
)


def corpus_lengths() -> dict[str, np.ndarray]:
    from xlda.paths import corpus_dir

    out: dict[str, list[int]] = {}
    files = sorted(Path(corpus_dir()).glob("*.jsonl.gz"))
    if not files:  # e.g. on a GPU box without ../shared: lognormal lengths, median ~300 tokens
        rng = np.random.default_rng(0)
        print(f"no corpus at {corpus_dir()}; using lognormal document lengths")
        return {l: np.maximum(1, rng.lognormal(np.log(300), 1.0, 2000).astype(int)) for l in ("en", "ko", "ja", "zh")}
    for f in files:
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            for line in fh:
                rec = json.loads(line)
                out.setdefault(rec["lang"], []).append(max(1, len(rec["text"]) // 3))
    return {k: np.asarray(v) for k, v in out.items()}


def synth_row(S: int, lengths: dict, rng: np.random.Generator):
    """Pack documents of random languages (drawn from the corpus length distribution)."""
    langs = sorted(lengths)
    doc_lens, doc_langs = [], []
    total = int(rng.integers(0, 400))  # the head of a document split from the previous sample
    if total:
        doc_lens.append(min(total, S)); doc_langs.append(int(rng.integers(len(langs))))
        total = doc_lens[0]
    while total < S:
        li = int(rng.integers(len(langs)))
        n = int(rng.choice(lengths[langs[li]]))
        n = min(n, S - total)
        doc_lens.append(n); doc_langs.append(li)
        total += n
    doc = np.repeat(np.arange(len(doc_lens)), doc_lens)
    lang = np.repeat(doc_langs, doc_lens)
    return doc, lang


def layouts(S: int, B: int, lengths, seed=0):
    rng = np.random.default_rng(seed)
    rows = [synth_row(S, lengths, rng) for _ in range(B)]
    doc = torch.tensor(np.stack([r[0] for r in rows]), dtype=torch.int32)
    lang = torch.tensor(np.stack([r[1] for r in rows]), dtype=torch.int32)
    return doc, lang


def timeit(fn, device, reps=3, warmup=1):
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best


def bench_attention(S, B, H, D, lengths, device, dtype, backward, reps):
    from torch.nn.attention.flex_attention import flex_attention

    doc, lang = layouts(S, B, lengths)
    doc, lang = doc.to(device), lang.to(device)
    g = torch.Generator(device="cpu").manual_seed(0)
    q, k, v = (torch.randn(B, H, S, D, generator=g).to(device, dtype).requires_grad_(backward) for _ in range(3))
    mp = MaskParams(doc, lang, "xlda")
    dense = mp.dense()[:, None]
    layout = mp.thd_layout()
    flat = lambda t: t.transpose(1, 2).reshape(B * S, H, D)

    def run(f):
        def go():
            o = f()
            if backward:
                o.sum().backward()
        return go

    sdpa = torch.nn.functional.scaled_dot_product_attention
    res = {}
    base = timeit(run(lambda: sdpa(q, k, v, is_causal=True)), device, reps)
    res["causal-sdpa (s)"] = base
    res["sdpa-dense"] = timeit(run(lambda: sdpa(q, k, v, attn_mask=dense)), device, reps) / base
    res["thd-ref"] = timeit(run(lambda: thd_attention_reference(flat(q), flat(k), flat(v), layout)), device, reps) / base
    kernel = fused_varlen_kernel()
    if kernel is not None and dtype in (torch.float16, torch.bfloat16):
        try:
            res[f"thd-{kernel[0]}"] = timeit(run(lambda: thd_attention_fused(flat(q), flat(k), flat(v), layout)), device, reps) / base
        except Exception as e:  # noqa: BLE001
            print(f"  fused varlen kernel {kernel[0]} failed: {type(e).__name__}: {str(e)[:160]}")
    bm = mp.block_mask()
    flex_fn, kind = flex_attention, "eager"
    try:
        cf = torch.compile(flex_attention, dynamic=False)
        cf(q.detach(), k.detach(), v.detach(), block_mask=bm)
        flex_fn, kind = cf, "compiled"
    except Exception as e:  # noqa: BLE001  (report and fall back)
        print(f"  flex compile failed on {device.type}: {type(e).__name__}: {str(e)[:120]}; using eager")
    if backward and device.type != "cuda":
        res[f"flex-{kind}"] = float("nan")  # flex backward is not implemented on CPU
        fwd_only = lambda: flex_fn(q.detach(), k.detach(), v.detach(), block_mask=bm)
        res[f"flex-{kind} fwd-only vs causal fwd"] = timeit(fwd_only, device, reps) / timeit(
            lambda: sdpa(q.detach(), k.detach(), v.detach(), is_causal=True), device, reps)
    else:
        res[f"flex-{kind}"] = timeit(run(lambda: flex_fn(q, k, v, block_mask=bm)), device, reps) / base
    res["index-build"] = timeit(lambda: build_thd_layout(doc, lang, "xlda"), device, reps) / base
    res["blockmask"] = timeit(lambda: MaskParams(doc, lang, "xlda").block_mask(), device, reps) / base
    res["kv-expansion"] = layout.expansion_ratio
    res["flops-ratio"] = layout.flops_ratio
    res["segments/row"] = layout.num_segments / B
    return res


def _blockmask_child(S, B, which, device, reps, conn):
    """In a fresh process: build time (best of reps) and peak memory above the baseline."""
    warnings.filterwarnings("ignore")
    dev = torch.device(device)

    def peak_rss() -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        return 0

    def build():
        if which == "xlda":
            return MaskParams(doc, lang, "xlda").block_mask()
        from torch.nn.attention.flex_attention import create_block_mask

        from xlda.attention.flex import mask_mod_for

        n = doc.shape[1]
        return create_block_mask(mask_mod_for(doc, lang, "xlda"), B, None, n, n, device=dev)

    lengths = corpus_lengths_cached()
    doc, lang = (t.to(dev) for t in layouts(256, B, lengths))
    build()  # loads the modules; small enough to leave the allocator's high-water mark alone
    doc, lang = (t.to(dev) for t in layouts(S, B, lengths))
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        build()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        try:
            Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        except OSError:
            pass
        base = peak_rss()
        build()
        peak = peak_rss() - base
    t = timeit(build, dev, reps=reps, warmup=0)
    conn.send((t, peak))


_LENGTHS = None


def corpus_lengths_cached():
    global _LENGTHS
    if _LENGTHS is None:
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):
            _LENGTHS = corpus_lengths()
    return _LENGTHS


def bench_blockmask(seqs, B, device, reps, include_create: bool = True):
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    print(f"flex BlockMask build, xlda mask, B={B}, device {device} (time: best of {reps}; "
          "peak: memory above the process's baseline during one build)")
    for S in seqs:
        row = []
        for which in (("xlda", "create_block_mask") if include_create else ("xlda",)):
            a, b = ctx.Pipe()
            p = ctx.Process(target=_blockmask_child, args=(S, B, which, device, reps, b))
            p.start()
            p.join()
            if not a.poll():
                row.append(f"{which} failed (exit code {p.exitcode})")
                continue
            t, peak = a.recv()
            row.append(f"{which} {t * 1e3:.1f} ms, peak +{peak / 2**20:.0f} MiB")
        print(f"  S={S}: " + " | ".join(row), flush=True)


def packed_with_xlda_data(S, lengths, samples):
    """Real packer (xlda.data) over documents with corpus lengths; None when unavailable."""
    try:
        from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

        from xlda.data import XLDADatasetConfig, build_xlda_datasets
        from xlda.data.mock import MockTokenizer
    except Exception as e:  # noqa: BLE001
        print(f"xlda.data not importable ({type(e).__name__}: {e}); using the synthetic packer")
        return None
    tmp = tempfile.mkdtemp(prefix="xlda_bench_")
    prefixes = {}
    for lang, lens in lengths.items():
        prefix = os.path.join(tmp, f"{lang}_text_document")
        b = IndexedDatasetBuilder(prefix + ".bin", dtype=np.int32)
        for n in lens:
            b.add_item(torch.full((int(n) + 1,), 5, dtype=torch.int64))
            b.end_document()
        b.finalize(prefix + ".idx")
        prefixes[lang] = [prefix]
    try:
        cfg = XLDADatasetConfig(random_seed=1234, sequence_length=S, split="1,0,0",
                                tokenizer=MockTokenizer(eod=0, vocab_size=1000),
                                lang_prefixes=prefixes, path_to_cache=os.path.join(tmp, "cache"))
        train, _, _ = build_xlda_datasets(cfg, [samples, 0, 0])
        n = min(samples, len(train))
        return [expansion_from_ids(train[i]["doc_ids"], train[i]["lang_ids"])[0] for i in range(n)]
    except Exception as e:  # noqa: BLE001
        print(f"xlda.data packer failed ({type(e).__name__}: {str(e)[:200]}); using the synthetic packer")
        return None


def summarize(name, stats):
    kv = np.array([s.kv_expansion for s in stats])
    fl = np.array([s.flops_ratio for s in stats])
    docs = np.array([s.num_docs for s in stats])
    print(f"  {name}: n={len(stats)} docs/sample mean {docs.mean():.1f} | kv-expansion mean "
          f"{kv.mean():.2f} p50 {np.median(kv):.2f} p95 {np.percentile(kv, 95):.2f} max {kv.max():.2f}"
          f" | flops vs causal mean {fl.mean():.3f} max {fl.max():.3f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seq", type=int, nargs="+", default=[1024, 4096])
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--backward", action="store_true", help="time forward+backward")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default=None, help="default: bfloat16 on cuda, float32 on cpu")
    ap.add_argument("--skip-packing", action="store_true")
    ap.add_argument("--blockmask-only", action="store_true",
                    help="only the flex BlockMask build time/peak memory (xlda vs create_block_mask)")
    ap.add_argument("--no-create-block-mask", action="store_true",
                    help="with --blockmask-only: skip torch's dense create_block_mask baseline")
    args = ap.parse_args(argv)
    if args.blockmask_only:
        bench_blockmask(args.seq, args.batch, args.device, args.reps, not args.no_create_block_mask)
        return
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype) if args.dtype else (torch.bfloat16 if device.type == "cuda" else torch.float32)
    lengths = corpus_lengths()
    print(f"corpus: {', '.join(f'{k}: {len(v)} docs, median {int(np.median(v))} tok' for k, v in lengths.items())}")
    print(f"device {device} dtype {dtype} B={args.batch} H={args.heads} D={args.head_dim} "
          f"{'fwd+bwd' if args.backward else 'fwd'}; ratios = time / causal SDPA time (same run)")
    for S in args.seq:
        res = bench_attention(S, args.batch, args.heads, args.head_dim, lengths, device, dtype, args.backward, args.reps)
        print(f"S={S}: " + " | ".join(f"{k} {v:.4g}" for k, v in res.items()), flush=True)
    if args.skip_packing:
        return
    for S in args.seq:
        print(f"packed samples, S={S}:")
        real = packed_with_xlda_data(S, lengths, args.samples)
        if real:
            summarize("xlda.data packer", real)
        rng = np.random.default_rng(0)
        synth = []
        for _ in range(args.samples):
            doc, lang = synth_row(S, lengths, rng)
            synth.append(expansion_from_ids(doc, lang)[0])
        summarize("synthetic packer (random language per doc)", synth)


if __name__ == "__main__":
    main()
