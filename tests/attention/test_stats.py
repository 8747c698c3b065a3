import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from tests.attention.layouts import batch, random_row
from xlda.attention.stats import ExpansionCap, ExpansionCapExceeded, expansion_from_ids, expansion_from_lengths
from xlda.attention.thd import build_thd_layout


def test_exact_small():
    # docs [2, 2, 1] langs [0, 1, 0]: kv sets 2, 2+2, 2+1 -> 9 / 5
    s = expansion_from_lengths([2, 2, 1], [0, 1, 0])
    assert s.kv_expansion == pytest.approx(1.8)
    assert s.flops_ratio == pytest.approx(13 / 15)
    assert s.max_kv_len == 4 and s.num_docs == 3
    d = expansion_from_lengths([2, 2, 1], [0, 1, 0], "document")
    assert d.kv_expansion == 1.0 and d.flops_ratio == pytest.approx(7 / 15)
    assert expansion_from_lengths([2, 2, 1], [0, 1, 0], "causal").flops_ratio == 1.0


def test_alternating_languages_grow_quadratically():
    # 8 docs of 4 tokens alternating 2 languages: doc j sees ceil(j/2)... other-lang docs before it
    s = expansion_from_lengths([4] * 8, [0, 1] * 4)
    prefixes = [0, 4, 4, 8, 8, 12, 12, 16]
    assert s.kv_expansion == pytest.approx((sum(prefixes) + 32) / 32)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), S=st.integers(1, 60), mode=st.sampled_from(["xlda", "document", "causal"]))
def test_matches_thd_layout(seed, S, mode):
    g = torch.Generator().manual_seed(seed)
    doc, lang = batch(random_row(S, g))
    L = build_thd_layout(doc, lang, mode)
    s = expansion_from_ids(doc, lang, mode)[0]
    assert s.kv_expansion == pytest.approx(L.expansion_ratio)
    assert s.flops_ratio == pytest.approx(L.flops_ratio)
    assert s.max_kv_len == L.max_seqlen_kv


def test_cap():
    cap = ExpansionCap(max_kv_expansion=1.5)
    with pytest.raises(ExpansionCapExceeded, match="sample #7: XLDA K/V expansion 1.80 exceeds"):
        cap.check([2, 2, 1], [0, 1, 0], where="#7")
    ok, s = ExpansionCap(1.5, action="flag").check([2, 2, 1], [0, 1, 0])
    assert not ok and s.kv_expansion == pytest.approx(1.8)
    assert ExpansionCap(2.0).check([2, 2, 1], [0, 1, 0])[0]
    with pytest.raises(ValueError, match="positive"):
        expansion_from_lengths([2, 0], [0, 1])
