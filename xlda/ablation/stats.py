"""Statistics of the ablation: per-seed paired differences against a baseline mask and their
bootstrap 95% intervals.

Same seed = same data order and same initial weights for every mask (runs.py), so the difference
``metric(mask, seed) - metric(baseline, seed)`` removes what seeds share. The interval is the
percentile bootstrap of the mean difference over seeds (resampling seeds with replacement), with a
fixed generator seed so a report regenerates to the same digits. With n seeds a percentile
bootstrap cannot be wider than the range of the differences; it is the standard small-sample
choice, not an exact test, and RESULTS.md says so.
"""
from __future__ import annotations

import math

import numpy as np

N_BOOT = 10000
LEVEL = 0.95
BOOT_SEED = 20261130


def mean_std(xs) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0.0 for a single value)."""
    xs = [float(x) for x in xs]
    if not xs:
        raise ValueError("mean_std: no values")
    m = sum(xs) / len(xs)
    if len(xs) == 1:
        return m, 0.0
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def bootstrap_ci(values, n_boot: int = N_BOOT, level: float = LEVEL,
                 seed: int = BOOT_SEED) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (resampled with replacement)."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError("bootstrap_ci: need a non-empty 1-D sequence")
    if not 0 < level < 1:
        raise ValueError(f"bootstrap_ci: level {level} not in (0, 1)")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    a = (1 - level) / 2
    lo, hi = np.quantile(means, [a, 1 - a])
    return float(lo), float(hi)


def paired(values: dict, baseline: str, keys=None) -> list[dict]:
    """Paired differences vs ``baseline``.

    ``values[(mask, seed, key)]`` is one run's metric for ``key`` (a language, or a language and
    a probe quantity). For every other mask and every key: the differences on the seeds both
    have, their mean and std, the bootstrap interval, whether it excludes 0, and how many seeds
    the mask is lower (``lower``, a loss "win")."""
    masks = [m for m in dict.fromkeys(k[0] for k in values) if m != baseline]
    keys = list(dict.fromkeys(k[2] for k in values)) if keys is None else list(keys)
    out = []
    for mask in masks:
        for key in keys:
            seeds = sorted(s for (m, s, k) in values if m == mask and k == key
                           and (baseline, s, key) in values)
            if not seeds:
                continue
            d = [values[(mask, s, key)] - values[(baseline, s, key)] for s in seeds]
            m, sd = mean_std(d)
            lo, hi = bootstrap_ci(d)
            out.append({"mask": mask, "baseline": baseline, "key": key, "n": len(d),
                        "mean": m, "std": sd, "ci_lo": lo, "ci_hi": hi,
                        "excludes_zero": bool(lo > 0 or hi < 0),
                        "lower": sum(x < 0 for x in d), "diffs": d})
    return out


def verdict(row: dict) -> str:
    """Plain words for one paired row."""
    if not row["excludes_zero"]:
        return "interval includes 0: no difference detected"
    side = "lower" if row["ci_hi"] < 0 else "higher"
    return f"interval excludes 0: {row['mask']} is {side} than {row['baseline']}"
