"""RLVR (GRPO) step costs: the KV-cached rollout Generator against the no-cache greedy decoder
(``Scorer.greedy``, recomputes the prefix every token) measured in the same run, a short RLVR
training's per-step split between generating and training, and a written-out estimate of a
7B RLVR step on H100s.

    python benchmarks/bench_rlvr.py [--batch 16 --prompt-min 64 --prompt-max 128 --new-tokens 64
                                     --layers 4 --hidden 128 --seq-length 256 --iters 4]

1. decoding: ``--batch`` random prompts of ``--prompt-min``..``--prompt-max`` random ids (left
   padded by the Generator), ``--new-tokens`` greedy tokens each (temperature 0, no stop, so both
   make the same number), random weights. Prints tokens/s of both, their ratio, the cached
   path's prefill time and decode step, and on how many rows the two produced the same tokens.
2. RLVR: ``--iters`` iterations of ``posttrain.py rlvr`` (in process, random weights, exact-match
   reward) on prompts of the same lengths, ``--num-generations`` completions of up to
   ``--new-tokens`` tokens at temperature 1, global batch ``--rlvr-batch``. Per step: rollout
   seconds (generation + rewards + rows), train seconds, the share of the step spent generating,
   rollout tokens/s (completion tokens) and train tokens/s (the loop's ``tokens``, i.e. rows x
   --seq-length positions, padding included, and the completion tokens trained on).
3. a 7B RLVR step on H100s (Trillion-7B shapes, TP2): arithmetic from stated assumptions (memory-
   bound decode, 6 N D training at a given MFU), not a measurement.

The model is the tiny recipe at ``--layers`` x ``--hidden`` with a ~1K word-level vocabulary,
float32; on CPU (the default when no GPU is visible) the default run takes well under a minute
on 2 cores. The same code runs on one GPU.
"""
from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VOCAB = 1024  # the word-level tokenizer's size (specials + chat words + filler words)

# -- the 7B estimate's assumptions (part 3) ------------------------------------------------------
H100_HBM_BYTES_PER_S = 3.35e12  # H100 SXM HBM3 bandwidth, per GPU
H100_BF16_FLOPS = 989e12  # dense bf16 peak, per GPU
MFU = 0.4  # model FLOPs utilisation of training (and of the compute-bound prefill)
H100_MEMORY = 80e9  # bytes per GPU
GPUS = 32  # examples/trillion7b/rlvr_7b.sbatch: 16 TP2 replicas generate, then train (DP16)
# rows decoded together per replica: rlvr_7b.yaml's rollout_micro_batch_size. The training state
# (weights, fp32 grads, optimizer shard) stays resident while a round decodes: the KV cache gets
# what tools/memory_plan.py leaves (25.8 GB per GPU for 32 full-length rows, 56 GB/GPU in all)
ROLLOUT_ROWS = 32
TP = 2
PROMPTS, GENERATIONS = 64, 16  # a step's prompts x completions per prompt
PROMPT_TOKENS, MAX_COMPLETION = 1024, 2048
BYTES = 2  # bf16 weights and KV cache


def _timed(fn, *args, **kw):
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t0


def _tokenizer(root: Path) -> Path:
    from tests.posttrain.fixtures import WORDS, chat_tokenizer

    filler = [f"w{i}" for i in range(VOCAB - 4 - len(WORDS))]  # 4: EOD, 2 ChatML, [UNK]
    return chat_tokenizer(root, extra_words=filler)


def _cfg(root: Path, tok: Path, data: Path, args, stage: str, iters: int, **post):
    from tests.posttrain.fixtures import tiny_cfg

    cfg = tiny_cfg(root, tok, data, stage=stage, iters=iters, **post)
    m = cfg.model
    m.num_layers, m.hidden_size, m.ffn_hidden_size = args.layers, args.hidden, 2 * args.hidden
    m.num_attention_heads, m.num_query_groups = args.heads, max(1, args.heads // 2)
    m.seq_length = cfg.data.seq_length = args.seq_length
    m.hidden_dropout = m.attention_dropout = 0.0
    cfg.data.num_workers = 0
    return cfg


# -- 1. decoding -----------------------------------------------------------------------------
def bench_decode(root: Path, tok: Path, args) -> dict:
    from tests.data.fixtures import write_jsonl
    from tests.posttrain.fixtures import sft_records
    from xlda.evaluate.scorer import Scorer
    from xlda.posttrain.cli import build_trainer
    from xlda.posttrain.rollout import Generator, SamplingParams
    from xlda.posttrain.start import pad_id, renderer

    write_jsonl(root / "sft.jsonl", sft_records(16, 0))
    cfg = _cfg(root, tok, root / "sft.jsonl", args, "sft", iters=1)
    t = cfg.training
    t.micro_batch_size = t.global_batch_size = args.batch  # one micro-batch per Scorer pass
    tr = build_trainer(cfg, print_fn=lambda *a, **k: None).setup()  # random weights
    r = renderer(cfg)
    vocab, pad = len(r.tok), pad_id(r)
    rng = random.Random(0)
    prompts = [[rng.randrange(vocab) for _ in range(rng.randint(args.prompt_min, args.prompt_max))]
               for _ in range(args.batch)]
    # no stop token: every row decodes --new-tokens (the Scorer is given no stop either)
    gen = Generator(tr, vocab, pad, stop_ids=[])
    scorer = Scorer(tr, vocab, pad, max_length=args.seq_length, call_size=args.batch)
    keys = list(range(args.batch))
    greedy = lambda n: SamplingParams(n, temperature=0.0)  # noqa: E731
    T = args.new_tokens
    gen.generate(prompts[:2], keys[:2], greedy(2), 2)  # warm-up both paths
    scorer.greedy(prompts[:2], 2)
    _, t_prefill = _timed(gen.generate, prompts, keys, greedy(1), args.batch)
    cached, t_cached = _timed(gen.generate, prompts, keys, greedy(T), args.batch)
    base, t_base = _timed(scorer.greedy, prompts, T)
    same = sum(a == b for a, b in zip(cached, base))
    first = [next((j for j, (x, y) in enumerate(zip(a, b)) if x != y), None)
             for a, b in zip(cached, base) if a != b]
    n = sum(map(len, cached))
    lens = [len(p) for p in prompts]
    print(f"== 1. rollout decoding: {args.batch} prompts of {min(lens)}-{max(lens)} tokens "
          f"(mean {sum(lens) / len(lens):.0f}), {T} new tokens each, greedy, random weights")
    print(f"model: tiny ({args.layers} layers x {args.hidden}, {args.heads} heads, vocab {vocab}), "
          f"seq {args.seq_length}, {tr.device.type}, float32")
    print(f"  KV-cached Generator   {n / t_cached:8.1f} tok/s  ({t_cached:.2f} s: prefill "
          f"{t_prefill:.2f} s, then {1000 * (t_cached - t_prefill) / max(T - 1, 1):.1f} ms per "
          f"decode step of {args.batch} rows)")
    print(f"  no-cache Scorer.greedy {sum(map(len, base)) / t_base:7.1f} tok/s  ({t_base:.2f} s: "
          f"{T} forward passes over the whole prefix)")
    print(f"  ratio cached/no-cache {t_base / t_cached:.2f}x; identical tokens on {same}/"
          f"{args.batch} rows" + (f" (first difference at new token {sorted(first)})" if first
                                  else ""))
    return {"cached_tok_s": n / t_cached, "base_tok_s": n / t_base}


# -- 2. RLVR training ------------------------------------------------------------------------
def bench_rlvr(root: Path, tok: Path, args) -> None:
    from tests.data.fixtures import write_jsonl
    from xlda.posttrain.cli import build_trainer

    rng = random.Random(1)
    prompt_words = lambda: " ".join(  # noqa: E731  (+ ~6 template tokens)
        f"w{rng.randrange(VOCAB - 40)}" for _ in range(rng.randint(args.prompt_min - 6,
                                                                   args.prompt_max - 6)))
    write_jsonl(root / "rl.jsonl", [{"prompt": prompt_words(), "answer": f"n{rng.randrange(10)}"}
                                    for _ in range(64)])
    G, GB = args.num_generations, args.rlvr_batch
    cfg = _cfg(root, tok, root / "rl.jsonl", args, "rlvr", iters=args.iters,
               reward_funcs=["exact"], num_generations=G, max_completion_length=args.new_tokens,
               temperature=1.0)
    cfg.training.global_batch_size, cfg.training.micro_batch_size = GB, args.micro_batch
    cfg.logging.log_interval = 1  # tokens_per_s on every step
    cfg.validate()
    tr = build_trainer(cfg, print_fn=lambda *a, **k: None).setup()
    res, t_all = _timed(tr.train)
    S = args.seq_length
    print(f"\n== 2. RLVR: {args.iters} iterations from random weights, {GB // G} prompts x {G} "
          f"generations, up to {args.new_tokens} completion tokens (temperature 1), seq {S}, "
          f"micro-batch {args.micro_batch}, {tr.device.type} ({t_all:.1f} s in all)")
    print(f"  {'step':>4} {'rollout s':>9} {'gen s':>6} {'train s':>7} {'gen share':>9} "
          f"{'comp len':>8} {'rollout tok/s':>13} {'train tok/s':>11} {'train comp tok/s':>16}")
    rows = []
    for h in res.history:
        roll, gen_s, train_s = h["rollout_s"], h.get("rollout_gen_s", 0.0), h["train_s"]
        tokens = h["tokens_per_s"] * h["ms_per_iter"] / 1000  # the loop's count: GB x S
        comp = h["completion_length"] * GB
        share = gen_s / (roll + train_s)
        rows.append((roll, gen_s, train_s, share, h["rollout_tokens_per_s"], tokens / train_s,
                     comp / train_s))
        print(f"  {h['iteration']:>4} {roll:9.2f} {gen_s:6.2f} {train_s:7.2f} {share:9.1%} "
              f"{h['completion_length']:8.1f} {h['rollout_tokens_per_s']:13.1f} "
              f"{tokens / train_s:11.0f} {comp / train_s:16.0f}")
    later = rows[1:] or rows  # the first step also pays first-call costs
    med = [statistics.median(c) for c in zip(*later)]  # robust to a busy machine's outliers
    print(f"  median of steps {2 if len(rows) > 1 else 1}..{len(rows)}: rollout {med[0]:.2f} s "
          f"(generation {med[1]:.2f} s), train {med[2]:.2f} s, generation {med[3]:.1%} of a "
          f"step; rollout {med[4]:.0f} tok/s, train {med[5]:.0f} tok/s ({GB} x {S} positions, "
          f"padding included; {med[6]:.0f} completion tok/s)")


# -- 3. the 7B estimate ----------------------------------------------------------------------
def estimate_7b() -> None:
    from xlda.model.recipes import trillion_7b

    m = trillion_7b()
    L, h, V, F = m.num_layers, m.hidden_size, m.vocab_size, m.ffn_hidden_size
    heads = m.num_attention_heads
    kv_heads = m.num_query_groups or heads
    hd = h // heads
    per_layer = h * (h + 2 * kv_heads * hd) + h * h + (3 if m.swiglu else 2) * h * F + 2 * h
    N = L * per_layer + (2 if m.untie_embeddings_and_output_weights else 1) * V * h + h
    W_rank = BYTES * N / TP  # weight bytes each TP rank reads per decode step
    kv_tok = 2 * L * kv_heads * hd * BYTES  # K and V, all layers, one token
    kv_tok_rank = kv_tok / TP
    replicas = GPUS // TP
    rows_total = PROMPTS * GENERATIONS
    rows = rows_total // replicas  # rollouts per TP2 replica
    ctx_max = PROMPT_TOKENS + MAX_COMPLETION
    fit = ROLLOUT_ROWS
    waves = math.ceil(rows / fit)
    b = math.ceil(rows / waves)  # rows per static batch (equal waves)
    T, P = MAX_COMPLETION, PROMPT_TOKENS
    # one wave: T decode steps, step t reads the weights and b caches of P + t tokens
    kv_read = b * kv_tok_rank * (T * P + T * (T - 1) / 2)
    decode_wave = (T * W_rank + kv_read) / H100_HBM_BYTES_PER_S
    prefill_wave = 2 * N * b * P / TP / (MFU * H100_BF16_FLOPS)
    gen = waves * (decode_wave + prefill_wave)
    no_cache = 2 * N * rows * (T * P + T * (T - 1) / 2) / TP / (MFU * H100_BF16_FLOPS)
    print(f"\n== 3. estimate (arithmetic, not a measurement): a 7B RLVR step on {GPUS} H100s")
    print(f"assumptions: Trillion-7B shapes ({L} layers, hidden {h}, {heads} heads x {hd} "
          f"(KV heads {kv_heads}), SwiGLU FFN {F}, vocab {V}, untied, MTP off): N = {N / 1e9:.2f}B "
          f"params; bf16 weights and KV cache; {PROMPTS} prompts x {GENERATIONS} generations = "
          f"{rows_total} rows of {P} prompt + up to {T} completion tokens; TP{TP}, {replicas} "
          f"replicas generate {rows} rows each, then the same {GPUS} GPUs train (TP{TP} x "
          f"DP{replicas}); HBM {H100_HBM_BYTES_PER_S / 1e12:.2f} TB/s and {H100_MEMORY / 1e9:.0f} "
          f"GB per GPU, bf16 peak {H100_BF16_FLOPS / 1e12:.0f} "
          f"TFLOP/s, MFU {MFU}; static batches as the Generator runs them (a batch decodes until "
          f"its longest row ends: {T} steps, finished rows still pass); beta 0 and "
          f"--num-iterations 1 (no reference/old log-prob passes); TP all-reduces, sampling and "
          f"rewards left out")
    print(f"  KV cache: 2 x {L} layers x {kv_heads} x {hd} x {BYTES} B = {kv_tok / 2**20:.2f} MiB "
          f"per token ({kv_tok_rank / 2**20:.2f} MiB per TP rank); a full row ({ctx_max} tokens) "
          f"{ctx_max * kv_tok_rank / 1e9:.2f} GB per rank; --rollout-micro-batch-size {fit} "
          f"({fit * ctx_max * kv_tok_rank / 1e9:.1f} GB) -> {waves} waves of {b} rows")
    print(f"  decode (memory-bound), per wave: sum over t < {T} of (weights/TP + b (P + t) "
          f"KV/TP) / HBM = ({T} x {W_rank / 1e9:.2f} GB + {kv_read / 1e9:.0f} GB) / "
          f"{H100_HBM_BYTES_PER_S / 1e12:.2f} TB/s = {decode_wave:.1f} s "
          f"({1000 * decode_wave / T:.1f} ms per step, {b * replicas / (decode_wave / T):.0f} "
          f"tok/s over the {GPUS} GPUs)")
    print(f"  prefill (compute-bound), per wave: 2 N b P / TP / (MFU x peak) = "
          f"{prefill_wave:.1f} s")
    print(f"  generation: {waves} x ({decode_wave:.1f} + {prefill_wave:.1f}) = {gen:.0f} s "
          f"(without a KV cache, recomputing the prefix each token as Scorer.greedy does: "
          f"2 N rows sum_t (P + t) / TP / (MFU x peak) = {no_cache / 3600:.1f} h)")
    for mean_len in (T, T // 2):
        D = rows_total * (P + mean_len)
        train = 6 * N * D / (MFU * H100_BF16_FLOPS * GPUS)
        attn = 6 * L * h * (P + mean_len) * D  # causal attention score/value FLOPs, fwd+bwd
        print(f"  training, mean completion {mean_len}: 6 N D / (MFU x peak x {GPUS}) with D = "
              f"{rows_total} x {P + mean_len} = {D / 1e6:.2f}M tokens -> {train:.0f} s "
              f"(attention's 6 L h S per token would add {attn / (6 * N * D):.0%}); "
              f"step {gen + train:.0f} s, generation {gen / (gen + train):.0%} of it")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=16, help="rows decoded together (part 1)")
    p.add_argument("--prompt-min", type=int, default=64)
    p.add_argument("--prompt-max", type=int, default=128)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--seq-length", type=int, default=256)
    p.add_argument("--iters", type=int, default=4, help="RLVR iterations (part 2)")
    p.add_argument("--num-generations", type=int, default=8)
    p.add_argument("--rlvr-batch", type=int, default=32, help="RLVR global batch (rows)")
    p.add_argument("--micro-batch", type=int, default=8, help="RLVR training micro-batch")
    p.add_argument("--skip-measure", action="store_true", help="only the 7B estimate")
    args = p.parse_args(argv)
    if args.prompt_max + args.new_tokens > args.seq_length:
        p.error("--prompt-max + --new-tokens must fit in --seq-length")

    import torch

    from xlda import quiet

    if not torch.cuda.is_available():
        quiet.install_cpu()
    torch.manual_seed(0)
    if not args.skip_measure:
        with tempfile.TemporaryDirectory(prefix="bench_rlvr_") as tmp:
            root = Path(tmp)
            tok = _tokenizer(root)
            bench_decode(root, tok, args)
            bench_rlvr(root, tok, args)
    estimate_7b()
    return 0


if __name__ == "__main__":
    sys.exit(main())
