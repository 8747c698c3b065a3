"""Affinity packing (xlda/data/packing.py, packing_ref._affinity): a document is followed, in
its window, by a member of its group in another language; every document still once per epoch,
the shares and the >= 2-languages guarantee as without it; p = 0 is the index without affinity
bit for bit; the compiled walk equals the Python twin; the measured rate is what the walk did."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.data.test_packing import _lens, check_invariants, feasible
from xlda.data import packing
from xlda.data import packing_ref as ref
from xlda.data.packing import affinity_stats, affinity_tables, build_packed_index


def _aligned(n_groups, langs, rng, lo=20, hi=400, extra_en=0):
    """Language l holds one document per group (a translation set) in file order, English
    ``extra_en`` ungrouped pages more; group ids are hashes (any int64 but 0)."""
    lengths, groups = [], []
    for l in range(langs):
        n = n_groups + (extra_en if l == 0 else 0)
        lengths.append(rng.integers(lo, hi, n).astype(np.int32))
        g = (np.arange(1, n + 1, dtype=np.int64) * 0x9E3779B1) ^ 0x5BD1E995
        g[n_groups:] = 0
        groups.append(g)
    return lengths, groups


def _ids(lengths):
    return [range(len(x)) for x in lengths]  # dataset ids = local ids (check_invariants)


def test_p0_is_the_index_without_affinity_bit_for_bit():
    lengths, groups = _aligned(200, 4, np.random.default_rng(1))
    probs = [0.55, 0.15, 0.15, 0.15]
    plain = build_packed_index(lengths, _ids(lengths), probs, 0.5, 256, 300, 3)
    zero = build_packed_index(lengths, _ids(lengths), probs, 0.5, 256, 300, 3, groups=groups,
                              affinity_p=0.0)
    for name in packing.ARRAY_NAMES:
        assert np.array_equal(getattr(plain, name), getattr(zero, name)), name
    assert plain.stats == zero.stats and "affinity_p" not in zero.stats


def test_affinity_pairs_translations_and_reports_the_rate():
    """A realistic window (S = 2048, 20-400-token pages, 4 languages, a third of the English
    pages without translations): the rate rises with p, the walk's swaps are all measured as
    pairs on the index, the shares stay at P."""
    lengths, groups = _aligned(400, 4, np.random.default_rng(0), extra_en=800)
    probs = [0.7, 0.1, 0.1, 0.1]
    rates = []
    for p in (0.0, 0.5, 1.0):
        idx = build_packed_index(lengths, _ids(lengths), probs, 0.5, 2048, 150, 7,
                                 groups=groups, affinity_p=p)
        check_invariants(idx, lengths, 2048)
        st_ = idx.stats
        assert max(abs(a - b) for a, b in zip(st_["shares"], probs)) <= 0.01
        if p == 0:
            rates.append(0.0)
            continue
        assert st_["affinity_pairs"] >= st_["affinity_swaps"] > 0
        assert st_["affinity_tries"] >= st_["affinity_swaps"]
        rates.append(st_["affinity_rate"])
        assert "affinity p" in packing.summary_line(st_, 150)
    assert rates[0] < rates[1] < rates[2] and rates[2] > 0.2


def test_affinity_measurement_by_hand():
    """Pieces [en d0 | ko d0 | ko d1 (cut) | en d1 | ja d0], S = 10: en d0 (group A, 4 tokens)
    -> ko d0 (A, 2 tokens) at 4: a pair; ko d0 -> ko d1: same language; ko d1 is cut (3 of 5
    tokens, 6..9) -> en d1 (B): ko d1 did not end; en d1 (B, 1 token at 9) -> ja d0 (B) at 10,
    a window edge: not in one window. One pair of 5 documents started."""
    lengths = [np.array([4, 1], np.int32), np.array([2, 5], np.int32), np.array([6], np.int32)]
    dense = [np.array([0, 1], np.int32), np.array([0, 2], np.int32), np.array([1], np.int32)]
    arrays = {"piece_lang": np.array([0, 1, 1, 0, 2], np.int8),
              "piece_doc": np.array([0, 2, 3, 1, 4]),
              "cut_piece": np.array([2]), "cut_off": np.array([0], np.int32),
              "cut_len": np.array([3], np.int32)}
    id_first = np.array([0, 2, 4])
    got = affinity_stats(arrays, lengths, id_first, dense, 10, 18)
    assert got == {"affinity_pairs": 1, "documents_started": 5, "affinity_rate": 0.2,
                   "affinity_windows": 0.5}  # window 0 of 2


def test_the_swap_by_hand():
    """The walk just finished en d1 (group 7): with p = 1 it finds ko's member of group 7 (local
    doc 2) unread at position 3 of ko's epoch [0 3 1 2], swaps it to the front (ptr 1) and goes
    to ko; the position table follows the swap."""
    lengths = [np.array([5, 5], np.int32), np.array([5, 5, 5, 5], np.int32)]
    groups = [np.array([3, 7]), np.array([1, 3, 7, 9])]
    aff = affinity_tables(groups, lengths, 1.0, 42)
    orders = [np.array([0, 1], np.int32), np.array([0, 3, 1, 2], np.int32)]
    st_ = [0] * (ref.ST_LANG + 6)
    st_[ref.ST_LANG + 0] = 2  # en read d0 and d1
    st_[ref.ST_LANG + 3] = 1  # ko read d0
    m = ref._affinity(st_, [0.5, 0.5], 1e9, orders, lengths, aff, 0, 1)
    assert m == 1 and orders[1].tolist() == [0, 2, 1, 3]
    assert aff[5][1].tolist() == [0, 2, 1, 3]  # where ko documents 0..3 sit now
    assert list(aff[6][:3]) == [1, 1, 1]  # the draw, one try, one swap
    # its group member already read (ptr past it): nothing to bring
    st_[ref.ST_LANG + 3] = 2
    assert ref._affinity(st_, [0.5, 0.5], 1e9, orders, lengths, aff, 0, 1) == -1


corpora = st.lists(
    st.lists(st.integers(0, 90), min_size=1, max_size=25).filter(lambda x: sum(x) > 0),
    min_size=2, max_size=4)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corpus=corpora, S=st.integers(2, 120), rho=st.floats(0.05, 1.0),
       seed=st.integers(0, 2**31), n=st.integers(1, 40), p=st.floats(0.0, 1.0),
       n_groups=st.integers(1, 8), data=st.data())
def test_invariants_and_twins_with_affinity(corpus, S, rho, seed, n, p, n_groups, data):
    """Random corpora, groups (some documents none) and p: every document once per epoch, the
    guarantee, the shares (the build refuses a miss), the compiled walk bit-identical to the
    Python twin, and every swap measured as a pair."""
    w = data.draw(st.lists(st.floats(0.001, 1.0), min_size=len(corpus), max_size=len(corpus)))
    probs = np.array(w) / sum(w)
    if not feasible(probs, S):
        return
    lengths = _lens(corpus)
    groups = [np.array(data.draw(st.lists(st.integers(0, n_groups), min_size=len(c),
                                          max_size=len(c))), dtype=np.int64) for c in corpus]
    ids = [range(len(c)) for c in corpus]
    idx = build_packed_index(lengths, ids, probs, rho, S, n, seed, backend="python",
                             groups=groups, affinity_p=p)
    check_invariants(idx, lengths, S)
    if p > 0:
        assert idx.stats["affinity_pairs"] >= idx.stats["affinity_swaps"]
    try:
        from xlda.data import _packing_kernel  # noqa: F401
    except ImportError:
        return
    c = build_packed_index(lengths, ids, probs, rho, S, n, seed, backend="c", groups=groups,
                           affinity_p=p)
    for name in packing.ARRAY_NAMES:
        assert np.array_equal(getattr(c, name), getattr(idx, name)), name
    assert c.stats == idx.stats


def test_bad_affinity_arguments():
    lengths, groups = _aligned(10, 2, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"--xlda-affinity-p 1.5: must be in \[0, 1\]"):
        build_packed_index(lengths, _ids(lengths), [0.5, 0.5], 0.5, 64, 4, 1, groups=groups,
                           affinity_p=1.5)
    with pytest.raises(ValueError, match="needs the documents' groups"):
        build_packed_index(lengths, _ids(lengths), [0.5, 0.5], 0.5, 64, 4, 1, affinity_p=0.5)
    with pytest.raises(ValueError, match="groups\\[1\\] has 3 entries for 10 documents"):
        build_packed_index(lengths, _ids(lengths), [0.5, 0.5], 0.5, 64, 4, 1,
                           groups=[groups[0], groups[1][:3]], affinity_p=0.5)
