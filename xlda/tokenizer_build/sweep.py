"""Chars/token per language as a function of the number of tokens added for one language."""
from __future__ import annotations

import csv
from pathlib import Path


def write_sweep(rows: list[dict], lang: str, langs: list[str], out_dir: Path) -> dict[str, Path]:
    """rows: {f"{lang}_tokens", "vocab_size", "cpt_<l>" for l in langs}. Writes CSV, MD, PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [f"{lang}_tokens", "vocab_size"] + [f"chars_per_token_{l}" for l in langs]
    paths = {k: out_dir / f"sweep.{k}" for k in ("csv", "md", "png")}
    with open(paths["csv"], "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({c: r[c] for c in cols})
    md = ["| " + " | ".join(cols) + " |", "|---" * len(cols) + "|"]
    md += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    paths["md"].write_text("\n".join(md) + "\n")
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    xs = [r[f"{lang}_tokens"] for r in rows]
    for l in langs:
        ax.plot(xs, [r[f"chars_per_token_{l}"] for r in rows], marker="o", label=l)
    ax.set_xlabel(f"{lang} tokens added")
    ax.set_ylabel("characters per token (held-out)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    # Fixed metadata keeps the PNG byte-stable across runs.
    fig.savefig(paths["png"], format="png", metadata={"Software": None})
    plt.close(fig)
    return paths
