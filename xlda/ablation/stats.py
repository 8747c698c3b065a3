"""Statistics of the ablation: per-seed values and paired differences, the Student-t 95%
interval and the two-sided t-test p-value of their mean, and Holm's correction for a family.

Same seed = same initial weights for every arm, and A and B share their batches (runs.py), so the
difference ``metric(arm, seed) - metric(other, seed)`` removes what seeds share. At a handful of
seeds the t-interval is the honest one: ablation v2 measured that the percentile bootstrap's 95%
interval excludes 0 in ~15% of 5-seed runs with no true difference (it can never be wider than
the spread of the values), so v3 reads t intervals and t-test p-values only. The p-value is exact
for integer degrees of freedom (a finite series, no special functions needed).
"""
from __future__ import annotations

import math



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


def t_two_sided_p(t: float, df: int) -> float:
    """Two-sided p-value of Student's t with integer ``df`` (exact: Abramowitz & Stegun 26.7.3
    and 26.7.4, the finite series in cos(theta), theta = atan(t / sqrt(df)))."""
    if df < 1:
        raise ValueError(f"t_two_sided_p: df {df} < 1")
    if not math.isfinite(t):
        return 0.0 if not math.isnan(t) else 1.0
    th = math.atan(abs(t) / math.sqrt(df))
    c2, sn = math.cos(th) ** 2, math.sin(th)
    if df % 2:  # odd: A = (2/pi)(theta + sin cos (1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ...))
        term, acc = 1.0, 1.0 if df > 1 else 0.0
        for k in range(1, (df - 1) // 2):
            term *= 2 * k / (2 * k + 1) * c2
            acc += term
        a = 2 / math.pi * (th + (sn * math.cos(th) * acc if df > 1 else 0.0))
    else:  # even: A = sin (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...)
        term, acc = 1.0, 1.0
        for k in range(1, df // 2):
            term *= (2 * k - 1) / (2 * k) * c2
            acc += term
        a = sn * acc
    return min(max(1.0 - a, 0.0), 1.0)


def t_test(values) -> dict:
    """One-sample t-test of mean 0 (paired differences): mean, t 95% interval, t, p."""
    x = [float(v) for v in values]
    if not all(math.isfinite(v) for v in x):
        raise ValueError(f"t_test: non-finite values {x} (a diverged run?)")
    m, sd = mean_std(x)
    lo, hi = t_interval(x)
    if len(x) < 2:
        return {"n": len(x), "mean": m, "t_lo": lo, "t_hi": hi, "t": math.nan, "p": 1.0}
    if sd > 0:
        t = m / (sd / math.sqrt(len(x)))
        p = t_two_sided_p(t, len(x) - 1)
    else:  # every seed the same difference: certain if not 0 (a mask-free metric: exactly 0)
        t, p = (math.copysign(math.inf, m), 0.0) if m else (0.0, 1.0)
    return {"n": len(x), "mean": m, "t_lo": lo, "t_hi": hi, "t": t, "p": p}


def holm(pvalues: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as given): the family-wise error of
    rejecting every adjusted p < alpha is at most alpha."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    out = [0.0] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        out[i] = running
    return out
