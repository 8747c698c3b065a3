"""Packing v3: the mix an index asks for is the mix it trains on (xlda/data/packing.py).

Shares are measured here independently of the builder's own stats: from the stream layout,
over the N * S input tokens of the index's samples.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xlda.data.packing import (PackedIndex, band_tokens, build_packed_index, realized_stats,
                               share_tolerance, summary_line)
from xlda.data.packing_stats import stream_layout, token_shares
from xlda.data.sampling import check_mix

from .test_packing import check_invariants, feasible


def _shares(idx, lengths, S):
    lay = stream_layout(idx, lengths)
    return token_shares(lay, len(lengths), len(idx) * S)


def _lognormal(n_docs, median, sigma, seed):
    rng = np.random.default_rng(seed)
    return np.maximum(1, rng.lognormal(np.log(median), sigma, n_docs)).astype(np.int32)


# -- the band and the tolerance, by hand --------------------------------------------------------
def test_band_and_tolerance_values():
    assert band_tokens(256, 100) == 128.0  # clamp(100 / 400, 0.5, 8) = 0.5 windows
    assert band_tokens(256, 1000) == 640.0  # 2.5 windows
    assert band_tokens(4096, 10**7) == 8 * 4096.0  # capped at 8 windows
    assert share_tolerance(99) is None
    assert share_tolerance(100) == 0.01 and share_tolerance(999) == 0.01
    assert share_tolerance(1000) == 0.005


# -- refusing the impossible ----------------------------------------------------------------------
def test_a_mix_the_guarantee_cannot_meet_is_refused_with_the_numbers_and_the_flag():
    # en 0.996: the others get 0.004 * 128 = 0.512 tokens per window; 1 / 0.004 = 250
    with pytest.raises(ValueError) as e:
        check_mix(["en", "ko"], [0.996, 0.004], 128, "the train split")
    msg = str(e.value)
    assert "'en' has P(l)=0.996 in the train split" in msg
    assert "0.512 tokens per window of --seq-length 128" in msg
    assert "raise --seq-length to >= 250" in msg and "--xlda-beta" in msg
    assert "\n" not in msg
    check_mix(["en", "ko"], [0.996, 0.004], 250)  # exactly one token per window: allowed
    # the builder refuses before building anything
    lengths = [np.full(10, 50, np.int32), np.full(10, 50, np.int32)]
    with pytest.raises(ValueError, match="'#0' has P"):
        build_packed_index(lengths, [range(10), range(10)], [0.996, 0.004], 0.5, 128, 200, 0)
    with pytest.raises(ValueError, match="'en' has P"):
        build_packed_index(lengths, [range(10), range(10)], [0.996, 0.004], 0.5, 128, 200, 0,
                           languages=["en", "ko"])


# -- the realized figures, on a hand-built index ---------------------------------------------------
def test_realized_stats_of_a_hand_built_stream():
    # S = 4, 2 samples (8 input tokens). Documents: en d0 (5 tokens), d1 (3); ko d0 (4).
    # Stream: en d0[0:3] | ko d0 (4) | en d0[3:5] | en d1 (3)  -> 12 tokens, 4 pieces
    lengths = [np.array([5, 3], np.int32), np.array([4], np.int32)]
    arrays = {
        "piece_doc": np.array([0, 0, 0, 1]), "piece_lang": np.array([0, 1, 0, 0], np.int8),
        "cut_piece": np.array([0, 2]), "cut_off": np.array([0, 3], np.int32),
        "cut_len": np.array([3, 2], np.int32), "sample_piece": np.array([0, 1]),
        "sample_off": np.array([0, 1], np.int32),
    }
    tokens = [3 + 2 + 3, 4]  # what the walk placed: 12 tokens, 4 past the samples' 8
    out = realized_stats(arrays, lengths, np.array([0, 0]), tokens, 8, ["en", "ko"],
                         np.array([0.75, 0.25]))
    # first 8 tokens: en 3 + ko 4 + en 1 -> shares 4/8, 4/8
    assert out["shares"] == [0.5, 0.5]
    assert out["cuts_per_language"] == [1, 0]  # en d0 stops at 3 of 5; its rest is whole
    # en: 3 pieces, 2 occurrences (the rest of d0 resumes one); ko: 1 piece, 1 occurrence
    assert out["pieces_per_doc"] == [1.5, 1.0]
    stats = dict(out, rho=0.5, rho_effective=0.25, boundaries=4, boundary_switches=2,
                 forced_switches=1, band_switches=0, band_cuts=0)
    line = summary_line(stats, 2)
    assert "\n" not in line
    assert "en 0.5000/0.7500 ko 0.5000/0.2500" in line
    assert "switch rate 0.500 vs rho 0.5 (capped at 0.250)" in line
    assert "cuts en 1 ko 0" in line and "pieces/doc en 1.500 ko 1.000" in line
    idx = PackedIndex(**arrays, shuffle=np.array([1, 0]))
    lay = stream_layout(idx, lengths)
    assert token_shares(lay, 2, 8).tolist() == [0.5, 0.5]  # the independent measure agrees


# -- shares are a hard property: hypothesis over random corpora ------------------------------------
@st.composite
def mixes(draw):
    S = draw(st.sampled_from([2, 3, 8, 33, 128, 256, 1000, 1024, 4096, 8192]))
    n_lang = draw(st.integers(2, 4))
    kind = draw(st.sampled_from(["random", "near0", "near1"]))
    w = draw(st.lists(st.floats(0.01, 1.0), min_size=n_lang, max_size=n_lang))
    if kind == "near1":  # one language near 1, the rest near 0 (0.99/0.01 and beyond)
        w = [1.0] + [draw(st.floats(0.0005, 0.02)) for _ in range(n_lang - 1)]
    elif kind == "near0":  # one language near 0
        w[-1] = draw(st.floats(0.0005, 0.01))
    probs = np.array(w) / sum(w)
    corpus = []
    for _ in range(n_lang):  # document lengths from 1 to 10 S, few documents: upsampling
        n_docs = draw(st.integers(1, 30))
        scale = draw(st.sampled_from([0.01, 0.3, 1.0, 3.0, 10.0]))
        hi = max(1, int(scale * S))
        corpus.append(np.array(draw(st.lists(st.integers(1, hi), min_size=n_docs,
                                             max_size=n_docs)), np.int32))
    n = draw(st.sampled_from([100, 150, 400, 1000, 1500]))
    return S, probs, corpus, n


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mix=mixes(), rho=st.floats(0.01, 1.0), seed=st.integers(0, 2**31),
       split=st.integers(0, 2))
def test_shares_hold_or_the_mix_is_refused(mix, rho, seed, split):
    S, probs, lengths, n = mix
    ids = [range(len(c)) for c in lengths]
    if not feasible(probs, S):
        with pytest.raises(ValueError, match="tokens per window"):
            build_packed_index(lengths, ids, probs, rho, S, n, seed, split)
        return
    idx = build_packed_index(lengths, ids, probs, rho, S, n, seed, split)
    got = _shares(idx, lengths, S)
    assert np.abs(got - probs).max() <= share_tolerance(n), (got, probs)
    assert np.allclose(idx.stats["shares"], got, atol=1e-6)  # the stats say what was built
    if n * S <= 400_000:  # the guarantee, every sample (the walk over 12M tokens is slow)
        check_invariants(idx, lengths, S)


# -- the cases of the issue: long documents next to S, small indexes, extreme mixes ----------------
@pytest.mark.parametrize("S", [128, 256, 1024, 4096])
@pytest.mark.parametrize("probs", [[0.85, 0.10, 0.025, 0.025], [0.99, 0.01], [0.7, 0.3],
                                   [0.01, 0.99]])
@pytest.mark.parametrize("rho", [0.1, 0.5, 1.0])
def test_long_documents_keep_the_mix(S, probs, rho):
    # help-page-like documents (median 450, sigma 0.8) and a heavy lognormal tail (median
    # 600, sigma 1): at S = 256 v2 trained the 7B mix as .50/.33/.084/.084
    lengths = [_lognormal(400, 450 if l % 2 else 600, 0.8 if l % 2 else 1.0, l)
               for l in range(len(probs))]
    ids = [range(len(x)) for x in lengths]
    for n in (100, 1000):
        idx = build_packed_index(lengths, ids, probs, rho, S, n, 3)
        got = _shares(idx, lengths, S)
        assert np.abs(got - np.array(probs)).max() <= share_tolerance(n), (n, got)


def test_upsampled_language_keeps_its_share():
    # ko has 3 documents of 2,000 tokens for an index of 2,000 windows of 256 at P = 0.3:
    # ~150K tokens, 25 epochs of its documents
    lengths = [_lognormal(3000, 600, 1.0, 0), np.full(3, 2000, np.int32)]
    idx = build_packed_index(lengths, [range(3000), range(3)], [0.7, 0.3], 0.5, 256, 2000, 1)
    assert idx.stats["epochs"][1] >= 25
    assert np.abs(_shares(idx, lengths, 256) - [0.7, 0.3]).max() <= 0.005
