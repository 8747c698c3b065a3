"""Statistics on synthetic inputs with a known answer: the bootstrap interval of a mean and the
paired differences against the baseline mask."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xlda.ablation.stats import bootstrap_ci, mean_std, paired, t975, t_interval, verdict


def test_mean_std_exact():
    assert mean_std([1.0, 2.0, 4.0]) == (pytest.approx(7 / 3), pytest.approx(math.sqrt(7 / 3)))
    assert mean_std([5.0]) == (5.0, 0.0)
    with pytest.raises(ValueError):
        mean_std([])


def test_bootstrap_of_a_constant_is_that_constant():
    assert bootstrap_ci([0.25] * 5) == (0.25, 0.25)


def test_bootstrap_of_two_values_has_the_exact_resampling_distribution():
    # resampled means of [0, 1] (n=2): 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4, so the 2.5%
    # and 97.5% quantiles are 0 and 1, and an 80% interval (10%, 90%) is still 0 and 1 ...
    assert bootstrap_ci([0.0, 1.0]) == (0.0, 1.0)
    # ... while a 40% interval (30%, 70%) sits on the middle atom.
    assert bootstrap_ci([0.0, 1.0], level=0.4) == (0.5, 0.5)


def test_bootstrap_is_deterministic_and_rejects_bad_input():
    x = [0.3, -0.1, 0.2, 0.5, 0.0]
    assert bootstrap_ci(x) == bootstrap_ci(list(x))
    assert bootstrap_ci(x, seed=1) != bootstrap_ci(x, seed=2)
    with pytest.raises(ValueError):
        bootstrap_ci([])
    with pytest.raises(ValueError):
        bootstrap_ci([1.0], level=1.5)


def test_bootstrap_interval_covers_the_true_mean_about_95_percent_of_the_time():
    """Known answer: normal samples (n=40) with mean 0.3; over 300 replicates a 95% interval
    should cover 0.3 in roughly 95% (the percentile bootstrap runs slightly under at small n)."""
    rng = np.random.default_rng(0)
    hits = 0
    for r in range(300):
        lo, hi = bootstrap_ci(rng.normal(0.3, 1.0, 40), n_boot=2000, seed=r)
        hits += lo <= 0.3 <= hi
    assert 0.89 <= hits / 300 <= 0.99


def test_t_interval_exact_and_quantiles_match_scipy():
    lo, hi = t_interval([1.0, 2.0, 3.0])  # mean 2, sd 1, t(0.975, 2) = 4.3027
    assert (lo, hi) == (pytest.approx(2 - 4.3027 / math.sqrt(3)), pytest.approx(2 + 4.3027 / math.sqrt(3)))
    assert t_interval([1.0]) == (-math.inf, math.inf)
    t = pytest.importorskip("scipy.stats").t
    for df in (1, 4, 30, 31, 60, 1000):
        assert t975(df) == pytest.approx(t.ppf(0.975, df), abs=2e-4)


def test_at_five_seeds_the_bootstrap_alone_over_claims_and_the_verdict_does_not():
    """Known answer: no true difference (normal, mean 0), n = 5 seeds. The percentile bootstrap
    excludes 0 far more often than 5%; the verdict (bootstrap AND t) stays at <= ~5%."""
    rng = np.random.default_rng(1)
    boot = both = 0
    reps = 1000
    for r in range(reps):
        d = rng.normal(0.0, 1.0, 5)
        v = {("x", s, "ko"): float(x) for s, x in enumerate(d, 1)}
        v.update({("document", s, "ko"): 0.0 for s in range(1, 6)})
        row = paired(v, "document")[0]
        boot += row["ci_lo"] > 0 or row["ci_hi"] < 0
        both += row["excludes_zero"]
    assert boot / reps > 0.10
    assert both / reps <= 0.07


def test_a_diverged_run_is_an_error_not_a_verdict():
    v = {("xlda", 1, "ko"): float("nan"), ("document", 1, "ko"): 3.0}
    with pytest.raises(ValueError, match="xlda seed 1 ko: value nan is not finite"):
        paired(v, "document")
    with pytest.raises(ValueError, match="non-finite"):
        bootstrap_ci([1.0, float("inf")])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-10, 10), min_size=1, max_size=12))
def test_interval_lies_within_the_data_range_and_holds_the_mean_for_symmetric_data(xs):
    lo, hi = bootstrap_ci(xs, n_boot=500)
    assert min(xs) - 1e-9 <= lo <= hi <= max(xs) + 1e-9
    sym = xs + [-x for x in xs]  # mean 0, resampling distribution symmetric about 0
    lo, hi = bootstrap_ci(sym, n_boot=500)
    assert lo <= 1e-9 and hi >= -1e-9


def _values(shift: dict, noise=(0.0, 0.4, -0.3, 0.1, 0.2)):
    """Losses whose seed-to-seed spread is large but shared by every mask: mask m's loss on seed
    s is 3 + noise[s] + shift[m] (+ a tiny seed-specific wobble for xlda)."""
    v = {}
    for s, z in enumerate(noise, 1):
        for m, d in shift.items():
            v[(m, s, "ko")] = 3.0 + z + d + (0.001 * (-1) ** s if m == "xlda" else 0.0)
    return v


def test_paired_differences_recover_a_known_shift_despite_seed_noise():
    v = _values({"document": 0.0, "xlda": -0.05, "causal": 0.0})
    rows = {r["mask"]: r for r in paired(v, "document")}
    x = rows["xlda"]
    # differences: -0.05 -/+ 0.001 alternating: -0.051, -0.049, -0.051, -0.049, -0.051
    assert x["diffs"] == pytest.approx([-0.051, -0.049, -0.051, -0.049, -0.051])
    assert x["mean"] == pytest.approx(-0.0502) and x["n"] == 5 and x["lower"] == 5
    assert -0.051 - 1e-12 <= x["ci_lo"] <= x["ci_hi"] <= -0.049 + 1e-12
    assert x["excludes_zero"] and verdict(x) == "excludes 0: xlda lower"
    c = rows["causal"]  # identical to the baseline: every difference is exactly 0
    assert (c["mean"], c["ci_lo"], c["ci_hi"], c["excludes_zero"], c["lower"]) == (0, 0, 0, False, 0)
    assert verdict(c) == "includes 0: not detected"
    # unpaired, the same numbers would drown in the seed noise (std of the losses ~0.27)
    assert mean_std([v[("xlda", s, "ko")] for s in range(1, 6)])[1] > 5 * abs(x["mean"])


def test_paired_uses_only_seeds_both_masks_have_and_every_key():
    v = _values({"document": 0.0, "xlda": 0.1})
    del v[("document", 3, "ko")]
    v[("xlda", 1, "en")], v[("document", 1, "en")] = 2.0, 1.5
    rows = paired(v, "document")
    assert [(r["mask"], r["key"], r["n"]) for r in rows] == [("xlda", "ko", 4), ("xlda", "en", 1)]
    assert rows[1]["mean"] == 0.5 and rows[1]["std"] == 0.0
    assert (rows[1]["ci_lo"], rows[1]["ci_hi"]) == (0.5, 0.5)
