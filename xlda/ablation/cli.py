"""``python examples/trillion7b/ablation/run_ablation.py``: the XLDA ablation (v3).

Per-language JSONL (default: the bundled LibreOffice help corpus, aligned by page) -> held-out
split (aligned groups, and near copies of their pages, removed from training in every language)
-> pages cut into aligned line chunks -> tokenizer -> indexed data with each document's group ->
the recipe trained in arms A (xlda + affinity packing), B (document mask, A's batches), C (xlda,
today's packing) over several seeds (same init per seed) -> held-out loss per language, the
in-context transfer probe, the induction test, the pre-registered endpoints E1/E2 with paired t
intervals, the secondary ones Holm-corrected -> ``<workdir>/results_<tag>/``: runs.csv,
summary.csv, endpoints.csv, results.md, ablation.png (and ``--results-md``). Data and finished
runs are cached in the workdir, so an interrupted ablation resumes where it stopped.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

from xlda.ablation import report
from xlda.ablation.results_md import results_markdown
from xlda.ablation.corpus import LANGS, ReadSpec, prepare_data
from xlda.ablation.near_dup import THRESHOLD
from xlda.ablation.runs import (ARMS, DEFAULT_ARMS, MIXES, SIZES, AblationConfig,
                                prepare_heldout, train_and_eval)
from xlda.cli.flags import FlagParser, fail
from xlda.paths import REPO_ROOT, corpus_dir

# The bundled corpus (../shared/corpus): four translations of the same help pages; the page is
# the id after "lo/<locale>/". Used when no --input is given.
LIBREOFFICE = {"files": "libreoffice_help.{lang}.jsonl.gz", "group_key": "id",
               "group_pattern": r"^lo/[^/]+/(.+)$"}


def _log(msg: str) -> None:
    print(msg, flush=True)


def _mix(text: str) -> dict:
    if text in MIXES:
        return dict(MIXES[text])
    try:
        out = {k: float(v) for k, v in (kv.split("=") for kv in text.split(","))}
    except ValueError:
        raise argparse.ArgumentTypeError(f"--mix {text!r}: a preset ({', '.join(MIXES)}) or "
                                         f"shares like en=0.85,ko=0.1,ja=0.025,zh=0.025")
    return out


def _input(text: str) -> tuple:
    lang, sep, path = text.partition("=")
    if not sep or not lang or not path:
        raise argparse.ArgumentTypeError(f"--input {text!r}: expected LANG=PATH, e.g. "
                                         f"ko=data/ko.jsonl.gz")
    return lang, path


def parse_args(argv=None):
    p = FlagParser(prog="run_ablation", description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", default=str(REPO_ROOT / "runs" / "ablation"),
                   help="data, indexes and one run folder per mask and seed")
    p.add_argument("--seeds", type=int, default=5, help="seeds 1..N (>= 2 for intervals)")
    p.add_argument("--arms", default=",".join(DEFAULT_ARMS),
                   help="comma-separated arms: " + "; ".join(f"{k}: {v.note}"
                                                             for k, v in ARMS.items()))
    p.add_argument("--affinity-p", type=float, default=1.0,
                   help="the packer's --xlda-affinity-p in the affinity arms (A, B, D)")
    p.add_argument("--size", choices=sorted(SIZES), default="tiny",
                   help="; ".join(f"{k}: {v.note}" for k, v in SIZES.items()))
    p.add_argument("--train-iters", type=int, default=None, help="default: the size's")
    g = p.add_argument_group("corpus (default: the bundled LibreOffice help corpus, by page)")
    g.add_argument("--input", type=_input, action="append", default=None, metavar="LANG=PATH",
                   help="a JSONL(.gz) file of one language; repeat per file and language")
    g.add_argument("--text-key", default="text", help="field holding the document text")
    g.add_argument("--group-key", default=None,
                   help="field that says which documents translate each other (e.g. page)")
    g.add_argument("--group-pattern", default=None,
                   help="regex applied to --group-key's value; its first group is the key")
    g.add_argument("--no-script-filter", action="store_true",
                   help="keep documents whose dominant script is not their language's")
    g.add_argument("--heldout", type=int, default=128,
                   help="held-out groups (aligned; removed in every language) or documents "
                        "per language (no --group-key)")
    g.add_argument("--max-train-docs", type=int, default=0, help="per language; 0 = all")
    g.add_argument("--chunk-chars", type=int, default=200,
                   help="cut documents (after the split) into runs of whole lines of at most "
                        "this many characters, aligned across translations; 0 = whole pages")
    g.add_argument("--near-dup", type=float, default=THRESHOLD,
                   help="hold out training groups with a document this similar (MinHash "
                        "Jaccard) to a held-out one too; 0 = off")
    g.add_argument("--corpus", default=None, help="the bundled corpus' directory "
                                                  "(default: xlda.paths.corpus_dir())")
    p.add_argument("--mix", type=_mix, default=dict(MIXES["7b"]),
                   help=f"training token shares P(l): {' or '.join(MIXES)} (default 7b: "
                        f"en .85, ko .10, ja .025, zh .025), or en=..,ko=..")
    p.add_argument("--eval-samples", type=int, default=48,
                   help="held-out packed windows for the in-context loss")
    p.add_argument("--isolated-docs", type=int, default=256,
                   help="held-out documents per language scored alone (no other document)")
    p.add_argument("--probe-context", type=int, default=None,
                   help="probe context tokens (default: half the sequence)")
    p.add_argument("--micro-batch-size", type=int, default=None, help="default: the size's")
    p.add_argument("--global-batch-size", type=int, default=None, help="default: the size's")
    p.add_argument("--seq-length", type=int, default=None, help="default: the size's")
    p.add_argument("--results-md", default=None,
                   help="also write results.md here (and ablation.png beside it)")
    args = p.parse_args(argv)
    if args.seeds < 2:
        p.error(f"--seeds {args.seeds}: paired intervals need >= 2 seeds (5 is the default)")
    if args.heldout < 1:
        p.error(f"--heldout {args.heldout}: hold out at least 1 group or document")
    arms = args.arms.split(",")
    if set(arms) - set(ARMS) or len(set(arms)) != len(arms):
        p.error(f"--arms {args.arms}: choose from {','.join(ARMS)}, each once")
    if not set(DEFAULT_ARMS) <= set(arms):
        p.error(f"--arms {args.arms}: the pre-registered endpoints need arms "
                f"{','.join(DEFAULT_ARMS)}")
    if not 0.0 < args.affinity_p <= 1.0:
        p.error(f"--affinity-p {args.affinity_p}: must be in (0, 1] (arm C is affinity 0)")
    if not 0.0 <= args.near_dup <= 1.0:
        p.error(f"--near-dup {args.near_dup}: a Jaccard similarity in [0, 1] (0 = off)")
    if args.chunk_chars < 0:
        p.error(f"--chunk-chars {args.chunk_chars}: >= 0 (0 = whole pages)")
    args.bundled = args.input is None
    if args.input is None:
        corpus = Path(args.corpus) if args.corpus else corpus_dir()
        args.input = [(l, str(corpus / LIBREOFFICE["files"].format(lang=l))) for l in LANGS]
        if args.group_key is None:
            args.group_key = LIBREOFFICE["group_key"]
            args.group_pattern = args.group_pattern or LIBREOFFICE["group_pattern"]
    elif args.corpus:
        p.error("--corpus names the bundled corpus' directory; with --input it would be ignored")
    if args.group_key is None:
        p.error("the arms compare affinity packing, which needs documents that translate each "
                "other: pass --group-key FIELD (and --group-pattern) with --input")
    inputs: dict = {}
    for lang, path in args.input:
        inputs.setdefault(lang, []).append(path)
    args.inputs = inputs
    if set(args.mix) != set(inputs) or not all(v >= 0 for v in args.mix.values()) or \
            not sum(args.mix.values()) > 0:
        p.error(f"--mix {args.mix}: give a non-negative share for each --input language "
                f"{sorted(inputs)} and nothing else")
    return args


def ablation_config(args, data: dict, work: Path) -> AblationConfig:
    return AblationConfig(data=data, arms=tuple(args.arms.split(",")),
                          affinity_p=args.affinity_p,
                          seeds=tuple(range(1, args.seeds + 1)), train_iters=args.train_iters,
                          size=args.size, mix=args.mix, eval_samples=args.eval_samples,
                          isolated_docs=args.isolated_docs, probe_context=args.probe_context,
                          micro_batch_size=args.micro_batch_size,
                          global_batch_size=args.global_batch_size, seq_length=args.seq_length,
                          workdir=str(work))


def results_dir(work: Path, a: AblationConfig, data_dir: str) -> Path:
    """Named for what the runs depend on, as resolved (size presets filled in)."""
    mix = "-".join(f"{k}{v:g}" for k, v in a.mix.items())
    tag = (f"{a.size}_it{a.train_iters}_mix{mix}_mb{a.micro_batch_size}_gb"
           f"{a.global_batch_size}_s{a.seq_length}_e{a.eval_samples}_i{a.isolated_docs}"
           f"_p{a.probe_context or a.seq_length // 2}")
    data = hashlib.sha1(data_dir.encode()).hexdigest()[:6]
    # the packing format too: runs of an older packing (another mix) are never reused
    from xlda.data.packing import FORMAT_VERSION

    return work / f"results_{tag}_d{data}_pk{FORMAT_VERSION}"


def run(args) -> dict:
    t0 = time.perf_counter()
    work = Path(args.workdir).resolve()
    for lang, paths in args.inputs.items():  # before any work: one line, exit 2
        for path in paths:
            if not Path(path).is_file():
                fail("run_ablation", f"{path}: no such file (the bundled corpus: pass --corpus "
                     "DIR, or give --input LANG=PATH)" if args.bundled
                     else f"--input {lang}={path}: no such file")
    spec = ReadSpec(text_key=args.text_key, group_key=args.group_key,
                    group_pattern=args.group_pattern, script_filter=not args.no_script_filter)
    try:  # the corpus as read: its errors name the file, line and flag (one line, exit 2)
        data = prepare_data(args.inputs, work, spec, args.heldout, args.max_train_docs, log=_log,
                            near_dup=args.near_dup, chunk_chars=args.chunk_chars)
    except (ValueError, OSError) as e:
        fail("run_ablation", str(e))
    a = ablation_config(args, data, work)
    out = results_dir(work, a, data["tokenizer"])
    out.mkdir(parents=True, exist_ok=True)
    a.workdir = str(out)  # each configuration's run folders (metrics.jsonl) beside its results
    plan = a.build()
    heldout = prepare_heldout(a)
    _log(f"[ablation] held-out: {len(heldout['packed'])} packed batches; isolated docs per "
         f"language " + ", ".join(f"{l} {sum(b['tokens'].shape[0] for b in bs)}"
                                  for l, bs in heldout["isolated"].items())
         + "; probe items " + (", ".join(f"{l} {n}" for l, n in heldout["probe_items"].items())
                               or "none (no --group-key: no translations known)"))
    rows, facts = [], []
    for k, spec_ in enumerate(plan, 1):
        done = out / f"run_{spec_.name}.json"
        if done.exists():
            r = json.loads(done.read_text())
            _log(f"[ablation] ({k}/{len(plan)}) {spec_.name}: reusing {done.name}")
        else:
            _log(f"[ablation] ({k}/{len(plan)}) {spec_.name}: training {a.train_iters} iterations")
            r = train_and_eval(spec_, heldout, log=_log)
            tmp = done.with_suffix(".tmp")
            tmp.write_text(json.dumps(r))
            tmp.rename(done)  # a run file is whole or absent
        rows += r["rows"]
        facts.append(r["facts"])
    summary = report.aggregate(rows)
    erows = report.endpoint_rows(rows, report.PRIMARY + report.secondary(heldout["languages"]))
    report.write_csv(rows, out / "runs.csv", report.RUN_FIELDS)
    report.write_csv(summary, out / "summary.csv", report.SUMMARY_FIELDS)
    report.write_csv(erows, out / "endpoints.csv", report.ENDPOINT_FIELDS)
    png = report.plot(erows, rows, out / "ablation.png")
    wall = time.perf_counter() - t0
    md = results_markdown(summary, erows, rows, facts, args, a, wall, data, heldout)
    (out / "results.md").write_text(md)
    if args.results_md:
        dst = Path(args.results_md)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(md)
        shutil.copyfile(png, dst.parent / png.name)
    _log(md)
    _log(f"[ablation] wrote {out}/runs.csv, summary.csv, endpoints.csv, results.md, {png.name}"
         + (f" and {args.results_md}" if args.results_md else "") + f" ({wall:.0f}s total)")
    return {"summary": summary, "endpoints": erows, "rows": rows, "facts": facts, "out": out}


def main(argv=None) -> int:
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
