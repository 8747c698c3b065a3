"""Statistics on synthetic inputs with a known answer: mean and t interval, the exact t-test
p-value, Holm's correction."""
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xlda.ablation.stats import mean_std, t975, t_interval, t_test


def test_mean_std_exact():
    assert mean_std([1.0, 2.0, 4.0]) == (pytest.approx(7 / 3), pytest.approx(math.sqrt(7 / 3)))
    assert mean_std([5.0]) == (5.0, 0.0)
    with pytest.raises(ValueError):
        mean_std([])


def test_t_interval_exact_and_quantiles_match_scipy():
    lo, hi = t_interval([1.0, 2.0, 3.0])  # mean 2, sd 1, t(0.975, 2) = 4.3027
    assert (lo, hi) == (pytest.approx(2 - 4.3027 / math.sqrt(3)), pytest.approx(2 + 4.3027 / math.sqrt(3)))
    assert t_interval([1.0]) == (-math.inf, math.inf)
    t = pytest.importorskip("scipy.stats").t
    for df in (1, 4, 30, 31, 60, 1000):
        assert t975(df) == pytest.approx(t.ppf(0.975, df), abs=2e-4)


def test_t_p_value_is_exact_at_the_tabled_quantiles_and_matches_scipy():
    from xlda.ablation.stats import t_two_sided_p

    for df in range(1, 31):  # t(0.975, df) leaves 5% in the two tails, to the table's 4 digits
        assert t_two_sided_p(t975(df), df) == pytest.approx(0.05, abs=2e-5), df
    assert t_two_sided_p(0.0, 3) == 1.0
    assert t_two_sided_p(1.0, 1) == pytest.approx(0.5)  # Cauchy: P(|T| > 1) = 1/2
    assert t_two_sided_p(math.sqrt(2), 2) == pytest.approx(1 - math.sqrt(0.5))  # 1 - t/sqrt(t^2+2)
    scipy = pytest.importorskip("scipy.stats")
    for df in (1, 2, 3, 4, 7, 12):
        for t in (0.1, 0.9, 2.0, 3.7, 11.0):
            assert t_two_sided_p(t, df) == pytest.approx(2 * scipy.t.sf(t, df), rel=1e-9)
            assert t_two_sided_p(-t, df) == t_two_sided_p(t, df)


def test_t_test_exact_and_degenerate_cases():
    r = t_test([0.3, 0.1, 0.2])
    assert r["mean"] == pytest.approx(0.2) and r["t"] == pytest.approx(math.sqrt(12))
    assert r["p"] == pytest.approx(1 - math.sqrt(12 / 14))
    assert t_test([0.0, 0.0, 0.0])["p"] == 1.0  # a mask-free metric: no difference at all
    assert t_test([0.5, 0.5])["p"] == 0.0 and t_test([0.5, 0.5])["t"] == math.inf
    assert t_test([1.0])["p"] == 1.0  # one seed: nothing known


def test_holm_exact_and_never_below_the_raw_p():
    from xlda.ablation.stats import holm

    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> monotone 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == [1.0, 1.0] and holm([]) == []


@given(st.lists(st.floats(0, 1), min_size=1, max_size=12))
def test_holm_is_monotone_in_the_raw_order(ps):
    from xlda.ablation.stats import holm

    adj = holm(ps)
    assert all(a >= p - 1e-15 and a <= 1.0 for a, p in zip(adj, ps))
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    assert all(adj[order[i]] <= adj[order[i + 1]] for i in range(len(ps) - 1))


def test_a_diverged_run_is_an_error_not_a_verdict():
    with pytest.raises(ValueError, match="non-finite.*diverged"):
        t_test([0.1, float("nan"), 0.2])
