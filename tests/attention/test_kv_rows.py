import numpy as np
import torch
from hypothesis import given, settings, strategies as st

from xlda.attention.stats import kv_rows_per_row
from xlda.attention.thd import build_thd_layout


def test_kv_rows_exact_hand_case():
    # en doc 0 (2 tokens), ko doc 1 (1), en doc 0 resumed (1): kv sets 2, 3, 4 -> 9 rows.
    doc = np.array([[0, 0, 1, 0], [0, 0, 1, 2]])
    lang = np.array([[0, 0, 1, 0], [0, 0, 1, 0]])
    # row 1: doc 2 (en) sees only ko doc 1 and itself: 2 + 3 + 2 = 7.
    assert kv_rows_per_row(doc, lang, "xlda").tolist() == [9, 7]
    assert kv_rows_per_row(doc, lang, "document").tolist() == [6, 4]
    assert kv_rows_per_row(doc, lang, "causal").tolist() == [4, 4]


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), S=st.integers(1, 40), B=st.integers(1, 3),
       mode=st.sampled_from(["xlda", "document", "causal"]))
def test_kv_rows_equal_thd_layout(seed, S, B, mode):
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(B):
        doc = []
        while len(doc) < S:
            doc += [int(torch.randint(0, 6, (1,), generator=g))] * int(torch.randint(1, 7, (1,), generator=g))
        rows.append(doc[:S])
    doc = torch.tensor(rows)
    lang = doc % 3  # one language per document
    per_row = kv_rows_per_row(doc.numpy(), lang.numpy(), mode)
    assert int(per_row.sum()) == build_thd_layout(doc, lang, mode).kv_index.numel()
    for b in range(B):
        assert per_row[b] == build_thd_layout(doc[b:b + 1], lang[b:b + 1], mode).kv_index.numel()
