"""The README demo: real en/ko/ja/zh text -> tokenizer -> indexed data -> XLDA training on CPU ->
checkpoint -> resume -> loss summary. ``bash examples/demo.sh`` (or ``python -m xlda.demo``).

Steps shell out to the project's own tools (tools/build_tokenizer.py, tools/preprocess_data.py,
pretrain_trillion.py), exactly as a user would run them. A subset of the corpus (first
``--docs-per-lang`` documents of each language) keeps it to a few minutes on 2 cores; without
the corpus it trains on mock data.
"""
from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from xlda.checkpoint_layout import iter_dir
from xlda.paths import REPO_ROOT, corpus_dir

LANGS = ("en", "ko", "ja", "zh")


def _log(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def _run(cmd: list[str], what: str, log_file: Path, echo=None, say=_log) -> None:
    """Run a step, streaming selected lines; on failure show the log tail and stop. ``say``
    prints this module's lines (the ablation passes its own, with its own prefix)."""
    say(f"{what}: {' '.join(str(c) for c in cmd[:4])} ...")
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)  # each step is its own single-process world (a parent's port is taken)
    t0 = time.perf_counter()
    # Output goes to the log file, which is followed here: a tool's stray worker that keeps a
    # pipe open cannot stall the demo once the step itself has exited.
    with open(log_file, "w") as log, open(log_file) as follow:
        proc = subprocess.Popen([str(c) for c in cmd], cwd=REPO_ROOT, env=env, text=True,
                                stdout=log, stderr=subprocess.STDOUT)
        while True:
            rc = proc.poll()
            for line in follow.readlines():
                if echo is not None and echo(line):
                    print("   " + line.rstrip(), flush=True)
            if rc is not None:
                break
            time.sleep(0.5)
    if rc != 0:
        tail = "".join(open(log_file).readlines()[-30:])
        raise SystemExit(f"{what} failed (exit {rc}); full log: {log_file}\n{tail}")
    say(f"{what}: done in {time.perf_counter() - t0:.1f}s (log: {log_file})")


def subset_corpus(src: Path, dst: Path, docs_per_lang: int) -> dict[str, Path]:
    """First N docs of each LibreOffice help language (a parallel corpus) into dst."""
    dst.mkdir(parents=True, exist_ok=True)
    out = {}
    for lang in LANGS:
        f = src / f"libreoffice_help.{lang}.jsonl.gz"
        o = dst / f"{lang}.jsonl.gz"
        if not o.exists():
            with gzip.open(f, "rt", encoding="utf-8") as fi, gzip.open(o, "wt", encoding="utf-8") as fo:
                for i, line in enumerate(fi):
                    if i >= docs_per_lang:
                        break
                    fo.write(line)
        out[lang] = o
    return out


def build_tokenizer(files: dict[str, Path], out: Path, log_dir: Path, log=_log) -> Path:
    tok = out / "tokenizer.json"
    if tok.exists():
        log(f"tokenizer: reusing {tok} (--fresh rebuilds it)")
        return tok
    tool = REPO_ROOT / "tools" / "build_tokenizer.py"
    if tool.exists():
        cmd = [sys.executable, tool, "--base-input", files["en"], "--base-lang", "en",
               "--base-vocab-size", "1536", "--max-docs", "300", "--output-dir", out]
        for lang in files:  # the ablation may bring other languages than the demo's four
            if lang != "en":
                cmd += ["--extend-input", f"{lang}={files[lang]}", "--extend-tokens", f"{lang}=256"]
        _run(cmd, "tokenizer (tools/build_tokenizer.py)", log_dir / "tokenizer.log",
             echo=lambda l: "wrote" in l, say=log)
        return tok
    # Fallback: a quick byte-level BPE over all languages with HF tokenizers.
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    def texts():
        for f in files.values():
            with gzip.open(f, "rt", encoding="utf-8") as fi:
                for line in fi:
                    yield json.loads(line)["text"]

    t = Tokenizer(models.BPE())
    t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    t.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=2304, special_tokens=["<|endoftext|>", "<|pad|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    t.train_from_iterator(texts(), trainer)
    out.mkdir(parents=True, exist_ok=True)
    t.save(str(tok))
    log(f"tokenizer: trained byte-level BPE ({t.get_vocab_size()} tokens) -> {tok}")
    return tok


def preprocess(files: dict[str, Path], tok: Path, prefix: Path, log_dir: Path, log=_log,
               log_name: str = "preprocess.log", group_key: str | None = None) -> list[str]:
    manifest = Path(str(prefix) + ".manifest.json")
    if manifest.exists():
        log(f"preprocess: reusing the data of {manifest} (--fresh rebuilds it)")
    else:
        cmd = [sys.executable, REPO_ROOT / "tools" / "preprocess_data.py", "--input",
               *files.values(), "--json-keys", "text", "--lang-key", "lang",
               "--tokenizer-type", "HuggingFaceTokenizer", "--tokenizer-model", tok,
               "--append-eod", "--output-prefix", prefix, "--workers", "1",
               *(["--group-key", group_key] if group_key else [])]
        _run(cmd, "preprocess (tools/preprocess_data.py)", log_dir / log_name,
             echo=lambda l: "docs," in l, say=log)
    langs = json.loads(manifest.read_text())["languages"]
    return [langs[lang]["prefix"] for lang in LANGS if lang in langs]


def _train_echo(line: str) -> bool:
    return line.startswith(("iter ", " eval", "[xlda] resumed", "[xlda] saved", "[xlda] iteration",
                            "[xlda] training", "[xlda] done", "[xlda] annealing",
                            "[xlda] index"))


def summarize(metrics: Path, wall: float, phase_iters: tuple[int, int]) -> dict:
    rows = [json.loads(l) for l in metrics.read_text().splitlines()]
    train = [r for r in rows if r["kind"] == "train"]
    evals = [r for r in rows if r["kind"] == "eval"]
    speed = [r["tokens_per_s"] for r in train if "tokens_per_s" in r]
    first, last = train[0]["lm loss"], train[-1]["lm loss"]
    k = min(5, len(train))
    s = {
        "wall_s": wall, "iterations": train[-1]["iteration"], "first_loss": first,
        "last_loss": last, "first5_mean": sum(r["lm loss"] for r in train[:k]) / k,
        "last5_mean": sum(r["lm loss"] for r in train[-k:]) / k,
        "tokens_per_s": sum(speed) / len(speed) if speed else None,
        "resumed_at": phase_iters[0], "eval": evals[-1] if evals else None,
    }
    _log("=" * 70)
    _log(f"loss curve: iter 1 {first:.3f} -> iter {s['iterations']} {last:.3f} "
         f"(mean of first/last {k}: {s['first5_mean']:.3f} -> {s['last5_mean']:.3f}, "
         f"drop {s['first5_mean'] - s['last5_mean']:.3f})")
    marks = [r for r in train if r["iteration"] % 5 == 0]
    _log("curve: " + "  ".join(f"{r['iteration']}:{r['lm loss']:.2f}" for r in marks))
    if evals:
        e = evals[-1]
        per = ", ".join(f"{lang} {e[f'{lang} lm loss']:.3f}" for lang in LANGS
                        if f"{lang} lm loss" in e)
        _log(f"eval @ {e['iteration']}: lm loss {e['lm loss']:.3f} ({per})")
    shares = {k[len("share_"):]: v for k, v in train[-1].items() if k.startswith("share_")}
    if shares:  # the run's own count of what it trained on (the index lines give P)
        s["trained_shares"] = shares
        _log("trained mix (share of all tokens trained on): "
             + ", ".join(f"{lang} {v:.3f}" for lang, v in shares.items()))
    if speed:
        _log(f"throughput: {s['tokens_per_s']:.0f} tokens/s (mean of logged windows)")
    _log(f"resumed from the checkpoint at iteration {phase_iters[0]} and trained to "
         f"{phase_iters[1]}; total wall time {wall:.0f}s")
    return s


def results_lines(work: Path, iteration: int) -> list[str]:
    """Where the demo's results are (printed last)."""
    return [
        f"results: {work / 'summary.json'} (this summary)",
        f"  metrics: {work / 'ckpt' / 'metrics.jsonl'}; resolved config: "
        f"{work / 'ckpt' / 'run_config.yaml'}",
        f"  TensorBoard: tensorboard --logdir {work / 'tb'}",
        f"  checkpoint: {iter_dir(work / 'ckpt', iteration)} (resume with --load "
        f"{work / 'ckpt'}; convert with tools/checkpoint/convert.py)",
        f"  step logs: {work / 'logs'}",
    ]


def main(argv=None) -> int:
    from xlda.cli.flags import FlagParser

    p = FlagParser(prog="demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", default=str(REPO_ROOT / "runs" / "demo"),
                   help="tokenizer, data, index and checkpoints of the demo")
    p.add_argument("--docs-per-lang", type=int, default=400,
                   help="documents read per language from the corpus")
    p.add_argument("--train-iters", type=int, default=40, help="training iterations")
    p.add_argument("--resume-at", type=int, default=30, help="phase 1 stops (and saves) here")
    p.add_argument("--mock", action="store_true", help="use mock data even if the corpus exists")
    p.add_argument("--fresh", action="store_true", help="rebuild tokenizer and data too")
    args = p.parse_args(argv)
    if not 0 < args.resume_at < args.train_iters:
        p.error("--resume-at must lie strictly inside (0, --train-iters)")

    t0 = time.perf_counter()
    work = Path(args.workdir).resolve()
    if args.fresh and work.exists():
        shutil.rmtree(work)
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for d in ("ckpt", "tb"):  # training always starts fresh; data/tokenizer are reused
        shutil.rmtree(work / d, ignore_errors=True)

    src = corpus_dir()
    if args.mock or not (src / "libreoffice_help.en.jsonl.gz").exists():
        _log(f"corpus not found at {src} (or --mock): training on mock data")
        data_flags = ["--mock-data"]
    else:
        _log(f"corpus: {src}, first {args.docs_per_lang} docs per language of {list(LANGS)}")
        files = subset_corpus(src, work / "corpus", args.docs_per_lang)
        tok = build_tokenizer(files, work / "tokenizer", logs)
        prefixes = preprocess(files, tok, work / "data" / "corpus", logs)
        data_flags = ["--data-path", *prefixes, "--tokenizer-type", "HuggingFaceTokenizer",
                      "--tokenizer-model", str(tok)]

    base = [sys.executable, REPO_ROOT / "pretrain_trillion.py", "--config",
            REPO_ROOT / "examples" / "trillion7b" / "tiny.yaml", *data_flags,
            "--train-iters", str(args.train_iters), "--save", str(work / "ckpt"),
            "--tensorboard-dir", str(work / "tb"), "--log-interval", "5"]
    _run(base + ["--exit-interval", str(args.resume_at)],
         f"train iterations 1..{args.resume_at} of {args.train_iters} (tiny recipe, XLDA mask; "
         f"--exit-interval {args.resume_at} saves and stops there)", logs / "train1.log",
         echo=_train_echo)
    _run(base + ["--load", str(work / "ckpt")],
         f"resume from the checkpoint, train iterations {args.resume_at + 1}.."
         f"{args.train_iters}", logs / "train2.log", echo=_train_echo)
    s = summarize(work / "ckpt" / "metrics.jsonl", time.perf_counter() - t0,
                  (args.resume_at, args.train_iters))
    (work / "summary.json").write_text(json.dumps(s, indent=1))
    for line in results_lines(work, args.train_iters):
        _log(line)
    if not s["last5_mean"] < s["first5_mean"]:
        _log("WARNING: the loss did not go down")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
