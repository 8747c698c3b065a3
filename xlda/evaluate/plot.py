"""Benchmark scores against tokens trained per language, from a run's metrics.jsonl
(``tools/plot_run.py``). The suite's per-language macro averages (``suite <lang> macro``) are
drawn against that language's trained tokens, the overall ones (``suite macro``/``micro``) and
the consistency pairs against all tokens. Tokens are summed from the per-iteration
``tokens_<lang>`` of the train entries (a resumed run's repeated iterations count once: the
last written wins)."""
from __future__ import annotations

import json
from pathlib import Path

from xlda.evaluate.session import EvalError


def read_metrics(path) -> tuple[dict, dict]:
    """-> ({iteration: train entry}, {iteration: eval entry}); the last entry of an iteration wins."""
    path = Path(path)
    if not path.is_file():
        raise EvalError(f"--metrics {path}: no such file (a run's metrics.jsonl, beside its "
                        "checkpoints or in --run-dir)")
    train, evals = {}, {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                e = json.loads(line)
            except json.JSONDecodeError as err:
                raise EvalError(f"{path}:{n}: not a JSON line ({err.msg})") from None
            if not isinstance(e, dict) or "iteration" not in e:
                raise EvalError(f"{path}:{n}: not a metrics entry (no 'iteration')")
            (evals if e.get("kind") == "eval" else train)[int(e["iteration"])] = e
    return train, evals


def score_table(train: dict, evals: dict) -> list:
    """One row per evaluation with suite scores: iteration, cumulative tokens per language and
    in all, and the suite's numbers."""
    langs = sorted({k[len("tokens_"):] for e in train.values() for k in e if k.startswith("tokens_")
                    and k != "tokens_per_s"})
    rows, acc = [], {lang: 0 for lang in langs}
    ordered = sorted(train)
    i = 0
    for it in sorted(evals):
        scores = {k: v for k, v in evals[it].items() if k.startswith(("suite ", "consistency "))}
        while i < len(ordered) and ordered[i] <= it:
            e = train[ordered[i]]
            for lang in langs:
                acc[lang] += int(e.get(f"tokens_{lang}", 0))
            i += 1
        if scores:
            rows.append({"iteration": it, "tokens": dict(acc), "total_tokens": sum(acc.values()),
                         "scores": scores})
    if not rows:
        raise EvalError("the metrics hold no suite scores: train with --eval-suite FILE "
                        "--eval-suite-interval N")
    return rows


def format_table(rows: list) -> str:
    langs = list(rows[0]["tokens"])
    names = sorted({k for r in rows for k in r["scores"]})
    head = ["iteration", *[f"tokens_{lang}" for lang in langs], *names]
    lines = ["\t".join(head)]
    for r in rows:
        lines.append("\t".join([str(r["iteration"]), *[str(r["tokens"][lang]) for lang in langs],
                                *[f"{r['scores'].get(n, float('nan')):.4f}" for n in names]]))
    return "\n".join(lines)


def plot(rows: list, out: Path) -> Path:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise EvalError("plotting needs matplotlib: pip install matplotlib (the table is "
                        "printed without it: --no-plot)") from None
    langs = [lang for lang in rows[0]["tokens"] if any(f"suite {lang} macro" in r["scores"] for r in rows)]
    overall = sorted({k for r in rows for k in r["scores"]
                      if k in ("suite macro", "suite micro") or k.startswith("consistency ")})
    panels = [(lang, [f"suite {lang} macro"]) for lang in langs] + ([("all", overall)] if overall else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2), squeeze=False)
    for ax, (lang, keys) in zip(axes[0], panels):
        for k in keys:
            pts = [((r["total_tokens"] if lang == "all" else r["tokens"][lang]) / 1e9, r["scores"][k])
                   for r in rows if k in r["scores"]]
            ax.plot(*zip(*pts), marker="o", label=k.replace("suite ", ""))
        ax.set_xlabel(f"{'all' if lang == 'all' else lang} tokens trained (B)")
        ax.set_title(lang)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("score")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def main(argv=None) -> int:
    import argparse

    from xlda.cli.flags import FlagParser
    from xlda.cli.run import run_tool

    p = FlagParser(prog="plot_run.py", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                   description="Benchmark scores (pretrain_trillion.py --eval-suite) against the "
                               "tokens trained per language, from a run's metrics.jsonl.")
    p.add_argument("--metrics", required=True, help="the run's metrics.jsonl")
    p.add_argument("--output", help="the plot (PNG); default: suite_scores.png beside --metrics")
    p.add_argument("--no-plot", action="store_true", help="print the table only")
    args = p.parse_args(argv)

    def prepare():
        return score_table(*read_metrics(args.metrics))

    def run(rows):
        print(format_table(rows))
        if not args.no_plot:
            out = plot(rows, Path(args.output or Path(args.metrics).with_name("suite_scores.png")))
            print(f"[xlda] plot: {out}")

    code, _ = run_tool("plot_run", run, (EvalError,), prepare=prepare)
    return code
