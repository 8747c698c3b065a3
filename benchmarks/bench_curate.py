"""Curation throughput vs tokenization alone, on the same real input, in one run.

Reports documents/s and MB/s per worker of the full local curation pipeline (datatrove stages:
read, language ID, per-language filters, exact + MinHash dedup, publish; LocalPipelineExecutor)
and of the bare tokenizer (tokenizer.encode over the same texts, one process), and their ratio.
Curation per worker = total / (wall seconds * workers). Wall time includes datatrove's per-stage
start-up, which dominates on small inputs: use --docs-per-lang to see the steady state.

    python benchmarks/bench_curate.py [--docs-per-lang 300] [--workers 1 2] [--tokenizer-model tok.json]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.data.fixtures
sys.path.insert(0, str(Path(__file__).resolve().parent))  # for bench_preprocess

from tests.data.fixtures import CORPUS_LANGS, write_jsonl  # noqa: E402
from xlda.curate.config import CurateConfig  # noqa: E402

from bench_preprocess import _cpu, bench_inputs  # noqa: E402  (_cpu counts pool workers too)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizer-model", default=None, help="HF tokenizer.json (default: train a 16k BPE)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--docs-per-lang", type=int, default=300)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        tok, tok_path, docs, texts = bench_inputs(d, args.tokenizer_model, args.docs_per_lang)
        # One shard per language, as real dumps come; the read/filter stage runs one task each.
        srcs = [write_jsonl(d / f"bench.{lang}.jsonl.gz", [x for x in docs if x.get("lang") == lang], "gz")
                for lang in CORPUS_LANGS]
        mb = sum(len(t.encode()) for t in texts) / 1e6
        n = len(texts)
        print(f"{n} docs ({mb:.2f} MB) of {', '.join(CORPUS_LANGS)}; {os.cpu_count()} CPUs")

        t, c = time.perf_counter(), _cpu()
        for x in texts:
            tok.tokenize(x)
        bare, bare_cpu = time.perf_counter() - t, _cpu() - c
        print(f"tokenization alone (1 process): {n / bare:9.1f} docs/s  {mb / bare:6.2f} MB/s "
              f"({n / bare_cpu:.1f} docs per CPU-s)")
        for w in args.workers:
            cfg = CurateConfig(inputs=[str(s) for s in srcs], output_dir=str(d / f"out{w}"), workers=w)
            import logging

            logging.disable(logging.CRITICAL)
            from loguru import logger

            logger.remove()
            t, c = time.perf_counter(), _cpu()
            m = cfg.build().run()
            wall, cpu = time.perf_counter() - t, _cpu() - c
            kept = sum(e["documents"] for e in m["languages"].values())
            per = wall * w
            print(f"curation, {w} worker(s):        {n / per:9.1f} docs/s  {mb / per:6.2f} MB/s per worker "
                  f"({wall:.1f} s wall, {n / cpu:.1f} docs per CPU-s, {kept}/{n} kept); "
                  f"tokenization/curation per worker = {(n / bare) / (n / per):.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
