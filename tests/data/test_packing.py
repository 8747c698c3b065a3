"""Invariants of the XLDA packing index, on the numpy builder directly (fast)."""
from collections import defaultdict

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xlda.data.packing import build_packed_index, run_means


def _spans_by_language(idx, n_lang):
    out = defaultdict(list)
    lens = np.diff(np.asarray(idx.span_start))
    for la, d, off, n in zip(idx.span_lang, idx.span_doc, idx.span_offset, lens):
        out[int(la)].append((int(d), int(off), int(n)))
    return [out[l] for l in range(n_lang)]


def check_invariants(idx, lengths, doc_ids, S, extra=1):
    n_lang = len(lengths)
    n_samples = len(idx)
    starts = np.asarray(idx.span_start)
    assert starts[0] == 0 and np.all(np.diff(starts) > 0)
    assert starts[-1] >= n_samples * S + extra
    # every sample: exactly S + extra tokens, >= 2 languages among its S input tokens
    for i in range(n_samples):
        spans = idx.sample_spans(i, S, extra)
        assert sum(s[3] for s in spans) == S + extra
        seen, c = set(), 0
        for la, d, off, n in spans:
            if c < S:
                seen.add(la)
            c += n
        assert len(seen) >= 2, (i, spans)
    # every maximal same-language run is <= S - 1 tokens (the structural guarantee)
    langs = np.asarray(idx.span_lang)
    change = np.nonzero(np.diff(langs) != 0)[0] + 1
    bounds = np.concatenate([[0], change, [langs.size]])
    assert np.max(starts[bounds[1:]] - starts[bounds[:-1]]) <= max(1, S - 1)
    # per language: documents are consumed whole, in order, each exactly once per epoch
    for l, pieces in enumerate(_spans_by_language(idx, n_lang)):
        length_of = dict(zip(map(int, doc_ids[l]), map(int, lengths[l])))
        nonempty = sorted(d for d, n in length_of.items() if n > 0)
        occ, pos = [], None  # (doc, tokens consumed) per document occurrence
        for d, off, n in pieces:
            if off == 0:
                if occ:
                    assert occ[-1][1] == length_of[occ[-1][0]], "document left unfinished"
                occ.append([d, 0])
            else:
                assert occ and occ[-1][0] == d and occ[-1][1] == off, "non-contiguous piece"
            occ[-1][1] += n
            assert off + n <= length_of[d]
        docs = [o[0] for o in occ]
        k = len(nonempty)
        for e in range(0, len(docs), k):
            epoch = docs[e:e + k]
            if len(epoch) == k:
                assert sorted(epoch) == nonempty
            else:
                assert len(set(epoch)) == len(epoch)
    return starts


def token_shares(idx, n_lang):
    lens = np.diff(np.asarray(idx.span_start))
    w = np.bincount(np.asarray(idx.span_lang), weights=lens, minlength=n_lang)
    return w / w.sum()


corpora = st.lists(
    st.lists(st.integers(0, 90), min_size=1, max_size=25).filter(lambda x: sum(x) > 0),
    min_size=2, max_size=4)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corpus=corpora, S=st.integers(2, 80), rho=st.floats(0.05, 1.0),
       seed=st.integers(0, 2**31), n=st.integers(1, 40), data=st.data())
def test_invariants_property(corpus, S, rho, seed, n, data):
    lengths = [np.array(c) for c in corpus]
    ids = [np.arange(100 * l, 100 * l + len(c)) for l, c in enumerate(corpus)]
    w = data.draw(st.lists(st.floats(0.05, 1.0), min_size=len(corpus), max_size=len(corpus)))
    p = np.array(w) / sum(w)
    idx = build_packed_index(lengths, ids, p, rho, S, n, seed)
    check_invariants(idx, lengths, ids, S)
    assert sorted(np.asarray(idx.shuffle)) == list(range(n))


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31), p0=st.floats(0.1, 0.9), rho=st.floats(0.1, 1.0))
def test_shares_converge_to_p(seed, p0, rho):
    """Token share of each language is within 0.02 of P(l) (~4 sd) at >= 6000 runs."""
    rng = np.random.default_rng(seed)
    lengths = [rng.integers(1, 300, size=200), rng.integers(1, 60, size=500),
               rng.integers(1, 150, size=100)]
    p = np.array([p0, (1 - p0) * 0.7, (1 - p0) * 0.3])
    idx = build_packed_index(lengths, [np.arange(len(x)) for x in lengths], p, rho, 256, 1500,
                             seed)
    assert token_shares(idx, 3) == pytest.approx(p, abs=0.02)


def test_shares_tight_on_large_sample():
    """~12k runs: the share's standard deviation is ~0.004; tolerance is ~4 sd."""
    rng = np.random.default_rng(3)
    lengths = [rng.integers(1, 500, size=3000) for _ in range(4)]
    p = np.array([0.4, 0.3, 0.2, 0.1])
    idx = build_packed_index(lengths, [np.arange(3000)] * 4, p, 0.5, 2048, 3000, 7)
    assert token_shares(idx, 4) == pytest.approx(p, abs=0.015)


def test_upsampled_language_repeats_whole_epochs():
    lengths = [np.array([5, 7, 3]), np.array([50] * 40)]
    ids = [np.arange(3), np.arange(40)]
    idx = build_packed_index(lengths, ids, [0.5, 0.5], 0.5, 16, 100, 1)
    check_invariants(idx, lengths, ids, 16)  # 'en' (15 tokens) runs ~50 epochs
    pieces = _spans_by_language(idx, 2)[0]
    assert sum(n for _, _, n in pieces) > 10 * 15


def test_determinism():
    rng = np.random.default_rng(0)
    lengths = [rng.integers(1, 100, size=50) for _ in range(3)]
    ids = [np.arange(50)] * 3
    a = build_packed_index(lengths, ids, [0.5, 0.3, 0.2], 0.5, 64, 200, 42)
    b = build_packed_index(lengths, ids, [0.5, 0.3, 0.2], 0.5, 64, 200, 42)
    c = build_packed_index(lengths, ids, [0.5, 0.3, 0.2], 0.5, 64, 200, 43)
    for name, x in a.arrays().items():
        np.testing.assert_array_equal(x, b.arrays()[name])
    assert not np.array_equal(a.span_doc, c.span_doc)
    assert not np.array_equal(a.shuffle, c.shuffle)


def test_rho_controls_switching():
    """Higher rho -> more language switches per document (runs hold ~1/rho documents)."""
    lengths = [np.full(400, 20), np.full(400, 20)]
    ids = [np.arange(400)] * 2
    runs = []
    for rho in (0.2, 1.0):
        idx = build_packed_index(lengths, ids, [0.5, 0.5], rho, 4096, 3, 1)
        runs.append(int(np.sum(np.diff(np.asarray(idx.span_lang)) != 0)) + 1)
    assert runs[1] > 3 * runs[0]
    mu = run_means(np.array([0.5, 0.5]), np.array([20.0, 20.0]), 0.2, 4096)
    assert mu == pytest.approx([100.0, 100.0])  # 1/rho = 5 documents of 20 tokens


def _kernel_or_skip():
    return pytest.importorskip("xlda.data._packing_kernel",
                               reason="compiled packing loops not built (pip install -e .)")


def _assert_same(a, b):
    for name, x in a.arrays().items():
        y = b.arrays()[name]
        assert x.dtype == y.dtype and np.array_equal(x, y), name


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corpus=corpora, S=st.integers(2, 80), rho=st.floats(0.05, 1.0),
       seed=st.integers(0, 2**31), n=st.integers(1, 40), ranged=st.booleans(), data=st.data())
def test_compiled_loops_match_numpy(corpus, S, rho, seed, n, ranged, data):
    """The optional C loops give bit-identical indexes (values and dtypes), for id arrays and
    id ranges, with empty documents and languages at P = 0."""
    kern = _kernel_or_skip()
    lengths = [np.array(c) for c in corpus]
    ids = [range(100 * l, 100 * l + len(c)) if ranged else np.arange(100 * l, 100 * l + len(c))
           for l, c in enumerate(corpus)]
    w = data.draw(st.lists(st.floats(0.05, 1.0), min_size=len(corpus), max_size=len(corpus)))
    if len(corpus) > 2 and data.draw(st.booleans()):
        w[data.draw(st.integers(0, len(corpus) - 1))] = 0.0
    p = np.array(w) / sum(w)
    a = build_packed_index(lengths, ids, p, rho, S, n, seed, backend="numpy")
    b = build_packed_index(lengths, ids, p, rho, S, n, seed, backend="c")
    _assert_same(a, b)
    _assert_same(a, build_packed_index(lengths, ids, p, rho, S, n, seed))  # default: c
    assert kern is not None


def test_compiled_loops_match_numpy_scattered_ids_and_int64_positions():
    _kernel_or_skip()
    rng = np.random.default_rng(4)
    lengths = [rng.integers(0, 50, size=300), rng.integers(1, 30, size=200)]
    ids = [rng.permutation(10**6)[:300], np.arange(200) * 7 + 3]  # not contiguous
    _assert_same(build_packed_index(lengths, ids, [0.6, 0.4], 0.5, 128, 200, 5, backend="c"),
                 build_packed_index(lengths, ids, [0.6, 0.4], 0.5, 128, 200, 5,
                                    backend="numpy"))
    many = [rng.integers(1, 900, size=n) for n in (5000, 3000, 4000)]  # long interleaved merges
    _assert_same(*(build_packed_index(many, [range(len(x)) for x in many], [0.5, 0.2, 0.3], 0.5,
                                      1024, 4000, 2, backend=b) for b in ("c", "numpy")))
    big = [np.full(3, 2**30), np.full(2, 2**30)]  # streams > 2**31 tokens: int64 positions
    idx = [build_packed_index(big, [range(3), range(2)], [0.5, 0.5], 0.5, 64, 5, 1, backend=b)
           for b in ("c", "numpy")]
    _assert_same(*idx)
    assert idx[0].run_start.dtype == np.int64 and idx[0].doc_end.dtype == np.int64
    for i in range(5):
        spans = idx[0].sample_spans(i, 64)
        assert sum(s[3] for s in spans) == 65 and len({s[0] for s in spans}) == 2


def test_lazy_sample_spans_match_the_materialised_stream():
    """sample_spans (binary search at read time) and spans() (whole stream) agree: consecutive
    samples' spans, without the extra token, concatenate to the stream's spans."""
    rng = np.random.default_rng(9)
    lengths = [rng.integers(0, 70, size=60) for _ in range(3)]
    ids = [np.arange(60)] * 3
    idx = build_packed_index(lengths, ids, [0.5, 0.3, 0.2], 0.3, 32, 50, 3, backend="numpy")
    got = [s for i in range(50) for s in idx.sample_spans(i, 32, extra=0)]
    merged = []  # a span cut by a sample boundary continues in the next sample
    for la, d, off, n in got:
        if merged and merged[-1][:2] == (la, d) and merged[-1][2] + merged[-1][3] == off:
            merged[-1] = (la, d, merged[-1][2], merged[-1][3] + n)
        else:
            merged.append((la, d, off, n))
    sp = idx.spans()
    want = list(zip(sp["span_lang"].tolist(), sp["span_doc"].tolist(),
                    sp["span_offset"].tolist(), np.diff(sp["span_start"]).tolist()))
    end = 50 * 32  # the stream's last span may reach past the last sample
    assert merged[:-1] == want[:len(merged) - 1]
    la, d, off, n = want[len(merged) - 1]
    assert merged[-1] == (la, d, off, n - (int(sp["span_start"][len(merged)]) - end))
    assert idx.run_start.dtype == np.int32 and idx.run_lang.dtype == np.int16
