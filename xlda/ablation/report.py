"""Aggregation and output of the ablation: per-run CSV, summary CSV (mean/std/min/max over seeds),
a Markdown table and a PNG (matplotlib, Agg backend)."""
from __future__ import annotations

import csv
import math
from pathlib import Path

RUN_FIELDS = ("mask", "seed", "metric", "eval_mask", "lang", "loss", "tokens")
SUMMARY_FIELDS = ("metric", "mask", "lang", "n", "mean", "std", "min", "max")
PAIRED_FIELDS = ("metric", "mask", "baseline", "lang", "n", "mean", "std", "wins")
METRICS = ("packed", "isolated")


def lang_order(langs) -> list:
    """Korean first, then the rest in their given order."""
    langs = list(dict.fromkeys(langs))
    return (["ko"] if "ko" in langs else []) + [l for l in langs if l != "ko"]


def mean_std(xs) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0.0 for a single value)."""
    xs = [float(x) for x in xs]
    if not xs:
        raise ValueError("mean_std: no values")
    m = sum(xs) / len(xs)
    if len(xs) == 1:
        return m, 0.0
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def aggregate(rows: list[dict]) -> list[dict]:
    """Summary over seeds of each (metric, mask, lang), using each model's OWN mask for eval
    (``eval_mask == mask``). Ordered by metric, mask (as first seen), language (ko first)."""
    groups: dict = {}
    for r in rows:
        if r["eval_mask"] != r["mask"]:
            continue
        groups.setdefault((r["metric"], r["mask"], r["lang"]), []).append(float(r["loss"]))
    masks = list(dict.fromkeys(r["mask"] for r in rows))
    langs = lang_order(r["lang"] for r in rows)
    metrics = [m for m in METRICS if any(k[0] == m for k in groups)]
    out = []
    for metric in metrics:
        for mask in masks:
            for lang in langs:
                xs = groups.get((metric, mask, lang))
                if not xs:
                    continue
                m, s = mean_std(xs)
                out.append({"metric": metric, "mask": mask, "lang": lang, "n": len(xs),
                            "mean": m, "std": s, "min": min(xs), "max": max(xs)})
    return out


def write_csv(rows: list[dict], path: Path, fields) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(fields), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in r.items()})
    return path


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def markdown_table(summary: list[dict], metric: str) -> str:
    """Rows = masks, columns = languages (ko first): ``mean ± std [min, max]``."""
    sel = [s for s in summary if s["metric"] == metric]
    langs = lang_order(s["lang"] for s in sel)
    masks = list(dict.fromkeys(s["mask"] for s in sel))
    cell = {(s["mask"], s["lang"]): s for s in sel}
    lines = ["| mask | " + " | ".join(langs) + " |", "|---|" + "---|" * len(langs)]
    for mask in masks:
        cells = []
        for lang in langs:
            s = cell.get((mask, lang))
            cells.append("-" if s is None else
                         f"{s['mean']:.4f} ± {s['std']:.4f} [{s['min']:.4f}, {s['max']:.4f}]")
        lines.append(f"| {mask} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(summary: list[dict], rows: list[dict], path: Path) -> Path:
    """Two panels (packed with own mask, isolated): per language, one bar per mask (mean, error
    bar = std) with each seed's value as a dot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in METRICS if any(s["metric"] == m for s in summary)]
    fig, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        sel = [s for s in summary if s["metric"] == metric]
        langs = lang_order(s["lang"] for s in sel)
        masks = list(dict.fromkeys(s["mask"] for s in sel))
        width = 0.8 / max(len(masks), 1)
        for j, mask in enumerate(masks):
            xs, ms, ss = [], [], []
            for i, lang in enumerate(langs):
                s = next((s for s in sel if s["mask"] == mask and s["lang"] == lang), None)
                if s is None:
                    continue
                x = i + (j - (len(masks) - 1) / 2) * width
                xs.append(x), ms.append(s["mean"]), ss.append(s["std"])
                pts = [float(r["loss"]) for r in rows if r["metric"] == metric
                       and r["mask"] == mask and r["eval_mask"] == mask and r["lang"] == lang]
                ax.plot([x] * len(pts), pts, "k.", ms=3)
            ax.bar(xs, ms, width, yerr=ss, capsize=3, label=mask, alpha=0.8)
        ax.set_xticks(range(len(langs)), langs)
        lo = min(s["min"] for s in sel)
        hi = max(s["max"] for s in sel)
        ax.set_ylim(lo - 0.1 * (hi - lo + 1e-9) - 0.05, hi + 0.1 * (hi - lo + 1e-9) + 0.05)
        ax.set_ylabel("held-out loss (nats/token)")
        ax.set_title({"packed": "packed held-out, each model's own mask",
                      "isolated": "single-document held-out (mask-independent)"}[metric])
        ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def cross_mask_table(rows: list[dict], lang: str, metric: str = "packed") -> str:
    """Rows = training mask, columns = evaluation mask: mean ± std over seeds for ``lang``."""
    sel = [r for r in rows if r["metric"] == metric and r["lang"] == lang]
    train = list(dict.fromkeys(r["mask"] for r in sel))
    evals = list(dict.fromkeys(r["eval_mask"] for r in sel))
    lines = ["| trained \\ evaluated | " + " | ".join(evals) + " |", "|---|" + "---|" * len(evals)]
    for t in train:
        cells = []
        for e in evals:
            xs = [float(r["loss"]) for r in sel if r["mask"] == t and r["eval_mask"] == e]
            cells.append(f"{mean_std(xs)[0]:.4f} ± {mean_std(xs)[1]:.4f}" if xs else "-")
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_differences(rows: list[dict], metric: str = "packed", baseline: str = "causal") -> list[dict]:
    """Per (mask, lang): loss(mask) - loss(baseline) on the SAME seed (same data and init), mean
    and std over seeds, and how many seeds the mask wins (difference < 0). Seed-to-seed spread
    is shared by all masks, so paired differences show the mask effect more clearly."""
    own = {(r["mask"], int(r["seed"]), r["lang"]): float(r["loss"]) for r in rows
           if r["metric"] == metric and r["eval_mask"] == r["mask"]}
    masks = [m for m in dict.fromkeys(k[0] for k in own) if m != baseline]
    langs = lang_order(k[2] for k in own)
    out = []
    for mask in masks:
        for lang in langs:
            seeds = sorted(s for (m, s, l) in own if m == mask and l == lang
                           and (baseline, s, lang) in own)
            if not seeds:
                continue
            d = [own[(mask, s, lang)] - own[(baseline, s, lang)] for s in seeds]
            m, sd = mean_std(d)
            out.append({"metric": metric, "mask": mask, "baseline": baseline, "lang": lang,
                        "n": len(d), "mean": m, "std": sd, "wins": sum(x < 0 for x in d)})
    return out


def paired_table(diffs: list[dict]) -> str:
    """Rows = masks, columns = languages (ko first): ``mean ± std (wins/n)``."""
    langs = lang_order(d["lang"] for d in diffs)
    masks = list(dict.fromkeys(d["mask"] for d in diffs))
    cell = {(d["mask"], d["lang"]): d for d in diffs}
    base = diffs[0]["baseline"] if diffs else "causal"
    lines = [f"| mask - {base} | " + " | ".join(langs) + " |", "|---|" + "---|" * len(langs)]
    for mask in masks:
        cells = [("-" if (mask, l) not in cell else
                  f"{cell[(mask, l)]['mean']:+.4f} ± {cell[(mask, l)]['std']:.4f} "
                  f"({cell[(mask, l)]['wins']}/{cell[(mask, l)]['n']})") for l in langs]
        lines.append(f"| {mask} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
