"""Prepared GPU check for XLDA attention (H100/H200, torch >= 2.5 with Triton; TE optional).

1. environment: torch/CUDA/Triton, flex_attention, fused varlen kernel (flash_attn or torch
   varlen_attn), Transformer Engine, megatron-core;
2. the GPU-marked equivalence tests (tests/attention/test_gpu.py): flex fwd+bwd vs the dense
   oracle in fp32 and bf16, THD reference on CUDA, THD with the fused varlen kernel, tiny model
   flex vs sdpa (needs megatron-core: skipped without it);
3. timings: benchmarks/bench_attention.py fwd+bwd at S=1K/4K, ratios vs causal SDPA.
Each step has its own timeout and is skipped cleanly when something is missing. Results go to
$OUT (or /tmp/xlda_gpu_check): summary.json, tests.xml, tests.log, bench.log.

usage: python benchmarks/gpu_check.py [--tests-timeout 240] [--bench-timeout 150]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def env_report() -> dict:
    info = {"python": sys.version.split()[0]}
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = torch.cuda.is_available()
        if info["cuda"]:
            info["device"] = torch.cuda.get_device_name(0)
        try:
            import torch.nn.attention.flex_attention  # noqa: F401

            info["flex_attention"] = True
        except ImportError:
            info["flex_attention"] = False
        sys.path.insert(0, str(ROOT))
        from xlda.attention.thd import fused_varlen_kernel

        k = fused_varlen_kernel()
        info["fused_varlen"] = k[0] if k else None
    except Exception as e:  # noqa: BLE001
        info["error"] = f"{type(e).__name__}: {e}"
    for mod in ("triton", "flash_attn", "transformer_engine", "megatron.core", "hypothesis", "pytest"):
        try:
            info[mod] = importlib.util.find_spec(mod) is not None
        except (ImportError, ValueError):
            info[mod] = False
    return info


def run_step(name, cmd, timeout, log: Path) -> dict:
    print(f"== {name}: {' '.join(cmd)} (timeout {timeout}s)", flush=True)
    t = time.time()
    with open(log, "w") as fh:
        try:
            p = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})
            out, rc = p.stdout, p.returncode
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            out += f"\n[timeout after {timeout}s]\n"
            rc = 124
        fh.write(out)
    tail = "\n".join(out.strip().splitlines()[-25:])
    print(tail, flush=True)
    return {"rc": rc, "seconds": round(time.time() - t, 1), "tail": tail}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tests-timeout", type=int, default=240)
    ap.add_argument("--bench-timeout", type=int, default=150)
    ap.add_argument("--skip-bench", action="store_true")
    args = ap.parse_args(argv)
    out = Path(os.environ.get("OUT") or "/tmp/xlda_gpu_check")
    out.mkdir(parents=True, exist_ok=True)
    summary = {"env": env_report()}
    print(json.dumps(summary["env"], indent=1), flush=True)
    if not summary["env"].get("cuda"):
        print("no CUDA device: nothing to check")
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
        return 0
    if summary["env"].get("pytest"):
        summary["tests"] = run_step(
            "gpu tests",
            [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", "-rs",
             "tests/attention/test_gpu.py", f"--junitxml={out / 'tests.xml'}"],
            args.tests_timeout, out / "tests.log",
        )
    else:
        summary["tests"] = {"rc": None, "tail": "pytest not installed: tests skipped"}
    if not args.skip_bench:
        summary["bench"] = run_step(
            "bench fwd+bwd",
            [sys.executable, "benchmarks/bench_attention.py", "--seq", "1024", "4096", "--batch", "2",
             "--heads", "32", "--head-dim", "128", "--backward", "--reps", "5", "--skip-packing"],
            args.bench_timeout, out / "bench.log",
        )
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print("== summary: " + ", ".join(f"{k} rc={v.get('rc')}" for k, v in summary.items() if k != "env"))
    return 0 if all(v.get("rc") in (0, None) for k, v in summary.items() if k != "env") else 1


if __name__ == "__main__":
    sys.exit(main())
