"""tools/curate.py: raw JSONL/Parquet shards -> per-language curated shards + manifest.json."""
from __future__ import annotations

import argparse
import json
import sys

from xlda.cli.flags import FlagParser, say_error
from xlda.curate.classifier import ClassifierConfig
from xlda.curate.config import EXECUTORS, OUTPUT_FORMATS, CurateConfig, CurateError, parse_lang_fractions


def build_parser() -> argparse.ArgumentParser:
    p = FlagParser(
        prog="curate.py",
        description="Curate raw shards on datatrove: language ID, per-language Gopher/FineWeb "
        "filters, exact + MinHash dedup, quality score and the annealing top-fraction cut. "
        "Writes <output-dir>/<lang>/*.jsonl.gz (or .parquet), <output-dir>/anneal/<lang>/ and "
        "<output-dir>/manifest.json (last, when everything is complete).")
    g = p.add_argument_group("input")
    g.add_argument("--input", nargs="+", required=True,
                   help="JSONL (.jsonl, .gz, .zst) or Parquet files or globs")
    g.add_argument("--text-key", default="text", help="field holding the document text")
    g.add_argument("--id-key", default="id", help="document id field (absent: file:line)")
    g.add_argument("--languages", default="en,ko,ja,zh", help="comma-separated languages to keep")
    g.add_argument("--lang-id", choices=("script", "lingua"), default="script",
                   help="offline language identifier (xlda.data.lang_id)")
    g.add_argument("--language-config-dir", default=None,
                   help="directory of <lang>.yaml filter/dedup configs (default: xlda/curate/configs)")
    g = p.add_argument_group("quality score and annealing")
    g.add_argument("--score-field", default=None, help="numeric field already in the data (e.g. score)")
    g.add_argument("--quality-model", default=None,
                   help="fastText classifier (tools/train_quality_classifier.py)")
    g.add_argument("--quality-label", default="__label__hq", help="the model's positive label")
    g.add_argument("--heuristic-score", action="store_true",
                   help="score with the built-in text statistics (sentence-final lines, unique "
                        "lines, words with letters, length; xlda/curate/heuristic.py) when the data "
                        "has no score and there is no classifier")
    g.add_argument("--anneal-top", default=None,
                   help="top fraction per language for the annealing subset, e.g. en=0.2,ko=0.1,ja=0.1,zh=0.1")
    g = p.add_argument_group("output")
    g.add_argument("--output-dir", required=True,
                   help="<lang>/, anneal/<lang>/, manifest.json; the work files in .work/")
    g.add_argument("--output-format", choices=OUTPUT_FORMATS, default="jsonl",
                   help="curated shards as .jsonl.gz or .parquet")
    g.add_argument("--strict", action="store_true",
                   help="any malformed record is an error (nothing is published)")
    g.add_argument("--max-reject-examples", type=int, default=5,
                   help="example ids (file:line for malformed records) kept per reason")
    g = p.add_argument_group("execution (datatrove)")
    g.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="datatrove executor: processes on this machine, or SLURM job arrays")
    g.add_argument("--tasks", type=int, default=0, help="tasks of the read/filter stage (0: one per file)")
    g.add_argument("--workers", type=int, default=-1, help="local: parallel processes (-1: CPU count)")
    g.add_argument("--partition", default=None, help="SLURM partition")
    g.add_argument("--time", default="04:00:00", help="SLURM time limit per task")
    g.add_argument("--cpus-per-task", type=int, default=1, help="SLURM: CPUs per task")
    g.add_argument("--mem-per-cpu-gb", type=int, default=2, help="SLURM: memory per CPU")
    g.add_argument("--job-name", default="xlda-curate", help="SLURM: job name prefix of each stage")
    g.add_argument("--tasks-per-job", type=int, default=1,
                   help="SLURM: ranks each array element runs in turn (fewer, longer jobs)")
    g.add_argument("--env-command", default=None,
                   help="shell line run before each SLURM task (default: this Python's PATH + this checkout)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = CurateConfig(
            inputs=args.input, output_dir=args.output_dir,
            languages=tuple(x.strip() for x in args.languages.split(",") if x.strip()),
            lang_id=args.lang_id, text_key=args.text_key, id_key=args.id_key,
            output_format=args.output_format, language_config_dir=args.language_config_dir,
            score_field=args.score_field, quality_model=args.quality_model,
            quality_label=args.quality_label, heuristic_score=args.heuristic_score, anneal_top=parse_lang_fractions(args.anneal_top),
            strict=args.strict, max_examples=args.max_reject_examples, executor=args.executor,
            tasks=args.tasks, workers=args.workers, partition=args.partition, time=args.time,
            cpus_per_task=args.cpus_per_task, mem_per_cpu_gb=args.mem_per_cpu_gb,
            job_name=args.job_name, env_command=args.env_command,
            tasks_per_job=args.tasks_per_job)
        pipeline = cfg.build()
    except CurateError as e:  # the input or a flag: nothing done
        say_error("curate", e)
        return 2
    try:
        manifest = pipeline.run()
    except CurateError as e:
        say_error("curate", e)
        return 1
    if manifest is None:
        print(f"[curate] SLURM jobs submitted; {args.output_dir}/manifest.json appears when the "
              "last (publish) job completes. Rerun the same command to resubmit failed tasks only.")
        return 0
    print(summary(manifest))
    return 0


def summary(m: dict) -> str:
    lines = ["[curate] documents kept per language (dropped by reason):"]
    for lang, e in m["languages"].items():
        a = e.get("anneal")
        ann = f", annealing {a['documents']}/{a['of']} (top {a['fraction']})" if a else ""
        lines.append(f"  {lang}: {e['documents']}{ann}  {json.dumps(e['dropped'], ensure_ascii=False)}")
    if m["rejected"]:
        lines.append(f"  malformed records: {json.dumps(m['rejected'])}")
    return "\n".join(lines)


TRAIN_DOC = """Train a fastText quality classifier from positive and negative JSONL for tools/curate.py
--quality-model. Example:

    python tools/train_quality_classifier.py --positive good.jsonl.gz --negative web.jsonl.gz \
        --output out/quality.ftz

Reports accuracy and balanced accuracy (mean recall per class) on a stratified held-out split,
warns when one class outnumbers the other 10:1, and writes a pruned, quantized model by default
(a few MB; --no-quantize writes fastText's full ~0.5 GB .bin).
"""


def train_classifier_main(argv=None) -> int:
    p = FlagParser(prog="train_quality_classifier.py", description=TRAIN_DOC)
    p.add_argument("--positive", nargs="+", required=True, help="JSONL(.gz/.zst) of high-quality documents")
    p.add_argument("--negative", nargs="+", required=True, help="JSONL(.gz/.zst) of low-quality documents")
    p.add_argument("--output", required=True, help="model file (.ftz quantized, .bin with --no-quantize)")
    p.add_argument("--text-key", default="text", help="JSON field holding the document text")
    p.add_argument("--label", default="__label__hq", help="positive label (curate.py --quality-label)")
    p.add_argument("--epoch", type=int, default=5, help="fastText training epochs")
    p.add_argument("--lr", type=float, default=0.5, help="fastText learning rate")
    p.add_argument("--word-ngrams", type=int, default=2, help="word n-gram length fastText hashes")
    p.add_argument("--dim", type=int, default=64, help="embedding dimension")
    p.add_argument("--seed", type=int, default=0, help="shuffle, split and training seed")
    p.add_argument("--valid-fraction", type=float, default=0.1,
                   help="share of each class held out for the reported accuracies")
    p.add_argument("--no-quantize", dest="quantize", action="store_false",
                   help="keep the full model (fastText's 2M-row n-gram table: ~0.5 GB at dim 64)")
    p.add_argument("--cutoff", type=int, default=100_000,
                   help="rows (words + n-grams) the quantized model keeps")
    a = p.parse_args(argv)
    try:
        trainer = ClassifierConfig(positive=a.positive, negative=a.negative, output=a.output,
                                   text_key=a.text_key, label=a.label, epoch=a.epoch, lr=a.lr,
                                   word_ngrams=a.word_ngrams, dim=a.dim, seed=a.seed,
                                   valid_fraction=a.valid_fraction, quantize=a.quantize,
                                   cutoff=a.cutoff).build()
    except CurateError as e:
        say_error("train_quality_classifier", e)
        return 2
    try:
        r = trainer.run(warn=lambda m: print(m, file=sys.stderr, flush=True))
    except CurateError as e:
        say_error("train_quality_classifier", e)
        return 1
    acc = ("no held-out split" if r["valid_accuracy"] is None else
           f"held-out accuracy {r['valid_accuracy']:.3f}, balanced accuracy "
           f"{r['valid_balanced_accuracy']:.3f} ({r['valid']} documents)")
    print(f"[classifier] {r['positive']} positive, {r['negative']} negative; {acc}; "
          f"{r['model']} {r['bytes'] / 2**20:.1f} MB{' (quantized)' if r['quantized'] else ''}")
    print(json.dumps(r))
    return 0
