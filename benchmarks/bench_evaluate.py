"""Scoring speed and parity of the Megatron backend (lm-eval model ``xlda-megatron``) against
lm-eval's own ``hf`` backend on the same model's HF export, measured in the same run.

    python benchmarks/bench_evaluate.py [--items 200 --choices 4 --seq-length 256]

Requests are those of a multiple-choice benchmark: contexts of 40-200 tokens, continuations of
1-8, ``--choices`` per item (MMLU-like; the trillion suite is ~120k items, ~450k requests), plus
greedy generations of 32 tokens (GSM8K-like, without a KV cache on our side). Prints requests/s
of both backends, their ratio, the largest log-likelihood difference, and the time the trillion
suite's request count would take at the measured rate on this machine and model.
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TRILLION_REQUESTS = 450_000  # ~120k multiple-choice items x ~3.8 choices (lm-eval's counts)


def _requests(n_items: int, choices: int, seed: int = 0):
    from lm_eval.api.instance import Instance

    rng = random.Random(seed)

    def words(k):
        return " ".join(f"w{rng.randrange(1, 5000)}" for _ in range(k))

    out = []
    for i in range(n_items):
        ctx = words(rng.randint(40, 200))
        for c in range(choices):
            out.append(Instance("loglikelihood", {}, (ctx, " " + words(rng.randint(1, 8))), c,
                                ("bench", i, 1)))
    gens = [Instance("generate_until", {}, (words(rng.randint(40, 120)),
                                            {"until": ["w0"], "max_gen_toks": 32, "do_sample": False}),
                     0, ("bench", i, 1)) for i in range(8)]
    return out, gens


def _timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=200)
    p.add_argument("--choices", type=int, default=4)
    p.add_argument("--seq-length", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=16)
    args = p.parse_args(argv)

    __import__("lm_eval.models")  # registers lm-eval's own backends (hf, ...)
    import torch
    from lm_eval.api.registry import get_model

    from tests.evaluate.fixtures import export_hf, train_tiny_checkpoint
    from xlda.evaluate.lm_backend import XldaMegatronLM

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="bench_eval_") as tmp:
        root = Path(tmp)
        ckpt, tok = train_tiny_checkpoint(root, iters=4, seq_length=args.seq_length)
        hf_dir = export_hf(ckpt, tok, root / "hf")
        ours = XldaMegatronLM(load=str(ckpt), tokenizer_model=str(tok), batch_size=args.batch_size)
        theirs = get_model("hf")(pretrained=str(hf_dir), device="cpu", dtype="float32",
                                 batch_size=args.batch_size)
        reqs, gens = _requests(args.items, args.choices)
        theirs.loglikelihood(reqs[:8], disable_tqdm=True)  # warm-up both
        ours.loglikelihood(reqs[:8])
        a, t_ours = _timed(ours.loglikelihood, reqs)
        b, t_hf = _timed(lambda r: theirs.loglikelihood(r, disable_tqdm=True), reqs)
        diff = max(abs(x[0] - y[0]) for x, y in zip(a, b))
        greedy_same = sum(x[1] == y[1] for x, y in zip(a, b))
        ga, tg_ours = _timed(ours.generate_until, gens)
        gb, tg_hf = _timed(lambda r: theirs.generate_until(r, disable_tqdm=True), gens)
    n = len(reqs)
    print(f"model: tiny (2 layers x 128, vocab {ours.session.config.model.vocab_size}), "
          f"seq {args.seq_length}, CPU, batch {args.batch_size}")
    print(f"loglikelihood: {n} requests ({args.items} items x {args.choices} choices)")
    print(f"  xlda-megatron {n / t_ours:8.1f} req/s   hf {n / t_hf:8.1f} req/s   "
          f"ratio xlda/hf {t_hf / t_ours:.2f}x")
    print(f"  max |loglik difference| {diff:.2e}; is_greedy equal on {greedy_same}/{n}")
    print(f"generate_until: {len(gens)} requests x 32 tokens: xlda-megatron {tg_ours:.2f} s, "
          f"hf {tg_hf:.2f} s (ratio {tg_hf / tg_ours:.2f}x; ours recomputes the prefix), "
          f"same text on {sum(x == y for x, y in zip(ga, gb))}/{len(gens)}")
    print(f"trillion suite (~{TRILLION_REQUESTS:,} loglikelihood requests) at this rate: "
          f"xlda-megatron {TRILLION_REQUESTS / (n / t_ours) / 60:.1f} min, "
          f"hf {TRILLION_REQUESTS / (n / t_hf) / 60:.1f} min (this model, this machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
