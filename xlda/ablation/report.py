"""Aggregation and output of the ablation (v3: arms): per-run CSV, summary CSV (mean/std/min/max
over seeds), the pre-registered endpoints with paired t intervals and p-values, the secondary
endpoints Holm-corrected, Markdown tables, plain-words verdicts and a PNG (matplotlib, Agg).

A row is one (arm, seed, metric, evaluation mask, language) loss; each model is read under its
own training mask (``eval_mask == mask``) unless a table says otherwise. Quantities:

- a metric's loss (``packed``, ``isolated``, ``probe_<condition>[@subset]``);
- ``transfer[@subset]`` = probe_unrelated - probe_translation (b)-(a): what the translation adds
  over an unrelated English page of the same length;
- ``context[@subset]`` = probe_none - probe_translation (c)-(a): what the translation adds over
  no context at all.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from xlda.ablation.stats import holm, mean_std, t_test

RUN_FIELDS = ("arm", "mask", "affinity_p", "seed", "metric", "eval_mask", "lang", "loss",
              "tokens")
SUMMARY_FIELDS = ("metric", "arm", "lang", "n", "mean", "std", "min", "max")
ENDPOINT_FIELDS = ("id", "family", "label", "n", "mean", "t_lo", "t_hi", "t", "p", "p_holm",
                   "detected", "values")
ARM_COLOURS = {"A": 0, "B": 1, "C": 2, "D": 3}  # matplotlib C<n>, fixed per arm
ALPHA = 0.05


def lang_order(langs) -> list:
    """Korean first, then the rest in their given order."""
    langs = list(dict.fromkeys(langs))
    return (["ko"] if "ko" in langs else []) + [l for l in langs if l != "ko"]


def write_csv(rows: list[dict], path: Path, fields) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(fields), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6f}" if isinstance(v, float) else
                            " ".join(f"{x:.6f}" for x in v) if isinstance(v, list) else v)
                        for k, v in r.items()})
    return path


def values(rows: list[dict], quantity: str) -> dict:
    """``{(arm, seed, lang): value}`` of one quantity, each model under its own mask."""
    own = {(r["arm"], int(r["seed"]), r["lang"], r["metric"]): float(r["loss"]) for r in rows
           if r["eval_mask"] == r["mask"]}
    base, _, sub = quantity.partition("@")
    sfx = f"@{sub}" if sub else ""
    if base not in ("transfer", "context"):
        return {k[:3]: v for k, v in own.items() if k[3] == quantity}
    other = "probe_unrelated" if base == "transfer" else "probe_none"
    return {k[:3]: own[k[:3] + (other + sfx,)] - v for k, v in own.items()
            if k[3] == "probe_translation" + sfx and k[:3] + (other + sfx,) in own}


def aggregate(rows: list[dict]) -> list[dict]:
    """Summary over seeds of each (metric, arm, lang) under the arm's own mask."""
    groups: dict = {}
    for r in rows:
        if r["eval_mask"] == r["mask"]:
            groups.setdefault((r["metric"], r["arm"], r["lang"]), []).append(float(r["loss"]))
    metrics = list(dict.fromkeys(k[0] for k in groups))  # as first seen
    langs = lang_order(k[2] for k in groups)
    out = []
    for (metric, arm, lang), xs in sorted(groups.items(), key=lambda kv: (
            metrics.index(kv[0][0]), kv[0][1], langs.index(kv[0][2]))):
        m, s = mean_std(xs)
        out.append({"metric": metric, "arm": arm, "lang": lang, "n": len(xs), "mean": m,
                    "std": s, "min": min(xs), "max": max(xs)})
    return out


@dataclass(frozen=True)
class Endpoint:
    """One pre-registered quantity: ``quantity`` in ``lang`` within ``arm`` (over seeds) or, with
    ``minus``, the per-seed difference arm - minus (same seed: same init; A, B: same batches)."""

    id: str
    quantity: str
    lang: str
    arm: str
    minus: Optional[str] = None
    family: str = "secondary"

    @property
    def label(self) -> str:
        what = {"transfer": "probe transfer (b)-(a)", "context": "probe (c)-(a)",
                "isolated": "single-document held-out loss", "packed": "packed held-out loss"}
        base, _, sub = self.quantity.partition("@")
        sub = {"native": " on native-script tokens not in the translation",
               "copyable": " on tokens copyable from the translation"}.get(sub, "")
        arms = f"{self.arm} - {self.minus}" if self.minus else f"in {self.arm}"
        return f"{self.lang} {what.get(base, base)}{sub}, {arms}"

    def sample(self, rows: list[dict]) -> list[float]:
        v = values(rows, self.quantity)
        seeds = sorted({s for (a, s, l) in v if a == self.arm and l == self.lang})
        if self.minus is None:
            return [v[(self.arm, s, self.lang)] for s in seeds]
        return [v[(self.arm, s, self.lang)] - v[(self.minus, s, self.lang)] for s in seeds
                if (self.minus, s, self.lang) in v]


# Issue #20's pre-registration, fixed before the runs: E1 the Korean transfer in A and A - C,
# E2 the Korean single-document loss A - B. Each is read at 5% on its own.
PRIMARY = (Endpoint("E1a", "transfer", "ko", "A", family="primary"),
           Endpoint("E1b", "transfer", "ko", "A", "C", family="primary"),
           Endpoint("E2", "isolated", "ko", "A", "B", family="primary"))


def secondary(langs) -> tuple:
    """The secondary family, Holm-corrected together: the endpoints in the other languages,
    (c)-(a), the native-script / copyable split, and what affinity does to the weights."""
    tgt = [l for l in lang_order(langs) if l != "en"]
    out = []
    for l in tgt:
        if l != "ko":
            out += [Endpoint(f"S-tA-{l}", "transfer", l, "A"),
                    Endpoint(f"S-tAC-{l}", "transfer", l, "A", "C")]
        out.append(Endpoint(f"S-cA-{l}", "context", l, "A"))
        for sub in ("native", "copyable"):
            out += [Endpoint(f"S-{sub}A-{l}", f"transfer@{sub}", l, "A"),
                    Endpoint(f"S-{sub}AC-{l}", f"transfer@{sub}", l, "A", "C")]
    for l in lang_order(langs):
        if l != "ko":
            out.append(Endpoint(f"S-iAB-{l}", "isolated", l, "A", "B"))
        out.append(Endpoint(f"S-iAC-{l}", "isolated", l, "A", "C"))
    return tuple(out)


def endpoint_rows(rows: list[dict], endpoints) -> list[dict]:
    """Per endpoint: n, mean, t 95% interval, t, p; the secondary family's Holm p-values.
    Endpoints without data (an arm not run) are left out."""
    out = []
    for ep in endpoints:
        xs = ep.sample(rows)
        if len(xs) < 1:
            continue
        out.append({"id": ep.id, "family": ep.family, "label": ep.label, "quantity": ep.quantity,
                    "lang": ep.lang, **t_test(xs), "values": xs})
    for fam in {r["family"] for r in out}:
        sel = [r for r in out if r["family"] == fam]
        adj = holm([r["p"] for r in sel]) if fam == "secondary" else [r["p"] for r in sel]
        for r, a in zip(sel, adj):
            r["p_holm"] = a
            r["detected"] = a < ALPHA
    return out


def _num(x: float, d: int = 4) -> str:
    return f"{x:+.{d}f}" if math.isfinite(x) else ("+inf" if x > 0 else "-inf")


def _p(p: float) -> str:
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def endpoint_table(erows: list[dict], holm_col: bool) -> str:
    head = "| id | endpoint | mean | t 95% interval | p |" + (" Holm p |" if holm_col else "") \
        + " per seed |"
    lines = [head, "|---|---|---|---|---|" + ("---|" if holm_col else "") + "---|"]
    for r in erows:
        mark = "**" if r["detected"] else ""
        lines.append(f"| {r['id']} | {r['label']} | {mark}{_num(r['mean'])}{mark} | "
                     f"[{_num(r['t_lo'])}, {_num(r['t_hi'])}] | {_p(r['p'])} |"
                     + (f" {_p(r['p_holm'])} |" if holm_col else "")
                     + " " + ", ".join(f"{x:+.4f}" for x in r["values"]) + " |")
    return "\n".join(lines)


def _interval(r: dict) -> str:
    return f"{_num(r['mean'])} nats/token (t 95% [{_num(r['t_lo'])}, {_num(r['t_hi'])}], p {_p(r['p'])})"


def verdict(erows: list[dict]) -> list[str]:
    """Plain words for the primary endpoints (and the copy/native split behind E1a)."""
    by = {r["id"]: r for r in erows}
    out = []
    e = by.get("E1a")
    if e:
        if e["detected"] and e["mean"] > 0:
            out.append(f"- **E1a: yes, the XLDA model uses the English translation to predict "
                       f"Korean.** With affinity packing, Korean tokens are predicted better after "
                       f"their English page than after an unrelated one: {_interval(e)}.")
        elif e["detected"]:
            out.append(f"- **E1a: the English translation makes Korean worse to predict** than an "
                       f"unrelated English page: {_interval(e)}.")
        else:
            out.append(f"- **E1a: not detected.** The Korean transfer in arm A is {_interval(e)}; "
                       f"this run cannot tell it from 0.")
        nat, cop = by.get("S-nativeA-ko"), by.get("S-copyableA-ko")
        if nat and cop:
            def said(r):
                return "detected" if r["detected"] and r["mean"] > 0 else "not detected"

            out.append(f"  Behind it: tokens the English page contains (copyable) gain "
                       f"{_num(cop['mean'])} (Holm p {_p(cop['p_holm'])}, {said(cop)}); Korean-"
                       f"script tokens it does not contain gain {_num(nat['mean'])} (Holm p "
                       f"{_p(nat['p_holm'])}, {said(nat)}). "
                       + ("Transfer beyond copying is detected." if said(nat) == "detected" else
                          "Transfer of meaning into tokens that cannot be copied is not "
                          "detected" + (": what is detected is copying." if said(cop) ==
                                        "detected" else ".")))
    e = by.get("E1b")
    if e:
        if e["detected"] and e["mean"] > 0:
            out.append(f"- **E1b: affinity packing adds to the transfer.** The same mask on "
                       f"today's packing (C) transfers less: A - C = {_interval(e)}.")
        elif e["detected"]:
            out.append(f"- **E1b: affinity packing lowers the transfer**: A - C = {_interval(e)}.")
        else:
            out.append(f"- **E1b: not detected.** A - C = {_interval(e)}: affinity packing's "
                       f"effect on the transfer cannot be told from 0 here.")
    e = by.get("E2")
    if e:
        if e["detected"] and e["mean"] > 0:
            out.append(f"- **E2: XLDA hurts Korean.** On identical batches, the XLDA model's "
                       f"Korean single-document loss is worse than the document mask's: A - B = "
                       f"{_interval(e)}: the pre-registered reading is that reliance on the "
                       f"other-language context crowds out learning Korean into the weights (at "
                       f"this size).")
        elif e["detected"]:
            out.append(f"- **E2: XLDA helps Korean in the weights.** On identical batches, the "
                       f"XLDA model's Korean single-document loss is better than the document "
                       f"mask's: A - B = {_interval(e)}: what it read across languages stayed in "
                       f"the weights.")
        else:
            out.append(f"- **E2: not detected.** A - B = {_interval(e)}: on identical batches, "
                       f"the Korean loss of the weights does not differ detectably between XLDA "
                       f"and the document mask; the interval bounds the cost of XLDA to at most "
                       f"{_num(e['t_hi'])} and its gain to at most {_num(-e['t_lo'])} nats/token.")
    return out


def recipe_lines(erows: list[dict]) -> list[str]:
    """What the primary endpoints mean for a Trillion-style recipe (XLDA on packed pretraining
    data), in plain words, from their detections only."""
    by = {r["id"]: r for r in erows}
    e1a, e1b, e2 = by.get("E1a"), by.get("E1b"), by.get("E2")
    out = []
    if e1a and e1b:
        if e1a["detected"] and e1a["mean"] > 0 and e1b["detected"] and e1b["mean"] > 0:
            out.append("- XLDA's transfer grows with related neighbours: packing unrelated "
                       "documents together (what the recipe does without affinity) leaves it "
                       f"{_num(e1b['mean'])} nats/token smaller on Korean. A recipe that relies "
                       "on XLDA should pack translations or related pages side by side "
                       "(--xlda-affinity-key/--xlda-affinity-p) where its data has such links.")
        elif e1a["detected"] and e1a["mean"] > 0:
            out.append("- The transfer is there with affinity packing, but its gain over "
                       "today's packing is not detected at this size.")
        else:
            out.append("- This run gives no evidence that XLDA's cross-language attention "
                       "transfers anything to Korean, with or without affinity packing.")
    if e2:
        if e2["detected"] and e2["mean"] > 0:
            out.append("- XLDA has a price in the weights here: on identical data the Korean "
                       f"model is {_num(e2['mean'])} nats/token worse without context. Weigh "
                       "it against the transfer before adopting XLDA, and test it at scale.")
        elif e2["detected"]:
            out.append(f"- XLDA improves the Korean weights themselves ({_num(e2['mean'])} "
                       "nats/token on identical data): an argument for the recipe.")
        else:
            out.append(f"- No detected price in the Korean weights (A - B within "
                       f"[{_num(e2['t_lo'])}, {_num(e2['t_hi'])}] nats/token).")
    return out


def markdown_table(summary: list[dict], metric: str) -> str:
    """Rows = arms, columns = languages (ko first): ``mean ± std [min, max]``."""
    sel = [s for s in summary if s["metric"] == metric]
    langs = lang_order(s["lang"] for s in sel)
    arms = sorted({s["arm"] for s in sel})
    cell = {(s["arm"], s["lang"]): s for s in sel}
    lines = ["| arm | " + " | ".join(langs) + " |", "|---|" + "---|" * len(langs)]
    for arm in arms:
        cells = ["-" if (arm, l) not in cell else
                 f"{cell[(arm, l)]['mean']:.4f} ± {cell[(arm, l)]['std']:.4f} "
                 f"[{cell[(arm, l)]['min']:.4f}, {cell[(arm, l)]['max']:.4f}]" for l in langs]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def probe_table(rows: list[dict], subset: str = "") -> str:
    """Per (arm, language): mean over seeds of the three probe losses, (b)-(a) and (c)-(a)."""
    sfx = f"@{subset}" if subset else ""
    tr, cx = values(rows, "transfer" + sfx), values(rows, "context" + sfx)
    conds = {c: values(rows, f"probe_{c}{sfx}") for c in ("translation", "unrelated", "none")}
    tokens = {(r["arm"], r["lang"]): int(r["tokens"]) for r in rows
              if r["metric"] == "probe_translation" + sfx and r["eval_mask"] == r["mask"]}
    lines = ["| arm | lang | tokens | (a) translation | (b) unrelated | (c) none | (b)-(a) mean ± "
             "std | (c)-(a) | seeds (b)-(a) > 0 |", "|---|---|---|---|---|---|---|---|---|"]
    for arm in sorted({k[0] for k in tr}):
        for lang in lang_order(k[2] for k in tr):
            ks = sorted(k for k in tr if k[0] == arm and k[2] == lang)
            if not ks:
                continue
            def mean(d, fmt):  # "-" where a run lacks the condition
                xs = [d[k] for k in ks if k in d]
                return fmt.format(mean_std(xs)[0]) if len(xs) == len(ks) else "-"

            t, sd = mean_std([tr[k] for k in ks])
            lines.append(f"| {arm} | {lang} | {tokens.get((arm, lang), 0):,} | "
                         + " | ".join(mean(conds[c], "{:.4f}") for c in conds)
                         + f" | {t:+.4f} ± {sd:.4f} | {mean(cx, '{:+.4f}')} | "
                         f"{sum(tr[k] > 0 for k in ks)}/{len(ks)} |")
    return "\n".join(lines)


def cross_mask_table(rows: list[dict], lang: str, metric: str = "packed") -> str:
    """Rows = arm (its training mask), columns = evaluation mask: mean ± std over seeds."""
    sel = [r for r in rows if r["metric"] == metric and r["lang"] == lang]
    arms = sorted({(r["arm"], r["mask"]) for r in sel})
    evals = list(dict.fromkeys(r["eval_mask"] for r in sel))
    lines = ["| arm (trained with) \\ evaluated | " + " | ".join(evals) + " |",
             "|---|" + "---|" * len(evals)]
    for arm, mask in arms:
        cells = []
        for e in evals:
            xs = [float(r["loss"]) for r in sel if r["arm"] == arm and r["eval_mask"] == e]
            cells.append(f"{mean_std(xs)[0]:.4f} ± {mean_std(xs)[1]:.4f}" if xs else "-")
        lines.append(f"| {arm} ({mask}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(erows: list[dict], rows: list[dict], path: Path) -> Path:
    """Two panels: the probe transfer (b)-(a) per arm and language, and the single-document loss
    differences A - B and A - C per language. Each marker: the mean over seeds with its t 95%
    interval; dots: the seeds; a dashed line at 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from xlda.ablation.stats import t_interval

    tr = values(rows, "transfer")
    iso = values(rows, "isolated")
    arms = sorted({k[0] for k in iso})
    panels = []
    sel = []
    for arm in arms:
        for lang in lang_order(k[2] for k in tr):
            xs = [v for k, v in sorted(tr.items()) if k[0] == arm and k[2] == lang]
            if xs:
                sel.append((arm, lang, xs))
    panels.append(("probe transfer (b)-(a), per arm (E1)", sel))
    sel = []
    for other in [a for a in ("B", "C") if a in arms and "A" in arms]:
        for lang in lang_order(k[2] for k in iso):
            xs = Endpoint("x", "isolated", lang, "A", other).sample(rows)
            if xs:
                sel.append((f"A-{other}", lang, xs))
    panels.append(("single-document loss: A - B (E2), A - C", sel))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), squeeze=False)
    for ax, (title, sel) in zip(axes[0], panels):
        langs = lang_order(l for _, l, _ in sel)
        series = list(dict.fromkeys(s for s, _, _ in sel))
        width = 0.8 / max(len(series), 1)
        for j, name in enumerate(series):
            for i, lang in enumerate(langs):
                xs = next((x for s, l, x in sel if s == name and l == lang), None)
                if xs is None:
                    continue
                x = i + (j - (len(series) - 1) / 2) * width
                m = mean_std(xs)[0]
                lo, hi = t_interval(xs)
                lo, hi = (lo, hi) if math.isfinite(lo) else (m, m)
                c = f"C{ARM_COLOURS.get(name[-1] if '-' in name else name, j)}"
                ax.errorbar([x], [m], yerr=[[m - lo], [hi - m]], fmt="o", color=c, capsize=3,
                            lw=1, label=name if i == 0 else None)
                ax.plot([x] * len(xs), xs, ".", color="0.4", ms=3)
        ax.axhline(0.0, color="k", ls="--", lw=0.8)
        ax.set_xticks(range(len(langs)), langs)
        ax.set_ylabel("nats/token")
        ax.set_title(title + "\nwhiskers: t 95% over seeds", fontsize=9)
        if series:
            ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
