"""One error policy for every tool: a user error is one ``<tool>: error: ...`` line on stderr,
exit code 2, no traceback, checked before any heavy import or work; ``--help`` of every tool
answers in under a second. Each case is a real command line in a fresh process."""
import subprocess
import sys
import time

import pytest

from xlda.paths import REPO_ROOT

TOOLS = {  # how each tool is started, and the name its error line starts with
    "preprocess_data": ["tools/preprocess_data.py"],
    "merge_datasets": ["tools/merge_datasets.py"],
    "build_packing_index": ["tools/build_packing_index.py"],
    "curate": ["tools/curate.py"],
    "build_tokenizer": ["tools/build_tokenizer.py"],
    "train_quality_classifier": ["tools/train_quality_classifier.py"],
    "make_posttrain_data": ["tools/make_posttrain_data.py"],
    "memory_plan": ["tools/memory_plan.py"],
    "convert": ["tools/checkpoint/convert.py"],
    "pretrain": ["pretrain_trillion.py"],
    "posttrain": ["posttrain.py", "sft"],
    "run_ablation": ["-m", "xlda.ablation.cli"],
    "demo": ["-m", "xlda.demo"],
    "xlda.slurm": ["-m", "xlda.slurm"],
    "evaluate": ["tools/evaluate.py"],
    "plot_run": ["tools/plot_run.py"],
}
NOPE = "/nonexistent/x"
CASES = [  # (tool, argv, what the line must say)
    *[(t, ["--no-such-flag"], "unknown argument(s): --no-such-flag") for t in TOOLS],
    ("preprocess_data", ["--input", f"{NOPE}.jsonl", "--output-prefix", "/tmp/o",
                         "--tokenizer-type", "HuggingFaceTokenizer", "--tokenizer-model", NOPE],
     f"--input {NOPE}.jsonl: no such file"),
    ("preprocess_data", ["--input", "a.jsonl", "--output-prefix", "o", "--workers", "abc"],
     "argument --workers: invalid int value: 'abc'"),
    ("merge_datasets", ["--input", f"{NOPE}_en_text_document", "--output-prefix", "/tmp/m"],
     "manifest.json not found"),
    ("build_packing_index", ["--data-path", f"{NOPE}_en_text_document", "--seq-length", "64"],
     f"--data-path {NOPE}_en_text_document: no files for `x_en`"),
    ("curate", ["--input", f"{NOPE}.jsonl", "--output-dir", "/tmp/c"],
     f"--input {NOPE}.jsonl: no such file"),
    ("curate", ["--input", "a.jsonl", "--output-dir", "/tmp/c", "--workers", "x"],
     "argument --workers: invalid int value"),
    ("build_tokenizer", ["--base-input", f"en={NOPE}.jsonl", "--output-dir", "/tmp/t"],
     "the following arguments are required: --base-vocab-size"),
    ("train_quality_classifier", ["--positive", f"{NOPE}.jsonl", "--negative", f"{NOPE}2.jsonl",
                                  "--output", "/tmp/q.ftz"], f"--positive {NOPE}.jsonl: no such file"),
    ("make_posttrain_data", ["--input", f"en={NOPE}.jsonl", "--output", "/tmp/p"],
     f"--input en={NOPE}.jsonl: no such file"),
    ("memory_plan", ["--config", f"{NOPE}.yaml"], f"--config {NOPE}.yaml: no such file"),
    ("memory_plan", ["--config", "examples/trillion7b/tiny.yaml", "--num-nodes", "x"],
     "argument --num-nodes: invalid int value"),
    ("convert", ["--from", "mcore", "--to", "hf", "--load-dir", NOPE, "--save-dir", "/tmp/h"],
     f"--load-dir {NOPE} does not exist"),
    ("pretrain", ["--mock-data", "--seq-length", "64", "--bf16"], "--bf16/--fp16 need a GPU"),
    ("pretrain", ["--mock-data", "--seq-length", "64", "--use-distributed-optimizer"],
     "--use-distributed-optimizer needs GPUs"),
    ("pretrain", ["--data-path", f"{NOPE}_en_text_document", "--seq-length", "64"],
     f"--data-path {NOPE}_en_text_document: no files"),
    ("posttrain", ["--data-path", f"{NOPE}.jsonl", "--tokenizer-model", NOPE, "--seq-length", "64"],
     f"--data-path {NOPE}.jsonl: file not found"),
    ("posttrain", ["--data-path", "examples/trillion7b/tiny.yaml", "--tokenizer-model", NOPE,
                   "--seq-length", "64"], f"--tokenizer-model {NOPE}: no such file or folder"),
    ("run_ablation", ["--seeds", "1"], "--seeds 1: paired intervals need >= 2 seeds"),
    ("run_ablation", ["--input", f"ko={NOPE}.jsonl", "--input", f"en={NOPE}.jsonl",
                      "--mix", "en=0.5,ko=0.5", "--group-key", "page"],
     f"--input ko={NOPE}.jsonl: no such file"),
    ("run_ablation", ["--input", "ko=k.jsonl", "--input", "en=e.jsonl", "--mix", "en=0.5,ko=0.5"],
     "needs documents that translate each other: pass --group-key FIELD"),
    ("run_ablation", ["--arms", "A,B"], "--arms A,B: the pre-registered endpoints need arms A,B,C"),
    ("xlda.slurm", ["latest"], "the following arguments are required: --save"),
    ("pretrain", ["--mock-data", "--seq-length", "64", "--eval-suite",
                  "examples/evaluate/smoke.yaml", "--eval-suite-interval", "2"],
     "--eval-suite examples/evaluate/smoke.yaml scores text: it needs the run's --tokenizer-model"),
    ("pretrain", ["--mock-data", "--seq-length", "64", "--eval-suite-interval", "2"],
     "--eval-suite-interval/--eval-suite-limit need --eval-suite FILE"),
    ("plot_run", ["--metrics", f"{NOPE}.jsonl"], f"--metrics {NOPE}.jsonl: no such file"),
    ("evaluate", ["--load", NOPE, "--suite", "trillion"], f"--load {NOPE}: no such file"),
    ("evaluate", ["--hf", "examples", "--suite", "nosuch"],
     "--suite nosuch: not a file and not a shipped suite (trillion)"),
    ("evaluate", ["--hf", "examples", "--tasks", "x", "--batch-size", "0"],
     "--batch-size must be >= 1"),
    ("evaluate", ["--load", "examples", "--hf", "examples", "--tasks", "x"],
     "argument --hf: not allowed with argument --load"),
    # offline: every missing dataset named before any model is loaded
    ("evaluate", ["--hf", "examples", "--suite", "trillion", "--data-dir", "examples"],
     f"task hellaswag reads dataset Rowan/hellaswag, not found at {REPO_ROOT}/examples/Rowan/"
     "hellaswag: on a machine with network access run `huggingface-cli download --repo-type "
     f"dataset Rowan/hellaswag --local-dir {REPO_ROOT}/examples/Rowan/hellaswag`"),
]


def _run(tool, argv):
    cmd = [sys.executable, *TOOLS[tool], *argv]
    if tool == "posttrain" and argv[:1] == ["--help"]:
        cmd = [sys.executable, "posttrain.py", "sft", "--help"]
    return subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("tool,argv,says", CASES, ids=[f"{c[0]}:{' '.join(c[1])[:40]}" for c in CASES])
def test_user_error_is_one_line_exit_2(tool, argv, says):
    p = _run(tool, argv)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    assert "Traceback" not in p.stderr + p.stdout, p.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith(f"{tool}: error: "), p.stderr
    assert says in lines[0], lines[0]


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_help_answers_in_under_a_second(tool):
    best = None
    for _ in range(2):  # the better of two: a cold disk cache is not the tool's start-up
        t0 = time.perf_counter()
        p = _run(tool, ["--help"])
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
        assert p.returncode == 0 and "usage:" in p.stdout, p.stderr[-2000:]
    assert best < 1.0, f"{tool} --help took {best:.2f} s"
