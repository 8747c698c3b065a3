"""``tools/evaluate.py``: score a checkpoint on a benchmark suite with lm-evaluation-harness.

    python tools/evaluate.py --load runs/tiny/ckpt --suite trillion --data-dir /data/lm_eval
    torchrun --nproc-per-node 8 tools/evaluate.py --load CKPT --tensor-model-parallel-size 2 ...
    python tools/evaluate.py --hf runs/tiny/hf --tasks hellaswag --data-dir /data/lm_eval

``--load`` scores a Megatron checkpoint through the project's model (lm-eval model
``xlda-megatron``), ``--hf`` an exported HF folder through lm-eval's ``hf`` model. Offline
unless ``--allow-download``: HF_DATASETS_OFFLINE/HF_HUB_OFFLINE are set before lm-eval loads.
Writes (rank 0, with ``--output``): report.json and report.txt (the tables), results.json
(lm-eval's), samples/<task>.jsonl (per item).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

TOOL = "evaluate"


def build_parser():
    import argparse

    from xlda.cli.flags import FlagParser

    p = FlagParser(prog="evaluate.py", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                   description="Score a checkpoint on lm-eval benchmarks: a suite (per-task and "
                               "per-language tables, macro and micro averages, cross-lingual "
                               "consistency) or a list of tasks. docs/evaluate.md.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--load", help="a Megatron checkpoint: the --save dir of pretrain_trillion.py "
                                    "or posttrain.py (its latest iteration)")
    src.add_argument("--hf", help="an HF model folder (tools/checkpoint/convert.py --to hf)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--suite", help="a suite YAML, or the name of a shipped one (trillion, ...: "
                                      "xlda/evaluate/suites/)")
    what.add_argument("--tasks", help="comma-separated lm-eval task/group names")
    p.add_argument("--tokenizer-model", help="--load: the tokenizer.json, when the path in the "
                                             "checkpoint's run_config.yaml does not exist here")
    p.add_argument("--tensor-model-parallel-size", type=int, default=1)
    p.add_argument("--pipeline-model-parallel-size", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=8, help="micro-batch size (sequences)")
    p.add_argument("--max-gen-toks", type=int, default=256,
                   help="--load, generation tasks: new tokens at most unless the task sets it "
                        "(lm-eval's hf backend: 256)")
    p.add_argument("--num-fewshot", type=int, help="default: each task's own")
    p.add_argument("--limit", type=int, help="score the first N items of each task (a smoke test)")
    p.add_argument("--data-dir", help="offline task data: dataset org/name is read from "
                                      "DATA_DIR/org/name (docs/evaluate.md)")
    p.add_argument("--include-path", action="append", default=[],
                   help="a folder of your own lm-eval task YAMLs (repeatable)")
    p.add_argument("--allow-download", action="store_true",
                   help="let datasets fetch task data from the Hub (default: offline)")
    p.add_argument("--output", help="directory for report.json/.txt, results.json, samples/")
    p.add_argument("--seed", type=int, default=1234, help="few-shot sampling seed")
    return p


def _check_args(args) -> None:
    from xlda.evaluate.session import EvalError

    for flag in ("tensor_model_parallel_size", "pipeline_model_parallel_size", "batch_size",
                 "max_gen_toks"):
        if getattr(args, flag) < 1:
            raise EvalError(f"--{flag.replace('_', '-')} must be >= 1")
    if args.limit is not None and args.limit < 1:
        raise EvalError("--limit must be >= 1")
    for flag in ("data_dir", "hf", "load", "tokenizer_model"):
        v = getattr(args, flag)
        if v and not Path(v).exists():
            raise EvalError(f"--{flag.replace('_', '-')} {v}: no such file or directory")
    for inc in args.include_path:
        if not Path(inc).is_dir():
            raise EvalError(f"--include-path {inc}: no such directory")
    if args.hf and (args.tensor_model_parallel_size > 1 or args.pipeline_model_parallel_size > 1):
        raise EvalError("--hf runs lm-eval's hf backend on one device: TP/PP need --load")


def _model(args):
    if args.load:
        from xlda.evaluate.lm_backend import XldaMegatronLM

        return XldaMegatronLM(load=args.load, tensor_parallel_size=args.tensor_model_parallel_size,
                              pipeline_parallel_size=args.pipeline_model_parallel_size,
                              tokenizer_model=args.tokenizer_model, batch_size=args.batch_size,
                              max_gen_toks=args.max_gen_toks)
    __import__("lm_eval.models")  # registers lm-eval's own backends (hf, ...)
    import torch
    from lm_eval.api.registry import get_model

    cuda = torch.cuda.is_available()
    return get_model("hf")(pretrained=args.hf, batch_size=args.batch_size,
                           device="cuda" if cuda else "cpu", dtype="bfloat16" if cuda else "float32")


def prepare(args):
    """Flags, the suite, the task data (read here: a missing dataset fails before the model is
    loaded), then the model; its errors are the user's (exit 2)."""
    _check_args(args)
    from xlda.evaluate.suite import (Suite, SuiteTask, build_tasks, go_offline, open_suite,
                                     resolve, task_manager)

    if not args.allow_download:
        go_offline()
    if args.suite:
        suite, tm, _, specs = open_suite(args.suite, args.include_path, args.data_dir)
    else:
        suite = Suite("tasks", [SuiteTask(t, "-", None) for t in args.tasks.split(",") if t])
        tm = task_manager(args.include_path)
        specs = resolve(suite, tm, Path(args.data_dir) if args.data_dir else None)
    tasks = build_tasks(tm, specs, suite.task_names)
    return suite, tm, tasks, _model(args)


def evaluate(args, suite, tm, tasks, lm) -> dict:
    import time

    import lm_eval

    from xlda.evaluate.report import format_report, suite_report

    t0 = time.perf_counter()
    results = lm_eval.simple_evaluate(
        model=lm, tasks=tasks, task_manager=tm, num_fewshot=args.num_fewshot, limit=args.limit,
        log_samples=True, random_seed=args.seed, numpy_random_seed=args.seed,
        torch_random_seed=args.seed, fewshot_random_seed=args.seed)
    seconds = time.perf_counter() - t0
    rep = suite_report(results, suite)
    rep["seconds"] = round(seconds, 3)
    rep["model"] = {"load": args.load, "hf": args.hf,
                    "iteration": getattr(getattr(lm, "session", None), "iteration", None),
                    "tensor_model_parallel_size": args.tensor_model_parallel_size,
                    "pipeline_model_parallel_size": args.pipeline_model_parallel_size}
    if _rank() == 0:
        print(format_report(rep) + f"\n[xlda] scored in {seconds:.1f} s", flush=True)
        if args.output:
            write_outputs(Path(args.output), rep, results)
    return rep


def _rank() -> int:
    import torch

    return torch.distributed.get_rank() if torch.distributed.is_initialized() else 0


def write_outputs(out: Path, rep: dict, results: dict) -> None:
    from xlda.evaluate.report import format_report
    from xlda.files import atomic_write

    samples = results.get("samples") or {}
    for task, items in samples.items():
        atomic_write(out / "samples" / f"{task}.jsonl",
                     "".join(json.dumps(s, default=str, ensure_ascii=False) + "\n" for s in items))
    plain = {k: v for k, v in results.items() if k != "samples"}
    atomic_write(out / "results.json", json.dumps(plain, indent=1, default=str))
    atomic_write(out / "report.txt", format_report(rep) + "\n")
    # last: a report.json means the directory is complete
    atomic_write(out / "report.json", json.dumps(rep, indent=1))


def main(argv=None) -> int:
    from xlda.cli.run import run_tool
    from xlda.evaluate.session import EvalError

    args = build_parser().parse_args(argv)
    from xlda.training.config import ConfigError

    code, _ = run_tool(TOOL, lambda ready: evaluate(args, *ready), (EvalError, ConfigError),
                       prepare=lambda: prepare(args))
    return code


if __name__ == "__main__":
    sys.exit(main())
