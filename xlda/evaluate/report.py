"""What a suite run reports: one score per task (its suite metric), per-language tables, the
macro average papers use (the mean of task scores, each benchmark counted once) next to the micro
average lm-eval's groups use (every item counted once), and cross-lingual consistency.

Cross-lingual consistency (the Trillion-7B report's metric): for a parallel multiple-choice
pair (the same items, in the same order, in two languages) the share of items whose chosen
answer (the highest log-likelihood choice) is the same in both languages.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from xlda.evaluate.session import EvalError


@dataclass(frozen=True)
class TaskScore:
    task: str
    language: str
    metric: str
    score: float
    n: int  # items scored (a group: over its tasks)


def _entry(results: dict, name: str) -> dict:
    for section in ("results", "groups"):
        got = (results.get(section) or {}).get(name)
        if got:
            return got
    raise EvalError(f"lm-eval returned no results for {name!r}")


def _n(results: dict, name: str) -> int:
    ns = results.get("n-samples") or {}
    if name in ns:
        return int(ns[name]["effective"])
    children = (results.get("group_subtasks") or {}).get(name) or []
    return sum(_n(results, c) for c in children)


def task_scores(results: dict, suite) -> list:
    out = []
    for t in suite.tasks:
        entry = _entry(results, t.task)
        metric = t.metric or next((k for k in entry if "," in k and "_stderr" not in k), None)
        if metric not in entry:
            have = sorted(k for k in entry if "," in k and "_stderr" not in k)
            raise EvalError(f"suite {suite.name}: task {t.task} reports no {t.metric!r} "
                            f"(it reports {have}); fix its metric in {suite.path}")
        out.append(TaskScore(t.task, t.language, metric, float(entry[metric]),
                             _n(results, t.task)))
    return out


def averages(scores: list) -> dict:
    """{"macro": mean of scores, "micro": item-weighted mean, "n": items}."""
    n = sum(s.n for s in scores)
    return {"macro": sum(s.score for s in scores) / len(scores) if scores else math.nan,
            "micro": sum(s.score * s.n for s in scores) / n if n else math.nan, "n": n}


def by_language(scores: list) -> dict:
    langs: dict = {}
    for s in scores:
        langs.setdefault(s.language, []).append(s)
    return {lang: {**averages(v), "tasks": len(v)} for lang, v in langs.items()}


def chosen_answers(samples: list) -> dict:
    """doc_id -> index of the highest log-likelihood choice (lm-eval's multiple-choice resps)."""
    out = {}
    for s in samples:
        lls = [r[0] if isinstance(r, (list, tuple)) else r for r in s["filtered_resps"]]
        out[int(s["doc_id"])] = max(range(len(lls)), key=lambda i: lls[i])
    return out


def consistency(samples_a: list, samples_b: list, a: str, b: str) -> dict:
    ca, cb = chosen_answers(samples_a), chosen_answers(samples_b)
    if set(ca) != set(cb):
        raise EvalError(f"consistency {a} / {b}: the tasks scored different items "
                        f"({len(ca)} vs {len(cb)}): they must be the same items (parallel sets; "
                        "the same --limit)")
    if not ca:
        raise EvalError(f"consistency {a} / {b}: no items")
    same = sum(ca[d] == cb[d] for d in ca)
    return {"pair": [a, b], "consistency": same / len(ca), "n": len(ca)}


def suite_report(results: dict, suite) -> dict:
    scores = task_scores(results, suite)
    samples = results.get("samples") or {}
    pairs = []
    for a, b in suite.consistency:
        if a not in samples or b not in samples:
            raise EvalError(f"consistency {a} / {b}: per-item results are missing (a group? "
                            "pairs must be single multiple-choice tasks)")
        pairs.append(consistency(samples[a], samples[b], a, b))
    return {"suite": suite.name, "tasks": [s.__dict__ for s in scores],
            "languages": by_language(scores), "average": averages(scores), "consistency": pairs}


def format_report(rep: dict) -> str:
    lines = [f"suite {rep['suite']}", f"{'task':<34} {'lang':<5} {'metric':<26} {'score':>7} {'n':>7}"]
    for t in rep["tasks"]:
        lines.append(f"{t['task']:<34} {t['language']:<5} {t['metric']:<26} "
                     f"{t['score']:>7.4f} {t['n']:>7}")
    lines.append(f"{'language':<10} {'tasks':>5} {'macro':>8} {'micro':>8} {'n':>7}")
    for lang, v in rep["languages"].items():
        lines.append(f"{lang:<10} {v['tasks']:>5} {v['macro']:>8.4f} {v['micro']:>8.4f} {v['n']:>7}")
    a = rep["average"]
    lines.append(f"{'all':<10} {len(rep['tasks']):>5} {a['macro']:>8.4f} {a['micro']:>8.4f} {a['n']:>7}"
                 "   (macro: mean of task scores; micro: item-weighted)")
    for c in rep["consistency"]:
        lines.append(f"consistency {c['pair'][0]} / {c['pair'][1]}: {c['consistency']:.4f} "
                     f"({c['n']} items)")
    return "\n".join(lines)
