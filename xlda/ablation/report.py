"""Aggregation and output of the ablation: per-run CSV, summary CSV (mean/std/min/max over seeds),
paired differences against the document mask with bootstrap and t intervals (stats.py), the probe's
transfer, Markdown tables, plain-words conclusions and a PNG (matplotlib, Agg backend)."""
from __future__ import annotations

import csv
import math
from pathlib import Path

from xlda.ablation.stats import mean_std, paired, verdict

RUN_FIELDS = ("mask", "seed", "metric", "eval_mask", "lang", "loss", "tokens")
SUMMARY_FIELDS = ("metric", "mask", "lang", "n", "mean", "std", "min", "max")
PAIRED_FIELDS = ("metric", "mask", "baseline", "key", "n", "mean", "std", "ci_lo", "ci_hi",
                 "t_lo", "t_hi", "excludes_zero", "lower")
MASK_COLOURS = {"xlda": 0, "document": 1, "causal": 2}  # matplotlib C<n>, fixed per mask
METRICS = ("packed", "isolated", "probe_translation", "probe_unrelated", "probe_none")
QUANTITIES = {  # what the paired analysis reports, and how it reads
    "packed": "packed held-out loss, own mask (lower is better)",
    "isolated": "single-document held-out loss (lower is better)",
    "transfer": "in-context transfer = loss(unrelated) - loss(translation) (higher = more transfer)",
}


def lang_order(langs) -> list:
    """Korean first, then the rest in their given order."""
    langs = list(dict.fromkeys(langs))
    return (["ko"] if "ko" in langs else []) + [l for l in langs if l != "ko"]


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


def plot(prows: list[dict], rows: list[dict], path: Path) -> Path:
    """Three panels: paired differences vs the baseline mask (packed, single-document), and the
    probe's transfer per mask. Per language, one marker per mask: the mean, its t 95% interval
    (whiskers) and bootstrap 95% interval (thick bar); each seed's value as a dot; a dashed line
    marks 0. A difference is detected when both intervals clear 0 (stats.py)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from xlda.ablation.stats import bootstrap_ci, t_interval

    panels = [(q, [r for r in prows if r["metric"] == q]) for q in ("packed", "isolated")]
    tr = values(rows, "transfer")
    if tr:  # absolute transfer (the document mask's is 0 by construction)
        keys = sorted({(k[0], k[2]) for k in tr}, key=lambda mk: MASK_COLOURS.get(mk[0], 9))
        sel = []
        for mask, lang in keys:
            xs = [v for k, v in sorted(tr.items()) if k[0] == mask and k[2] == lang]
            lo, hi = bootstrap_ci(xs)
            tlo, thi = t_interval(xs)
            sel.append({"mask": mask, "key": lang, "mean": mean_std(xs)[0], "ci_lo": lo,
                        "ci_hi": hi, "t_lo": tlo, "t_hi": thi, "diffs": xs})
        panels.append(("transfer", sel))
    panels = [(q, sel) for q, sel in panels if sel]
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(5.5 * max(len(panels), 1), 4),
                             squeeze=False)
    titles = {"packed": "packed held-out loss: mask - document",
              "isolated": "single-document loss: mask - document",
              "transfer": "probe transfer: loss(unrelated) - loss(translation)"}
    for ax, (q, sel) in zip(axes[0], panels):
        langs = lang_order(r["key"] for r in sel)
        masks = list(dict.fromkeys(r["mask"] for r in sel))
        width = 0.8 / max(len(masks), 1)
        for j, mask in enumerate(masks):
            for i, lang in enumerate(langs):
                r = next((r for r in sel if r["mask"] == mask and r["key"] == lang), None)
                if r is None:
                    continue
                x = i + (j - (len(masks) - 1) / 2) * width
                c = f"C{MASK_COLOURS.get(mask, j)}"
                finite = math.isfinite(r["t_lo"]) and math.isfinite(r["t_hi"])  # 1 seed: no t
                t_lo, t_hi = (r["t_lo"], r["t_hi"]) if finite else (r["mean"], r["mean"])
                ax.errorbar([x], [r["mean"]], yerr=[[r["mean"] - t_lo], [t_hi - r["mean"]]],
                            fmt="o", color=c, capsize=3, lw=1, label=mask if i == 0 else None)
                ax.plot([x, x], [r["ci_lo"], r["ci_hi"]], color=c, lw=4, alpha=0.5)
                ax.plot([x] * len(r["diffs"]), r["diffs"], ".", color="0.4", ms=3)
        ax.axhline(0.0, color="k", ls="--", lw=0.8)
        ax.set_xticks(range(len(langs)), langs)
        ax.set_ylabel("nats/token")
        ax.set_title(titles[q] + "\nwhiskers: t 95%, thick: bootstrap 95%", fontsize=9)
        ax.legend(fontsize=8)
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


def values(rows: list[dict], quantity: str) -> dict:
    """``{(mask, seed, lang): value}`` of one quantity, each model under its own mask:
    a metric's loss, or ``transfer`` = probe_unrelated - probe_translation (same scored tokens)."""
    own = {(r["mask"], int(r["seed"]), r["lang"], r["metric"]): float(r["loss"]) for r in rows
           if r["eval_mask"] == r["mask"]}
    if quantity != "transfer":
        return {k[:3]: v for k, v in own.items() if k[3] == quantity}
    return {k[:3]: own[k[:3] + ("probe_unrelated",)] - v for k, v in own.items()
            if k[3] == "probe_translation" and k[:3] + ("probe_unrelated",) in own}


def paired_rows(rows: list[dict], baseline: str) -> list[dict]:
    """Paired differences vs ``baseline`` for every quantity and language (ko first)."""
    out = []
    for q in QUANTITIES:
        v = values(rows, q)
        for r in paired(v, baseline, keys=lang_order(k[2] for k in v)):
            out.append({"metric": q, **r})
    return out


def _ci(r: dict) -> str:
    return (f"{r['mean']:+.4f} [{r['ci_lo']:+.4f}, {r['ci_hi']:+.4f}] (t [{r['t_lo']:+.4f}, "
            f"{r['t_hi']:+.4f}]) {'**excludes 0**' if r['excludes_zero'] else 'includes 0'}")


def paired_table(prows: list[dict], metric: str) -> str:
    """Rows = masks, columns = languages: ``mean [bootstrap 95%] (t [95%]) excludes/includes 0
    (lower k/n)``."""
    sel = [r for r in prows if r["metric"] == metric]
    langs = lang_order(r["key"] for r in sel)
    masks = list(dict.fromkeys(r["mask"] for r in sel))
    cell = {(r["mask"], r["key"]): r for r in sel}
    base = sel[0]["baseline"] if sel else "document"
    lines = [f"| mask - {base} | " + " | ".join(langs) + " |", "|---|" + "---|" * len(langs)]
    for mask in masks:
        cells = [("-" if (mask, l) not in cell else
                  f"{_ci(cell[(mask, l)])} (lower {cell[(mask, l)]['lower']}/{cell[(mask, l)]['n']})")
                 for l in langs]
        lines.append(f"| {mask} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def probe_table(rows: list[dict]) -> str:
    """Per (mask, language): mean over seeds of the three probe losses and the transfer."""
    tr = values(rows, "transfer")
    conds = {c: values(rows, f"probe_{c}") for c in ("translation", "unrelated", "none")}
    masks = list(dict.fromkeys(k[0] for k in tr))
    langs = lang_order(k[2] for k in tr)
    lines = ["| mask | lang | (a) translation | (b) unrelated | (c) none | transfer (b)-(a) "
             "mean ± std | seeds with transfer > 0 |", "|---|---|---|---|---|---|---|"]
    for mask in masks:
        for lang in langs:
            ks = sorted(k for k in tr if k[0] == mask and k[2] == lang)
            if not ks:
                continue
            m = {c: mean_std([conds[c][k] for k in ks])[0] for c in conds}
            t, sd = mean_std([tr[k] for k in ks])
            lines.append(f"| {mask} | {lang} | {m['translation']:.4f} | {m['unrelated']:.4f} | "
                         f"{m['none']:.4f} | {t:+.5f} ± {sd:.5f} | "
                         f"{sum(tr[k] > 0 for k in ks)}/{len(ks)} |")
    return "\n".join(lines)


def conclusions(prows: list[dict], rows: list[dict]) -> list[str]:
    """Plain-words lines: per quantity and language, what the intervals say."""
    out = []
    for q, what in QUANTITIES.items():
        sel = [r for r in prows if r["metric"] == q]
        for lang in lang_order(r["key"] for r in sel):
            parts = [f"{r['mask']} - {r['baseline']} {r['mean']:+.4f}, bootstrap "
                     f"[{r['ci_lo']:+.4f}, {r['ci_hi']:+.4f}], t [{r['t_lo']:+.4f}, "
                     f"{r['t_hi']:+.4f}]: {verdict(r)}" for r in sel if r["key"] == lang]
            out.append(f"- {what}, {lang}: " + "; ".join(parts))
    base = values(rows, "transfer")
    doc = [abs(v) for (m, _, _), v in base.items() if m == "document"]
    if doc:
        out.append(f"- the document mask's probe transfer is 0 by construction: largest "
                   f"|transfer| over its runs and languages = {max(doc):.2e}")
    return out
