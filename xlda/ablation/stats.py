"""Statistics of the ablation: per-seed paired differences against a baseline mask, their
bootstrap 95% intervals, and the t-interval that keeps the verdict honest at few seeds.

Same seed = same data order and same initial weights for every mask (runs.py), so the difference
``metric(mask, seed) - metric(baseline, seed)`` removes what seeds share. The interval is the
percentile bootstrap of the mean difference over seeds (resampling seeds with replacement), with a
fixed generator seed so a report regenerates to the same digits.

At 5 seeds the percentile bootstrap is too narrow: with no true difference its 95% interval
excludes 0 in ~15% of runs (measured in tests/ablation/test_stats.py), because it can never be
wider than the spread of 5 values. A difference therefore counts as detected only when BOTH the
bootstrap and the Student-t 95% interval exclude 0; that rule's false-positive rate is <= 5%
for normal differences (the t-interval's exactly, the intersection's at most).
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


# Two-sided 95% Student-t quantiles t(0.975, df) for df = 1..30 (beyond: Cornish-Fisher).
_T975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
         2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
         2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423)


def t975(df: int) -> float:
    """t(0.975, df): the 95% two-sided Student-t quantile."""
    if df < 1:
        raise ValueError(f"t975: df {df} < 1")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)


def t_interval(values) -> tuple[float, float]:
    """mean ± t(0.975, n-1) · sd / sqrt(n); a single value gives (-inf, inf): nothing is known."""
    x = [float(v) for v in values]
    if len(x) < 2:
        return -math.inf, math.inf
    m, sd = mean_std(x)
    h = t975(len(x) - 1) * sd / math.sqrt(len(x))
    return m - h, m + h


def bootstrap_ci(values, n_boot: int = N_BOOT, level: float = LEVEL,
                 seed: int = BOOT_SEED) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (resampled with replacement)."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError("bootstrap_ci: need a non-empty 1-D sequence")
    if not np.isfinite(x).all():
        raise ValueError(f"bootstrap_ci: non-finite values {x.tolist()} (a diverged run?)")
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
    the mask is lower (``lower``, a loss "win"). ``excludes_zero`` needs the bootstrap AND the
    t-interval to exclude 0 (module docstring). A non-finite value (a diverged run) is an error
    naming the run, not a silent "includes 0"."""
    for (m, s, k), v in values.items():
        if not math.isfinite(v):
            raise ValueError(f"{m} seed {s} {k}: value {v} is not finite (did the run diverge?)")
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
            tlo, thi = t_interval(d)
            out.append({"mask": mask, "baseline": baseline, "key": key, "n": len(d),
                        "mean": m, "std": sd, "ci_lo": lo, "ci_hi": hi, "t_lo": tlo, "t_hi": thi,
                        "excludes_zero": excludes_zero(lo, hi) and excludes_zero(tlo, thi),
                        "lower": sum(x < 0 for x in d), "diffs": d})
    return out


def excludes_zero(lo: float, hi: float) -> bool:
    return bool(lo > 0 or hi < 0)


def verdict(row: dict) -> str:
    """Plain words for one paired row."""
    if row["excludes_zero"]:
        side = "lower" if row["ci_hi"] < 0 else "higher"
        return f"excludes 0: {row['mask']} {side}"
    if excludes_zero(row["ci_lo"], row["ci_hi"]):
        return "bootstrap interval excludes 0 but the t-interval does not: not detected"
    return "includes 0: not detected"
