"""``python examples/trillion7b/ablation/run_ablation.py``: the XLDA mask micro-ablation.

Real parallel text (LibreOffice help, en/ko/ja/zh) -> page-level held-out split -> tokenizer ->
indexed data -> the tiny recipe trained with masks xlda / document / causal over several seeds
(same data order and init per seed) -> held-out loss per language (Korean first) under
``<workdir>/results_<tag>/``: runs.csv (every run x metric x eval mask x language), summary.csv
(mean/std/min/max over seeds), paired.csv (per-seed differences vs causal), results.md, ablation.png. Data and finished runs are cached in
the workdir, so an interrupted ablation resumes where it stopped.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from xlda.ablation import report
from xlda.ablation.corpus import LANGS, prepare_data
from xlda.ablation.runs import MASKS, SIZES, AblationConfig, prepare_heldout, train_and_eval
from xlda.paths import REPO_ROOT, corpus_dir


def _log(msg: str) -> None:
    print(msg, flush=True)


def _mix(text: str) -> dict:
    try:
        out = {k: float(v) for k, v in (kv.split("=") for kv in text.split(","))}
    except ValueError:
        raise argparse.ArgumentTypeError(f"--mix {text!r}: expected e.g. en=0.7,ko=0.1,ja=0.1,zh=0.1")
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", default=str(REPO_ROOT / "runs" / "ablation"))
    p.add_argument("--seeds", type=int, default=3, help="seeds 1..N")
    p.add_argument("--masks", default=",".join(MASKS))
    p.add_argument("--train-iters", type=int, default=300,
                   help="per run; ~0.15 s each for the tiny recipe on 2 idle cores")
    p.add_argument("--size", choices=sorted(SIZES), default="tiny")
    p.add_argument("--docs-per-lang", type=int, default=300,
                   help="training documents per language (English gets --en-docs)")
    p.add_argument("--en-docs", type=int, default=600)
    p.add_argument("--heldout-pages", type=int, default=48,
                   help="pages held out in every language (never trained on)")
    p.add_argument("--mix", type=_mix, default={"en": 0.7, "ko": 0.1, "ja": 0.1, "zh": 0.1},
                   help="training language shares P(l) (xlda_alpha=0, xlda_beta=mix)")
    p.add_argument("--eval-samples", type=int, default=48)
    p.add_argument("--isolated-docs", type=int, default=48)
    p.add_argument("--micro-batch-size", type=int, default=None)
    p.add_argument("--global-batch-size", type=int, default=None)
    p.add_argument("--seq-length", type=int, default=None)
    p.add_argument("--corpus", default=None, help="default: xlda.paths.corpus_dir()")
    return p.parse_args(argv)


def results_dir(work: Path, args) -> Path:
    """Named for what the runs depend on; batch sizes and sequence length as the runs resolve
    them (the recipe's unless overridden)."""
    from xlda.ablation.runs import RECIPE
    from xlda.training.config import RunConfig

    recipe = RunConfig.from_yaml(RECIPE)
    mb = args.micro_batch_size or recipe.training.micro_batch_size
    gb = args.global_batch_size or recipe.training.global_batch_size
    seq = args.seq_length or recipe.data.seq_length
    mix = "-".join(f"{k}{v:g}" for k, v in args.mix.items())
    tag = (f"{args.size}_it{args.train_iters}_mix{mix}_mb{mb}_gb{gb}_s{seq}"
           f"_e{args.eval_samples}_i{args.isolated_docs}")
    return work / f"results_{tag}"


def run(args) -> dict:
    t0 = time.perf_counter()
    work = Path(args.workdir).resolve()
    corpus = Path(args.corpus) if args.corpus else corpus_dir()
    if not (corpus / "libreoffice_help.ko.jsonl.gz").exists():
        raise SystemExit(f"[ablation] the corpus is not at {corpus} (libreoffice_help.*.jsonl.gz); "
                         f"pass --corpus DIR")
    train_docs = {l: (args.en_docs if l == "en" else args.docs_per_lang) for l in LANGS}
    data = prepare_data(corpus, work, LANGS, args.heldout_pages, train_docs, log=_log)
    a = AblationConfig(data=data, masks=tuple(args.masks.split(",")),
                       seeds=tuple(range(1, args.seeds + 1)), train_iters=args.train_iters,
                       size=args.size, mix=args.mix, eval_samples=args.eval_samples,
                       isolated_docs=args.isolated_docs, micro_batch_size=args.micro_batch_size,
                       global_batch_size=args.global_batch_size, seq_length=args.seq_length,
                       workdir=str(work))
    plan = a.build()
    out = results_dir(work, args)
    out.mkdir(parents=True, exist_ok=True)
    heldout = prepare_heldout(a)
    _log(f"[ablation] held-out: {len(heldout['packed'])} packed batches, isolated docs per "
         f"language " + ", ".join(f"{l} {sum(b['tokens'].shape[0] for b in bs)}"
                                  for l, bs in heldout["isolated"].items()))
    rows, facts = [], []
    for k, spec in enumerate(plan, 1):
        done = out / f"run_{spec.name}.json"
        if done.exists():
            r = json.loads(done.read_text())
            _log(f"[ablation] ({k}/{len(plan)}) {spec.name}: reusing {done.name}")
        else:
            _log(f"[ablation] ({k}/{len(plan)}) {spec.name}: training {a.train_iters} iterations")
            r = train_and_eval(spec, heldout, log=_log)
            done.write_text(json.dumps(r))
        rows += r["rows"]
        facts.append(r["facts"])
    summary = report.aggregate(rows)
    report.write_csv(rows, out / "runs.csv", report.RUN_FIELDS)
    report.write_csv(summary, out / "summary.csv", report.SUMMARY_FIELDS)
    diffs = [d for m in report.METRICS for d in report.paired_differences(rows, m)]
    report.write_csv(diffs, out / "paired.csv", report.PAIRED_FIELDS)
    png = report.plot(summary, rows, out / "ablation.png")
    wall = time.perf_counter() - t0
    md = results_markdown(summary, rows, facts, args, wall, data)
    (out / "results.md").write_text(md)
    _log(md)
    _log(f"[ablation] wrote {out}/runs.csv, summary.csv, results.md, {png.name} "
         f"({wall:.0f}s total)")
    return {"summary": summary, "rows": rows, "facts": facts, "out": out}


def results_markdown(summary, rows, facts, args, wall, data) -> str:
    cmd = "python examples/trillion7b/ablation/run_ablation.py " + " ".join(sys.argv[1:])
    train_s = [f["train_s"] for f in facts]
    lines = [
        "# XLDA micro-ablation: held-out loss per language", "",
        f"- command: `{cmd.strip()}`",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine: "
        f"{platform.machine()} CPU, {os.cpu_count()} cores visible, OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}; training {min(train_s):.0f}-"
        f"{max(train_s):.0f}s per run, {sum(train_s) / 60:.1f} min in all (this invocation: "
        f"{wall:.0f}s wall, incl. data preparation unless cached)",
        f"- model: tiny recipe ({args.size}), {args.train_iters} iterations; training mix "
        + ", ".join(f"{k} {v:g}" for k, v in args.mix.items())
        + f"; seeds 1..{args.seeds}; held-out: {len(data['heldout_pages'])} pages absent "
        "from training in every language",
        "- values: mean ± sample std [min, max] over seeds, nats/token; lower is better", "",
        "## Packed held-out (>= 2 languages per sequence), each model evaluated with its own mask",
        "", report.markdown_table(summary, "packed"), "",
        "## Paired: loss(mask) - loss(causal) on the same seed (mean ± std; seeds won)", "",
        "Same seed = same data order and init, so the seed-to-seed spread cancels.", "",
        "packed, own mask:", "", report.paired_table(report.paired_differences(rows, "packed")),
        "", "single-document:", "",
        report.paired_table(report.paired_differences(rows, "isolated")), "",
        "## Single-document held-out (first seq-length tokens; all masks coincide)", "",
        report.markdown_table(summary, "isolated"), "",
        "## Korean packed held-out, every model under every mask (mean ± std over seeds)", "",
        report.cross_mask_table(rows, "ko"), "",
        "## Runs", "", "| run | train loss first -> last | init checksum | sample-0 token sum |",
        "|---|---|---|---|",
    ]
    for f in facts:
        lines.append(f"| {f['name']} | {f['first_loss']:.3f} -> {f['last_loss']:.3f} | "
                     f"{f['init_checksum']:.6f} | {f['first_sample_sum']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
