"""One device check of the GPU hot path (one H100/H200, ~10 min), printed as one table:

1. oracle equality, forward + backward in bf16, of the ``flex``, ``thd`` (torch reference and,
   when present, a fused varlen kernel) and ``te`` (when Transformer Engine imports) executors
   against the dense-mask SDPA oracle in fp32;
2. a few training steps of a 7B-shaped model cut to one GPU (4 layers, hidden 4096, 32 heads,
   FFN 11008, S = 4096, bf16 params, distributed optimizer) through xlda's Trainer on mock data:
   ``flex`` (XLDA mask) vs causal ``sdpa``: tokens/s, MFU, and the ratio flex / causal;
3. FP8 vs BF16 step time with Transformer Engine linears (when TE imports);
4. the distributed optimizer and bf16 params on one GPU (part of every training run).

``--dry-run`` runs the same code on the CPU with tiny shapes (fp32; flex forward only, since
flex has no CPU backward; the flex training run uses the ``thd`` executor; no bf16/distributed
optimizer, which megatron-core allows only on CUDA). Each training run is a subprocess with its
own timeout. Results: the table on stdout and $OUT/summary.json (OUT default /tmp/xlda_gpu_check).

usage: python benchmarks/gpu_check.py [--dry-run] [--steps 8] [--layers 4] [--seq 4096]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
try:  # installed from the wheel folder (benchmarks/gpu_check.sh), else this checkout
    import xlda  # noqa: F401
except ImportError:
    sys.path.insert(0, str(ROOT))


def shapes(args) -> dict:
    if args.dry_run:
        return dict(layers=2, hidden=64, heads=4, ffn=128, seq=128, vocab=1024, steps=3)
    return dict(layers=args.layers, hidden=args.hidden, heads=args.heads, ffn=args.ffn,
                seq=args.seq, vocab=args.vocab, steps=args.steps)


def te_importable() -> bool:
    try:
        import transformer_engine.pytorch  # noqa: F401
        return True
    except Exception:  # noqa: BLE001  (ImportError, or a broken CUDA build)
        return False


def env_report(cuda: bool) -> dict:
    import importlib.util

    import torch

    info = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": cuda,
            "device": torch.cuda.get_device_name(0) if cuda else "cpu"}
    for mod in ("megatron.core", "transformer_engine", "flash_attn", "triton"):
        try:
            info[mod] = importlib.util.find_spec(mod) is not None
        except (ImportError, ValueError):
            info[mod] = False
    try:
        import megatron.core

        info["megatron.core"] = getattr(megatron.core, "__version__", True)
    except ImportError:
        pass
    return info


# -- 1. oracle equality -------------------------------------------------------------------------
def packed_ids(B: int, S: int, seed: int = 0):
    """Rows of documents (lengths 1..S/4) in 3 languages, numbered per sample."""
    import torch

    g = torch.Generator().manual_seed(seed)
    docs, langs = [], []
    for _ in range(B):
        d, l, n, i = [], [], 0, 0
        while n < S:
            m = min(int(torch.randint(1, max(2, S // 4), (1,), generator=g)), S - n)
            d += [i] * m
            l += [int(torch.randint(0, 3, (1,), generator=g))] * m
            n, i = n + m, i + 1
        docs.append(d)
        langs.append(l)
    return torch.tensor(docs, dtype=torch.int32), torch.tensor(langs, dtype=torch.int32)


def oracle_rows(device, dtype, B, S, H, G, D, dry_run: bool) -> list:
    import torch

    from xlda.attention.flex import flex_attention_bhsd
    from xlda.attention.params import MaskParams
    from xlda.attention.thd import fused_varlen_kernel, thd_attention_fused, thd_attention_reference

    doc, lang = (t.to(device) for t in packed_ids(B, S))
    mp = MaskParams(doc, lang, "xlda")
    g = torch.Generator(device="cpu").manual_seed(1)
    base = [torch.randn(B, h, S, D, generator=g) for h in (H, G, G)]
    grad_out = torch.randn(B, H, S, D, generator=g).to(device)
    scale = 1.0 / math.sqrt(D)

    def leaves(dt, grad=True):
        return [t.to(device, dt).requires_grad_(grad) for t in base]

    # the oracle: dense-mask SDPA in fp32 on the same (rounded) inputs
    q, k, v = (t.detach().float().requires_grad_(True) for t in leaves(dtype))
    rep = H // G
    ref = torch.nn.functional.scaled_dot_product_attention(
        q, k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1), attn_mask=mp.dense()[:, None],
        scale=scale)
    ref.backward(grad_out)
    ref_grads = [q.grad, k.grad, v.grad]
    tol = 1e-4 if dtype == torch.float32 else 3e-2  # bf16: 8 mantissa bits, S-long reductions

    flat = lambda t: t.transpose(1, 2).reshape(B * S, t.shape[1], D)  # [B,h,S,D] -> [T,h,D]
    unflat = lambda t: t.reshape(B, S, -1, D).transpose(1, 2)

    def check(name, fn, backward=True):
        qq, kk, vv = leaves(dtype, backward)
        t0 = time.perf_counter()
        try:
            out = fn(qq, kk, vv)
            errs = {"out": float((out.detach().float() - ref.detach()).abs().max() / ref.detach().abs().max())}
            if backward:
                out.backward(grad_out.to(out.dtype))
                for n, a, r in zip("qkv", (qq, kk, vv), ref_grads):
                    errs[f"d{n}"] = float((a.grad.float() - r).abs().max() / r.abs().max())
        except Exception as e:  # noqa: BLE001  (one row per executor, whatever breaks)
            return [name, "FAIL", f"{type(e).__name__}: {str(e)[:150]}"]
        worst = max(errs.values())
        detail = ", ".join(f"{k} {v:.1e}" for k, v in errs.items())
        if not backward:
            detail += "; backward n/a (flex has no CPU backward)"
        return [name, "PASS" if worst <= tol else "FAIL",
                f"max rel err {detail} (tol {tol:g}); {time.perf_counter() - t0:.1f}s"]

    cuda = device.type == "cuda"
    rows = [check("oracle flex", lambda a, b, c: flex_attention_bhsd(
        a, b, c, MaskParams(doc, lang, "xlda").block_mask(), scale, compiled=cuda), backward=cuda)]
    layout = mp.thd_layout()
    rows.append(check("oracle thd (torch reference)", lambda a, b, c: unflat(thd_attention_reference(
        flat(a), flat(b), flat(c), layout, scale=scale))))
    kernel = fused_varlen_kernel()
    if kernel is not None and dtype != torch.float32:
        rows.append(check(f"oracle thd ({kernel[0]})", lambda a, b, c: unflat(thd_attention_fused(
            flat(a), flat(b), flat(c), layout, scale=scale))))
    if te_importable():
        from xlda.attention.te import build_te_attention, te_thd_forward

        te_attn = build_te_attention(H, D, G, 0.0, scale, 1)
        rows.append(check("oracle te", lambda a, b, c: unflat(te_thd_forward(
            te_attn, flat(a).contiguous(), flat(b).contiguous(), flat(c).contiguous(),
            layout).view(B * S, H, D))))
    else:
        rows.append(["oracle te", "SKIP", "Transformer Engine not importable"])
    return rows


# -- 2.-4. training steps (one subprocess per variant) -------------------------------------------
VARIANTS = {
    # name: (transformer_impl, attention_backend, mask, fp8)
    "flex": ("local", "flex", "xlda", None),
    "causal-sdpa": ("local", "sdpa", "causal", None),
    "te-bf16": ("transformer_engine", "flex", "xlda", None),
    "te-fp8": ("transformer_engine", "flex", "xlda", "hybrid"),
}


def run_config(variant: str, sh: dict, dry_run: bool):
    from xlda.model import ModelConfig
    from xlda.training.config import RunConfig

    impl, backend, mask, fp8 = VARIANTS[variant]
    if dry_run and backend == "flex":
        backend = "thd"  # flex has no CPU backward; the rest of the path is the same
    model = ModelConfig(
        num_layers=sh["layers"], hidden_size=sh["hidden"], num_attention_heads=sh["heads"],
        ffn_hidden_size=sh["ffn"], vocab_size=sh["vocab"], seq_length=sh["seq"],
        max_position_embeddings=sh["seq"], rotary_base=100000, swiglu=True,
        normalization="RMSNorm", untie_embeddings_and_output_weights=True,
        transformer_impl=impl, attention_backend=backend, attention_mask_type=mask,
        bf16=not dry_run, fp8_format=fp8)
    cfg = RunConfig(model=model)
    cfg.data.mock = True
    cfg.data.xlda_alpha = 1.0  # mock corpora: sample languages by size
    cfg.data.seq_length = sh["seq"]
    cfg.data.split = "100,0,0"
    cfg.data.annealing = False
    cfg.data.num_workers = 2
    t = cfg.training
    t.train_iters, t.micro_batch_size, t.global_batch_size, t.seed = sh["steps"], 1, 2, 1234
    t.eval_iters, t.eval_interval = 0, None
    cfg.optimizer.lr, cfg.optimizer.min_lr = 1e-4, 1e-5
    cfg.scheduler.lr_decay_style = "constant"
    cfg.scheduler.lr_warmup_iters = 0
    cfg.scheduler.lr_wsd_decay_iters = None
    cfg.parallel.use_distributed_optimizer = not dry_run
    cfg.logging.log_interval = 1
    return cfg


def train_child(variant: str, sh: dict, dry_run: bool, out_json: str) -> None:
    import torch

    from xlda.training.loop import Trainer

    warnings.filterwarnings("ignore")
    lines = []
    trainer = Trainer(run_config(variant, sh, dry_run), print_fn=lines.append).setup()
    opt = type(getattr(trainer.optimizer, "chained_optimizers", [trainer.optimizer])[0]).__name__
    dtypes = sorted({str(p.dtype).replace("torch.", "") for c in trainer.model_chunks
                     for p in c.parameters()})
    result = trainer.train()
    hist = [e for e in result.history if "tokens_per_s" in e]
    warm = hist[min(len(hist) - 1, max(1, len(hist) // 2)):]  # skip compile/warm-up steps
    tps = sorted(e["tokens_per_s"] for e in warm)[len(warm) // 2]
    # no MFU without a known device peak (the trainer logs none on CPU or an unknown GPU)
    mfus = sorted(e["mfu"] for e in warm if "mfu" in e)
    mfu = mfus[len(mfus) // 2] if mfus else None
    out = {"variant": variant, "tokens_per_s": tps, "mfu": mfu,
           "step_s": 2 * sh["seq"] / tps, "losses": [e["lm loss"] for e in result.history],
           "optimizer": opt, "param_dtypes": dtypes,
           "peak_gb": torch.cuda.max_memory_allocated() / 1e9 if torch.cuda.is_available() else None,
           "startup": [line for line in lines if "fusions" in line or "TE attention" in line]}
    Path(out_json).write_text(json.dumps(out))


def run_variant(variant, args, out_dir: Path) -> dict:
    js = out_dir / f"train_{variant}.json"
    js.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--train-variant", variant,
           "--json", str(js), "--steps", str(args.steps), "--layers", str(args.layers),
           "--seq", str(args.seq), "--hidden", str(args.hidden), "--heads", str(args.heads),
           "--ffn", str(args.ffn), "--vocab", str(args.vocab)] + (["--dry-run"] if args.dry_run else [])
    t0 = time.time()
    log = out_dir / f"train_{variant}.log"
    try:
        with open(log, "w") as fh:
            p = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, timeout=args.step_timeout,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
        rc = p.returncode
    except subprocess.TimeoutExpired:
        rc = 124
    res = json.loads(js.read_text()) if rc == 0 and js.exists() else {}
    res.update(rc=rc, seconds=round(time.time() - t0, 1))
    if rc:
        tail = log.read_text().strip().splitlines()[-3:] if log.exists() else []
        res["error"] = ("timeout" if rc == 124 else f"exit {rc}") + ": " + " | ".join(tail)[-300:]
    return res


def training_rows(args, out_dir: Path, sh: dict) -> tuple[list, dict]:
    rows, res = [], {}
    shape = (f"{sh['layers']}L h{sh['hidden']} {sh['heads']}H ffn{sh['ffn']} S{sh['seq']}"
             f"{' fp32 CPU' if args.dry_run else ' bf16'}")
    wanted = ["flex", "causal-sdpa"]
    if te_importable():
        wanted += ["te-bf16", "te-fp8"]
    for v in wanted:
        res[v] = r = run_variant(v, args, out_dir)
        label = f"train {v}" + (" (thd on CPU)" if args.dry_run and v == "flex" else "")
        if r["rc"]:
            rows.append([label, "FAIL", r["error"]])
            continue
        finite = all(math.isfinite(x) for x in r["losses"])
        rows.append([label, "PASS" if finite else "FAIL",
                     f"{shape}: {r['tokens_per_s']:.0f} tok/s, "
                     + (f"MFU {100 * r['mfu']:.1f}%, " if r.get("mfu") is not None
                        else "MFU n/a (no known peak), ")
                     + f"step {r['step_s']:.2f}s, loss {r['losses'][0]:.3f} -> {r['losses'][-1]:.3f}"
                     + (f", peak {r['peak_gb']:.1f} GB" if r.get("peak_gb") else "")])
    if "tokens_per_s" in res["flex"] and "tokens_per_s" in res["causal-sdpa"]:
        ratio = res["flex"]["tokens_per_s"] / res["causal-sdpa"]["tokens_per_s"]
        rows.append(["flex / causal sdpa", "INFO", f"tokens/s ratio {ratio:.3f}"])
    if not te_importable():
        rows.append(["FP8 vs BF16 (TE linears)", "SKIP",
                     "Transformer Engine not importable: no FP8 GEMMs to time"])
    elif "step_s" in res.get("te-fp8", {}) and "step_s" in res.get("te-bf16", {}):
        rows.append(["FP8 vs BF16 (TE linears)", "INFO",
                     f"step {res['te-fp8']['step_s']:.3f}s vs {res['te-bf16']['step_s']:.3f}s: "
                     f"x{res['te-bf16']['step_s'] / res['te-fp8']['step_s']:.2f}"])
    f = res["flex"]
    if "optimizer" in f:
        want_dist = not args.dry_run
        ok = (("Distributed" in f["optimizer"]) == want_dist and
              ("bfloat16" in f["param_dtypes"]) == want_dist)
        rows.append(["distributed optimizer + bf16 params", "PASS" if ok else "FAIL",
                     f"{f['optimizer']}, params {'/'.join(f['param_dtypes'])}"
                     + (" (dry run: CPU allows neither)" if args.dry_run else "")])
        for line in f.get("startup", []):
            rows.append(["start-up (flex run)", "INFO", line.replace("[xlda] ", "")])
    return rows, res


def print_table(rows) -> str:
    w0 = max(len(r[0]) for r in rows)
    lines = [f"{'check':<{w0}}  {'result':<6}  detail", "-" * (w0 + 60)]
    lines += [f"{r[0]:<{w0}}  {r[1]:<6}  {r[2]}" for r in rows]
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny shapes, no CUDA calls")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=4096)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--ffn", type=int, default=11008)
    ap.add_argument("--seq", type=int, default=4096)
    ap.add_argument("--vocab", type=int, default=128128)
    ap.add_argument("--step-timeout", type=int, default=150, help="seconds per training run")
    ap.add_argument("--train-variant", choices=list(VARIANTS), help=argparse.SUPPRESS)
    ap.add_argument("--json", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    sh = shapes(args)
    if args.train_variant:
        train_child(args.train_variant, sh, args.dry_run, args.json)
        return 0
    import torch

    cuda = torch.cuda.is_available() and not args.dry_run
    if not cuda and not args.dry_run:
        print("no CUDA device: run with --dry-run to exercise the check on the CPU")
        return 2
    out = Path(os.environ.get("OUT") or "/tmp/xlda_gpu_check")
    out.mkdir(parents=True, exist_ok=True)
    env = env_report(cuda)
    print(json.dumps(env), flush=True)
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    B, S, H, G, D = (2, 2048, 8, 2, 128) if cuda else (2, 96, 4, 2, 16)
    t0 = time.time()
    rows = [["environment", "INFO", f"torch {env['torch']}, {env['device']}, megatron-core "
                                    f"{env['megatron.core']}, TE {'yes' if env['transformer_engine'] else 'no'}"]]
    rows += oracle_rows(device, dtype, B, S, H, G, D, args.dry_run)
    train, res = training_rows(args, out, sh)
    rows += train
    rows.append(["total", "INFO", f"{time.time() - t0:.0f}s"])
    table = print_table(rows)
    (out / "summary.json").write_text(json.dumps({"env": env, "rows": rows, "train": res}, indent=1))
    (out / "table.txt").write_text(table + "\n")
    return 0 if all(r[1] != "FAIL" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
